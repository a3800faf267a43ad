//! Test-only helpers for the built-in operators: a driver that runs one operator through
//! a real instance, a scripted source and a collecting sink for [`LocalRunner`] jobs;
//! [`by_hand`] calls a source's or a sink's hooks directly.

pub(crate) mod by_hand;

use std::collections::BTreeMap;
use std::sync::Mutex;

use ringflow_ring::RingConfig;
use serde::Deserialize;

use ringflow_stream::data::{AnyBatch, Batch, EventTime, Item, Message, Value};
use ringflow_stream::instance::{InstanceConfig, OperatorInstance, OutEdge};
use ringflow_stream::operator::{Context, InitContext, OpResult, Operator};
use ringflow_stream::registry::{Instance, Registry};
use ringflow_stream::source::{Source, SourceOutput, SourcePoll};
use ringflow_stream::spec::{EdgeKind, JobSpec};
use ringflow_stream::{plan, LocalRunner};

/// What an operator sent downstream.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Out {
    Rec(Item<Value>),
    Wm(EventTime),
    Idle,
    End,
    Barrier(u64),
}

/// One operator instance driven through a real instance, one input, one output.
pub(crate) struct Driver {
    inst: OperatorInstance,
    pub out: Vec<Out>,
    now: u64,
}

impl Driver {
    pub fn try_new(op: &str, config: Value) -> Result<Self, String> {
        let reg = crate::with_builtins();
        let init = InitContext::for_test("v");
        let cfg = InstanceConfig {
            vertex: "v".into(),
            instance: 0,
            inputs: 1,
            input_ports: Vec::new(),
            outputs: vec![OutEdge {
                kind: EdgeKind::Forward,
                targets: 1,
                self_index: 0,
            }],
            routing: None,
            batch_size: 1024,
            linger_ms: 0,
            idle_timeout_ms: u64::MAX,
        };
        match reg.instantiate(op, &config, &init, cfg, 0) {
            Ok(Instance::Operator(inst)) => Ok(Driver {
                inst,
                out: Vec::new(),
                now: 0,
            }),
            Ok(Instance::Source(_)) => Err(format!("{op} is a source")),
            Err(e) => Err(e.to_string()),
        }
    }

    pub fn new(op: &str, config: Value) -> Self {
        match Self::try_new(op, config) {
            Ok(d) => d,
            Err(e) => panic!("cannot create {op}: {e}"),
        }
    }

    fn send(&mut self, msg: Message) {
        self.now += 1;
        let mut outgoing = self.inst.handle(0, msg, self.now).expect("operator failed");
        outgoing.extend(self.inst.flush());
        for o in outgoing {
            match o.msg {
                Message::Batch(b) => {
                    let b = b.downcast::<Value>().expect("json output");
                    self.out.extend(b.into_iter().map(Out::Rec));
                }
                Message::Watermark(t) => self.out.push(Out::Wm(t)),
                Message::Idle => self.out.push(Out::Idle),
                Message::End => self.out.push(Out::End),
                Message::Barrier(c) => self.out.push(Out::Barrier(c)),
            }
        }
    }

    /// Feeds a batch.
    pub fn push(&mut self, items: Batch<Value>) {
        self.send(Message::Batch(AnyBatch::new(items)));
    }

    /// Feeds unkeyed records.
    pub fn push_values(&mut self, values: Vec<Value>) {
        self.push(values.into_iter().map(|v| item(None, v)).collect());
    }

    pub fn watermark(&mut self, t: EventTime) {
        self.send(Message::Watermark(t));
    }

    pub fn end(&mut self) {
        self.send(Message::End);
    }

    /// A checkpoint barrier; the snapshot it produced.
    pub fn checkpoint(&mut self, id: u64) -> ringflow_stream::checkpoint::InstanceSnapshot {
        self.send(Message::Barrier(id));
        let mut snaps = self.inst.take_snapshots();
        assert_eq!(snaps.len(), 1, "one snapshot per barrier on one input");
        snaps.remove(0)
    }

    /// Restores every partition and the own state of `snap` (one instance before, one now).
    pub fn restore(&mut self, snap: ringflow_stream::checkpoint::InstanceSnapshot) {
        let r = ringflow_stream::checkpoint::Restore::for_instance(&[snap], |_| true, 0, 1);
        self.inst.restore(r).expect("restore");
    }

    /// Takes the records sent so far (dropping watermarks).
    pub fn take(&mut self) -> Vec<Item<Value>> {
        std::mem::take(&mut self.out)
            .into_iter()
            .filter_map(|o| match o {
                Out::Rec(i) => Some(i),
                _ => None,
            })
            .collect()
    }

    /// Takes the record values sent so far.
    pub fn take_values(&mut self) -> Vec<Value> {
        self.take().into_iter().map(|i| i.value).collect()
    }

    pub fn counter(&self, name: &str) -> u64 {
        self.inst
            .metrics()
            .counters
            .get(name)
            .copied()
            .unwrap_or_default()
    }
}

pub(crate) fn item(key: Option<&str>, value: Value) -> Item<Value> {
    Item {
        key: key.map(str::to_owned),
        value,
    }
}

/// The message a bad config is refused with (panics when it is accepted).
pub(crate) fn refuse(op: &str, config: Value) -> String {
    let reg = crate::with_builtins();
    match reg.check_config(op, &config, &InitContext::for_test("v")) {
        Ok(()) => panic!("{op} accepted {config}"),
        Err(e) => e.0,
    }
}

/// Asserts that `config` is refused with a message containing `needle`.
pub(crate) fn assert_refused(op: &str, config: Value, needle: &str) {
    let msg = refuse(op, config.clone());
    assert!(
        msg.contains(needle),
        "{op} {config}: expected a message with {needle:?}, got {msg:?}"
    );
}

/// Asserts that `config` is accepted.
pub(crate) fn assert_accepted(op: &str, config: Value) {
    let reg = crate::with_builtins();
    if let Err(e) = reg.check_config(op, &config, &InitContext::for_test("v")) {
        panic!("{op} refused {config}: {e}");
    }
}

/// One step of a scripted source instance: a record with an optional key.
#[derive(Clone, Debug)]
pub(crate) enum Step {
    Rec(Option<String>, Value),
}

/// Scripts by feed name, one per source instance.
static FEEDS: Mutex<BTreeMap<String, Vec<Vec<Step>>>> = Mutex::new(BTreeMap::new());
/// Collected records by sink name.
static SINKS: Mutex<BTreeMap<String, Vec<Item<Value>>>> = Mutex::new(BTreeMap::new());

pub(crate) fn set_feed(name: &str, per_instance: Vec<Vec<Step>>) {
    FEEDS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(name.to_owned(), per_instance);
}

pub(crate) fn take_sink(name: &str) -> Vec<Item<Value>> {
    SINKS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(name)
        .unwrap_or_default()
}

/// Config of the test source and sink.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NameConfig {
    name: String,
}

/// Emits its instance's script from [`FEEDS`], then ends.
pub(crate) struct FeedSource {
    steps: std::vec::IntoIter<Step>,
}

impl Source for FeedSource {
    type Out = Value;
    type Config = NameConfig;

    fn create(config: NameConfig, init: &InitContext) -> OpResult<Self> {
        let steps = FEEDS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&config.name)
            .and_then(|f| f.get(init.instance).cloned())
            .unwrap_or_default();
        Ok(FeedSource {
            steps: steps.into_iter(),
        })
    }

    fn poll(&mut self, out: &mut SourceOutput<'_, Value>) -> OpResult<SourcePoll> {
        while out.remaining() > 0 {
            match self.steps.next() {
                None => return Ok(SourcePoll::Done),
                Some(Step::Rec(None, v)) => out.emit(v),
                Some(Step::Rec(Some(k), v)) => out.emit_keyed(k, v),
            }
        }
        Ok(SourcePoll::More)
    }
}

/// Appends every record it receives to [`SINKS`] under its name.
pub(crate) struct CollectSink {
    name: String,
}

impl Operator for CollectSink {
    type In = Value;
    type Out = ();
    type Config = NameConfig;

    fn create(config: NameConfig, _init: &InitContext) -> OpResult<Self> {
        Ok(CollectSink { name: config.name })
    }

    fn on_batch(&mut self, batch: Batch<Value>, _ctx: &mut Context<'_, ()>) -> OpResult {
        SINKS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(self.name.clone())
            .or_default()
            .extend(batch);
        Ok(())
    }
}

/// The built-ins plus `test.feed` and `test.collect`.
pub(crate) fn test_registry() -> Registry {
    let mut r = crate::with_builtins();
    r.source::<FeedSource>("test.feed");
    r.operator::<CollectSink>("test.collect");
    r
}

/// What a finished local job left behind.
pub(crate) struct JobResult {
    /// Records collected by the sink named after the job.
    pub records: Vec<Item<Value>>,
    /// Counters summed over every instance, by (vertex, counter).
    pub counters: BTreeMap<(String, String), u64>,
}

impl JobResult {
    pub fn counter(&self, vertex: &str, name: &str) -> u64 {
        self.counters
            .get(&(vertex.to_owned(), name.to_owned()))
            .copied()
            .unwrap_or_default()
    }
}

/// Plans and runs `spec` on `workers` simulated workers until it finishes; the sink
/// vertices must be `test.collect` with `name` = the spec's name. The job runs twice,
/// with operator chaining on and off: both runs must give the same records (in any
/// order) and counters (but the sorter's spill and merge counts), and the chained run's
/// are returned.
pub(crate) fn run_job(spec: JobSpec, workers: usize) -> JobResult {
    let chained = run_once(spec.clone(), workers);
    let mut unchained_spec = spec;
    unchained_spec.settings.chaining = false;
    let unchained = run_once(unchained_spec, workers);
    let sorted = |r: &JobResult| {
        let mut v: Vec<String> = r
            .records
            .iter()
            .map(|i| format!("{:?} {}", i.key, i.value))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        sorted(&chained),
        sorted(&unchained),
        "records differ with chaining off"
    );
    // How a sorter spills and merges depends on how its input was batched.
    let stable = |r: &JobResult| {
        r.counters
            .iter()
            .filter(|((_, c), _)| !c.starts_with("spilled_") && !c.starts_with("merge"))
            .map(|(k, v)| (k.clone(), *v))
            .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(
        stable(&chained),
        stable(&unchained),
        "counters differ with chaining off"
    );
    chained
}

fn run_once(spec: JobSpec, workers: usize) -> JobResult {
    let reg = test_registry();
    let name = spec.name.clone();
    let planned = plan(&spec, &reg, &InitContext::for_test("x")).expect("plan");
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = RingConfig::new(64, 1).expect("ring");
    let mut runner = LocalRunner::new(planned, &reg, workers, ring, dir.path().to_path_buf(), 0)
        .expect("runner");
    assert!(runner.run(10_000_000).expect("run"), "job did not finish");
    let mut counters = BTreeMap::new();
    for (vertex, _, m) in runner.metrics() {
        for (c, n) in m.counters {
            *counters.entry((vertex.clone(), c)).or_default() += n;
        }
    }
    JobResult {
        records: take_sink(&name),
        counters,
    }
}
