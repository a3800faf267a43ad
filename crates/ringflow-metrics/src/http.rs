//! A minimal HTTP/1.1 endpoint for Prometheus scrapes, on tokio.
//!
//! `GET /metrics` (or `HEAD`) answers `200` with the registry in the text format;
//! another method on `/metrics` answers `405`, any other path `404`, a request that does
//! not parse `400`, a request head above the size limit `431`. Every response closes the
//! connection. A client gets [`ServeOptions::timeout`] for its whole exchange and is then
//! dropped; at most [`ServeOptions::max_connections`] are served at once (more are
//! closed at once), so slow or hostile clients cannot pile up.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::text::CONTENT_TYPE;
use crate::Registry;

/// Limits of the endpoint.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Largest request head (request line and headers), in bytes.
    pub max_request_bytes: usize,
    /// Time a client has to send its request and read the response.
    pub timeout: Duration,
    /// Connections served at the same time.
    pub max_connections: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            max_request_bytes: 8 * 1024,
            timeout: Duration::from_secs(5),
            max_connections: 32,
        }
    }
}

/// Binds `addr` (without blocking: the socket is non-blocking and registered with the
/// current tokio runtime, which must be running) and returns the listener and the bound
/// address (port 0 picks a free port).
pub fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let std_listener = std::net::TcpListener::bind(addr)?;
    std_listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(std_listener)?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// Serves `registry` on `listener` until `shutdown` completes. Never blocks the thread:
/// connections are handled by tasks of the current runtime, and dropped (closed) when
/// this returns.
pub async fn serve(
    listener: TcpListener,
    registry: &'static Registry,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()>,
) {
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    if conns.len() >= opts.max_connections {
                        tracing::debug!(%peer, "metrics endpoint busy: connection dropped");
                        continue;
                    }
                    conns.spawn(handle(stream, registry, opts.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: do not spin.
                    tracing::warn!(error = %e, "metrics endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    conns.shutdown().await;
}

/// How reading a request head ended.
enum Head {
    /// Up to and including the blank line.
    Complete(Vec<u8>),
    /// Over the size limit.
    TooLarge,
    /// The client closed before a complete head.
    Incomplete,
}

fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

async fn read_head(stream: &mut TcpStream, max: usize) -> std::io::Result<Head> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(Head::Incomplete);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = head_end(&buf) {
            buf.truncate(end);
            return Ok(Head::Complete(buf));
        }
        if buf.len() >= max {
            return Ok(Head::TooLarge);
        }
    }
}

/// A response: status, extra headers, body, and whether the body is sent (not for HEAD).
struct Response {
    status: &'static str,
    content_type: &'static str,
    extra: &'static str,
    body: String,
    send_body: bool,
}

impl Response {
    fn text(status: &'static str, body: &str) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            extra: "",
            body: format!("{body}\n"),
            send_body: true,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n",
            self.status,
            self.content_type,
            self.body.len(),
            self.extra
        )
        .into_bytes();
        if self.send_body {
            out.extend_from_slice(self.body.as_bytes());
        }
        out
    }
}

/// Answers one parsed request head.
fn route(head: &[u8], registry: &Registry) -> Response {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Ok(line) = std::str::from_utf8(line) else {
        return Response::text("400 Bad Request", "bad request");
    };
    let parts: Vec<&str> = line.split(' ').collect();
    let [method, target, version] = parts[..] else {
        return Response::text("400 Bad Request", "bad request");
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() || !target.starts_with('/') {
        return Response::text("400 Bad Request", "bad request");
    }
    let path = target.split('?').next().unwrap_or_default();
    if path != "/metrics" {
        return Response::text("404 Not Found", "not found: metrics are at /metrics");
    }
    match method {
        "GET" | "HEAD" => Response {
            status: "200 OK",
            content_type: CONTENT_TYPE,
            extra: "",
            body: registry.render(),
            send_body: method == "GET",
        },
        _ => Response {
            extra: "Allow: GET, HEAD\r\n",
            ..Response::text("405 Method Not Allowed", "method not allowed")
        },
    }
}

async fn handle(mut stream: TcpStream, registry: &'static Registry, opts: ServeOptions) {
    let deadline = Instant::now() + opts.timeout;
    let response =
        match tokio::time::timeout_at(deadline, read_head(&mut stream, opts.max_request_bytes))
            .await
        {
            Ok(Ok(Head::Complete(head))) => route(&head, registry),
            Ok(Ok(Head::TooLarge)) => Response::text(
                "431 Request Header Fields Too Large",
                "request header too large",
            ),
            Ok(Ok(Head::Incomplete)) => Response::text("400 Bad Request", "incomplete request"),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "metrics endpoint: read failed");
                return;
            }
            Err(_) => {
                tracing::debug!("metrics endpoint: client too slow, dropped");
                return;
            }
        };
    let _ = tokio::time::timeout_at(deadline, async {
        stream.write_all(&response.bytes()).await?;
        stream.shutdown().await
    })
    .await;
    // Read (and discard) what the client may still send, briefly, so that closing with
    // unread data does not reset the connection before the client has read the answer.
    let linger = deadline.min(Instant::now() + Duration::from_millis(500));
    let _ = tokio::time::timeout_at(linger, async {
        let mut sink = [0u8; 1024];
        let mut left: usize = 64 * 1024;
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> &'static Registry {
        static R: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
        R.get_or_init(|| {
            let r = Registry::new();
            r.counter("test_hits_total", "Hits.", ["k"])
                .with(["v"])
                .inc_by(7);
            r
        })
    }

    async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(request).await.expect("write");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    fn start(opts: ServeOptions) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let (listener, addr) = bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, registry(), opts, async move {
            let _ = rx.await;
        }));
        (addr, tx)
    }

    #[tokio::test]
    async fn serves_metrics_and_refuses_the_rest() {
        let (addr, stop) = start(ServeOptions::default());
        let ok = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(
            ok.contains("Content-Type: text/plain; version=0.0.4"),
            "{ok}"
        );
        assert!(ok.contains("Connection: close"), "{ok}");
        assert!(ok.ends_with("test_hits_total{k=\"v\"} 7\n"), "{ok}");

        let query = exchange(addr, b"GET /metrics?x=1 HTTP/1.0\n\n").await;
        assert!(query.starts_with("HTTP/1.1 200 OK\r\n"), "{query}");

        let head = exchange(addr, b"HEAD /metrics HTTP/1.1\r\n\r\n").await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.ends_with("\r\n\r\n"), "HEAD has no body: {head}");

        let nf = exchange(addr, b"GET / HTTP/1.1\r\n\r\n").await;
        assert!(nf.starts_with("HTTP/1.1 404 Not Found\r\n"), "{nf}");

        let post = exchange(
            addr,
            b"POST /metrics HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi",
        )
        .await;
        assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
        assert!(post.contains("Allow: GET, HEAD\r\n"), "{post}");

        let bad = exchange(addr, b"\x00\xffgarbage\r\n\r\n").await;
        assert!(bad.starts_with("HTTP/1.1 400 "), "{bad}");

        let big = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
        let big = exchange(addr, big.as_bytes()).await;
        assert!(big.starts_with("HTTP/1.1 431 "), "{big}");

        // Still serving after all that.
        let again = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n").await;
        assert!(again.starts_with("HTTP/1.1 200 OK\r\n"), "{again}");
        let _ = stop.send(());
    }

    #[tokio::test]
    async fn slow_clients_are_dropped_and_do_not_block_others() {
        let (addr, stop) = start(ServeOptions {
            timeout: Duration::from_millis(300),
            ..ServeOptions::default()
        });
        // A client that sends half a request and waits.
        let mut slow = TcpStream::connect(addr).await.expect("connect");
        slow.write_all(b"GET /met").await.expect("write");
        // Others are served meanwhile.
        let ok = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        // The slow one is closed after the timeout, without an answer.
        let mut out = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut out)).await;
        assert!(read.is_ok(), "slow client was not dropped");
        assert!(out.is_empty());
        let _ = stop.send(());
    }

    #[tokio::test]
    async fn stops_on_shutdown() {
        let (listener, addr) = bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(
            listener,
            registry(),
            ServeOptions::default(),
            async {
                let _ = rx.await;
            },
        ));
        let _ = tx.send(());
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("serve returned")
            .expect("no panic");
        assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
    }
}
