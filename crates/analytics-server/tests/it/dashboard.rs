//! The dashboard at `/`, tested as a person would use it: Debian's chromium, driven over
//! WebDriver (chromedriver) from Rust, against the real binary on the embedded store
//! filled by `analytics demo`. The tiles, the story, the tables and the charts are
//! checked against the API's own answers; screenshots (desktop and phone width) and the
//! time to a drawn page are written under `target/dashboard/`.
//!
//! Needs `chromium` and `chromedriver` on the PATH (Debian's `chromium` and
//! `chromium-driver`; `.ci/run` installs them): without them the test fails, it does not
//! pass silently.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use analytics::core::case_study::format;
use analytics::core::event::Event;
use analytics::core::metrics::DaySummary;
use analytics::core::testing::{Rng, any_event};
use analytics::core::time::Calendar;
use chrono::{Datelike, NaiveDate, TimeDelta, Utc};
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::binary::{free_addr, serve, traffic};
use crate::http::{get, post_json};

/// A browser session and the chromedriver it runs under. On drop (a test's end or its
/// panic) the whole process group goes: chromedriver and the chromium it started,
/// which would outlive chromedriver otherwise.
struct Browser {
    client: Client,
    _driver: Child,
    group: Option<u32>,
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(group) = self.group {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{group}")])
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Browser {
    /// Starts chromedriver on a free port and a headless chromium of this window size.
    async fn start(width: u32, height: u32) -> Browser {
        let port = free_addr().port();
        let driver = Command::new(std::env::var("CHROMEDRIVER").unwrap_or("chromedriver".into()))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot start chromedriver ({error}): install Debian's chromium and \
                     chromium-driver (.ci/run does)"
                )
            });
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": std::env::var("CHROMIUM").unwrap_or("/usr/bin/chromium".into()),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--hide-scrollbars",
                    format!("--window-size={width},{height}"),
                ],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    return Browser {
                        client,
                        group: driver.id(),
                        _driver: driver,
                    };
                }
                Err(error) if started.elapsed() > Duration::from_secs(30) => {
                    panic!("no WebDriver session from chromedriver: {error}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|error| panic!("script failed: {error}\n{script}"))
    }

    /// Waits until `script` returns true.
    async fn until(&self, what: &str, script: &str) {
        let started = Instant::now();
        while self.js(script).await != Value::Bool(true) {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn text(&self, selector: &str) -> String {
        self.client
            .find(Locator::Css(selector))
            .await
            .unwrap_or_else(|error| panic!("no {selector}: {error}"))
            .text()
            .await
            .unwrap()
    }

    async fn click(&self, selector: &str) {
        self.client
            .find(Locator::Css(selector))
            .await
            .unwrap_or_else(|error| panic!("no {selector}: {error}"))
            .click()
            .await
            .unwrap();
    }

    /// The browser's console entries since the last call, as `LEVEL message`.
    async fn console(&self) -> Vec<String> {
        let entries = self.client.issue_cmd(BrowserLog).await.unwrap();
        entries
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| format!("{} {}", e["level"].as_str().unwrap_or("?"), e["message"]))
            .collect()
    }

    /// Loads the page and waits until it has drawn everything once.
    async fn open(&self, addr: SocketAddr) -> u64 {
        self.client.goto(&format!("http://{addr}/")).await.unwrap();
        self.until(
            "the page to be drawn",
            "return document.documentElement.dataset.ready === '1'",
        )
        .await;
        self.js("return Number(document.documentElement.dataset.readyMs)")
            .await
            .as_u64()
            .unwrap()
    }

    async fn screenshot(&self, name: &str, width: u32) {
        // As tall as the page, so that the shot shows all of it.
        let height = self
            .js("return document.documentElement.scrollHeight")
            .await
            .as_u64()
            .unwrap() as u32;
        self.client
            .set_window_size(width, height + 140)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(700)).await;
        let png = self.client.screenshot().await.unwrap();
        let path = out_dir().join(name);
        std::fs::write(&path, png).unwrap();
        eprintln!("dashboard: screenshot {}", path.display());
    }
}

/// The chromedriver command that returns the browser's console log.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }
    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.to_owned()))
    }
}

/// Where screenshots and timings go: `target/dashboard/`.
fn out_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A year of daily statistics before the demo's month, written into the embedded file
/// as the refresh job would (so that the page works over a year of history).
async fn fill_a_year(dir: &Path, before: NaiveDate) {
    let url = format!("sqlite:{}", dir.join("analytics.db").display());
    let store = analytics::embedded::EmbeddedStore::open(&url, Calendar::default())
        .await
        .unwrap();
    let mut rng = Rng::new(7);
    for back in 1..=365 {
        let day = before - TimeDelta::days(back);
        let noon = day.and_hms_opt(4, 0, 0).unwrap().and_utc();
        let mut summary = DaySummary::default();
        for i in 0..40 {
            let raw = any_event(noon + TimeDelta::minutes(i), &mut rng);
            if let Ok(event) = Event::restore(raw) {
                summary.record(&event);
            }
        }
        store.put_day(day, &summary).await.unwrap();
    }
}

/// Runs `analytics demo` for `month` in `dir` (the embedded store).
async fn demo(dir: &Path, month: &str) {
    let status = Command::new(env!("CARGO_BIN_EXE_analytics"))
        .args(["demo", "--month", month])
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("ANALYTICS_API_KEYS")
        .stdout(Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(status.success(), "analytics demo failed");
}

fn expect_count(v: &Value) -> String {
    v.as_u64().map_or("—".to_owned(), format::count)
}
fn expect_rate(v: &Value) -> String {
    v.as_f64().map_or("—".to_owned(), format::rate)
}
fn expect_duration(seconds: Option<f64>) -> String {
    seconds.map_or("—".to_owned(), format::duration)
}

/// Texts of the cells of one column of the agents table.
async fn agent_order(browser: &Browser) -> Vec<String> {
    let order = browser
        .js("return Array.from(document.querySelectorAll('#agents-table tbody tr')).map(r => r.dataset.agent)")
        .await;
    serde_json::from_value(order).unwrap()
}

/// How many non-transparent pixels the chart in `#id` has drawn.
async fn drawn_pixels(browser: &Browser, id: &str) -> u64 {
    let script = format!(
        "const c = document.querySelector('#{id} canvas'); if (!c) return 0; \
         const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; \
         let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n;"
    );
    browser.js(&script).await.as_u64().unwrap()
}

/// The number of days the customers chart shows.
async fn days_charted(browser: &Browser) -> u64 {
    browser
        .js("return echarts.getInstanceByDom(document.getElementById('chart-customers')).getOption().xAxis[0].data.length")
        .await
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_what_the_api_says_in_a_real_browser() {
    let dir = tempfile_dir("dashboard");
    let today = Calendar::default().date(Utc::now());
    let first = today.with_day(1).unwrap() - TimeDelta::days(1);
    let first = first.with_day(1).unwrap();
    let last_month = first.format("%Y-%m").to_string();
    let month_days = (today.with_day(1).unwrap() - first).num_days();
    demo(&dir, &last_month).await;
    fill_a_year(&dir, first).await;
    let addr = free_addr();
    let _server = serve(addr, &dir, &[]).await;
    // Today's traffic, for the real-time tiles and the 24-hour chart.
    let events = traffic(1, 200, Utc::now());
    let answer = post_json(
        addr,
        "/api/analytics/events",
        None,
        &json!({"events": events}),
    )
    .await;
    assert_eq!(answer.status, 202, "{}", answer.body);

    let browser = Browser::start(1280, 900).await;
    let ready_ms = browser.open(addr).await;

    // Now: every tile shows the API's figure, formatted as the case study formats it.
    let realtime = get(addr, "/api/analytics/realtime", None).await.json();
    let today_raw = &realtime["today"];
    let expected = [
        (
            "total_customers_served",
            expect_count(&today_raw["total_customers_served"]),
        ),
        (
            "ai_resolution_rate",
            expect_rate(&today_raw["ai_resolution_rate"]),
        ),
        (
            "avg_response_time",
            expect_duration(
                today_raw["avg_response_time_ms"]
                    .as_f64()
                    .map(|ms| ms / 1000.0),
            ),
        ),
        ("escalations", expect_count(&today_raw["escalations"])),
        ("online_agents", expect_count(&realtime["online_agents"])),
        (
            "active_sessions",
            expect_count(&realtime["active_sessions"]),
        ),
        (
            "tickets_resolved",
            expect_count(&today_raw["tickets_resolved"]),
        ),
        ("sla_met_rate", expect_rate(&today_raw["sla_met_rate"])),
    ];
    for (metric, value) in &expected {
        let shown = browser
            .text(&format!("#now-tiles [data-metric={metric}] .value"))
            .await;
        assert_eq!(&shown, value, "the {metric} tile");
    }
    assert_ne!(
        today_raw["total_customers_served"], 0,
        "today's traffic reached the tiles"
    );

    // The month: the case study exactly as the API returns it, for the demo's month.
    browser
        .js(&format!(
            "const i = document.getElementById('month-input'); i.value = '{last_month}'; \
             i.dispatchEvent(new Event('change'));"
        ))
        .await;
    let study = get(
        addr,
        &format!("/api/analytics/case-study?month={last_month}"),
        None,
    )
    .await
    .json();
    let story = study["story"].as_str().unwrap().to_owned();
    browser
        .until(
            "the demo month's story",
            &format!(
                "return document.getElementById('story').textContent === {}",
                Value::String(story.clone())
            ),
        )
        .await;
    assert_eq!(browser.text("#story").await, story);
    assert_eq!(
        browser.text("#case-period").await,
        study["period"].as_str().unwrap()
    );
    for (path, section, field) in [
        (
            "ai_chatbot.ai_resolution_rate",
            "ai_chatbot",
            "ai_resolution_rate",
        ),
        (
            "ai_chatbot.avg_response_time",
            "ai_chatbot",
            "avg_response_time",
        ),
        ("ai_chatbot.cost_saved", "ai_chatbot", "cost_saved"),
        (
            "agent_workbench.avg_first_response",
            "agent_workbench",
            "avg_first_response",
        ),
        (
            "agent_workbench.avg_handle_time",
            "agent_workbench",
            "avg_handle_time",
        ),
        (
            "tickets.avg_resolution_time",
            "tickets",
            "avg_resolution_time",
        ),
        ("tickets.sla_met_rate", "tickets", "sla_met_rate"),
    ] {
        let shown = browser
            .text(&format!("#case-tiles [data-case='{path}'] .value"))
            .await;
        assert_eq!(
            shown,
            study[section][field].as_str().unwrap_or("—"),
            "{path}"
        );
    }
    assert_eq!(
        browser
            .text("#case-tiles [data-case='ai_chatbot.total_customers_served'] .value")
            .await,
        expect_count(&study["ai_chatbot"]["total_customers_served"])
    );
    // Under each mean, the month's median and 90th percentile from `raw`.
    for (path, field, to_seconds) in [
        ("ai_chatbot.avg_response_time", "response_time_ms", 0.001),
        (
            "agent_workbench.avg_first_response",
            "first_response_seconds",
            1.0,
        ),
        (
            "agent_workbench.avg_handle_time",
            "handle_time_seconds",
            1.0,
        ),
        (
            "tickets.avg_resolution_time",
            "resolution_time_hours",
            3600.0,
        ),
    ] {
        let raw = &study["raw"];
        let (p50, p90) = (
            raw[format!("{field}_p50")].as_f64().unwrap(),
            raw[format!("{field}_p90")].as_f64().unwrap(),
        );
        assert_eq!(
            browser
                .text(&format!("#case-tiles [data-case='{path}'] .spread"))
                .await,
            format!(
                // Each label is kept with its value by a no-break space, which
                // WebDriver's element text shows as a space.
                "中位数 {} · P90 {}",
                expect_duration(Some(p50 * to_seconds)),
                expect_duration(Some(p90 * to_seconds))
            ),
            "{path}"
        );
    }

    // Agents: the month's agents, sorted on click as the API's figures sort.
    let agents = get(
        addr,
        &format!("/api/analytics/agents?month={last_month}"),
        None,
    )
    .await
    .json();
    let agents = agents["agents"].as_array().unwrap().clone();
    assert!(agents.len() > 3, "the demo has agents");
    let sorted_by = |field: &str, descending: bool| -> Vec<String> {
        let mut rows: Vec<(u64, String)> = agents
            .iter()
            .map(|a| {
                (
                    a[field].as_u64().unwrap(),
                    a["agent_id"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        rows.sort_by(|a, b| {
            let order = if descending {
                b.0.cmp(&a.0)
            } else {
                a.0.cmp(&b.0)
            };
            order.then(a.1.cmp(&b.1))
        });
        rows.into_iter().map(|(_, id)| id).collect()
    };
    assert_eq!(
        agent_order(&browser).await,
        sorted_by("sessions_handled", true)
    );
    browser.click("#agents-table th[data-sort=messages]").await;
    assert_eq!(
        agent_order(&browser).await,
        sorted_by("messages", true),
        "by messages"
    );
    browser.click("#agents-table th[data-sort=messages]").await;
    assert_eq!(
        agent_order(&browser).await,
        sorted_by("messages", false),
        "ascending"
    );

    // Tickets of the month.
    let tickets = get(
        addr,
        &format!("/api/analytics/tickets?month={last_month}"),
        None,
    )
    .await
    .json();
    assert_eq!(
        browser
            .text("#ticket-tiles [data-ticket=tickets_resolved] .value")
            .await,
        expect_count(&tickets["tickets_resolved"])
    );
    assert_eq!(
        browser
            .text("#ticket-tiles [data-ticket=sla_met_rate] .value")
            .await,
        expect_rate(&tickets["sla_met_rate"])
    );

    // The AI funnel of the month.
    let funnel = get(addr, &format!("/api/analytics/ai?month={last_month}"), None)
        .await
        .json();
    assert_eq!(
        browser
            .text("#funnel-tiles [data-funnel=sessions] .value")
            .await,
        expect_count(&funnel["sessions"])
    );
    assert_eq!(
        browser
            .text("#funnel-tiles [data-funnel=durable_ai_resolution_rate] .value")
            .await,
        expect_rate(&funnel["durable_ai_resolution_rate"])
    );
    assert_eq!(
        browser
            .text("#funnel-tiles [data-funnel=return_rate] .value")
            .await,
        expect_rate(&funnel["return_rate"])
    );

    // Charts: each has drawn; the presets change the range.
    for id in [
        "chart-hours",
        "chart-customers",
        "chart-response",
        "chart-agents",
        "chart-tickets",
    ] {
        let pixels = drawn_pixels(&browser, id).await;
        assert!(pixels > 500, "{id} has drawn ({pixels} pixels)");
    }
    assert_eq!(days_charted(&browser).await, 30, "the default range");
    browser.click(".presets [data-preset='7']").await;
    browser
        .until("7 days", "return echarts.getInstanceByDom(document.getElementById('chart-customers')).getOption().xAxis[0].data.length === 7")
        .await;
    browser.click(".presets [data-preset='90']").await;
    browser
        .until("90 days", "return echarts.getInstanceByDom(document.getElementById('chart-customers')).getOption().xAxis[0].data.length === 90")
        .await;
    browser.click(".presets [data-preset='last-month']").await;
    browser
        .until(
            "last month",
            &format!("return echarts.getInstanceByDom(document.getElementById('chart-customers')).getOption().xAxis[0].data.length === {month_days}"),
        )
        .await;

    // The English toggle changes the labels, and back.
    assert_eq!(browser.text("#now h2").await, "实时");
    browser.click("#lang-toggle").await;
    assert_eq!(browser.text("#now h2").await, "Now");
    assert_eq!(
        browser
            .text("#agents-table th[data-sort=messages]")
            .await
            .trim_end_matches([' ', '▲', '▼']),
        "Messages"
    );
    browser.click("#lang-toggle").await;
    assert_eq!(browser.text("#now h2").await, "实时");

    // The page's files carry the strict policy; nothing went wrong in the console.
    let page = get(addr, "/", None).await;
    let csp = page
        .header("content-security-policy")
        .unwrap_or_default()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );
    let errors: Vec<String> = browser
        .console()
        .await
        .into_iter()
        .filter(|line| line.starts_with("SEVERE"))
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:#?}");

    browser.screenshot("dashboard-desktop.png", 1280).await;
    let phone = Browser::start(390, 844).await;
    phone.open(addr).await;
    phone.screenshot("dashboard-phone.png", 390).await;
    let phone_errors: Vec<String> = phone
        .console()
        .await
        .into_iter()
        .filter(|line| line.starts_with("SEVERE"))
        .collect();
    assert!(
        phone_errors.is_empty(),
        "console errors at phone width: {phone_errors:#?}"
    );

    // A year of daily statistics: the time from navigation to a drawn page, then the
    // same page over the whole year. Reported, not asserted.
    let fresh = Browser::start(1280, 900).await;
    let cold_ms = fresh.open(addr).await;
    let started = Instant::now();
    fresh.click(".presets [data-preset='90']").await;
    fresh
        .until("90 days", "return echarts.getInstanceByDom(document.getElementById('chart-customers')).getOption().xAxis[0].data.length === 90")
        .await;
    let line = format!(
        "dashboard: drawn {ready_ms} ms after navigation (first browser), {cold_ms} ms (fresh \
         browser) with a year of daily statistics in the store; a 90-day preset redrawn in {} ms",
        started.elapsed().as_millis()
    );
    eprintln!("{line}");
    std::fs::write(out_dir().join("timing.txt"), format!("{line}\n")).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// With keys configured the page asks for a `read` key once, says clearly when a key is
/// refused, and keeps the right one in the browser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_keys_the_dashboard_asks_for_a_read_key_once() {
    let dir = tempfile_dir("dashboard-keys");
    let addr = free_addr();
    let read = "read-key-0123456789abcdef";
    let ingest = "ingest-key-0123456789abcdef";
    let _server = serve(
        addr,
        &dir,
        &[(
            "ANALYTICS_API_KEYS",
            &format!("read:{read},ingest:{ingest}"),
        )],
    )
    .await;
    let browser = Browser::start(1280, 900).await;
    browser
        .client
        .goto(&format!("http://{addr}/"))
        .await
        .unwrap();
    browser
        .until(
            "the key form",
            "return !document.getElementById('key-panel').hidden",
        )
        .await;
    assert!(
        browser
            .js("return document.getElementById('content').hidden")
            .await
            .as_bool()
            .unwrap(),
        "no data without a key"
    );

    let submit = |key: &'static str| {
        let browser = &browser;
        async move {
            let input = browser
                .client
                .find(Locator::Css("#key-input"))
                .await
                .unwrap();
            input.send_keys(key).await.unwrap();
            browser.click("#key-form button[type=submit]").await;
        }
    };
    submit("wrong-key-0123456789abcdef").await;
    browser
        .until(
            "the refusal",
            "return document.getElementById('key-error').textContent.includes('401')",
        )
        .await;
    // The console capture works: the refused request is there.
    let console = browser.console().await;
    assert!(
        console
            .iter()
            .any(|line| line.starts_with("SEVERE") && line.contains("401")),
        "the refused request is in the console: {console:#?}"
    );
    submit(ingest).await;
    browser
        .until(
            "the scope message",
            "return document.getElementById('key-error').textContent.includes('403')",
        )
        .await;
    submit(read).await;
    browser
        .until(
            "the page",
            "return document.documentElement.dataset.ready === '1'",
        )
        .await;
    assert!(
        browser
            .js("return document.getElementById('key-panel').hidden")
            .await
            .as_bool()
            .unwrap()
    );
    // Kept in the browser: a reload does not ask again.
    browser.client.refresh().await.unwrap();
    browser
        .until(
            "the page after a reload",
            "return document.documentElement.dataset.ready === '1'",
        )
        .await;
    assert_eq!(
        browser
            .js("return localStorage.getItem('analytics.readKey')")
            .await,
        Value::String(read.to_owned())
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fresh directory under the system's temporary directory.
fn tempfile_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("analytics-{name}-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
