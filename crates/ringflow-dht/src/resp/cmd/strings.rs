//! String commands: `GET`, `SET`, `MGET`, `MSET`, `STRLEN`.

use ringflow_resp::{Command, Reply};

use super::operands;
use crate::batch::{self, Reads, Router};
use crate::resp::reply::{
    bulk_or_null, count, dht_error, reply_too_large, syntax_error, wrong_args, BULK_OVERHEAD,
};

/// `GET`, answered with an error instead if the value's reply would exceed `cap` bytes.
pub(crate) async fn get<R: Router>(r: &R, cmd: Command, cap: usize) -> Reply {
    let reads = batch::read_shared(r, operands(cmd).collect()).await;
    match reads.into_each().pop() {
        Some(Ok(v)) => sized_bulk(v, cap),
        Some(Err(e)) => dht_error(&e),
        None => Reply::Null,
    }
}

/// A value's reply, or the reply-too-large error if it would exceed `cap` bytes.
pub(crate) fn sized_bulk(v: Option<Vec<u8>>, cap: usize) -> Reply {
    let size = bulk_size(v.as_deref());
    if size > cap {
        return reply_too_large("get", size, cap);
    }
    bulk_or_null(v)
}

/// The most bytes a value's bulk string reply takes.
fn bulk_size(v: Option<&[u8]>) -> usize {
    v.map_or(0, <[u8]>::len).saturating_add(BULK_OVERHEAD)
}

pub(crate) async fn set<R: Router>(r: &R, cmd: Command) -> Reply {
    if cmd.len() != 3 {
        // NX, XX, GET, EX, PX, EXAT, PXAT, KEEPTTL: no expiry, no atomic read-modify-write.
        return syntax_error();
    }
    let mut args = operands(cmd);
    let (Some(key), Some(value)) = (args.next(), args.next()) else {
        return wrong_args("set");
    };
    match batch::write(r, vec![(key, Some(value))]).await {
        Ok(_) => Reply::ok(),
        Err(e) => dht_error(&e),
    }
}

/// `MGET`: each distinct key read once; the reply's size is summed from the values read
/// (a key repeated counted each time) and checked against `cap` before it is built.
pub(crate) async fn mget<R: Router>(r: &R, cmd: Command, cap: usize) -> Reply {
    let reads = batch::read_shared(r, operands(cmd).collect()).await;
    if let Some(e) = reads.first_error() {
        return dht_error(e);
    }
    let size = mget_size(&reads);
    if size > cap {
        return reply_too_large("mget", size, cap);
    }
    Reply::Array(
        reads
            .into_each()
            .into_iter()
            .map(|v| bulk_or_null(v.ok().flatten()))
            .collect(),
    )
}

/// The most bytes `MGET`'s reply to `reads` takes.
fn mget_size(reads: &Reads) -> usize {
    reads.iter().fold(BULK_OVERHEAD, |n, v| {
        n.saturating_add(bulk_size(v.ok().flatten()))
    })
}

pub(crate) async fn mset<R: Router>(r: &R, cmd: Command) -> Reply {
    if cmd.len() % 2 == 0 {
        return wrong_args("mset");
    }
    let mut args = operands(cmd);
    let mut items = Vec::new();
    while let (Some(k), Some(v)) = (args.next(), args.next()) {
        items.push((k, Some(v)));
    }
    match batch::write(r, items).await {
        Ok(_) => Reply::ok(),
        Err(e) => dht_error(&e),
    }
}

pub(crate) async fn strlen<R: Router>(r: &R, cmd: Command) -> Reply {
    let reads = batch::read_shared(r, operands(cmd).collect()).await;
    let reply = match reads.iter().next() {
        Some(Ok(v)) => count(v.map_or(0, <[u8]>::len)),
        Some(Err(e)) => dht_error(e),
        None => count(0),
    };
    reply
}
