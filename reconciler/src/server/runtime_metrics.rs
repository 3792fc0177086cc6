//! Metrics only a running controller knows (timings and counts of what it did), kept in the
//! process and served beside the ledger's when the controller serves the API
//! (`run --serve`). `cascade serve` in another process does not show them: zeros there
//! would read as "nothing happened".

use std::sync::LazyLock;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

pub struct RuntimeMetrics {
    /// One reconcile: read the ledger and the catalog, plan, act.
    pub reconcile_seconds: Histogram,
    /// From an upstream submission's last job ending to its dependent's reservation.
    pub hop_seconds: Histogram,
    /// Launches started.
    pub launches: Counter,
    /// Failed polls of a batch system, by system.
    pub batch_poll_errors: Family<Vec<(String, String)>, Counter>,
    /// Notification deliveries that failed (each attempt).
    pub notification_errors: Counter,
    /// Admission reviews answered, by kind and whether the object was admitted.
    pub admission_reviews: Family<Vec<(String, String)>, Counter>,
}

/// Time of catalog queries made by this process (the planner's, the pages' and the API's),
/// served by controllers and by `cascade serve` alike.
pub static CATALOG_QUERY_SECONDS: LazyLock<Histogram> =
    LazyLock::new(|| Histogram::new(exponential_buckets(0.0001, 2.0, 18)));

/// The process's runtime metrics.
pub static RUNTIME: LazyLock<RuntimeMetrics> = LazyLock::new(|| RuntimeMetrics {
    // 0.5 ms to about 16 s.
    reconcile_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
    hop_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
    launches: Counter::default(),
    batch_poll_errors: Family::default(),
    notification_errors: Counter::default(),
    admission_reviews: Family::default(),
});

impl RuntimeMetrics {
    /// Adds these metrics (shared, not copied) to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "reconcile_seconds",
            "Time of one reconcile (read, plan, act)",
            self.reconcile_seconds.clone(),
        );
        registry.register(
            "hop_seconds",
            "From an upstream submission's last job ending to its dependent's reservation",
            self.hop_seconds.clone(),
        );
        registry.register("launches", "Launches started", self.launches.clone());
        registry.register(
            "batch_poll_errors",
            "Polls of a batch system that failed",
            self.batch_poll_errors.clone(),
        );
        registry.register(
            "notification_errors",
            "Attempts to deliver a notification that failed",
            self.notification_errors.clone(),
        );
        registry.register(
            "admission_reviews",
            "Admission reviews answered by the webhook, by kind and verdict",
            self.admission_reviews.clone(),
        );
    }

    pub fn admission_reviewed(&self, kind: &str, allowed: bool) {
        self.admission_reviews
            .get_or_create(&vec![
                ("kind".to_string(), kind.to_string()),
                ("allowed".to_string(), allowed.to_string()),
            ])
            .inc();
    }

    pub fn batch_poll_failed(&self, system: &str) {
        self.batch_poll_errors
            .get_or_create(&vec![("system".to_string(), system.to_string())])
            .inc();
    }
}
