//! The worker's QUIC side: the control session with the coordinator (join, heartbeats,
//! views, reconnection with backoff, leave on shutdown), the worker's own listener, and
//! the handle that starts and stops it all.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use ringflow_net::{Connection, Endpoint, FramedRecv, FramedSend, NetConfig, TlsIdentity};
use ringflow_proto::{ClusterView, ControlMsg, ErrorCode, Heartbeat, Hello, JoinRequest, PeerRole};
use ringflow_ring::WorkerId;
use tokio::sync::watch;

use super::actor::{ApplyView, CurrentEpoch, GetInfo, SetConnected, WorkerActor};
use super::core::{ViewChange, WorkerCore};
use crate::net::{accept_loop, error_msg, on_arbiter, open_stream, spawn_reader, StreamHandler};
use crate::service::{ServiceContext, ServiceFactory, WorkerService};
use crate::{ClusterError, WorkerConfig};

/// A running worker.
pub struct WorkerHandle {
    addr: Addr<WorkerActor>,
    local_addr: SocketAddr,
    stop_session: watch::Sender<bool>,
    stop_listener: watch::Sender<bool>,
    net: actix_rt::Arbiter,
    session_done: tokio::sync::oneshot::Receiver<()>,
    listener_done: tokio::sync::oneshot::Receiver<()>,
    id: WorkerId,
    views: watch::Receiver<Option<Arc<ClusterView>>>,
    lease: crate::Lease,
    _lock: std::fs::File,
}

impl WorkerHandle {
    /// Binds the worker's QUIC endpoint on its own arbiter, starts its listener and its
    /// control session (which joins the coordinator and keeps retrying until it can).
    /// Must be called inside an actix System.
    pub async fn start(cfg: WorkerConfig) -> Result<Self, ClusterError> {
        Self::start_with(cfg, Vec::new()).await
    }

    /// Like [`WorkerHandle::start`], hosting the data-plane services that `services` build.
    pub async fn start_with(
        cfg: WorkerConfig,
        services: Vec<ServiceFactory>,
    ) -> Result<Self, ClusterError> {
        cfg.validate()?;
        std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
            ClusterError::io(
                format!("creating data directory {}", cfg.data_dir.display()),
                e,
            )
        })?;
        let lock = crate::persist::lock_dir(&cfg.data_dir)?;
        let identity = TlsIdentity::from_dir(&cfg.tls.certs_dir, &cfg.tls.name)?;
        let id = WorkerId(cfg.id.clone());
        let addr = WorkerActor::new(WorkerCore::new(id.clone())).start();
        let net = actix_rt::Arbiter::new();
        let (stop_session, session_rx) = watch::channel(false);
        let (stop_listener, listener_rx) = watch::channel(false);
        let (accept_done_tx, listener_done) = tokio::sync::oneshot::channel();
        let (session_done_tx, session_done) = tokio::sync::oneshot::channel();
        let net_cfg = NetConfig {
            max_frame: cfg.max_frame,
            ..NetConfig::default()
        };
        let actor = addr.clone();
        let listen = cfg.listen;
        let cfg2 = cfg.clone();
        let metrics_stop = listener_rx.clone();
        let (views_tx, views_rx) = watch::channel(None);
        let views_handle = views_rx.clone();
        let lease = crate::Lease::new();
        let lease_handle = lease.clone();
        let (local_addr, metrics_addr) = on_arbiter(&net.handle(), move || async move {
            let endpoint = Endpoint::bind(listen, &identity, &net_cfg)?;
            let local = endpoint.local_addr()?;
            let mut hosted: HashMap<String, Rc<dyn WorkerService>> = HashMap::new();
            for factory in services {
                let service = factory(ServiceContext {
                    worker_id: WorkerId(cfg2.id.clone()),
                    cluster: cfg2.cluster.clone(),
                    endpoint: endpoint.clone(),
                    views: views_rx.clone(),
                    data_dir: cfg2.data_dir.clone(),
                    lease: lease.clone(),
                })?;
                hosted.insert(service.name().to_string(), service);
            }
            let advertised: BTreeMap<String, String> =
                hosted.values().flat_map(|s| s.advertised()).collect();
            let metrics = match cfg2.metrics_listen {
                Some(a) => Some(crate::metrics::start_endpoint(a, metrics_stop)?),
                None => None,
            };
            let handler = Rc::new(WorkerStreams {
                actor: actor.clone(),
                services: hosted,
            });
            let advertise = cfg2.advertise.clone().unwrap_or_else(|| local.to_string());
            let session = ControlSession {
                cfg: cfg2.clone(),
                id: WorkerId(cfg2.id.clone()),
                advertise,
                endpoint: endpoint.clone(),
                actor,
                views: views_tx,
                services: advertised,
                lease,
            };
            actix_rt::spawn(async move {
                session.run(session_rx).await;
                let _ = session_done_tx.send(());
            });
            actix_rt::spawn(async move {
                accept_loop(
                    endpoint,
                    handler,
                    PeerRole::Worker,
                    Some(cfg2.id),
                    cfg2.cluster,
                    listener_rx,
                )
                .await;
                let _ = accept_done_tx.send(());
            });
            Ok::<_, ClusterError>((local, metrics))
        })
        .await??;
        tracing::info!(%local_addr, id = %id, coordinator = %cfg.coordinator, capacity = cfg.capacity, "worker listening");
        if let Some(m) = metrics_addr {
            crate::metrics::announce(&cfg.data_dir, m)?;
        }
        Ok(Self {
            addr,
            local_addr,
            stop_session,
            stop_listener,
            net,
            session_done,
            listener_done,
            id,
            views: views_handle,
            lease: lease_handle,
            _lock: lock,
        })
    }

    /// The worker's lease from the coordinator (see [`crate::lease`]).
    pub fn lease(&self) -> crate::Lease {
        self.lease.clone()
    }

    /// The bound QUIC address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Resolves once this worker is a member of the view it acts on: it has joined and
    /// been given its partitions (what systemd's readiness notification waits for).
    pub async fn joined(&self) {
        let mut views = self.views.clone();
        let id = &self.id;
        let _ = views
            .wait_for(|v| v.as_ref().is_some_and(|v| v.has_peer(id)))
            .await;
    }

    /// The epoch of the table this worker acts on.
    pub async fn epoch(&self) -> Result<u64, ClusterError> {
        self.addr
            .send(CurrentEpoch)
            .await
            .map_err(|_| ClusterError::ShuttingDown)
    }

    /// Leaves the cluster (handing partitions back while the coordinator is reachable),
    /// closes connections and stops.
    pub async fn shutdown(self) -> Result<(), ClusterError> {
        // Leave first (the control connection lives on the same endpoint), then close.
        let _ = self.stop_session.send(true);
        let _ = self.session_done.await;
        let _ = self.stop_listener.send(true);
        let _ = self.listener_done.await;
        self.net.stop();
        let _ = self.net.join();
        Ok(())
    }
}

struct WorkerStreams {
    actor: Addr<WorkerActor>,
    services: HashMap<String, Rc<dyn WorkerService>>,
}

impl StreamHandler for WorkerStreams {
    async fn handle(
        self: Rc<Self>,
        conn: Connection,
        hello: Hello,
        mut send: FramedSend,
        mut recv: FramedRecv,
    ) -> Result<(), ClusterError> {
        if !hello.service.is_empty() {
            let Some(service) = self.services.get(&hello.service).cloned() else {
                send.send(&error_msg(
                    ErrorCode::BadRequest,
                    format!("this worker hosts no service {:?}", hello.service),
                ))
                .await?;
                return Ok(());
            };
            return service.serve(conn, hello, send, recv).await;
        }
        while let Some(msg) = recv.recv::<ControlMsg>().await? {
            let reply = match msg {
                ControlMsg::NodeInfoRequest => ControlMsg::NodeInfo(
                    self.actor
                        .send(GetInfo)
                        .await
                        .map_err(|_| ClusterError::ShuttingDown)?,
                ),
                ControlMsg::Bye => return Ok(()),
                other => error_msg(
                    ErrorCode::BadRequest,
                    format!(
                        "a worker does not serve {}; ask the coordinator",
                        crate::coordinator::variant_name(&other)
                    ),
                ),
            };
            send.send(&reply).await?;
        }
        Ok(())
    }
}

enum SessionEnd {
    Shutdown,
}

struct ControlSession {
    cfg: WorkerConfig,
    id: WorkerId,
    advertise: String,
    endpoint: Endpoint,
    actor: Addr<WorkerActor>,
    views: watch::Sender<Option<Arc<ClusterView>>>,
    /// Renewed by the coordinator's answers to heartbeats.
    lease: crate::Lease,
    services: BTreeMap<String, String>,
}

impl ControlSession {
    /// Hands a view to the actor and, if it is acted on, to the hosted services.
    async fn apply(&self, view: ClusterView) -> Result<(), ClusterError> {
        let shared = Arc::new(view.clone());
        let change = self
            .actor
            .send(ApplyView(view))
            .await
            .map_err(|_| ClusterError::ShuttingDown)?;
        if !matches!(change, ViewChange::Stale { .. }) {
            self.views.send_replace(Some(shared));
        }
        Ok(())
    }

    async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            if *shutdown.borrow() {
                return;
            }
            let started = Instant::now();
            let result = self.session(&mut shutdown).await;
            self.actor.do_send(SetConnected(false));
            match result {
                Ok(SessionEnd::Shutdown) => return,
                Err(e) => {
                    if started.elapsed() > Duration::from_secs(5) {
                        backoff = Duration::from_millis(100);
                    }
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "control session with the coordinator lost");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    async fn epoch(&self) -> Result<u64, ClusterError> {
        self.actor
            .send(CurrentEpoch)
            .await
            .map_err(|_| ClusterError::ShuttingDown)
    }

    async fn join_request(&self) -> Result<ControlMsg, ClusterError> {
        Ok(ControlMsg::Join(JoinRequest {
            id: self.id.clone(),
            addr: self.advertise.clone(),
            capacity: self.cfg.capacity,
            known_epoch: self.epoch().await?,
            services: self.services.clone(),
        }))
    }

    async fn session(
        &self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<SessionEnd, ClusterError> {
        let target = resolve(&self.cfg.coordinator).await?;
        // A short connect timeout: while the coordinator restarts, retry often rather than
        // wait out QUIC's handshake back-off.
        let connect = tokio::time::timeout(Duration::from_secs(2), self.endpoint.connect(target));
        let conn = tokio::select! {
            c = connect => c.map_err(|_| ClusterError::Timeout(format!("connecting to {target}")))??,
            _ = shutdown.changed() => return Ok(SessionEnd::Shutdown),
        };
        let (mut send, recv) = open_stream(
            &conn,
            PeerRole::Worker,
            Some(self.id.0.clone()),
            &self.cfg.cluster,
        )
        .await?;
        let mut incoming = spawn_reader(recv);
        let mut join_sent = Instant::now();
        send.send(&self.join_request().await?).await?;
        // When each unanswered heartbeat was sent: a lease counts from there.
        let mut sent: std::collections::VecDeque<(u64, Instant)> = Default::default();
        let mut lease_length = crate::Lease::length_for(3000);
        let mut heartbeat = Duration::from_millis(500);
        let mut silence_limit = Duration::from_secs(10);
        let mut joined = false;
        let mut seq = 0u64;
        let mut last_heard = Instant::now();
        let mut ticker = tokio::time::interval(heartbeat);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                msg = incoming.recv() => {
                    let Some(msg) = msg else {
                        return Err(ClusterError::Unexpected("coordinator closed the control stream".into()));
                    };
                    last_heard = Instant::now();
                    match msg? {
                        ControlMsg::Welcome(w) => {
                            joined = true;
                            heartbeat = Duration::from_millis(w.heartbeat_interval_ms.max(10));
                            silence_limit = Duration::from_millis(w.failure_timeout_ms).max(Duration::from_secs(1));
                            lease_length = if w.lease_ms > 0 {
                                Duration::from_millis(w.lease_ms)
                            } else {
                                crate::Lease::length_for(w.failure_timeout_ms)
                            };
                            self.lease.grant(w.view.epoch(), join_sent, lease_length);
                            ticker = tokio::time::interval(heartbeat);
                            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                            tracing::info!(coordinator = %target, epoch = w.view.epoch(), "joined the cluster");
                            self.apply(w.view).await?;
                            self.actor.do_send(SetConnected(true));
                        }
                        ControlMsg::View(v) => self.apply(v).await?,
                        ControlMsg::HeartbeatAck(ack) => {
                            while let Some(&(seq, at)) = sent.front() {
                                if seq > ack.seq {
                                    break;
                                }
                                sent.pop_front();
                                if seq == ack.seq {
                                    self.lease.grant(ack.epoch, at, lease_length);
                                }
                            }
                        }
                        ControlMsg::Error(e) if e.code == ErrorCode::NotMember => {
                            tracing::warn!(reason = %e.message, "coordinator no longer counts this worker: joining again");
                            joined = false;
                            self.lease.revoke();
                            sent.clear();
                            join_sent = Instant::now();
                            send.send(&self.join_request().await?).await?;
                        }
                        ControlMsg::Error(e) if e.code == ErrorCode::Superseded => {
                            tracing::error!(reason = %e.message, "this worker's session was superseded");
                            return Err(ClusterError::Refused(e.message));
                        }
                        ControlMsg::Error(e) if !joined => {
                            tracing::error!(code = ?e.code, reason = %e.message, "the coordinator refused this worker");
                            return Err(ClusterError::Refused(e.message));
                        }
                        ControlMsg::Error(e) => tracing::warn!(code = ?e.code, reason = %e.message, "coordinator reported an error"),
                        ControlMsg::Bye => return Err(ClusterError::Unexpected("coordinator ended the session".into())),
                        other => tracing::warn!(msg = crate::coordinator::variant_name(&other), "unexpected message from the coordinator"),
                    }
                }
                _ = ticker.tick() => {
                    if last_heard.elapsed() > silence_limit {
                        conn.close(0, "coordinator silent");
                        return Err(ClusterError::Timeout(format!("coordinator silent for {} ms", last_heard.elapsed().as_millis())));
                    }
                    if joined {
                        seq += 1;
                        let hb = Heartbeat { id: self.id.clone(), epoch: self.epoch().await?, seq };
                        sent.push_back((seq, Instant::now()));
                        if sent.len() > 256 {
                            sent.pop_front();
                        }
                        send.send(&ControlMsg::Heartbeat(hb)).await?;
                    }
                }
                _ = shutdown.changed() => {
                    if joined {
                        send.send(&ControlMsg::Leave { id: self.id.clone() }).await?;
                        let deadline = tokio::time::sleep(Duration::from_secs(3));
                        tokio::pin!(deadline);
                        loop {
                            tokio::select! {
                                m = incoming.recv() => match m {
                                    Some(Ok(ControlMsg::Bye)) => { tracing::info!("left the cluster: partitions handed back"); break }
                                    Some(Ok(_)) => continue,
                                    _ => break,
                                },
                                _ = &mut deadline => { tracing::warn!("coordinator did not confirm the leave in time"); break }
                            }
                        }
                    }
                    conn.close(0, "worker shutting down");
                    return Ok(SessionEnd::Shutdown);
                }
            }
        }
    }
}

/// Resolves `HOST:PORT` (names included).
pub(crate) async fn resolve(target: &str) -> Result<SocketAddr, ClusterError> {
    if let Ok(a) = target.parse() {
        return Ok(a);
    }
    tokio::net::lookup_host(target)
        .await
        .map_err(|e| ClusterError::io(format!("resolving {target}"), e))?
        .next()
        .ok_or_else(|| ClusterError::Config(format!("{target} resolves to no address")))
}
