//! The raw form of a scenario file: a TOML tree in which every value
//! remembers where it came from (a line of the file, or `--set`), so that
//! validation can point at it.
//!
//! The tree is built from `toml::de::DeTable`, which keeps byte spans, and
//! `--set PATH=VALUE` overrides are applied to it before validation, so an
//! overridden value is checked exactly like one written in the file.

use super::FileError;
use std::fmt::Write as _;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// Where a value (or a key) came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Origin {
    /// A line of the file, counted from 1.
    Line(usize),
    /// A `--set` override on the command line.
    Set,
}

/// A value and where it came from.
#[derive(Clone, Debug)]
pub(super) struct Node {
    pub value: Value,
    pub origin: Origin,
}

/// A TOML value. Numbers keep their text as written, for messages.
#[derive(Clone, Debug)]
pub(super) enum Value {
    String(String),
    Integer(i64, String),
    /// An integer TOML allows but 64 bits cannot hold; every converter
    /// refuses it, naming the field.
    HugeInteger(String),
    Float(f64, String),
    Boolean(bool),
    Datetime(String),
    Array(Vec<Node>),
    Table(Table),
}

/// A TOML table, in the order the parser hands it over.
#[derive(Clone, Debug, Default)]
pub(super) struct Table {
    pub entries: Vec<Entry>,
}

/// One `key = value` of a table.
#[derive(Clone, Debug)]
pub(super) struct Entry {
    pub key: String,
    pub key_origin: Origin,
    pub node: Node,
}

impl Table {
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|entry| entry.key == key)
    }
}

impl Value {
    /// "a string", "an integer", ...: what a message says was found.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::String(_) => "a string",
            Value::Integer(..) => "an integer",
            Value::HugeInteger(_) => "an integer too large for 64 bits",
            Value::Float(..) => "a float",
            Value::Boolean(_) => "a boolean",
            Value::Datetime(_) => "a date-time",
            Value::Array(_) => "an array",
            Value::Table(_) => "a table",
        }
    }
}

/// Longest rendering of a value in a message; longer ones are cut with `…`.
const RENDER_CHARS_MAX: usize = 60;

impl Node {
    /// The value as TOML-like text, cut to a readable length.
    pub fn render(&self) -> String {
        let mut text = String::new();
        render_into(&self.value, &mut text);
        if text.chars().count() > RENDER_CHARS_MAX {
            text = text.chars().take(RENDER_CHARS_MAX - 1).collect();
            text.push('…');
        }
        text
    }
}

fn render_into(value: &Value, out: &mut String) {
    match value {
        Value::String(text) => {
            let _ = write!(out, "{text:?}");
        }
        Value::Integer(_, text)
        | Value::HugeInteger(text)
        | Value::Float(_, text)
        | Value::Datetime(text) => out.push_str(text),
        Value::Boolean(flag) => {
            let _ = write!(out, "{flag}");
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                render_into(&item.value, out);
            }
            out.push(']');
        }
        Value::Table(table) => {
            out.push_str("{ ");
            for (index, entry) in table.entries.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                let _ = write!(out, "{} = ", entry.key);
                render_into(&entry.node.value, out);
            }
            out.push_str(" }");
        }
    }
}

/// Byte offsets of line starts, to turn spans into line numbers.
struct Lines(Vec<usize>);

impl Lines {
    fn new(text: &str) -> Lines {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(offset, _)| offset + 1))
            .collect();
        Lines(starts)
    }

    /// The 1-based line of a byte offset.
    fn line(&self, offset: usize) -> usize {
        match self.0.binary_search(&offset) {
            Ok(index) => index + 1,
            Err(index) => index,
        }
    }
}

/// Parses a whole file into a tree. Syntax errors are all reported, in
/// line order, and no tree is returned: validating a half-parsed file would
/// only add confusing errors.
pub(super) fn parse_document(file: &str, text: &str) -> Result<Table, Vec<FileError>> {
    let lines = Lines::new(text);
    let (document, syntax_errors) = DeTable::parse_recoverable(text);
    if syntax_errors.is_empty() {
        let origin = |offset| Origin::Line(lines.line(offset));
        return Ok(convert_table(document.get_ref(), &origin));
    }
    let mut errors: Vec<FileError> = syntax_errors
        .iter()
        .map(|error| FileError {
            file: file.to_string(),
            line: error.span().map(|span| lines.line(span.start)),
            from_set: false,
            field: String::new(),
            value: None,
            message: format!("invalid TOML: {}", error.message().trim_end()),
        })
        .collect();
    errors.sort_by_key(|error| error.line);
    Err(errors)
}

/// Parses the value of a `--set` override: TOML if it parses as a TOML
/// value, otherwise the text itself as a string (so `--set
/// workload.arrivals=closed` needs no quotes).
fn parse_override_value(text: &str) -> Node {
    let text = text.trim();
    let value = match DeValue::parse(text) {
        Ok(parsed) => convert_value(parsed.get_ref(), &|_| Origin::Set),
        Err(_) => Value::String(text.to_string()),
    };
    Node { value, origin: Origin::Set }
}

fn convert_table(table: &DeTable<'_>, origin: &dyn Fn(usize) -> Origin) -> Table {
    let entries = table
        .iter()
        .map(|(key, value)| Entry {
            key: key.get_ref().to_string(),
            key_origin: origin(key.span().start),
            node: convert_node(value, origin),
        })
        .collect();
    Table { entries }
}

fn convert_node(value: &Spanned<DeValue<'_>>, origin: &dyn Fn(usize) -> Origin) -> Node {
    Node { value: convert_value(value.get_ref(), origin), origin: origin(value.span().start) }
}

fn convert_value(value: &DeValue<'_>, origin: &dyn Fn(usize) -> Origin) -> Value {
    match value {
        DeValue::String(text) => Value::String(text.to_string()),
        DeValue::Integer(integer) => {
            let written = integer.to_string();
            match i64::from_str_radix(integer.as_str(), integer.radix()) {
                Ok(number) => Value::Integer(number, written),
                Err(_) => Value::HugeInteger(written),
            }
        }
        DeValue::Float(float) => {
            let written = float.as_str().to_string();
            // Rust's float syntax accepts everything TOML writes (`inf`,
            // `-inf`, `nan`, exponents); a failure would be a parser bug,
            // and NaN is then refused by every numeric check.
            let number = written.parse().unwrap_or(f64::NAN);
            Value::Float(number, written)
        }
        DeValue::Boolean(flag) => Value::Boolean(*flag),
        DeValue::Datetime(datetime) => Value::Datetime(datetime.to_string()),
        DeValue::Array(items) => {
            Value::Array(items.iter().map(|item| convert_node(item, origin)).collect())
        }
        DeValue::Table(table) => Value::Table(convert_table(table, origin)),
    }
}

/// Applies `--set PATH=VALUE` to the tree. PATH is dotted; a number picks
/// an item of an array (`faults.0.at_s`), and the number one past the end
/// appends an item. Missing tables on the way are created, so
/// `--set microlith.threads=5` works on a file without `[microlith]`;
/// whether the path names a real field is checked by validation, like any
/// other key.
pub(super) fn apply_override(
    root: &mut Table,
    file: &str,
    text: &str,
    errors: &mut Vec<FileError>,
) {
    let error = |field: &str, message: String| FileError {
        file: file.to_string(),
        line: None,
        from_set: true,
        field: field.to_string(),
        value: None,
        message,
    };
    let Some((path, value_text)) = text.split_once('=') else {
        errors.push(error(text, "expected PATH=VALUE, e.g. workload.rate_per_s=500".into()));
        return;
    };
    let path = path.trim();
    let segments: Vec<&str> = path.split('.').map(str::trim).collect();
    if segments.iter().any(|segment| segment.is_empty()) {
        errors.push(error(path, "expected a dotted path such as workload.rate_per_s".into()));
        return;
    }
    let value = parse_override_value(value_text);
    if let Err(message) = set_path(root, &segments, value) {
        errors.push(error(path, message));
    }
}

fn set_path(root: &mut Table, segments: &[&str], value: Node) -> Result<(), String> {
    let (last, parents) = segments.split_last().expect("split('.') yields at least one segment");
    let mut current = Slot::Table(root);
    for (depth, segment) in parents.iter().enumerate() {
        let prefix = segments[..=depth].join(".");
        current = current.child(segment, &prefix)?;
    }
    current.set(last, value, &segments.join("."))
}

/// A place in the tree that children can be looked up in.
enum Slot<'t> {
    Table(&'t mut Table),
    Array(&'t mut Vec<Node>),
}

impl<'t> Slot<'t> {
    fn child(self, segment: &str, prefix: &str) -> Result<Slot<'t>, String> {
        let node = match self {
            Slot::Table(table) => {
                let index = match table.entries.iter().position(|entry| entry.key == segment) {
                    Some(index) => index,
                    None => {
                        table.entries.push(Entry {
                            key: segment.to_string(),
                            key_origin: Origin::Set,
                            node: Node {
                                value: Value::Table(Table::default()),
                                origin: Origin::Set,
                            },
                        });
                        table.entries.len() - 1
                    }
                };
                &mut table.entries[index].node
            }
            Slot::Array(items) => {
                let index = array_index(segment, items.len(), prefix)?;
                if index == items.len() {
                    items.push(Node { value: Value::Table(Table::default()), origin: Origin::Set });
                }
                &mut items[index]
            }
        };
        let found = node.value.type_name();
        match &mut node.value {
            Value::Table(table) => Ok(Slot::Table(table)),
            Value::Array(items) => Ok(Slot::Array(items)),
            _ => Err(format!("{prefix} is {found}, which has no fields")),
        }
    }

    fn set(self, segment: &str, value: Node, path: &str) -> Result<(), String> {
        match self {
            Slot::Table(table) => {
                match table.entries.iter_mut().find(|entry| entry.key == segment) {
                    Some(entry) => entry.node = value,
                    None => table.entries.push(Entry {
                        key: segment.to_string(),
                        key_origin: Origin::Set,
                        node: value,
                    }),
                }
                Ok(())
            }
            Slot::Array(items) => {
                let index = array_index(segment, items.len(), path)?;
                if index == items.len() {
                    items.push(value);
                } else {
                    items[index] = value;
                }
                Ok(())
            }
        }
    }
}

fn array_index(segment: &str, len: usize, path: &str) -> Result<usize, String> {
    match segment.parse::<usize>() {
        Ok(index) if index <= len => Ok(index),
        Ok(_) if len == 0 => {
            Err("index out of range: the array is empty; 0 appends an item".into())
        }
        Ok(_) if len == 1 => {
            Err("index out of range: the array has 1 item, 0; 1 appends one".into())
        }
        Ok(_) => Err(format!(
            "index out of range: the array has {len} items, 0 to {}; {len} appends one",
            len - 1
        )),
        Err(_) => Err(format!("{path}: an array item is picked by its index (0, 1, ...)")),
    }
}
