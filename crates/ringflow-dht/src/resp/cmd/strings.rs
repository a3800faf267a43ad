//! String commands: `GET`, `SET`, `MGET`, `MSET`, `STRLEN`.

use ringflow_resp::{Command, Reply};

use super::operands;
use crate::resp::reply::{bulk_or_null, count, dht_error, syntax_error, wrong_args};
use crate::DhtService;

pub(crate) async fn get(service: &DhtService, cmd: Command) -> Reply {
    match service.route_get(operands(cmd).collect()).await {
        Ok(mut values) => bulk_or_null(values.pop().flatten()),
        Err(e) => dht_error(&e),
    }
}

pub(crate) async fn set(service: &DhtService, cmd: Command) -> Reply {
    if cmd.len() != 3 {
        // NX, XX, GET, EX, PX, EXAT, PXAT, KEEPTTL: no expiry, no atomic read-modify-write.
        return syntax_error();
    }
    let mut args = operands(cmd);
    let (Some(key), Some(value)) = (args.next(), args.next()) else {
        return wrong_args("set");
    };
    match service.route_put(vec![(key, Some(value))]).await {
        Ok(_) => Reply::ok(),
        Err(e) => dht_error(&e),
    }
}

pub(crate) async fn mget(service: &DhtService, cmd: Command) -> Reply {
    match service.route_get(operands(cmd).collect()).await {
        Ok(values) => Reply::Array(values.into_iter().map(bulk_or_null).collect()),
        Err(e) => dht_error(&e),
    }
}

pub(crate) async fn mset(service: &DhtService, cmd: Command) -> Reply {
    if cmd.len() % 2 == 0 {
        return wrong_args("mset");
    }
    let mut args = operands(cmd);
    let mut items = Vec::new();
    while let (Some(k), Some(v)) = (args.next(), args.next()) {
        items.push((k, Some(v)));
    }
    match service.route_put(items).await {
        Ok(_) => Reply::ok(),
        Err(e) => dht_error(&e),
    }
}

pub(crate) async fn strlen(service: &DhtService, cmd: Command) -> Reply {
    match service.route_get(operands(cmd).collect()).await {
        Ok(mut values) => count(values.pop().flatten().map_or(0, |v| v.len())),
        Err(e) => dht_error(&e),
    }
}
