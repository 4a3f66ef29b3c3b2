//! Reading typed fields out of the raw tree, collecting every error.
//!
//! [`Fields`] walks one table: each field is taken by name (which also
//! records the name as valid, for "did you mean" hints), converted and
//! checked, and [`Fields::finish`] reports every key nobody took as an
//! unknown field. Converters never stop at an error: they record it and
//! return `None`, and the caller keeps its default, so one pass finds all
//! mistakes.

use super::FileError;
use super::tree::{Node, Origin, Table, Value};
use sim::dist::DistError;
use sim::{Dist, SimDuration};

/// The errors found so far, all naming the same file.
pub(super) struct Errors {
    file: String,
    pub list: Vec<FileError>,
}

impl Errors {
    pub fn new(file: &str) -> Errors {
        Errors { file: file.to_string(), list: Vec::new() }
    }

    // --- sweep ---
    /// The file the errors name (sweep points are read with the same name).
    pub fn file_name(&self) -> String {
        self.file.clone()
    }
    // --- end sweep ---

    /// Records an error at `origin` (`None`: no line, e.g. a missing field
    /// of the top-level table).
    pub fn push(
        &mut self,
        origin: Option<Origin>,
        field: &str,
        value: Option<String>,
        message: impl Into<String>,
    ) {
        self.list.push(FileError {
            file: self.file.clone(),
            line: match origin {
                Some(Origin::Line(line)) => Some(line),
                _ => None,
            },
            from_set: origin == Some(Origin::Set),
            field: field.to_string(),
            value,
            message: message.into(),
        });
    }

    /// Records that `node`, at `path`, is not what was `expected`.
    pub fn bad_value(&mut self, path: &str, node: &Node, expected: &str) {
        self.push(Some(node.origin), path, Some(node.render()), format!("expected {expected}"));
    }

    /// Records that `node` has the wrong type.
    pub fn wrong_type(&mut self, path: &str, node: &Node, expected: &str) {
        let found = node.value.type_name();
        self.push(
            Some(node.origin),
            path,
            Some(node.render()),
            format!("expected {expected}, found {found}"),
        );
    }
}

/// One table being read.
pub(super) struct Fields<'t> {
    path: String,
    table: Option<&'t Table>,
    origin: Option<Origin>,
    taken: Vec<bool>,
    known: Vec<&'static str>,
}

impl<'t> Fields<'t> {
    /// The top-level table of a file.
    pub fn root(table: &'t Table) -> Fields<'t> {
        Fields::over(String::new(), Some(table), None)
    }

    /// The table at `path`, if `node` is one. An absent node reads as an
    /// empty table (every field takes its default); a node of another type
    /// is an error, and then every field reads as absent.
    pub fn of(errors: &mut Errors, path: &str, node: Option<&'t Node>, what: &str) -> Fields<'t> {
        match node {
            None => Fields::over(path.to_string(), None, None),
            Some(Node { value: Value::Table(table), origin }) => {
                Fields::over(path.to_string(), Some(table), Some(*origin))
            }
            Some(node) => {
                errors.wrong_type(path, node, what);
                Fields::over(path.to_string(), None, Some(node.origin))
            }
        }
    }

    fn over(path: String, table: Option<&'t Table>, origin: Option<Origin>) -> Fields<'t> {
        let taken = vec![false; table.map_or(0, |table| table.entries.len())];
        Fields { path, table, origin, taken, known: Vec::new() }
    }

    /// The full path of `key` in this table, e.g. `workload.rate_per_s`.
    pub fn path_of(&self, key: &str) -> String {
        if self.path.is_empty() { key.to_string() } else { format!("{}.{key}", self.path) }
    }

    /// Where `key`'s value is, or else where the table is: the place to
    /// point at for a check that involves the key.
    pub fn origin_of(&self, key: &str) -> Option<Origin> {
        self.peek(key).map(|node| node.origin).or(self.origin)
    }

    /// The value of `key`, without taking it.
    pub fn peek(&self, key: &str) -> Option<&'t Node> {
        self.table.and_then(|table| table.get(key)).map(|entry| &entry.node)
    }

    /// Takes `key`: it is a valid field here, and if present its value is
    /// returned.
    pub fn take(&mut self, key: &'static str) -> Option<&'t Node> {
        if !self.known.contains(&key) {
            self.known.push(key);
        }
        let table = self.table?;
        let index = table.entries.iter().position(|entry| entry.key == key)?;
        self.taken[index] = true;
        Some(&table.entries[index].node)
    }

    /// Takes `key` and converts its value if present.
    pub fn get<T>(
        &mut self,
        errors: &mut Errors,
        key: &'static str,
        convert: impl FnOnce(&mut Errors, &str, &'t Node) -> Option<T>,
    ) -> Option<T> {
        let node = self.take(key)?;
        convert(errors, &self.path_of(key), node)
    }

    /// Like [`Fields::get`], but a missing key is an error saying `why` it
    /// is needed.
    pub fn require<T>(
        &mut self,
        errors: &mut Errors,
        key: &'static str,
        why: &str,
        convert: impl FnOnce(&mut Errors, &str, &'t Node) -> Option<T>,
    ) -> Option<T> {
        if self.peek(key).is_none() {
            self.take(key);
            // A value that should have been a table was already reported.
            let reported = self.table.is_none() && self.origin.is_some();
            if !reported {
                errors.push(self.origin, &self.path_of(key), None, format!("missing; {why}"));
            }
            return None;
        }
        self.get(errors, key, convert)
    }

    /// A key that is valid in this table but not in this case (a closed
    /// workload's `rate_per_s`): if present it is an error saying why.
    pub fn not_applicable(&mut self, errors: &mut Errors, key: &'static str, why: &str) {
        if let Some(node) = self.take(key) {
            errors.push(Some(node.origin), &self.path_of(key), None, format!("not used: {why}"));
        }
    }

    /// Marks every key as taken: used when the table's shape is unknown
    /// (an unknown distribution kind), where "unknown field" errors would
    /// only be noise.
    pub fn ignore_rest(&mut self) {
        self.taken.iter_mut().for_each(|taken| *taken = true);
    }

    /// Reports every key nobody took, suggesting the nearest valid name.
    pub fn finish(self, errors: &mut Errors) {
        let Some(table) = self.table else { return };
        for (entry, taken) in table.entries.iter().zip(&self.taken) {
            if *taken {
                continue;
            }
            let hint = match nearest(&entry.key, &self.known) {
                Some(near) => format!("did you mean {near}?"),
                None => format!("expected one of: {}", self.known.join(", ")),
            };
            errors.push(
                Some(entry.key_origin),
                &self.path_of(&entry.key),
                None,
                format!("unknown field; {hint}"),
            );
        }
    }
}

/// The valid names closest to `word` by edit distance, written as a hint
/// ("`a`" or "`a` or `b`"), if any is close enough to be a plausible typo:
/// at most a third of the word's length away, and at least one edit. Words
/// under three characters get no hint: every short name is one edit from
/// them (`=>` would suggest `==` and `>`).
pub(super) fn nearest(word: &str, candidates: &[&str]) -> Option<String> {
    let length = word.chars().count();
    if length < 3 {
        return None;
    }
    let limit = (length / 3).max(1);
    let scored: Vec<(usize, &str)> = candidates
        .iter()
        .map(|candidate| (edit_distance(word, candidate), *candidate))
        .filter(|(distance, _)| *distance <= limit)
        .collect();
    let best = scored.iter().map(|(distance, _)| *distance).min()?;
    let names: Vec<String> = scored
        .iter()
        .filter(|(distance, _)| *distance == best)
        .map(|(_, name)| format!("`{name}`"))
        .collect();
    Some(names.join(" or "))
}

/// Edit distance over chars, counting insertions, deletions, substitutions
/// and swaps of two neighbours (optimal string alignment), since swapped
/// letters are the commonest typo.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // d[i][j]: distance between a[..i] and b[..j].
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

// ---- converters: (errors, path, node) -> Option<T> ----

/// A string.
pub(super) fn string<'t>(errors: &mut Errors, path: &str, node: &'t Node) -> Option<&'t str> {
    match &node.value {
        Value::String(text) => Some(text),
        _ => {
            errors.wrong_type(path, node, "a string");
            None
        }
    }
}

/// A string that is one of `options`.
pub(super) fn choice<'t>(
    options: &'static [&'static str],
) -> impl FnOnce(&mut Errors, &str, &'t Node) -> Option<&'t str> {
    move |errors, path, node| {
        let text = string(errors, path, node)?;
        if options.contains(&text) {
            return Some(text);
        }
        let listed: Vec<String> = options.iter().map(|option| format!("{option:?}")).collect();
        let mut expected = format!("one of {}", listed.join(", "));
        if let Some(near) = nearest(text, options) {
            expected.push_str(&format!(" (did you mean {near}?)"));
        }
        errors.bad_value(path, node, &expected);
        None
    }
}

/// A boolean.
pub(super) fn boolean(errors: &mut Errors, path: &str, node: &Node) -> Option<bool> {
    match node.value {
        Value::Boolean(flag) => Some(flag),
        _ => {
            errors.wrong_type(path, node, "true or false");
            None
        }
    }
}

/// A whole number from `min` to `max`.
pub(super) fn integer(
    min: i64,
    max: i64,
) -> impl Fn(&mut Errors, &str, &Node) -> Option<i64> + Copy {
    move |errors, path, node| {
        let expected = format!("a whole number from {min} to {max}");
        match node.value {
            Value::Integer(number, _) if (min..=max).contains(&number) => Some(number),
            Value::Integer(..) => {
                errors.bad_value(path, node, &expected);
                None
            }
            _ => {
                errors.wrong_type(path, node, &expected);
                None
            }
        }
    }
}

/// A `u32` from `min` to `max`.
pub(super) fn count(min: u32, max: u32) -> impl Fn(&mut Errors, &str, &Node) -> Option<u32> + Copy {
    move |errors, path, node| {
        let number = integer(i64::from(min), i64::from(max))(errors, path, node)?;
        Some(u32::try_from(number).expect("range checked"))
    }
}

/// A `u64` from `min` to `max`.
pub(super) fn count64(
    min: u64,
    max: u64,
) -> impl Fn(&mut Errors, &str, &Node) -> Option<u64> + Copy {
    let as_i64 = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
    move |errors, path, node| {
        let number = integer(as_i64(min), as_i64(max))(errors, path, node)?;
        Some(u64::try_from(number).expect("range checked"))
    }
}

/// A finite number (integer or float) for which `ok` holds; `expected`
/// describes the allowed values.
pub(super) fn number(
    expected: &'static str,
    ok: impl Fn(f64) -> bool + Copy,
) -> impl Fn(&mut Errors, &str, &Node) -> Option<f64> + Copy {
    move |errors, path, node| {
        let value = match node.value {
            // Integers in scenario files are far below 2^53, where the
            // conversion is exact.
            Value::Integer(number, _) => number as f64,
            Value::Float(number, _) => number,
            _ => {
                errors.wrong_type(path, node, expected);
                return None;
            }
        };
        if value.is_finite() && ok(value) {
            Some(value)
        } else {
            errors.bad_value(path, node, expected);
            None
        }
    }
}

/// A probability in `[0, 1]`.
pub(super) fn probability(errors: &mut Errors, path: &str, node: &Node) -> Option<f64> {
    number("a probability from 0 to 1", |p| (0.0..=1.0).contains(&p))(errors, path, node)
}

/// The unit a duration field is written in (its name says which: `_s` or
/// `_ms`).
#[derive(Clone, Copy)]
pub(super) enum Unit {
    Seconds,
    Millis,
}

/// The longest duration a file may state: a day of simulated time is
/// already far beyond what a lesson or CI run needs, and a larger number is
/// almost certainly a unit mistake (milliseconds written as seconds).
pub(super) const DURATION_MAX: SimDuration = SimDuration::from_secs(86_400);

/// A duration written as a number of `unit`s, at most [`DURATION_MAX`];
/// zero allowed only if `zero_ok`.
pub(super) fn duration(
    unit: Unit,
    zero_ok: bool,
) -> impl Fn(&mut Errors, &str, &Node) -> Option<SimDuration> + Copy {
    move |errors, path, node| {
        let (name, nanos_per_unit, max) = match unit {
            Unit::Seconds => ("seconds", 1e9, "86400 (one day)"),
            Unit::Millis => ("milliseconds", 1e6, "86400000 (one day)"),
        };
        let bound = if zero_ok { ">= 0" } else { "> 0" };
        let expected = format!("a duration in {name}, {bound} and at most {max}");
        let limit = DURATION_MAX.as_nanos() as f64;
        let value = match node.value {
            Value::Integer(number, _) => number as f64,
            Value::Float(number, _) => number,
            _ => {
                errors.wrong_type(path, node, &expected);
                return None;
            }
        };
        let nanos = value * nanos_per_unit;
        // Written so that NaN fails.
        let in_range = nanos >= 0.0 && nanos <= limit;
        let converted = SimDuration::from_nanos_f64(nanos);
        if in_range && (zero_ok || converted > SimDuration::ZERO) {
            Some(converted)
        } else {
            errors.bad_value(path, node, &expected);
            None
        }
    }
}

/// An array.
pub(super) fn array<'t>(errors: &mut Errors, path: &str, node: &'t Node) -> Option<&'t [Node]> {
    match &node.value {
        Value::Array(items) => Some(items),
        _ => {
            errors.wrong_type(path, node, "an array");
            None
        }
    }
}

/// An array of strings, each one of `options`, without repeats.
pub(super) fn names<'t>(
    options: &'static [&'static str],
) -> impl FnOnce(&mut Errors, &str, &'t Node) -> Option<Vec<&'t str>> {
    move |errors, path, node| {
        let items = array(errors, path, node)?;
        let mut names: Vec<&'t str> = Vec::with_capacity(items.len());
        let mut ok = true;
        for (index, item) in items.iter().enumerate() {
            let item_path = format!("{path}.{index}");
            match choice(options)(errors, &item_path, item) {
                Some(name) if names.contains(&name) => {
                    errors.bad_value(&item_path, item, "each name once (it is repeated)");
                    ok = false;
                }
                Some(name) => names.push(name),
                None => ok = false,
            }
        }
        ok.then_some(names)
    }
}

/// What a distribution table looks like, for messages.
const DIST_EXAMPLE: &str = "a distribution table such as { kind = \"constant\", ms = 5 }";

/// Distribution kinds as written in files.
pub(super) const DIST_KINDS: &[&str] =
    &["constant", "uniform", "normal", "lognormal", "exponential", "pareto", "bimodal"];

/// A duration distribution (`{ kind = "...", ... }`, durations in ms),
/// checked with [`Dist::validate`].
pub(super) fn dist(errors: &mut Errors, path: &str, node: &Node) -> Option<Dist> {
    let before = errors.list.len();
    let dist = dist_unchecked(errors, path, node)?;
    if errors.list.len() > before {
        return None;
    }
    if let Err(error) = dist.validate(path) {
        report_dist_error(errors, path, node, &error);
        return None;
    }
    Some(dist)
}

fn dist_unchecked(errors: &mut Errors, path: &str, node: &Node) -> Option<Dist> {
    if !matches!(node.value, Value::Table(_)) {
        errors.wrong_type(path, node, DIST_EXAMPLE);
        return None;
    }
    let mut fields = Fields::of(errors, path, Some(node), DIST_EXAMPLE);
    let kind = fields.require(errors, "kind", DIST_EXAMPLE, choice(DIST_KINDS));
    let Some(kind) = kind else {
        fields.ignore_rest();
        return None;
    };
    let ms = duration(Unit::Millis, true);
    let why = |params: &str| format!("a {kind} distribution needs {params}");
    let dist = match kind {
        "constant" => {
            let value = fields.require(errors, "ms", &why("ms"), ms);
            value.map(Dist::constant)
        }
        "uniform" => {
            let min = fields.require(errors, "min_ms", &why("min_ms and max_ms"), ms);
            let max = fields.require(errors, "max_ms", &why("min_ms and max_ms"), ms);
            Some(Dist::uniform(min?, max?))
        }
        "normal" => {
            let mean = fields.require(errors, "mean_ms", &why("mean_ms and stddev_ms"), ms);
            let stddev = fields.require(errors, "stddev_ms", &why("mean_ms and stddev_ms"), ms);
            Some(Dist::normal(mean?, stddev?))
        }
        "lognormal" => {
            let mean = fields.require(errors, "mean_ms", &why("mean_ms and cv"), ms);
            let cv = fields.require(
                errors,
                "cv",
                &why("mean_ms and cv"),
                number("a coefficient of variation >= 0", |cv| cv >= 0.0),
            );
            Some(Dist::lognormal(mean?, cv?))
        }
        "exponential" => {
            let mean = fields.require(errors, "mean_ms", &why("mean_ms"), ms);
            mean.map(Dist::exponential)
        }
        "pareto" => {
            let min = fields.require(errors, "min_ms", &why("min_ms and shape"), ms);
            let shape = fields.require(
                errors,
                "shape",
                &why("min_ms and shape"),
                number("a tail index > 0", |shape| shape > 0.0),
            );
            Some(Dist::pareto(min?, shape?))
        }
        "bimodal" => {
            let needs = why("fast, slow and slow_probability");
            let fast = fields.require(errors, "fast", &needs, dist_unchecked);
            let slow = fields.require(errors, "slow", &needs, dist_unchecked);
            let p = fields.require(errors, "slow_probability", &needs, probability);
            Some(Dist::bimodal(fast?, slow?, p?))
        }
        _ => unreachable!("choice() only returns listed kinds"),
    };
    fields.finish(errors);
    dist
}

/// Turns a [`DistError`] (named in the engine's parameter names, e.g.
/// `latency.slow.min`) into a file error naming the file's keys
/// (`latency.slow.min_ms`) and the line of the offending value.
fn report_dist_error(errors: &mut Errors, path: &str, node: &Node, error: &DistError) {
    let suffix = error.field.strip_prefix(path).unwrap_or(&error.field).trim_start_matches('.');
    let keys: Vec<&str> = suffix
        .split('.')
        .map(|segment| match segment {
            "min" => "min_ms",
            "max" => "max_ms",
            "mean" => "mean_ms",
            "stddev" => "stddev_ms",
            "value" => "ms",
            other => other,
        })
        .collect();
    let mut found = Some(node);
    for key in &keys {
        found = found.and_then(|node| match &node.value {
            Value::Table(table) => table.get(key).map(|entry| &entry.node),
            _ => None,
        });
    }
    let field = format!("{path}.{}", keys.join("."));
    let (origin, value) = match found {
        Some(found) => (found.origin, found.render()),
        None => (node.origin, error.value.clone()),
    };
    errors.push(Some(origin), &field, Some(value), format!("expected {}", error.expected));
}
