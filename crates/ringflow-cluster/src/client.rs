//! A client of the cluster: the CLI and applications use it to query nodes.

use std::time::Duration;

use ringflow_net::{Connection, Endpoint, FramedRecv, FramedSend, NetConfig, TlsIdentity};
use ringflow_proto::{
    ClientPort, ClusterStatus, ClusterView, ControlMsg, JobInfo, JobSubmit, NodeInfo, PeerRole,
    SavepointInfo, StreamOpen,
};
use ringflow_ring::WorkerId;
use ringflow_stream::wire::DataFrame;

use crate::net::open_stream;
use crate::worker::session_resolve;
use crate::ClusterError;

/// A client's stream to one client port of a job (see `source.client` / `sink.client`).
pub struct PortStream {
    send: FramedSend,
    recv: FramedRecv,
}

impl PortStream {
    /// Sends one encoded batch (the port type's codec) of `records` records; waits while
    /// the job is behind (QUIC flow control).
    pub async fn push(&mut self, bytes: Vec<u8>, records: u32) -> Result<(), ClusterError> {
        self.send
            .send(&DataFrame::Batch { records, bytes })
            .await
            .map_err(Into::into)
    }

    /// Ends the input of this source instance.
    pub async fn finish(mut self) -> Result<(), ClusterError> {
        self.send.send(&DataFrame::End).await?;
        let _ = self.send.finish();
        // Wait until the worker has taken everything (it closes its side after the end).
        let _ = self.recv.recv::<DataFrame>().await;
        Ok(())
    }

    /// The next encoded batch from a sink instance, or `None` at its end.
    pub async fn pull(&mut self) -> Result<Option<Vec<u8>>, ClusterError> {
        loop {
            match self.recv.recv::<DataFrame>().await? {
                Some(DataFrame::Batch { bytes, .. }) => return Ok(Some(bytes)),
                Some(DataFrame::End) => return Ok(None),
                Some(DataFrame::Idle) | None => {
                    return Err(ClusterError::Refused(
                        "the job's client sink is gone (job failed, cancelled, or already read)"
                            .into(),
                    ))
                }
                Some(_) => continue,
            }
        }
    }
}

/// A connection to one node of the cluster (usually the coordinator).
pub struct ClusterClient {
    endpoint: Endpoint,
    /// Where the connection goes, re-resolved when it is made again.
    target: String,
    /// The connection; replaced when it closed (e.g. the coordinator restarted).
    conn: std::sync::Mutex<Connection>,
    cluster: String,
    timeout: Duration,
}

impl ClusterClient {
    /// Connects to `target` (`HOST:PORT`) with a client or node certificate.
    pub async fn connect(
        target: &str,
        identity: &TlsIdentity,
        cluster: &str,
    ) -> Result<Self, ClusterError> {
        let addr = session_resolve(target).await?;
        let endpoint = Endpoint::client(identity, &NetConfig::default())?;
        let conn = endpoint.connect(addr).await?;
        Ok(Self {
            endpoint,
            target: target.to_string(),
            conn: std::sync::Mutex::new(conn),
            cluster: cluster.to_string(),
            timeout: Duration::from_secs(10),
        })
    }

    fn current(&self) -> Connection {
        match self.conn.lock() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The connection, made again first if it has closed: a client outlives a restart
    /// of the node it talks to.
    async fn connection(&self) -> Result<Connection, ClusterError> {
        let conn = self.current();
        if conn.close_reason().is_none() {
            return Ok(conn);
        }
        let addr = session_resolve(&self.target).await?;
        let fresh = tokio::time::timeout(self.timeout, self.endpoint.connect(addr))
            .await
            .map_err(|_| ClusterError::Timeout(format!("connecting to {}", self.target)))??;
        tracing::debug!(target = %self.target, "reconnected");
        match self.conn.lock() {
            Ok(mut c) => *c = fresh.clone(),
            Err(p) => *p.into_inner() = fresh.clone(),
        }
        Ok(fresh)
    }

    async fn request(&self, msg: &ControlMsg) -> Result<ControlMsg, ClusterError> {
        self.request_within(msg, self.timeout).await
    }

    async fn request_within(
        &self,
        msg: &ControlMsg,
        timeout: Duration,
    ) -> Result<ControlMsg, ClusterError> {
        let fut = async {
            let mut conn = self.connection().await?;
            let opened = match open_stream(&conn, PeerRole::Client, None, &self.cluster).await {
                // The connection died since it was last used: once more on a new one.
                Err(_) if conn.close_reason().is_some() => {
                    conn = self.connection().await?;
                    open_stream(&conn, PeerRole::Client, None, &self.cluster).await
                }
                other => other,
            };
            let (mut send, mut recv) = opened?;
            send.send(msg).await?;
            let reply = recv
                .recv::<ControlMsg>()
                .await?
                .ok_or_else(|| ClusterError::Unexpected("stream closed without a reply".into()))?;
            let _ = send.send(&ControlMsg::Bye).await;
            let _ = send.finish();
            Ok(reply)
        };
        tokio::time::timeout(timeout, fut).await.map_err(|_| {
            ClusterError::Timeout(format!("no reply within {} s", timeout.as_secs()))
        })?
    }

    /// The coordinator's status report.
    pub async fn status(&self) -> Result<ClusterStatus, ClusterError> {
        match self.request(&ControlMsg::StatusRequest).await? {
            ControlMsg::Status(s) => Ok(s),
            ControlMsg::Error(e) => Err(ClusterError::Refused(e.message)),
            other => Err(ClusterError::Unexpected(
                crate::coordinator::variant_name(&other).into(),
            )),
        }
    }

    /// Forgets a dead worker (an operator's decision that it will not come back: see
    /// [`ControlMsg::ForgetWorker`]); the status after the change.
    pub async fn forget_worker(&self, id: &WorkerId) -> Result<ClusterStatus, ClusterError> {
        let msg = ControlMsg::ForgetWorker { id: id.clone() };
        match self.request(&msg).await? {
            ControlMsg::Status(s) => Ok(s),
            ControlMsg::Error(e) => Err(ClusterError::Refused(e.message)),
            other => Err(ClusterError::Unexpected(
                crate::coordinator::variant_name(&other).into(),
            )),
        }
    }

    /// The current view (assignment and peer addresses), for routing.
    pub async fn view(&self) -> Result<ClusterView, ClusterError> {
        match self.request(&ControlMsg::ViewRequest).await? {
            ControlMsg::View(v) => Ok(v),
            ControlMsg::Error(e) => Err(ClusterError::Refused(e.message)),
            other => Err(ClusterError::Unexpected(
                crate::coordinator::variant_name(&other).into(),
            )),
        }
    }

    /// Opens a handshaken stream to a worker-hosted service on this connection.
    pub async fn open_service(
        &self,
        service: &str,
    ) -> Result<(FramedSend, FramedRecv), ClusterError> {
        crate::net::open_service_stream(
            &self.connection().await?,
            PeerRole::Client,
            None,
            &self.cluster,
            service,
        )
        .await
    }

    /// Submits a stream job (its spec as JSON); the coordinator answers once every
    /// worker has validated and built its part. A refusal names the vertex at fault.
    pub async fn submit_job(&self, spec_json: String) -> Result<JobInfo, ClusterError> {
        self.submit_job_from(spec_json, None).await
    }

    /// Submits a stream job that starts from a savepoint's state (refused when the
    /// spec's stateful vertices do not match the savepoint's).
    pub async fn submit_job_from(
        &self,
        spec_json: String,
        from_savepoint: Option<String>,
    ) -> Result<JobInfo, ClusterError> {
        let msg = ControlMsg::JobSubmit(JobSubmit {
            spec_json,
            from_savepoint,
        });
        match self.request_within(&msg, Duration::from_secs(120)).await? {
            ControlMsg::Job(j) => Ok(j),
            ControlMsg::Error(e) => Err(ClusterError::Refused(e.message)),
            other => Err(ClusterError::Unexpected(
                crate::coordinator::variant_name(&other).into(),
            )),
        }
    }

    /// Takes a savepoint of a running job (then cancels it if `stop`); answers once the
    /// savepoint is complete.
    pub async fn savepoint(&self, job: &str, stop: bool) -> Result<SavepointInfo, ClusterError> {
        let msg = ControlMsg::JobSavepoint {
            id: job.into(),
            stop,
        };
        match self.request_within(&msg, Duration::from_secs(320)).await? {
            ControlMsg::Savepoint(s) => Ok(s),
            ControlMsg::Error(e) => Err(ClusterError::Refused(e.message)),
            other => Err(ClusterError::Unexpected(
                crate::coordinator::variant_name(&other).into(),
            )),
        }
    }

    /// Moves a running job to the current membership; answers once it runs again (its
    /// `last_rescale_pause_ms` says how long it was stopped).
    pub async fn rescale_job(&self, job: &str) -> Result<JobInfo, ClusterError> {
        let msg = ControlMsg::JobRescale { id: job.into() };
        match self.request_within(&msg, Duration::from_secs(320)).await? {
            ControlMsg::Job(j) => Ok(j),
            ControlMsg::Error(e) => Err(ClusterError::Refused(e.message)),
            other => Err(ClusterError::Unexpected(
                crate::coordinator::variant_name(&other).into(),
            )),
        }
    }

    /// Every savepoint, or (with `delete`) the ones left after deleting that one.
    pub async fn savepoints(
        &self,
        delete: Option<&str>,
    ) -> Result<Vec<SavepointInfo>, ClusterError> {
        let msg = match delete {
            Some(id) => ControlMsg::SavepointDelete { id: id.into() },
            None => ControlMsg::SavepointList,
        };
        match self.request(&msg).await? {
            ControlMsg::Savepoints(s) => Ok(s),
            ControlMsg::Error(e) => Err(ClusterError::Refused(e.message)),
            other => Err(ClusterError::Unexpected(
                crate::coordinator::variant_name(&other).into(),
            )),
        }
    }

    /// One job's status.
    pub async fn job(&self, id: &str) -> Result<JobInfo, ClusterError> {
        self.job_request(&ControlMsg::JobStatusRequest { id: id.into() })
            .await
    }

    /// Cancels a job.
    pub async fn cancel_job(&self, id: &str) -> Result<JobInfo, ClusterError> {
        self.job_request(&ControlMsg::JobCancel { id: id.into() })
            .await
    }

    /// Every job the coordinator knows.
    pub async fn jobs(&self) -> Result<Vec<JobInfo>, ClusterError> {
        match self.request(&ControlMsg::JobList).await? {
            ControlMsg::Jobs(j) => Ok(j),
            ControlMsg::Error(e) => Err(ClusterError::Refused(e.message)),
            other => Err(ClusterError::Unexpected(
                crate::coordinator::variant_name(&other).into(),
            )),
        }
    }

    async fn job_request(&self, msg: &ControlMsg) -> Result<JobInfo, ClusterError> {
        match self.request(msg).await? {
            ControlMsg::Job(j) => Ok(j),
            ControlMsg::Error(e) => Err(ClusterError::Refused(e.message)),
            other => Err(ClusterError::Unexpected(
                crate::coordinator::variant_name(&other).into(),
            )),
        }
    }

    /// Opens a push stream to a `source.client` instance of a running job on the worker
    /// at `addr` (from the view); send batches with [`PortStream::push`].
    pub async fn push_port(
        &self,
        addr: std::net::SocketAddr,
        port: ClientPort,
    ) -> Result<PortStream, ClusterError> {
        let (mut send, mut recv) = self.worker_stream(addr).await?;
        send.send(&StreamOpen::Push(port)).await?;
        match recv.recv::<DataFrame>().await? {
            Some(DataFrame::Credit(_)) => Ok(PortStream { send, recv }),
            _ => Err(ClusterError::Refused(
                "the job has no such client source here (ended, or not yet running)".into(),
            )),
        }
    }

    /// Opens a pull stream from a `sink.client` instance of a running job; read batches
    /// with [`PortStream::pull`].
    pub async fn pull_port(
        &self,
        addr: std::net::SocketAddr,
        port: ClientPort,
    ) -> Result<PortStream, ClusterError> {
        let (mut send, recv) = self.worker_stream(addr).await?;
        send.send(&StreamOpen::Pull(port)).await?;
        Ok(PortStream { send, recv })
    }

    async fn worker_stream(
        &self,
        addr: std::net::SocketAddr,
    ) -> Result<(FramedSend, FramedRecv), ClusterError> {
        let conn = self.endpoint.connect(addr).await?;
        crate::net::open_service_stream(
            &conn,
            PeerRole::Client,
            None,
            &self.cluster,
            ringflow_proto::STREAM_SERVICE,
        )
        .await
    }

    /// The node's own description of itself.
    pub async fn node_info(&self) -> Result<NodeInfo, ClusterError> {
        match self.request(&ControlMsg::NodeInfoRequest).await? {
            ControlMsg::NodeInfo(i) => Ok(i),
            ControlMsg::Error(e) => Err(ClusterError::Refused(e.message)),
            other => Err(ClusterError::Unexpected(
                crate::coordinator::variant_name(&other).into(),
            )),
        }
    }

    /// Closes the connection and waits for the endpoint to go idle.
    pub async fn close(self) {
        self.current().close(0, "bye");
        self.endpoint.shutdown().await;
    }
}
