//! Task and difficulty vocabulary shared by the policy, the router and the classifier.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What kind of work a request is. A closed set: policies match on it.
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
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Task {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Task::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("unknown task `{s}`"))
    }
}

/// How hard a request is, from the policy's thresholds over the difficulty score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Difficulty {
    Easy,
    Medium,
    Hard,
}

impl Difficulty {
    pub const ALL: [Difficulty; 3] = [Difficulty::Easy, Difficulty::Medium, Difficulty::Hard];
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
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Difficulty::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("unknown difficulty `{s}`"))
    }
}
