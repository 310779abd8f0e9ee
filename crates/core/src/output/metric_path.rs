//! Metric paths: the numeric leaves of a metrics record, by their dotted names
//! (`counts.label_coverage`, `classification.f1`, `drift.features.amount.psi`,
//! `detectors.adwin.drift`, …), and of an estimation-check record
//! (`estimation_check.metrics.accuracy.abs_error`, read by [`MetricPath::check_value`]).
//!
//! The tables below are the only list of metric names. [`for_each_metric`] walks a record
//! with them (Prometheus gauges), [`MetricPath::parse`] resolves a rule's path with them
//! (validated once, then read as typed values, no JSON), and [`catalog`] lists them as
//! patterns (the documentation's table is checked against it). A boolean leaf reads as 1
//! or 0; a non-finite number as no value.

use std::borrow::Cow;
use std::fmt;

use super::{
    Averages, CheckMetric, CheckMetrics, ClassMetrics, ClassificationMetrics, Counts, DetectorOut,
    DetectorsOut, DriftOut, DriftValue, EstimatedMetric, EstimatedMetrics, EstimationCheck,
    MetricsRecord, Prf, RegressionMetrics,
};
use crate::settings::Task;

/// A named numeric leaf of `T`.
type Leaf<T> = (&'static str, fn(&T) -> Option<f64>);

/// A named part `P` of `T` (always there).
type Part<T, P> = (&'static str, fn(&T) -> &P);

/// A named part `P` of `T` that a record may lack.
type OptionalPart<T, P> = (&'static str, fn(&T) -> Option<&P>);

fn count(n: u64) -> Option<f64> {
    Some(n as f64)
}

fn flag(b: bool) -> Option<f64> {
    Some(if b { 1.0 } else { 0.0 })
}

const COUNTS: &[Leaf<Counts>] = &[
    ("predictions", |c| count(c.predictions)),
    ("outcomes", |c| count(c.outcomes)),
    ("joined", |c| count(c.joined)),
    ("expired_predictions", |c| count(c.expired_predictions)),
    ("orphan_outcomes", |c| count(c.orphan_outcomes)),
    ("duplicates", |c| count(c.duplicates)),
    ("late", |c| count(c.late)),
    ("invalid", |c| count(c.invalid)),
    ("label_coverage", |c| c.label_coverage),
];

const CLASSIFICATION: &[Leaf<ClassificationMetrics>] = &[
    ("accuracy", |c| c.accuracy),
    ("precision", |c| c.precision),
    ("recall", |c| c.recall),
    ("f1", |c| c.f1),
    ("roc_auc", |c| c.roc_auc),
    ("log_loss", |c| c.log_loss),
    ("brier", |c| c.brier),
];

const AVERAGES: &[Part<Averages, Prf>] = &[
    ("micro", |a| &a.micro),
    ("macro", |a| &a.macro_),
    ("weighted", |a| &a.weighted),
];

const PRF: &[Leaf<Prf>] = &[
    ("precision", |p| p.precision),
    ("recall", |p| p.recall),
    ("f1", |p| p.f1),
];

const PER_CLASS: &[Leaf<ClassMetrics>] = &[
    ("precision", |m| m.precision),
    ("recall", |m| m.recall),
    ("f1", |m| m.f1),
    ("support", |m| count(m.support)),
];

const REGRESSION: &[Leaf<RegressionMetrics>] = &[
    ("mae", |r| r.mae),
    ("rmse", |r| r.rmse),
    ("mape", |r| r.mape),
    ("r2", |r| r.r2),
];

/// Every statistic a drift variable can have; those of the other kind read as no value.
const DRIFT: &[Leaf<DriftValue>] = &[
    ("psi", |v| match v {
        DriftValue::Numeric(n) => n.psi,
        DriftValue::Categorical(c) => c.psi,
    }),
    ("wasserstein", |v| match v {
        DriftValue::Numeric(n) => n.wasserstein,
        DriftValue::Categorical(_) => None,
    }),
    ("js", |v| match v {
        DriftValue::Numeric(n) => n.js,
        DriftValue::Categorical(c) => c.js,
    }),
    ("drifted", |v| match v {
        DriftValue::Numeric(n) => n.drifted.and_then(flag),
        DriftValue::Categorical(c) => c.drifted.and_then(flag),
    }),
    ("ks.statistic", |v| match v {
        DriftValue::Numeric(n) => n.ks.statistic,
        DriftValue::Categorical(_) => None,
    }),
    ("ks.p_value", |v| match v {
        DriftValue::Numeric(n) => n.ks.p_value,
        DriftValue::Categorical(_) => None,
    }),
    ("chi_square.statistic", |v| match v {
        DriftValue::Numeric(_) => None,
        DriftValue::Categorical(c) => c.chi_square.statistic,
    }),
    ("chi_square.p_value", |v| match v {
        DriftValue::Numeric(_) => None,
        DriftValue::Categorical(c) => c.chi_square.p_value,
    }),
];

/// The drift variables besides features, with their place in the `drift` object.
const DRIFT_GROUPS: &[OptionalPart<DriftOut, DriftValue>] = &[
    ("prediction", |d| d.prediction.as_ref()),
    ("label", |d| d.label.as_ref()),
    ("score", |d| d.score.as_ref()),
];

const DETECTORS: &[OptionalPart<DetectorsOut, DetectorOut>] = &[
    ("adwin", |d| d.adwin.as_ref()),
    ("ddm", |d| d.ddm.as_ref()),
    ("page_hinkley", |d| d.page_hinkley.as_ref()),
];

const DETECTOR: &[Leaf<DetectorOut>] = &[
    ("drift", |d| flag(d.drift)),
    ("estimation", |d| d.estimation),
    ("detections", |d| count(d.detections)),
];

/// The estimated metrics (`estimated.metrics.<name>`).
const ESTIMATED: &[Part<EstimatedMetrics, EstimatedMetric>] = &[
    ("accuracy", |m| &m.accuracy),
    ("precision", |m| &m.precision),
    ("recall", |m| &m.recall),
    ("f1", |m| &m.f1),
    ("roc_auc", |m| &m.roc_auc),
];

const ESTIMATE: &[Leaf<EstimatedMetric>] = &[
    ("value", |m| m.value),
    ("sampling_error", |m| m.sampling_error),
    ("lower", |m| m.lower),
    ("upper", |m| m.upper),
    ("threshold_lower", |m| m.threshold_lower),
    ("threshold_upper", |m| m.threshold_upper),
    ("alert", |m| flag(m.alert)),
    ("realized", |m| m.realized),
    ("realized_sampling_error", |m| m.realized_sampling_error),
];

/// The metrics of an estimation check (`estimation_check.metrics.<name>`).
const CHECKED: &[Part<CheckMetrics, CheckMetric>] = &[
    ("accuracy", |m| &m.accuracy),
    ("precision", |m| &m.precision),
    ("recall", |m| &m.recall),
    ("f1", |m| &m.f1),
    ("roc_auc", |m| &m.roc_auc),
];

const CHECK: &[Leaf<CheckMetric>] = &[
    ("estimated", |m| m.estimated),
    ("realized", |m| m.realized),
    ("error", |m| m.error),
    ("abs_error", |m| m.abs_error),
    ("sampling_error", |m| m.sampling_error),
    ("lower", |m| m.lower),
    ("upper", |m| m.upper),
    ("within_band", |m| m.within_band.and_then(flag)),
];

/// Which part of the record a metric is in.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum MetricGroup<'a> {
    Counts,
    Classification,
    /// `classification.averages.<micro|macro|weighted>`, by index in that list.
    Average(usize),
    /// `classification.per_class.<label>`.
    PerClass(Cow<'a, str>),
    Regression,
    /// `drift.features.<name>`.
    Feature(Cow<'a, str>),
    /// `drift.<prediction|label|score>`, by index in that list.
    DriftGroup(usize),
    /// `detectors.<adwin|ddm|page_hinkley>`, by index in that list.
    Detector(usize),
    /// `estimated.metrics.<accuracy|precision|recall|f1|roc_auc>`, by index in that list.
    Estimated(usize),
    /// `estimation_check.metrics.<accuracy|precision|recall|f1|roc_auc>`, by index in that
    /// list: a leaf of the estimation-check record, not of the metrics record. (Last, so
    /// that the encoding of the other variants is unchanged.)
    Check(usize),
}

/// A metric of a record: its group and the index of its leaf in the group's table.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct MetricPath<'a> {
    pub group: MetricGroup<'a>,
    leaf: usize,
}

impl<'a> MetricPath<'a> {
    /// The leaf's name (`f1`, `ks.p_value`, `label_coverage`, …).
    pub fn leaf(&self) -> &'static str {
        match &self.group {
            MetricGroup::Counts => COUNTS[self.leaf].0,
            MetricGroup::Classification => CLASSIFICATION[self.leaf].0,
            MetricGroup::Average(_) => PRF[self.leaf].0,
            MetricGroup::PerClass(_) => PER_CLASS[self.leaf].0,
            MetricGroup::Regression => REGRESSION[self.leaf].0,
            MetricGroup::Feature(_) | MetricGroup::DriftGroup(_) => DRIFT[self.leaf].0,
            MetricGroup::Detector(_) => DETECTOR[self.leaf].0,
            MetricGroup::Estimated(_) => ESTIMATE[self.leaf].0,
            MetricGroup::Check(_) => CHECK[self.leaf].0,
        }
    }

    /// For `Average` paths, `micro`, `macro` or `weighted`; for `DriftGroup` paths,
    /// `prediction`, `label` or `score`; for `Detector` paths, the detector's name; for
    /// `Estimated` and `Check` paths, the estimated metric's name.
    pub fn group_name(&self) -> Option<&'static str> {
        match self.group {
            MetricGroup::Average(i) => Some(AVERAGES[i].0),
            MetricGroup::DriftGroup(i) => Some(DRIFT_GROUPS[i].0),
            MetricGroup::Detector(i) => Some(DETECTORS[i].0),
            MetricGroup::Estimated(i) => Some(ESTIMATED[i].0),
            MetricGroup::Check(i) => Some(CHECKED[i].0),
            _ => None,
        }
    }

    /// The same path owning its names.
    pub fn into_owned(self) -> MetricPath<'static> {
        let group = match self.group {
            MetricGroup::PerClass(label) => MetricGroup::PerClass(Cow::Owned(label.into_owned())),
            MetricGroup::Feature(name) => MetricGroup::Feature(Cow::Owned(name.into_owned())),
            MetricGroup::Counts => MetricGroup::Counts,
            MetricGroup::Classification => MetricGroup::Classification,
            MetricGroup::Average(i) => MetricGroup::Average(i),
            MetricGroup::Regression => MetricGroup::Regression,
            MetricGroup::DriftGroup(i) => MetricGroup::DriftGroup(i),
            MetricGroup::Detector(i) => MetricGroup::Detector(i),
            MetricGroup::Estimated(i) => MetricGroup::Estimated(i),
            MetricGroup::Check(i) => MetricGroup::Check(i),
        };
        MetricPath {
            group,
            leaf: self.leaf,
        }
    }

    /// Resolves a dotted path for a model of `task` with these features; `None` when the
    /// path names no metric of such a model's records. Class labels and feature names may
    /// themselves contain dots: a label is what lies between `per_class.` and the last
    /// dot, a feature is matched against the model's feature names.
    pub fn parse(path: &str, task: Task, features: &[String]) -> Option<MetricPath<'static>> {
        fn leaf<T>(table: &[Leaf<T>], name: &str) -> Option<usize> {
            table.iter().position(|(n, _)| *n == name)
        }
        let at = |group, leaf| MetricPath { group, leaf };
        if let Some(name) = path.strip_prefix("counts.") {
            return leaf(COUNTS, name).map(|i| at(MetricGroup::Counts, i));
        }
        if let Some(rest) = path.strip_prefix("classification.") {
            if !task.is_classification() {
                return None;
            }
            if let Some(i) = leaf(CLASSIFICATION, rest) {
                return Some(at(MetricGroup::Classification, i));
            }
            if let Some(average) = rest.strip_prefix("averages.") {
                let (kind, name) = average.split_once('.')?;
                let kind = AVERAGES.iter().position(|(n, _)| *n == kind)?;
                return leaf(PRF, name).map(|i| at(MetricGroup::Average(kind), i));
            }
            if let Some(per_class) = rest.strip_prefix("per_class.") {
                let (label, name) = per_class.rsplit_once('.')?;
                if label.is_empty() {
                    return None;
                }
                let group = MetricGroup::PerClass(Cow::Owned(label.to_string()));
                return leaf(PER_CLASS, name).map(|i| at(group, i));
            }
            return None;
        }
        if let Some(name) = path.strip_prefix("regression.") {
            if task != Task::Regression {
                return None;
            }
            return leaf(REGRESSION, name).map(|i| at(MetricGroup::Regression, i));
        }
        if let Some(rest) = path.strip_prefix("drift.") {
            if let Some(feature_path) = rest.strip_prefix("features.") {
                return features.iter().find_map(|feature| {
                    let name = feature_path
                        .strip_prefix(feature.as_str())?
                        .strip_prefix('.')?;
                    let group = MetricGroup::Feature(Cow::Owned(feature.clone()));
                    leaf(DRIFT, name).map(|i| at(group, i))
                });
            }
            let (group, name) = rest.split_once('.')?;
            let group = DRIFT_GROUPS.iter().position(|(n, _)| *n == group)?;
            return leaf(DRIFT, name).map(|i| at(MetricGroup::DriftGroup(group), i));
        }
        if let Some(rest) = path.strip_prefix("detectors.") {
            let (detector, name) = rest.split_once('.')?;
            let detector = DETECTORS.iter().position(|(n, _)| *n == detector)?;
            return leaf(DETECTOR, name).map(|i| at(MetricGroup::Detector(detector), i));
        }
        if let Some(rest) = path.strip_prefix("estimated.metrics.") {
            if !task.is_classification() {
                return None;
            }
            let (metric, name) = rest.split_once('.')?;
            let metric = ESTIMATED.iter().position(|(n, _)| *n == metric)?;
            return leaf(ESTIMATE, name).map(|i| at(MetricGroup::Estimated(metric), i));
        }
        if let Some(rest) = path.strip_prefix("estimation_check.metrics.") {
            if !task.is_classification() {
                return None;
            }
            let (metric, name) = rest.split_once('.')?;
            let metric = CHECKED.iter().position(|(n, _)| *n == metric)?;
            return leaf(CHECK, name).map(|i| at(MetricGroup::Check(metric), i));
        }
        None
    }

    /// Whether the path reads an estimation-check record ([`MetricPath::check_value`])
    /// rather than a metrics record ([`MetricPath::value`]).
    pub fn is_check(&self) -> bool {
        matches!(self.group, MetricGroup::Check(_))
    }

    /// The metric's value in an estimation check: `None` for a path of the metrics record
    /// or when the check has no such value (a null or a non-finite number).
    pub fn check_value(&self, check: &EstimationCheck) -> Option<f64> {
        let MetricGroup::Check(metric) = self.group else {
            return None;
        };
        (CHECK[self.leaf].1)((CHECKED[metric].1)(&check.metrics)).filter(|v| v.is_finite())
    }

    /// The metric's value in `record`: `None` when the record has no such value (a null,
    /// a missing part, or a non-finite number), and for a path of the estimation check.
    pub fn value(&self, record: &MetricsRecord) -> Option<f64> {
        let value = match &self.group {
            MetricGroup::Counts => (COUNTS[self.leaf].1)(&record.counts),
            MetricGroup::Classification => {
                (CLASSIFICATION[self.leaf].1)(record.classification.as_ref()?)
            }
            MetricGroup::Average(kind) => {
                let averages = &record.classification.as_ref()?.averages;
                (PRF[self.leaf].1)((AVERAGES[*kind].1)(averages))
            }
            MetricGroup::PerClass(label) => {
                let class = record
                    .classification
                    .as_ref()?
                    .per_class
                    .get(label.as_ref())?;
                (PER_CLASS[self.leaf].1)(class)
            }
            MetricGroup::Regression => (REGRESSION[self.leaf].1)(record.regression.as_ref()?),
            MetricGroup::Feature(name) => {
                let features = record.drift.as_ref()?.features.as_ref()?;
                (DRIFT[self.leaf].1)(features.get(name.as_ref())?.as_ref()?)
            }
            MetricGroup::DriftGroup(group) => {
                let drift = record.drift.as_ref()?;
                (DRIFT[self.leaf].1)((DRIFT_GROUPS[*group].1)(drift)?)
            }
            MetricGroup::Detector(detector) => {
                let detectors = record.detectors.as_ref()?;
                (DETECTOR[self.leaf].1)((DETECTORS[*detector].1)(detectors)?)
            }
            MetricGroup::Estimated(metric) => {
                let estimated = record.estimated.as_ref()?;
                (ESTIMATE[self.leaf].1)((ESTIMATED[*metric].1)(&estimated.metrics))
            }
            MetricGroup::Check(_) => None,
        };
        value.filter(|v| v.is_finite())
    }
}

impl fmt::Display for MetricPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let leaf = self.leaf();
        match &self.group {
            MetricGroup::Counts => write!(f, "counts.{leaf}"),
            MetricGroup::Classification => write!(f, "classification.{leaf}"),
            MetricGroup::Average(kind) => {
                write!(f, "classification.averages.{}.{leaf}", AVERAGES[*kind].0)
            }
            MetricGroup::PerClass(label) => write!(f, "classification.per_class.{label}.{leaf}"),
            MetricGroup::Regression => write!(f, "regression.{leaf}"),
            MetricGroup::Feature(name) => write!(f, "drift.features.{name}.{leaf}"),
            MetricGroup::DriftGroup(group) => write!(f, "drift.{}.{leaf}", DRIFT_GROUPS[*group].0),
            MetricGroup::Detector(detector) => {
                write!(f, "detectors.{}.{leaf}", DETECTORS[*detector].0)
            }
            MetricGroup::Estimated(metric) => {
                write!(f, "estimated.metrics.{}.{leaf}", ESTIMATED[*metric].0)
            }
            MetricGroup::Check(metric) => {
                write!(f, "estimation_check.metrics.{}.{leaf}", CHECKED[*metric].0)
            }
        }
    }
}

/// Calls `f` with every metric present in `record` and its value (`None` for a null or
/// non-finite one), in the order of the tables: counts, classification (top level,
/// averages, per class in label order) or regression, drift (features in name order,
/// then prediction, label, score), detectors, estimated metrics. Parts absent from the
/// record are skipped.
pub fn for_each_metric<'r>(
    record: &'r MetricsRecord,
    mut f: impl FnMut(&MetricPath<'r>, Option<f64>),
) {
    fn visit<'r, T>(
        table: &[Leaf<T>],
        group: MetricGroup<'r>,
        item: &T,
        f: &mut impl FnMut(&MetricPath<'r>, Option<f64>),
    ) {
        let mut path = MetricPath { group, leaf: 0 };
        for (i, (_, read)) in table.iter().enumerate() {
            path.leaf = i;
            f(&path, read(item).filter(|v| v.is_finite()));
        }
    }
    visit(COUNTS, MetricGroup::Counts, &record.counts, &mut f);
    if let Some(c) = &record.classification {
        visit(CLASSIFICATION, MetricGroup::Classification, c, &mut f);
        for (i, (_, prf)) in AVERAGES.iter().enumerate() {
            visit(PRF, MetricGroup::Average(i), prf(&c.averages), &mut f);
        }
        for (label, class) in &c.per_class {
            let group = MetricGroup::PerClass(Cow::Borrowed(label.as_str()));
            visit(PER_CLASS, group, class, &mut f);
        }
    }
    if let Some(r) = &record.regression {
        visit(REGRESSION, MetricGroup::Regression, r, &mut f);
    }
    if let Some(drift) = &record.drift {
        for (name, value) in drift.features.iter().flatten() {
            if let Some(value) = value {
                let group = MetricGroup::Feature(Cow::Borrowed(name.as_str()));
                visit(DRIFT, group, value, &mut f);
            }
        }
        for (i, (_, read)) in DRIFT_GROUPS.iter().enumerate() {
            if let Some(value) = read(drift) {
                visit(DRIFT, MetricGroup::DriftGroup(i), value, &mut f);
            }
        }
    }
    if let Some(detectors) = &record.detectors {
        for (i, (_, read)) in DETECTORS.iter().enumerate() {
            if let Some(detector) = read(detectors) {
                visit(DETECTOR, MetricGroup::Detector(i), detector, &mut f);
            }
        }
    }
    if let Some(estimated) = &record.estimated {
        for (i, (_, read)) in ESTIMATED.iter().enumerate() {
            visit(
                ESTIMATE,
                MetricGroup::Estimated(i),
                read(&estimated.metrics),
                &mut f,
            );
        }
    }
}

/// Every metric path as a pattern (`classification.per_class.<label>.f1`,
/// `drift.features.<feature>.psi`), with the tasks it applies to: `"all"`,
/// `"classification"` or `"regression"`. For the documentation.
pub fn catalog() -> Vec<(String, &'static str)> {
    let mut paths = Vec::new();
    let mut add = |prefix: &str, names: Vec<&str>, tasks| {
        for name in names {
            paths.push((format!("{prefix}.{name}"), tasks));
        }
    };
    fn names<T>(table: &[(&'static str, T)]) -> Vec<&'static str> {
        table.iter().map(|(n, _)| *n).collect()
    }
    add("counts", names(COUNTS), "all");
    add("classification", names(CLASSIFICATION), "classification");
    for (kind, _) in AVERAGES {
        add(
            &format!("classification.averages.{kind}"),
            names(PRF),
            "classification",
        );
    }
    add(
        "classification.per_class.<label>",
        names(PER_CLASS),
        "classification",
    );
    add("regression", names(REGRESSION), "regression");
    add("drift.features.<feature>", names(DRIFT), "all");
    for (group, _) in DRIFT_GROUPS {
        add(&format!("drift.{group}"), names(DRIFT), "all");
    }
    for (detector, _) in DETECTORS {
        add(&format!("detectors.{detector}"), names(DETECTOR), "all");
    }
    for (metric, _) in ESTIMATED {
        add(
            &format!("estimated.metrics.{metric}"),
            names(ESTIMATE),
            "classification",
        );
    }
    for (metric, _) in CHECKED {
        add(
            &format!("estimation_check.metrics.{metric}"),
            names(CHECK),
            "classification",
        );
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_and_print_back() {
        let features = vec!["amount".to_string(), "a.b".to_string()];
        for text in [
            "counts.label_coverage",
            "classification.f1",
            "classification.averages.macro.recall",
            "classification.per_class.1.0.support",
            "drift.features.amount.ks.p_value",
            "drift.features.a.b.psi",
            "drift.score.drifted",
            "detectors.page_hinkley.detections",
            "estimated.metrics.f1.value",
            "estimated.metrics.roc_auc.alert",
            "estimation_check.metrics.accuracy.abs_error",
            "estimation_check.metrics.roc_auc.within_band",
        ] {
            let path = MetricPath::parse(text, Task::Binary, &features)
                .unwrap_or_else(|| panic!("{text}"));
            assert_eq!(path.to_string(), text);
        }
        assert!(MetricPath::parse("regression.mae", Task::Binary, &features).is_none());
        assert!(MetricPath::parse("classification.f1", Task::Regression, &features).is_none());
        assert!(MetricPath::parse("classification.f2", Task::Binary, &features).is_none());
        assert!(MetricPath::parse("drift.features.age.psi", Task::Binary, &features).is_none());
        assert!(MetricPath::parse("classification.per_class..f1", Task::Binary, &[]).is_none());
        assert!(MetricPath::parse("estimated.metrics.f1.value", Task::Regression, &[]).is_none());
        assert!(MetricPath::parse("estimated.metrics.mae.value", Task::Binary, &[]).is_none());
        assert!(
            MetricPath::parse("estimation_check.metrics.f1.error", Task::Regression, &[]).is_none()
        );
        assert!(
            MetricPath::parse("estimation_check.metrics.f1.value", Task::Binary, &[]).is_none()
        );
    }

    #[test]
    fn check_paths_read_checks_and_not_metrics_records() {
        use crate::output::{CheckMetric, CheckMetrics, EstimationCheck};
        let metric = |error: f64, within: bool| CheckMetric {
            estimated: Some(0.8 + error),
            realized: Some(0.8),
            error: Some(error),
            abs_error: Some(error.abs()),
            sampling_error: Some(0.01),
            lower: Some(0.77 + error),
            upper: Some(0.83 + error),
            within_band: Some(within),
        };
        let check = EstimationCheck {
            schema: "feedback-loop.estimation-check.v1".to_string(),
            record_id: "m/-/2026-01-01T00:00:00Z/estimation-check".to_string(),
            model: "m".to_string(),
            model_version: None,
            window: crate::output::WindowBounds {
                start: 0,
                end: 60_000,
            },
            n: 10,
            labeled: 10,
            unlabeled: 0,
            metrics: CheckMetrics {
                accuracy: metric(-0.25, false),
                precision: metric(0.0, true),
                recall: metric(0.0, true),
                f1: metric(0.0, true),
                roc_auc: CheckMetric {
                    error: Some(f64::NAN),
                    ..metric(0.0, true)
                },
            },
        };
        let parse = |text| MetricPath::parse(text, Task::Binary, &[]).expect(text);
        let abs = parse("estimation_check.metrics.accuracy.abs_error");
        assert!(abs.is_check());
        assert_eq!(abs.check_value(&check), Some(0.25));
        assert_eq!(
            parse("estimation_check.metrics.accuracy.error").check_value(&check),
            Some(-0.25)
        );
        assert_eq!(
            parse("estimation_check.metrics.accuracy.within_band").check_value(&check),
            Some(0.0)
        );
        assert_eq!(
            parse("estimation_check.metrics.f1.within_band").check_value(&check),
            Some(1.0)
        );
        assert_eq!(
            parse("estimation_check.metrics.roc_auc.error").check_value(&check),
            None
        );
        let estimated = parse("estimated.metrics.accuracy.value");
        assert!(!estimated.is_check());
        assert_eq!(estimated.check_value(&check), None);
    }

    /// Snapshots hold compiled rules, so their paths in bincode (checkpoint.rs). `Check` is
    /// the last variant: the paths of the metrics record encode as they did before it
    /// existed (variant index, then the leaf), so SNAPSHOT_VERSION did not change with it.
    #[test]
    fn the_encoding_of_metrics_record_paths_is_unchanged_by_check_paths() {
        let encode = |text| {
            bincode::serialize(&MetricPath::parse(text, Task::Binary, &[]).expect(text))
                .expect("encodes")
        };
        // `Estimated` is variant 8, metric 3 (f1), leaf 0 (value).
        let mut estimated = 8u32.to_le_bytes().to_vec();
        estimated.extend(3u64.to_le_bytes());
        estimated.extend(0u64.to_le_bytes());
        assert_eq!(encode("estimated.metrics.f1.value"), estimated);
        let mut check = 9u32.to_le_bytes().to_vec();
        check.extend(0u64.to_le_bytes());
        check.extend(3u64.to_le_bytes());
        assert_eq!(encode("estimation_check.metrics.accuracy.abs_error"), check);
    }

    #[test]
    fn every_catalog_pattern_parses() {
        let features = vec!["<feature>".to_string()];
        for (pattern, tasks) in catalog() {
            let task = if tasks == "regression" {
                Task::Regression
            } else {
                Task::Multiclass
            };
            assert!(
                MetricPath::parse(&pattern, task, &features).is_some(),
                "{pattern}"
            );
        }
    }
}
