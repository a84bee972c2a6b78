//! Rules over the rendered files: each re-read in its own dialect and checked against the
//! model and the files it must agree with. They run over the tree on disk when there is
//! one, so hand edits are reported by the rule they break (with the file and line), not
//! only as drift.

pub mod compose;
pub mod data;
pub mod migrations;
pub mod monitoring;
pub mod nginx;
pub mod parse;
pub mod units;
pub mod yaml;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::OnceLock;

use serde_json::Value;

use crate::check::Ctx;
use crate::check::index::Index;
use crate::finding::Finding;
use crate::model::Model;
use crate::parallel::{self, Job};
use crate::tree::Tree;

/// Read access to a rendered tree. Each YAML file is parsed at most once per run, however
/// many rules read it (the compose file is read by four rule families).
#[derive(Debug)]
pub struct Files<'a> {
    tree: &'a Tree,
    yaml: BTreeMap<&'a str, OnceLock<Result<Value, String>>>,
}

impl<'a> Files<'a> {
    pub fn new(tree: &'a Tree) -> Self {
        let yaml = tree
            .keys()
            .filter(|p| p.ends_with(".yml") || p.ends_with(".yaml"))
            .map(|p| (p.as_str(), OnceLock::new()))
            .collect();
        Files { tree, yaml }
    }

    /// The parsed YAML file (duplicate keys are parse errors), or the parser's message.
    pub fn yaml(&self, path: &str) -> Option<&Result<Value, String>> {
        let text = self.text(path)?;
        let cell = self.yaml.get(path)?;
        Some(cell.get_or_init(|| serde_saphyr::from_str::<Value>(text).map_err(|e| e.to_string())))
    }

    /// Parses every YAML file now (each is parsed once per run anyway): called where a
    /// thread has nothing else to do, such as while the model loads.
    pub fn parse_yaml(&self) {
        for path in self.yaml.keys() {
            let _ = self.yaml(path);
        }
    }

    /// The tree read.
    pub fn tree(&self) -> &'a Tree {
        self.tree
    }

    /// The parsed YAML file, when it parses.
    pub fn yaml_value(&self, path: &str) -> Option<&Value> {
        self.yaml(path)?.as_ref().ok()
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
        self.under(&prefix).next().is_some()
    }

    pub fn paths(&self) -> impl Iterator<Item = &'a String> {
        self.tree.keys()
    }

    /// The paths starting with `prefix`, found in the sorted tree without a scan.
    pub fn under<'p>(&self, prefix: &'p str) -> impl Iterator<Item = &'a String> + use<'a, 'p> {
        self.tree
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .map(|(path, _)| path)
            .take_while(move |path| path.starts_with(prefix))
    }
}

/// Runs every artifact rule family over `files`, each with its own findings, on the
/// machine's cores. Findings come back in family order, whatever the schedule.
pub fn run(model: &Model, files: &Files<'_>) -> Vec<Finding> {
    let index = Index::new(&model.stack);
    let index = &index;
    let family = |rules: &(dyn Fn(&mut Ctx<'_>) + Sync)| {
        let mut cx = Ctx::new(model);
        rules(&mut cx);
        cx.findings
    };
    let families: [&Job<'_, Vec<Finding>>; 8] = [
        &|| family(&|cx| yaml::run(cx, files)),
        &|| family(&|cx| compose::run(cx, files, index)),
        &|| family(&|cx| compose::env_example(cx, files)),
        &|| family(&|cx| data::run(cx, files)),
        &|| family(&|cx| monitoring::run(cx, files, index)),
        &|| family(&|cx| migrations::run(cx, files, index)),
        &|| family(&|cx| units::run(cx, files, index)),
        &|| family(&|cx| nginx::run(cx, files)),
    ];
    parallel::in_order(&families)
        .into_iter()
        .flatten()
        .collect()
}
