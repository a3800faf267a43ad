//! Key commands: `DEL` / `UNLINK`, `EXISTS`.

use std::collections::HashSet;

use ringflow_resp::{Command, Reply};

use super::operands;
use crate::resp::reply::{count, dht_error};
use crate::DhtService;

/// `DEL` / `UNLINK`: how many of the (distinct) keys held a value.
pub(crate) async fn del(service: &DhtService, cmd: Command) -> Reply {
    let mut seen = HashSet::new();
    let items: Vec<(Vec<u8>, Option<Vec<u8>>)> = operands(cmd)
        .filter(|k| seen.insert(k.clone()))
        .map(|k| (k, None))
        .collect();
    match service.route_put(items).await {
        Ok(existed) => count(existed.into_iter().filter(|e| *e).count()),
        Err(e) => dht_error(&e),
    }
}

/// `EXISTS`: how many of the keys hold a value, a repeated key counted each time.
pub(crate) async fn exists(service: &DhtService, cmd: Command) -> Reply {
    match service.route_get(operands(cmd).collect()).await {
        Ok(values) => count(values.iter().filter(|v| v.is_some()).count()),
        Err(e) => dht_error(&e),
    }
}
