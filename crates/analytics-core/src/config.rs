//! Configuration (SPEC §10): one [`Config`], read from environment variables with
//! defaults; the server's flags of the same names override them.
//!
//! An empty variable counts as unset. Secrets (database and Redis passwords, API keys)
//! never appear in `Debug` output or in error messages.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use chrono_tz::Tz;

use crate::error::{ConfigError, Result};
use crate::event::ValidationRules;
use crate::report::CostPerResolution;
use crate::time::Calendar;

/// The embedded database file used when `DATABASE_URL` is unset.
pub const DEFAULT_EMBEDDED_FILE: &str = "analytics.db";

/// A string that must not be logged: `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Secret {
        Secret(secret.into())
    }

    /// The secret itself, for the code that must use it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A connection URL that may carry a password: shown with the password masked.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionUrl(Secret);

impl ConnectionUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> ConnectionUrl {
        ConnectionUrl(Secret::new(url))
    }

    /// The URL itself, for the driver.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// The URL with every credential replaced by `***`, safe to log: the password of
    /// the user information (`user:***@`), and the value of every query parameter
    /// whose name speaks of a secret (`password`, `sslpassword`, `token`, `secret`,
    /// `key`…), whatever its case.
    pub fn redacted(&self) -> String {
        let url = self.expose();
        let scheme_end = url.find("://").map_or(0, |i| i + 3);
        let authority_end = url[scheme_end..]
            .find(['/', '?', '#'])
            .map_or(url.len(), |i| scheme_end + i);
        let authority = &url[scheme_end..authority_end];
        let mut out = String::with_capacity(url.len());
        out.push_str(&url[..scheme_end]);
        match authority.rfind('@') {
            Some(at) if scheme_end > 0 => {
                let userinfo = &authority[..at];
                match userinfo.split_once(':') {
                    Some((user, _)) => {
                        out.push_str(user);
                        out.push_str(":***");
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        let rest = &url[authority_end..];
        let (before_fragment, fragment) = rest
            .split_once('#')
            .map_or((rest, None), |(r, f)| (r, Some(f)));
        match before_fragment.split_once('?') {
            None => out.push_str(before_fragment),
            Some((path, query)) => {
                out.push_str(path);
                out.push('?');
                let pairs: Vec<String> = query
                    .split('&')
                    .map(|pair| match pair.split_once('=') {
                        Some((name, _)) if is_secret_parameter(name) => format!("{name}=***"),
                        _ => pair.to_owned(),
                    })
                    .collect();
                out.push_str(&pairs.join("&"));
            }
        }
        if let Some(fragment) = fragment {
            out.push('#');
            out.push_str(fragment);
        }
        out
    }
}

/// Whether a URL query parameter's name says it carries a credential.
fn is_secret_parameter(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "pass",
        "pwd",
        "secret",
        "token",
        "key",
        "auth",
        "credential",
    ]
    .iter()
    .any(|word| name.contains(word))
}

impl fmt::Debug for ConnectionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for ConnectionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Where events and statistics are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// The embedded SQLite database at this `sqlite:` URL.
    Embedded(ConnectionUrl),
    /// PostgreSQL at this `postgres://` URL.
    Postgres(ConnectionUrl),
}

impl Database {
    /// The embedded default: `analytics.db` in the working directory.
    pub fn embedded_default() -> Database {
        Database::Embedded(ConnectionUrl::new(format!(
            "sqlite://{DEFAULT_EMBEDDED_FILE}?mode=rwc"
        )))
    }

    fn parse(url: &str) -> Result<Database, ConfigError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Database::Postgres(ConnectionUrl::new(url)))
        } else if url.starts_with("sqlite:") {
            Ok(Database::Embedded(ConnectionUrl::new(url)))
        } else {
            Err(ConfigError {
                variable: "DATABASE_URL",
                message: "must start with postgres://, postgresql:// or sqlite: \
                          (unset it for the embedded database)"
                    .to_owned(),
            })
        }
    }
}

/// What an API key may do (SPEC §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `POST /events`.
    Ingest,
    /// The GET endpoints under `/api/analytics`.
    Read,
    /// Everything, and the only scope for `/flush`.
    Admin,
}

impl Scope {
    /// The name used in `ANALYTICS_API_KEYS`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    /// Whether a key of this scope may do what `needed` allows.
    pub fn allows(self, needed: Scope) -> bool {
        self == Scope::Admin || self == needed
    }
}

impl FromStr for Scope {
    type Err = ();
    fn from_str(s: &str) -> Result<Scope, ()> {
        match s {
            "ingest" => Ok(Scope::Ingest),
            "read" => Ok(Scope::Read),
            "admin" => Ok(Scope::Admin),
            _ => Err(()),
        }
    }
}

/// One API key and its scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// What the key may do.
    pub scope: Scope,
    /// The key.
    pub key: Secret,
}

/// The shortest API key accepted: shorter ones can be guessed.
pub const MIN_API_KEY_CHARS: usize = 16;

/// Parses `ANALYTICS_API_KEYS`: `scope:key` pairs separated by commas.
///
/// # Errors
///
/// A [`ConfigError`] naming the position of an entry without a scope, with an unknown
/// scope, or with an empty key or one shorter than [`MIN_API_KEY_CHARS`]. The key
/// itself is never repeated.
pub fn parse_api_keys(value: &str) -> Result<Vec<ApiKey>, ConfigError> {
    const VARIABLE: &str = "ANALYTICS_API_KEYS";
    let mut keys = Vec::new();
    for (i, entry) in value.split(',').map(str::trim).enumerate() {
        let n = i + 1;
        if entry.is_empty() {
            continue;
        }
        let Some((scope, key)) = entry.split_once(':') else {
            return Err(ConfigError {
                variable: VARIABLE,
                message: format!("entry {n} is not scope:key"),
            });
        };
        let scope = scope.trim().parse::<Scope>().map_err(|()| ConfigError {
            variable: VARIABLE,
            message: format!(
                "entry {n} has the unknown scope {:?} (expected ingest, read or admin)",
                scope.chars().take(32).collect::<String>()
            ),
        })?;
        let key = key.trim();
        if key.is_empty() {
            return Err(ConfigError {
                variable: VARIABLE,
                message: format!("entry {n} has an empty key"),
            });
        }
        let length = key.chars().count();
        if length < MIN_API_KEY_CHARS {
            return Err(ConfigError {
                variable: VARIABLE,
                message: format!(
                    "entry {n} has a key of {length} characters; keys must be at least \
                     {MIN_API_KEY_CHARS} characters long (random, such as the output of \
                     `openssl rand -hex 16`)"
                ),
            });
        }
        keys.push(ApiKey {
            scope,
            key: Secret::new(key),
        });
    }
    Ok(keys)
}

/// The whole configuration of the service.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `DATABASE_URL`: PostgreSQL, or the embedded database when unset.
    pub database: Database,
    /// `DATABASE_READ_URL`: a streaming replica of the PostgreSQL database that answers
    /// statistics questions once it has replayed what the primary had when asked
    /// (optional; PostgreSQL only).
    pub database_read_url: Option<ConnectionUrl>,
    /// `REDIS_URL`: Redis (a Redis Cluster for `redis+cluster://`), or in-process
    /// counters when unset.
    pub redis_url: Option<ConnectionUrl>,
    /// `ANALYTICS_REDIS_PREFIX`, default `analytics`.
    pub redis_prefix: String,
    /// `ANALYTICS_BIND`, default `127.0.0.1:8080`.
    pub bind: SocketAddr,
    /// `ANALYTICS_API_KEYS`, default none (loopback only).
    pub api_keys: Vec<ApiKey>,
    /// `ANALYTICS_TIMEZONE`, default `Asia/Shanghai`.
    pub timezone: Tz,
    /// `ANALYTICS_COST_PER_RESOLUTION`, default 10 yuan.
    pub cost_per_resolution: CostPerResolution,
    /// `ANALYTICS_BATCH_SIZE`, default 1000.
    pub batch_size: usize,
    /// `ANALYTICS_FLUSH_INTERVAL_MS`, default 5000 ms.
    pub flush_interval: Duration,
    /// `ANALYTICS_RETENTION_DAYS`, default 90.
    pub retention_days: u32,
    /// `ANALYTICS_JOBS_INTERVAL_MS`, default 60000 ms: how often `serve` runs the
    /// scheduled jobs (not in SPEC §10; for operators and tests).
    pub jobs_interval: Duration,
    /// `ANALYTICS_HEADER_TIMEOUT_MS`, default 10000 ms: how long a client may take to
    /// send a request's headers, and how long a kept-alive connection may wait idle
    /// for its next request.
    pub header_timeout: Duration,
    /// `ANALYTICS_BODY_TIMEOUT_MS`, default 30000 ms: how long a client may take to
    /// send a request's body.
    pub body_timeout: Duration,
    /// `ANALYTICS_MAX_CONNECTIONS`, default 1024: connections served at once; more wait
    /// in the listen queue.
    pub max_connections: usize,
    /// `ANALYTICS_RETURN_WINDOW_HOURS`, default 24 (1 to 720): how long after a session
    /// a new session of the same customer counts as a return (the AI funnel, the
    /// sessions export).
    pub return_window: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            database: Database::embedded_default(),
            database_read_url: None,
            redis_url: None,
            redis_prefix: "analytics".to_owned(),
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            api_keys: Vec::new(),
            timezone: chrono_tz::Asia::Shanghai,
            cost_per_resolution: CostPerResolution::default(),
            batch_size: 1000,
            flush_interval: Duration::from_millis(5000),
            retention_days: 90,
            jobs_interval: Duration::from_secs(60),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 1024,
            return_window: Duration::from_secs(24 * 3600),
        }
    }
}

impl Config {
    /// Reads the configuration from the process environment.
    ///
    /// # Errors
    ///
    /// The first [`ConfigError`] found, naming the variable and what it accepts.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration from any lookup of variable names, for example the
    /// environment overlaid with command-line flags.
    ///
    /// # Errors
    ///
    /// The first [`ConfigError`] found, naming the variable and what it accepts.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut config = Config::default();
        if let Some(url) = get("DATABASE_URL") {
            config.database = Database::parse(url.trim())?;
        }
        if let Some(url) = get("DATABASE_READ_URL") {
            let url = url.trim();
            let postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
            if !postgres || !matches!(config.database, Database::Postgres(_)) {
                return Err(ConfigError {
                    variable: "DATABASE_READ_URL",
                    message: "must be a postgres:// URL of a replica of DATABASE_URL, which must \
                              be PostgreSQL too (unset it to read from DATABASE_URL)"
                        .to_owned(),
                });
            }
            config.database_read_url = Some(ConnectionUrl::new(url));
        }
        config.redis_url = match get("REDIS_URL") {
            Some(url)
                if ["redis://", "rediss://", "redis+cluster://"]
                    .iter()
                    .any(|scheme| url.starts_with(scheme)) =>
            {
                Some(ConnectionUrl::new(url.trim()))
            }
            Some(_) => {
                return Err(ConfigError {
                    variable: "REDIS_URL",
                    message: "must start with redis:// or rediss://, or be \
                              redis+cluster://host:port,host:port for a Redis Cluster \
                              (unset it for in-process counters)"
                        .to_owned(),
                });
            }
            None => None,
        };
        if let Some(prefix) = get("ANALYTICS_REDIS_PREFIX") {
            if prefix.chars().any(char::is_whitespace) {
                return Err(ConfigError {
                    variable: "ANALYTICS_REDIS_PREFIX",
                    message: format!("must not contain white space (got {prefix:?})"),
                });
            }
            config.redis_prefix = prefix;
        }
        if let Some(bind) = get("ANALYTICS_BIND") {
            config.bind = bind.trim().parse().map_err(|_| ConfigError {
                variable: "ANALYTICS_BIND",
                message: format!(
                    "must be an IP address and port such as 127.0.0.1:8080 (got {bind:?})"
                ),
            })?;
        }
        if let Some(keys) = get("ANALYTICS_API_KEYS") {
            config.api_keys = parse_api_keys(&keys)?;
        }
        if let Some(zone) = get("ANALYTICS_TIMEZONE") {
            config.timezone = zone.trim().parse().map_err(|_| ConfigError {
                variable: "ANALYTICS_TIMEZONE",
                message: format!("must be an IANA time zone such as Asia/Shanghai (got {zone:?})"),
            })?;
        }
        if let Some(cost) = get("ANALYTICS_COST_PER_RESOLUTION") {
            let invalid = || ConfigError {
                variable: "ANALYTICS_COST_PER_RESOLUTION",
                message: format!("must be a number of yuan, at least 0, such as 10 (got {cost:?})"),
            };
            let yuan = cost.trim().parse::<f64>().map_err(|_| invalid())?;
            config.cost_per_resolution = CostPerResolution::new(yuan).map_err(|_| invalid())?;
        }
        if let Some(size) = parse_number(&get, "ANALYTICS_BATCH_SIZE", 1, 100_000)? {
            config.batch_size = size as usize;
        }
        if let Some(ms) = parse_number(&get, "ANALYTICS_FLUSH_INTERVAL_MS", 1, 3_600_000)? {
            config.flush_interval = Duration::from_millis(ms);
        }
        if let Some(days) = parse_number(&get, "ANALYTICS_RETENTION_DAYS", 1, 36_500)? {
            config.retention_days = days as u32;
        }
        if let Some(ms) = parse_number(&get, "ANALYTICS_JOBS_INTERVAL_MS", 100, 86_400_000)? {
            config.jobs_interval = Duration::from_millis(ms);
        }
        if let Some(ms) = parse_number(&get, "ANALYTICS_HEADER_TIMEOUT_MS", 100, 3_600_000)? {
            config.header_timeout = Duration::from_millis(ms);
        }
        if let Some(ms) = parse_number(&get, "ANALYTICS_BODY_TIMEOUT_MS", 100, 3_600_000)? {
            config.body_timeout = Duration::from_millis(ms);
        }
        if let Some(n) = parse_number(&get, "ANALYTICS_MAX_CONNECTIONS", 1, 1_000_000)? {
            config.max_connections = n as usize;
        }
        if let Some(hours) = parse_number(&get, "ANALYTICS_RETURN_WINDOW_HOURS", 1, 720)? {
            config.return_window = Duration::from_secs(hours * 3600);
        }
        Ok(config)
    }

    /// The business calendar of the configured zone.
    pub fn calendar(&self) -> Calendar {
        Calendar::new(self.timezone)
    }

    /// The envelope rules that depend on configuration.
    pub fn validation_rules(&self) -> ValidationRules {
        ValidationRules {
            retention_days: self.retention_days,
        }
    }
}

fn parse_number(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    min: u64,
    max: u64,
) -> Result<Option<u64>, ConfigError> {
    let Some(value) = get(variable) else {
        return Ok(None);
    };
    match value.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
        _ => Err(ConfigError {
            variable,
            message: format!("must be a whole number from {min} to {max} (got {value:?})"),
        }),
    }
}
