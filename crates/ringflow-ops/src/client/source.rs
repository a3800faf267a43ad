//! `source.client`: records pushed by a client into this instance's inbox.

use std::marker::PhantomData;
use std::sync::mpsc::{sync_channel, Receiver, TryRecvError};

use super::{insert_slot, ports_of, ClientPortConfig, PortFrame, PORT_FRAMES};
use ringflow_stream::data::{AnyBatch, Data, PortType};
use ringflow_stream::operator::{InitContext, OpError, OpResult};
use ringflow_stream::source::{Source, SourceOutput, SourcePoll};

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
