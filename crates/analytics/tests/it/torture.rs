//! The concurrency torture test: everything at once, then every answer against a plain
//! recount.
//!
//! Four senders ingest an overlapping stream (each event sent by one to three of
//! them, each sender in its own order, so re-sent ids meet in different orders) while
//! the refresh and the counter repair run in a loop, counters fail now and then,
//! `flush` is called, Redis is wiped midway (PostgreSQL + Redis), and the service
//! restarts (a new `connect`, tracker and jobs; for the embedded store that also loses
//! the in-process counters). On PostgreSQL + Redis two instances share the databases
//! for the first part. At the end, every answer — the daily metrics of every day, the
//! range, each month's case study, agents and tickets, and today's real-time figures —
//! equals a recount of the events answered as accepted: from the running service
//! right after `flush`, from a second "process" that ran no job, and after the jobs
//! ran once more.
//!
//! Bounded: a few thousand events per round, a few rounds, well under a minute.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use analytics::core::case_study::CaseStudy;
use analytics::core::config::Config;
use analytics::core::counters::{Bucket, CounterBatch, Period};
use analytics::core::event::{Event, FixedClock, RawEvent, Validator};
use analytics::core::metrics::{DaySummary, Sums};
use analytics::core::report::{AgentMetrics, BusinessMetrics, CostPerResolution, TicketMetrics};
use analytics::core::sketch::Sketches;
use analytics::core::store::CounterStore;
use analytics::core::testing::{Rng, any_event, event_with_id};
use analytics::core::time::{DateRange, YearMonth};
use analytics::stats::{Jobs, Stats, StatsConfig};
use analytics::tracker::{TrackError, Tracker, TrackerConfig};
use analytics_pg::testing::TestDatabase;
use analytics_redis::testing::{TestCluster, TestRedis};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use tokio::sync::watch;

use crate::backends::config;

const SENDERS: usize = 4;

/// What the jobs running beside the writers did.
#[derive(Debug, Default)]
struct JobLog {
    /// Failures other than the injected ones.
    failures: Vec<String>,
    /// Counter repairs that went through.
    repairs: u64,
}

/// What the flaky counters' failures say.
const INJECTED: &str = "a counter failure injected by the torture test";

/// Counters whose `apply` fails every few calls: those writes stay uncounted until the
/// repair recounts their days.
struct Flaky {
    inner: Arc<dyn CounterStore>,
    calls: AtomicU64,
    failing: bool,
}

#[async_trait]
impl CounterStore for Flaky {
    async fn apply(&self, batch: &CounterBatch) -> analytics::core::Result<()> {
        if self.failing && self.calls.fetch_add(1, Ordering::Relaxed) % 7 == 3 {
            return Err(analytics::core::error::StoreError::unavailable("flaky", INJECTED).into());
        }
        self.inner.apply(batch).await
    }
    async fn read(&self, buckets: &[Bucket]) -> analytics::core::Result<Vec<Sums>> {
        self.inner.read(buckets).await
    }
    async fn read_whole(&self, buckets: &[Bucket]) -> analytics::core::Result<Option<Vec<Sums>>> {
        self.inner.read_whole(buckets).await
    }
    async fn read_agents_whole(
        &self,
        period: Period,
    ) -> analytics::core::Result<Option<BTreeMap<String, Sums>>> {
        self.inner.read_agents_whole(period).await
    }
    async fn replace(&self, bucket: &Bucket, sums: &Sums) -> analytics::core::Result<()> {
        self.inner.replace(bucket, sums).await
    }
    async fn active_sessions(&self, idle_cutoff: DateTime<Utc>) -> analytics::core::Result<u64> {
        self.inner.active_sessions(idle_cutoff).await
    }
    async fn online_agents(&self) -> analytics::core::Result<u64> {
        self.inner.online_agents().await
    }
    async fn read_agents(&self, period: Period) -> analytics::core::Result<BTreeMap<String, Sums>> {
        self.inner.read_agents(period).await
    }
    async fn intact(&self) -> analytics::core::Result<bool> {
        self.inner.intact().await
    }
    async fn begin_rebuild(&self) -> analytics::core::Result<String> {
        self.inner.begin_rebuild().await
    }
    async fn finish_rebuild(&self, token: &str) -> analytics::core::Result<bool> {
        self.inner.finish_rebuild(token).await
    }
}

/// One running service: its stores, tracker, and the jobs in a loop.
struct Instance {
    tracker: Tracker,
    stats: Stats,
    jobs: Jobs,
    stop: watch::Sender<bool>,
    loop_task: tokio::task::JoinHandle<()>,
}

impl Instance {
    /// Starts a service; with `failing`, every seventh counter update fails.
    async fn start(
        config: &Config,
        now: DateTime<Utc>,
        errors: Arc<Mutex<JobLog>>,
        failing: bool,
    ) -> Instance {
        let mut backends = analytics::connect(config).await.unwrap();
        backends.stores.counters = Arc::new(Flaky {
            inner: backends.stores.counters.clone(),
            calls: AtomicU64::new(0),
            failing,
        });
        let tracker = Tracker::start(
            TrackerConfig {
                batch_size: 25,
                flush_interval: Duration::from_millis(20),
                ..TrackerConfig::from_config(config)
            },
            backends.stores.clone(),
        );
        let stats = Stats::new(
            backends.stats_stores(),
            Arc::new(FixedClock::new(now)),
            StatsConfig::from_config(config),
        );
        let jobs = Jobs::new(stats.clone());
        // As the server does: the jobs once before taking events, then in a loop.
        jobs.run_all().await.unwrap();
        let (stop, mut stopped) = watch::channel(false);
        let loop_task = tokio::spawn({
            let jobs = jobs.clone();
            async move {
                while !*stopped.borrow() {
                    for (job, result) in [
                        ("refresh", jobs.refresh().await),
                        ("counters", jobs.repair_counters().await),
                    ] {
                        // The repair gives the sessions and agents back to the counters
                        // with `apply`, which the flaky counters fail on purpose: that run
                        // fails and the next one does it again (its days stay uncounted
                        // meanwhile). Any other failure is a bug.
                        if job == "counters"
                            && matches!(result, Ok(analytics::stats::JobOutcome::Ran(_)))
                        {
                            errors.lock().unwrap().repairs += 1;
                        }
                        if let Err(error) = result {
                            let error = format!("{job}: {error:?}");
                            if !error.contains(INJECTED) {
                                errors.lock().unwrap().failures.push(error);
                            }
                        }
                    }
                    let _ =
                        tokio::time::timeout(Duration::from_millis(15), stopped.changed()).await;
                }
            }
        });
        Instance {
            tracker,
            stats,
            jobs,
            stop,
            loop_task,
        }
    }

    /// Stops the jobs' loop; the tracker goes on.
    async fn halt_jobs(&mut self) {
        let _ = self.stop.send(true);
        (&mut self.loop_task).await.unwrap();
    }

    async fn stop(mut self) {
        if !self.loop_task.is_finished() {
            self.halt_jobs().await;
        }
        let report = self.tracker.stop(Duration::from_secs(20)).await;
        assert!(
            report.clean,
            "a graceful stop stores everything: {report:?}"
        );
    }
}

/// The stream: events over the last three days up to `now`, and re-sent copies.
fn stream(seed: u64, now: DateTime<Utc>, n: usize) -> Vec<RawEvent> {
    let mut rng = Rng::new(seed);
    let span = TimeDelta::days(3).num_seconds() as u64;
    let mut events: Vec<RawEvent> = (0..n)
        .map(|_| {
            any_event(
                now - TimeDelta::seconds(1 + rng.below(span) as i64),
                &mut rng,
            )
        })
        .collect();
    let again: Vec<RawEvent> = events.iter().step_by(20).cloned().collect();
    events.extend(again);
    events
}

/// Each sender's list: every event goes to one to three senders, and each sender
/// shuffles its list.
fn split(events: &[Event], seed: u64) -> Vec<Vec<Event>> {
    let mut rng = Rng::new(seed ^ 0x5eed);
    let mut lists = vec![Vec::new(); SENDERS];
    for event in events {
        let copies = 1 + rng.below(3) as usize;
        let first = rng.below(SENDERS as u64) as usize;
        for k in 0..copies {
            lists[(first + k) % SENDERS].push(event.clone());
        }
    }
    for list in &mut lists {
        for i in (1..list.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            list.swap(i, j);
        }
    }
    lists
}

/// Sends `events` in requests of up to 20, as a client would: a full buffer is sent
/// again. Returns the events answered as accepted.
async fn send(tracker: Tracker, events: Vec<Event>) -> Vec<Event> {
    let mut accepted = Vec::new();
    for chunk in events.chunks(20) {
        loop {
            match tracker.track_events(chunk.to_vec()) {
                Ok(()) => break,
                Err(TrackError::BufferFull) => tokio::time::sleep(Duration::from_millis(5)).await,
                Err(error) => panic!("sending failed: {error}"),
            }
        }
        accepted.extend_from_slice(chunk);
        tokio::task::yield_now().await;
    }
    accepted
}

/// Sends each sender's part `[from, to)` (fractions of its list) through the trackers
/// in turn, all senders at once.
async fn phase(
    trackers: &[&Tracker],
    lists: &[Vec<Event>],
    from: f64,
    to: f64,
    accepted: &mut Vec<Event>,
) {
    let mut tasks = Vec::new();
    for (i, list) in lists.iter().enumerate() {
        let a = (list.len() as f64 * from) as usize;
        let b = (list.len() as f64 * to) as usize;
        let tracker = trackers[i % trackers.len()].clone();
        tasks.push(tokio::spawn(send(tracker, list[a..b].to_vec())));
    }
    for task in tasks {
        accepted.extend(task.await.unwrap());
    }
}

/// The recount: the distinct accepted events summed by business day.
struct Recount {
    days: BTreeMap<NaiveDate, DaySummary>,
}

impl Recount {
    fn of(config: &Config, accepted: &[Event]) -> Recount {
        let calendar = config.calendar();
        let mut seen = std::collections::HashSet::new();
        let mut days = BTreeMap::<NaiveDate, DaySummary>::new();
        for event in accepted {
            if seen.insert(event.id()) {
                days.entry(calendar.date(event.timestamp()))
                    .or_default()
                    .record(event);
            }
        }
        Recount { days }
    }

    fn day(&self, day: NaiveDate) -> Sums {
        self.over(DateRange::day(day)).totals
    }

    /// The days of `range` merged.
    fn over(&self, range: DateRange) -> DaySummary {
        let mut all = DaySummary::default();
        for (_, summary) in self.days.range(range.start()..=range.end()) {
            all.merge(summary);
        }
        all
    }

    fn metrics(&self, range: DateRange, cost: CostPerResolution) -> BusinessMetrics {
        let all = self.over(range);
        BusinessMetrics::from_parts(&all.totals, &all.sketches.totals, cost)
    }

    fn agents(&self, month: YearMonth) -> Vec<AgentMetrics> {
        let all = self.over(month.days());
        let none = Sketches::new();
        all.agents
            .iter()
            .map(|(agent, sums)| {
                let sketches = all.sketches.agents.get(agent).unwrap_or(&none);
                AgentMetrics::from_parts(agent.clone(), sums, sketches)
            })
            .collect()
    }
}

/// Every answer against the recount.
async fn check(stats: &Stats, recount: &Recount, now: DateTime<Utc>, who: &str) {
    let calendar = stats.config().calendar;
    let cost = stats.config().cost;
    let today = calendar.date(now);
    let range = DateRange::new(today - TimeDelta::days(4), today).unwrap();
    for day in range.iter() {
        assert_eq!(
            stats.daily(day).await.unwrap(),
            recount.metrics(DateRange::day(day), cost),
            "{who}: daily {day}"
        );
    }
    let ranged = stats.range(range).await.unwrap();
    for (day, metrics) in ranged {
        assert_eq!(
            metrics,
            recount.metrics(DateRange::day(day), cost),
            "{who}: range, {day}"
        );
    }
    let mut months = vec![YearMonth::of(range.start())];
    if YearMonth::of(today) != months[0] {
        months.push(YearMonth::of(today));
    }
    for month in months {
        assert_eq!(
            stats.case_study(month).await.unwrap(),
            CaseStudy::from_metrics(month, recount.metrics(month.days(), cost)),
            "{who}: case study {month:?}"
        );
        assert_eq!(
            stats.agents(month).await.unwrap(),
            recount.agents(month),
            "{who}: agents {month:?}"
        );
        assert_eq!(
            stats.tickets(month).await.unwrap(),
            TicketMetrics::from_sums(&recount.over(month.days()).totals),
            "{who}: tickets {month:?}"
        );
    }
    let realtime = stats.realtime().await.unwrap();
    assert_eq!(
        realtime.events_today,
        recount.day(today).total_events(),
        "{who}: events today"
    );
    assert_eq!(
        realtime.today,
        BusinessMetrics::from_sums(&recount.day(today), cost),
        "{who}: today's metrics"
    );
}

/// The Redis the counters of a round live in, and how it loses their data.
enum SharedRedis<'a> {
    Server(&'a TestRedis),
    Cluster {
        cluster: &'a Mutex<TestCluster>,
        prefix: &'a str,
    },
}

impl SharedRedis<'_> {
    /// Redis loses the counters' data: every key of the prefix is deleted, or with
    /// `crash` on a cluster, the master of today's slot is killed and comes back empty
    /// (with everything else its slots held).
    fn lose_data(&self, config: &Config, now: DateTime<Utc>, crash: bool) {
        match self {
            SharedRedis::Server(redis) => {
                let mut conn = redis.connection();
                for key in redis.keys() {
                    let _: () = analytics_redis::testing::redis::cmd("DEL")
                        .arg(&key)
                        .query(&mut conn)
                        .unwrap();
                }
            }
            SharedRedis::Cluster { cluster, prefix } if crash => {
                let today = Bucket::all(Period::Day(config.calendar().date(now)));
                let key = analytics_redis::Keys::cluster(prefix).bucket(&today).0;
                tokio::task::block_in_place(|| {
                    let mut cluster = cluster.lock().unwrap();
                    let master = cluster.node_of(&key);
                    cluster.restart(master);
                });
            }
            SharedRedis::Cluster { cluster, prefix } => {
                tokio::task::block_in_place(|| cluster.lock().unwrap().wipe(prefix));
            }
        }
    }
}

async fn round(config: &Config, redis: Option<&SharedRedis<'_>>, seed: u64) {
    let now = Utc::now();
    let errors = Arc::new(Mutex::new(JobLog::default()));
    let validator = Validator::new(config.validation_rules(), Arc::new(FixedClock::new(now)));
    let events: Vec<Event> = stream(seed, now, 2_500)
        .into_iter()
        .map(|raw| validator.raw(raw).unwrap())
        .collect();
    let lists = split(&events, seed);
    let mut accepted = Vec::new();

    // Part 1: two instances share the databases where they can (PostgreSQL + Redis;
    // the embedded store is one process per file).
    let first = Instance::start(config, now, errors.clone(), true).await;
    let second = match redis {
        Some(_) => Some(Instance::start(config, now, errors.clone(), true).await),
        None => None,
    };
    let trackers: Vec<&Tracker> = std::iter::once(&first.tracker)
        .chain(second.as_ref().map(|s| &s.tracker))
        .collect();
    phase(&trackers, &lists, 0.0, 0.3, &mut accepted).await;
    // Redis loses its data in the middle of the traffic (a master crashes, on a
    // cluster).
    if let Some(redis) = redis {
        redis.lose_data(config, now, true);
    }
    phase(&trackers, &lists, 0.3, 0.5, &mut accepted).await;
    first.tracker.flush().await.unwrap();
    if let Some(second) = second {
        second.tracker.flush().await.unwrap();
        second.stop().await;
    }

    // Part 2: the service restarts and the rest arrives; counters no longer fail.
    // Redis loses its data again while events flow, so the counters are rebuilt
    // while writers write; the last part comes with no job running, so that the
    // recent days are answered from those counters (older ones from detail).
    first.stop().await;
    let mut service = Instance::start(config, now, errors.clone(), false).await;
    phase(&[&service.tracker], &lists, 0.5, 0.6, &mut accepted).await;
    if let Some(redis) = redis {
        redis.lose_data(config, now, false);
        let rebuilt = tokio::spawn({
            let counters = service.stats.stores().counters.clone();
            async move {
                while !counters.intact().await.unwrap() {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        });
        phase(&[&service.tracker], &lists, 0.6, 0.75, &mut accepted).await;
        rebuilt.await.unwrap();
    } else {
        phase(&[&service.tracker], &lists, 0.6, 0.75, &mut accepted).await;
    }
    service.halt_jobs().await;
    phase(&[&service.tracker], &lists, 0.75, 1.0, &mut accepted).await;
    service.tracker.flush().await.unwrap();
    // Clients retrying across midnight: stored ids re-sent, stamped a day earlier. None
    // is stored or counted again (the recount keeps each id's first acceptance).
    let restamped: Vec<Event> = accepted
        .iter()
        .step_by(25)
        .map(|e| {
            event_with_id(
                e.id(),
                e.name(),
                e.timestamp() - TimeDelta::days(1),
                serde_json::Value::Object(e.properties()),
            )
        })
        .collect();
    accepted.extend(send(service.tracker.clone(), restamped).await);
    service.tracker.flush().await.unwrap();

    let recount = Recount::of(config, &accepted);
    check(&service.stats, &recount, now, "the service after flush").await;

    // Another process (the CLI's `report`), which ran no job.
    let other = analytics::connect(config).await.unwrap();
    let other = Stats::new(
        other.stats_stores(),
        Arc::new(FixedClock::new(now)),
        StatsConfig::from_config(config),
    );
    check(&other, &recount, now, "another process").await;

    // The uncounted days recounted: recent days are answered from the counters.
    service.jobs.repair_counters().await.unwrap();
    assert!(
        service
            .stats
            .stores()
            .events
            .uncounted_days()
            .await
            .unwrap()
            .is_empty(),
        "the repair recounted every uncounted day"
    );
    check(&service.stats, &recount, now, "after the counter repair").await;
    if redis.is_some() {
        // ... and they are whole: the answers above came from them.
        let today = config.calendar().date(now);
        let recent = [today - TimeDelta::days(1), today].map(|d| Bucket::all(Period::Day(d)));
        let counters = &service.stats.stores().counters;
        assert!(
            counters.read_whole(&recent).await.unwrap().is_some(),
            "the counters are whole after the repair"
        );
    }
    // Redis loses its data: the answers stay right at once (from detail), and again
    // once the counters are rebuilt.
    if let Some(redis) = redis {
        redis.lose_data(config, now, true);
        check(
            &service.stats,
            &recount,
            now,
            "right after Redis lost its data",
        )
        .await;
        service.jobs.repair_counters().await.unwrap();
        check(&service.stats, &recount, now, "after the rebuild").await;
    }
    // Everything aggregated: daily statistics.
    service.jobs.run_all().await.unwrap();
    check(&service.stats, &recount, now, "after the jobs").await;
    service.stop().await;
    let log = errors.lock().unwrap();
    assert!(log.failures.is_empty(), "jobs failed: {:?}", log.failures);
    assert!(log.repairs > 0, "a repair beside the writers went through");
}

/// The seeds of the rounds: three, or `ANALYTICS_TORTURE_ROUNDS` (for a longer hunt).
fn seeds(first: u64) -> std::ops::Range<u64> {
    let rounds = std::env::var("ANALYTICS_TORTURE_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3);
    first..first + rounds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_equals_a_recount_on_postgres_and_redis() {
    for seed in seeds(1) {
        let db = TestDatabase::new().await;
        let redis = TestRedis::new().await;
        let config = config(&[
            ("DATABASE_URL", db.url()),
            ("REDIS_URL", &analytics_redis::testing::server_url()),
            ("ANALYTICS_REDIS_PREFIX", redis.prefix()),
        ]);
        round(&config, Some(&SharedRedis::Server(&redis)), seed).await;
    }
}

/// The same on a three-master Redis Cluster, where a master crashes and restarts
/// empty twice a round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_equals_a_recount_on_postgres_and_a_redis_cluster() {
    let cluster = Mutex::new(TestCluster::start(3));
    let url = cluster.lock().unwrap().url();
    for seed in seeds(2_000) {
        let db = TestDatabase::new().await;
        let prefix = format!("test:{}:{seed}:", std::process::id());
        let config = config(&[
            ("DATABASE_URL", db.url()),
            ("REDIS_URL", &url),
            ("ANALYTICS_REDIS_PREFIX", &prefix),
        ]);
        let redis = SharedRedis::Cluster {
            cluster: &cluster,
            prefix: &prefix,
        };
        round(&config, Some(&redis), seed).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_equals_a_recount_on_the_embedded_store() {
    for seed in seeds(1_000) {
        let dir = std::env::temp_dir().join(format!(
            "analytics-torture-{}-{seed}-{}",
            std::process::id(),
            Utc::now().timestamp_micros()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("analytics.db").display());
        let config = config(&[("DATABASE_URL", &url)]);
        round(&config, None, seed).await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
