//! Client ports: `source.client` and `sink.client` let a client program feed a job and
//! read its results over QUIC (the worker's stream service relays the frames).
//!
//! At prepare time each instance registers a bounded slot in the worker's
//! [`ClientPorts`] (an extension provided by the runtime); the client then opens one
//! push stream per source instance and one pull stream per sink instance. A full inbox
//! makes the relay wait (and QUIC flow control stall the client); a full outbox makes the
//! sink wait (backpressure through the job).

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::sync::Mutex;

use serde::Deserialize;

use super::sort::SortRecord;
use crate::data::{AnyBatch, Data, PortType};
use crate::operator::{Context, InitContext, OpError, OpResult, Operator};
use crate::source::{Source, SourceOutput, SourcePoll};
use crate::{Batch, Registry, Value};

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

/// `source.client`: records pushed by a client.
pub struct ClientSource<T> {
    rx: Option<Receiver<PortFrame>>,
    port: PortType,
    _t: PhantomData<fn() -> T>,
}

impl<T: Data> Source for ClientSource<T> {
    type Out = T;
    type Config = ClientPortConfig;

    fn create(_: ClientPortConfig, init: &InitContext) -> OpResult<Self> {
        let ports = ports_of(init)?;
        let rx = if init.validate_only {
            None
        } else {
            let (tx, rx) = sync_channel(PORT_FRAMES);
            insert_slot(&ports.inboxes, init, tx)?;
            Some(rx)
        };
        Ok(ClientSource {
            rx,
            port: PortType::of::<T>(),
            _t: PhantomData,
        })
    }

    fn poll(&mut self, out: &mut SourceOutput<'_, T>) -> OpResult<SourcePoll> {
        let Some(rx) = &self.rx else {
            return Ok(SourcePoll::Done);
        };
        match rx.try_recv() {
            Ok(PortFrame::Batch(bytes, _)) => {
                let batch = self
                    .port
                    .decode(&bytes)
                    .and_then(AnyBatch::downcast::<T>)
                    .map_err(|e| OpError(format!("a client sent a bad batch: {e}")))?;
                for item in batch {
                    match item.key {
                        Some(k) => out.emit_keyed(k, item.value),
                        None => out.emit(item.value),
                    }
                }
                Ok(SourcePoll::More)
            }
            Ok(PortFrame::End) => Ok(SourcePoll::Done),
            Err(TryRecvError::Empty) => Ok(SourcePoll::Wait(2)),
            Err(TryRecvError::Disconnected) => {
                Err(OpError("the client feeding this source went away".into()))
            }
        }
    }
}

/// `sink.client`: records for a client to pull.
pub struct ClientSink<T> {
    tx: Option<SyncSender<PortFrame>>,
    port: PortType,
    _t: PhantomData<fn() -> T>,
}

impl<T: Data> Operator for ClientSink<T> {
    type In = T;
    type Out = ();
    type Config = ClientPortConfig;

    fn create(_: ClientPortConfig, init: &InitContext) -> OpResult<Self> {
        let ports = ports_of(init)?;
        let tx = if init.validate_only {
            None
        } else {
            let (tx, rx) = sync_channel(PORT_FRAMES);
            insert_slot(&ports.outboxes, init, rx)?;
            Some(tx)
        };
        Ok(ClientSink {
            tx,
            port: PortType::of::<T>(),
            _t: PhantomData,
        })
    }

    fn on_batch(&mut self, batch: Batch<T>, _ctx: &mut Context<'_, ()>) -> OpResult {
        let Some(tx) = &self.tx else { return Ok(()) };
        let n = u32::try_from(batch.len()).unwrap_or(u32::MAX);
        let bytes = self
            .port
            .encode(&AnyBatch::new(batch))
            .map_err(|e| OpError(e.to_string()))?;
        // Blocks this sink's own thread while the client is behind: backpressure.
        tx.send(PortFrame::Batch(bytes, n))
            .map_err(|_| OpError("the client reading this sink went away".into()))
    }

    fn on_end(&mut self, _ctx: &mut Context<'_, ()>) -> OpResult {
        if let Some(tx) = &self.tx {
            tx.send(PortFrame::End)
                .map_err(|_| OpError("the client reading this sink went away".into()))?;
        }
        Ok(())
    }
}

/// Registers `source.client` / `sink.client` for JSON records and
/// `source.client.records` / `sink.client.records` for sort records.
pub fn register(r: &mut Registry) {
    r.source::<ClientSource<Value>>("source.client");
    r.operator::<ClientSink<Value>>("sink.client");
    r.source::<ClientSource<SortRecord>>("source.client.records");
    r.operator::<ClientSink<SortRecord>>("sink.client.records");
}
