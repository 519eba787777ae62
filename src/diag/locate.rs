//! The second, event-level pass over a YAML text (yaml-rust2) that maps a key path
//! such as `steps.train.with.lr` to the marks of its key and value. It only runs
//! when an error needs a location, so valid files are parsed once.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

use super::{Seg, YamlPath};

/// (line, col, width) of a key and of its value, 1-based.
pub(super) type Mark = (usize, usize, usize);

#[derive(Clone, Copy)]
pub(super) struct Entry {
    pub(super) key: Option<Mark>,
    pub(super) value: Mark,
}

/// Maps every key path of a YAML document to the marks of its key and value (every
/// occurrence, in file order, so a duplicate key can be pointed at).
pub(super) struct Locator {
    pub(super) entries: HashMap<YamlPath, Vec<Entry>>,
}

enum Frame {
    Map { pending_key: Option<(String, Mark)> },
    Seq { next: usize },
}

struct Builder<'a> {
    text: &'a str,
    path: Vec<Seg>,
    frames: Vec<Frame>,
    entries: HashMap<YamlPath, Vec<Entry>>,
}

impl Builder<'_> {
    fn mark(&self, m: Marker, width: usize) -> Mark {
        // yaml-rust2 reports a 0-based column; make it 1-based like serde_yaml.
        let _ = self.text;
        (m.line(), m.col() + 1, width)
    }

    /// Called for a node (scalar or collection start) at `m`: decides its path.
    fn node(&mut self, m: Marker, width: usize, is_scalar: bool, scalar: Option<&str>) -> bool {
        let value = self.mark(m, width);
        match self.frames.last_mut() {
            Some(Frame::Map { pending_key }) => match pending_key.take() {
                None => {
                    // This node is a key.
                    let k = scalar.unwrap_or("?").to_owned();
                    *pending_key = Some((k, value));
                    false
                }
                Some((k, key_mark)) => {
                    self.path.push(Seg::Key(k));
                    self.entries
                        .entry(YamlPath(self.path.clone()))
                        .or_default()
                        .push(Entry {
                            key: Some(key_mark),
                            value,
                        });
                    if is_scalar {
                        self.path.pop();
                    }
                    true
                }
            },
            Some(Frame::Seq { next }) => {
                let i = *next;
                *next += 1;
                self.path.push(Seg::Index(i));
                self.entries
                    .entry(YamlPath(self.path.clone()))
                    .or_default()
                    .push(Entry { key: None, value });
                if is_scalar {
                    self.path.pop();
                }
                true
            }
            None => {
                self.entries
                    .entry(YamlPath(Vec::new()))
                    .or_default()
                    .push(Entry { key: None, value });
                true
            }
        }
    }
}

impl MarkedEventReceiver for Builder<'_> {
    fn on_event(&mut self, ev: Event, m: Marker) {
        match ev {
            Event::Scalar(s, style, _, _) => {
                let quoted = !matches!(style, yaml_rust2::scanner::TScalarStyle::Plain);
                let width = s.chars().count() + if quoted { 2 } else { 0 };
                self.node(m, width, true, Some(&s));
            }
            Event::Alias(_) => {
                self.node(m, 1, true, Some("*"));
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let is_map = matches!(ev, Event::MappingStart(..));
                // A collection used as a mapping key cannot be located by name; it still
                // needs a frame so the events inside it stay balanced.
                let as_key = matches!(self.frames.last(), Some(Frame::Map { pending_key: None }));
                if as_key {
                    self.node(m, 1, true, Some("?"));
                    self.path.push(Seg::Key("?".into()));
                } else if !self.node(m, 1, false, None) {
                    self.path.push(Seg::Key("?".into()));
                }
                self.frames.push(if is_map {
                    Frame::Map { pending_key: None }
                } else {
                    Frame::Seq { next: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.frames.pop();
                self.path.pop();
            }
            _ => {}
        }
    }
}

impl Locator {
    pub(super) fn build(text: &str) -> Locator {
        let mut b = Builder {
            text,
            path: Vec::new(),
            frames: Vec::new(),
            entries: HashMap::new(),
        };
        let mut parser = Parser::new_from_str(text);
        // A syntax error stops the walk; what was located before it is still useful.
        let _ = parser.load(&mut b, false);
        Locator { entries: b.entries }
    }
}
