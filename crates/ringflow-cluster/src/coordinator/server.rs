//! The coordinator's QUIC side: one control session per worker stream, request/response
//! for clients, and the handle that starts and stops it all.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use ringflow_net::{Connection, Endpoint, FramedRecv, FramedSend, NetConfig, TlsIdentity};
use ringflow_proto::{ClusterView, ControlMsg, ErrorCode, Hello, NodeInfo, PeerRole};
use ringflow_ring::RingConfig;
use tokio::sync::watch;

use super::actor::{Beat, CoordinatorActor, Flush, Forget, GetStatus, Join, Leave};
use super::core::{CoordinatorCore, PersistedState, Timing};
use super::jobs::JobManager;
use crate::net::{accept_loop, error_msg, on_arbiter, spawn_reader, StreamHandler};
use crate::persist::StateFile;
use crate::{ClusterError, CoordinatorConfig};

/// File in the data directory holding membership and assignment.
pub const STATE_FILE: &str = "coordinator-state.json";

/// A running coordinator.
pub struct CoordinatorHandle {
    addr: Addr<CoordinatorActor>,
    local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    net: actix_rt::Arbiter,
    done: tokio::sync::oneshot::Receiver<()>,
}

impl CoordinatorHandle {
    /// Loads state from the data directory, binds the QUIC endpoint on its own arbiter and
    /// starts serving. Must be called inside an actix System.
    pub async fn start(cfg: CoordinatorConfig) -> Result<Self, ClusterError> {
        cfg.validate()?;
        let ring = RingConfig::new(cfg.partitions, cfg.replication as usize)?;
        let identity = TlsIdentity::from_dir(&cfg.tls.certs_dir, &cfg.tls.name)?;
        let state = StateFile::open(&cfg.data_dir, STATE_FILE)?;
        let persisted: Option<PersistedState> = state.load()?;
        if let Some(p) = &persisted {
            tracing::info!(epoch = p.assignment.epoch(), members = p.members.len(), file = %state.path().display(), "recovered coordinator state");
        }
        let origin = Instant::now();
        let timing = Timing {
            heartbeat_interval_ms: cfg.heartbeat_interval_ms,
            failure_timeout_ms: cfg.failure_timeout_ms,
            recovery_grace_ms: cfg.recovery_grace_ms,
        };
        let core = CoordinatorCore::new(&cfg.cluster, ring, timing, persisted, 0)?;
        state.save(&core.persisted())?;
        let (views, views_rx) = watch::channel(Arc::new(core.view()));
        let actor = CoordinatorActor::new(
            core,
            origin,
            state,
            views,
            cfg.heartbeat_interval_ms,
            cfg.failure_timeout_ms,
        );
        let addr = actor.start();

        let net = actix_rt::Arbiter::new();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (done_tx, done) = tokio::sync::oneshot::channel();
        let net_cfg = NetConfig {
            max_frame: cfg.max_frame,
            ..NetConfig::default()
        };
        let handler_addr = addr.clone();
        let cluster = cfg.cluster.clone();
        let name = cfg.tls.name.clone();
        let listen = cfg.listen;
        let metrics_listen = cfg.metrics_listen;
        let metrics_stop = shutdown_rx.clone();
        let data_dir = cfg.data_dir.clone();
        let job_defaults = cfg.jobs.clone();
        let (local_addr, metrics_addr) = on_arbiter(&net.handle(), move || async move {
            let endpoint = Endpoint::bind(listen, &identity, &net_cfg)?;
            let local = endpoint.local_addr()?;
            let metrics = match metrics_listen {
                Some(a) => Some(crate::metrics::start_endpoint(a, metrics_stop)?),
                None => None,
            };
            let jobs = JobManager::new(
                endpoint.clone(),
                name.clone(),
                cluster.clone(),
                views_rx.clone(),
                Some(data_dir),
                job_defaults,
            )?;
            let handler = Rc::new(CoordinatorStreams {
                actor: handler_addr,
                views: views_rx,
                name: name.clone(),
                jobs,
            });
            actix_rt::spawn(async move {
                accept_loop(
                    endpoint,
                    handler,
                    PeerRole::Coordinator,
                    Some(name),
                    cluster,
                    shutdown_rx,
                )
                .await;
                let _ = done_tx.send(());
            });
            Ok::<_, ClusterError>((local, metrics))
        })
        .await??;
        tracing::info!(%local_addr, cluster = %cfg.cluster, partitions = cfg.partitions, replication = cfg.replication, "coordinator listening");
        if let Some(m) = metrics_addr {
            crate::metrics::announce(&cfg.data_dir, m)?;
        }
        Ok(Self {
            addr,
            local_addr,
            shutdown,
            net,
            done,
        })
    }

    /// The bound QUIC address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The current status (as `ringflow status` shows it).
    pub async fn status(&self) -> Result<ringflow_proto::ClusterStatus, ClusterError> {
        self.addr
            .send(GetStatus)
            .await
            .map_err(|_| ClusterError::ShuttingDown)
    }

    /// Stops accepting, closes connections, writes the state and stops the actor.
    pub async fn shutdown(self) -> Result<(), ClusterError> {
        let _ = self.shutdown.send(true);
        let _ = self.done.await;
        let flushed = self
            .addr
            .send(Flush)
            .await
            .map_err(|_| ClusterError::ShuttingDown)?;
        self.net.stop();
        let _ = self.net.join();
        flushed
    }
}

struct CoordinatorStreams {
    actor: Addr<CoordinatorActor>,
    views: watch::Receiver<Arc<ClusterView>>,
    name: String,
    jobs: Rc<JobManager>,
}

impl StreamHandler for CoordinatorStreams {
    async fn handle(
        self: Rc<Self>,
        conn: Connection,
        hello: Hello,
        mut send: FramedSend,
        recv: FramedRecv,
    ) -> Result<(), ClusterError> {
        match hello.role {
            PeerRole::Worker => {
                if !conn.peer_is_node() {
                    send.send(&error_msg(
                        ErrorCode::Forbidden,
                        "a worker needs a node certificate",
                    ))
                    .await?;
                    return Ok(());
                }
                self.worker_session(&conn, send, recv).await
            }
            PeerRole::Client | PeerRole::Coordinator => self.client_session(send, recv).await,
        }
    }
}

impl CoordinatorStreams {
    async fn ask<M>(&self, msg: M) -> Result<M::Result, ClusterError>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        CoordinatorActor: Handler<M>,
    {
        self.actor
            .send(msg)
            .await
            .map_err(|_| ClusterError::ShuttingDown)
    }

    async fn client_session(
        &self,
        mut send: FramedSend,
        mut recv: FramedRecv,
    ) -> Result<(), ClusterError> {
        while let Some(msg) = recv.recv::<ControlMsg>().await? {
            let reply = match msg {
                ControlMsg::StatusRequest => ControlMsg::Status(self.ask(GetStatus).await?),
                ControlMsg::ViewRequest => ControlMsg::View((**self.views.borrow()).clone()),
                ControlMsg::NodeInfoRequest => {
                    let s = self.ask(GetStatus).await?;
                    ControlMsg::NodeInfo(NodeInfo {
                        id: self.name.clone(),
                        role: PeerRole::Coordinator,
                        epoch: s.epoch,
                        partitions: 0,
                        primaries: 0,
                        connected: true,
                    })
                }
                ControlMsg::Bye => return Ok(()),
                ControlMsg::JobSubmit(s) => {
                    match self
                        .jobs
                        .clone()
                        .submit(s.spec_json, s.from_savepoint)
                        .await
                    {
                        Ok(info) => ControlMsg::Job(info),
                        Err(e) => error_msg(ErrorCode::BadRequest, e),
                    }
                }
                ControlMsg::JobSavepoint { id, stop } => {
                    match self.jobs.clone().savepoint(&id, stop).await {
                        Ok(sp) => ControlMsg::Savepoint(sp),
                        Err(e) => error_msg(ErrorCode::BadRequest, e),
                    }
                }
                ControlMsg::JobRescale { id } => match self.jobs.clone().rescale(&id).await {
                    Ok(info) => ControlMsg::Job(info),
                    Err(e) => error_msg(ErrorCode::BadRequest, e),
                },
                ControlMsg::SavepointList => ControlMsg::Savepoints(self.jobs.savepoints()),
                ControlMsg::SavepointDelete { id } => match self.jobs.delete_savepoint(&id) {
                    Ok(list) => ControlMsg::Savepoints(list),
                    Err(e) => error_msg(ErrorCode::BadRequest, e),
                },
                ControlMsg::JobList => ControlMsg::Jobs(self.jobs.list()),
                ControlMsg::ForgetWorker { id } => match self.ask(Forget(id)).await? {
                    Ok(()) => ControlMsg::Status(self.ask(GetStatus).await?),
                    Err(e) => ControlMsg::Error(e),
                },
                ControlMsg::JobStatusRequest { id } => match self.jobs.get(&id) {
                    Some(info) => ControlMsg::Job(info),
                    None => error_msg(ErrorCode::BadRequest, format!("no job {id}")),
                },
                ControlMsg::JobCancel { id } => match self.jobs.cancel(&id) {
                    Some(info) => ControlMsg::Job(info),
                    None => error_msg(ErrorCode::BadRequest, format!("no job {id}")),
                },
                other => error_msg(
                    ErrorCode::BadRequest,
                    format!("unexpected {} from a client", variant_name(&other)),
                ),
            };
            send.send(&reply).await?;
        }
        Ok(())
    }

    async fn worker_session(
        &self,
        conn: &Connection,
        mut send: FramedSend,
        recv: FramedRecv,
    ) -> Result<(), ClusterError> {
        let mut incoming = spawn_reader(recv);
        let mut views = self.views.clone();
        let mut session: Option<(ringflow_ring::WorkerId, u64)> = None;
        loop {
            tokio::select! {
                msg = incoming.recv() => {
                    let msg = match msg {
                        Some(m) => m?,
                        None => {
                            if let Some((id, _)) = &session {
                                tracing::info!(member = %id, "control session closed");
                            }
                            return Ok(());
                        }
                    };
                    match msg {
                        ControlMsg::Join(mut req) => {
                            // A worker bound to 0.0.0.0 without `advertise` is reached
                            // at the address its control connection came from.
                            let seen = conn.remote_addr().ip();
                            req.addr = fill_unspecified(&req.addr, seen);
                            for a in req.services.values_mut() {
                                *a = fill_unspecified(a, seen);
                            }
                            if !conn.peer_has_name(&req.id.0) {
                                send.send(&error_msg(
                                    ErrorCode::Forbidden,
                                    format!("worker id {:?} is not a name in the certificate this worker presented", req.id.0),
                                ))
                                .await?;
                                continue;
                            }
                            let id = req.id.clone();
                            match self.ask(Join(req)).await? {
                                Ok((welcome, s)) => {
                                    // A view published meanwhile is sent again below; the
                                    // worker treats a repeat as a refresh.
                                    session = Some((id, s));
                                    send.send(&ControlMsg::Welcome(welcome)).await?;
                                }
                                Err(e) => send.send(&ControlMsg::Error(e)).await?,
                            }
                        }
                        ControlMsg::Heartbeat(hb) => {
                            let Some((id, s)) = &session else {
                                send.send(&error_msg(ErrorCode::NotMember, "join first")).await?;
                                continue;
                            };
                            if &hb.id != id {
                                send.send(&error_msg(ErrorCode::BadRequest, format!("this session belongs to {id}, not {}", hb.id))).await?;
                                continue;
                            }
                            match self.ask(Beat { hb, session: *s }).await? {
                                Ok((ack, behind)) => {
                                    send.send(&ControlMsg::HeartbeatAck(ack)).await?;
                                    if behind {
                                        let view = views.borrow_and_update().clone();
                                        send.send(&ControlMsg::View((*view).clone())).await?;
                                    }
                                }
                                Err(e) => send.send(&ControlMsg::Error(e)).await?,
                            }
                        }
                        ControlMsg::Leave { id } => {
                            let Some(generation) = session.as_ref().filter(|(sid, _)| *sid == id).map(|(_, g)| *g) else {
                                send.send(&error_msg(ErrorCode::Forbidden, "a worker can only leave for itself")).await?;
                                continue;
                            };
                            match self.ask(Leave(id, generation)).await? {
                                Ok(()) => send.send(&ControlMsg::Bye).await?,
                                Err(e) => send.send(&ControlMsg::Error(e)).await?,
                            }
                            return Ok(());
                        }
                        ControlMsg::StatusRequest => {
                            send.send(&ControlMsg::Status(self.ask(GetStatus).await?)).await?;
                        }
                        ControlMsg::Bye => return Ok(()),
                        other => {
                            send.send(&error_msg(ErrorCode::BadRequest, format!("unexpected {} from a worker", variant_name(&other)))).await?;
                        }
                    }
                }
                changed = views.changed() => {
                    if changed.is_err() {
                        return Err(ClusterError::ShuttingDown);
                    }
                    if session.is_some() {
                        let view = views.borrow_and_update().clone();
                        send.send(&ControlMsg::View((*view).clone())).await?;
                    }
                }
            }
        }
    }
}

/// A message's variant name, for error messages.
pub fn variant_name(m: &ControlMsg) -> &'static str {
    match m {
        ControlMsg::Join(_) => "Join",
        ControlMsg::Heartbeat(_) => "Heartbeat",
        ControlMsg::Leave { .. } => "Leave",
        ControlMsg::StatusRequest => "StatusRequest",
        ControlMsg::ViewRequest => "ViewRequest",
        ControlMsg::NodeInfoRequest => "NodeInfoRequest",
        ControlMsg::NodeInfo(_) => "NodeInfo",
        ControlMsg::Welcome(_) => "Welcome",
        ControlMsg::View(_) => "View",
        ControlMsg::HeartbeatAck(_) => "HeartbeatAck",
        ControlMsg::Status(_) => "Status",
        ControlMsg::Error(_) => "Error",
        ControlMsg::Bye => "Bye",
        ControlMsg::JobSubmit(_) => "JobSubmit",
        ControlMsg::JobList => "JobList",
        ControlMsg::JobStatusRequest { .. } => "JobStatusRequest",
        ControlMsg::JobCancel { .. } => "JobCancel",
        ControlMsg::Job(_) => "Job",
        ControlMsg::Jobs(_) => "Jobs",
        ControlMsg::JobSavepoint { .. } => "JobSavepoint",
        ControlMsg::JobRescale { .. } => "JobRescale",
        ControlMsg::SavepointList => "SavepointList",
        ControlMsg::SavepointDelete { .. } => "SavepointDelete",
        ControlMsg::Savepoint(_) => "Savepoint",
        ControlMsg::Savepoints(_) => "Savepoints",
        ControlMsg::ForgetWorker { .. } => "ForgetWorker",
    }
}

/// `addr` with an unspecified IP (`0.0.0.0` or `::`) replaced by `seen`, the address the
/// peer's connection came from; any other address (or a host name) unchanged.
fn fill_unspecified(addr: &str, seen: std::net::IpAddr) -> String {
    match addr.parse::<std::net::SocketAddr>() {
        Ok(a) if a.ip().is_unspecified() => std::net::SocketAddr::new(seen, a.port()).to_string(),
        _ => addr.to_string(),
    }
}

#[cfg(test)]
mod advertise_tests {
    use super::fill_unspecified;

    #[test]
    fn unspecified_addresses_take_the_observed_ip() {
        let seen = "172.18.0.3".parse().unwrap();
        assert_eq!(fill_unspecified("0.0.0.0:7401", seen), "172.18.0.3:7401");
        assert_eq!(fill_unspecified("[::]:7401", seen), "172.18.0.3:7401");
        assert_eq!(fill_unspecified("10.0.0.1:7401", seen), "10.0.0.1:7401");
        assert_eq!(fill_unspecified("w1.example:7401", seen), "w1.example:7401");
    }
}
