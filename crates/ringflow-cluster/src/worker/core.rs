//! The worker's view of the cluster, sans-IO: epochs only move forward.

use ringflow_proto::ClusterView;
use ringflow_ring::{PartitionId, WorkerId};

/// What applying a view did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ViewChange {
    /// The view was newer and is now the one acted on.
    Applied {
        /// Epoch before.
        from: u64,
        /// Epoch now.
        to: u64,
        /// Partitions this worker gained a replica of.
        gained: Vec<PartitionId>,
        /// Partitions this worker lost.
        lost: Vec<PartitionId>,
    },
    /// Same epoch as the current one: peers' addresses may have changed, nothing else.
    Refreshed,
    /// Older than the current one: ignored, never acted on.
    Stale {
        /// Epoch of the ignored view.
        offered: u64,
        /// Epoch kept.
        current: u64,
    },
}

/// The table a worker acts on.
#[derive(Clone, Debug)]
pub struct WorkerCore {
    id: WorkerId,
    view: Option<ClusterView>,
}

impl WorkerCore {
    /// A worker that has seen no table yet.
    pub fn new(id: WorkerId) -> Self {
        Self { id, view: None }
    }

    /// This worker's id.
    pub fn id(&self) -> &WorkerId {
        &self.id
    }

    /// The epoch acted on (0 before the first table).
    pub fn epoch(&self) -> u64 {
        self.view.as_ref().map_or(0, |v| v.epoch())
    }

    /// The current view, if any.
    pub fn view(&self) -> Option<&ClusterView> {
        self.view.as_ref()
    }

    /// Partitions this worker holds a replica of, and those it is primary for.
    pub fn owned(&self) -> (Vec<PartitionId>, Vec<PartitionId>) {
        match &self.view {
            Some(v) => (
                v.assignment.partitions_of(&self.id),
                v.assignment.primaries_of(&self.id),
            ),
            None => (Vec::new(), Vec::new()),
        }
    }

    /// Applies `view` if it is at least as new as the current one.
    pub fn apply(&mut self, view: ClusterView) -> ViewChange {
        let current = self.epoch();
        let offered = view.epoch();
        if self.view.is_some() && offered < current {
            return ViewChange::Stale { offered, current };
        }
        if self.view.is_some() && offered == current {
            self.view = Some(view);
            return ViewChange::Refreshed;
        }
        let before: std::collections::BTreeSet<PartitionId> = self.owned().0.into_iter().collect();
        self.view = Some(view);
        let after: std::collections::BTreeSet<PartitionId> = self.owned().0.into_iter().collect();
        ViewChange::Applied {
            from: current,
            to: offered,
            gained: after.difference(&before).copied().collect(),
            lost: before.difference(&after).copied().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringflow_proto::PeerInfo;
    use ringflow_ring::{assign, RingConfig, WorkerSpec};

    fn specs(n: usize) -> Vec<WorkerSpec> {
        (0..n)
            .map(|i| WorkerSpec {
                id: WorkerId(format!("w{i}")),
                capacity: 1,
            })
            .collect()
    }

    fn view(a: ringflow_ring::Assignment) -> ClusterView {
        ClusterView {
            assignment: a,
            peers: vec![PeerInfo {
                id: "w0".into(),
                addr: "127.0.0.1:1".into(),
                services: Default::default(),
            }],
            forgotten: Vec::new(),
        }
    }

    #[test]
    fn epochs_only_move_forward() {
        let cfg = RingConfig::new(64, 2).unwrap();
        let a1 = assign(None, &specs(2), cfg).unwrap();
        let a2 = assign(Some(&a1), &specs(3), cfg).unwrap();
        assert!(a2.epoch() > a1.epoch());
        let mut w = WorkerCore::new("w0".into());
        assert!(matches!(
            w.apply(view(a1.clone())),
            ViewChange::Applied { .. }
        ));
        let owned_before = w.owned().0.len();
        match w.apply(view(a2.clone())) {
            ViewChange::Applied { lost, gained, .. } => {
                assert!(!lost.is_empty());
                assert!(gained.is_empty());
            }
            other => panic!("{other:?}"),
        }
        assert!(w.owned().0.len() < owned_before);
        // A stale table arriving late is never acted on.
        assert_eq!(
            w.apply(view(a1.clone())),
            ViewChange::Stale {
                offered: a1.epoch(),
                current: a2.epoch()
            }
        );
        assert_eq!(w.epoch(), a2.epoch());
        assert_eq!(w.apply(view(a2)), ViewChange::Refreshed);
    }
}
