//! Batched reads and writes, shared by the client and by workers routing for others:
//! keys grouped by partition, one request per partition, all in flight at once.

use std::collections::BTreeMap;
use std::future::Future;

use crate::wire::{DhtRequest, DhtResponse};
use crate::{DhtError, SlotMap};

/// Something that can send a partition's request to the partition's primary.
pub(crate) trait Router {
    /// The partition count of the view requests are routed with.
    fn partition_count(&self) -> Result<u32, DhtError>;

    /// Sends the request `make(epoch)` for `partition` to its primary, following redirects.
    fn send_to_primary(
        &self,
        partition: u32,
        make: impl Fn(u64) -> DhtRequest,
    ) -> impl Future<Output = Result<DhtResponse, DhtError>>;
}

/// Key indexes grouped by partition.
fn group<R: Router>(r: &R, keys: &[&[u8]]) -> Result<BTreeMap<u32, Vec<usize>>, DhtError> {
    let slots = SlotMap::new(r.partition_count()?)?;
    let mut groups: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, k) in keys.iter().enumerate() {
        groups
            .entry(slots.partition_of_key(k).0)
            .or_default()
            .push(i);
    }
    Ok(groups)
}

/// Writes (value `None` deletes); per item, whether a value existed before.
pub(crate) async fn write<R: Router>(
    r: &R,
    items: Vec<(Vec<u8>, Option<Vec<u8>>)>,
) -> Result<Vec<bool>, DhtError> {
    let keys: Vec<&[u8]> = items.iter().map(|(k, _)| k.as_slice()).collect();
    let groups = group(r, &keys)?;
    let mut existed = vec![false; items.len()];
    let requests = groups.into_iter().map(|(partition, idx)| {
        let batch: Vec<(Vec<u8>, Option<Vec<u8>>)> =
            idx.iter().map(|&i| items[i].clone()).collect();
        async move {
            let resp = r
                .send_to_primary(partition, |epoch| DhtRequest::Put {
                    epoch,
                    partition,
                    items: batch.clone(),
                })
                .await;
            (idx, resp)
        }
    });
    for (idx, resp) in crate::join::join_all(requests.collect()).await {
        match resp? {
            DhtResponse::Written { existed: e } if e.len() == idx.len() => {
                for (&i, x) in idx.iter().zip(e) {
                    existed[i] = x;
                }
            }
            other => {
                return Err(DhtError::Peer(format!(
                    "unexpected answer to a write: {other:?}"
                )))
            }
        }
    }
    Ok(existed)
}

/// Reads; values in the order of `keys`.
pub(crate) async fn read<R: Router>(
    r: &R,
    keys: Vec<Vec<u8>>,
) -> Result<Vec<Option<Vec<u8>>>, DhtError> {
    let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    let groups = group(r, &refs)?;
    let mut out = vec![None; keys.len()];
    let requests = groups.into_iter().map(|(partition, idx)| {
        let batch: Vec<Vec<u8>> = idx.iter().map(|&i| keys[i].clone()).collect();
        async move {
            let resp = r
                .send_to_primary(partition, |epoch| DhtRequest::Get {
                    epoch,
                    partition,
                    keys: batch.clone(),
                })
                .await;
            (idx, resp)
        }
    });
    for (idx, resp) in crate::join::join_all(requests.collect()).await {
        match resp? {
            DhtResponse::Values { values } if values.len() == idx.len() => {
                for (&i, v) in idx.iter().zip(values) {
                    out[i] = v;
                }
            }
            other => {
                return Err(DhtError::Peer(format!(
                    "unexpected answer to a read: {other:?}"
                )))
            }
        }
    }
    Ok(out)
}

/// What one routed attempt came to: `Ok` with the final answer (a refusal is final
/// too), or `Err` with the reason to try again with a newer view (a redirect, a
/// transient unavailability such as replicas catching up or a failover in progress, a
/// transport failure); the caller reports that reason only if it lasts.
pub(crate) fn settle(
    resp: Result<DhtResponse, DhtError>,
    partition: u32,
) -> Result<Result<DhtResponse, DhtError>, DhtError> {
    match resp {
        Ok(DhtResponse::Moved { .. }) => {
            Err(DhtError::Peer(format!("partition {partition} moved")))
        }
        Ok(DhtResponse::Unavailable { reason }) => Err(DhtError::Unavailable(reason)),
        Ok(DhtResponse::Unknown { reason }) => Err(DhtError::OutcomeUnknown(reason)),
        Ok(DhtResponse::Error { message }) => Ok(Err(DhtError::Refused(message))),
        Ok(r) => Ok(Ok(r)),
        Err(e) => Err(e),
    }
}

/// What the attempts of one routed request came to, for the final error: a write that
/// any attempt may have applied (a lost answer, a quorum missed after the primary stored
/// it) ends in [`DhtError::OutcomeUnknown`], never in a refusal that says nothing was
/// done, whatever later attempts answered.
#[derive(Debug, Default)]
pub(crate) struct Attempts {
    maybe_applied: bool,
}

impl Attempts {
    /// Notes one attempt of `req` that failed with `err` (to be retried).
    pub(crate) fn failed(&mut self, req: &DhtRequest, err: &DhtError) {
        let write = matches!(req, DhtRequest::Put { .. });
        // A transport failure may come after the request left: its outcome is unknown.
        let ambiguous = matches!(err, DhtError::OutcomeUnknown(_) | DhtError::Peer(_));
        self.maybe_applied |= write && ambiguous;
    }

    /// Whether an attempt so far may have applied the write.
    pub(crate) fn maybe_applied(&self) -> bool {
        self.maybe_applied
    }

    /// The error to report once no attempt is left.
    pub(crate) fn give_up(&self, last: DhtError) -> DhtError {
        match last {
            e @ DhtError::OutcomeUnknown(_) => e,
            e if self.maybe_applied => DhtError::OutcomeUnknown(e.to_string()),
            e => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put() -> DhtRequest {
        DhtRequest::Put {
            epoch: 1,
            partition: 0,
            items: vec![(b"k".to_vec(), Some(b"v".to_vec()))],
        }
    }

    #[test]
    fn a_write_that_may_have_been_applied_is_never_reported_as_refused() {
        let mut a = Attempts::default();
        a.failed(&put(), &DhtError::Peer("answer lost".into()));
        // A later attempt is refused: the first may still have been applied.
        let e = a.give_up(DhtError::Unavailable("below quorum".into()));
        assert!(matches!(e, DhtError::OutcomeUnknown(_)), "{e:?}");
    }

    #[test]
    fn refusals_and_reads_keep_their_own_error() {
        let mut a = Attempts::default();
        a.failed(&put(), &DhtError::Unavailable("below quorum".into()));
        let e = a.give_up(DhtError::Unavailable("below quorum".into()));
        assert!(matches!(e, DhtError::Unavailable(_)), "{e:?}");
        let mut r = Attempts::default();
        let get = DhtRequest::Get {
            epoch: 1,
            partition: 0,
            keys: vec![b"k".to_vec()],
        };
        r.failed(&get, &DhtError::Peer("lost".into()));
        assert!(matches!(
            r.give_up(DhtError::Peer("lost".into())),
            DhtError::Peer(_)
        ));
    }

    #[test]
    fn an_unknown_outcome_from_the_primary_is_retried_then_reported_as_unknown() {
        let r = settle(
            Ok(DhtResponse::Unknown {
                reason: "1 of 3".into(),
            }),
            0,
        );
        let retry = r.expect_err("retried");
        let mut a = Attempts::default();
        a.failed(&put(), &retry);
        assert!(matches!(a.give_up(retry), DhtError::OutcomeUnknown(_)));
    }
}
