//! `source.nexmark`: the Nexmark event stream, generated in parallel by every instance.

use serde::{Deserialize, Serialize};

use super::generator::{event, time_of, GeneratorConfig};
use super::model::Event;
use ringflow_stream::operator::{InitContext, OpError, OpResult};
use ringflow_stream::source::{Source, SourceOutput, SourcePoll};

/// Configuration of `source.nexmark`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NexmarkConfig {
    /// Events over all instances before the source ends (default 1,000,000).
    #[serde(default = "default_events")]
    pub events: u64,
    /// Seed: the same seed and count give the same events on any number of workers.
    #[serde(default)]
    pub seed: u64,
    /// Events per second over all instances, in processing time; unset: as fast as
    /// possible.
    #[serde(default)]
    pub rate: Option<f64>,
    /// Events per second of event time (the reference's `first_event_rate`, default
    /// 10,000): event `n` happens `n / event_rate` s after `base_time_ms`.
    #[serde(default = "default_event_rate")]
    pub event_rate: f64,
    /// Event time of the first event (ms since the Unix epoch; default 2023-11-14T22:13:20Z).
    #[serde(default = "default_base_time")]
    pub base_time_ms: i64,
}

fn default_events() -> u64 {
    1_000_000
}

fn default_event_rate() -> f64 {
    10_000.0
}

fn default_base_time() -> i64 {
    GeneratorConfig::default().base_time_ms
}

/// Generates events `n ≡ instance (mod instances)` below `events`, in order, so each
/// instance's events are in event-time order and its watermark is the time of its next
/// event less 1 ms. Its checkpoint position is how many it emitted; a restore needs the
/// same number of instances (the share of each depends on it). Counter: `events`.
pub struct NexmarkSource {
    gen: GeneratorConfig,
    events: u64,
    instance: u64,
    instances: u64,
    /// Events this instance emitted.
    emitted: u64,
    rate: Option<f64>,
    pace: crate::io::Pace,
}

#[derive(Serialize, Deserialize)]
struct Position {
    instances: u64,
    instance: u64,
    emitted: u64,
}

impl NexmarkSource {
    /// The event number of this instance's `j`-th event.
    fn number(&self, j: u64) -> u64 {
        self.instance + j * self.instances
    }
}

impl Source for NexmarkSource {
    type Out = Event;
    type Config = NexmarkConfig;

    fn create(cfg: NexmarkConfig, init: &InitContext) -> OpResult<Self> {
        if !cfg.event_rate.is_finite() || cfg.event_rate <= 0.0 {
            return Err("source.nexmark: 'event_rate' must be a positive number".into());
        }
        if cfg.rate.is_some_and(|r| !r.is_finite() || r <= 0.0) {
            return Err("source.nexmark: 'rate' must be a positive number".into());
        }
        let instances = init.instances.max(1) as u64;
        Ok(NexmarkSource {
            gen: GeneratorConfig {
                seed: cfg.seed,
                base_time_ms: cfg.base_time_ms,
                event_rate: cfg.event_rate,
            },
            events: cfg.events,
            instance: init.instance as u64,
            instances,
            emitted: 0,
            rate: cfg.rate.map(|r| r / instances as f64),
            pace: Default::default(),
        })
    }

    fn poll(&mut self, out: &mut SourceOutput<'_, Event>) -> OpResult<SourcePoll> {
        if let Some(rate) = self.rate {
            match self.pace.allowed(rate, out.now()) {
                Ok(left) => out.limit(left as usize),
                Err(wait) => return Ok(SourcePoll::Wait(wait)),
            }
        }
        let before = self.emitted;
        while out.remaining() > 0 {
            let n = self.number(self.emitted);
            if n >= self.events {
                break;
            }
            out.emit(event(&self.gen, n));
            self.emitted += 1;
        }
        let made = self.emitted - before;
        self.pace.sent(made);
        if made > 0 {
            out.count("events", made);
        }
        let next = self.number(self.emitted);
        if next >= self.events {
            return Ok(SourcePoll::Done);
        }
        out.watermark(time_of(&self.gen, next) - 1);
        Ok(SourcePoll::More)
    }

    fn snapshot(&mut self) -> OpResult<Option<Vec<u8>>> {
        ringflow_stream::checkpoint::to_bytes(&Position {
            instances: self.instances,
            instance: self.instance,
            emitted: self.emitted,
        })
        .map(Some)
    }

    fn restore(&mut self, positions: Vec<Vec<u8>>) -> OpResult {
        for p in positions {
            let p: Position = ringflow_stream::checkpoint::from_bytes(&p)?;
            if p.instances != self.instances {
                return Err(OpError(format!(
                    "source.nexmark: a checkpoint of {} instances cannot be restored on {} \
                     (each instance's share of the events depends on the count)",
                    p.instances, self.instances
                )));
            }
            if p.instance == self.instance {
                self.emitted = p.emitted;
            }
        }
        Ok(())
    }
}
