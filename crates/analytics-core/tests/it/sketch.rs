//! Percentiles from merged day sketches against exact percentiles of the same values.

use analytics_core::metrics::to_micros;
use analytics_core::sketch::{RELATIVE_ACCURACY, Sketch};
use proptest::prelude::*;

/// The exact `q`-quantile of values kept to a millionth: the value at rank
/// `⌊q · (n − 1)⌋` of the sorted values.
fn exact(micros: &[u64], q: f64) -> f64 {
    let mut sorted = micros.to_vec();
    sorted.sort_unstable();
    let rank = (q * (sorted.len() as f64 - 1.0)) as usize;
    sorted[rank] as f64 / 1e6
}

fn within_bound(got: f64, exact: f64) -> bool {
    // The bound is relative; the representative value of a bin is computed in floating
    // point, which may add a few ulps.
    (got - exact).abs() <= RELATIVE_ACCURACY * exact * (1.0 + 1e-12)
}

/// A value as validation admits it: 0 or from a millionth to 10⁹ of its unit, spread
/// over all magnitudes (durations of milliseconds to weeks, and outliers).
fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        1 => Just(0.0),
        8 => (-6i32..9, 1.0f64..10.0).prop_map(|(e, m)| (m * 10f64.powi(e)).min(1e9)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn merged_percentiles_are_within_the_bound_of_the_exact_ones(
        values in prop::collection::vec((value(), 0usize..31), 1..600),
        order in prop::collection::vec(any::<u32>(), 31),
        quantiles in prop::collection::vec(0.0f64..=1.0, 1..6),
    ) {
        // Values split over 31 days; each day sketched on its own.
        let micros: Vec<u64> = values.iter().map(|(v, _)| to_micros(*v)).collect();
        let mut days = vec![Sketch::new(); 31];
        for ((_, day), m) in values.iter().zip(&micros) {
            days[*day].add_micros(*m, 1);
        }
        // Merged in a random order, through the stored form (as a month is read).
        let mut order_of: Vec<usize> = (0..31).collect();
        order_of.sort_by_key(|d| order[*d]);
        let mut month = Sketch::new();
        for d in order_of {
            month.merge(&Sketch::decode(&days[d].encode()).unwrap());
        }
        // The same as one sketch of all the values, in any order of merging.
        let mut whole = Sketch::new();
        micros.iter().for_each(|m| whole.add_micros(*m, 1));
        prop_assert_eq!(&month, &whole);
        prop_assert_eq!(month.count(), micros.len() as u64);
        for q in quantiles.into_iter().chain([0.5, 0.9]) {
            let got = month.quantile(q).unwrap();
            let want = exact(&micros, q);
            prop_assert!(within_bound(got, want), "q={} got {} exact {}", q, got, want);
        }
    }
}

#[test]
fn an_empty_sketch_has_no_percentiles() {
    assert_eq!(Sketch::new().p50(), None);
    assert_eq!(Sketch::new().p90(), None);
}

#[test]
fn one_long_conversation_moves_the_mean_but_not_the_median() {
    // 99 first responses of 30 s and one of a weekend.
    let mut sketch = Sketch::new();
    sketch.add_micros(to_micros(30.0), 99);
    sketch.add_micros(to_micros(2.0 * 86_400.0), 1);
    let p50 = sketch.p50().unwrap();
    assert!(within_bound(p50, 30.0), "{p50}");
    let p90 = sketch.p90().unwrap();
    assert!(within_bound(p90, 30.0), "{p90}");
}

#[test]
fn every_bin_edge_keeps_the_bound() {
    // Values on and around the edges of the bins across the whole range, each the
    // median between the least and the greatest value there can be (so that the
    // answer is the bin's, not the least or greatest value's).
    let gamma: f64 = (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY);
    let mut x = 1e-6;
    while x < 1e9 {
        for v in [x * (1.0 - 1e-12), x, x * (1.0 + 1e-12)] {
            let m = to_micros(v);
            let mut sketch = Sketch::new();
            sketch.add_micros(0, 1);
            sketch.add_micros(m, 1);
            sketch.add_micros(to_micros(1e9), 1);
            let want = m as f64 / 1e6;
            let got = sketch.p50().unwrap();
            assert!(within_bound(got, want), "{v}: got {got} exact {want}");
        }
        x *= gamma;
    }
}
