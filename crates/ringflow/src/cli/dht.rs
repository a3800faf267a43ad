//! `ringflow put | get | del`: the DHT from the command line.
//!
//! Exit status: 0 success; 1 `get` of a missing key (prints nothing on stdout); 2 the
//! cluster could not do it (no quorum, unreachable), with the reason on stderr.

use std::io::Write;
use std::process::ExitCode;

use crate::TlsIdentity;
use ringflow_dht::DhtClient;

use super::status::resolve_client;
use crate::cli::ClientArgs;
use clap::Args;

#[derive(Debug, Args)]
pub struct PutArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
}

#[derive(Debug, Args)]
pub struct KeyArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The key.
    pub key: String,
}

fn with_client<F, Fut>(args: &ClientArgs, f: F) -> anyhow::Result<ExitCode>
where
    F: FnOnce(DhtClient) -> Fut,
    Fut: std::future::Future<Output = ExitCode>,
{
    let p = resolve_client(args)?;
    actix_rt::System::new().block_on(async move {
        let identity = TlsIdentity::from_dir(&p.certs_dir, &p.cert_name)?;
        let client = match DhtClient::connect(&p.cluster, &identity, &p.cluster_name).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: cannot reach the cluster at {}: {e}", p.cluster);
                return Ok(ExitCode::from(2));
            }
        };
        Ok(f(client).await)
    })
}

fn failed(e: ringflow_dht::DhtError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}

pub fn put(a: PutArgs) -> anyhow::Result<ExitCode> {
    with_client(&a.client, |c| async move {
        let r = c.put(a.key.as_bytes(), a.value.as_bytes()).await;
        c.close().await;
        match r {
            Ok(()) => {
                println!("OK");
                ExitCode::SUCCESS
            }
            Err(e) => failed(e),
        }
    })
}

pub fn get(a: KeyArgs) -> anyhow::Result<ExitCode> {
    with_client(&a.client, |c| async move {
        let r = c.get(a.key.as_bytes()).await;
        c.close().await;
        match r {
            Ok(Some(v)) => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&v);
                let _ = out.write_all(b"\n");
                ExitCode::SUCCESS
            }
            Ok(None) => ExitCode::from(1),
            Err(e) => failed(e),
        }
    })
}

pub fn del(a: KeyArgs) -> anyhow::Result<ExitCode> {
    with_client(&a.client, |c| async move {
        let r = c.delete(a.key.as_bytes()).await;
        c.close().await;
        match r {
            Ok(existed) => {
                println!("{}", u8::from(existed));
                ExitCode::SUCCESS
            }
            Err(e) => failed(e),
        }
    })
}
