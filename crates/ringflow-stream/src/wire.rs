//! Wire types of the stream data plane and of job control (MessagePack frames).

use serde::{Deserialize, Serialize};

use crate::data::EventTime;

/// A frame on an edge stream after its `EdgeOpen` (see `ringflow-proto`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataFrame {
    /// A batch encoded with the edge's port codec.
    Batch {
        /// Number of records (for credits and metrics, without decoding).
        records: u32,
        /// MessagePack of the batch.
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// Watermark.
    Watermark(EventTime),
    /// The sender went idle.
    Idle,
    /// The sender ended.
    End,
    /// Receiver → sender: this many records left the transit window (they are in the
    /// receiving instance's own credit-bounded queue now).
    Credit(u32),
    /// Checkpoint barrier (see `ringflow_stream::checkpoint`).
    Barrier(crate::checkpoint::CheckpointId),
}
