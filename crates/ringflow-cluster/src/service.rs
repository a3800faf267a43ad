//! Data-plane services hosted by workers (the DHT, stream exchanges, ...).
//!
//! A service is built on the worker's network Arbiter when the worker starts. Streams whose
//! hello names the service are handed to it after the handshake; it follows the worker's
//! views through a watch channel and reaches peers through the worker's own QUIC endpoint.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use ringflow_net::{Connection, Endpoint, FramedRecv, FramedSend};
use ringflow_proto::{ClusterView, Hello};
use ringflow_ring::WorkerId;
use tokio::sync::watch;

use crate::ClusterError;

/// A boxed, single-threaded future.
pub type LocalFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// What a service gets when the worker builds it.
pub struct ServiceContext {
    /// This worker's id.
    pub worker_id: WorkerId,
    /// The cluster name (for hellos on outbound streams).
    pub cluster: String,
    /// The worker's QUIC endpoint, for connections to peers.
    pub endpoint: Endpoint,
    /// The view the worker acts on (`None` until it has joined), updated on every change.
    pub views: watch::Receiver<Option<Arc<ClusterView>>>,
    /// The worker's data directory.
    pub data_dir: PathBuf,
    /// The worker's lease from the coordinator: a primary acts only while it holds.
    pub lease: crate::Lease,
}

/// A data-plane service.
pub trait WorkerService: 'static {
    /// The name that hellos use to reach it.
    fn name(&self) -> &str;

    /// Serves one handshaken stream until it ends.
    fn serve(
        self: Rc<Self>,
        conn: Connection,
        hello: Hello,
        send: FramedSend,
        recv: FramedRecv,
    ) -> LocalFuture<Result<(), ClusterError>>;

    /// Addresses this service listens on for clients, by name (e.g. `"resp"`), announced
    /// to the coordinator and published in views.
    fn advertised(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// Called once when the worker stops, after it has left the cluster and stopped
    /// accepting streams: flush and close.
    fn shutdown(self: Rc<Self>) -> LocalFuture<()> {
        Box::pin(async {})
    }
}

/// Builds a service on the worker's network Arbiter.
pub type ServiceFactory =
    Box<dyn FnOnce(ServiceContext) -> Result<Rc<dyn WorkerService>, ClusterError> + Send>;
