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

fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// Starts `analytics serve` on `addr` in `dir`, with these variables on top of a clean
/// environment of the service's variables.
async fn serve(addr: SocketAddr, dir: &Path, vars: &[(&str, &str)]) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_analytics"));
    command
        .arg("serve")
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for name in [
        "DATABASE_URL",
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
    let output = Command::new(env!("CARGO_BIN_EXE_analytics"))
        .arg("report")
        .current_dir(&dir)
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let reported: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(reported, before, "report for {month}");
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

#[tokio::test]
async fn every_command_has_help_and_bad_input_is_named() {
    for command in ["serve", "migrate", "report", "aggregate", "cleanup", "demo"] {
        let output = Command::new(env!("CARGO_BIN_EXE_analytics"))
            .args([command, "--help"])
            .output()
            .await
            .unwrap();
        assert!(output.status.success(), "{command} --help");
        assert!(!output.stdout.is_empty());
    }
    let bad = Command::new(env!("CARGO_BIN_EXE_analytics"))
        .args(["report", "--month", "2025-13"])
        .env("DATABASE_URL", "sqlite::memory:")
        .output()
        .await
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("YYYY-MM"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let config = Command::new(env!("CARGO_BIN_EXE_analytics"))
        .arg("migrate")
        .env("ANALYTICS_BATCH_SIZE", "zero")
        .output()
        .await
        .unwrap();
    assert_eq!(config.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&config.stderr).contains("ANALYTICS_BATCH_SIZE"));
}
