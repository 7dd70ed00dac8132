//! The `analytics` binary: checks the configuration and reports what it would serve.
//!
//! The HTTP API, the scheduler and the commands of SPEC §11 land with their issue; until
//! then this binary validates the configuration (so a bad variable is reported with a
//! clear error) and exits with status 2.

use std::process::ExitCode;

use analytics::core::config::{Config, Database};

fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("analytics: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    let database = match &config.database {
        Database::Embedded(url) => format!("embedded database {url}"),
        Database::Postgres(url) => format!("PostgreSQL at {url}"),
    };
    eprintln!(
        "analytics: configuration is valid ({database}, time zone {}); \
         the HTTP server and commands are not implemented yet",
        config.timezone
    );
    ExitCode::from(2)
}
