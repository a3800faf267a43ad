//! Helpers for tests that talk to a worker's RESP port with the `redis` crate.

use std::net::SocketAddr;
use std::time::Duration;

/// A plain `redis` connection to `addr` (10 s to connect, 60 s per reply).
pub fn connect(addr: SocketAddr) -> redis::Connection {
    let client = redis::Client::open(format!("redis://{addr}/")).expect("redis client");
    let con = client
        .get_connection_with_timeout(Duration::from_secs(10))
        .expect("redis connection");
    con.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("read timeout");
    con
}

/// An error reply as the server wrote it: its code, a space, its detail.
pub fn error_text(e: &redis::RedisError) -> String {
    format!(
        "{} {}",
        e.code().unwrap_or_default(),
        e.detail().unwrap_or_default()
    )
}
