//! The sans-IO instance executor: one operator or source instance, driven by input
//! messages and a clock passed in, saying what to send where.
//!
//! It merges watermarks (minimum over live, non-idle inputs), fires event-time timers,
//! batches outputs per (edge, target) with a size and a linger time (see
//! [`crate::outputs`]), routes `hash` edges by the ring partition of each record's key
//! (see [`crate::routing`]), and ends when every input has ended. The runtime moves the
//! returned [`Outgoing`] messages and applies credits.

mod chain;
#[cfg(test)]
mod checkpoint_tests;
mod operator;
mod source;

use std::collections::BTreeMap;

use crate::data::EventTime;
use crate::operator::InitContext;
use crate::plan::JobPlan;
use crate::registry::{Instance, Registry};
use crate::StreamError;

pub use crate::outputs::Outgoing;
pub use crate::routing::{OutEdge, Routing};
pub use chain::{Chain, ChainEvent, ChainOutgoing};
pub use operator::OperatorInstance;
pub use source::SourceInstance;

pub(crate) use operator::{DynOperator, Env, OpBox};
pub(crate) use source::{DynSource, SrcBox};

/// Everything an instance needs beside its operator.
#[derive(Clone, Debug)]
pub struct InstanceConfig {
    /// Vertex name (for errors).
    pub vertex: String,
    /// This instance's index among the vertex's instances.
    pub instance: usize,
    /// Number of input channels (one per upstream sender instance and edge).
    pub inputs: usize,
    /// For each input channel, the position of its edge among the vertex's inputs
    /// (empty: every channel is on input 0).
    pub input_ports: Vec<usize>,
    /// Output edges.
    pub outputs: Vec<OutEdge>,
    /// Routing of `hash` edges.
    pub routing: Option<Routing>,
    /// Records per batch.
    pub batch_size: usize,
    /// Longest a partial batch waits (ms).
    pub linger_ms: u64,
    /// Quiet time after which an input stops holding back the watermark (ms).
    pub idle_timeout_ms: u64,
}

impl InstanceConfig {
    /// The input port (edge position) of channel `channel`.
    pub fn port_of(&self, channel: usize) -> usize {
        self.input_ports.get(channel).copied().unwrap_or(0)
    }
}

/// Builds instance `index` of vertex `v` of `plan` among `workers` workers: its init
/// context (`base` with this vertex, index and instance count), its inputs and outputs
/// from the plan, batching from the job's settings, and the operator from `registry`.
/// The one way instances are made, on a cluster worker and in [`crate::LocalRunner`].
#[allow(clippy::too_many_arguments)]
pub fn build(
    plan: &JobPlan,
    registry: &Registry,
    v: usize,
    index: usize,
    workers: usize,
    base: &InitContext,
    routing: &Routing,
    now: u64,
) -> Result<Instance, StreamError> {
    let vp = &plan.vertices[v];
    let s = &plan.spec.settings;
    let init = InitContext {
        vertex: vp.name.clone(),
        instance: index,
        instances: plan.instances(v, workers),
        validate_only: false,
        ..base.clone()
    };
    let channels = plan.input_channels(v, index, workers);
    let cfg = InstanceConfig {
        vertex: vp.name.clone(),
        instance: index,
        inputs: channels.len(),
        input_ports: channels
            .iter()
            .map(|&(e, _)| vp.inputs.iter().position(|&i| i == e).unwrap_or(0))
            .collect(),
        outputs: plan.out_edges(v, index, workers),
        routing: Some(routing.clone()),
        batch_size: s.batch_size,
        linger_ms: s.linger_ms,
        idle_timeout_ms: s.idle_timeout_ms,
    };
    let input = vp
        .inputs
        .first()
        .map(|&e| plan.vertices[plan.edges[e].from].output);
    registry.instantiate_for(
        &vp.operator,
        input.as_ref(),
        &plan.spec.vertices[v].config,
        &init,
        cfg,
        now,
    )
}

/// Counters of one instance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstanceMetrics {
    /// Records received.
    pub records_in: u64,
    /// Records emitted.
    pub records_out: u64,
    /// Current watermark.
    pub watermark: EventTime,
    /// Named counters of the operator (e.g. `late_dropped`).
    pub counters: BTreeMap<String, u64>,
}

#[cfg(test)]
mod tests {
    use ringflow_ring::RingConfig;

    use super::*;
    use crate::data::{AnyBatch, Item, Message};
    use crate::operator::{Context, InitContext, OpResult, Operator};
    use crate::registry::{Instance, Registry};
    use crate::spec::EdgeKind;
    use crate::StreamError;
    use crate::Value;

    /// Passes records through and counts watermark calls.
    struct Pass;
    impl Operator for Pass {
        type In = Value;
        type Out = Value;
        type Config = serde_json::Map<String, Value>;
        fn create(_: Self::Config, _: &InitContext) -> OpResult<Self> {
            Ok(Pass)
        }
        fn on_batch(&mut self, batch: Vec<Item<Value>>, ctx: &mut Context<'_, Value>) -> OpResult {
            for i in batch {
                ctx.emit_item(i.key, i.value);
            }
            Ok(())
        }
        fn on_watermark(&mut self, _: EventTime, ctx: &mut Context<'_, Value>) -> OpResult {
            ctx.count("watermarks", 1);
            Ok(())
        }
    }

    fn instance(inputs: usize, idle_timeout_ms: u64) -> OperatorInstance {
        let mut r = Registry::new();
        r.operator::<Pass>("pass");
        let cfg = InstanceConfig {
            vertex: "v".into(),
            instance: 0,
            inputs,
            input_ports: Vec::new(),
            outputs: vec![OutEdge {
                kind: EdgeKind::Hash,
                targets: 2,
                self_index: 0,
            }],
            routing: Some(Routing::round_robin(RingConfig::new(16, 1).unwrap(), 2)),
            batch_size: 4,
            linger_ms: 10,
            idle_timeout_ms,
        };
        match r
            .instantiate("pass", &Value::Null, &InitContext::for_test("v"), cfg, 0)
            .unwrap()
        {
            Instance::Operator(o) => o,
            Instance::Source(_) => unreachable!(),
        }
    }

    fn watermarks(out: &[Outgoing]) -> Vec<(usize, EventTime)> {
        out.iter()
            .filter_map(|o| match o.msg {
                Message::Watermark(w) => Some((o.target, w)),
                _ => None,
            })
            .collect()
    }

    fn batch(n: usize) -> Message {
        Message::Batch(AnyBatch::new(
            (0..n)
                .map(|i| Item {
                    key: Some(format!("k{i}")),
                    value: Value::from(i as u64),
                })
                .collect(),
        ))
    }

    #[test]
    fn the_watermark_is_the_minimum_over_inputs_and_goes_to_every_target() {
        let mut op = instance(2, 60_000);
        let out = op.handle(0, Message::Watermark(100), 0).unwrap();
        assert!(watermarks(&out).is_empty(), "input 1 still holds it back");
        let out = op.handle(1, Message::Watermark(50), 0).unwrap();
        assert_eq!(watermarks(&out), vec![(0, 50), (1, 50)]);
        let out = op.handle(1, Message::Watermark(40), 0).unwrap();
        assert!(watermarks(&out).is_empty(), "watermarks never go back");
        let out = op.handle(1, Message::Watermark(150), 0).unwrap();
        assert_eq!(watermarks(&out), vec![(0, 100), (1, 100)]);
        assert_eq!(op.watermark(), 100);
    }

    #[test]
    fn a_quiet_input_holds_the_watermark_back_until_its_source_says_it_is_idle() {
        let mut op = instance(2, 1_000);
        op.handle(0, Message::Watermark(500), 10).unwrap();
        // Input 0 keeps talking; input 1 says nothing for many idle timeouts (its sender
        // may be blocked on credit): it still holds the watermark back.
        op.handle(0, Message::Watermark(600), 1_050).unwrap();
        for now in [1_100, 5_000, 60_000] {
            assert!(watermarks(&op.tick(now).unwrap()).is_empty(), "at {now}");
        }
        assert_eq!(op.watermark(), crate::data::MIN_TIME);
        // An Idle message (from its source) works at once.
        let out = op.handle(1, Message::Idle, 60_100).unwrap();
        assert_eq!(watermarks(&out), vec![(0, 600), (1, 600)]);
        // When the idle input speaks again it counts again.
        op.handle(1, Message::Watermark(610), 60_200).unwrap();
        let out = op.handle(0, Message::Watermark(700), 60_300).unwrap();
        assert_eq!(watermarks(&out), vec![(0, 610), (1, 610)]);
    }

    #[test]
    fn idleness_is_forwarded_only_once_every_input_is_idle() {
        let mut op = instance(2, 1_000);
        let idles = |out: &[Outgoing]| {
            out.iter()
                .filter(|o| matches!(o.msg, Message::Idle))
                .count()
        };
        let out = op.handle(0, Message::Idle, 10).unwrap();
        assert_eq!(idles(&out), 0, "input 1 is not idle");
        assert_eq!(idles(&op.tick(100_000).unwrap()), 0, "quiet is not idle");
        let out = op.handle(1, Message::Idle, 100_010).unwrap();
        assert_eq!(idles(&out), 2, "both targets hear it");
    }

    #[test]
    fn batches_fill_by_size_flush_by_linger_and_end_follows_the_last_records() {
        let mut op = instance(1, 60_000);
        let out = op.handle(0, batch(3), 0).unwrap();
        assert!(
            out.is_empty(),
            "3 records over 2 targets: no batch of 4 yet"
        );
        assert!(op.tick(5).unwrap().is_empty(), "linger not over");
        let out = op.tick(10).unwrap();
        let sent: usize = out
            .iter()
            .map(|o| match &o.msg {
                Message::Batch(b) => b.len(),
                _ => 0,
            })
            .sum();
        assert_eq!(sent, 3);
        op.handle(0, batch(2), 20).unwrap();
        let out = op.handle(0, Message::End, 21).unwrap();
        assert!(op.is_finished());
        // Records first, then the end, on every target.
        let kinds: Vec<&str> = out
            .iter()
            .map(|o| match o.msg {
                Message::Batch(_) => "batch",
                Message::End => "end",
                Message::Watermark(_) => "wm",
                Message::Idle => "idle",
                Message::Barrier(_) => "barrier",
            })
            .collect();
        let last_batch = kinds.iter().rposition(|k| *k == "batch").unwrap();
        let first_end = kinds.iter().position(|k| *k == "end").unwrap();
        assert!(last_batch < first_end, "{kinds:?}");
        assert_eq!(kinds.iter().filter(|k| **k == "end").count(), 2);
        assert_eq!(op.metrics().records_in, 5);
        assert_eq!(op.metrics().records_out, 5);
        assert!(
            op.handle(7, batch(1), 30).unwrap().is_empty(),
            "nothing after the end"
        );
    }

    #[test]
    fn an_unknown_input_is_an_error_not_a_panic() {
        let mut op = instance(1, 60_000);
        assert!(matches!(
            op.handle(3, batch(1), 0),
            Err(StreamError::UnknownInput(3))
        ));
        let wrong = Message::Batch(AnyBatch::new(vec![Item {
            key: None,
            value: 1u8,
        }]));
        assert!(op.handle(0, wrong, 0).is_err());
    }
}
