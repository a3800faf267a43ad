//! Output buffers of one instance: records batched per (edge, target) and routed, and
//! the messages they turn into. Operators and sources write here through their
//! [`crate::Context`] and [`crate::SourceOutput`]; the executor in [`crate::instance`]
//! takes what is ready.

use crate::data::{AnyBatch, Batch, Data, Item, Key, Message};
use crate::routing::{OutEdge, Routing};
use crate::spec::EdgeKind;

/// A message for one target instance of one of this instance's output edges.
#[derive(Debug)]
pub struct Outgoing {
    /// Index into the instance's output edges.
    pub edge: usize,
    /// Receiving instance index.
    pub target: usize,
    /// What to deliver.
    pub msg: Message,
}

/// Typed output buffers of one instance, one per (edge, target).
pub struct Outputs<T> {
    edges: Vec<OutEdge>,
    routing: Option<Routing>,
    buffers: Vec<Vec<Batch<T>>>,
    batch_size: usize,
    ready: Vec<Outgoing>,
    buffered: usize,
    emitted: u64,
}

impl<T: Data> Outputs<T> {
    pub(crate) fn new(edges: Vec<OutEdge>, routing: Option<Routing>, batch_size: usize) -> Self {
        let buffers = edges
            .iter()
            .map(|e| (0..e.targets).map(|_| Vec::new()).collect())
            .collect();
        Outputs {
            edges,
            routing,
            buffers,
            batch_size: batch_size.max(1),
            ready: Vec::new(),
            buffered: 0,
            emitted: 0,
        }
    }

    pub(crate) fn push(&mut self, key: Option<Key>, value: T) {
        self.emitted += 1;
        let n_edges = self.edges.len();
        let mut slot = Some(Item { key, value });
        for e in 0..n_edges {
            let last_edge = e + 1 == n_edges;
            let (kind, targets, self_index) = {
                let edge = &self.edges[e];
                (edge.kind, edge.targets, edge.self_index)
            };
            match kind {
                EdgeKind::Forward | EdgeKind::Gather | EdgeKind::Hash | EdgeKind::Direct => {
                    let Some(item) = slot.as_ref() else { return };
                    let target = match kind {
                        EdgeKind::Forward => self_index,
                        EdgeKind::Gather => 0,
                        EdgeKind::Direct => item
                            .key
                            .as_deref()
                            .and_then(|k| k.parse::<usize>().ok())
                            .unwrap_or(0),
                        _ => self
                            .routing
                            .as_ref()
                            .map_or(0, |r| r.target_of(item.key.as_deref())),
                    }
                    .min(targets.saturating_sub(1));
                    let item = if last_edge { slot.take() } else { slot.clone() };
                    if let Some(item) = item {
                        self.put(e, target, item);
                    }
                }
                EdgeKind::Broadcast => {
                    for t in 0..targets {
                        let item = if last_edge && t + 1 == targets {
                            slot.take()
                        } else {
                            slot.clone()
                        };
                        if let Some(item) = item {
                            self.put(e, t, item);
                        }
                    }
                }
            }
        }
    }

    fn put(&mut self, edge: usize, target: usize, item: Item<T>) {
        let Some(buf) = self.buffers.get_mut(edge).and_then(|b| b.get_mut(target)) else {
            return;
        };
        if buf.capacity() == 0 {
            // A sent batch leaves an empty buffer: size the next one once instead of
            // growing it record by record.
            buf.reserve_exact(self.batch_size.min(4096));
        }
        buf.push(item);
        self.buffered += 1;
        if buf.len() >= self.batch_size {
            let batch = std::mem::take(buf);
            self.buffered -= batch.len();
            self.ready.push(Outgoing {
                edge,
                target,
                msg: Message::Batch(AnyBatch::new(batch)),
            });
        }
    }

    fn flush(&mut self) {
        for (e, bufs) in self.buffers.iter_mut().enumerate() {
            for (t, buf) in bufs.iter_mut().enumerate() {
                if !buf.is_empty() {
                    let batch = std::mem::take(buf);
                    self.ready.push(Outgoing {
                        edge: e,
                        target: t,
                        msg: Message::Batch(AnyBatch::new(batch)),
                    });
                }
            }
        }
        self.buffered = 0;
    }

    /// Sends the partial batches of one edge now.
    fn flush_edge(&mut self, edge: usize) {
        let Some(bufs) = self.buffers.get_mut(edge) else {
            return;
        };
        for (t, buf) in bufs.iter_mut().enumerate() {
            if !buf.is_empty() {
                let batch = std::mem::take(buf);
                self.buffered -= batch.len();
                self.ready.push(Outgoing {
                    edge,
                    target: t,
                    msg: Message::Batch(AnyBatch::new(batch)),
                });
            }
        }
    }

    /// Queues `msg` for every target this instance can reach on every edge
    /// (watermarks, idleness, end): a forward edge reaches only its own instance.
    fn queue_for_all(&mut self, msg: impl Fn() -> Message) {
        for (e, edge) in self.edges.iter().enumerate() {
            let targets = match edge.kind {
                EdgeKind::Forward => {
                    let t = edge.self_index.min(edge.targets.saturating_sub(1));
                    t..t + 1
                }
                _ => 0..edge.targets,
            };
            for t in targets {
                self.ready.push(Outgoing {
                    edge: e,
                    target: t,
                    msg: msg(),
                });
            }
        }
    }
}

/// Output buffers with their type erased.
pub(crate) trait ErasedOutputs {
    fn flush(&mut self);
    fn flush_edge(&mut self, edge: usize);
    fn queue_for_all(&mut self, msg: &dyn Fn() -> Message);
    fn take_ready(&mut self) -> Vec<Outgoing>;
    fn buffered(&self) -> usize;
    fn emitted(&self) -> u64;
}

impl<T: Data> ErasedOutputs for Outputs<T> {
    fn flush(&mut self) {
        Outputs::flush(self)
    }
    fn flush_edge(&mut self, edge: usize) {
        Outputs::flush_edge(self, edge)
    }
    fn queue_for_all(&mut self, msg: &dyn Fn() -> Message) {
        Outputs::queue_for_all(self, msg)
    }
    fn take_ready(&mut self) -> Vec<Outgoing> {
        std::mem::take(&mut self.ready)
    }
    fn buffered(&self) -> usize {
        self.buffered
    }
    fn emitted(&self) -> u64 {
        self.emitted
    }
}
