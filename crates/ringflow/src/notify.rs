//! Readiness and stop notifications to systemd (the `sd_notify` protocol).
//!
//! A unit with `Type=notify` sets `NOTIFY_SOCKET` to a Unix datagram socket (a path, or
//! an abstract name written with a leading `@`); the service sends newline-separated
//! `KEY=value` assignments to it. Without `NOTIFY_SOCKET` every call is a no-op, so the
//! same binary runs under systemd, in a container or from a shell. The protocol is one
//! datagram: a dependency would add nothing.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;

/// Sends `state` (e.g. `"READY=1\nSTATUS=joined"`) to the service manager. Returns
/// `Ok(false)` when not started by one (no `NOTIFY_SOCKET`).
pub fn notify(state: &str) -> std::io::Result<bool> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let sock = UnixDatagram::unbound()?;
    let bytes = path.as_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sock.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        sock.send_to(state.as_bytes(), &path)?;
    }
    Ok(true)
}

/// [`notify`], logging instead of failing: a service manager that went away must not
/// stop the node.
pub fn notify_or_warn(state: &str) {
    match notify(state) {
        Ok(true) => tracing::debug!(state, "notified the service manager"),
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, state, "cannot notify the service manager"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_one_datagram_to_the_socket_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        let sock = UnixDatagram::unbound().unwrap();
        // The same call notify makes, without touching this process's environment
        // (tests run in parallel).
        sock.send_to(b"READY=1", &path).unwrap();
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }
}
