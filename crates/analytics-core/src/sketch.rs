//! Medians and 90th percentiles from mergeable DDSketch distributions (SPEC §5).
//!
//! A [`Sketch`] keeps the bins of a DDSketch (`sketches-ddsketch`, relative accuracy
//! [`RELATIVE_ACCURACY`]) as integer counts by bin key: the crate's logarithmic mapping
//! picks the bin of a value, and its quantile search answers from the bins. Keeping
//! the bins as counts makes merging exact, associative and commutative (the bins of
//! a month are the sums of its days' bins, in any order, bit for bit), lets stores
//! keep them as plain rows, and lets a day's sketch be compared for equality.
//!
//! What is sketched is the summed quantity of each [`Field::summed_by`] kind — AI
//! response time, agents' first response (wait) and handle time, ticket resolution
//! time — as the same millionths the sums keep, per day and per agent.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use sketches_ddsketch::{Config, DDSketch};

use crate::catalog::Kind;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::metrics::{Field, MICROS_PER_UNIT, Measure};

/// The relative error bound of every percentile: the answer `v` for a value `x` at
/// the percentile's rank satisfies `|v − x| ≤ 1 % · x`.
pub const RELATIVE_ACCURACY: f64 = 0.01;

/// The crate's mapping with our accuracy. Values are at least a millionth of their
/// unit and at most 10⁹ when not zero (validation), which spans ~1,730 bins of
/// 2,048: the sketch never collapses bins, so the bound holds for every value.
fn config() -> Config {
    // Built once: `Config::new` takes two logarithms.
    static CONFIG: std::sync::LazyLock<Config> =
        std::sync::LazyLock::new(|| Config::new(RELATIVE_ACCURACY, 2048, 1e-9));
    *CONFIG
}

/// `ln γ` of the mapping: a store may group values by `floor(ln(value) / ln γ)` (value
/// in its unit: millionths / 10⁶) in its own arithmetic and hand each group's least
/// and greatest value to [`DaySketches::add_named_range`], which checks them against
/// the crate's mapping, so that a database's `ln` differing in the last bit never puts
/// a value in the wrong bin.
pub fn gamma_ln() -> f64 {
    config().gamma.ln()
}

/// The distribution of one quantity: how many values fell in each DDSketch bin, and
/// the least and greatest value (a percentile is never outside them, so a quantity
/// whose values are all equal answers that value exactly).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sketch {
    zero: u64,
    bins: BTreeMap<i32, u64>,
    /// The least and the greatest value in millionths, when there are values.
    range: Option<(u64, u64)>,
}

impl Sketch {
    /// No values.
    pub fn new() -> Sketch {
        Sketch::default()
    }

    /// Adds `count` values of `micros` millionths of their unit.
    pub fn add_micros(&mut self, micros: u64, count: u64) {
        if count == 0 {
            return;
        }
        self.widen(Some((micros, micros)));
        if micros == 0 {
            self.zero = self.zero.saturating_add(count);
        } else {
            let key = config().key(micros as f64 / MICROS_PER_UNIT);
            let bin = self.bins.entry(key).or_default();
            *bin = bin.saturating_add(count);
        }
    }

    fn widen(&mut self, range: Option<(u64, u64)>) {
        self.range = match (self.range, range) {
            (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
            (one, other) => one.or(other),
        };
    }

    /// Whether values from `least` to `greatest` millionths all fall in one bin (or
    /// are all zero): then [`Sketch::add_range`] can add them as a group.
    pub fn one_bin(least: u64, greatest: u64) -> bool {
        match (least, greatest) {
            (0, 0) => true,
            (0, _) | (_, 0) => false,
            (least, greatest) => {
                let config = config();
                config.key(least as f64 / MICROS_PER_UNIT)
                    == config.key(greatest as f64 / MICROS_PER_UNIT)
            }
        }
    }

    /// Adds `count` values from `least` to `greatest` millionths that all fall in one
    /// bin ([`Sketch::one_bin`]; otherwise nothing is added and `false` answered).
    pub fn add_range(&mut self, least: u64, greatest: u64, count: u64) -> bool {
        if least > greatest || !Sketch::one_bin(least, greatest) {
            return false;
        }
        self.add_in_bin(least, greatest, count);
        true
    }

    /// [`Sketch::add_range`] of values known to lie in one bin.
    fn add_in_bin(&mut self, least: u64, greatest: u64, count: u64) {
        if count > 0 {
            self.add_micros(least, count);
            self.widen(Some((least, greatest)));
        }
    }

    /// Adds another distribution.
    pub fn merge(&mut self, other: &Sketch) {
        self.widen(other.range);
        self.zero = self.zero.saturating_add(other.zero);
        for (key, count) in &other.bins {
            let bin = self.bins.entry(*key).or_default();
            *bin = bin.saturating_add(*count);
        }
    }

    /// How many values.
    pub fn count(&self) -> u64 {
        self.bins
            .values()
            .fold(self.zero, |a, b| a.saturating_add(*b))
    }

    /// Whether no value was added.
    pub fn is_empty(&self) -> bool {
        self.range.is_none()
    }

    /// The `q`-quantile (0 ≤ q ≤ 1) in the quantity's unit: the value at rank
    /// `⌊q · (n − 1)⌋` of the sorted values, within [`RELATIVE_ACCURACY`] (and within
    /// the least and greatest value); `None` without values.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.quantiles([q])[0]
    }

    /// Several quantiles ([`Sketch::quantile`]) from one DDSketch built from the bins.
    pub fn quantiles<const N: usize>(&self, qs: [f64; N]) -> [Option<f64>; N] {
        let Some((least, greatest)) = self.range else {
            return [None; N];
        };
        let config = config();
        let mut sketch = DDSketch::new(config);
        sketch.add_with_count(0.0, self.zero);
        for (key, count) in &self.bins {
            // The bin's representative value lies inside the bin, so it maps back to it.
            sketch.add_with_count(config.value(*key), *count);
        }
        qs.map(|q| {
            let value = sketch.quantile(q.clamp(0.0, 1.0)).ok().flatten()?;
            Some(value.clamp(
                least as f64 / MICROS_PER_UNIT,
                greatest as f64 / MICROS_PER_UNIT,
            ))
        })
    }

    /// The median.
    pub fn p50(&self) -> Option<f64> {
        self.quantile(0.5)
    }

    /// The 90th percentile.
    pub fn p90(&self) -> Option<f64> {
        self.quantile(0.9)
    }

    /// The stored form: `zero;least;greatest;key:count,key:count,…` (values in
    /// millionths, bins in key order; `0;0;0;` without values).
    pub fn encode(&self) -> String {
        let (least, greatest) = self.range.unwrap_or((0, 0));
        let mut out = format!("{};{least};{greatest};", self.zero);
        for (i, (key, count)) in self.bins.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{key}:{count}");
        }
        out
    }

    /// Reads the stored form of [`Sketch::encode`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when `text` is not in that form.
    pub fn decode(text: &str) -> Result<Sketch> {
        let bad = || Error::invalid_input("stored sketch", text, "zero;least;greatest;key:count,…");
        let mut parts = text.splitn(4, ';');
        let mut number =
            || -> Result<u64> { parts.next().and_then(|n| n.parse().ok()).ok_or_else(bad) };
        let (zero, least, greatest) = (number()?, number()?, number()?);
        let bins = parts.next().ok_or_else(bad)?;
        let mut sketch = Sketch {
            zero,
            bins: BTreeMap::new(),
            range: None,
        };
        for pair in bins.split(',').filter(|p| !p.is_empty()) {
            let (key, count) = pair.split_once(':').ok_or_else(bad)?;
            let key: i32 = key.parse().map_err(|_| bad())?;
            let count: u64 = count.parse().map_err(|_| bad())?;
            let bin = sketch.bins.entry(key).or_default();
            *bin = bin.saturating_add(count);
        }
        if sketch.zero > 0 || !sketch.bins.is_empty() {
            if least > greatest {
                return Err(bad());
            }
            sketch.range = Some((least, greatest));
        }
        Ok(sketch)
    }
}

/// The distributions of the summed quantities of some set of events, by the field
/// that sums each ([`Field::ResponseTimeMs`], [`Field::WaitSeconds`],
/// [`Field::HandleSeconds`], [`Field::ResolutionHours`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sketches {
    fields: BTreeMap<Field, Sketch>,
    /// Fields whose distribution is known to miss values (a day aggregated before
    /// distributions were kept): they have no percentiles, here or merged.
    incomplete: std::collections::BTreeSet<Field>,
}

/// The summed fields with a distribution, and the kind whose count is theirs.
const SKETCHED: [(Field, Kind); 4] = [
    (Field::ResponseTimeMs, Kind::SessionMessage),
    (Field::WaitSeconds, Kind::AgentSessionTakeover),
    (Field::HandleSeconds, Kind::AgentSessionRelease),
    (Field::ResolutionHours, Kind::TicketClosed),
];

impl Sketches {
    /// No values.
    pub fn new() -> Sketches {
        Sketches::default()
    }

    /// Adds one event.
    pub fn record(&mut self, event: &Event) {
        if let (Some(kind), Some(micros)) = (event.kind(), Measure::of(event).value_micros) {
            self.add_group(kind, micros, 1);
        }
    }

    /// Adds `count` events of `kind` whose quantity is `micros` millionths.
    pub fn add_group(&mut self, kind: Kind, micros: u64, count: u64) {
        if let Some(field) = Field::summed_by(kind) {
            self.fields
                .entry(field)
                .or_default()
                .add_micros(micros, count);
        }
    }

    /// Adds `count` events of `kind` whose quantities, from `least` to `greatest`
    /// millionths, are known to fall in one bin ([`Sketch::one_bin`]).
    fn add_in_bin(&mut self, kind: Kind, least: u64, greatest: u64, count: u64) {
        if let Some(field) = Field::summed_by(kind) {
            self.fields
                .entry(field)
                .or_default()
                .add_in_bin(least, greatest, count);
        }
    }

    /// Adds a distribution for `field`.
    pub fn add(&mut self, field: Field, sketch: &Sketch) {
        if !sketch.is_empty() {
            self.fields.entry(field).or_default().merge(sketch);
        }
    }

    /// Adds another set.
    pub fn merge(&mut self, other: &Sketches) {
        for (field, sketch) in &other.fields {
            self.add(*field, sketch);
        }
        self.incomplete.extend(other.incomplete.iter().copied());
    }

    /// The fields whose distribution does not hold as many values as `sums` counts
    /// events of its kind.
    pub fn mismatches(&self, sums: &crate::metrics::Sums) -> Vec<Field> {
        SKETCHED
            .iter()
            .filter(|(field, kind)| self.get(*field).map_or(0, Sketch::count) != sums.count(*kind))
            .map(|(field, _)| *field)
            .collect()
    }

    /// Marks `field` as missing values: no percentiles for it, here or merged.
    pub fn mark_incomplete(&mut self, field: Field) {
        self.incomplete.insert(field);
    }

    /// The distribution of `field`'s quantity, if any value was added.
    pub fn get(&self, field: Field) -> Option<&Sketch> {
        self.fields.get(&field)
    }

    /// The median of `field`'s quantity (none when it is incomplete).
    pub fn p50(&self, field: Field) -> Option<f64> {
        self.complete(field).and_then(Sketch::p50)
    }

    /// The 90th percentile of `field`'s quantity (none when it is incomplete).
    pub fn p90(&self, field: Field) -> Option<f64> {
        self.complete(field).and_then(Sketch::p90)
    }

    /// The median and the 90th percentile of `field`'s quantity, from one pass over
    /// its bins (none when it is incomplete).
    pub fn p50_p90(&self, field: Field) -> (Option<f64>, Option<f64>) {
        let [p50, p90] = self
            .complete(field)
            .map_or([None, None], |sketch| sketch.quantiles([0.5, 0.9]));
        (p50, p90)
    }

    fn complete(&self, field: Field) -> Option<&Sketch> {
        if self.incomplete.contains(&field) {
            None
        } else {
            self.get(field)
        }
    }

    /// The distributions that hold values, in field order.
    pub fn iter(&self) -> impl Iterator<Item = (Field, &Sketch)> + '_ {
        self.fields
            .iter()
            .filter(|(_, s)| !s.is_empty())
            .map(|(f, s)| (*f, s))
    }

    /// Whether no value was added.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

/// The distributions of one business day: for all events, and per agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DaySketches {
    /// All events of the day.
    pub totals: Sketches,
    /// The events of the day that name an agent, by agent.
    pub agents: BTreeMap<String, Sketches>,
}

/// The kind stored under `name` when its quantity is sketched; none for other kinds
/// and `custom.` names.
///
/// # Errors
///
/// [`Error::InvalidInput`] for a name that is neither a catalog nor a `custom.` name.
fn sketched_kind(name: &str) -> Result<Option<Kind>> {
    match crate::event::resolve_name(name) {
        Ok(crate::event::Name::Catalog { kind, alias: false }) => {
            Ok(Field::summed_by(kind).map(|_| kind))
        }
        Ok(crate::event::Name::Custom) => Ok(None),
        _ => Err(Error::invalid_input(
            "stored event name",
            name,
            "a catalog or custom. event name",
        )),
    }
}

impl DaySketches {
    /// Applies `add` to the distributions of all events and to `agent`'s.
    fn add_to(&mut self, agent: Option<&str>, add: impl Fn(&mut Sketches)) {
        add(&mut self.totals);
        if let Some(agent) = agent {
            add(self.agents.entry(agent.to_owned()).or_default());
        }
    }

    /// Adds one event.
    pub fn record(&mut self, event: &Event) {
        let (Some(kind), Some(micros)) = (event.kind(), Measure::of(event).value_micros) else {
            return;
        };
        if Field::summed_by(kind).is_some() {
            self.add_to(event.agent_id(), |s| s.add_group(kind, micros, 1));
        }
    }

    /// Adds `count` events stored under `name` (and `agent`) whose quantity is
    /// `micros`: how stores fold rows grouped by event, agent and value. Names of
    /// kinds without a summed quantity, and `custom.` names, add nothing.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a name that is neither a catalog nor a `custom.` name.
    pub fn add_named_group(
        &mut self,
        name: &str,
        agent: Option<&str>,
        micros: u64,
        count: u64,
    ) -> Result<()> {
        if let Some(kind) = sketched_kind(name)?
            && count > 0
        {
            self.add_to(agent, |s| s.add_group(kind, micros, count));
        }
        Ok(())
    }

    /// Like [`DaySketches::add_named_group`], for `count` events whose quantities go
    /// from `least` to `greatest` millionths: added when they all fall in one bin of
    /// the crate's mapping (`Ok(true)`), otherwise nothing is added (`Ok(false)`: the
    /// store adds that group's values one by one).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a name that is neither a catalog nor a `custom.` name.
    pub fn add_named_range(
        &mut self,
        name: &str,
        agent: Option<&str>,
        least: u64,
        greatest: u64,
        count: u64,
    ) -> Result<bool> {
        if least > greatest || !Sketch::one_bin(least, greatest) {
            return Ok(false);
        }
        if let Some(kind) = sketched_kind(name)? {
            self.add_to(agent, |s| s.add_in_bin(kind, least, greatest, count));
        }
        Ok(true)
    }

    /// Adds `(event name, agent, value, count)` rows, grouped by event, agent and
    /// value, as stores read a day's durations.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a name that is neither a catalog nor a `custom.` name.
    pub fn add_value_groups(
        &mut self,
        rows: impl IntoIterator<Item = (String, Option<String>, i64, i64)>,
    ) -> Result<()> {
        for (event, agent, value, count) in rows {
            self.add_named_group(&event, agent.as_deref(), value as u64, count as u64)?;
        }
        Ok(())
    }

    /// Adds another day's (or period's) distributions.
    pub fn merge(&mut self, other: &DaySketches) {
        self.totals.merge(&other.totals);
        for (agent, sketches) in &other.agents {
            self.agents
                .entry(agent.clone())
                .or_default()
                .merge(sketches);
        }
    }

    /// The rows stores keep: agent (`""` for all events, which no agent id can be),
    /// field name, stored form ([`Sketch::encode`]).
    pub fn rows(&self) -> Vec<(&str, &'static str, String)> {
        let all = std::iter::once(("", &self.totals));
        all.chain(self.agents.iter().map(|(a, s)| (a.as_str(), s)))
            .flat_map(|(agent, set)| {
                set.iter()
                    .map(move |(field, sketch)| (agent, field.name(), sketch.encode()))
            })
            .collect()
    }
}

/// Distributions per day from the rows of [`DaySketches::rows`] with their day.
///
/// # Errors
///
/// [`Error::InvalidInput`] for a field name that is not a [`Field`] or bins not in the
/// stored form.
pub fn sketch_days_from_rows<D: Ord>(
    rows: impl IntoIterator<Item = (D, String, String, String)>,
) -> Result<BTreeMap<D, DaySketches>> {
    let mut days = BTreeMap::<D, DaySketches>::new();
    for (day, agent, name, bins) in rows {
        let field = Field::from_name(&name).ok_or_else(|| {
            Error::invalid_input("statistics field", &name, "a field of the metric model")
        })?;
        let sketch = Sketch::decode(&bins)?;
        let day = days.entry(day).or_default();
        let set = if agent.is_empty() {
            &mut day.totals
        } else {
            day.agents.entry(agent).or_default()
        };
        set.add(field, &sketch);
    }
    Ok(days)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bin_in_the_value_range_maps_its_representative_back_to_itself() {
        let config = config();
        let low = config.key(1e-6);
        let high = config.key(1e9);
        assert!(high - low < 2048, "{low}..{high}");
        for key in low..=high {
            assert_eq!(config.key(config.value(key)), key);
        }
    }

    #[test]
    fn a_group_is_added_only_when_it_lies_in_one_bin() {
        let mut grouped = DaySketches::default();
        let mut one_by_one = DaySketches::default();
        // 1.000 s and 1.005 s share a bin; 1 s and 2 s do not; zeros are their own.
        for (least, greatest, count) in [(1_000_000, 1_005_000, 3), (0, 0, 2)] {
            let added = grouped.add_named_range(
                "agent.session_takeover",
                Some("a"),
                least,
                greatest,
                count,
            );
            assert_eq!(added.ok(), Some(true));
        }
        for micros in [1_000_000, 1_002_000, 1_005_000, 0, 0] {
            let _ = one_by_one.add_named_group("agent.session_takeover", Some("a"), micros, 1);
        }
        assert_eq!(grouped, one_by_one);
        let straddles =
            grouped.add_named_range("agent.session_takeover", None, 1_000_000, 2_000_000, 2);
        assert_eq!(straddles.ok(), Some(false));
        assert_eq!(grouped, one_by_one, "nothing added");
    }

    #[test]
    fn the_stored_form_reads_back() {
        let mut sketch = Sketch::new();
        for micros in [0, 0, 1, 999_999, 1_000_000, 1_000_000_000_000_000] {
            sketch.add_micros(micros, 3);
        }
        assert_eq!(Sketch::decode(&sketch.encode()).ok(), Some(sketch.clone()));
        assert_eq!(
            Sketch::decode(&Sketch::new().encode()).ok(),
            Some(Sketch::new())
        );
        assert!(Sketch::decode("x;1;1;1:2").is_err());
        assert!(Sketch::decode("0;1;1;1:").is_err());
        assert!(Sketch::decode("0;2;1;1:1").is_err());
        assert!(Sketch::decode("12").is_err());
    }
}
