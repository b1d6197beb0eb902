//! Prometheus metrics: requests, latency, revision per environment, SSE clients, store errors.

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// The server's metrics, registered in their own registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    revision: IntGaugeVec,
    /// Open server-sent-events connections.
    pub sse_clients: IntGauge,
    /// Failed store operations.
    pub store_errors: IntCounter,
    /// Events stamped too far in the future, stored at the time they were received.
    pub events_clock_ahead: IntCounter,
    /// Events rejected at ingestion, by the field their reason names.
    events_rejected: IntCounterVec,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "tailor_http_requests_total",
                "HTTP requests by route and status",
            ),
            &["method", "route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "tailor_http_request_duration_seconds",
                "HTTP request latency by route",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5,
            ]),
            &["route"],
        )?;
        let revision = IntGaugeVec::new(
            Opts::new(
                "tailor_config_revision",
                "Current config revision per environment",
            ),
            &["environment"],
        )?;
        let sse_clients = IntGauge::new("tailor_sse_clients", "Open server-sent-events streams")?;
        let store_errors = IntCounter::new("tailor_store_errors_total", "Failed store operations")?;
        let events_clock_ahead = IntCounter::new(
            "tailor_events_clock_ahead_total",
            "Events stamped more than 5 minutes ahead of the server's clock, stored at the time they were received",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(revision.clone()))?;
        registry.register(Box::new(sse_clients.clone()))?;
        registry.register(Box::new(store_errors.clone()))?;
        registry.register(Box::new(events_clock_ahead.clone()))?;
        let events_rejected = IntCounterVec::new(
            Opts::new(
                "tailor_events_rejected_total",
                "Events rejected at ingestion, by the field the reason names (variant, segment, flag, …)",
            ),
            &["field"],
        )?;
        registry.register(Box::new(events_rejected.clone()))?;
        Ok(Metrics {
            registry,
            requests,
            latency,
            revision,
            sse_clients,
            store_errors,
            events_clock_ahead,
            events_rejected,
        })
    }

    /// Records one finished request.
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.requests
            .with_label_values(&[method, route, status_label(status)])
            .inc();
        self.latency.with_label_values(&[route]).observe(seconds);
    }

    /// Counts an event rejected at ingestion, by the field its `reason` starts with
    /// (`variant: …`); the label set is fixed, so no sender can grow it.
    pub fn event_rejected(&self, reason: &str) {
        const FIELDS: [&str; 13] = [
            "id",
            "type",
            "timestamp",
            "user_key",
            "flag",
            "variant",
            "experiment",
            "rule",
            "segment",
            "revision",
            "event",
            "value",
            "personalized",
        ];
        let field = reason.split(':').next().unwrap_or_default();
        let field = FIELDS
            .iter()
            .find(|f| **f == field)
            .copied()
            .unwrap_or("other");
        self.events_rejected.with_label_values(&[field]).inc();
    }

    /// Sets an environment's revision gauge.
    pub fn set_revision(&self, environment: &str, revision: u64) {
        self.revision
            .with_label_values(&[environment])
            .set(i64::try_from(revision).unwrap_or(i64::MAX));
    }

    /// The text exposition format.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        TextEncoder::new().encode_to_string(&self.registry.gather())
    }
}

fn status_label(status: u16) -> &'static str {
    // Exact codes for the common ones keep the label set small and bounded.
    match status {
        200 => "200",
        201 => "201",
        204 => "204",
        304 => "304",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        409 => "409",
        412 => "412",
        413 => "413",
        422 => "422",
        428 => "428",
        500..=599 => "5xx",
        _ => "other",
    }
}
