//! The bounds of property values (SPEC §4), shared by the catalog that checks them and
//! the errors that echo values. A leaf module: it depends on nothing else of the crate.

/// The largest value a `num` property may take.
///
/// SPEC §4 only asks for finite, non-negative numbers; this bound keeps the fixed-point
/// sums of [`crate::metrics::Sums`] exact (see `ARCHITECTURE.md`, "Exact means").
pub const MAX_NUM: f64 = 1e9;

/// The most characters a `str` property may have.
pub const MAX_STR_CHARS: usize = 128;

/// The most characters a `text` property may have.
pub const MAX_TEXT_CHARS: usize = 1024;
