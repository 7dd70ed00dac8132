//! The `analytics` binary: `serve | migrate | report | aggregate | cleanup | dead-letters |
//! export | demo`
//! (SPEC §11). Every setting comes from the environment (SPEC §10); a flag of the same
//! name overrides it.

mod demo;

/// mimalloc rather than the system allocator: ingest allocates per event (JSON values,
/// strings), and glibc's malloc took 15 % of the machine's CPU under HTTP load
/// (BENCHMARKS.md, "Allocator"). The runtime has idle threads give freed memory back
/// (`allocator::runtime`).
#[global_allocator]
static ALLOCATOR: analytics_server::allocator::Allocator = analytics_server::allocator::Allocator;

use std::process::ExitCode;
use std::time::Duration;

use analytics::core::case_study::CaseStudy;
use analytics::core::config::Config;
use analytics::core::time::{DateRange, YearMonth, parse_date};
use analytics::stats::{JobOutcome, Jobs, Stats};
use analytics_server::server::{Server, termination};
use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};

/// Event tracking and business statistics for the AI chatbot and the agent workbench.
#[derive(Debug, Parser)]
#[command(name = "analytics", version, about)]
struct Cli {
    #[command(flatten)]
    settings: Settings,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// Flags that override the environment variables of the same name.
#[derive(Debug, clap::Args)]
struct Settings {
    /// DATABASE_URL: postgres://… or sqlite:… (default: embedded analytics.db).
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// DATABASE_READ_URL: postgres://… of a streaming replica that answers questions
    /// once caught up (default: none; PostgreSQL only).
    #[arg(long, global = true)]
    database_read_url: Option<String>,
    /// REDIS_URL: redis://…, or redis+cluster://host:port,… (default: in-process counters).
    #[arg(long, global = true)]
    redis_url: Option<String>,
    /// ANALYTICS_REDIS_PREFIX (default: analytics).
    #[arg(long, global = true)]
    redis_prefix: Option<String>,
    /// ANALYTICS_BIND (default: 127.0.0.1:8080).
    #[arg(long, global = true)]
    bind: Option<String>,
    /// ANALYTICS_API_KEYS: scope:key pairs, comma-separated.
    #[arg(long, global = true)]
    api_keys: Option<String>,
    /// ANALYTICS_TIMEZONE (default: Asia/Shanghai).
    #[arg(long, global = true)]
    timezone: Option<String>,
    /// ANALYTICS_COST_PER_RESOLUTION in yuan (default: 10).
    #[arg(long, global = true)]
    cost_per_resolution: Option<String>,
    /// ANALYTICS_BATCH_SIZE (default: 1000).
    #[arg(long, global = true)]
    batch_size: Option<String>,
    /// ANALYTICS_FLUSH_INTERVAL_MS (default: 5000).
    #[arg(long, global = true)]
    flush_interval_ms: Option<String>,
    /// ANALYTICS_RETENTION_DAYS (default: 90).
    #[arg(long, global = true)]
    retention_days: Option<String>,
    /// ANALYTICS_JOBS_INTERVAL_MS: how often `serve` runs the scheduled jobs (default: 60000).
    #[arg(long, global = true)]
    jobs_interval_ms: Option<String>,
    /// ANALYTICS_HEADER_TIMEOUT_MS: time to send a request's headers, and the idle
    /// keep-alive timeout (default: 10000).
    #[arg(long, global = true)]
    header_timeout_ms: Option<String>,
    /// ANALYTICS_BODY_TIMEOUT_MS: time to send a request's body (default: 30000).
    #[arg(long, global = true)]
    body_timeout_ms: Option<String>,
    /// ANALYTICS_MAX_CONNECTIONS: connections served at once (default: 1024).
    #[arg(long, global = true)]
    max_connections: Option<String>,
    /// ANALYTICS_RETURN_WINDOW_HOURS: how long after a session a new one of the same
    /// customer counts as a return (default: 24).
    #[arg(long, global = true)]
    return_window_hours: Option<String>,
}

impl Settings {
    /// The configuration: flags over the environment.
    fn config(&self) -> Result<Config, analytics::core::error::ConfigError> {
        let flags = [
            ("DATABASE_URL", &self.database_url),
            ("DATABASE_READ_URL", &self.database_read_url),
            ("REDIS_URL", &self.redis_url),
            ("ANALYTICS_REDIS_PREFIX", &self.redis_prefix),
            ("ANALYTICS_BIND", &self.bind),
            ("ANALYTICS_API_KEYS", &self.api_keys),
            ("ANALYTICS_TIMEZONE", &self.timezone),
            ("ANALYTICS_COST_PER_RESOLUTION", &self.cost_per_resolution),
            ("ANALYTICS_BATCH_SIZE", &self.batch_size),
            ("ANALYTICS_FLUSH_INTERVAL_MS", &self.flush_interval_ms),
            ("ANALYTICS_RETENTION_DAYS", &self.retention_days),
            ("ANALYTICS_JOBS_INTERVAL_MS", &self.jobs_interval_ms),
            ("ANALYTICS_HEADER_TIMEOUT_MS", &self.header_timeout_ms),
            ("ANALYTICS_BODY_TIMEOUT_MS", &self.body_timeout_ms),
            ("ANALYTICS_MAX_CONNECTIONS", &self.max_connections),
            ("ANALYTICS_RETURN_WINDOW_HOURS", &self.return_window_hours),
        ];
        Config::from_lookup(|name| {
            flags
                .iter()
                .find(|(variable, _)| *variable == name)
                .and_then(|(_, flag)| (*flag).clone())
                .or_else(|| std::env::var(name).ok())
        })
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ReportFormat {
    Json,
    Text,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP API, the tracker and the scheduled jobs until SIGTERM or Ctrl-C.
    Serve,
    /// Set up or upgrade the database schema (a second run changes nothing).
    Migrate,
    /// Print the case study of a month.
    Report {
        /// The month, YYYY-MM (default: the current month).
        #[arg(long)]
        month: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Json)]
        format: ReportFormat,
    },
    /// Recompute daily statistics from event detail: one day, a range, or (by default)
    /// every day that received events since it was last aggregated.
    Aggregate {
        /// One day, YYYY-MM-DD.
        #[arg(long, conflicts_with_all = ["from", "to"])]
        date: Option<String>,
        /// First day of a range, YYYY-MM-DD.
        #[arg(long, requires = "to")]
        from: Option<String>,
        /// Last day of a range, YYYY-MM-DD.
        #[arg(long, requires = "from")]
        to: Option<String>,
    },
    /// Drop event detail older than the retention window (daily statistics stay).
    Cleanup,
    /// List the events the store refused for good (their data), newest first, as JSON:
    /// id, name, when, the store's reason and the whole event.
    DeadLetters {
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Write a CSV export to standard output, as the API's /export endpoints do.
    Export {
        #[command(subcommand)]
        what: ExportWhat,
    },
    /// Fill the configured store with a realistic synthetic month and print its case study.
    Demo {
        /// The month to fill, YYYY-MM (default: last month; it must be within retention).
        #[arg(long)]
        month: Option<String>,
    },
}

/// What `analytics export` writes.
#[derive(Debug, Subcommand)]
enum ExportWhat {
    /// The daily figures of a range of days (`daily.csv`).
    Daily {
        /// First day, YYYY-MM-DD.
        #[arg(long)]
        start: String,
        /// Last day, YYYY-MM-DD.
        #[arg(long)]
        end: String,
    },
    /// A month's agents (`agents.csv`).
    Agents {
        /// The month, YYYY-MM (default: the current month).
        #[arg(long)]
        month: Option<String>,
    },
    /// One row per session started in a range of days, from event detail (`sessions.csv`).
    Sessions {
        /// First day, YYYY-MM-DD.
        #[arg(long)]
        start: String,
        /// Last day, YYYY-MM-DD.
        #[arg(long)]
        end: String,
    },
}

/// An export with its arguments checked (before the database is reached).
enum ExportPlan {
    Daily(DateRange),
    Agents(Option<YearMonth>),
    Sessions(DateRange),
}

impl ExportPlan {
    fn of(what: ExportWhat) -> anyhow::Result<ExportPlan> {
        Ok(match what {
            ExportWhat::Daily { start, end } => {
                ExportPlan::Daily(range_argument(("start", &start), ("end", &end))?)
            }
            ExportWhat::Agents { month } => ExportPlan::Agents(month_argument(month.as_deref())?),
            ExportWhat::Sessions { start, end } => {
                ExportPlan::Sessions(range_argument(("start", &start), ("end", &end))?)
            }
        })
    }
}

/// Writes an export to standard output as it is produced.
async fn export(stats: &Stats, plan: ExportPlan) -> anyhow::Result<()> {
    use futures_util::StreamExt as _;
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match plan {
        ExportPlan::Daily(range) => {
            let days = stats.range(range).await?;
            out.write_all(&analytics_server::export::daily_csv(&days)?)?;
        }
        ExportPlan::Agents(month) => {
            let month = month.unwrap_or_else(|| YearMonth::of(stats.today()));
            let agents = stats.agents(month).await?;
            out.write_all(&analytics_server::export::agents_csv(&agents)?)?;
        }
        ExportPlan::Sessions(range) => {
            let sessions = stats.sessions(range);
            let mut chunks = std::pin::pin!(analytics_server::export::sessions_csv(
                sessions,
                *stats.calendar()
            ));
            while let Some(chunk) = chunks.next().await {
                out.write_all(&chunk?)?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal as _;
    // Colours only for a person at a terminal: a log file or collector gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    match analytics_server::allocator::runtime() {
        Ok(runtime) => runtime.block_on(run_cli()),
        Err(error) => {
            eprintln!("analytics: cannot start the runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run_cli() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let config = match cli.settings.config() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("analytics: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    // A configuration the server refuses is a configuration error too (exit status 2).
    if matches!(cli.command, Command::Serve)
        && let Err(error) = analytics_server::server::check_bind(&config)
    {
        eprintln!("analytics: configuration error: {error:#}");
        return ExitCode::from(2);
    }
    match run(cli.command, config).await {
        Ok(()) => ExitCode::SUCCESS,
        // A bad argument value (a month or a day) is a usage error, as clap's own are.
        Err(error) if error.is::<BadArgument>() => {
            eprintln!("analytics: {error:#}");
            ExitCode::from(2)
        }
        Err(error) => {
            eprintln!("analytics: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// A command-line argument whose value is wrong (exit status 2).
#[derive(Debug)]
struct BadArgument(anyhow::Error);

impl std::fmt::Display for BadArgument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid argument: {:#}", self.0)
    }
}

impl std::error::Error for BadArgument {}

/// `result`, its error marked as a bad argument.
fn argument<T, E: Into<anyhow::Error>>(result: Result<T, E>) -> anyhow::Result<T> {
    result.map_err(|error| BadArgument(error.into()).into())
}

/// `--month`, if given.
fn month_argument(month: Option<&str>) -> anyhow::Result<Option<YearMonth>> {
    argument(month.map(str::parse::<YearMonth>).transpose())
}

/// The range of days between two named day arguments, inclusive.
fn range_argument(
    (first_name, first): (&'static str, &str),
    (last_name, last): (&'static str, &str),
) -> anyhow::Result<DateRange> {
    argument(
        parse_date(first_name, first)
            .and_then(|first| DateRange::new(first, parse_date(last_name, last)?)),
    )
}

async fn stats(config: &Config) -> anyhow::Result<Stats> {
    Ok(analytics::connect(config).await?.stats(config))
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            let server = Server::start(config).await?;
            termination().await;
            let report = server.shutdown().await?;
            anyhow::ensure!(report.clean, "{} events were lost at shutdown", report.lost);
        }
        Command::Migrate => {
            let backends = analytics::connect(&config).await?;
            println!("analytics: {} is ready", backends.description);
        }
        Command::Report { month, format } => {
            // Arguments are checked before the database is reached.
            let month = month_argument(month.as_deref())?;
            let stats = stats(&config).await?;
            let month = month.unwrap_or_else(|| YearMonth::of(stats.today()));
            print_case_study(&stats.case_study(month).await?, format)?;
        }
        Command::Aggregate { date, from, to } => {
            let range = match (date, from, to) {
                (Some(date), _, _) => Some(DateRange::day(argument(parse_date("date", &date))?)),
                (None, Some(from), Some(to)) => Some(range_argument(("from", &from), ("to", &to))?),
                _ => None,
            };
            let jobs = Jobs::new(stats(&config).await?);
            let outcome = waiting(|| async {
                match range {
                    Some(range) => jobs.aggregate_days(range).await,
                    None => jobs.refresh().await,
                }
            })
            .await?;
            match outcome {
                JobOutcome::Ran(days) => println!("analytics: aggregated {days} day(s)"),
                JobOutcome::Skipped => anyhow::bail!("another process is aggregating; try again"),
            }
        }
        Command::DeadLetters { limit } => {
            let backends = analytics::connect(&config).await?;
            let letters = backends.stores.events.dead_letters(limit).await?;
            println!("{}", serde_json::to_string_pretty(&letters)?);
        }
        Command::Cleanup => {
            let jobs = Jobs::new(stats(&config).await?);
            match waiting(|| jobs.retention()).await? {
                JobOutcome::Ran(dropped) => println!(
                    "analytics: dropped {dropped} event(s) older than {} days",
                    config.retention_days
                ),
                JobOutcome::Skipped => {
                    anyhow::bail!("another process is applying retention; try again")
                }
            }
        }
        Command::Export { what } => {
            let plan = ExportPlan::of(what)?;
            let stats = stats(&config).await?;
            export(&stats, plan).await?;
        }
        Command::Demo { month } => {
            let month = month_argument(month.as_deref())?;
            let study = demo::run(&config, month).await.context("the demo failed")?;
            print_case_study(&study, ReportFormat::Text)?;
        }
    }
    Ok(())
}

/// Runs a job, waiting (up to a minute) while another process, such as a running
/// `analytics serve`, holds its lock: a command asked for the work, so it does it
/// rather than skip it.
async fn waiting<F, Fut>(job: F) -> analytics::core::Result<JobOutcome>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = analytics::core::Result<JobOutcome>>,
{
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match job().await? {
            JobOutcome::Skipped if tokio::time::Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            outcome => return Ok(outcome),
        }
    }
}

fn print_case_study(study: &CaseStudy, format: ReportFormat) -> anyhow::Result<()> {
    match format {
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(study)?),
        ReportFormat::Text => print!("{}", study.to_text()),
    }
    Ok(())
}
