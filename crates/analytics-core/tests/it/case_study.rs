//! The case study of SPEC §6: the seed's shape and wording, the formatting rules, and
//! the sentences left out for groups without data.

use analytics_core::case_study::{CaseStudy, NO_DATA_STORY, format};
use analytics_core::metrics::Sums;
use analytics_core::report::CostPerResolution;
use analytics_core::time::YearMonth;
use serde_json::json;

fn december() -> YearMonth {
    "2025-12".parse().unwrap()
}

/// The seed's month: 5,420 sessions, 797 escalations, replies in 1.5 s on average,
/// 812 hand-offs answered in 30 s and solved in 8 minutes, 156 tickets closed in
/// 4 hours on average, 149 of them within SLA.
fn seed_month() -> Sums {
    Sums::from_named([
        ("session.start", 5_420),
        ("session.escalate", 797),
        ("session.message", 10_000),
        ("response_time_ms_sum", 15_000_000 * 1_000_000),
        ("agent.session_takeover", 812),
        ("wait_duration_seconds_sum", 812 * 30 * 1_000_000),
        ("agent.session_release", 800),
        ("handle_duration_seconds_sum", 800 * 480 * 1_000_000),
        ("ticket.created", 170),
        ("ticket.closed", 156),
        ("resolution_duration_hours_sum", 156 * 4 * 1_000_000),
        ("sla_met", 149),
    ])
    .unwrap()
}

#[test]
fn the_seed_month_reads_as_the_seed_says() {
    let study = CaseStudy::from_sums(december(), &seed_month(), CostPerResolution::default());
    let json = serde_json::to_value(&study).unwrap();
    assert_eq!(
        json,
        json!({
            "period": "2025年12月",
            "ai_chatbot": {"total_customers_served": 5420, "ai_resolution_rate": "85.3%",
                           "avg_response_time": "1.5秒", "cost_saved": "¥46,230"},
            "agent_workbench": {"sessions_handled": 812, "avg_first_response": "30秒", "avg_handle_time": "8分钟"},
            "tickets": {"tickets_resolved": 156, "avg_resolution_time": "4小时", "sla_met_rate": "95.5%"},
            "story": "本月 AI 客服共服务 5,420 位客户，其中 85.3% 的问题由 AI 独立解决，平均响应时间仅 1.5 秒。需人工介入的 812 个会话，坐席平均 30 秒内响应，8 分钟内解决。共处理 156 个工单，平均 4 小时解决，SLA 达标率 95.5%。预估节省人工成本 ¥46,230。",
            "raw": {
                "total_customers_served": 5420, "escalations": 797, "ai_resolved": 4623,
                "ai_resolution_rate": 4623.0 / 5420.0, "avg_response_time_ms": 1500,
                "cost_saved_yuan": 46230, "sessions_handled": 812,
                "avg_first_response_seconds": 30, "avg_handle_time_seconds": 480,
                "tickets_resolved": 156, "avg_resolution_time_hours": 4,
                "sla_met_rate": 149.0 / 156.0, "response_time_ms_p50": null, "response_time_ms_p90": null,
                "first_response_seconds_p50": null, "first_response_seconds_p90": null,
                "handle_time_seconds_p50": null, "handle_time_seconds_p90": null,
                "resolution_time_hours_p50": null, "resolution_time_hours_p90": null
            }
        })
    );
    // Key order is the seed's.
    let text = serde_json::to_string(&study).unwrap();
    let order = [
        "\"period\"",
        "\"ai_chatbot\"",
        "\"agent_workbench\"",
        "\"tickets\"",
        "\"story\"",
        "\"raw\"",
    ];
    let positions: Vec<usize> = order.iter().map(|k| text.find(k).unwrap()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert!(text.contains("\"total_customers_served\":5420,\"ai_resolution_rate\":\"85.3%\""));
}

#[test]
fn the_cost_per_resolution_comes_from_configuration() {
    // 4,623 AI-resolved sessions at ¥11.724 come to the seed's ¥54,200.
    let study = CaseStudy::from_sums(
        december(),
        &seed_month(),
        CostPerResolution::new(11.724).unwrap(),
    );
    assert_eq!(study.ai_chatbot.cost_saved, "¥54,200");
    assert!(
        study.story.ends_with("预估节省人工成本 ¥54,200。"),
        "{}",
        study.story
    );
}

#[test]
fn an_empty_month_has_nulls_and_says_there_is_no_data() {
    let study = CaseStudy::from_sums(december(), &Sums::new(), CostPerResolution::default());
    assert_eq!(
        serde_json::to_value(&study).unwrap(),
        json!({
            "period": "2025年12月",
            "ai_chatbot": {"total_customers_served": 0, "ai_resolution_rate": null,
                           "avg_response_time": null, "cost_saved": "¥0"},
            "agent_workbench": {"sessions_handled": 0, "avg_first_response": null, "avg_handle_time": null},
            "tickets": {"tickets_resolved": 0, "avg_resolution_time": null, "sla_met_rate": null},
            "story": "本月暂无数据。",
            "raw": {
                "total_customers_served": 0, "escalations": 0, "ai_resolved": 0,
                "ai_resolution_rate": null, "avg_response_time_ms": null, "cost_saved_yuan": 0,
                "sessions_handled": 0, "avg_first_response_seconds": null,
                "avg_handle_time_seconds": null, "tickets_resolved": 0,
                "avg_resolution_time_hours": null, "sla_met_rate": null,
                "response_time_ms_p50": null, "response_time_ms_p90": null,
                "first_response_seconds_p50": null, "first_response_seconds_p90": null,
                "handle_time_seconds_p50": null, "handle_time_seconds_p90": null,
                "resolution_time_hours_p50": null, "resolution_time_hours_p90": null
            }
        })
    );
    assert_eq!(study.story, NO_DATA_STORY);
}

#[test]
fn a_month_without_tickets_drops_only_the_ticket_sentence() {
    let mut sums = seed_month();
    let without_tickets = Sums::from_named(
        sums.iter()
            .filter(|(f, _)| {
                !f.name().starts_with("ticket.")
                    && !f.name().starts_with("resolution")
                    && f.name() != "sla_met"
            })
            .map(|(f, v)| (f.name(), v)),
    )
    .unwrap();
    sums = without_tickets;
    let study = CaseStudy::from_sums(december(), &sums, CostPerResolution::default());
    assert_eq!(
        study.story,
        "本月 AI 客服共服务 5,420 位客户，其中 85.3% 的问题由 AI 独立解决，平均响应时间仅 1.5 秒。需人工介入的 812 个会话，坐席平均 30 秒内响应，8 分钟内解决。预估节省人工成本 ¥46,230。"
    );
    assert_eq!(study.tickets.tickets_resolved, 0);
    assert_eq!(study.tickets.avg_resolution_time, None);
    assert_eq!(study.tickets.sla_met_rate, None);
}

#[test]
fn each_group_tells_its_own_sentence() {
    let only = |pairs: &[(&str, u64)]| {
        CaseStudy::from_sums(
            december(),
            &Sums::from_named(pairs.iter().copied()).unwrap(),
            CostPerResolution::default(),
        )
        .story
    };
    assert_eq!(
        only(&[
            ("ticket.closed", 2),
            ("resolution_duration_hours_sum", 3_000_000),
            ("sla_met", 1)
        ]),
        "共处理 2 个工单，平均 1.5 小时解决，SLA 达标率 50.0%。"
    );
    assert_eq!(
        only(&[
            ("agent.session_takeover", 3),
            ("wait_duration_seconds_sum", 270_000_000),
            ("agent.session_release", 1),
            ("handle_duration_seconds_sum", 7_200_000_000)
        ]),
        "需人工介入的 3 个会话，坐席平均 1.5 分钟内响应，2 小时内解决。"
    );
    // Hand-offs not yet released have no handle time: that clause is left out.
    assert_eq!(
        only(&[
            ("agent.session_takeover", 1),
            ("wait_duration_seconds_sum", 12_000_000)
        ]),
        "需人工介入的 1 个会话，坐席平均 12 秒内响应。"
    );
    // Sessions without AI replies have no response time: that clause is left out.
    assert_eq!(
        only(&[("session.start", 1_000)]),
        "本月 AI 客服共服务 1,000 位客户，其中 100.0% 的问题由 AI 独立解决。预估节省人工成本 ¥10,000。"
    );
    // Custom events and events outside the metrics tell nothing.
    assert_eq!(only(&[("custom", 5), ("agent.login", 2)]), NO_DATA_STORY);
}

#[test]
fn counts_rates_and_money_are_formatted_as_the_spec_says() {
    assert_eq!(format::count(0), "0");
    assert_eq!(format::count(999), "999");
    assert_eq!(format::count(1_000), "1,000");
    assert_eq!(format::count(5_420), "5,420");
    assert_eq!(format::count(1_234_567), "1,234,567");
    assert_eq!(format::rate(0.853), "85.3%");
    assert_eq!(format::rate(0.0), "0.0%");
    assert_eq!(format::rate(1.0), "100.0%");
    assert_eq!(format::rate(2.0 / 3.0), "66.7%");
    assert_eq!(format::money(54_200.0), "¥54,200");
    assert_eq!(format::money(0.0), "¥0");
    assert_eq!(format::money(1_234_567.6), "¥1,234,568");
}

#[test]
fn durations_are_told_in_seconds_minutes_or_hours_by_size() {
    let cases = [
        (0.0, "0秒"),
        (1.5, "1.5秒"),
        (30.0, "30秒"),
        (59.94, "59.9秒"),
        (60.0, "1分钟"),
        (90.0, "1.5分钟"),
        (480.0, "8分钟"),
        (3_599.0, "60分钟"),
        (3_600.0, "1小时"),
        (14_400.0, "4小时"),
        (5_400.0, "1.5小时"),
        (90_000.0, "25小时"),
    ];
    for (seconds, shown) in cases {
        assert_eq!(format::duration(seconds), shown, "{seconds} s");
    }
    assert_eq!(format::duration_spaced(1.5), "1.5 秒");
    assert_eq!(format::duration_spaced(480.0), "8 分钟");
    assert_eq!(format::duration_spaced(14_400.0), "4 小时");
}

#[test]
fn the_text_report_shows_every_figure_and_the_story() {
    let study = CaseStudy::from_sums(december(), &seed_month(), CostPerResolution::default());
    let text = study.to_text();
    assert_eq!(
        text,
        format!(
            "2025年12月 案例数据\n\nAI 客服\n  服务客户数    5,420\n  AI 解决率     85.3%\n  \
             平均响应时间  1.5秒\n  节省成本      ¥46,230\n坐席工作台\n  处理会话数    812\n  \
             平均首次响应  30秒\n  平均处理时长  8分钟\n工单\n  解决工单数    156\n  \
             平均解决时长  4小时\n  SLA 达标率    95.5%\n\n{}\n",
            study.story
        )
    );
    for expected in [
        "2025年12月",
        "5,420",
        "85.3%",
        "1.5秒",
        "¥46,230",
        "812",
        "30秒",
        "8分钟",
        "156",
        "4小时",
        "95.5%",
        &study.story,
    ] {
        assert!(text.contains(expected), "{expected} missing from\n{text}");
    }
}
