//! `http-ingest`: events per second through `analytics serve`'s `POST /events`, batches
//! of 100 from concurrent clients on loopback, until `POST /flush` says all is stored:
//! first with the default, durable acknowledgement (a 202 once committed), then with
//! `?ack=buffered`, each on a fresh database, in the same run. `http-instances`: the
//! durable acknowledgement through three instances on one PostgreSQL and Redis (the
//! clients spread over them), beside one instance.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use analytics::core::config::Config;
use analytics_pg::testing::TestDatabase;
use analytics_redis::testing::{TestRedis, server_url};
use analytics_server::server::Server;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{Row, Scale, workload};

const CLIENTS: usize = 8;
const PER_REQUEST: usize = 100;

/// A client's keep-alive connection, as SDKs hold one.
struct Client {
    addr: SocketAddr,
    stream: Option<tokio::io::BufReader<TcpStream>>,
}

impl Client {
    fn new(addr: SocketAddr) -> Client {
        Client { addr, stream: None }
    }

    /// One POST on the client's connection (opened again if the server closed it);
    /// returns the status.
    async fn post(&mut self, path: &str, body: &[u8]) -> anyhow::Result<u16> {
        use tokio::io::AsyncBufReadExt;
        if self.stream.is_none() {
            let stream = TcpStream::connect(self.addr).await?;
            stream.set_nodelay(true)?;
            self.stream = Some(tokio::io::BufReader::new(stream));
        }
        let Some(stream) = self.stream.as_mut() else {
            anyhow::bail!("no connection");
        };
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        stream.get_mut().write_all(&request).await?;
        let mut status = 0;
        let mut length = 0usize;
        let mut close = false;
        let mut line = String::new();
        loop {
            line.clear();
            if stream.read_line(&mut line).await? == 0 {
                anyhow::bail!("the server closed the connection");
            }
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                break;
            }
            if status == 0 {
                status = trimmed
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
            } else if let Some((name, value)) = trimmed.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                } else if name.eq_ignore_ascii_case("connection") {
                    close = value.trim().eq_ignore_ascii_case("close");
                }
            }
        }
        let mut response = vec![0; length];
        stream.read_exact(&mut response).await?;
        if close {
            self.stream = None;
        }
        Ok(status)
    }
}

/// One POST on a fresh connection; returns the status.
async fn post(addr: SocketAddr, path: &str, body: &[u8]) -> anyhow::Result<u16> {
    let mut stream = TcpStream::connect(addr).await?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut response = Vec::with_capacity(256);
    stream.read_to_end(&mut response).await?;
    let status = String::from_utf8_lossy(&response)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok(status)
}

pub(crate) async fn run(scale: Scale) -> anyhow::Result<Vec<Row>> {
    let durable = measure(scale, "/api/analytics/events", 1).await?;
    let buffered = measure(scale, "/api/analytics/events?ack=buffered", 1).await?;
    let n = scale.events;
    let ratio = durable / buffered;
    Ok(vec![
        Row {
            benchmark: format!(
                "HTTP ingest, durable acknowledgement (202 once committed), {n} events in batches of {PER_REQUEST} from {CLIENTS} clients → PostgreSQL + Redis"
            ),
            figure: format!("{durable:.0} events/s"),
            reference: format!("`?ack=buffered` {buffered:.0} events/s (ratio {ratio:.2})"),
            target: "≥ 100,000 events/s".to_owned(),
            met: durable >= 100_000.0,
        },
        Row {
            benchmark: format!(
                "HTTP ingest, `?ack=buffered`, {n} events in batches of {PER_REQUEST} from {CLIENTS} clients → PostgreSQL + Redis"
            ),
            figure: format!("{buffered:.0} events/s"),
            reference: "—".to_owned(),
            target: "≥ 50,000 events/s".to_owned(),
            met: buffered >= 50_000.0,
        },
    ])
}

/// `http-instances`: the durable acknowledgement through three instances and through
/// one, in the same run.
pub(crate) async fn instances(scale: Scale) -> anyhow::Result<Row> {
    let one = measure(scale, "/api/analytics/events", 1).await?;
    let three = measure(scale, "/api/analytics/events", 3).await?;
    let n = scale.events;
    Ok(Row {
        benchmark: format!(
            "HTTP ingest, durable acknowledgement, {n} events in batches of {PER_REQUEST} from {CLIENTS} clients spread over 3 instances (in one process) on one PostgreSQL + Redis"
        ),
        figure: format!("{three:.0} events/s"),
        reference: format!("one instance {one:.0} events/s (ratio {:.2})", three / one),
        target: "none set; reported".to_owned(),
        met: true,
    })
}

/// Events per second posting every event to `path` through `instances` servers on one
/// database and Redis prefix (client `i` to server `i % instances`), until `POST
/// /flush` answers on each.
async fn measure(scale: Scale, path: &'static str, instances: usize) -> anyhow::Result<f64> {
    let db = TestDatabase::new().await;
    let redis = TestRedis::new().await;
    let vars: HashMap<&str, String> = [
        ("DATABASE_URL", db.url().to_owned()),
        ("REDIS_URL", server_url()),
        ("ANALYTICS_REDIS_PREFIX", redis.prefix().to_owned()),
        ("ANALYTICS_BIND", "127.0.0.1:0".to_owned()),
    ]
    .into_iter()
    .collect();
    let mut servers = Vec::new();
    for _ in 0..instances.max(1) {
        servers.push(Server::start(Config::from_lookup(|name| vars.get(name).cloned())?).await?);
    }
    let addrs: Vec<SocketAddr> = servers.iter().map(Server::addr).collect();

    // The bodies, built before the clock starts: envelopes as clients send them.
    let n = scale.events;
    let bodies: Vec<Vec<u8>> = workload::events(n, 1, chrono::Utc::now(), 11)
        .chunks(PER_REQUEST)
        .map(|chunk| {
            let events: Vec<Value> = chunk
                .iter()
                .map(|e| serde_json::to_value(e).unwrap_or(Value::Null))
                .collect();
            json!({ "events": events }).to_string().into_bytes()
        })
        .collect();
    let per_client = bodies.len().div_ceil(CLIENTS);
    let started = Instant::now();
    let mut clients = Vec::new();
    for (i, share) in bodies
        .chunks(per_client)
        .map(<[Vec<u8>]>::to_vec)
        .enumerate()
    {
        let addr = addrs[i % addrs.len()];
        clients.push(tokio::spawn(async move {
            let mut retries = 0u64;
            let mut client = Client::new(addr);
            for body in share {
                loop {
                    match client.post(path, &body).await? {
                        202 => break,
                        503 => {
                            retries += 1;
                            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                        }
                        other => anyhow::bail!("POST /events answered {other}"),
                    }
                }
            }
            Ok::<_, anyhow::Error>(retries)
        }));
    }
    let mut retries = 0;
    for client in clients {
        retries += client.await??;
    }
    for addr in &addrs {
        anyhow::ensure!(
            post(*addr, "/api/analytics/flush", b"{}").await? == 200,
            "flush failed"
        );
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rate = n as f64 / elapsed;
    for server in servers {
        let report = server.shutdown().await?;
        anyhow::ensure!(report.clean, "events were lost");
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM analytics_events")
        .fetch_one(db.store().pool())
        .await?;
    anyhow::ensure!(stored as usize == n, "stored {stored} of {n}");
    eprintln!(
        "http-ingest {path}, {instances} instance(s): {rate:.0} events/s ({retries} requests answered 503 and sent again)"
    );
    Ok(rate)
}
