//! The real `analytics` binary: SIGTERM during ingest, `report`, and the embedded
//! default of the README's first command.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use analytics_pg::testing::TestDatabase;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::http::{get, post_json};

pub(crate) fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// Starts `analytics serve` on `addr` in `dir`, with these variables on top of a clean
/// environment of the service's variables.
pub(crate) async fn serve(addr: SocketAddr, dir: &Path, vars: &[(&str, &str)]) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_analytics"));
    command
        .arg("serve")
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for name in [
        "DATABASE_URL",
        "DATABASE_READ_URL",
        "REDIS_URL",
        "ANALYTICS_API_KEYS",
        "ANALYTICS_REDIS_PREFIX",
    ] {
        command.env_remove(name);
    }
    command
        .env("ANALYTICS_BIND", addr.to_string())
        .env("ANALYTICS_FLUSH_INTERVAL_MS", "200");
    for (name, value) in vars {
        command.env(name, value);
    }
    let child = command.kill_on_drop(true).spawn().unwrap();
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(addr).await.is_ok()
            && get(addr, "/healthz", None).await.status == 200
        {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("analytics serve did not come up on {addr}");
}

/// Sends SIGTERM and waits for the process to end; returns whether it exited cleanly.
async fn terminate(mut child: Child) -> bool {
    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("exits")
        .unwrap();
    exit.success()
}

fn batch(task: usize, n: usize) -> Value {
    let events: Vec<Value> = (0..100)
        .map(|i| {
            json!({"event_id": uuid::Uuid::now_v7().to_string(), "event": "session.start",
                   "properties": {"session_id": format!("t{task}-b{n}-{i}")}})
        })
        .collect();
    json!({"events": events})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_ingest_loses_nothing_that_was_answered_202() {
    let db = TestDatabase::new().await;
    let addr = free_addr();
    let dir = std::env::temp_dir();
    let child = serve(
        addr,
        &dir,
        &[
            ("DATABASE_URL", db.url()),
            ("ANALYTICS_FLUSH_INTERVAL_MS", "60000"),
        ],
    )
    .await;

    // Four clients send batches of 100 as fast as they can; SIGTERM arrives meanwhile.
    let mut clients = Vec::new();
    for task in 0..4 {
        clients.push(tokio::spawn(async move {
            let mut accepted = 0u64;
            for n in 0..200 {
                let Ok(response) = tokio::time::timeout(
                    Duration::from_secs(10),
                    tokio::spawn(async move {
                        post_json(addr, "/api/analytics/events", None, &batch(task, n)).await
                    }),
                )
                .await
                else {
                    break;
                };
                match response {
                    Ok(response) if response.status == 202 => {
                        accepted += response.json()["accepted"].as_u64().unwrap()
                    }
                    _ => break,
                }
            }
            accepted
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(terminate(child).await, "a clean exit");
    let mut accepted = 0;
    for client in clients {
        accepted += client.await.unwrap();
    }
    assert!(accepted > 0, "some batches were accepted before the signal");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM analytics_events")
        .fetch_one(db.store().pool())
        .await
        .unwrap();
    assert_eq!(
        stored as u64, accepted,
        "every event answered 202 is stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_default_serves_keeps_its_data_and_reports_the_same_case_study() {
    let dir = std::env::temp_dir().join(format!(
        "analytics-default-{}",
        uuid::Uuid::now_v7().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let addr = free_addr();
    // The README's first command: no database or Redis configured.
    let child = serve(addr, &dir, &[]).await;
    let accepted = post_json(addr, "/api/analytics/events", None, &batch(0, 0)).await;
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    assert_eq!(
        post_json(addr, "/api/analytics/flush", None, &json!({}))
            .await
            .status,
        200
    );
    let before = get(addr, "/api/analytics/case-study", None).await.json();
    assert_eq!(before["ai_chatbot"]["total_customers_served"], 100);
    // `analytics report` in another process while the server runs: the same answer
    // (the server's in-process counters are not the other process's: it reads detail).
    assert_eq!(
        report(&dir).await,
        before,
        "report beside the running server"
    );
    assert!(terminate(child).await);
    assert!(
        dir.join("analytics.db").exists(),
        "the embedded database file is in the working directory"
    );

    // After a restart the data is there.
    let child = serve(addr, &dir, &[]).await;
    let after = get(addr, "/api/analytics/case-study", None).await.json();
    assert_eq!(after, before);
    assert!(terminate(child).await);

    // `analytics report` prints the same case study as the API.
    let month = before["period"].as_str().unwrap().to_owned();
    assert_eq!(report(&dir).await, before, "report for {month}");
    let text = Command::new(env!("CARGO_BIN_EXE_analytics"))
        .args(["report", "--format", "text"])
        .current_dir(&dir)
        .env_remove("DATABASE_URL")
        .output()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains(before["story"].as_str().unwrap()));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `analytics report` (this month, JSON) on the embedded default in `dir`.
async fn report(dir: &Path) -> Value {
    let mut command = Command::new(env!("CARGO_BIN_EXE_analytics"));
    command
        .arg("report")
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL");
    json_of(command).await
}

/// Runs a command that prints JSON; fails with its stderr when it fails.
async fn json_of(mut command: Command) -> Value {
    let output = command.output().await.unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test]
async fn every_command_has_help_and_bad_input_is_named() {
    for command in [
        "serve",
        "migrate",
        "report",
        "aggregate",
        "cleanup",
        "demo",
        "dead-letters",
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_analytics"))
            .args([command, "--help"])
            .output()
            .await
            .unwrap();
        assert!(output.status.success(), "{command} --help");
        assert!(!output.stdout.is_empty());
    }
    // A bad argument value is a usage error, exit status 2 like clap's own, named.
    for (args, expected) in [
        (&["report", "--month", "2025-13"][..], "YYYY-MM"),
        (&["export", "agents", "--month", "2025-1"][..], "YYYY-MM"),
        (&["aggregate", "--date", "2025-02-30"][..], "date"),
        (
            &["aggregate", "--from", "2025-03-02", "--to", "2025-03-01"][..],
            "2025-03-01",
        ),
        (
            &[
                "export",
                "daily",
                "--start",
                "2025-03-01",
                "--end",
                "03/02/2025",
            ][..],
            "end",
        ),
    ] {
        let bad = Command::new(env!("CARGO_BIN_EXE_analytics"))
            .args(args)
            .env("DATABASE_URL", "sqlite::memory:")
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&bad.stderr);
        assert_eq!(bad.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    // Checked before the database is reached: a bad month is a usage error even when
    // the database does not answer.
    let unreachable = Command::new(env!("CARGO_BIN_EXE_analytics"))
        .args(["report", "--month", "2025-13"])
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")
        .output()
        .await
        .unwrap();
    assert_eq!(
        unreachable.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&unreachable.stderr)
    );
    // The return window has its flag, as every variable does.
    let window = Command::new(env!("CARGO_BIN_EXE_analytics"))
        .args(["migrate", "--return-window-hours", "0"])
        .env("DATABASE_URL", "sqlite::memory:")
        .output()
        .await
        .unwrap();
    assert_eq!(window.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&window.stderr).contains("ANALYTICS_RETURN_WINDOW_HOURS"));
    let config = Command::new(env!("CARGO_BIN_EXE_analytics"))
        .arg("migrate")
        .env("ANALYTICS_BATCH_SIZE", "zero")
        .output()
        .await
        .unwrap();
    assert_eq!(config.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&config.stderr).contains("ANALYTICS_BATCH_SIZE"));
    // Every configuration error exits with 2: a short API key, a public address
    // without keys.
    for (vars, expected) in [
        (
            vec![("ANALYTICS_API_KEYS", "admin:short")],
            "at least 16 characters",
        ),
        (vec![("ANALYTICS_BIND", "0.0.0.0:0")], "without API keys"),
    ] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_analytics"));
        command
            .arg("serve")
            .env("DATABASE_URL", "sqlite::memory:")
            .env_remove("ANALYTICS_API_KEYS")
            .env_remove("REDIS_URL");
        for (name, value) in vars {
            command.env(name, value);
        }
        let output = command.output().await.unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
        assert!(
            !stderr.contains("short\n") && !stderr.contains(":short"),
            "{stderr}"
        );
    }
}

/// A counter of `/metrics` with these labels, 0 when absent.
fn metric(text: &str, name_and_labels: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0)
}

/// One client's events: sessions (some escalated), agents taking sessions over and
/// tickets closed, over the last 30 hours (today and yesterday).
pub(crate) fn traffic(client: u64, n: u64, now: chrono::DateTime<chrono::Utc>) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let at = (now - chrono::TimeDelta::minutes(((i * 7 + client * 13) % 1_800) as i64 + 1))
                .to_rfc3339();
            let id = uuid::Uuid::now_v7().to_string();
            let s = format!("c{client}-s{}", i / 4);
            let (event, properties) = match i % 4 {
                0 => ("session.start", json!({"session_id": s})),
                1 => ("session.escalate", json!({"session_id": s})),
                2 => (
                    "agent.session_takeover",
                    json!({"session_id": s, "agent_id": format!("a{}", i % 5), "wait_duration_seconds": (i % 90) as f64 + 0.5}),
                ),
                _ => (
                    "ticket.closed",
                    json!({"ticket_id": format!("t{client}-{i}"), "resolution_duration_hours": (i % 48) as f64, "sla_met": i % 3 != 0}),
                ),
            };
            json!({"event_id": id, "event": event, "timestamp": at, "properties": properties})
        })
        .collect()
}

/// Two `analytics serve` processes on one PostgreSQL and Redis, clients spreading
/// batches over both and re-sending batches to the other one, `analytics aggregate`
/// running beside them: both answer every question identically and exactly, and the
/// scheduled jobs are shared (one process runs a job while the other skips it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_and_an_aggregate_answer_identically_and_share_the_jobs() {
    let db = TestDatabase::new().await;
    let redis = analytics_redis::testing::TestRedis::new().await;
    let redis_url = analytics_redis::testing::server_url();
    let dir = std::env::temp_dir();
    let vars = [
        ("DATABASE_URL", db.url()),
        ("REDIS_URL", redis_url.as_str()),
        ("ANALYTICS_REDIS_PREFIX", redis.prefix()),
        ("ANALYTICS_JOBS_INTERVAL_MS", "100"),
        ("ANALYTICS_FLUSH_INTERVAL_MS", "50"),
    ];
    let addrs = [free_addr(), free_addr()];
    let a = serve(addrs[0], &dir, &vars).await;
    let b = serve(addrs[1], &dir, &vars).await;
    let now = chrono::Utc::now();

    // `analytics aggregate` beside the servers, over and over while the traffic flows.
    let today = analytics::core::config::Config::default()
        .calendar()
        .date(now);
    let aggregate = {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let (from, to) = (
            (today - chrono::TimeDelta::days(1)).to_string(),
            today.to_string(),
        );
        tokio::spawn(async move {
            let mut runs = 0;
            for _ in 0..5 {
                let mut command = Command::new(env!("CARGO_BIN_EXE_analytics"));
                command.args(["aggregate", "--from", &from, "--to", &to]);
                for (k, v) in &vars {
                    command.env(k, v);
                }
                let output = command.output().await.unwrap();
                assert!(
                    output.status.success(),
                    "{}",
                    String::from_utf8_lossy(&output.stderr)
                );
                runs += 1;
            }
            runs
        })
    };

    // Two clients, 20 batches of 50 each; every third batch is sent again, whole, to
    // the other server.
    let mut clients = Vec::new();
    for client in 0..2u64 {
        clients.push(tokio::spawn(async move {
            let events = traffic(client, 1_000, now);
            let mut sent = Vec::new();
            for (n, batch) in events.chunks(50).enumerate() {
                let body = json!({"events": batch});
                let first = addrs[(n + client as usize) % 2];
                let response = post_json(first, "/api/analytics/events", None, &body).await;
                assert_eq!(response.status, 202, "{}", response.body);
                if n % 3 == 0 {
                    let other = addrs[(n + client as usize + 1) % 2];
                    let again = post_json(other, "/api/analytics/events", None, &body).await;
                    assert_eq!(again.status, 202, "{}", again.body);
                }
                sent.extend_from_slice(batch);
            }
            sent
        }));
    }
    let mut sent = Vec::new();
    for client in clients {
        sent.extend(client.await.unwrap());
    }
    assert_eq!(aggregate.await.unwrap(), 5);
    for addr in addrs {
        let flushed = post_json(addr, "/api/analytics/flush", None, &json!({})).await;
        assert_eq!(flushed.status, 200, "{}", flushed.body);
    }

    // The recount of what was sent (each id once).
    let calendar = analytics::core::config::Config::default().calendar();
    let mut expected = std::collections::BTreeMap::<chrono::NaiveDate, [u64; 4]>::new();
    for event in &sent {
        let at: chrono::DateTime<chrono::Utc> =
            event["timestamp"].as_str().unwrap().parse().unwrap();
        let counts = expected.entry(calendar.date(at)).or_default();
        let k = [
            "session.start",
            "session.escalate",
            "agent.session_takeover",
            "ticket.closed",
        ]
        .iter()
        .position(|name| event["event"] == *name)
        .unwrap();
        counts[k] += 1;
    }

    let month = today.format("%Y-%m").to_string();
    let yesterday = today - chrono::TimeDelta::days(1);
    let questions = [
        format!("/api/analytics/daily?date={today}"),
        format!("/api/analytics/daily?date={yesterday}"),
        format!("/api/analytics/range?start={yesterday}&end={today}"),
        format!("/api/analytics/case-study?month={month}"),
        format!(
            "/api/analytics/case-study?month={}",
            yesterday.format("%Y-%m")
        ),
        format!("/api/analytics/agents?month={month}"),
        format!("/api/analytics/tickets?month={month}"),
    ];
    for question in &questions {
        let one = get(addrs[0], question, None).await;
        let two = get(addrs[1], question, None).await;
        assert_eq!(one.status, 200, "{question}: {}", one.body);
        assert_eq!(
            one.json(),
            two.json(),
            "{question}: the two servers disagree"
        );
    }
    for (day, [sessions, escalations, takeovers, closed]) in &expected {
        let daily = get(addrs[0], &format!("/api/analytics/daily?date={day}"), None)
            .await
            .json();
        let raw = &daily["raw"];
        assert_eq!(raw["total_customers_served"], *sessions, "{day}: {daily}");
        assert_eq!(raw["escalations"], *escalations, "{day}: {daily}");
        assert_eq!(raw["sessions_handled"], *takeovers, "{day}: {daily}");
        assert_eq!(raw["tickets_resolved"], *closed, "{day}: {daily}");
    }
    let realtime: Vec<Value> = futures_join(addrs).await;
    assert_eq!(realtime[0]["today"], realtime[1]["today"]);
    assert_eq!(
        realtime[0]["today"]["total_customers_served"],
        expected.get(&today).map_or(0, |c| c[0])
    );

    // The jobs are shared: both processes ran jobs, and a process skipped a run while
    // the other held its lock (the traffic keeps the runs long enough to meet).
    let mut skipped = 0;
    for _ in 0..300 {
        let mut ran = 0;
        skipped = 0;
        for addr in addrs {
            let text = get(addr, "/metrics", None).await.body;
            for job in ["prepare", "refresh", "counters", "retention"] {
                ran += metric(
                    &text,
                    &format!("analytics_job_runs_total{{job=\"{job}\",outcome=\"ran\"}}"),
                );
                skipped += metric(
                    &text,
                    &format!("analytics_job_runs_total{{job=\"{job}\",outcome=\"skipped\"}}"),
                );
                assert_eq!(
                    metric(
                        &text,
                        &format!("analytics_job_runs_total{{job=\"{job}\",outcome=\"failed\"}}")
                    ),
                    0,
                    "{job} failed: {text}"
                );
            }
        }
        assert!(ran > 0);
        if skipped > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(skipped > 0, "one process skips a job the other runs");
    assert!(terminate(a).await && terminate(b).await);
}

/// Sends `body` to the instances in turn from `first`, skipping any that does not
/// answer 202 (stopped, killed): as a load balancer would. Returns whether one did.
async fn post_to_any(addrs: &[SocketAddr], first: usize, body: &Value) -> bool {
    for k in 0..addrs.len() {
        let addr = addrs[(first + k) % addrs.len()];
        let body = body.clone();
        // A connection refused panics the request's task: that instance is down.
        let sent = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::spawn(
                async move { post_json(addr, "/api/analytics/events", None, &body).await },
            ),
        )
        .await;
        if let Ok(Ok(response)) = sent
            && response.status == 202
        {
            return true;
        }
    }
    false
}

/// Three `analytics serve` processes on one PostgreSQL and Redis, clients spreading
/// batches over them and re-sending some to another instance; mid-ingest one instance
/// is stopped with SIGTERM and another killed with `kill -9`, and the clients go on
/// with those that answer. Every event answered 202 (the durable default) is stored
/// once, the answers equal a recount of what is stored, and once the two are back all
/// three answer every question identically.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_lose_nothing_answered_when_one_stops_and_one_is_killed() {
    let db = TestDatabase::new().await;
    let redis = analytics_redis::testing::TestRedis::new().await;
    let redis_url = analytics_redis::testing::server_url();
    let dir = std::env::temp_dir();
    let vars = [
        ("DATABASE_URL", db.url()),
        ("REDIS_URL", redis_url.as_str()),
        ("ANALYTICS_REDIS_PREFIX", redis.prefix()),
        ("ANALYTICS_JOBS_INTERVAL_MS", "200"),
        ("ANALYTICS_FLUSH_INTERVAL_MS", "60000"),
    ];
    let addrs = [free_addr(), free_addr(), free_addr()];
    let mut servers = Vec::new();
    for addr in addrs {
        servers.push(Some(serve(addr, &dir, &vars).await));
    }
    let now = chrono::Utc::now();

    // Three clients, batches of 50 to the instances in turn; every third batch is sent
    // again, whole, to the next instance.
    let mut clients = Vec::new();
    for client in 0..3u64 {
        clients.push(tokio::spawn(async move {
            let events = traffic(client, 6_000, now);
            let mut answered = Vec::new();
            for (n, batch) in events.chunks(50).enumerate() {
                let body = json!({"events": batch});
                let first = (n + client as usize) % 3;
                if post_to_any(&addrs, first, &body).await {
                    answered.extend_from_slice(batch);
                }
                if n % 3 == 0 {
                    post_to_any(&addrs, first + 1, &body).await;
                }
            }
            (answered, events)
        }));
    }
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert!(
        clients.iter().all(|c| !c.is_finished()),
        "the clients are still sending when an instance stops"
    );
    let stopped = servers[1].take().unwrap();
    let stopping = tokio::spawn(terminate(stopped));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed = servers[2].take().unwrap();
    let pid = killed.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .unwrap()
            .success()
    );
    drop(killed);
    assert!(
        clients.iter().all(|c| !c.is_finished()),
        "the clients are still sending when an instance is killed"
    );
    assert!(
        stopping.await.unwrap(),
        "the stopped instance exits cleanly"
    );
    let mut answered = Vec::new();
    let mut sent = Vec::new();
    for client in clients {
        let (a, s) = client.await.unwrap();
        answered.extend(a);
        sent.extend(s);
    }
    assert!(answered.len() >= 1_000, "{} answered", answered.len());

    // Every answered event is stored, once.
    let id = |e: &Value| {
        e["event_id"]
            .as_str()
            .unwrap()
            .parse::<uuid::Uuid>()
            .unwrap()
    };
    let answered_ids: Vec<uuid::Uuid> = answered.iter().map(id).collect();
    let stored_answered: i64 =
        sqlx::query_scalar("SELECT count(*) FROM analytics_events WHERE event_id = ANY($1)")
            .bind(&answered_ids)
            .fetch_one(db.store().pool())
            .await
            .unwrap();
    assert_eq!(
        stored_answered as usize,
        answered_ids.len(),
        "every event answered 202 is stored"
    );
    let (rows, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT event_id) FROM analytics_events")
            .fetch_one(db.store().pool())
            .await
            .unwrap();
    assert_eq!(rows, distinct, "no event stored twice");

    // The recount: the events sent whose ids are stored (some not answered may be: a
    // commit whose answer the kill cut off).
    let sent_ids: Vec<uuid::Uuid> = sent.iter().map(id).collect();
    let stored_ids: std::collections::HashSet<uuid::Uuid> =
        sqlx::query_scalar("SELECT event_id FROM analytics_events WHERE event_id = ANY($1)")
            .bind(&sent_ids)
            .fetch_all(db.store().pool())
            .await
            .unwrap()
            .into_iter()
            .collect();
    assert_eq!(
        stored_ids.len() as i64,
        rows,
        "only what was sent is stored"
    );
    let calendar = analytics::core::config::Config::default().calendar();
    let mut expected = std::collections::BTreeMap::<chrono::NaiveDate, [u64; 4]>::new();
    for event in sent.iter().filter(|e| stored_ids.contains(&id(e))) {
        let at: chrono::DateTime<chrono::Utc> =
            event["timestamp"].as_str().unwrap().parse().unwrap();
        let k = [
            "session.start",
            "session.escalate",
            "agent.session_takeover",
            "ticket.closed",
        ]
        .iter()
        .position(|name| event["event"] == *name)
        .unwrap();
        expected.entry(calendar.date(at)).or_default()[k] += 1;
    }

    // The two come back; all three answer identically, and as the recount says.
    servers[1] = Some(serve(addrs[1], &dir, &vars).await);
    servers[2] = Some(serve(addrs[2], &dir, &vars).await);
    let today = calendar.date(now);
    let yesterday = today - chrono::TimeDelta::days(1);
    let month = today.format("%Y-%m").to_string();
    let questions = [
        format!("/api/analytics/daily?date={today}"),
        format!("/api/analytics/daily?date={yesterday}"),
        format!("/api/analytics/range?start={yesterday}&end={today}"),
        format!("/api/analytics/case-study?month={month}"),
        format!("/api/analytics/agents?month={month}"),
        format!("/api/analytics/tickets?month={month}"),
    ];
    for question in &questions {
        let answers: Vec<Value> = {
            let mut answers = Vec::new();
            for addr in addrs {
                let response = get(addr, question, None).await;
                assert_eq!(response.status, 200, "{question}: {}", response.body);
                answers.push(response.json());
            }
            answers
        };
        assert_eq!(
            answers[0], answers[1],
            "{question}: instances 1 and 2 disagree"
        );
        assert_eq!(
            answers[0], answers[2],
            "{question}: instances 1 and 3 disagree"
        );
    }
    for (day, [sessions, escalations, takeovers, closed]) in &expected {
        let daily = get(addrs[2], &format!("/api/analytics/daily?date={day}"), None)
            .await
            .json();
        let raw = &daily["raw"];
        assert_eq!(raw["total_customers_served"], *sessions, "{day}: {daily}");
        assert_eq!(raw["escalations"], *escalations, "{day}: {daily}");
        assert_eq!(raw["sessions_handled"], *takeovers, "{day}: {daily}");
        assert_eq!(raw["tickets_resolved"], *closed, "{day}: {daily}");
    }

    // The scheduled jobs (every 200 ms) run about once per interval between the three,
    // not once per instance: over two seconds, at most one run per 140 ms (and a few
    // at the window's edges), against 30 if each instance ran its own.
    let refreshes = || async move {
        let mut ran = 0;
        for addr in addrs {
            let text = get(addr, "/metrics", None).await.body;
            ran += metric(
                &text,
                "analytics_job_runs_total{job=\"refresh\",outcome=\"ran\"}",
            );
        }
        ran
    };
    let before = refreshes().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ran = refreshes().await - before;
    assert!(
        (1..=17).contains(&ran),
        "{ran} refreshes in 2 s across three instances"
    );
    for server in servers.into_iter().flatten() {
        assert!(terminate(server).await);
    }
}

/// The real-time view of both servers.
async fn futures_join(addrs: [SocketAddr; 2]) -> Vec<Value> {
    let mut out = Vec::new();
    for addr in addrs {
        let response = get(addr, "/api/analytics/realtime", None).await;
        assert_eq!(response.status, 200, "{}", response.body);
        out.push(response.json());
    }
    out
}

/// A credential given in a URL — the user information or a query parameter, for
/// PostgreSQL and Redis — never appears in the start-up line, in a log line or in an
/// error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_urls_are_masked_in_logs_and_errors() {
    const SECRET: &str = "hunter2-secret";
    let db = TestDatabase::new().await;
    // The test server trusts local connections: the password is ignored, not refused.
    let url = format!("{}?password={SECRET}&application_name=masked", db.url());
    let serving = logs_until(&url, None, "analytics is serving").await;
    assert!(serving.contains("password=***"), "{serving}");
    assert!(!serving.contains(SECRET), "{serving}");

    // An unreachable PostgreSQL (start-up fails), an unreachable Redis (the jobs at start
    // fail and say so), a malformed Redis URL (a configuration error).
    for (database, redis, expect) in [
        (
            format!("postgres://app:{SECRET}@127.0.0.1:1/db?password={SECRET}"),
            None,
            "cannot open PostgreSQL",
        ),
        (
            "sqlite::memory:".to_owned(),
            Some(format!("redis://:{SECRET}@127.0.0.1:1/?password={SECRET}")),
            "failed",
        ),
        (
            "sqlite::memory:".to_owned(),
            Some(format!("rediss//{SECRET}")),
            "REDIS_URL",
        ),
    ] {
        let stderr = logs_until(&database, redis.as_deref(), expect).await;
        assert!(stderr.contains(expect), "{database} {redis:?}: {stderr}");
        assert!(!stderr.contains(SECRET), "{stderr}");
    }
}

/// What `analytics serve` writes on stderr with these URLs, until a line contains
/// `expect` or the process ends (then it is killed).
async fn logs_until(database: &str, redis: Option<&str>, expect: &str) -> String {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let mut command = Command::new(env!("CARGO_BIN_EXE_analytics"));
    command
        .arg("serve")
        .env("DATABASE_URL", database)
        .env_remove("REDIS_URL")
        .env_remove("ANALYTICS_API_KEYS")
        .env("ANALYTICS_BIND", free_addr().to_string())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(redis) = redis {
        command.env("REDIS_URL", redis);
    }
    let mut child = command.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut stderr = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            stderr.push_str(&line);
            stderr.push('\n');
            if line.contains(expect) {
                return;
            }
        }
    })
    .await;
    let _ = child.kill().await;
    stderr
}

/// `kill -9` during ingest: every event answered 202 under the default (durable)
/// acknowledgement is in the store afterwards — on PostgreSQL and on the embedded
/// default. The flush interval is a minute, so nothing would be stored by then
/// without the acknowledgement's own write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_nothing_that_was_answered_202() {
    let db = TestDatabase::new().await;
    let dir =
        std::env::temp_dir().join(format!("analytics-kill-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let embedded = format!("sqlite://{}?mode=rwc", dir.join("analytics.db").display());
    for database in [db.url().to_owned(), embedded.clone()] {
        let addr = free_addr();
        let child = serve(
            addr,
            &dir,
            &[
                ("DATABASE_URL", &database),
                ("ANALYTICS_FLUSH_INTERVAL_MS", "60000"),
            ],
        )
        .await;
        let mut clients = Vec::new();
        for task in 0..4 {
            clients.push(tokio::spawn(async move {
                let mut answered = Vec::new();
                for n in 0..10_000 {
                    let body = batch(task, n);
                    let ids: Vec<String> = body["events"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|e| e["event_id"].as_str().unwrap().to_owned())
                        .collect();
                    let Ok(Ok(response)) = tokio::time::timeout(
                        Duration::from_secs(5),
                        tokio::spawn(async move {
                            post_json(addr, "/api/analytics/events", None, &body).await
                        }),
                    )
                    .await
                    else {
                        break;
                    };
                    if response.status != 202 {
                        break;
                    }
                    answered.extend(ids);
                }
                answered
            }));
        }
        tokio::time::sleep(Duration::from_millis(800)).await;
        let pid = child.id().unwrap().to_string();
        assert!(
            std::process::Command::new("kill")
                .args(["-KILL", &pid])
                .status()
                .unwrap()
                .success()
        );
        let mut answered: Vec<String> = Vec::new();
        for client in clients {
            answered.extend(client.await.unwrap());
        }
        assert!(
            answered.len() >= 100,
            "some batches were answered before the kill"
        );

        // What the store holds, read by a new process (the server restarted).
        let ids: Vec<uuid::Uuid> = answered.iter().map(|id| id.parse().unwrap()).collect();
        let stored = if database.starts_with("postgres") {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM analytics_events WHERE event_id = ANY($1)",
            )
            .bind(&ids)
            .fetch_one(db.store().pool())
            .await
            .unwrap();
            n as usize
        } else {
            let store = analytics::embedded::EmbeddedStore::open(
                &embedded,
                analytics::core::time::Calendar::default(),
            )
            .await
            .unwrap();
            let mut n = 0;
            for chunk in answered.chunks(500) {
                let list = chunk
                    .iter()
                    // The embedded store keeps ids as their 16 bytes.
                    .map(|id| format!("X'{}'", uuid::Uuid::parse_str(id).unwrap().simple()))
                    .collect::<Vec<_>>()
                    .join(",");
                let count: i64 = sqlx::query_scalar(&format!(
                    "SELECT count(*) FROM analytics_events WHERE event_id IN ({list})"
                ))
                .fetch_one(store.pool())
                .await
                .unwrap();
                n += count as usize;
            }
            n
        };
        assert_eq!(
            stored,
            answered.len(),
            "{database}: every event answered 202 is stored"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `analytics dead-letters` lists the events the store refused, as JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_by_the_command() {
    use analytics::core::store::EventStore;
    let db = TestDatabase::new().await;
    let event = analytics_core::testing::event(
        "session.start",
        chrono::Utc::now(),
        json!({"session_id": "s-1"}),
    );
    db.store()
        .dead_letter(
            std::slice::from_ref(&event),
            "value refused",
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_analytics"));
    command
        .args(["dead-letters", "--limit", "5"])
        .env("DATABASE_URL", db.url())
        .env_remove("REDIS_URL");
    let listed = json_of(command).await;
    assert_eq!(listed[0]["event_id"], event.id().to_string());
    assert_eq!(listed[0]["reason"], "value refused");
    assert_eq!(listed[0]["event"], "session.start");
}

/// `analytics export` writes the same CSV as the API: over the demo's month on the
/// embedded default, a row per day, per agent and per session the case study counts.
#[tokio::test]
async fn export_writes_the_csv_of_the_demo_month() {
    let dir = std::env::temp_dir().join(format!("analytics-export-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |args: Vec<String>| {
        let dir = dir.clone();
        async move {
            let output = Command::new(env!("CARGO_BIN_EXE_analytics"))
                .args(&args)
                .current_dir(&dir)
                .env_remove("DATABASE_URL")
                .env_remove("REDIS_URL")
                .output()
                .await
                .unwrap();
            assert!(
                output.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8(output.stdout).unwrap()
        }
    };
    let today = analytics::core::time::Calendar::default().date(chrono::Utc::now());
    let first = {
        use chrono::Datelike as _;
        let end_of_last = today.with_day(1).unwrap() - chrono::TimeDelta::days(1);
        end_of_last.with_day(1).unwrap()
    };
    let month = first.format("%Y-%m").to_string();
    let last = {
        use chrono::Datelike as _;
        (first + chrono::TimeDelta::days(40)).with_day(1).unwrap() - chrono::TimeDelta::days(1)
    };
    run(vec!["demo".into(), "--month".into(), month.clone()]).await;
    let study: Value =
        serde_json::from_str(&run(vec!["report".into(), "--month".into(), month.clone()]).await)
            .unwrap();
    let rows = |csv: &str| csv.lines().count() - 1;
    let sessions = run(vec![
        "export".into(),
        "sessions".into(),
        "--start".into(),
        first.to_string(),
        "--end".into(),
        last.to_string(),
    ])
    .await;
    assert!(sessions.starts_with("session_id,started_at,date,"));
    assert_eq!(
        rows(&sessions) as u64,
        study["raw"]["total_customers_served"].as_u64().unwrap(),
        "a row per session started"
    );
    let daily = run(vec![
        "export".into(),
        "daily".into(),
        "--start".into(),
        first.to_string(),
        "--end".into(),
        last.to_string(),
    ])
    .await;
    assert_eq!(rows(&daily) as i64, (last - first).num_days() + 1);
    let agents = run(vec![
        "export".into(),
        "agents".into(),
        "--month".into(),
        month,
    ])
    .await;
    assert!(rows(&agents) > 3, "{agents}");
    let _ = std::fs::remove_dir_all(&dir);
}
