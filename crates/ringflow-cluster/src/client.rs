//! A client of the cluster: the CLI and applications use it to query nodes.

use std::time::Duration;

use ringflow_net::{Connection, Endpoint, FramedRecv, FramedSend, NetConfig, TlsIdentity};
use ringflow_proto::{ClusterStatus, ClusterView, ControlMsg, NodeInfo, PeerRole};

use crate::runtime::open_stream;
use crate::worker::session_resolve;
use crate::ClusterError;

/// A connection to one node of the cluster (usually the coordinator).
pub struct ClusterClient {
    endpoint: Endpoint,
    conn: Connection,
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
            conn,
            cluster: cluster.to_string(),
            timeout: Duration::from_secs(10),
        })
    }

    async fn request(&self, msg: &ControlMsg) -> Result<ControlMsg, ClusterError> {
        let fut = async {
            let (mut send, mut recv) =
                open_stream(&self.conn, PeerRole::Client, None, &self.cluster).await?;
            send.send(msg).await?;
            let reply = recv
                .recv::<ControlMsg>()
                .await?
                .ok_or_else(|| ClusterError::Unexpected("stream closed without a reply".into()))?;
            let _ = send.send(&ControlMsg::Bye).await;
            let _ = send.finish();
            Ok(reply)
        };
        tokio::time::timeout(self.timeout, fut).await.map_err(|_| {
            ClusterError::Timeout(format!("no reply within {} s", self.timeout.as_secs()))
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
        crate::runtime::open_service_stream(
            &self.conn,
            PeerRole::Client,
            None,
            &self.cluster,
            service,
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
        self.conn.close(0, "bye");
        self.endpoint.shutdown().await;
    }
}
