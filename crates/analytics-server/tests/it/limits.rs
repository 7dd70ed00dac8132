//! Slow and idle clients: the header and body timeouts, the idle keep-alive timeout and
//! the connection cap (`ANALYTICS_HEADER_TIMEOUT_MS`, `ANALYTICS_BODY_TIMEOUT_MS`,
//! `ANALYTICS_MAX_CONNECTIONS`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use analytics::core::config::Config;
use analytics_server::server::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn server(vars: &[(&str, &str)]) -> Server {
    let mut all: HashMap<String, String> = [
        ("DATABASE_URL", "sqlite::memory:"),
        ("ANALYTICS_BIND", "127.0.0.1:0"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    all.extend(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    Server::start(Config::from_lookup(|name| all.get(name).cloned()).unwrap())
        .await
        .unwrap()
}

/// Reads until the server closes the connection (or `within` passes: then panics).
/// Returns what it sent.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> String {
    let mut got = Vec::new();
    let read = tokio::time::timeout(within, stream.read_to_end(&mut got)).await;
    assert!(
        read.is_ok(),
        "the connection is still open after {within:?}"
    );
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_are_cut_off() {
    let server = server(&[
        ("ANALYTICS_HEADER_TIMEOUT_MS", "300"),
        ("ANALYTICS_BODY_TIMEOUT_MS", "300"),
    ])
    .await;
    let addr = server.addr();

    // Half a request line, then nothing.
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(b"POST /api/anal").await.unwrap();
    closed_within(&mut half, Duration::from_secs(5)).await;

    // Headers trickled a byte at a time, slower than the timeout allows in all.
    let mut trickle = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nX-Slow: {}\r\n\r\n",
        "a".repeat(40)
    );
    let writer = tokio::spawn(async move {
        for byte in head.bytes() {
            if trickle.write_all(&[byte]).await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut rest = Vec::new();
        let _ = trickle.read_to_end(&mut rest).await;
        !String::from_utf8_lossy(&rest).contains("200 OK")
    });
    let cut = tokio::time::timeout(Duration::from_secs(10), writer)
        .await
        .expect("the trickling client is done")
        .unwrap();
    assert!(cut, "a trickled header is not served");

    // A kept-alive connection that sends nothing after its first request.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let answer = closed_within(&mut idle, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // A body sent a byte at a time: 408 once the body timeout passes.
    let mut slow_body = TcpStream::connect(addr).await.unwrap();
    slow_body
        .write_all(
            format!(
                "POST /api/analytics/events HTTP/1.1\r\nHost: {addr}\r\n\
                 Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let sender = tokio::spawn(async move {
        let mut answer = vec![0u8; 1024];
        for _ in 0..100 {
            if slow_body.write_all(b" ").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            if let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(1), slow_body.read(&mut answer)).await
                && n > 0
            {
                return String::from_utf8_lossy(&answer[..n]).into_owned();
            }
        }
        String::new()
    });
    let answer = tokio::time::timeout(Duration::from_secs(10), sender)
        .await
        .expect("the slow body is answered")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert!(server.shutdown().await.unwrap().clean);
}

/// Sends a GET on `stream` and reads the status line, if one comes within `within`.
async fn status_within(
    stream: &mut TcpStream,
    addr: SocketAddr,
    within: Duration,
) -> Option<String> {
    stream
        .write_all(
            format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .ok()?;
    let mut answer = vec![0u8; 256];
    match tokio::time::timeout(within, stream.read(&mut answer)).await {
        Ok(Ok(n)) if n > 0 => Some(String::from_utf8_lossy(&answer[..n]).into_owned()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_for_a_free_one() {
    let server = server(&[
        ("ANALYTICS_MAX_CONNECTIONS", "2"),
        ("ANALYTICS_HEADER_TIMEOUT_MS", "20000"),
    ])
    .await;
    let addr = server.addr();
    let first = TcpStream::connect(addr).await.unwrap();
    let mut second = TcpStream::connect(addr).await.unwrap();
    // Both are taken (the second one answers).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = TcpStream::connect(addr).await.unwrap();
    assert_eq!(
        status_within(&mut third, addr, Duration::from_millis(700)).await,
        None,
        "a third connection waits while two are open"
    );
    // One of the two goes away: the third is served.
    drop(first);
    let mut answer = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(5), third.read(&mut answer))
        .await
        .expect("served once a connection is free")
        .unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"));
    let answered = status_within(&mut second, addr, Duration::from_secs(5)).await;
    assert!(answered.is_some_and(|a| a.starts_with("HTTP/1.1 200")));
    assert!(server.shutdown().await.unwrap().clean);
}
