//! Developer tasks, run as `cargo xtask <task>`: a plain binary with no dependencies.

use std::process::{Command, ExitCode};

const HELP: &str = "\
cargo xtask <task>

Tasks:
  test      run the whole test suite (cargo test --workspace)
  migrate   set up the PostgreSQL schema of DATABASE_URL from migrations/
  bench     run the benchmark suite in release mode: cargo xtask bench [NAME...] [--quick]
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") => cargo(&["test", "--workspace"], &args[1..]),
        Some("migrate") => {
            if std::env::var("DATABASE_URL").map_or(true, |url| url.is_empty()) {
                eprintln!("xtask: set DATABASE_URL to the PostgreSQL database to migrate");
                return ExitCode::from(2);
            }
            cargo(
                &[
                    "run",
                    "--quiet",
                    "--package",
                    "analytics-server",
                    "--",
                    "migrate",
                ],
                &[],
            )
        }
        Some("bench") => cargo(
            &[
                "run",
                "--quiet",
                "--release",
                "--package",
                "analytics-bench",
                "--",
            ],
            &args[1..],
        ),
        Some("help" | "--help" | "-h") | None => {
            print!("{HELP}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("xtask: unknown task {other:?}\n\n{HELP}");
            ExitCode::from(2)
        }
    }
}

/// Runs cargo with `args` followed by `extra`, and exits as it did.
fn cargo(args: &[&str], extra: &[String]) -> ExitCode {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    match Command::new(cargo).args(args).args(extra).status() {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(status) => ExitCode::from(status.code().map_or(1, |c| c.clamp(1, 255) as u8)),
        Err(error) => {
            eprintln!("xtask: could not run cargo: {error}");
            ExitCode::FAILURE
        }
    }
}
