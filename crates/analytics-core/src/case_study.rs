//! The monthly case study of SPEC §6: display strings, the story, and the `raw` block.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::metrics::Sums;
use crate::report::{BusinessMetrics, CostPerResolution};
use crate::time::YearMonth;

/// What the case study says for a month with no sessions, hand-offs or tickets.
pub const NO_DATA_STORY: &str = "本月暂无数据。";

/// Display formatting of counts, rates, money and durations (SPEC §6).
pub mod format {
    /// A count with thousands separators: `5,420`.
    pub fn count(n: u64) -> String {
        let digits = n.to_string();
        let mut out = String::with_capacity(digits.len() + digits.len() / 3);
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    }

    /// A fraction as a percentage with one decimal: `0.853` → `85.3%`.
    pub fn rate(fraction: f64) -> String {
        format!("{:.1}%", fraction * 100.0)
    }

    /// Yuan, rounded to whole yuan, with thousands separators: `¥54,200`.
    pub fn money(yuan: f64) -> String {
        format!("¥{}", count(yuan.max(0.0).round() as u64))
    }

    /// A number with one decimal and a trailing `.0` dropped: `1.5`, `8`.
    pub fn one_decimal(value: f64) -> String {
        let s = format!("{value:.1}");
        match s.strip_suffix(".0") {
            Some(whole) => whole.to_owned(),
            None => s,
        }
    }

    /// A duration split into its number and Chinese unit, chosen by its size in
    /// seconds: under 60 → 秒, under 3600 → 分钟, otherwise 小时.
    pub fn duration_parts(seconds: f64) -> (String, &'static str) {
        if seconds < 60.0 {
            (one_decimal(seconds), "秒")
        } else if seconds < 3600.0 {
            (one_decimal(seconds / 60.0), "分钟")
        } else {
            (one_decimal(seconds / 3600.0), "小时")
        }
    }

    /// A duration as the JSON shows it: `1.5秒`, `8分钟`, `4小时`.
    pub fn duration(seconds: f64) -> String {
        let (number, unit) = duration_parts(seconds);
        format!("{number}{unit}")
    }

    /// A duration as the story tells it, with a space: `1.5 秒`.
    pub fn duration_spaced(seconds: f64) -> String {
        let (number, unit) = duration_parts(seconds);
        format!("{number} {unit}")
    }
}

/// The AI chatbot section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AiChatbotSection {
    /// Sessions started.
    pub total_customers_served: u64,
    /// `85.3%`, or null without sessions.
    pub ai_resolution_rate: Option<String>,
    /// `1.5秒`, or null without AI replies.
    pub avg_response_time: Option<String>,
    /// `¥54,200`.
    pub cost_saved: String,
}

/// The agent workbench section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentWorkbenchSection {
    /// Sessions taken over by agents.
    pub sessions_handled: u64,
    /// `30秒`, or null without takeovers.
    pub avg_first_response: Option<String>,
    /// `8分钟`, or null without releases.
    pub avg_handle_time: Option<String>,
}

/// The tickets section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TicketsSection {
    /// Tickets closed.
    pub tickets_resolved: u64,
    /// `4小时`, or null without closed tickets.
    pub avg_resolution_time: Option<String>,
    /// `95.2%`, or null without closed tickets.
    pub sla_met_rate: Option<String>,
}

/// The case study of a month, in the seed's shape plus `raw`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CaseStudy {
    /// `2025年12月`.
    pub period: String,
    /// AI chatbot figures.
    pub ai_chatbot: AiChatbotSection,
    /// Agent workbench figures.
    pub agent_workbench: AgentWorkbenchSection,
    /// Ticket figures.
    pub tickets: TicketsSection,
    /// The figures told as a paragraph.
    pub story: String,
    /// The unformatted metrics.
    pub raw: BusinessMetrics,
}

impl CaseStudy {
    /// The case study of `month` from the month's sums.
    pub fn from_sums(month: YearMonth, sums: &Sums, cost: CostPerResolution) -> CaseStudy {
        CaseStudy::from_metrics(month, BusinessMetrics::from_sums(sums, cost))
    }

    /// The case study of `month` from the month's sums and distributions.
    pub fn from_parts(
        month: YearMonth,
        sums: &Sums,
        sketches: &crate::sketch::Sketches,
        cost: CostPerResolution,
    ) -> CaseStudy {
        CaseStudy::from_metrics(month, BusinessMetrics::from_parts(sums, sketches, cost))
    }

    /// The case study of `month` from its metrics.
    pub fn from_metrics(month: YearMonth, raw: BusinessMetrics) -> CaseStudy {
        let ms_to_seconds = |ms: f64| ms / 1000.0;
        let hours_to_seconds = |h: f64| h * 3600.0;
        CaseStudy {
            period: month.label_zh(),
            ai_chatbot: AiChatbotSection {
                total_customers_served: raw.total_customers_served,
                ai_resolution_rate: raw.ai_resolution_rate.map(format::rate),
                avg_response_time: raw
                    .avg_response_time_ms
                    .map(|ms| format::duration(ms_to_seconds(ms))),
                cost_saved: format::money(raw.cost_saved_yuan),
            },
            agent_workbench: AgentWorkbenchSection {
                sessions_handled: raw.sessions_handled,
                avg_first_response: raw.avg_first_response_seconds.map(format::duration),
                avg_handle_time: raw.avg_handle_time_seconds.map(format::duration),
            },
            tickets: TicketsSection {
                tickets_resolved: raw.tickets_resolved,
                avg_resolution_time: raw
                    .avg_resolution_time_hours
                    .map(|h| format::duration(hours_to_seconds(h))),
                sla_met_rate: raw.sla_met_rate.map(format::rate),
            },
            story: story(&raw),
            raw,
        }
    }

    /// The case study as plain text, for `analytics report --format text` (its
    /// [`Display`](std::fmt::Display)).
    pub fn to_text(&self) -> String {
        self.to_string()
    }
}

impl std::fmt::Display for CaseStudy {
    /// The plain-text report: the period, the three sections as aligned lines (a dash
    /// where there is no data), then the story.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let or_dash = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".to_owned());
        let sections = [
            (
                "AI 客服",
                vec![
                    (
                        "服务客户数    ",
                        format::count(self.ai_chatbot.total_customers_served),
                    ),
                    (
                        "AI 解决率     ",
                        or_dash(&self.ai_chatbot.ai_resolution_rate),
                    ),
                    (
                        "平均响应时间  ",
                        or_dash(&self.ai_chatbot.avg_response_time),
                    ),
                    ("节省成本      ", self.ai_chatbot.cost_saved.clone()),
                ],
            ),
            (
                "坐席工作台",
                vec![
                    (
                        "处理会话数    ",
                        format::count(self.agent_workbench.sessions_handled),
                    ),
                    (
                        "平均首次响应  ",
                        or_dash(&self.agent_workbench.avg_first_response),
                    ),
                    (
                        "平均处理时长  ",
                        or_dash(&self.agent_workbench.avg_handle_time),
                    ),
                ],
            ),
            (
                "工单",
                vec![
                    (
                        "解决工单数    ",
                        format::count(self.tickets.tickets_resolved),
                    ),
                    ("平均解决时长  ", or_dash(&self.tickets.avg_resolution_time)),
                    ("SLA 达标率    ", or_dash(&self.tickets.sla_met_rate)),
                ],
            ),
        ];
        writeln!(f, "{} 案例数据", self.period)?;
        writeln!(f)?;
        for (title, lines) in sections {
            writeln!(f, "{title}")?;
            for (label, value) in lines {
                writeln!(f, "  {label}{value}")?;
            }
        }
        writeln!(f)?;
        writeln!(f, "{}", self.story)
    }
}

/// The story: four sentences in the seed's order, each present only when its group has
/// data (see `ARCHITECTURE.md`, "The case study", for the clauses dropped when a mean is
/// missing).
fn story(raw: &BusinessMetrics) -> String {
    let mut story = String::new();
    if let (true, Some(rate)) = (raw.total_customers_served > 0, raw.ai_resolution_rate) {
        let _ = write!(
            story,
            "本月 AI 客服共服务 {} 位客户，其中 {} 的问题由 AI 独立解决",
            format::count(raw.total_customers_served),
            format::rate(rate),
        );
        if let Some(ms) = raw.avg_response_time_ms {
            let _ = write!(
                story,
                "，平均响应时间仅 {}",
                format::duration_spaced(ms / 1000.0)
            );
        }
        story.push('。');
    }
    if raw.sessions_handled > 0 {
        let _ = write!(
            story,
            "需人工介入的 {} 个会话",
            format::count(raw.sessions_handled)
        );
        if let Some(wait) = raw.avg_first_response_seconds {
            let _ = write!(story, "，坐席平均 {}内响应", format::duration_spaced(wait));
        }
        if let Some(handle) = raw.avg_handle_time_seconds {
            let _ = write!(story, "，{}内解决", format::duration_spaced(handle));
        }
        story.push('。');
    }
    if let (true, Some(hours), Some(sla)) = (
        raw.tickets_resolved > 0,
        raw.avg_resolution_time_hours,
        raw.sla_met_rate,
    ) {
        let _ = write!(
            story,
            "共处理 {} 个工单，平均 {}解决，SLA 达标率 {}。",
            format::count(raw.tickets_resolved),
            format::duration_spaced(hours * 3600.0),
            format::rate(sla),
        );
    }
    if raw.total_customers_served > 0 {
        let _ = write!(
            story,
            "预估节省人工成本 {}。",
            format::money(raw.cost_saved_yuan)
        );
    }
    if story.is_empty() {
        story.push_str(NO_DATA_STORY);
    }
    story
}
