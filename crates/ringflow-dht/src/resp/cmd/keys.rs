//! Key commands: `DEL` / `UNLINK`, `EXISTS`.

use std::collections::HashSet;

use ringflow_resp::{Command, Reply};

use super::operands;
use crate::batch::{self, Router};
use crate::resp::reply::{count, dht_error};

/// `DEL` / `UNLINK`: how many of the (distinct) keys held a value.
pub(crate) async fn del<R: Router>(r: &R, cmd: Command) -> Reply {
    let mut seen = HashSet::new();
    let items: Vec<(Vec<u8>, Option<Vec<u8>>)> = operands(cmd)
        .filter(|k| seen.insert(k.clone()))
        .map(|k| (k, None))
        .collect();
    match batch::write(r, items).await {
        Ok(existed) => count(existed.into_iter().filter(|e| *e).count()),
        Err(e) => dht_error(&e),
    }
}

/// `EXISTS`: how many of the keys hold a value, a repeated key counted each time (and
/// read once).
pub(crate) async fn exists<R: Router>(r: &R, cmd: Command) -> Reply {
    let reads = batch::read_shared(r, operands(cmd).collect()).await;
    if let Some(e) = reads.first_error() {
        return dht_error(e);
    }
    count(reads.iter().filter(|v| matches!(v, Ok(Some(_)))).count())
}
