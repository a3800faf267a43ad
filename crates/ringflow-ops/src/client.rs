//! Client ports: `source.client` and `sink.client` let a client program feed a job and
//! read its results over QUIC (the worker's stream service relays the frames).
//!
//! At prepare time each instance registers a bounded slot in the worker's
//! [`ClientPorts`] (an extension provided by the runtime); the client then opens one
//! push stream per source instance and one pull stream per sink instance. A full inbox
//! makes the relay wait (and QUIC flow control stall the client); a full outbox makes the
//! sink wait (backpressure through the job).

mod sink;
mod source;

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Mutex;

use serde::Deserialize;

pub use sink::ClientSink;
pub use source::ClientSource;

use crate::sort::SortRecord;
use ringflow_stream::operator::{InitContext, OpError, OpResult};
use ringflow_stream::{Registry, Value};

/// Frames queued in a client port.
#[derive(Debug)]
pub enum PortFrame {
    /// An encoded batch (the port type's MessagePack codec) and its record count.
    Batch(Vec<u8>, u32),
    /// No more records.
    End,
}

/// Which client port: (job, vertex, instance).
pub type PortId = (String, String, usize);

/// Batches queued per port before the producer waits.
pub const PORT_FRAMES: usize = 16;

/// Client port slots of the jobs on one worker.
#[derive(Default)]
pub struct ClientPorts {
    inboxes: Mutex<HashMap<PortId, SyncSender<PortFrame>>>,
    outboxes: Mutex<HashMap<PortId, Receiver<PortFrame>>>,
}

impl ClientPorts {
    /// The sending end of a `source.client` instance's inbox (taken once).
    pub fn take_inbox(&self, id: &PortId) -> Option<SyncSender<PortFrame>> {
        self.inboxes.lock().ok()?.remove(id)
    }

    /// The receiving end of a `sink.client` instance's outbox (taken once).
    pub fn take_outbox(&self, id: &PortId) -> Option<Receiver<PortFrame>> {
        self.outboxes.lock().ok()?.remove(id)
    }

    /// Forgets the inboxes of `job` (when it ends).
    pub fn remove_inboxes(&self, job: &str) {
        if let Ok(mut m) = self.inboxes.lock() {
            m.retain(|k, _| k.0 != job);
        }
    }

    /// Forgets the outboxes of `job`. A job may finish with its last batches still in an
    /// outbox, so the runtime calls this some time after the job ended, not at once.
    pub fn remove_outboxes(&self, job: &str) {
        if let Ok(mut m) = self.outboxes.lock() {
            m.retain(|k, _| k.0 != job);
        }
    }
}

fn port_id(init: &InitContext) -> PortId {
    (init.job.clone(), init.vertex.clone(), init.instance)
}

/// The worker's client ports, or the error every client vertex gives without them.
fn ports_of(init: &InitContext) -> OpResult<std::sync::Arc<ClientPorts>> {
    init.extensions
        .get::<ClientPorts>()
        .ok_or_else(|| OpError("client ports are not available in this worker".into()))
}

/// Puts `value` in `slots` under this instance's port (not when only validating).
fn insert_slot<V>(slots: &Mutex<HashMap<PortId, V>>, init: &InitContext, value: V) -> OpResult {
    slots
        .lock()
        .map_err(|_| OpError("client ports poisoned".into()))?
        .insert(port_id(init), value);
    Ok(())
}

/// Config of the client ports (none).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ClientPortConfig {}

/// Registers `source.client` / `sink.client` for JSON records and
/// `source.client.records` / `sink.client.records` for sort records.
pub fn register(r: &mut Registry) {
    r.source::<ClientSource<Value>>("source.client");
    r.operator::<ClientSink<Value>>("sink.client");
    r.source::<ClientSource<SortRecord>>("source.client.records");
    r.operator::<ClientSink<SortRecord>>("sink.client.records");
}
