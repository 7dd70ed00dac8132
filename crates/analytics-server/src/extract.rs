//! What a request must carry, as extractors: the API key of a scope ([`Key`]) and
//! the query parameters an endpoint takes ([`Params`]), checked before the handler
//! runs, so that each handler states its needs in its signature.

use std::collections::HashMap;
use std::marker::PhantomData;

use analytics::core::config::Scope;
use analytics::core::time::{DateRange, YearMonth, parse_date};
use analytics::stats::Stats;
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use chrono::NaiveDate;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa::IntoParams;

use crate::api::AppState;
use crate::error::ApiError;

/// A scope an endpoint needs.
pub trait NeededScope {
    /// The scope.
    const SCOPE: Scope;
}

/// `POST /events`.
#[derive(Debug)]
pub struct Ingest;
/// The questions and exports.
#[derive(Debug)]
pub struct Read;
/// `POST /flush`.
#[derive(Debug)]
pub struct Admin;

impl NeededScope for Ingest {
    const SCOPE: Scope = Scope::Ingest;
}
impl NeededScope for Read {
    const SCOPE: Scope = Scope::Read;
}
impl NeededScope for Admin {
    const SCOPE: Scope = Scope::Admin;
}

/// The request carries a key of scope `S` (or no keys are configured): 401 without a
/// known key, 403 with a key of another scope.
#[derive(Debug)]
pub struct Key<S>(PhantomData<S>);

impl<S: NeededScope> FromRequestParts<AppState> for Key<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        state.authorize(&parts.headers, S::SCOPE)?;
        Ok(Key(PhantomData))
    }
}

/// The query parameters of an endpoint: their names, and their values as received.
pub trait QueryParams: DeserializeOwned {
    /// The names the endpoint takes; any other is refused.
    const NAMES: &'static [&'static str];
}

/// An endpoint's query parameters, parsed: 400 `unknown_parameter` for a name it does
/// not take (the message lists those it does), 400 `invalid_query` for a query that
/// does not parse.
#[derive(Debug)]
pub struct Params<T>(pub T);

impl<T: QueryParams, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let invalid = |rejection: axum::extract::rejection::QueryRejection| {
            ApiError::bad_request("invalid_query", rejection.body_text())
        };
        let Query(names) =
            Query::<HashMap<String, String>>::try_from_uri(&parts.uri).map_err(invalid)?;
        if let Some(unknown) = names.keys().find(|k| !T::NAMES.contains(&k.as_str())) {
            let takes = if T::NAMES.is_empty() {
                "no parameters".to_owned()
            } else {
                T::NAMES.join(", ")
            };
            return Err(ApiError::bad_request(
                "unknown_parameter",
                format!(
                    "unknown query parameter {:?} (this endpoint takes {takes})",
                    crate::api::truncate(unknown)
                ),
            ));
        }
        let Query(params) = Query::<T>::try_from_uri(&parts.uri).map_err(invalid)?;
        Ok(Params(params))
    }
}

/// No parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NoParams {}

impl QueryParams for NoParams {
    const NAMES: &'static [&'static str] = &[];
}

/// `?ack=stored|buffered` of `POST /events`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AckParams {
    /// `stored` (the default): 202 once the events are committed to the event store,
    /// or spilled while it is down; `buffered`: 202 as soon as they are buffered (lost
    /// if the process dies).
    #[param(pattern = "^(stored|buffered)$")]
    pub ack: Option<String>,
}

impl QueryParams for AckParams {
    const NAMES: &'static [&'static str] = &["ack"];
}

/// `?date=YYYY-MM-DD`, today when absent.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DateParams {
    /// `YYYY-MM-DD`; default: today in the business time zone.
    #[param(format = Date)]
    date: Option<String>,
}

impl QueryParams for DateParams {
    const NAMES: &'static [&'static str] = &["date"];
}

impl DateParams {
    /// The date asked for, or today.
    pub fn date(&self, stats: &Stats) -> Result<NaiveDate, ApiError> {
        match &self.date {
            Some(date) => Ok(parse_date("date", date)?),
            None => Ok(stats.today()),
        }
    }
}

/// `?start=YYYY-MM-DD&end=YYYY-MM-DD`, both required.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RangeParams {
    /// The first day, `YYYY-MM-DD`.
    #[param(format = Date, required = true)]
    start: Option<String>,
    /// The last day, `YYYY-MM-DD` (at most 366 days in all).
    #[param(format = Date, required = true)]
    end: Option<String>,
}

impl QueryParams for RangeParams {
    const NAMES: &'static [&'static str] = &["start", "end"];
}

impl RangeParams {
    /// The range asked for: 400 `missing_parameter` without both ends,
    /// `invalid_range` for an end before its start or a range too long.
    pub fn range(&self) -> Result<DateRange, ApiError> {
        range(self.start.as_deref(), self.end.as_deref())
    }
}

/// `?month=YYYY-MM`, this month when absent.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MonthParams {
    /// `YYYY-MM`; default: the current month of the business time zone.
    #[param(pattern = "^[0-9]{4}-[0-9]{2}$")]
    month: Option<String>,
}

impl QueryParams for MonthParams {
    const NAMES: &'static [&'static str] = &["month"];
}

impl MonthParams {
    /// The month asked for, or this one: 400 `invalid_month` for one that is not
    /// `YYYY-MM`.
    pub fn month(&self, stats: &Stats) -> Result<YearMonth, ApiError> {
        month(self.month.as_deref(), stats)
    }
}

/// `?month=YYYY-MM` or `?start=&end=` of `GET /ai`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FunnelParams {
    /// `YYYY-MM`; default (without `start` and `end`): the current month.
    #[param(pattern = "^[0-9]{4}-[0-9]{2}$")]
    month: Option<String>,
    /// The first day, `YYYY-MM-DD` (with `end`, instead of `month`).
    #[param(format = Date)]
    start: Option<String>,
    /// The last day, `YYYY-MM-DD` (with `start`).
    #[param(format = Date)]
    end: Option<String>,
}

impl QueryParams for FunnelParams {
    const NAMES: &'static [&'static str] = &["month", "start", "end"];
}

impl FunnelParams {
    /// The days asked for: a range, or a month (this one when neither is given).
    pub fn range(&self, stats: &Stats) -> Result<DateRange, ApiError> {
        if self.start.is_none() && self.end.is_none() {
            return Ok(month(self.month.as_deref(), stats)?.days());
        }
        if self.month.is_some() {
            return Err(ApiError::bad_request(
                "invalid_query",
                "give either month or start and end, not both",
            ));
        }
        range(self.start.as_deref(), self.end.as_deref())
    }
}

fn required(name: &'static str, value: Option<&str>) -> Result<NaiveDate, ApiError> {
    let value = value.ok_or_else(|| {
        ApiError::bad_request(
            "missing_parameter",
            format!("the query parameter {name:?} is required (YYYY-MM-DD)"),
        )
    })?;
    Ok(parse_date(name, value)?)
}

fn range(start: Option<&str>, end: Option<&str>) -> Result<DateRange, ApiError> {
    let (start, end) = (required("start", start)?, required("end", end)?);
    DateRange::new(start, end)
        .map_err(|error| ApiError::bad_request("invalid_range", error.to_string()))
}

fn month(value: Option<&str>, stats: &Stats) -> Result<YearMonth, ApiError> {
    match value {
        Some(month) => month.parse().map_err(|error: analytics::core::Error| {
            ApiError::bad_request("invalid_month", error.to_string())
        }),
        None => Ok(YearMonth::of(stats.today())),
    }
}
