//! What a query asks for: the metric, how it is measured and the analysis settings.

use tailor_core::model::{Correction, Experiment, LiftScale, Prior};

use super::sums::Target;
use super::{QueryError, ResultsError, ResultsQuery};
use crate::stats::{AnalysisConfig, SequentialConfig, StatsError};

/// Significance level when the query names none.
const DEFAULT_ALPHA: f64 = 0.05;

/// How each user's outcome is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Measure {
    /// Share of users who converted.
    Conversion,
    /// Value per user.
    Value,
    /// A ratio metric: one per-user sum over another.
    Ratio,
}

impl Measure {
    /// The query's `kind`; absent means conversion.
    pub(super) fn parse(kind: Option<&str>) -> Result<Self, QueryError> {
        match kind {
            None | Some("conversion") => Ok(Self::Conversion),
            Some("value") => Ok(Self::Value),
            Some(other) => Err(QueryError::UnknownKind(other.to_string())),
        }
    }

    /// The name the report and the query use.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Conversion => "conversion",
            Self::Value => "value",
            Self::Ratio => "ratio",
        }
    }
}

/// The settings every scope of one report is analysed with.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Analysis {
    /// The metric's name: a conversion event or a ratio metric's key.
    pub metric: String,
    /// What is summed for it.
    pub target: Target,
    /// Conversion, value or ratio.
    pub measure: Measure,
    /// The engine's options, validated.
    pub config: AnalysisConfig,
    /// Adjust comparisons with CUPED covariates (never for a ratio metric).
    pub cuped: bool,
    /// The multiple-comparison correction across the experiment's metrics, if any.
    pub correction: Option<Correction>,
}

impl Analysis {
    /// The query's settings, checked in the order the query's problems are reported: measure,
    /// metric, correction, prior, then the engine's options. The experiment's own correction
    /// and prior apply where the query names none.
    pub(super) fn from_query(
        query: &ResultsQuery,
        experiment: &Experiment,
    ) -> Result<Self, ResultsError> {
        let measure = Measure::parse(query.kind.as_deref())?;
        let metric = metric(
            query.metric.as_deref(),
            experiment.primary_metric.as_deref(),
        )?;
        let correction = correction(query.correction.as_deref(), experiment.correction)?;
        let prior = prior(query, experiment.prior)?;
        let config = analysis_config(query, prior)?;
        let mut analysis = Self {
            target: Target::Event(metric.clone()),
            metric,
            measure,
            config,
            cuped: query.cuped,
            correction,
        };
        if let Some(ratio) = experiment.ratio_metric(&analysis.metric) {
            if query.kind.is_some() {
                return Err(QueryError::KindOfRatio(analysis.metric).into());
            }
            analysis.target = Target::Ratio(ratio.clone());
            analysis.measure = Measure::Ratio;
            analysis.cuped = false;
        }
        Ok(analysis)
    }

    /// The same settings for another metric of the experiment: a ratio metric as a ratio, an
    /// event as a conversion (the family a correction spans; README, "Multiple comparisons").
    pub(super) fn for_metric(&self, metric: &str, experiment: &Experiment) -> Self {
        let (target, measure) = match experiment.ratio_metric(metric) {
            Some(ratio) => (Target::Ratio(ratio.clone()), Measure::Ratio),
            None => (Target::Event(metric.to_string()), Measure::Conversion),
        };
        Self {
            metric: metric.to_string(),
            cuped: self.cuped && measure != Measure::Ratio,
            target,
            measure,
            config: self.config,
            correction: self.correction,
        }
    }
}

/// The asked-for metric, else the experiment's primary metric.
fn metric(asked: Option<&str>, primary: Option<&str>) -> Result<String, QueryError> {
    asked
        .or(primary)
        .map(str::to_string)
        .ok_or(QueryError::NoMetric)
}

/// `?correction=holm_bonferroni|benjamini_hochberg|none`, else the experiment's.
fn correction(
    asked: Option<&str>,
    configured: Option<Correction>,
) -> Result<Option<Correction>, QueryError> {
    match asked {
        None => Ok(configured),
        Some("none") => Ok(None),
        Some("holm_bonferroni") => Ok(Some(Correction::HolmBonferroni)),
        Some("benjamini_hochberg") => Ok(Some(Correction::BenjaminiHochberg)),
        Some(other) => Err(QueryError::UnknownCorrection(other.to_string())),
    }
}

/// `?prior=flat`, or `?prior_mean=&prior_sd=&prior_scale=`, else the experiment's prior.
fn prior(query: &ResultsQuery, configured: Option<Prior>) -> Result<Option<Prior>, QueryError> {
    match query.prior.as_deref() {
        None => {}
        Some("flat") => return Ok(None),
        Some(other) => return Err(QueryError::UnknownPrior(other.to_string())),
    }
    if query.prior_mean.is_none() && query.prior_sd.is_none() && query.prior_scale.is_none() {
        return Ok(configured);
    }
    let std_dev = query.prior_sd.ok_or(QueryError::PriorWithoutStdDev)?;
    if !(std_dev > 0.0 && std_dev.is_finite()) {
        return Err(QueryError::PriorStdDev(std_dev));
    }
    let mean = query.prior_mean.unwrap_or(0.0);
    if !mean.is_finite() {
        return Err(QueryError::PriorMean(mean));
    }
    let scale = match query.prior_scale.as_deref() {
        None | Some("relative") => LiftScale::Relative,
        Some("absolute") => LiftScale::Absolute,
        Some(other) => return Err(QueryError::UnknownPriorScale(other.to_string())),
    };
    Ok(Some(Prior {
        mean,
        std_dev,
        scale,
    }))
}

/// The engine's options for the query with `prior`, validated.
fn analysis_config(
    query: &ResultsQuery,
    prior: Option<Prior>,
) -> Result<AnalysisConfig, StatsError> {
    let config = AnalysisConfig {
        alpha: query.alpha.unwrap_or(DEFAULT_ALPHA),
        inverse: false,
        sequential: query.sequential.then(SequentialConfig::default),
        prior,
    };
    config.validate()?;
    Ok(config)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Experiment `x`, with `primary` as its primary metric.
    fn experiment(primary: Option<&str>) -> Experiment {
        serde_json::from_value(serde_json::json!({"key": "x", "primary_metric": primary})).unwrap()
    }

    #[test]
    fn measure_defaults_to_conversion_and_rejects_unknown_kinds() {
        assert_eq!(Measure::parse(None), Ok(Measure::Conversion));
        assert_eq!(Measure::parse(Some("conversion")), Ok(Measure::Conversion));
        assert_eq!(Measure::parse(Some("value")), Ok(Measure::Value));
        assert_eq!(
            Measure::parse(Some("ratio")),
            Err(QueryError::UnknownKind("ratio".into()))
        );
        assert_eq!(Measure::Value.as_str(), "value");
        assert_eq!(Measure::Conversion.as_str(), "conversion");
    }

    #[test]
    fn metric_falls_back_to_the_primary_metric() {
        assert_eq!(metric(Some("signup"), Some("purchase")).unwrap(), "signup");
        assert_eq!(metric(None, Some("purchase")).unwrap(), "purchase");
        assert_eq!(metric(None, None), Err(QueryError::NoMetric));
    }

    #[test]
    fn analysis_takes_defaults_and_validates_alpha() {
        let analysis =
            Analysis::from_query(&ResultsQuery::default(), &experiment(Some("purchase"))).unwrap();
        assert_eq!(
            analysis,
            Analysis {
                metric: "purchase".into(),
                target: Target::Event("purchase".into()),
                measure: Measure::Conversion,
                config: AnalysisConfig::default(),
                cuped: false,
                correction: None,
            }
        );
        let sequential = ResultsQuery {
            sequential: true,
            alpha: Some(0.1),
            ..ResultsQuery::default()
        };
        let config = Analysis::from_query(&sequential, &experiment(Some("purchase")))
            .unwrap()
            .config;
        assert_eq!(config.alpha, 0.1);
        assert_eq!(config.sequential, Some(SequentialConfig::default()));
        let bad_alpha = ResultsQuery {
            alpha: Some(1.5),
            ..ResultsQuery::default()
        };
        assert!(matches!(
            Analysis::from_query(&bad_alpha, &experiment(Some("purchase"))),
            Err(ResultsError::Stats(StatsError::InvalidAlpha { .. }))
        ));
    }

    #[test]
    fn a_bad_kind_is_reported_before_a_missing_metric() {
        let query = ResultsQuery {
            kind: Some("ratio".into()),
            ..ResultsQuery::default()
        };
        assert!(matches!(
            Analysis::from_query(&query, &experiment(None)),
            Err(ResultsError::BadQuery(QueryError::UnknownKind(_)))
        ));
    }
}
