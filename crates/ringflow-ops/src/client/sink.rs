//! `sink.client`: records queued in this instance's outbox for a client to pull.

use std::marker::PhantomData;
use std::sync::mpsc::{sync_channel, SyncSender};

use super::{insert_slot, ports_of, ClientPortConfig, PortFrame, PORT_FRAMES};
use ringflow_stream::data::{AnyBatch, Data, PortType};
use ringflow_stream::operator::{Context, InitContext, OpError, OpResult, Operator};
use ringflow_stream::Batch;

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
