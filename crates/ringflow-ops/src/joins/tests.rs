//! The joins driven through real operator instances (two input channels, one per side,
//! watermarks, timers, the end), against references written here over the same events.

use proptest::prelude::*;
use ringflow_ring::RingConfig;
use ringflow_stream::data::{AnyBatch, Item, Message, MIN_TIME};
use ringflow_stream::instance::{InstanceConfig, OperatorInstance, OutEdge};
use ringflow_stream::registry::Instance;
use ringflow_stream::{EdgeKind, InitContext, Value};
use serde_json::json;

/// One step of a test input.
#[derive(Clone, Debug)]
enum Step {
    /// A record on side 0 (left) or 1 (right): key, time, id.
    Record(usize, u8, i64, u32),
    /// Both inputs' watermark moves up to this.
    Watermark(i64),
}

fn instance(op: &str, config: Value) -> OperatorInstance {
    let reg = crate::with_builtins();
    let cfg = InstanceConfig {
        vertex: "join".into(),
        instance: 0,
        inputs: 2,
        input_ports: vec![0, 1],
        outputs: vec![OutEdge {
            kind: EdgeKind::Forward,
            targets: 1,
            self_index: 0,
        }],
        routing: None,
        batch_size: 1 << 20,
        linger_ms: 0,
        idle_timeout_ms: u64::MAX,
    };
    let init = InitContext {
        ring: RingConfig::new(16, 1).unwrap(),
        ..InitContext::for_test("join")
    };
    match reg.instantiate(op, &config, &init, cfg, 0) {
        Ok(Instance::Operator(i)) => i,
        Ok(Instance::Source(_)) => panic!("{op} is a source"),
        Err(e) => panic!("{op}: {e}"),
    }
}

/// Runs `steps` (then the end of both inputs) and returns every (left id, right id,
/// extra) row emitted, sorted, and the late count.
fn run(op: &str, config: Value, steps: &[Step]) -> (Vec<(u32, u32, i64)>, u64) {
    let mut inst = instance(op, config);
    let mut out = Vec::new();
    let mut collect = |o: Vec<ringflow_stream::instance::Outgoing>| {
        for m in o {
            if let Message::Batch(b) = m.msg {
                for item in b.downcast::<Value>().unwrap() {
                    let v = item.value;
                    let l = v["left"]["id"].as_u64().unwrap() as u32;
                    let r = v["right"]["id"].as_u64().unwrap() as u32;
                    let w = v["window_start"].as_i64().unwrap_or(0);
                    assert_eq!(item.key.as_deref(), v["key"].as_str());
                    out.push((l, r, w));
                }
            }
        }
    };
    let mut wm = MIN_TIME;
    for s in steps {
        match *s {
            Step::Record(side, key, t, id) => {
                let batch = vec![Item {
                    key: Some(format!("k{key}")),
                    value: json!({ "t": t, "id": id }),
                }];
                collect(
                    inst.handle(side, Message::Batch(AnyBatch::new(batch)), 0)
                        .unwrap(),
                );
            }
            Step::Watermark(w) => {
                if w > wm {
                    wm = w;
                    for ch in 0..2 {
                        collect(inst.handle(ch, Message::Watermark(w), 0).unwrap());
                    }
                }
            }
        }
    }
    for ch in 0..2 {
        collect(inst.handle(ch, Message::End, 0).unwrap());
    }
    collect(inst.flush());
    out.sort_unstable();
    let late = inst
        .metrics()
        .counters
        .get("late_dropped")
        .copied()
        .unwrap_or(0);
    (out, late)
}

/// A record a join kept: key, time, id.
type Kept = (u8, i64, u32);

/// The records each side kept, by the rule of the join: `late(time, watermark)`.
fn admitted(steps: &[Step], late: impl Fn(i64, i64) -> bool) -> (Vec<Kept>, Vec<Kept>, u64) {
    let (mut lefts, mut rights, mut dropped) = (Vec::new(), Vec::new(), 0);
    let mut wm = MIN_TIME;
    for s in steps {
        match *s {
            Step::Record(side, key, t, id) => {
                if late(t, wm) {
                    dropped += 1;
                } else if side == 0 {
                    lefts.push((key, t, id));
                } else {
                    rights.push((key, t, id));
                }
            }
            Step::Watermark(w) => wm = wm.max(w),
        }
    }
    (lefts, rights, dropped)
}

fn window_reference(steps: &[Step], size: i64) -> (Vec<(u32, u32, i64)>, u64) {
    let start = |t: i64| t.div_euclid(size) * size;
    let (lefts, rights, dropped) = admitted(steps, |t, wm| start(t) + size - 1 <= wm);
    let mut rows = Vec::new();
    for &(lk, lt, lid) in &lefts {
        for &(rk, rt, rid) in &rights {
            if lk == rk && start(lt) == start(rt) {
                rows.push((lid, rid, start(lt)));
            }
        }
    }
    rows.sort_unstable();
    (rows, dropped)
}

fn interval_reference(steps: &[Step], lower: i64, upper: i64) -> (Vec<(u32, u32, i64)>, u64) {
    let (lefts, rights, dropped) = admitted(steps, |t, wm| t <= wm);
    let mut rows = Vec::new();
    for &(lk, lt, lid) in &lefts {
        for &(rk, rt, rid) in &rights {
            if lk == rk && lt + lower <= rt && rt <= lt + upper {
                rows.push((lid, rid, 0));
            }
        }
    }
    rows.sort_unstable();
    (rows, dropped)
}

/// Records with times roughly in order (each up to `jitter` behind a rising clock, so
/// some arrive out of order and some after the watermark passed them), keys from a small
/// set, watermarks now and then that trail the clock by a random amount.
fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (
            0usize..2,
            0u8..4,
            0i64..40,
            0i64..30,
            prop::bool::weighted(0.15),
            0i64..25,
        ),
        1..120,
    )
    .prop_map(|raw| {
        let mut clock = 0i64;
        let mut steps = Vec::new();
        for (i, (side, key, advance, jitter, wm, lag)) in raw.into_iter().enumerate() {
            clock += advance / 4;
            steps.push(Step::Record(side, key, clock - jitter, i as u32));
            if wm {
                steps.push(Step::Watermark(clock - lag));
            }
        }
        steps
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn the_window_join_equals_a_nested_loop_over_the_records_it_kept(
        steps in steps(), size in 1i64..40,
    ) {
        let got = run("join.window", json!({ "size_ms": size, "time_field": "t" }), &steps);
        prop_assert_eq!(got, window_reference(&steps, size));
    }

    #[test]
    fn the_interval_join_equals_a_nested_loop_over_the_records_it_kept(
        steps in steps(), lower in -20i64..10, width in 0i64..30,
    ) {
        let config = json!({ "lower_ms": lower, "upper_ms": lower + width, "time_field": "t" });
        let got = run("join.interval", config, &steps);
        prop_assert_eq!(got, interval_reference(&steps, lower, lower + width));
    }
}

#[test]
fn a_join_takes_exactly_two_inputs_of_the_right_types() {
    let reg = crate::with_builtins();
    let spec = |inputs: &str| {
        ringflow_stream::JobSpec::from_toml(&format!(
            r#"
name = "j"
[[vertex]]
name = "a"
operator = "source.generate"
config = {{ count = 1 }}
[[vertex]]
name = "b"
operator = "source.generate"
config = {{ count = 1 }}
[[vertex]]
name = "j"
operator = "join.window"
inputs = {inputs}
config = {{ size_ms = 10, time_field = "t" }}
[[vertex]]
name = "out"
operator = "sink.discard"
inputs = ["j"]
"#
        ))
        .unwrap()
    };
    let init = InitContext::for_test("x");
    let one = ringflow_stream::plan(&spec(r#"["a"]"#), &reg, &init).unwrap_err();
    assert!(one.to_string().contains("exactly two"), "{one}");
    ringflow_stream::plan(&spec(r#"["a", "b"]"#), &reg, &init).expect("two inputs plan");
    let bad = json!({ "size_ms": 10 });
    assert!(reg
        .check_config("join.window", &bad, &init)
        .unwrap_err()
        .0
        .contains("time_field"));
    let bad = json!({ "lower_ms": 5, "upper_ms": 1, "time_field": "t" });
    assert!(reg.check_config("join.interval", &bad, &init).is_err());
}

#[test]
fn both_joins_pair_records_and_count_the_late_ones() {
    use Step::*;
    let steps = [
        Record(0, 1, 3, 1),
        Record(1, 1, 7, 2),
        Record(1, 2, 7, 3),
        Watermark(9),
        Record(0, 1, 8, 4),
        Record(0, 1, 12, 5),
        Record(1, 1, 14, 6),
    ];
    let (rows, late) = run(
        "join.window",
        json!({ "size_ms": 10, "time_field": "t" }),
        &steps,
    );
    assert_eq!(rows, vec![(1, 2, 0), (5, 6, 10)]);
    assert_eq!(late, 1, "the left at 8 came after its window closed");
    let config = json!({ "lower_ms": 0, "upper_ms": 5, "time_field": "t" });
    let (rows, late) = run("join.interval", config, &steps);
    assert_eq!(rows, vec![(1, 2, 0), (5, 6, 0)]);
    assert_eq!(late, 1);
}
