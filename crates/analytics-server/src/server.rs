//! Starting and stopping the service: bind (loopback only without API keys), open the
//! stores, start the tracker and the scheduled jobs, serve, and on shutdown stop
//! taking requests, then flush the tracker.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use analytics::core::config::Config;
use analytics::stats::Jobs;
use analytics::tracker::StopReport;
use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{AppState, router};

/// How long the tracker may take to write what it holds at shutdown.
pub const STOP_DEADLINE: Duration = Duration::from_secs(30);

/// A running service.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<anyhow::Result<StopReport>>,
}

/// Refuses to serve a non-loopback address without API keys.
///
/// # Errors
///
/// When `config.bind` is not a loopback address and no keys are configured.
pub fn check_bind(config: &Config) -> anyhow::Result<()> {
    if config.api_keys.is_empty() && !config.bind.ip().is_loopback() {
        anyhow::bail!(
            "refusing to serve {} without API keys: set ANALYTICS_API_KEYS (scope:key pairs, \
             for example read:…,ingest:…,admin:…) or bind a loopback address such as 127.0.0.1",
            config.bind
        );
    }
    Ok(())
}

impl Server {
    /// Opens the stores, starts the tracker and the jobs, binds and starts serving.
    ///
    /// # Errors
    ///
    /// A bind refused by [`check_bind`], a store that cannot be opened, or an address
    /// that cannot be bound.
    pub async fn start(config: Config) -> anyhow::Result<Server> {
        check_bind(&config)?;
        let backends = analytics::connect(&config).await?;
        let tracker = backends.start_tracker(&config);
        let stats = backends.stats(&config);
        let listener = TcpListener::bind(config.bind)
            .await
            .with_context(|| format!("cannot listen on {}", config.bind))?;
        let addr = listener.local_addr()?;
        if config.api_keys.is_empty() {
            tracing::warn!(%addr, "no API keys configured (ANALYTICS_API_KEYS): serving loopback only, without authentication");
        }
        tracing::info!(%addr, stores = %backends.description, "analytics is serving");

        let (shutdown, mut signal) = watch::channel(false);
        let jobs = Jobs::new(stats.clone());
        // Once before taking requests: partitions ahead, days left dirty by the last
        // run, and counters rebuilt if they were lost while the service was down.
        if let Err(error) = jobs.run_all().await {
            tracing::warn!(%error, "the scheduled jobs failed at start; they will run again");
        }
        let mut jobs_signal = signal.clone();
        let every = config.jobs_interval;
        let app = router(AppState::with_jobs(
            tracker.clone(),
            stats,
            config.api_keys.clone(),
            jobs.clone(),
            config.body_timeout,
        ));
        let jobs_task = tokio::spawn(async move {
            jobs.run_periodically(every, async move {
                let _ = jobs_signal.wait_for(|stop| *stop).await;
            })
            .await;
        });
        let limits = Limits {
            header_timeout: config.header_timeout,
            max_connections: config.max_connections,
        };
        let task = tokio::spawn(async move {
            serve(listener, app, limits, &mut signal).await;
            // A job run can take long (a counter lock waits for writers): the jobs are
            // idempotent and give their locks back with their connections, so the stop
            // does not wait for them.
            jobs_task.abort();
            let _ = jobs_task.await;
            tracing::info!("stopped taking requests; writing what the tracker holds");
            let report = tracker.stop(STOP_DEADLINE).await;
            // Exactly where the events went.
            let t = tracker.telemetry();
            let spilled = t.spilled.saturating_sub(t.drained);
            let dead = t.dead_lettered;
            if report.clean && spilled == 0 {
                tracing::info!(
                    stored = t.stored,
                    duplicates = t.duplicates,
                    dead_lettered = dead,
                    "stopped: every accepted event is in the event store"
                );
            } else if report.clean {
                tracing::warn!(
                    stored = t.stored,
                    in_spill_buffer = spilled,
                    dead_lettered = dead,
                    "stopped: the event store did not take everything; the rest is in the Redis spill buffer and is written by the next start"
                );
            } else {
                tracing::error!(
                    stored = t.stored,
                    in_spill_buffer = spilled,
                    lost = report.lost,
                    "stopped: events were lost (neither the event store nor the spill buffer took them before the deadline)"
                );
            }
            Ok(report)
        });
        Ok(Server {
            addr,
            shutdown,
            task,
        })
    }

    /// The address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops taking requests, finishes the ones in flight, flushes the tracker.
    ///
    /// # Errors
    ///
    /// When the server failed.
    pub async fn shutdown(self) -> anyhow::Result<StopReport> {
        let _ = self.shutdown.send(true);
        self.task.await.context("the server task panicked")?
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn termination() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C: shutting down"),
        () = terminate => tracing::info!("SIGTERM: shutting down"),
    }
}

/// The HTTP server's limits against slow or idle clients.
#[derive(Debug, Clone, Copy)]
struct Limits {
    header_timeout: Duration,
    max_connections: usize,
}

/// Serves HTTP/1 connections until `signal` says stop, then lets the requests in
/// flight finish. hyper's own settings do the work: a header read timeout (which also
/// closes a kept-alive connection that sends nothing), and at most `max_connections`
/// connections at once (the rest wait in the listen queue). The body timeout is the
/// handler's (`POST /events` reads its body within `ANALYTICS_BODY_TIMEOUT_MS`).
async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: Limits,
    signal: &mut watch::Receiver<bool>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    loop {
        let permit = tokio::select! {
            biased;
            () = stopped(signal) => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            biased;
            () = stopped(signal) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let connection =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    // Requests in flight finish; idle connections close.
    if tokio::time::timeout(STOP_DEADLINE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open at the stop deadline; closing them");
    }
}

/// Completes once `signal` says stop.
async fn stopped(signal: &mut watch::Receiver<bool>) {
    let _ = signal.wait_for(|stop| *stop).await;
}
