//! The benchmark suite, run as `cargo xtask bench [NAME…] [--quick]`.
//!
//! Each benchmark starts from a fresh database, measures its figure and the reference
//! it is judged against in the same run, and adds a row to a Markdown table printed to
//! stdout and written to `target/bench/report.md`.

/// The allocator of the `analytics` binary, whose server the HTTP benchmarks run in
/// this process (the other figures are taken with it too), with its runtime.
#[global_allocator]
static ALLOCATOR: analytics_server::allocator::Allocator = analytics_server::allocator::Allocator;

mod case_study;
mod embedded;
mod export;
mod http_ingest;
mod memory;
mod pg_insert;
mod realtime;
mod redis_counters;
mod seed;
mod tracker;
mod workload;

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;

/// One line of the report.
#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) benchmark: String,
    pub(crate) figure: String,
    pub(crate) reference: String,
    pub(crate) target: String,
    pub(crate) met: bool,
}

/// How big a run is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scale {
    /// Events for the ingest benchmarks.
    pub(crate) events: usize,
}

const BENCHMARKS: &[&str] = &[
    "track-latency",
    "end-to-end",
    "embedded-ingest",
    "http-ingest",
    "http-instances",
    "case-study",
    "memory",
    "pg-insert",
    "redis-counters",
    "spill-drain",
    "seed-peer",
    "sessions-export",
    "realtime",
];

fn main() -> anyhow::Result<()> {
    analytics_server::allocator::runtime()?.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("memory-worker") {
        let n = args
            .get(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(1_000_000);
        return memory::worker(n).await;
    }
    if args.first().map(String::as_str) == Some("export-worker") {
        let url = args.get(1).context("export-worker needs a database URL")?;
        return export::worker(url).await;
    }
    if args.first().map(String::as_str) == Some("memory-embedded-worker") {
        let n = args
            .get(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(1_000_000);
        return memory::embedded_worker(n).await;
    }
    let mut quick = false;
    let mut selected = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--quick" => quick = true,
            name if BENCHMARKS.contains(&name) => selected.push(name.to_owned()),
            other => anyhow::bail!(
                "unknown benchmark {other:?}; known: {}",
                BENCHMARKS.join(", ")
            ),
        }
    }
    if selected.is_empty() {
        selected = BENCHMARKS.iter().map(|s| (*s).to_owned()).collect();
    }
    let scale = Scale {
        events: if quick { 100_000 } else { 1_000_000 },
    };

    let mut rows = Vec::new();
    for name in &selected {
        eprintln!("bench: running {name} ({} events)", scale.events);
        match name.as_str() {
            "track-latency" => rows.extend(tracker::latency(scale).await?),
            "end-to-end" => rows.push(tracker::end_to_end(scale).await?),
            "embedded-ingest" => rows.push(tracker::embedded(scale).await?),
            "http-ingest" => rows.extend(http_ingest::run(scale).await?),
            "http-instances" => rows.push(http_ingest::instances(scale).await?),
            "case-study" => rows.push(case_study::run(scale).await?),
            "seed-peer" => rows.push(seed::run(scale).await?),
            "sessions-export" => rows.push(export::run(scale).await?),
            "realtime" => rows.push(realtime::run(scale).await?),
            "memory" => {
                rows.push(memory::run(scale).await?);
                rows.push(memory::run_embedded(scale).await?);
            }
            "pg-insert" => rows.extend(pg_insert::run(scale).await?),
            "redis-counters" => rows.extend(redis_counters::run(scale).await?),
            "spill-drain" => rows.push(tracker::spill_drain(scale).await?),
            _ => unreachable!("names are checked above"),
        }
    }

    let report = render(&rows, quick);
    print!("{report}");
    let dir = PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()))
        .join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("report.md");
    std::fs::write(&path, &report).with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("bench: report written to {}", path.display());
    Ok(())
}

fn render(rows: &[Row], quick: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| benchmark | figure | reference (same run) | target | met |\n|---|---|---|---|---|"
    );
    for row in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            row.benchmark,
            row.figure,
            row.reference,
            row.target,
            if row.met { "yes" } else { "no" }
        );
    }
    if quick {
        let _ = writeln!(
            out,
            "\n(quick run: smaller inputs, figures are indicative only)"
        );
    }
    out
}
