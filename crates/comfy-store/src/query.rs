//! A small builder for `WHERE` clauses whose conditions depend on which filters a caller set; values
//! are always bound as parameters, never spliced into the SQL text.

use rusqlite::types::Value;

#[derive(Default)]
pub(crate) struct Conditions {
    clauses: Vec<String>,
    values: Vec<Value>,
}

impl Conditions {
    /// Adds `clause`, in which each `?` is bound, in order, to one of `values`.
    pub(crate) fn push(&mut self, clause: &str, values: impl IntoIterator<Item = Value>) {
        self.clauses.push(clause.to_owned());
        self.values.extend(values);
    }

    /// Adds `column IN (?, ?, ...)`; an empty list matches nothing rather than everything.
    pub(crate) fn push_in(&mut self, column: &str, values: Vec<Value>) {
        if values.is_empty() {
            self.clauses.push("0".to_owned());
            return;
        }
        let placeholders = vec!["?"; values.len()].join(", ");
        self.clauses.push(format!("{column} IN ({placeholders})"));
        self.values.extend(values);
    }

    /// ` WHERE a AND b`, or nothing when no condition was added.
    pub(crate) fn where_clause(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }

    pub(crate) fn push_value(&mut self, value: Value) {
        self.values.push(value);
    }

    pub(crate) fn values(&self) -> rusqlite::ParamsFromIter<&Vec<Value>> {
        rusqlite::params_from_iter(&self.values)
    }
}

pub(crate) fn text(value: &str) -> Value {
    Value::Text(value.to_owned())
}

/// Clamps a caller's limit to something SQLite accepts; `None` means no limit.
pub(crate) fn limit_value(limit: Option<u32>) -> Value {
    Value::Integer(limit.map_or(-1, i64::from))
}
