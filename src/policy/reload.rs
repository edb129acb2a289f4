//! Reloading the policy file: validate aside, report the outcome, never disturb the live one.
//!
//! `Reloader` knows the file and keeps the last outcome (time, result, errors) for the admin
//! API and the dashboard. Swapping the validated policy in is the caller's job
//! (`AppState::reload`), so that budgets and the classifier move with it. Invariant: an invalid
//! file changes nothing but the recorded outcome.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use serde::Serialize;

use super::{Error, Policy};

/// The outcome of the last load or reload attempt.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReloadStatus {
    /// The file the live policy came from.
    pub source: String,
    /// When the live policy was loaded (RFC 3339).
    pub loaded_at: String,
    /// When a reload was last attempted, and whether it was refused.
    pub last_attempt_at: Option<String>,
    pub last_attempt_ok: bool,
    /// The refused file's errors, each `file:line:column: message`.
    pub errors: Vec<String>,
    /// How many reloads succeeded and failed since start.
    pub reloads: u64,
    pub failures: u64,
}

#[derive(Debug)]
pub struct Reloader {
    path: Option<PathBuf>,
    status: Mutex<ReloadStatus>,
}

impl Reloader {
    /// For a policy loaded from `path` (None: an embedded policy, which cannot be reloaded).
    pub fn new(path: Option<&Path>, source: &str, now: jiff::Timestamp) -> Reloader {
        Reloader {
            path: path.map(Path::to_path_buf),
            status: Mutex::new(ReloadStatus {
                source: source.to_owned(),
                loaded_at: now.to_string(),
                last_attempt_at: None,
                last_attempt_ok: true,
                errors: Vec::new(),
                reloads: 0,
                failures: 0,
            }),
        }
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Read and validate the file again. The caller swaps the result in.
    pub fn load(&self) -> Result<Policy, Error> {
        match &self.path {
            Some(path) => Policy::load(path),
            None => Err(Error::Invalid(Vec::new())),
        }
    }

    /// Record an attempt's outcome.
    pub fn record(&self, now: jiff::Timestamp, outcome: Result<(), &Error>) {
        let mut s = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        s.last_attempt_at = Some(now.to_string());
        match outcome {
            Ok(()) => {
                s.loaded_at = now.to_string();
                s.last_attempt_ok = true;
                s.errors.clear();
                s.reloads += 1;
            }
            Err(err) => {
                s.last_attempt_ok = false;
                s.errors = match err {
                    Error::Invalid(d) if d.is_empty() => {
                        vec!["this policy was not loaded from a file".to_owned()]
                    }
                    Error::Invalid(d) => d.iter().map(ToString::to_string).collect(),
                    other => vec![chain(other)],
                };
                s.failures += 1;
            }
        }
    }

    pub fn status(&self) -> ReloadStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
