//! What a query asks for: the metric, how it is measured and the analysis settings.

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
        }
    }
}

/// The settings every scope of one report is analysed with.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Analysis {
    /// Conversion event.
    pub metric: String,
    /// Conversion or value.
    pub measure: Measure,
    /// The engine's options, validated.
    pub config: AnalysisConfig,
    /// Adjust comparisons with CUPED covariates.
    pub cuped: bool,
}

impl Analysis {
    /// The query's settings, checked in the order the query's problems are reported: measure,
    /// metric, then the engine's options.
    pub(super) fn from_query(
        query: &ResultsQuery,
        primary_metric: Option<&str>,
    ) -> Result<Self, ResultsError> {
        let measure = Measure::parse(query.kind.as_deref())?;
        let metric = metric(query.metric.as_deref(), primary_metric)?;
        let config = analysis_config(query)?;
        Ok(Self {
            metric,
            measure,
            config,
            cuped: query.cuped,
        })
    }
}

/// The asked-for metric, else the experiment's primary metric.
fn metric(asked: Option<&str>, primary: Option<&str>) -> Result<String, QueryError> {
    asked
        .or(primary)
        .map(str::to_string)
        .ok_or(QueryError::NoMetric)
}

/// The engine's options for the query, validated.
fn analysis_config(query: &ResultsQuery) -> Result<AnalysisConfig, StatsError> {
    let config = AnalysisConfig {
        alpha: query.alpha.unwrap_or(DEFAULT_ALPHA),
        inverse: false,
        sequential: query.sequential.then(SequentialConfig::default),
    };
    config.validate()?;
    Ok(config)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
        let analysis = Analysis::from_query(&ResultsQuery::default(), Some("purchase")).unwrap();
        assert_eq!(
            analysis,
            Analysis {
                metric: "purchase".into(),
                measure: Measure::Conversion,
                config: AnalysisConfig::default(),
                cuped: false,
            }
        );
        let sequential = ResultsQuery {
            sequential: true,
            alpha: Some(0.1),
            ..ResultsQuery::default()
        };
        let config = Analysis::from_query(&sequential, Some("purchase"))
            .unwrap()
            .config;
        assert_eq!(config.alpha, 0.1);
        assert_eq!(config.sequential, Some(SequentialConfig::default()));
        let bad_alpha = ResultsQuery {
            alpha: Some(1.5),
            ..ResultsQuery::default()
        };
        assert!(matches!(
            Analysis::from_query(&bad_alpha, Some("purchase")),
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
            Analysis::from_query(&query, None),
            Err(ResultsError::BadQuery(QueryError::UnknownKind(_)))
        ));
    }
}
