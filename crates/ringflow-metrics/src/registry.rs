//! Metric families (one name, many label sets) and the registry that renders them.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, RwLock};

use dashmap::DashMap;

use crate::metric::{Counter, Gauge, Histogram};
use crate::text::{escape_help, escape_label_value, format_value};
use crate::MetricsError;

/// The Prometheus type of a family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic count (`counter`).
    Counter,
    /// Value that goes up and down (`gauge`).
    Gauge,
    /// Bucketed observations (`histogram`).
    Histogram,
}

impl Kind {
    /// The name used on the `# TYPE` line.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// What a family holds per label set. Implemented by [`Counter`], [`Gauge`] and
/// [`Histogram`]; sealed.
pub trait Metric: Clone + Send + Sync + 'static + private::Sealed {
    /// The family type.
    const KIND: Kind;
    #[doc(hidden)]
    fn create(bounds: &Arc<[f64]>) -> Self;
    #[doc(hidden)]
    fn write(&self, name: &str, labels: &str, out: &mut String);
}

mod private {
    pub trait Sealed {}
    impl Sealed for super::Counter {}
    impl Sealed for super::Gauge {}
    impl Sealed for super::Histogram {}
}

/// Writes `name{labels} value` (no braces when there are no labels).
fn sample(out: &mut String, name: &str, suffix: &str, labels: &str, value: &str) {
    out.push_str(name);
    out.push_str(suffix);
    if !labels.is_empty() {
        out.push('{');
        out.push_str(labels);
        out.push('}');
    }
    out.push(' ');
    out.push_str(value);
    out.push('\n');
}

impl Metric for Counter {
    const KIND: Kind = Kind::Counter;
    fn create(_: &Arc<[f64]>) -> Self {
        Counter::new()
    }
    fn write(&self, name: &str, labels: &str, out: &mut String) {
        sample(out, name, "", labels, &self.get().to_string());
    }
}

impl Metric for Gauge {
    const KIND: Kind = Kind::Gauge;
    fn create(_: &Arc<[f64]>) -> Self {
        Gauge::new()
    }
    fn write(&self, name: &str, labels: &str, out: &mut String) {
        sample(out, name, "", labels, &format_value(self.get()));
    }
}

impl Metric for Histogram {
    const KIND: Kind = Kind::Histogram;
    fn create(bounds: &Arc<[f64]>) -> Self {
        Histogram::with_bounds(bounds.clone())
    }
    fn write(&self, name: &str, labels: &str, out: &mut String) {
        let snap = self.snapshot();
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, count) in &snap.buckets {
            let with_le = format!("{labels}{sep}le=\"{}\"", format_value(*bound));
            sample(out, name, "_bucket", &with_le, &count.to_string());
        }
        sample(out, name, "_sum", labels, &format_value(snap.sum));
        sample(out, name, "_count", labels, &snap.count.to_string());
    }
}

struct FamilyInner<M, const N: usize> {
    name: String,
    help: String,
    labels: [String; N],
    bounds: Arc<[f64]>,
    series: DashMap<[String; N], M>,
}

/// A metric family: one name and help text, a fixed list of `N` label names, and one
/// metric of type `M` per set of label values. Cheap to clone (clones share everything).
///
/// Look a series up once with [`Family::with`] and keep the handle where it is updated
/// often: the lookup hashes and allocates the label values, the update is one atomic.
pub struct Family<M, const N: usize> {
    inner: Arc<FamilyInner<M, N>>,
}

impl<M, const N: usize> Clone for Family<M, N> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<M, const N: usize> std::fmt::Debug for Family<M, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Family")
            .field("name", &self.inner.name)
            .field("labels", &self.inner.labels)
            .field("series", &self.inner.series.len())
            .finish()
    }
}

/// A family of counters.
pub type CounterVec<const N: usize> = Family<Counter, N>;
/// A family of gauges.
pub type GaugeVec<const N: usize> = Family<Gauge, N>;
/// A family of histograms (all with the family's buckets).
pub type HistogramVec<const N: usize> = Family<Histogram, N>;

impl<M: Metric, const N: usize> Family<M, N> {
    fn build(name: &str, help: &str, labels: [&str; N], bounds: Arc<[f64]>) -> Self {
        let f = Self {
            inner: Arc::new(FamilyInner {
                name: name.to_string(),
                help: help.to_string(),
                labels: labels.map(str::to_owned),
                bounds,
                series: DashMap::new(),
            }),
        };
        if N == 0 {
            // A family without labels has exactly one series: show it from the start.
            let _ = f.with([""; N]);
        }
        f
    }

    /// The metric for these label values (in the order of the family's label names),
    /// created at zero on first use.
    pub fn with(&self, values: [&str; N]) -> M {
        let key = values.map(str::to_owned);
        if let Some(m) = self.inner.series.get(&key) {
            return m.clone();
        }
        self.inner
            .series
            .entry(key)
            .or_insert_with(|| M::create(&self.inner.bounds))
            .clone()
    }

    /// Removes the series with these label values; handles already taken keep working
    /// but are no longer rendered. Whether it existed.
    pub fn remove(&self, values: [&str; N]) -> bool {
        self.inner
            .series
            .remove(&values.map(str::to_owned))
            .is_some()
    }

    /// Keeps only the series whose label values satisfy `keep`.
    pub fn retain(&self, mut keep: impl FnMut(&[String; N]) -> bool) {
        self.inner.series.retain(|k, _| keep(k));
    }

    /// Number of series.
    pub fn len(&self) -> usize {
        self.inner.series.len()
    }

    /// Whether the family has no series.
    pub fn is_empty(&self) -> bool {
        self.inner.series.is_empty()
    }

    /// The family's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }
}

trait Collect: Send + Sync {
    fn collect(&self, out: &mut String);
}

impl<M: Metric, const N: usize> Collect for FamilyInner<M, N> {
    fn collect(&self, out: &mut String) {
        let mut series: Vec<([String; N], M)> = self
            .series
            .iter()
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect();
        if series.is_empty() {
            return;
        }
        series.sort_by(|a, b| a.0.cmp(&b.0));
        let _ = writeln!(out, "# HELP {} {}", self.name, escape_help(&self.help));
        let _ = writeln!(out, "# TYPE {} {}", self.name, M::KIND.as_str());
        let mut labels = String::new();
        for (values, metric) in &series {
            labels.clear();
            for (i, (k, v)) in self.labels.iter().zip(values.iter()).enumerate() {
                if i > 0 {
                    labels.push(',');
                }
                let _ = write!(labels, "{k}=\"{}\"", escape_label_value(v));
            }
            metric.write(&self.name, &labels, out);
        }
    }
}

struct Registered {
    kind: Kind,
    labels: Vec<String>,
    bounds: Arc<[f64]>,
    any: Arc<dyn Any + Send + Sync>,
    collect: Arc<dyn Collect>,
}

/// A set of metric families, rendered together in the Prometheus text format.
///
/// Registering a name again with the same type, label names (and buckets) returns the
/// existing family, so independent parts of a program can ask for the same metric.
#[derive(Default)]
pub struct Registry {
    families: RwLock<BTreeMap<String, Registered>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self
            .families
            .read()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        f.debug_struct("Registry")
            .field("families", &names)
            .finish()
    }
}

fn valid_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    !s.starts_with("__")
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn register<M: Metric, const N: usize>(
        &self,
        name: &str,
        help: &str,
        labels: [&str; N],
        bounds: &[f64],
    ) -> Result<Family<M, N>, MetricsError> {
        if !valid_metric_name(name) {
            return Err(MetricsError::InvalidName(name.to_string()));
        }
        for (i, l) in labels.iter().enumerate() {
            let reserved = M::KIND == Kind::Histogram && *l == "le";
            if !valid_label_name(l) || reserved || labels[..i].contains(l) {
                return Err(MetricsError::InvalidLabel {
                    metric: name.to_string(),
                    label: l.to_string(),
                });
            }
        }
        if M::KIND == Kind::Histogram
            && (bounds.is_empty()
                || bounds.iter().any(|b| !b.is_finite())
                || bounds.windows(2).any(|w| w[0] >= w[1]))
        {
            return Err(MetricsError::InvalidBuckets(name.to_string()));
        }
        let mut families = self.families.write().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = families.get(name) {
            let conflict = |reason: String| MetricsError::Conflict {
                name: name.to_string(),
                reason,
            };
            if r.kind != M::KIND {
                return Err(conflict(format!(
                    "it is a {}, not a {}",
                    r.kind.as_str(),
                    M::KIND.as_str()
                )));
            }
            if r.labels
                .iter()
                .map(String::as_str)
                .ne(labels.iter().copied())
            {
                return Err(conflict(format!("its labels are {:?}", r.labels)));
            }
            if *r.bounds != *bounds {
                return Err(conflict(format!("its buckets are {:?}", r.bounds)));
            }
            return match r.any.clone().downcast::<FamilyInner<M, N>>() {
                Ok(inner) => Ok(Family { inner }),
                Err(_) => Err(conflict("type mismatch".into())),
            };
        }
        let bounds: Arc<[f64]> = Arc::from(bounds);
        let family = Family::<M, N>::build(name, help, labels, bounds.clone());
        families.insert(
            name.to_string(),
            Registered {
                kind: M::KIND,
                labels: labels.iter().map(|s| s.to_string()).collect(),
                bounds,
                any: family.inner.clone(),
                collect: family.inner.clone(),
            },
        );
        Ok(family)
    }

    /// Like `register`, but on error logs it and returns a working family that is not
    /// rendered: a metrics mistake never takes a node down.
    fn register_or_detached<M: Metric, const N: usize>(
        &self,
        name: &str,
        help: &str,
        labels: [&str; N],
        bounds: &[f64],
    ) -> Family<M, N> {
        self.register(name, help, labels, bounds)
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "metric not registered: it will not be exported");
                Family::build(name, help, labels, Arc::from(bounds))
            })
    }

    /// Registers (or finds) a counter family.
    pub fn try_counter<const N: usize>(
        &self,
        name: &str,
        help: &str,
        labels: [&str; N],
    ) -> Result<CounterVec<N>, MetricsError> {
        self.register(name, help, labels, &[])
    }

    /// Registers (or finds) a counter family; on a registration error (bad name,
    /// conflicting earlier registration) logs a warning and returns a family that works
    /// but is not exported.
    pub fn counter<const N: usize>(
        &self,
        name: &str,
        help: &str,
        labels: [&str; N],
    ) -> CounterVec<N> {
        self.register_or_detached(name, help, labels, &[])
    }

    /// Registers (or finds) a gauge family.
    pub fn try_gauge<const N: usize>(
        &self,
        name: &str,
        help: &str,
        labels: [&str; N],
    ) -> Result<GaugeVec<N>, MetricsError> {
        self.register(name, help, labels, &[])
    }

    /// Registers (or finds) a gauge family; errors as for [`Registry::counter`].
    pub fn gauge<const N: usize>(&self, name: &str, help: &str, labels: [&str; N]) -> GaugeVec<N> {
        self.register_or_detached(name, help, labels, &[])
    }

    /// Registers (or finds) a histogram family with upper bucket bounds `buckets`
    /// (finite, strictly increasing; `+Inf` is implicit).
    pub fn try_histogram<const N: usize>(
        &self,
        name: &str,
        help: &str,
        labels: [&str; N],
        buckets: &[f64],
    ) -> Result<HistogramVec<N>, MetricsError> {
        self.register(name, help, labels, buckets)
    }

    /// Registers (or finds) a histogram family; errors as for [`Registry::counter`]
    /// (invalid buckets are replaced by a single `+Inf` bucket in the detached family).
    pub fn histogram<const N: usize>(
        &self,
        name: &str,
        help: &str,
        labels: [&str; N],
        buckets: &[f64],
    ) -> HistogramVec<N> {
        match self.register(name, help, labels, buckets) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "metric not registered: it will not be exported");
                Family::build(name, help, labels, Arc::from(&[][..]))
            }
        }
    }

    /// Appends every family with at least one series, in name order, in the Prometheus
    /// text exposition format (version 0.0.4).
    pub fn render_into(&self, out: &mut String) {
        let collectors: Vec<Arc<dyn Collect>> = self
            .families
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|r| r.collect.clone())
            .collect();
        for c in collectors {
            c.collect(out);
        }
    }

    /// Every family in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_help_type_and_sorted_series() {
        let r = Registry::new();
        let c = r.counter(
            "demo_requests_total",
            "Requests handled.",
            ["op", "outcome"],
        );
        c.with(["put", "ok"]).inc_by(3);
        c.with(["get", "ok"]).inc();
        let g = r.gauge("demo_epoch", "Epoch acted on.", []);
        g.with([]).set(42.0);
        let text = r.render();
        assert_eq!(
            text,
            "# HELP demo_epoch Epoch acted on.\n\
             # TYPE demo_epoch gauge\n\
             demo_epoch 42\n\
             # HELP demo_requests_total Requests handled.\n\
             # TYPE demo_requests_total counter\n\
             demo_requests_total{op=\"get\",outcome=\"ok\"} 1\n\
             demo_requests_total{op=\"put\",outcome=\"ok\"} 3\n"
        );
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        let r = Registry::new();
        let g = r.gauge("x", "line one\nback\\slash \"quotes\" stay", ["v"]);
        g.with(["a\"b\\c\nd"]).set(1.5);
        let text = r.render();
        assert!(
            text.contains("# HELP x line one\\nback\\\\slash \"quotes\" stay\n"),
            "{text}"
        );
        assert!(text.contains("x{v=\"a\\\"b\\\\c\\nd\"} 1.5\n"), "{text}");
    }

    #[test]
    fn histograms_render_cumulative_buckets_sum_and_count() {
        let r = Registry::new();
        let h = r.histogram("lat_seconds", "Latency.", ["op"], &[0.01, 0.1]);
        let put = h.with(["put"]);
        put.observe(0.005);
        put.observe(0.05);
        put.observe(3.0);
        let text = r.render();
        let expected = "# HELP lat_seconds Latency.\n\
                        # TYPE lat_seconds histogram\n\
                        lat_seconds_bucket{op=\"put\",le=\"0.01\"} 1\n\
                        lat_seconds_bucket{op=\"put\",le=\"0.1\"} 2\n\
                        lat_seconds_bucket{op=\"put\",le=\"+Inf\"} 3\n\
                        lat_seconds_sum{op=\"put\"} 3.055\n\
                        lat_seconds_count{op=\"put\"} 3\n";
        assert_eq!(text, expected);
        let plain = r.histogram("plain_seconds", "No labels.", [], &[1.0]);
        plain.with([]).observe(0.5);
        assert!(r.render().contains("plain_seconds_bucket{le=\"1\"} 1\n"));
    }

    #[test]
    fn registering_again_returns_the_same_family() {
        let r = Registry::new();
        let a = r.counter("same_total", "x", ["peer"]);
        let b = r.counter("same_total", "other help is ignored", ["peer"]);
        a.with(["p"]).inc();
        b.with(["p"]).inc();
        assert_eq!(a.with(["p"]).get(), 2);
    }

    #[test]
    fn conflicting_or_invalid_registrations_are_refused() {
        let r = Registry::new();
        let _ = r.counter("c_total", "x", ["a"]);
        assert!(matches!(
            r.try_gauge("c_total", "x", ["a"]),
            Err(MetricsError::Conflict { .. })
        ));
        assert!(matches!(
            r.try_counter("c_total", "x", ["b"]),
            Err(MetricsError::Conflict { .. })
        ));
        assert!(matches!(
            r.try_counter("c_total", "x", ["a", "b"]),
            Err(MetricsError::Conflict { .. })
        ));
        assert!(matches!(
            r.try_counter("9bad", "x", []),
            Err(MetricsError::InvalidName(_))
        ));
        assert!(matches!(
            r.try_counter("ok", "x", ["__x"]),
            Err(MetricsError::InvalidLabel { .. })
        ));
        assert!(matches!(
            r.try_counter("ok", "x", ["a", "a"]),
            Err(MetricsError::InvalidLabel { .. })
        ));
        assert!(matches!(
            r.try_histogram("h", "x", ["le"], &[1.0]),
            Err(MetricsError::InvalidLabel { .. })
        ));
        assert!(matches!(
            r.try_histogram("h", "x", [], &[1.0, 1.0]),
            Err(MetricsError::InvalidBuckets(_))
        ));
        assert!(matches!(
            r.try_histogram("h", "x", [], &[f64::NAN]),
            Err(MetricsError::InvalidBuckets(_))
        ));
        let _ = r.histogram("h2", "x", [], &[1.0]);
        assert!(matches!(
            r.try_histogram("h2", "x", [], &[2.0]),
            Err(MetricsError::Conflict { .. })
        ));
        // The infallible form still hands out a working, unexported family.
        let detached = r.gauge("c_total", "x", ["a"]);
        detached.with(["v"]).set(5.0);
        assert_eq!(detached.with(["v"]).get(), 5.0);
        assert!(!r.render().contains("c_total{a=\"v\"} 5"));
    }

    #[test]
    fn removed_series_disappear_and_empty_families_are_not_rendered() {
        let r = Registry::new();
        let g = r.gauge("q", "x", ["job", "vertex"]);
        g.with(["j1", "a"]).set(1.0);
        g.with(["j1", "b"]).set(2.0);
        g.with(["j2", "a"]).set(3.0);
        assert!(g.remove(["j2", "a"]));
        assert!(!g.remove(["j2", "a"]));
        assert_eq!(g.len(), 2);
        g.retain(|v| v[0] != "j1");
        assert!(g.is_empty());
        assert_eq!(r.render(), "");
    }

    #[test]
    fn special_values_render_as_prometheus_spells_them() {
        let r = Registry::new();
        let g = r.gauge("s", "x", ["k"]);
        g.with(["inf"]).set(f64::INFINITY);
        g.with(["nan"]).set(f64::NAN);
        g.with(["neg"]).set(f64::NEG_INFINITY);
        g.with(["small"]).set(0.0001);
        let text = r.render();
        assert!(text.contains("s{k=\"inf\"} +Inf\n"));
        assert!(text.contains("s{k=\"nan\"} NaN\n"));
        assert!(text.contains("s{k=\"neg\"} -Inf\n"));
        assert!(text.contains("s{k=\"small\"} 0.0001\n"));
    }
}
