//! The text of the model files and a map from model paths to byte spans in them.
//!
//! A model may come from several files (base + overlays). Every file is given a disjoint
//! range of "global" offsets, so a single `Range<usize>` identifies a file and a place in it.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One model file as read from disk.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
    /// Global offset of this file's first byte.
    pub base: usize,
    /// Byte offset of every line start, so a finding is located by binary search instead
    /// of counting newlines from the top of the file (many findings x a large overlay).
    line_starts: Vec<usize>,
}

/// All model files of one load, addressable by global offsets.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub files: Vec<SourceFile>,
}

/// A resolved place in a file, 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Location {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// Length of the marked text on that line, at least 1.
    #[serde(skip)]
    pub width: usize,
    /// The full text of the marked line, for caret excerpts.
    #[serde(skip)]
    pub line_text: String,
}

impl Sources {
    /// Adds a file and returns its global base offset.
    pub fn add(&mut self, path: &Path, text: String) -> usize {
        let base = self
            .files
            .last()
            .map(|f| f.base + f.text.len() + 1)
            .unwrap_or(0);
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        self.files.push(SourceFile {
            path: path.to_path_buf(),
            text,
            base,
            line_starts,
        });
        base
    }

    /// Resolves a global span to a file location.
    pub fn locate(&self, span: &Range<usize>) -> Option<Location> {
        let file = self
            .files
            .iter()
            .rev()
            .find(|f| span.start >= f.base && span.start <= f.base + f.text.len())?;
        let start = span.start - file.base;
        let end = (span.end.saturating_sub(file.base)).clamp(start, file.text.len());
        Some(locate_in(
            &file.path.display().to_string(),
            &file.text,
            &file.line_starts,
            start..end,
        ))
    }
}

/// Resolves a byte range of `text` (whose line starts are `line_starts`) to a
/// line/column location.
fn locate_in(file: &str, text: &str, line_starts: &[usize], span: Range<usize>) -> Location {
    let start = floor_char_boundary(text, span.start.min(text.len()));
    // Line starts at or before `start`; the first (offset 0) always is.
    let line = line_starts.partition_point(|&s| s <= start);
    let line_start = line_starts[line - 1];
    let line_end = text[start..]
        .find('\n')
        .map(|i| start + i)
        .unwrap_or(text.len());
    let column = text[line_start..start].chars().count() + 1;
    let end = floor_char_boundary(text, span.end.min(line_end).max(start));
    let width = text[start..end].chars().count().max(1);
    Location {
        file: file.to_string(),
        line,
        column,
        width,
        line_text: text[line_start..line_end]
            .trim_end_matches('\r')
            .to_string(),
    }
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Spans of every key and value of the merged model document, by path.
#[derive(Debug, Clone, Default)]
pub struct SpanTree {
    pub key: Option<Range<usize>>,
    pub value: Range<usize>,
    pub children: BTreeMap<String, SpanTree>,
    pub items: Vec<SpanTree>,
}

impl SpanTree {
    /// The node at `path`; array items are addressed by their decimal index.
    pub fn node(&self, path: &[String]) -> Option<&SpanTree> {
        let mut node = self;
        for segment in path {
            node = match node.children.get(segment) {
                Some(child) => child,
                None => node.items.get(segment.parse::<usize>().ok()?)?,
            };
        }
        Some(node)
    }

    /// The best span for `path`: the value if present, else the closest existing ancestor.
    pub fn span_for(&self, path: &[String]) -> Option<Range<usize>> {
        for len in (0..=path.len()).rev() {
            if let Some(node) = self.node(&path[..len]) {
                if len == path.len() {
                    return Some(node.value.clone());
                }
                // The path does not exist (a default was used): point at the parent's key.
                return node.key.clone().or_else(|| Some(node.value.clone()));
            }
        }
        None
    }

    /// The span of the key at `path` (falls back to the value span).
    pub fn key_span(&self, path: &[String]) -> Option<Range<usize>> {
        let node = self.node(path)?;
        node.key.clone().or_else(|| Some(node.value.clone()))
    }
}
