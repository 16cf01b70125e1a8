//! Line and column of config nodes by key path, from a YAML event stream.
//!
//! Built only when a file has diagnostics to render, so valid configs pay nothing for it.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use crate::diagnostic::{KeyPath, Location, Target};

#[derive(Debug, Clone, Copy)]
struct Pos {
    line: usize,
    col: usize,
}

#[derive(Debug, Clone, Copy)]
struct NodePos {
    key: Option<Pos>,
    value: Pos,
    quoted: bool,
    single_line: bool,
    /// A scalar or an alias: nothing in the file lies below it.
    leaf: bool,
}

/// Positions of every node of one YAML document.
#[derive(Debug, Default)]
pub(crate) struct PositionIndex {
    nodes: HashMap<KeyPath, NodePos>,
    lines: Vec<String>,
}

enum Frame {
    Map {
        path: KeyPath,
        pending_key: Option<(String, Pos)>,
    },
    Seq {
        path: KeyPath,
        next: usize,
    },
}

impl PositionIndex {
    pub(crate) fn build(text: &str) -> Self {
        let mut index = Self {
            nodes: HashMap::new(),
            lines: text.lines().map(str::to_owned).collect(),
        };
        let mut stack: Vec<Frame> = Vec::new();
        for event in Parser::new_from_str(text) {
            let Ok((event, span)) = event else { break };
            match event {
                Event::Scalar(value, style, ..) => {
                    if let Some(Frame::Map {
                        pending_key: pending @ None,
                        ..
                    }) = stack.last_mut()
                    {
                        *pending = Some((value.into_owned(), pos(&span)));
                        continue;
                    }
                    let quoted =
                        matches!(style, ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted);
                    let single_line = span.start.line() == span.end.line();
                    index.place(&mut stack, &span, quoted, single_line, true);
                }
                Event::Alias(_) => {
                    index.place(&mut stack, &span, false, true, true);
                }
                Event::MappingStart(..) => {
                    let path = index.place(&mut stack, &span, false, false, false);
                    stack.push(Frame::Map {
                        path,
                        pending_key: None,
                    });
                }
                Event::SequenceStart(..) => {
                    let path = index.place(&mut stack, &span, false, false, false);
                    stack.push(Frame::Seq { path, next: 0 });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                }
                Event::DocumentEnd => break,
                _ => {}
            }
        }
        index
    }

    /// Records a value node at the current position in the tree; returns its path.
    fn place(
        &mut self,
        stack: &mut [Frame],
        span: &Span,
        quoted: bool,
        single_line: bool,
        leaf: bool,
    ) -> KeyPath {
        let (path, key) = match stack.last_mut() {
            None => (KeyPath::root(), None),
            Some(Frame::Map { path, pending_key }) => match pending_key.take() {
                Some((k, kpos)) => (path.key(&k), Some(kpos)),
                // A complex (non-scalar) key: not addressable by our paths.
                None => (path.key("?"), None),
            },
            Some(Frame::Seq { path, next }) => {
                *next += 1;
                (path.index(*next - 1), None)
            }
        };
        self.nodes.insert(
            path.clone(),
            NodePos {
                key,
                value: pos(span),
                quoted,
                single_line,
                leaf,
            },
        );
        path
    }

    /// The node at `path` or its nearest ancestor in the file, with the ancestor's depth.
    fn nearest(&self, path: &KeyPath) -> Option<(usize, &NodePos)> {
        let steps = path.steps();
        (0..=steps.len()).rev().find_map(|n| {
            self.nodes
                .get(&KeyPath::from(steps[..n].to_vec()))
                .map(|node| (n, node))
        })
    }

    /// `path` as the file spells it: a path below a scalar is the scalar's own, since a short
    /// form (`sort: "$x"` for `sort: {by: "$x"}`) has no key for the long form's parts.
    pub(crate) fn written(&self, path: &KeyPath) -> Option<KeyPath> {
        match self.nearest(path)? {
            (n, node) if node.leaf && n < path.steps().len() => {
                Some(KeyPath::from(path.steps()[..n].to_vec()))
            }
            _ => None,
        }
    }

    /// The location of `path`, or of its nearest ancestor that exists in the file.
    pub(crate) fn locate(&self, path: &KeyPath, target: Target) -> Option<Location> {
        let (n, node) = self.nearest(path)?;
        // Below a scalar is still that scalar: offsets count into its text.
        let exact = n == path.steps().len() || node.leaf;
        let at = match target {
            Target::Key if exact => node.key.unwrap_or(node.value),
            Target::Value { offset } if exact && node.single_line && offset > 0 => {
                let line = self.lines.get(node.value.line.checked_sub(1)?)?;
                let start_char = node.value.col + usize::from(node.quoted);
                // `offset` counts bytes of the scalar; assume the scalar is written verbatim.
                let start_byte = line
                    .char_indices()
                    .nth(start_char)
                    .map_or(line.len(), |(b, _)| b);
                let col = line.get(start_byte..).map_or(0, |rest| {
                    rest.char_indices().take_while(|(b, _)| *b < offset).count()
                });
                Pos {
                    line: node.value.line,
                    col: start_char + col,
                }
            }
            _ => node.value,
        };
        Some(Location {
            line: at.line,
            column: at.col + 1,
            // Quoted under diagnostics, which reach logs and the admin service's answers.
            line_text: crate::redact::line(self.lines.get(at.line.checked_sub(1)?)?),
        })
    }
}

fn pos(span: &Span) -> Pos {
    Pos {
        line: span.start.line(),
        col: span.start.col(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_values_and_offsets() {
        let text = "endpoints:\n  a:\n    data_sources:\n      - name: x\n        params: {id: \"$request.id\"}\n";
        let idx = PositionIndex::build(text);
        let p = KeyPath::root()
            .key("endpoints")
            .key("a")
            .key("data_sources")
            .index(0)
            .key("name");
        let loc = idx.locate(&p, Target::Value { offset: 0 }).unwrap();
        assert_eq!((loc.line, loc.column), (4, 15));
        let loc = idx.locate(&p, Target::Key).unwrap();
        assert_eq!((loc.line, loc.column), (4, 9));
        let id = KeyPath::root()
            .key("endpoints")
            .key("a")
            .key("data_sources")
            .index(0)
            .key("params")
            .key("id");
        let loc = idx.locate(&id, Target::Value { offset: 1 }).unwrap();
        assert_eq!((loc.line, loc.column), (5, 24));
        // Missing nodes fall back to the nearest ancestor; below a scalar, to the scalar as if
        // the path were its own (its key here).
        let loc = idx.locate(&id.key("nope"), Target::Key).unwrap();
        assert_eq!((loc.line, loc.column), (5, 18));
        assert_eq!(idx.written(&id.key("nope")), Some(id.clone()));
        assert_eq!(idx.written(&id), None);
        // Below a map that exists, a missing key keeps its path (a missing required key).
        let params = KeyPath::root()
            .key("endpoints")
            .key("a")
            .key("data_sources")
            .index(0)
            .key("params");
        assert_eq!(idx.written(&params.key("nope")), None);
    }

    #[test]
    fn a_short_form_is_located_at_its_scalar() {
        let text = "transform:\n  - sort: \"$item.nope\"\n";
        let idx = PositionIndex::build(text);
        let sort = KeyPath::root().key("transform").index(0).key("sort");
        let by = sort.key("by");
        assert_eq!(idx.written(&by), Some(sort));
        let loc = idx.locate(&by, Target::Value { offset: 6 }).unwrap();
        assert_eq!((loc.line, loc.column), (2, 18));
    }
}
