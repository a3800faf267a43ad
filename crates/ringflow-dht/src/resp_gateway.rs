//! The Redis-compatible (RESP) gateway of a worker's DHT.
//!
//! (Being written.) Accepts TCP clients, parses commands with `ringflow-resp`, and runs
//! them through [`DhtService::route_put`] / [`DhtService::route_get`].

use std::rc::Rc;

use crate::DhtService;

/// Serves RESP clients on `listener` until the worker's runtime stops.
pub async fn serve(listener: tokio::net::TcpListener, service: Rc<DhtService>) {
    let _ = (listener, service);
}
