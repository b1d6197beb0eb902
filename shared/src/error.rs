//! Config errors: every problem found by [`crate::compile`], each with the path it is about.

use std::fmt;

use serde::Serialize;

/// One problem in a config document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Where, e.g. `flags.homepage.rules[2].split`.
    pub path: String,
    /// What is wrong, e.g. `weights must sum to 10000, got 9000`.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// A document that does not compile, with all of its problems (not only the first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigError {
    /// Every problem found, in document order.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(f, "config has {n} problem{}", if n == 1 { "" } else { "s" })?;
        for p in &self.problems {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Collects problems while compiling.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    list: Vec<Problem>,
}

impl Problems {
    pub(crate) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.list.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// `Ok` without problems, else the error listing them.
    pub(crate) fn into_result(self) -> Result<(), ConfigError> {
        if self.list.is_empty() {
            Ok(())
        } else {
            Err(self.into_error())
        }
    }

    pub(crate) fn into_error(self) -> ConfigError {
        ConfigError {
            problems: self.list,
        }
    }
}
