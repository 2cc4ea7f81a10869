//! Errors from loading `actors.toml`, each naming the key and the fix.

use std::fmt;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}; check the path, or pass --config with the right file")]
    Read {
        /// The path tried.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The TOML did not parse, or a value had the wrong type or name.
    #[error("{origin}:{line}:{column}: {message}")]
    Syntax {
        /// The file (or label) parsed.
        origin: String,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// What was wrong, from the TOML parser, with the key where known.
        message: String,
    },
    /// Values parsed but broke a rule.
    #[error("{origin}: {}", ProblemList(problems))]
    Invalid {
        /// The file (or label) validated.
        origin: String,
        /// Every problem found, in key order.
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    pub(crate) fn syntax(origin: &str, text: &str, error: &toml::de::Error) -> Self {
        let (line, column) = position(text, error);
        let key = key_at(text, error.span().map_or(0, |span| span.start));
        let mut message = error.message().trim().to_string();
        if let Some(key) = key {
            message = format!("{key}: {message}");
        }
        message = format!("{message}; {}", fix_for(&message));
        ConfigError::Syntax {
            origin: origin.to_string(),
            line,
            column,
            message,
        }
    }

    /// The problems, for an `Invalid` error.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }
}

/// The dotted key whose line holds `offset`, found from the nearest table
/// header above it, so type errors name `services.kite_api.call_timeout` and
/// not just a column.
/// The 1-based line and column where `error` points.
fn position(text: &str, error: &toml::de::Error) -> (usize, usize) {
    let offset = error.span().map(|span| span.start).unwrap_or(0);
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn fix_for(message: &str) -> &'static str {
    if message.contains("unknown field") {
        "remove the key or correct its spelling (see the README's configuration reference)"
    } else if message.contains("invalid type") || message.contains("invalid value") {
        "give a value of the expected type (durations are strings such as \"30s\")"
    } else {
        "fix the TOML syntax at that position"
    }
}

/// A schema error (an unknown key, a value of the wrong type) as a
/// [`Problem`] naming its key and line, so several can be reported at once.
pub(crate) fn schema_problem(text: &str, error: &toml::de::Error) -> Problem {
    let (line, _) = position(text, error);
    let offset = error.span().map_or(0, |span| span.start);
    let key = key_at(text, offset).unwrap_or_else(|| format!("line {line}"));
    let message = error.message().trim().to_string();
    let fix = fix_for(&message);
    Problem::new(key, format!("{message} (line {line})"), fix)
}

fn key_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = text[line_start..line_end].trim();
    let above = &text[..line_start];
    let table = above
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|header| {
            let name = header
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_string();
            if header.starts_with("[[") {
                // An array of tables: name the element, `services.X.chaos[i]`.
                let index = above
                    .lines()
                    .map(str::trim)
                    .filter(|l| *l == header)
                    .count()
                    .saturating_sub(1);
                format!("{name}[{index}]")
            } else {
                name
            }
        });
    if line.starts_with('[') {
        return Some(
            line.trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_string(),
        );
    }
    let key = line.split('=').next()?.trim();
    if key.is_empty() || line == key {
        return table;
    }
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key.to_string(),
    })
}

/// One broken rule: which key, what is wrong, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The dotted key (`services.kite_api.failure_threshold`) or the
    /// environment variable (`CIRCUIT_BREAKER_FAILURE_THRESHOLD`).
    pub key: String,
    /// What is wrong, with the offending value.
    pub message: String,
    /// What to do about it.
    pub fix: String,
}

impl Problem {
    pub(crate) fn new(
        key: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
            fix: fix.into(),
        }
    }
}

/// Rejects a duration above `max`: no duration from the config may reach
/// the time arithmetic unbounded (an absurd value would overflow an
/// `Instant` and panic the runtime).
pub(crate) fn check_max_duration(
    out: &mut Vec<Problem>,
    key: impl Into<String>,
    value: std::time::Duration,
    max: std::time::Duration,
) {
    if value > max {
        out.push(Problem::new(
            key,
            format!(
                "is {}, above the bound of {}",
                humantime::format_duration(value),
                humantime::format_duration(max)
            ),
            format!("set it to at most {}", humantime::format_duration(max)),
        ));
    }
}

/// Rejects a count above `max`: a bound that keeps memory and CPU safe (a
/// restart window of 4 294 967 295 entries is a 64 GB allocation).
pub(crate) fn check_max_count(
    out: &mut Vec<Problem>,
    key: impl Into<String>,
    value: u64,
    max: u64,
) {
    if value > max {
        out.push(Problem::new(
            key,
            format!("is {value}, above the bound of {max}"),
            format!("set it to at most {max}"),
        ));
    }
}

/// Rejects a duration below `min`: an interval that would keep a core busy.
pub(crate) fn check_min_duration(
    out: &mut Vec<Problem>,
    key: impl Into<String>,
    value: std::time::Duration,
    min: std::time::Duration,
) {
    if !value.is_zero() && value < min {
        out.push(Problem::new(
            key,
            format!(
                "is {}, below the floor of {}",
                humantime::format_duration(value),
                humantime::format_duration(min)
            ),
            format!("set it to at least {}", humantime::format_duration(min)),
        ));
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}; {}", self.key, self.message, self.fix)
    }
}

struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [one] => write!(f, "{one}"),
            many => {
                write!(f, "{} problems:", many.len())?;
                for p in many {
                    write!(f, "\n  - {p}")?;
                }
                Ok(())
            }
        }
    }
}
