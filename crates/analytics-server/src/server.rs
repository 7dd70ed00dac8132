//! Starting and stopping the service: bind (loopback only without API keys), open the
//! stores, start the tracker and the scheduled jobs, serve, and on shutdown stop
//! taking requests, then flush the tracker.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use analytics::core::config::Config;
use analytics::core::event::SystemClock;
use analytics::stats::{Jobs, Stats, StatsConfig};
use analytics::tracker::{StopReport, Tracker, TrackerConfig};
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
        let tracker = Tracker::start(
            TrackerConfig::from_config(&config),
            backends.tracker_stores(),
        );
        let stats = Stats::new(
            backends.stats_stores(),
            Arc::new(SystemClock),
            StatsConfig::from_config(&config),
        );
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
        ));
        let jobs_task = tokio::spawn(async move {
            jobs.run_periodically(every, async move {
                let _ = jobs_signal.wait_for(|stop| *stop).await;
            })
            .await;
        });
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = signal.wait_for(|stop| *stop).await;
                })
                .await
                .context("the HTTP server failed")?;
            let _ = jobs_task.await;
            tracing::info!("stopped taking requests; writing what the tracker holds");
            let report = tracker.stop(STOP_DEADLINE).await;
            if report.clean {
                tracing::info!("every accepted event is stored");
            } else {
                tracing::error!(lost = report.lost, "events were lost at shutdown");
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
