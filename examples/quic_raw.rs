//! Throughput of one QUIC stream between two ringflow endpoints on loopback: the
//! reference of the cross-node edge benchmark in `scripts/bench-stream.sh`.
//!
//! ```text
//! cargo run --release -p ringflow-examples --example quic-raw -- \
//!     [--bytes N] [--frame B] [--runs R] [--sample FILE] [--batch N] [--records N]
//! ```
//!
//! A temporary cluster CA and two node certificates are made with
//! `ringflow_net::certs`; a server endpoint is bound on 127.0.0.1:0 on a thread (and
//! tokio runtime) of its own, a client endpoint on another, like two workers. Then, `runs`
//! times each:
//!
//! - **raw**: the client writes `bytes` (default 1 GiB) as frames of `frame` bytes
//!   (default 64 KiB; a length prefix and a MessagePack `bin` body prepared once) on one
//!   unidirectional stream with `FramedSend::send_raw`; the server reads them with
//!   `FramedRecv::recv` (frame reassembly, the body skipped). Time: first write to the
//!   server seeing the end of the stream.
//! - **codec** (with `--sample`): `records` records (default 2,000,000), the lines of
//!   the sample file as `Value` strings, sent the way a cross-node edge sends them:
//!   batches of `batch` (default 512) encoded with the `Value` port codec, wrapped in
//!   `DataFrame::Batch` and written with `FramedSend::send`; the server receives each
//!   `DataFrame` and decodes the batch. No credits, actors or queues: the transport and
//!   codec floor of an edge.
//!
//! It prints one JSON object: bytes/s of the raw runs (median), the wire size of a
//! record of the sample as an edge frames it, the raw rate in such records per second,
//! and the codec records/s (median).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc as std_mpsc;
use std::time::Instant;

use ringflow::stream::wire::DataFrame;
use ringflow::stream::{AnyBatch, Item, PortType, Value};
use ringflow_net::{certs, Endpoint, NetConfig, Role, TlsIdentity, CLOSE_NORMAL};
use ringflow_proto::{encode_frame, DEFAULT_MAX_FRAME};

struct Args {
    bytes: u64,
    frame: usize,
    runs: usize,
    sample: Option<PathBuf>,
    batch: usize,
    records: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        bytes: 1 << 30,
        frame: 64 * 1024,
        runs: 3,
        sample: None,
        batch: 512,
        records: 2_000_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let num = |s: String| s.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--bytes" => a.bytes = num(value()?)?,
            "--frame" => a.frame = num(value()?)? as usize,
            "--runs" => a.runs = num(value()?)? as usize,
            "--sample" => a.sample = Some(PathBuf::from(value()?)),
            "--batch" => a.batch = num(value()?)? as usize,
            "--records" => a.records = num(value()?)?,
            _ => {
                return Err(format!(
                    "unknown argument {flag}\nusage: quic-raw [--bytes N] [--frame B] [--runs R] \
                     [--sample FILE] [--batch N] [--records N]"
                ))
            }
        }
    }
    if a.frame < 16 || a.frame > DEFAULT_MAX_FRAME || a.runs == 0 || a.batch == 0 {
        return Err("--frame must be 16..=16 MiB, --runs and --batch positive".into());
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let dir = std::env::temp_dir().join(format!("ringflow-quic-raw-{}", std::process::id()));
    let result = run(&args, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

fn list(v: &[f64]) -> String {
    let parts: Vec<String> = v.iter().map(|x| format!("{x:.4}")).collect();
    format!("[{}]", parts.join(", "))
}

fn run(a: &Args, dir: &Path) -> Result<(), String> {
    let e = |e: ringflow_net::NetError| e.to_string();
    certs::init_ca(dir, "quic-raw", true).map_err(e)?;
    certs::issue(dir, "server", Role::Node, &[]).map_err(e)?;
    certs::issue(dir, "client", Role::Node, &[]).map_err(e)?;
    let server_id = TlsIdentity::from_dir(dir, "server").map_err(e)?;
    let client_id = TlsIdentity::from_dir(dir, "client").map_err(e)?;

    // Raw: one frame, prepared once: u32 length prefix, then MessagePack bin32.
    let payload = a.frame - 4 - 5;
    let mut frame = Vec::with_capacity(a.frame);
    frame.extend_from_slice(&((payload + 5) as u32).to_be_bytes());
    frame.push(0xc6);
    frame.extend_from_slice(&(payload as u32).to_be_bytes());
    frame.extend((0..payload).map(|i| (i * 31 % 251) as u8));
    let frames = a.bytes.div_ceil(a.frame as u64);
    let total = frames * a.frame as u64;
    let mut raw_secs = Vec::new();
    for _ in 0..a.runs {
        let frame = frame.clone();
        let secs = transfer(&server_id, &client_id, Mode::Raw { frame, frames })?;
        raw_secs.push(secs);
    }
    let bps = total as f64 / median(&raw_secs);
    let mut out = format!(
        "{{\"raw\": {{\"bytes\": {total}, \"frame\": {}, \"secs\": {}, \"median_bytes_per_sec\": {bps:.0}}}",
        a.frame,
        list(&raw_secs)
    );

    if let Some(sample) = &a.sample {
        let lines = read_sample(sample, 100_000)?;
        if lines.is_empty() {
            return Err(format!("{}: no lines", sample.display()));
        }
        // Wire size of a record: a full batch of the sample's first lines, framed as
        // an edge frames it (DataFrame::Batch + length prefix).
        let port = PortType::of::<Value>();
        let batch: Vec<Item<Value>> = lines
            .iter()
            .cycle()
            .take(a.batch)
            .map(|l| Item {
                key: None,
                value: Value::String(l.clone()),
            })
            .collect();
        let bytes = port
            .encode(&AnyBatch::new(batch))
            .map_err(|e| e.to_string())?;
        let df = DataFrame::Batch {
            records: a.batch as u32,
            bytes,
        };
        let framed = encode_frame(&df, DEFAULT_MAX_FRAME).map_err(|e| e.to_string())?;
        let per_record = framed.len() as f64 / a.batch as f64;
        let avg_line = lines.iter().map(|l| l.len()).sum::<usize>() as f64 / lines.len() as f64;
        out.push_str(&format!(
            ", \"sample_line_bytes\": {avg_line:.1}, \"record_wire_bytes\": {per_record:.2}, \
             \"raw_equiv_records_per_sec\": {:.0}",
            bps / per_record
        ));
        let mut codec_secs = Vec::new();
        for _ in 0..a.runs {
            let secs = transfer(
                &server_id,
                &client_id,
                Mode::Codec {
                    lines: lines.clone(),
                    batch: a.batch,
                    records: a.records,
                },
            )?;
            codec_secs.push(secs);
        }
        out.push_str(&format!(
            ", \"codec\": {{\"records\": {}, \"batch\": {}, \"secs\": {}, \"median_records_per_sec\": {:.0}}}",
            a.records,
            a.batch,
            list(&codec_secs),
            a.records as f64 / median(&codec_secs)
        ));
    }
    out.push('}');
    println!("{out}");
    Ok(())
}

fn read_sample(path: &Path, max: usize) -> Result<Vec<String>, String> {
    let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(String::from_utf8_lossy(&text)
        .lines()
        .take(max)
        .map(str::to_owned)
        .collect())
}

enum Mode {
    Raw {
        frame: Vec<u8>,
        frames: u64,
    },
    Codec {
        lines: Vec<String>,
        batch: usize,
        records: u64,
    },
}

/// One transfer from a client thread to a server thread, each with its own endpoint and
/// single-threaded runtime; returns seconds from the first write to the server seeing
/// the end of the stream.
fn transfer(server_id: &TlsIdentity, client_id: &TlsIdentity, mode: Mode) -> Result<f64, String> {
    let (addr_tx, addr_rx) = std_mpsc::channel::<Result<SocketAddr, String>>();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<Result<(Instant, u64), String>>();
    let codec = matches!(mode, Mode::Codec { .. });
    let server_id = server_id.clone();
    let server = std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => return addr_tx.send(Err(e.to_string())).unwrap_or(()),
        };
        rt.block_on(async move {
            let ep = match Endpoint::bind(
                "127.0.0.1:0".parse().expect("address"),
                &server_id,
                &NetConfig::default(),
            ) {
                Ok(ep) => ep,
                Err(e) => return addr_tx.send(Err(e.to_string())).unwrap_or(()),
            };
            let _ = addr_tx.send(ep.local_addr().map_err(|e| e.to_string()));
            let (result, conn) = serve(&ep, codec).await;
            let _ = done_tx.send(result);
            if let Some(conn) = conn {
                // Let the client close the connection once it has the result.
                let _ =
                    tokio::time::timeout(std::time::Duration::from_secs(10), conn.closed()).await;
            }
            ep.shutdown().await;
        });
    });
    let addr = addr_rx
        .recv()
        .map_err(|_| "the server thread died".to_string())??;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let result = rt.block_on(async move {
        let ep = Endpoint::bind(
            "127.0.0.1:0".parse().expect("address"),
            client_id,
            &NetConfig::default(),
        )
        .map_err(|e| e.to_string())?;
        let conn = ep.connect(addr).await.map_err(|e| e.to_string())?;
        let mut send = conn.open_uni().await.map_err(|e| e.to_string())?;
        let start = Instant::now();
        let sent = match mode {
            Mode::Raw { frame, frames } => {
                for _ in 0..frames {
                    send.send_raw(&frame).await.map_err(|e| e.to_string())?;
                }
                frames
            }
            Mode::Codec {
                lines,
                batch,
                records,
            } => {
                let port = PortType::of::<Value>();
                let mut it = lines.iter().cycle();
                let mut left = records;
                while left > 0 {
                    let n = (batch as u64).min(left) as usize;
                    let b: Vec<Item<Value>> = it
                        .by_ref()
                        .take(n)
                        .map(|l| Item {
                            key: None,
                            value: Value::String(l.clone()),
                        })
                        .collect();
                    let bytes = port.encode(&AnyBatch::new(b)).map_err(|e| e.to_string())?;
                    let frame = DataFrame::Batch {
                        records: n as u32,
                        bytes,
                    };
                    send.send(&frame).await.map_err(|e| e.to_string())?;
                    left -= n as u64;
                }
                records
            }
        };
        send.finish().map_err(|e| e.to_string())?;
        let (end, got) = done_rx
            .await
            .map_err(|_| "the server stopped without a result".to_string())??;
        conn.close(CLOSE_NORMAL, "done");
        ep.shutdown().await;
        if got != sent {
            return Err(format!("sent {sent} units, the server received {got}"));
        }
        Ok(end.duration_since(start).as_secs_f64())
    });
    let _ = server.join();
    result
}

/// Accepts one connection and one stream, reads it to the end; returns when it ended
/// and how many frames (raw) or records (codec) came, and the connection.
async fn serve(
    ep: &Endpoint,
    codec: bool,
) -> (
    Result<(Instant, u64), String>,
    Option<ringflow_net::Connection>,
) {
    let incoming = match ep.accept().await {
        Some(i) => i,
        None => return (Err("endpoint closed".to_string()), None),
    };
    let conn = match incoming.accept().await {
        Ok(c) => c,
        Err(e) => return (Err(e.to_string()), None),
    };
    let result = read_stream(&conn, codec).await;
    (result, Some(conn))
}

async fn read_stream(
    conn: &ringflow_net::Connection,
    codec: bool,
) -> Result<(Instant, u64), String> {
    let mut recv = conn
        .accept_uni()
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "connection closed before a stream".to_string())?;
    let mut n = 0u64;
    if codec {
        let port = PortType::of::<Value>();
        while let Some(frame) = recv.recv::<DataFrame>().await.map_err(|e| e.to_string())? {
            if let DataFrame::Batch { bytes, .. } = frame {
                let b = port.decode(&bytes).map_err(|e| e.to_string())?;
                n += b.len() as u64;
                drop(b);
            }
        }
    } else {
        while recv
            .recv::<serde::de::IgnoredAny>()
            .await
            .map_err(|e| e.to_string())?
            .is_some()
        {
            n += 1;
        }
    }
    Ok((Instant::now(), n))
}
