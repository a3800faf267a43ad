//! `ringflow forget-worker ID --accept-data-loss`: an operator declares that a dead worker
//! will not come back, so the partitions the coordinator kept for it (below a quorum by
//! failures, refusing reads and writes) are planned again from their survivors.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::cli::status::{connect, resolve_client};
use crate::cli::ClientArgs;
use crate::WorkerId;

#[derive(Debug, Args)]
pub struct ForgetArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The dead worker's id.
    pub id: String,
    /// Required: the survivors may lack writes that only the lost workers held, and those
    /// writes are then gone for good.
    #[arg(long)]
    pub accept_data_loss: bool,
}

pub fn run(a: ForgetArgs) -> anyhow::Result<ExitCode> {
    if !a.accept_data_loss {
        anyhow::bail!(
            "forgetting {} re-plans its partitions from the survivors, which may lack writes \
             only the lost workers held: pass --accept-data-loss if it is gone for good",
            a.id
        );
    }
    let p = resolve_client(&a.client)?;
    actix_rt::System::new().block_on(async move {
        let client = connect(&p, &p.cluster).await?;
        let status = client
            .forget_worker(&WorkerId(a.id.clone()))
            .await
            .with_context(|| format!("forgetting {}", a.id));
        client.close().await;
        let status = status?;
        println!(
            "{} forgotten; epoch {}, {} partition(s) without an owner, {} under-replicated",
            a.id,
            status.epoch,
            status.unowned.len(),
            status.under_replicated
        );
        Ok(ExitCode::SUCCESS)
    })
}
