//! Records, keys, event time, batches and the messages that flow along edges.

use std::any::{Any, TypeId};
use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::StreamError;

/// The dynamic record type of the built-in operators (JSON-like). Custom operators may
/// use any [`Data`] type; they interoperate with built-ins through `Value`.
pub use serde_json::Value;

/// Anything that can travel along an edge: cloned for broadcast, serialized with
/// MessagePack only when it crosses a node.
pub trait Data: Serialize + DeserializeOwned + Clone + Send + 'static {}

impl<T: Serialize + DeserializeOwned + Clone + Send + 'static> Data for T {}

/// The key of a record: it selects the ring partition (and so the worker) on `hash`
/// edges, and the keyed state it updates.
pub type Key = String;

/// Event time in milliseconds since the Unix epoch.
pub type EventTime = i64;

/// The smallest event time: "no watermark yet".
pub const MIN_TIME: EventTime = EventTime::MIN;

/// The largest event time: the watermark of an input that has ended.
pub const MAX_TIME: EventTime = EventTime::MAX;

/// One record and its key, if it has one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Item<T> {
    /// The key set by `key_by` or [`crate::Context::emit_keyed`]; `None` for unkeyed records.
    pub key: Option<Key>,
    /// The record.
    pub value: T,
}

/// A batch of records of one type.
pub type Batch<T> = Vec<Item<T>>;

/// A batch with its element type erased, as it moves between operators on one node.
pub struct AnyBatch {
    len: usize,
    type_id: TypeId,
    inner: Box<dyn Any + Send>,
}

impl AnyBatch {
    /// Wraps a typed batch.
    pub fn new<T: Data>(batch: Batch<T>) -> Self {
        AnyBatch {
            len: batch.len(),
            type_id: TypeId::of::<T>(),
            inner: Box::new(batch),
        }
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The typed batch, or an error naming the expected type when it holds another one.
    pub fn downcast<T: Data>(self) -> Result<Batch<T>, StreamError> {
        if self.type_id != TypeId::of::<T>() {
            return Err(StreamError::TypeMismatch {
                expected: type_label::<T>(),
            });
        }
        self.inner
            .downcast::<Batch<T>>()
            .map(|b| *b)
            .map_err(|_| StreamError::TypeMismatch {
                expected: type_label::<T>(),
            })
    }

    /// A typed view of the batch, when it holds `T`.
    pub fn downcast_ref<T: Data>(&self) -> Option<&Batch<T>> {
        self.inner.downcast_ref::<Batch<T>>()
    }
}

impl fmt::Debug for AnyBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnyBatch").field("len", &self.len).finish()
    }
}

/// What flows along an edge from one sender instance to one receiver instance.
#[derive(Debug)]
pub enum Message {
    /// Records.
    Batch(AnyBatch),
    /// The sender will send no record with an event time at or below this one.
    Watermark(EventTime),
    /// The sender is idle: leave it out of the watermark minimum until it sends again.
    /// Only a source says so first (it read nothing for the idle timeout); an operator
    /// forwards it once all its inputs are idle, never for a quiet channel.
    Idle,
    /// The sender has finished: nothing more will come from it.
    End,
    /// Checkpoint barrier: the sender took its snapshot of this checkpoint after every
    /// record it sent before (see [`crate::checkpoint`]).
    Barrier(crate::checkpoint::CheckpointId),
}

/// The type carried by an operator's input or output, with its MessagePack codec.
#[derive(Clone, Copy)]
pub struct PortType {
    /// Readable name of the type (`json` for [`Value`]).
    pub name: &'static str,
    type_id: TypeId,
    encode: fn(&AnyBatch) -> Result<Vec<u8>, StreamError>,
    decode: fn(&[u8]) -> Result<AnyBatch, StreamError>,
}

impl PortType {
    /// The port type of `T`.
    pub fn of<T: Data>() -> Self {
        PortType {
            name: type_label::<T>(),
            type_id: TypeId::of::<T>(),
            encode: encode_batch::<T>,
            decode: decode_batch::<T>,
        }
    }

    /// True when both ports carry the same Rust type.
    pub fn same_as(&self, other: &PortType) -> bool {
        self.type_id == other.type_id
    }

    /// Serializes a batch of this type (MessagePack).
    pub fn encode(&self, batch: &AnyBatch) -> Result<Vec<u8>, StreamError> {
        (self.encode)(batch)
    }

    /// Deserializes a batch of this type.
    pub fn decode(&self, bytes: &[u8]) -> Result<AnyBatch, StreamError> {
        (self.decode)(bytes)
    }
}

impl fmt::Debug for PortType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// A short readable name for a record type.
pub fn type_label<T: 'static>() -> &'static str {
    let id = TypeId::of::<T>();
    if id == TypeId::of::<Value>() {
        "json"
    } else if id == TypeId::of::<String>() {
        "string"
    } else if id == TypeId::of::<()>() {
        "nothing"
    } else {
        std::any::type_name::<T>()
    }
}

fn encode_batch<T: Data>(batch: &AnyBatch) -> Result<Vec<u8>, StreamError> {
    let typed = batch
        .downcast_ref::<T>()
        .ok_or_else(|| StreamError::TypeMismatch {
            expected: type_label::<T>(),
        })?;
    rmp_serde::to_vec(typed).map_err(|e| StreamError::Codec(e.to_string()))
}

fn decode_batch<T: Data>(bytes: &[u8]) -> Result<AnyBatch, StreamError> {
    let typed: Batch<T> =
        rmp_serde::from_slice(bytes).map_err(|e| StreamError::Codec(e.to_string()))?;
    Ok(AnyBatch::new(typed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_trip_through_their_port_codec() {
        let port = PortType::of::<Value>();
        let batch = vec![
            Item {
                key: Some("a".into()),
                value: serde_json::json!({"n": 1, "s": "x", "f": 1.5}),
            },
            Item {
                key: None,
                value: Value::String("hello".into()),
            },
        ];
        let bytes = port.encode(&AnyBatch::new(batch.clone())).unwrap();
        let back = port.decode(&bytes).unwrap().downcast::<Value>().unwrap();
        assert_eq!(back, batch);
    }

    #[test]
    fn a_batch_of_another_type_is_an_error_not_a_panic() {
        let port = PortType::of::<String>();
        let b = AnyBatch::new(vec![Item {
            key: None,
            value: 5u64,
        }]);
        assert!(port.encode(&b).is_err());
        assert!(b.downcast::<String>().is_err());
        assert!(port.decode(b"\xc1garbage").is_err());
        assert_eq!(PortType::of::<Value>().name, "json");
    }
}
