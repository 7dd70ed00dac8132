//! `/metrics`: the tracker's telemetry and the API's own counters, in the Prometheus
//! text format.

use std::fmt::Write as _;

use analytics::tracker::Snapshot;

/// The Prometheus text of a telemetry snapshot.
pub fn render(
    t: &Snapshot,
    rejected_by_api: u64,
    jobs: &std::collections::BTreeMap<&'static str, analytics::stats::JobRuns>,
) -> String {
    let mut out = String::new();
    let mut counter = |name: &str, help: &str, value: f64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    };
    counter(
        "analytics_events_tracked_total",
        "Events accepted into the buffer.",
        t.tracked as f64,
    );
    counter(
        "analytics_events_stored_total",
        "Events stored for the first time.",
        t.stored as f64,
    );
    counter(
        "analytics_events_duplicate_total",
        "Events whose id was already stored.",
        t.duplicates as f64,
    );
    counter(
        "analytics_events_spilled_total",
        "Events written to the spill buffer.",
        t.spilled as f64,
    );
    counter(
        "analytics_events_drained_total",
        "Events taken back from the spill buffer.",
        t.drained as f64,
    );
    counter(
        "analytics_store_retries_total",
        "Failed attempts to store a batch (the store was unavailable or failed), retried.",
        t.retries as f64,
    );
    counter(
        "analytics_events_dead_lettered_total",
        "Events the store refused for good (their data), kept in the dead letters (`analytics dead-letters`).",
        t.dead_lettered as f64,
    );
    counter(
        "analytics_store_contention_retries_total",
        "Writes that lost a race with another writer (a deadlock or serialization failure) and were retried at once; not an outage.",
        t.contention_retries as f64,
    );
    counter(
        "analytics_counter_failures_total",
        "Failed attempts to apply counters (their days are read from detail until recounted).",
        t.counter_failures as f64,
    );
    counter(
        "analytics_batches_stored_total",
        "Batches stored.",
        t.flushes as f64,
    );
    counter(
        "analytics_flush_seconds_total",
        "Time spent storing batches.",
        t.flush_seconds_total,
    );
    let _ = writeln!(
        out,
        "# HELP analytics_events_dropped_total Events not taken or lost, by reason.\n\
         # TYPE analytics_events_dropped_total counter\n\
         analytics_events_dropped_total{{reason=\"invalid\"}} {}\n\
         analytics_events_dropped_total{{reason=\"invalid_http\"}} {rejected_by_api}\n\
         analytics_events_dropped_total{{reason=\"buffer_full\"}} {}\n\
         analytics_events_dropped_total{{reason=\"stopped\"}} {}\n\
         analytics_events_dropped_total{{reason=\"shutdown\"}} {}",
        t.invalid, t.dropped_buffer_full, t.dropped_stopped, t.dropped_shutdown
    );
    let _ = writeln!(
        out,
        "# HELP analytics_queue_depth Events waiting in the buffer.\n\
         # TYPE analytics_queue_depth gauge\nanalytics_queue_depth {}\n\
         # HELP analytics_flush_seconds_max The longest time a batch took to store.\n\
         # TYPE analytics_flush_seconds_max gauge\nanalytics_flush_seconds_max {}",
        t.queue_depth, t.flush_seconds_max
    );
    let _ = writeln!(
        out,
        "# HELP analytics_job_runs_total Scheduled job runs in this process, by job and outcome (skipped: another process held the job's lock).\n\
         # TYPE analytics_job_runs_total counter"
    );
    for (job, runs) in jobs {
        for (outcome, n) in [
            ("ran", runs.ran),
            ("skipped", runs.skipped),
            ("failed", runs.failed),
        ] {
            let _ = writeln!(
                out,
                "analytics_job_runs_total{{job=\"{job}\",outcome=\"{outcome}\"}} {n}"
            );
        }
    }
    out
}
