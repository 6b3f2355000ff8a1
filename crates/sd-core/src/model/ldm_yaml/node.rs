//! A YAML value with the dotted path that leads to it, so every error names its field.

use serde_yaml_ng::Value;

use crate::error::ErrorCause;

/// Errors while reading the document: the reason, naming the field.
pub(super) type Field<T> = std::result::Result<T, String>;

/// Why the document describes no model this crate builds: the reason in words, naming the
/// field, and the library error beneath it where one was converted (the YAML parser's, or
/// the network crate's that refused the configuration the document describes).
#[derive(Debug)]
pub(super) struct Problem {
    pub(super) reason: String,
    pub(super) source: Option<ErrorCause>,
}

impl Problem {
    /// `reason`, caused by `source`.
    pub(super) fn caused(reason: String, source: impl Into<ErrorCause>) -> Self {
        Self {
            reason,
            source: Some(source.into()),
        }
    }

    /// The error naming the document `path`.
    pub(super) fn at(self, path: &std::path::Path) -> crate::CoreError {
        crate::CoreError::InvalidConfig {
            path: path.to_owned(),
            reason: self.reason,
            source: self.source.map(Box::new),
        }
    }
}

impl From<String> for Problem {
    fn from(reason: String) -> Self {
        Self {
            reason,
            source: None,
        }
    }
}

impl From<&str> for Problem {
    fn from(reason: &str) -> Self {
        reason.to_owned().into()
    }
}

/// Reading a document whose errors may carry a typed cause.
pub(super) type Parsed<T> = std::result::Result<T, Problem>;

/// A YAML value and the dotted path that leads to it, for errors naming the field.
pub(super) struct Node<'a> {
    pub(super) path: String,
    pub(super) value: &'a Value,
}

impl<'a> Node<'a> {
    /// The child `key`, absent when missing or `null`.
    pub(super) fn get(&self, key: &str) -> Option<Node<'a>> {
        self.value
            .get(key)
            .filter(|v| !v.is_null())
            .map(|value| Node {
                path: self.child(key),
                value,
            })
    }

    pub(super) fn require(&self, key: &str) -> Field<Node<'a>> {
        self.get(key)
            .ok_or_else(|| format!("`{}` is missing", self.child(key)))
    }

    pub(super) fn child(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub(super) fn wrong(&self, expected: &str) -> String {
        format!(
            "`{}` must be {expected}, not {}",
            self.path,
            describe(self.value)
        )
    }

    pub(super) fn unsupported(&self, what: &str) -> String {
        format!(
            "`{}: {}` is not supported: {what}",
            self.path,
            describe(self.value)
        )
    }

    /// Refuses a present value other than `supported` (absent means LDM's default, which is
    /// the supported one).
    pub(super) fn refuse_unless<T: PartialEq>(
        &self,
        key: &str,
        read: impl Fn(&Node<'a>) -> Field<T>,
        supported: T,
        what: &str,
    ) -> Field<()> {
        match self.get(key) {
            Some(node) if read(&node)? != supported => Err(node.unsupported(what)),
            _ => Ok(()),
        }
    }

    pub(super) fn str(&self) -> Field<&'a str> {
        self.value.as_str().ok_or_else(|| self.wrong("a string"))
    }

    pub(super) fn bool(&self) -> Field<bool> {
        self.value
            .as_bool()
            .ok_or_else(|| self.wrong("true or false"))
    }

    pub(super) fn int(&self) -> Field<i64> {
        self.value.as_i64().ok_or_else(|| self.wrong("an integer"))
    }

    pub(super) fn f64(&self) -> Field<f64> {
        self.value
            .as_f64()
            .filter(|v| v.is_finite())
            .ok_or_else(|| self.wrong("a number"))
    }

    pub(super) fn positive(&self) -> Field<usize> {
        self.value
            .as_u64()
            .and_then(|v| usize::try_from(v).ok())
            .filter(|v| *v > 0)
            .ok_or_else(|| self.wrong("a positive integer"))
    }

    pub(super) fn usize_list(&self) -> Field<Vec<usize>> {
        self.list(|node| node.positive(), "a list of positive integers")
    }

    pub(super) fn bool_list(&self) -> Field<Vec<bool>> {
        if self.value.is_bool() {
            return Ok(vec![self.bool()?]);
        }
        self.list(|node| node.bool(), "a list of true/false")
    }

    pub(super) fn list<T>(
        &self,
        read: impl Fn(&Node<'a>) -> Field<T>,
        expected: &str,
    ) -> Field<Vec<T>> {
        let items = self
            .value
            .as_sequence()
            .ok_or_else(|| self.wrong(expected))?;
        items
            .iter()
            .enumerate()
            .map(|(i, value)| {
                read(&Node {
                    path: format!("{}[{i}]", self.path),
                    value,
                })
            })
            .collect()
    }
}

/// A short rendering of a value for messages.
fn describe(value: &Value) -> String {
    const MAX_CHARS: usize = 60;
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.chars().count() > MAX_CHARS => {
            format!("\"{}…\"", s.chars().take(MAX_CHARS).collect::<String>())
        }
        Value::String(s) => format!("{s:?}"),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(_) => "a tagged value".into(),
    }
}
