//! Request classification: what kind of work a chat request is (`Task`) and how likely a cheap
//! open model does worse than a frontier model on it (`difficulty_score`, a `Difficulty` level).
//!
//! Owns the public vocabulary (`Task`, `Difficulty`, `Input`, `Classification`, `Signal`), the
//! linear `Model` with its versioned binary format, and the offline `train` / `evaluate` pipeline
//! over labelled JSONL. It does no I/O on the request path and keeps no global state.
//!
//! Invariants a changer must keep:
//! - `Model::classify` is pure and deterministic: same model, input and thresholds, same result;
//!   it never panics and does bounded work however long the conversation is.
//! - `train` is deterministic: same examples and config give byte-identical `Model::to_bytes`.
//! - The feature layout (`features.rs`) is part of the weights format: changing a feature, a hash
//!   seed or a constant there requires bumping `model::FORMAT_VERSION` and retraining.

mod data;
mod eval;
mod features;
mod input;
mod model;
mod scan;
mod topic;
mod train;

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use data::{Example, is_held_out, is_validation, load_jsonl};
pub use eval::{Report, Split, evaluate, evaluate_split};
pub use input::{Input, ResponseFormat, Role, Turn};
pub use model::Model;
pub use train::{TrainConfig, train};

/// What kind of work a request asks for. A closed set: routing policies match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    Code,
    Math,
    Reasoning,
    Summarization,
    Translation,
    Extraction,
    Classification,
    OpenQa,
    CreativeWriting,
    Brainstorming,
    Chat,
}

impl Task {
    /// Every task, in the order of the model's output columns.
    pub const ALL: [Task; 11] = [
        Task::Code,
        Task::Math,
        Task::Reasoning,
        Task::Summarization,
        Task::Translation,
        Task::Extraction,
        Task::Classification,
        Task::OpenQa,
        Task::CreativeWriting,
        Task::Brainstorming,
        Task::Chat,
    ];

    /// The snake_case name used in policies, headers and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Code => "code",
            Task::Math => "math",
            Task::Reasoning => "reasoning",
            Task::Summarization => "summarization",
            Task::Translation => "translation",
            Task::Extraction => "extraction",
            Task::Classification => "classification",
            Task::OpenQa => "open_qa",
            Task::CreativeWriting => "creative_writing",
            Task::Brainstorming => "brainstorming",
            Task::Chat => "chat",
        }
    }

    /// Position in `Task::ALL` (the model's column).
    pub fn index(self) -> usize {
        self as usize
    }

    /// Inverse of `index`.
    pub fn from_index(i: usize) -> Option<Task> {
        Task::ALL.get(i).copied()
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Task {
    type Err = Error;
    fn from_str(s: &str) -> Result<Task, Error> {
        Task::ALL
            .iter()
            .copied()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| Error::UnknownTask(s.to_owned()))
    }
}

/// Difficulty level, from `difficulty_score` and the policy's `Thresholds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Difficulty {
    Easy,
    Medium,
    Hard,
}

impl Difficulty {
    pub fn as_str(self) -> &'static str {
        match self {
            Difficulty::Easy => "easy",
            Difficulty::Medium => "medium",
            Difficulty::Hard => "hard",
        }
    }
}

impl fmt::Display for Difficulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Difficulty {
    type Err = Error;
    fn from_str(s: &str) -> Result<Difficulty, Error> {
        match s {
            "easy" => Ok(Difficulty::Easy),
            "medium" => Ok(Difficulty::Medium),
            "hard" => Ok(Difficulty::Hard),
            other => Err(Error::UnknownDifficulty(other.to_owned())),
        }
    }
}

/// Cut points on `difficulty_score`: `>= hard` is Hard, `>= medium` is Medium, else Easy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    pub medium: f32,
    pub hard: f32,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            medium: 0.35,
            hard: 0.65,
        }
    }
}

impl Thresholds {
    /// The level for a score. NaN scores (impossible from a validated model) read as Easy.
    pub fn level(&self, score: f32) -> Difficulty {
        if score >= self.hard {
            Difficulty::Hard
        } else if score >= self.medium {
            Difficulty::Medium
        } else {
            Difficulty::Easy
        }
    }
}

/// One named contribution to a decision. `weight` is its signed contribution in logit units
/// (to the chosen task's logit, or to the difficulty logit). Names never carry prompt text
/// beyond a single word.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Signal {
    pub name: Cow<'static, str>,
    pub weight: f32,
}

/// The classifier's answer for one request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Classification {
    pub task: Task,
    /// Softmax probability of `task`, in [0, 1].
    pub task_confidence: f32,
    /// In [0, 1]: how likely a cheap open model does worse than a frontier model here.
    pub difficulty_score: f32,
    pub difficulty: Difficulty,
    /// At most five of the strongest contributions, strongest first.
    pub signals: Vec<Signal>,
}

/// Errors of the classify module: loading weights and reading labelled data.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("classifier weights are {got} bytes, expected {expected}")]
    WeightsLength { got: usize, expected: usize },
    #[error("classifier weights have a bad magic number (not a switchyard classifier file)")]
    BadMagic,
    #[error("classifier weights have format version {got}, this build reads version {expected}")]
    UnsupportedVersion { got: u32, expected: u32 },
    #[error(
        "classifier weights were built for a different feature layout ({field}: file {got}, build {expected})"
    )]
    LayoutMismatch {
        field: &'static str,
        got: u32,
        expected: u32,
    },
    #[error("classifier weights checksum mismatch (file is corrupt)")]
    Checksum,
    #[error("classifier weights contain a non-finite value")]
    NonFinite,
    #[error("cannot read {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    BadLine {
        path: String,
        line: usize,
        message: String,
    },
    #[error("unknown task `{0}`")]
    UnknownTask(String),
    #[error("unknown difficulty `{0}` (expected easy, medium or hard)")]
    UnknownDifficulty(String),
}

#[cfg(test)]
mod tests;
