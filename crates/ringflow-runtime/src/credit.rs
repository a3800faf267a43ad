//! Input queues bounded in records: every input channel (edge, sending instance) of an
//! operator instance has its own credit window; a sender waits for credit, and credit
//! comes back when the operator has handled the message. actix mailboxes bound nothing
//! (`do_send` ignores capacity), so this is where backpressure lives inside a node.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ringflow_stream::{AnyBatch, Message, PortType, StreamError};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

/// A batch as it came over an edge from another worker, still encoded: the receiving
/// operator decodes it on its own thread.
pub(crate) struct EncodedBatch {
    /// The batch in its port's codec.
    pub bytes: Vec<u8>,
    /// Number of records (its cost in credits).
    pub records: u32,
    /// The codec of the edge's port.
    pub port: PortType,
    /// The edge and sending worker, for failure reasons.
    pub from: Arc<str>,
}

impl EncodedBatch {
    /// Decodes the batch; a failure names the edge it came over.
    pub fn decode(&self) -> Result<AnyBatch, String> {
        self.port
            .decode(&self.bytes)
            .map_err(|e: StreamError| format!("{}: {e}", self.from))
    }
}

/// What an input channel carries.
pub(crate) enum Inbound {
    /// A message ready for the operator (from this worker, or a control frame).
    Decoded(Message),
    /// A batch from another worker, to be decoded by the receiving operator.
    Encoded(EncodedBatch),
}

impl Inbound {
    /// Credits this message costs: its records, one for control messages.
    fn cost(&self) -> usize {
        match self {
            Inbound::Decoded(Message::Batch(b)) => b.len().max(1),
            Inbound::Decoded(_) => 1,
            Inbound::Encoded(b) => (b.records as usize).max(1),
        }
    }

    /// The message, decoded if it came encoded.
    pub fn into_message(self) -> Result<Message, String> {
        match self {
            Inbound::Decoded(m) => Ok(m),
            Inbound::Encoded(b) => b.decode().map(Message::Batch),
        }
    }
}

impl From<Message> for Inbound {
    fn from(m: Message) -> Self {
        Inbound::Decoded(m)
    }
}

/// One message with the credit it holds until it is handled.
pub(crate) struct Delivery {
    /// Input channel index of the receiving instance.
    pub chan: usize,
    /// The message.
    pub msg: Inbound,
    /// Released (credit returned) when dropped.
    pub permit: Option<OwnedSemaphorePermit>,
}

/// The sending half of one input channel.
#[derive(Clone)]
pub(crate) struct CreditSender {
    chan: usize,
    limit: u32,
    sem: Arc<Semaphore>,
    tx: mpsc::UnboundedSender<Delivery>,
}

/// The receiver has gone (the instance stopped).
#[derive(Debug)]
pub(crate) struct Closed;

impl CreditSender {
    /// Sends `msg` once its records fit in the window. A batch larger than the whole
    /// window takes the whole window, so it is always admitted eventually; control
    /// messages cost one credit.
    pub async fn send(&self, msg: impl Into<Inbound>) -> Result<(), Closed> {
        let msg = msg.into();
        let cost = msg.cost();
        let cost = u32::try_from(cost).unwrap_or(u32::MAX).min(self.limit);
        let permit = self
            .sem
            .clone()
            .acquire_many_owned(cost)
            .await
            .map_err(|_| Closed)?;
        self.tx
            .send(Delivery {
                chan: self.chan,
                msg,
                permit: Some(permit),
            })
            .map_err(|_| Closed)
    }
}

/// Queue fill of an instance's inputs: records waiting, and capacity.
#[derive(Clone)]
pub(crate) struct QueueGauge {
    limit: u32,
    sems: Vec<Arc<Semaphore>>,
}

impl QueueGauge {
    /// Records queued (credit in use) over all channels.
    pub fn queued(&self) -> u64 {
        self.sems
            .iter()
            .map(|s| u64::from(self.limit).saturating_sub(s.available_permits() as u64))
            .sum()
    }

    /// Total capacity in records.
    pub fn capacity(&self) -> u64 {
        u64::from(self.limit) * self.sems.len() as u64
    }
}

/// The receiving half: every channel of one instance, merged in arrival order.
pub(crate) struct InputQueue {
    rx: mpsc::UnboundedReceiver<Delivery>,
}

impl futures_core::Stream for InputQueue {
    type Item = Delivery;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        self.rx.poll_recv(cx)
    }
}

/// Input channels for one instance: `channels` senders with `credits` records each.
pub(crate) fn input(
    channels: usize,
    credits: usize,
) -> (Vec<CreditSender>, InputQueue, QueueGauge) {
    let limit = u32::try_from(credits.max(1)).unwrap_or(u32::MAX);
    let (tx, rx) = mpsc::unbounded_channel();
    let sems: Vec<Arc<Semaphore>> = (0..channels)
        .map(|_| Arc::new(Semaphore::new(limit as usize)))
        .collect();
    let senders = sems
        .iter()
        .enumerate()
        .map(|(chan, sem)| CreditSender {
            chan,
            limit,
            sem: sem.clone(),
            tx: tx.clone(),
        })
        .collect();
    (senders, InputQueue { rx }, QueueGauge { limit, sems })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringflow_stream::{AnyBatch, Item};

    fn batch(n: usize) -> Message {
        Message::Batch(AnyBatch::new(
            (0..n)
                .map(|i| Item {
                    key: None,
                    value: i as u64,
                })
                .collect(),
        ))
    }

    #[tokio::test]
    async fn a_sender_waits_for_credit_and_gets_it_back_when_handled() {
        let (senders, mut queue, gauge) = input(2, 10);
        senders[0].send(batch(6)).await.unwrap();
        assert_eq!(gauge.queued(), 6);
        // 6 more do not fit in channel 0 ...
        let blocked = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            senders[0].send(batch(6)),
        )
        .await;
        assert!(blocked.is_err(), "a full window must make the sender wait");
        // ... but channel 1 has its own window.
        senders[1].send(batch(10)).await.unwrap();
        assert_eq!(gauge.queued(), 16);
        assert_eq!(gauge.capacity(), 20);
        let first = queue.rx.recv().await.unwrap();
        assert_eq!(first.chan, 0);
        drop(first);
        assert_eq!(gauge.queued(), 10);
        senders[0].send(batch(6)).await.unwrap();
        // An oversized batch takes the whole window and still gets through.
        let (s, _q, g) = input(1, 4);
        s[0].send(batch(100)).await.unwrap();
        assert_eq!(g.queued(), 4);
    }
}
