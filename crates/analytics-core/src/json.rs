//! JSON numbers, with the one rule for whole values: a float names one integer only up
//! to 2⁵³, so whole floats up to that are written (and read) as integers — `54200`,
//! not `54200.0`. A leaf module: it depends on nothing else of the crate.

use serde::Serialize;
use serde_json::Value;

/// 2⁵³: the largest float below which every whole value is exactly one integer.
pub const MAX_EXACT: f64 = 9_007_199_254_740_992.0;

/// The integer a float names, if it is whole, not negative and at most 2⁵³.
pub fn exact_integer(value: f64) -> Option<u64> {
    (value >= 0.0 && value.fract() == 0.0 && value <= MAX_EXACT).then_some(value as u64)
}

/// A float as a JSON number: whole values as integers.
pub fn json_number(value: f64) -> Value {
    if value.fract() == 0.0 && value.abs() <= MAX_EXACT {
        Value::from(value as i64)
    } else {
        serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number)
    }
}

/// A float that serializes as [`json_number`] does: whole values as integers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JsonNumber(pub f64);

impl Serialize for JsonNumber {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let value = self.0;
        if value.fract() == 0.0 && value.abs() <= MAX_EXACT {
            serializer.serialize_i64(value as i64)
        } else {
            serializer.serialize_f64(value)
        }
    }
}

/// `serialize_with` helpers writing floats as [`JsonNumber`]s.
pub(crate) mod serde_with {
    use serde::Serialize;

    /// A float.
    pub(crate) fn one<S: serde::Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        super::JsonNumber(*value).serialize(serializer)
    }

    /// A float or null.
    pub(crate) fn option<S: serde::Serializer>(
        value: &Option<f64>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        value.map(super::JsonNumber).serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_values_up_to_two_to_the_53_are_integers() {
        assert_eq!(json_number(54_200.0).to_string(), "54200");
        assert_eq!(json_number(0.5).to_string(), "0.5");
        assert_eq!(
            serde_json::to_string(&JsonNumber(3.0)).ok().as_deref(),
            Some("3")
        );
        assert_eq!(exact_integer(MAX_EXACT), Some(9_007_199_254_740_992));
        assert_eq!(exact_integer(MAX_EXACT * 2.0), None);
        assert_eq!(exact_integer(-1.0), None);
        assert_eq!(exact_integer(1.5), None);
    }
}
