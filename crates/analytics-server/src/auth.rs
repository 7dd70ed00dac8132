//! Bearer-key authentication with scopes (SPEC §9): `ingest` for `POST /events`, `read`
//! for the GET endpoints, `admin` for everything and alone for `/flush`. Keys are
//! compared in constant time, against every configured key.

use analytics::core::config::{ApiKey, Scope};
use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// Checks that the request carries a configured key allowed to do `needed`. With no
/// keys configured (loopback only), every request passes.
///
/// # Errors
///
/// 401 for a missing or unknown key, 403 for a key without the scope.
pub fn authorize(keys: &[ApiKey], headers: &HeaderMap, needed: Scope) -> Result<(), ApiError> {
    if keys.is_empty() {
        return Ok(());
    }
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::unauthorized(
            "missing Authorization: Bearer <key> header",
        ));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            // The scheme is case-insensitive (RFC 9110 §11.1); any white space after it.
            let (scheme, rest) = v.trim_start().split_once([' ', '\t'])?;
            scheme.eq_ignore_ascii_case("bearer").then_some(rest)
        })
        .map(str::trim)
        .ok_or_else(|| ApiError::unauthorized("the Authorization header must be Bearer <key>"))?;
    // Look at every key, whatever matches, so that timing says nothing about them.
    let mut scope = None;
    for key in keys {
        if bool::from(key.key.expose().as_bytes().ct_eq(token.as_bytes())) {
            scope = scope.or(Some(key.scope));
        }
    }
    match scope {
        None => Err(ApiError::unauthorized("unknown API key")),
        Some(scope) if scope.allows(needed) => Ok(()),
        Some(scope) => Err(ApiError::forbidden(format!(
            "this key has the {} scope; this endpoint needs {}",
            scope.as_str(),
            if needed == Scope::Admin {
                "admin"
            } else {
                needed.as_str()
            }
        ))),
    }
}
