//! The `analytics` binary.
//!
//! Implemented so far: `analytics migrate`, which sets up the PostgreSQL schema named by
//! `DATABASE_URL`. The HTTP API (`serve`), `report`, `aggregate`, `cleanup` and `demo`
//! land with their issue; until then they report that and exit with status 2, after
//! checking the configuration so that a bad variable gets a clear error.

use std::process::ExitCode;

use analytics::core::config::{Config, Database};
use analytics::pg::{PgStore, PoolOptions};
use anyhow::Context as _;

const USAGE: &str = "\
usage: analytics <command>

commands:
  migrate   set up or upgrade the PostgreSQL schema of DATABASE_URL
  serve     run the HTTP API (not implemented yet)
";

#[tokio::main]
async fn main() -> ExitCode {
    let command = std::env::args().nth(1);
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("analytics: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    let result = match command.as_deref() {
        Some("migrate") => migrate(&config).await,
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(command @ ("serve" | "report" | "aggregate" | "cleanup" | "demo")) => {
            eprintln!("analytics: `{command}` is not implemented yet");
            return ExitCode::from(2);
        }
        _ => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("analytics: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `analytics migrate`: applies the migrations not yet applied; a second run is a no-op.
async fn migrate(config: &Config) -> anyhow::Result<()> {
    let Database::Postgres(url) = &config.database else {
        anyhow::bail!(
            "DATABASE_URL is not a postgres:// URL; the embedded database needs no migrate step"
        );
    };
    let store = PgStore::connect(url.expose(), config.calendar(), PoolOptions::default())
        .await
        .with_context(|| format!("cannot connect to {url}"))?;
    store
        .migrate()
        .await
        .with_context(|| format!("cannot migrate {url}"))?;
    println!("analytics: {url} is migrated");
    Ok(())
}
