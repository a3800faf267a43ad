//! The worker's lease: the coordinator's word that this worker is a live member, valid
//! until a deadline measured on the worker's own monotonic clock.
//!
//! Every `HeartbeatAck` (and the `Welcome`) grants a lease of `lease_ms` counted from the
//! moment the worker *sent* the heartbeat it answers, for the epoch the coordinator was at.
//! The coordinator declares a member dead only `failure_timeout_ms` after it last *received*
//! a heartbeat, which came after it was sent; the lease is shorter than that (half of it by
//! default). So a worker cut off from the coordinator sees its lease run out before the
//! coordinator can have given its partitions to a successor, and a DHT primary that checks
//! [`Lease::check`] before acknowledging stops serving first: two primaries of one
//! partition never both acknowledge writes.
//!
//! Sans-IO: every call takes `now`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A lease the coordinator granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The coordinator's epoch when it granted the lease.
    pub epoch: u64,
    /// Until when (on this worker's monotonic clock) the lease holds.
    pub until: Instant,
}

/// Why a lease does not let this worker act as a primary now.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LeaseRefusal {
    /// The coordinator has not granted a lease since this worker started (or since it was
    /// told it is no longer a member).
    #[error("this worker holds no lease from the coordinator (not joined, or no longer a member)")]
    None,
    /// The last lease ran out: the coordinator has not answered a heartbeat in time.
    #[error(
        "this worker's lease from the coordinator expired {} ms ago: it may be cut off from the coordinator, and a successor may take over its partitions",
        .ago.as_millis()
    )]
    Expired {
        /// How long ago.
        ago: Duration,
    },
    /// The coordinator is at a newer epoch than the view this worker acts on.
    #[error("the coordinator is at epoch {lease_epoch} and this worker's view at {view_epoch}: waiting for the newer view")]
    ViewBehind {
        /// Epoch of the lease.
        lease_epoch: u64,
        /// Epoch of the view the caller acts on.
        view_epoch: u64,
    },
}

/// The worker's lease, shared between its control session (which renews it) and its
/// services (which check it). Cloning shares it.
#[derive(Clone, Debug, Default)]
pub struct Lease(Arc<Mutex<Option<Grant>>>);

impl Lease {
    /// A lease nobody has granted yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a grant for `epoch`, lasting `length` from `sent_at` (when the heartbeat or
    /// join it answers was sent). A grant never shortens a later one already held.
    pub fn grant(&self, epoch: u64, sent_at: Instant, length: Duration) {
        let until = sent_at + length;
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *g = Some(match *g {
            Some(old) => Grant {
                epoch: old.epoch.max(epoch),
                until: old.until.max(until),
            },
            None => Grant { epoch, until },
        });
    }

    /// Forgets the lease (the coordinator said this worker is no longer a member).
    pub fn revoke(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The current grant, if any (expired or not).
    pub fn current(&self) -> Option<Grant> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this worker may act as a primary at `now` for a view of `view_epoch`: the
    /// lease must not have run out, and must not be from a newer epoch than the view (the
    /// coordinator moved on; the new view is on its way).
    pub fn check(&self, view_epoch: u64, now: Instant) -> Result<Grant, LeaseRefusal> {
        let g = self.current().ok_or(LeaseRefusal::None)?;
        if now >= g.until {
            return Err(LeaseRefusal::Expired {
                ago: now.duration_since(g.until),
            });
        }
        if g.epoch > view_epoch {
            return Err(LeaseRefusal::ViewBehind {
                lease_epoch: g.epoch,
                view_epoch,
            });
        }
        Ok(g)
    }

    /// The lease length a coordinator with `failure_timeout_ms` grants: half of it, so
    /// that a lease runs out well before the coordinator declares its holder dead.
    pub fn length_for(failure_timeout_ms: u64) -> Duration {
        Duration::from_millis(failure_timeout_ms / 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_holds_from_the_heartbeat_sent_until_its_length_and_no_longer() {
        let t0 = Instant::now();
        let l = Lease::new();
        assert_eq!(l.check(1, t0), Err(LeaseRefusal::None));
        l.grant(3, t0, Duration::from_millis(1500));
        assert!(l.check(3, t0 + Duration::from_millis(1499)).is_ok());
        let e = l.check(3, t0 + Duration::from_millis(1600)).unwrap_err();
        assert_eq!(
            e,
            LeaseRefusal::Expired {
                ago: Duration::from_millis(100)
            }
        );
        assert!(e.to_string().contains("expired 100 ms ago"));
    }

    #[test]
    fn a_lease_of_a_newer_epoch_than_the_view_refuses_until_the_view_arrives() {
        let t0 = Instant::now();
        let l = Lease::new();
        l.grant(5, t0, Duration::from_secs(1));
        assert!(matches!(
            l.check(4, t0),
            Err(LeaseRefusal::ViewBehind { .. })
        ));
        assert!(l.check(5, t0).is_ok());
        // A view newer than the lease: the coordinator sent it, to a member.
        assert!(l.check(6, t0).is_ok());
    }

    #[test]
    fn renewals_extend_never_shorten_and_revoking_ends_the_lease() {
        let t0 = Instant::now();
        let l = Lease::new();
        l.grant(1, t0 + Duration::from_secs(2), Duration::from_secs(1));
        // An answer to an older heartbeat arriving late does not shorten it.
        l.grant(1, t0, Duration::from_secs(1));
        assert!(l.check(1, t0 + Duration::from_millis(2900)).is_ok());
        l.revoke();
        assert_eq!(l.check(1, t0), Err(LeaseRefusal::None));
    }

    #[test]
    fn the_lease_is_shorter_than_the_failure_timeout() {
        assert!(Lease::length_for(3000) < Duration::from_millis(3000));
    }
}
