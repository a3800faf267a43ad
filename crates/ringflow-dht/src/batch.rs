//! Batched reads and writes, shared by the client and by workers routing for others:
//! keys grouped by partition, one request per partition, all in flight at once.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;

use crate::wire::{DhtRequest, DhtResponse};
use crate::{DhtError, SlotMap};

/// Something that can send a partition's request to the partition's primary.
pub(crate) trait Router {
    /// The partition count of the view requests are routed with.
    fn partition_count(&self) -> Result<u32, DhtError>;

    /// Versions for a write of `n` items, unique to this router (see
    /// [`crate::wire::Stamps`]).
    fn propose(&self, n: usize) -> Vec<crate::Version>;

    /// Sends the request `make(epoch)` for `partition` to its primary, following redirects
    /// (each attempt's request passed through [`Attempts::prepare`]).
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

/// A copy of `e`, for the items of a batch that share one failure. Every variant is named
/// (no catch-all), so a new one must decide how it is copied.
pub(crate) fn copy_error(e: &DhtError) -> DhtError {
    match e {
        DhtError::Config(m) => DhtError::Config(m.clone()),
        DhtError::Io { context, source } => DhtError::Io {
            context: context.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        DhtError::Corrupt { path, reason } => DhtError::Corrupt {
            path: path.clone(),
            reason: reason.clone(),
        },
        DhtError::TooLarge { what, len, max } => DhtError::TooLarge {
            what,
            len: *len,
            max: *max,
        },
        DhtError::Peer(m) => DhtError::Peer(m.clone()),
        DhtError::Unavailable(m) => DhtError::Unavailable(m.clone()),
        DhtError::NoOwner(p) => DhtError::NoOwner(*p),
        DhtError::Refused(m) => DhtError::Refused(m.clone()),
        DhtError::OutcomeUnknown(m) => DhtError::OutcomeUnknown(m.clone()),
        DhtError::Closed(m) => DhtError::Closed(m.clone()),
    }
}

/// Writes (value `None` deletes), all or nothing for the caller: per item, whether a
/// value existed before, or the first failure of any partition.
pub(crate) async fn write<R: Router>(
    r: &R,
    items: Vec<(Vec<u8>, Option<Vec<u8>>)>,
) -> Result<Vec<bool>, DhtError> {
    write_each(r, items).await.into_iter().collect()
}

/// Writes (value `None` deletes), one request per partition, all in flight at once; per
/// item its own outcome: whether a value existed before, or the failure of its
/// partition's request (the other partitions' items are unaffected).
pub(crate) async fn write_each<R: Router>(
    r: &R,
    items: Vec<(Vec<u8>, Option<Vec<u8>>)>,
) -> Vec<Result<bool, DhtError>> {
    let keys: Vec<&[u8]> = items.iter().map(|(k, _)| k.as_slice()).collect();
    let groups = match group(r, &keys) {
        Ok(g) => g,
        Err(e) => return items.iter().map(|_| Err(copy_error(&e))).collect(),
    };
    let mut out: Vec<Result<bool, DhtError>> = items.iter().map(|_| Ok(false)).collect();
    let requests = groups.into_iter().map(|(partition, idx)| {
        let batch: Vec<(Vec<u8>, Option<Vec<u8>>)> =
            idx.iter().map(|&i| items[i].clone()).collect();
        // Chosen once: every attempt of this write carries the same versions.
        let versions = r.propose(batch.len());
        async move {
            let resp = r
                .send_to_primary(partition, |epoch| DhtRequest::Put {
                    epoch,
                    partition,
                    items: batch.clone(),
                    stamps: crate::wire::Stamps {
                        versions: versions.clone(),
                        retry: false,
                    },
                })
                .await;
            (idx, resp)
        }
    });
    for (idx, resp) in crate::join::join_all(requests.collect()).await {
        let failure = match resp {
            Ok(DhtResponse::Written { existed }) if existed.len() == idx.len() => {
                for (&i, x) in idx.iter().zip(existed) {
                    out[i] = Ok(x);
                }
                continue;
            }
            Ok(other) => DhtError::Peer(format!("unexpected answer to a write: {other:?}")),
            Err(e) => e,
        };
        for &i in &idx {
            out[i] = Err(copy_error(&failure));
        }
    }
    out
}

/// What a batched read came to, per key, without copying values: a key asked several
/// times is read once, and all its occurrences share that one value.
#[derive(Debug)]
pub(crate) struct Reads {
    /// Per key asked, in order: its index in `values`.
    slot: Vec<usize>,
    /// Per distinct key: its value (`None`: absent), or the index of its partition's
    /// failure in `failures`.
    values: Vec<Result<Option<Vec<u8>>, usize>>,
    /// One per failed partition request.
    failures: Vec<DhtError>,
}

impl Reads {
    /// Per key asked: its value or the failure of its partition, borrowed.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Result<Option<&[u8]>, &DhtError>> + '_ {
        self.slot.iter().map(|&s| match &self.values[s] {
            Ok(v) => Ok(v.as_deref()),
            Err(f) => Err(&self.failures[*f]),
        })
    }

    /// The first failure, if any key's partition failed.
    pub(crate) fn first_error(&self) -> Option<&DhtError> {
        self.failures.first()
    }

    /// Per key asked, its own outcome: each value moved to the last occurrence of its
    /// key and copied for the earlier ones (errors copied likewise).
    pub(crate) fn into_each(self) -> Vec<Result<Option<Vec<u8>>, DhtError>> {
        let Reads {
            slot,
            mut values,
            failures,
        } = self;
        let mut left = vec![0usize; values.len()];
        for &s in &slot {
            left[s] += 1;
        }
        slot.into_iter()
            .map(|s| {
                left[s] -= 1;
                match &mut values[s] {
                    Ok(v) if left[s] == 0 => Ok(v.take()),
                    Ok(v) => Ok(v.clone()),
                    Err(f) => Err(copy_error(&failures[*f])),
                }
            })
            .collect()
    }
}

/// Reads, all or nothing for the caller: values in the order of `keys`, or the first
/// failure of any partition.
pub(crate) async fn read<R: Router>(
    r: &R,
    keys: Vec<Vec<u8>>,
) -> Result<Vec<Option<Vec<u8>>>, DhtError> {
    read_each(r, keys).await.into_iter().collect()
}

/// Reads; per key, in the order of `keys`, its own outcome (a failed partition fails
/// only its own keys).
pub(crate) async fn read_each<R: Router>(
    r: &R,
    keys: Vec<Vec<u8>>,
) -> Vec<Result<Option<Vec<u8>>, DhtError>> {
    read_shared(r, keys).await.into_each()
}

/// Reads each distinct key of `keys` once, one request per partition, all in flight at
/// once; see [`Reads`].
pub(crate) async fn read_shared<R: Router>(r: &R, keys: Vec<Vec<u8>>) -> Reads {
    let mut seen: HashMap<&[u8], usize> = HashMap::new();
    let mut distinct: Vec<&[u8]> = Vec::new();
    let mut slot = Vec::with_capacity(keys.len());
    for k in &keys {
        let next = distinct.len();
        let s = *seen.entry(k.as_slice()).or_insert(next);
        if s == next {
            distinct.push(k);
        }
        slot.push(s);
    }
    let mut reads = Reads {
        slot,
        values: distinct.iter().map(|_| Ok(None)).collect(),
        failures: Vec::new(),
    };
    let groups = match group(r, &distinct) {
        Ok(g) => g,
        Err(e) => {
            reads.failures.push(e);
            reads.values.iter_mut().for_each(|v| *v = Err(0));
            return reads;
        }
    };
    let requests = groups.into_iter().map(|(partition, idx)| {
        let batch: Vec<Vec<u8>> = idx.iter().map(|&i| distinct[i].to_vec()).collect();
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
        let failure = match resp {
            Ok(DhtResponse::Values { values }) if values.len() == idx.len() => {
                for (&i, v) in idx.iter().zip(values) {
                    reads.values[i] = Ok(v);
                }
                continue;
            }
            Ok(other) => DhtError::Peer(format!("unexpected answer to a read: {other:?}")),
            Err(e) => e,
        };
        let f = reads.failures.len();
        reads.failures.push(failure);
        for &i in &idx {
            reads.values[i] = Err(f);
        }
    }
    reads
}

/// The attempts of one routed request: what each came to, and what the next must say.
///
/// A write that any attempt may have applied (a lost answer, a quorum missed after the
/// primary stored it) is retried with the same versions, marked as a retry (see
/// [`crate::wire::Stamps`]), and ends in [`DhtError::OutcomeUnknown`], never in a refusal
/// that says nothing was done, whatever later attempts answered.
#[derive(Debug, Default)]
pub(crate) struct Attempts {
    maybe_applied: bool,
    /// The versions an earlier attempt was last stamped with, as its primary told.
    stamped: Option<Vec<crate::Version>>,
}

impl Attempts {
    /// The request for the next attempt, `req` as made for the current view: a write
    /// that an earlier attempt may have applied becomes a retry with that attempt's
    /// versions.
    pub(crate) fn prepare(&self, mut req: DhtRequest) -> DhtRequest {
        if let DhtRequest::Put { stamps, .. } = &mut req {
            if let Some(v) = &self.stamped {
                stamps.versions = v.clone();
            }
            // Without versions the primary can only stamp it anew (a legacy caller).
            stamps.retry = self.maybe_applied && !stamps.versions.is_empty();
        }
        req
    }

    /// What the attempt `req` came to: `Ok` with the final answer (a refusal is final
    /// too), or `Err` with the reason to try again with a newer view (a redirect, a
    /// transient unavailability such as replicas catching up or a failover in progress, an
    /// unknown outcome, a transport failure); the caller reports that reason only if it
    /// lasts.
    pub(crate) fn settle(
        &mut self,
        req: &DhtRequest,
        resp: Result<DhtResponse, DhtError>,
        partition: u32,
    ) -> Result<Result<DhtResponse, DhtError>, DhtError> {
        let write = matches!(req, DhtRequest::Put { .. });
        match resp {
            // Answered before anything was stored.
            Ok(DhtResponse::Moved { .. }) => {
                Err(DhtError::Peer(format!("partition {partition} moved")))
            }
            Ok(DhtResponse::Unavailable { reason }) => Err(DhtError::Unavailable(reason)),
            Ok(DhtResponse::Unknown { reason, stamped }) => {
                if write {
                    self.maybe_applied = true;
                    if !stamped.is_empty() {
                        self.stamped = Some(stamped);
                    }
                }
                Err(DhtError::OutcomeUnknown(reason))
            }
            Ok(DhtResponse::Error { message }) => Ok(Err(DhtError::Refused(message))),
            Ok(r) => Ok(Ok(r)),
            Err(e) => {
                // A transport failure may come after the request left: its outcome is
                // unknown. (Nothing was sent without an address or an owner.)
                let sent = !matches!(e, DhtError::Unavailable(_) | DhtError::NoOwner(_));
                self.maybe_applied |= write && sent;
                Err(e)
            }
        }
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
    use crate::wire::Stamps;
    use crate::Version;

    fn v(ts: u64) -> Version {
        Version { ts, node: 1 }
    }

    fn put() -> DhtRequest {
        DhtRequest::Put {
            epoch: 1,
            partition: 0,
            items: vec![(b"k".to_vec(), Some(b"v".to_vec()))],
            stamps: Stamps {
                versions: vec![v(10)],
                retry: false,
            },
        }
    }

    fn stamps(req: &DhtRequest) -> &Stamps {
        match req {
            DhtRequest::Put { stamps, .. } => stamps,
            other => panic!("not a write: {other:?}"),
        }
    }

    #[test]
    fn a_write_that_may_have_been_applied_is_never_reported_as_refused() {
        let mut a = Attempts::default();
        let r = a.settle(&put(), Err(DhtError::Peer("answer lost".into())), 0);
        assert!(r.is_err(), "retried");
        // A later attempt is refused: the first may still have been applied.
        let e = a.give_up(DhtError::Unavailable("below quorum".into()));
        assert!(matches!(e, DhtError::OutcomeUnknown(_)), "{e:?}");
    }

    #[test]
    fn refusals_redirects_and_reads_keep_their_own_error() {
        let mut a = Attempts::default();
        let refused = Ok(DhtResponse::Unavailable {
            reason: "below quorum".into(),
        });
        assert!(a.settle(&put(), refused, 0).is_err());
        let moved = Ok(DhtResponse::Moved {
            partition: 0,
            epoch: 2,
            primary: None,
        });
        assert!(a.settle(&put(), moved, 0).is_err());
        let e = a.give_up(DhtError::Unavailable("below quorum".into()));
        assert!(matches!(e, DhtError::Unavailable(_)), "{e:?}");
        // Nothing was applied: the next attempt is a first attempt, free to stamp anew.
        assert!(!stamps(&a.prepare(put())).retry);
        let mut r = Attempts::default();
        let get = DhtRequest::Get {
            epoch: 1,
            partition: 0,
            keys: vec![b"k".to_vec()],
        };
        assert!(r
            .settle(&get, Err(DhtError::Peer("lost".into())), 0)
            .is_err());
        assert!(matches!(
            r.give_up(DhtError::Peer("lost".into())),
            DhtError::Peer(_)
        ));
    }

    #[test]
    fn an_unknown_outcome_is_retried_with_the_versions_it_was_stamped_with() {
        let mut a = Attempts::default();
        let unknown = Ok(DhtResponse::Unknown {
            reason: "1 of 3".into(),
            stamped: vec![v(42)],
        });
        let retry = a.settle(&put(), unknown, 0).expect_err("retried");
        let next = a.prepare(put());
        assert_eq!(
            stamps(&next),
            &Stamps {
                versions: vec![v(42)],
                retry: true
            }
        );
        assert!(matches!(a.give_up(retry), DhtError::OutcomeUnknown(_)));
    }

    #[test]
    fn a_lost_answer_is_retried_with_the_proposed_versions() {
        let mut a = Attempts::default();
        assert!(!stamps(&a.prepare(put())).retry, "a first attempt");
        let _ = a.settle(&put(), Err(DhtError::Peer("connection lost".into())), 0);
        let next = a.prepare(put());
        assert_eq!(
            stamps(&next),
            &Stamps {
                versions: vec![v(10)],
                retry: true
            }
        );
    }

    #[test]
    fn nothing_sent_is_not_an_applied_attempt() {
        let mut a = Attempts::default();
        let _ = a.settle(&put(), Err(DhtError::Unavailable("no address".into())), 0);
        let _ = a.settle(&put(), Err(DhtError::NoOwner(0)), 0);
        assert!(!stamps(&a.prepare(put())).retry);
    }
}
