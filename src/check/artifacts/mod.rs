//! Rules over the rendered files: each re-read in its own dialect and checked against the
//! model and the files it must agree with. They run over the tree on disk when there is
//! one, so hand edits are reported by the rule they break (with the file and line), not
//! only as drift.

pub mod compose;
pub mod data;
pub mod monitoring;
pub mod native;
pub mod parse;
pub mod yaml;

use crate::check::Ctx;
use crate::render::Tree;

/// Read access to a rendered tree.
pub struct Files<'a> {
    tree: &'a Tree,
}

impl<'a> Files<'a> {
    pub fn new(tree: &'a Tree) -> Self {
        Files { tree }
    }

    pub fn text(&self, path: &str) -> Option<&'a str> {
        self.tree
            .get(path)
            .and_then(|b| std::str::from_utf8(b).ok())
    }

    pub fn exists(&self, path: &str) -> bool {
        self.tree.contains_key(path)
    }

    /// A directory exists when some file lies below it.
    pub fn is_dir(&self, path: &str) -> bool {
        let prefix = format!("{}/", path.trim_end_matches('/'));
        self.tree.keys().any(|k| k.starts_with(&prefix))
    }

    pub fn paths(&self) -> impl Iterator<Item = &'a String> {
        self.tree.keys()
    }
}

/// Runs every artifact rule over `tree`.
pub fn run(cx: &mut Ctx<'_>, tree: &Tree) {
    let files = Files::new(tree);
    yaml::run(cx, &files);
    compose::run(cx, &files);
    compose::env_example(cx, &files);
    data::run(cx, &files);
    monitoring::run(cx, &files);
    native::run(cx, &files);
}
