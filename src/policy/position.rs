//! Where each node of a YAML document sits, so errors found on parsed values can name
//! `file:line:column`.
//!
//! serde_yaml reports a location only for the first syntax or type error of a whole-document
//! parse; `check` must report every error, found section by section on parsed values. This index
//! maps a path (`routes[2].use`) to the line and column of its key and of its value, read from
//! yaml-rust2's marked event stream. It never fails: a document it cannot read yields an empty
//! index and errors fall back to the nearest known parent.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Default)]
pub(super) struct Index {
    /// path → (position of the key, position of the value)
    nodes: HashMap<String, (Position, Position)>,
}

impl Index {
    pub fn build(text: &str) -> Index {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        // A scan error here was already reported by serde_yaml; keep what was indexed.
        if parser.load(&mut builder, false).is_err() {
            return Index {
                nodes: builder.nodes,
            };
        }
        Index {
            nodes: builder.nodes,
        }
    }

    /// Position of the value at `path`, or of the nearest ancestor that has one.
    pub fn value(&self, path: &str) -> Option<Position> {
        self.lookup(path).map(|(_, v)| v)
    }

    /// Position of the key at `path` (the value's position for sequence items), or of the
    /// nearest ancestor.
    pub fn key(&self, path: &str) -> Option<Position> {
        self.lookup(path).map(|(k, _)| k)
    }

    fn lookup(&self, path: &str) -> Option<(Position, Position)> {
        let mut p = path;
        loop {
            if let Some(found) = self.nodes.get(p) {
                return Some(*found);
            }
            if p.is_empty() {
                return None;
            }
            p = parent(p);
        }
    }
}

/// `routes[2].use` → `routes[2]` → `routes` → ``.
fn parent(path: &str) -> &str {
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    path.get(..cut).unwrap_or("")
}

pub(super) fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

pub(super) fn join_index(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

enum Frame {
    /// In a mapping: the path of the mapping, and the pending key with its position.
    Map {
        path: String,
        key: Option<(String, Position)>,
        /// No key read yet: the first key's position becomes the mapping's value position
        /// (yaml-rust2 marks a block mapping's start after its first key).
        first: bool,
    },
    Seq {
        path: String,
        next: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    nodes: HashMap<String, (Position, Position)>,
}

fn position(mark: Marker) -> Position {
    // yaml-rust2 lines are 1-based and columns 0-based.
    Position {
        line: mark.line(),
        column: mark.col() + 1,
    }
}

impl Builder {
    /// Called for each node that is a value (not a mapping key). Returns its path.
    fn place_value(&mut self, at: Position) -> Option<String> {
        match self.stack.last_mut() {
            None => {
                self.nodes.insert(String::new(), (at, at));
                Some(String::new())
            }
            Some(Frame::Seq { path, next }) => {
                let p = join_index(path, *next);
                *next += 1;
                self.nodes.insert(p.clone(), (at, at));
                Some(p)
            }
            Some(Frame::Map { path, key, .. }) => match key.take() {
                Some((k, key_at)) => {
                    let p = join_key(path, &k);
                    self.nodes.insert(p.clone(), (key_at, at));
                    Some(p)
                }
                None => None,
            },
        }
    }

    /// True when the next scalar in the current mapping is a key.
    fn expecting_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { key: None, .. }))
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let at = position(mark);
        match ev {
            Event::Scalar(text, ..) => {
                if self.expecting_key() {
                    if let Some(Frame::Map { key, first, path }) = self.stack.last_mut() {
                        *key = Some((text, at));
                        if std::mem::take(first)
                            && let Some(node) = self.nodes.get_mut(path.as_str())
                        {
                            node.1 = at;
                            if path.ends_with(']') {
                                node.0 = at;
                            }
                        }
                    }
                } else {
                    self.place_value(at);
                }
            }
            Event::Alias(_) => {
                if self.expecting_key() {
                    if let Some(Frame::Map { key, .. }) = self.stack.last_mut() {
                        *key = Some(("*alias".to_owned(), at));
                    }
                } else {
                    self.place_value(at);
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                // A complex key (a mapping used as a key) gets a placeholder path.
                let path = if self.expecting_key() {
                    if let Some(Frame::Map { key, .. }) = self.stack.last_mut() {
                        *key = Some(("?complex".to_owned(), at));
                    }
                    "?complex".to_owned()
                } else {
                    self.place_value(at).unwrap_or_default()
                };
                let frame = if matches!(ev, Event::MappingStart(..)) {
                    Frame::Map {
                        path,
                        key: None,
                        first: true,
                    }
                } else {
                    Frame::Seq { path, next: 0 }
                };
                self.stack.push(frame);
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_keys_and_values() {
        let text = "a: 1\nroutes:\n  - name: x\n    use: [m1, m2]\n  - { name: y, use: m }\n";
        let idx = Index::build(text);
        assert_eq!(idx.key("a"), Some(Position { line: 1, column: 1 }));
        assert_eq!(idx.value("a"), Some(Position { line: 1, column: 4 }));
        assert_eq!(
            idx.key("routes[0].use"),
            Some(Position { line: 4, column: 5 })
        );
        assert_eq!(
            idx.value("routes[0].use[1]"),
            Some(Position {
                line: 4,
                column: 15
            })
        );
        assert_eq!(
            idx.value("routes[1].name"),
            Some(Position {
                line: 5,
                column: 13
            })
        );
        // unknown leaf falls back to its parent
        assert_eq!(idx.value("routes[1].nope"), idx.value("routes[1]"));
    }
}
