//! Where records go: the routing of `hash` edges by ring partition, and the output
//! edges of one sending instance.

use std::sync::Arc;

use ringflow_ring::RingConfig;

use crate::spec::EdgeKind;

/// Maps a key's ring partition to the index of the instance that owns it.
#[derive(Clone, Debug)]
pub struct Routing {
    ring: RingConfig,
    owner: Arc<[u32]>,
}

impl Routing {
    /// `owner[p]` is the instance index serving partition `p`; its length must be the
    /// ring's partition count.
    pub fn new(ring: RingConfig, owner: Vec<u32>) -> Self {
        Routing {
            ring,
            owner: owner.into(),
        }
    }

    /// Spreads partitions round-robin over `instances` (tests, single process).
    pub fn round_robin(ring: RingConfig, instances: u32) -> Self {
        let n = instances.max(1);
        Routing::new(ring, (0..ring.partitions).map(|p| p % n).collect())
    }

    /// The ring's shape.
    pub fn ring(&self) -> RingConfig {
        self.ring
    }

    /// The instance that owns `key`.
    pub fn target_of(&self, key: Option<&str>) -> usize {
        let p = self
            .ring
            .partition_for_key(key.unwrap_or_default().as_bytes());
        self.owner.get(p.0 as usize).copied().unwrap_or(0) as usize
    }
}

/// One outgoing edge as seen by a sending instance.
#[derive(Clone, Debug)]
pub struct OutEdge {
    /// How records are routed.
    pub kind: EdgeKind,
    /// Number of receiving instances.
    pub targets: usize,
    /// This sender's own instance index (the target of `forward` edges).
    pub self_index: usize,
}
