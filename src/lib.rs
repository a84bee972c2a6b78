//! tgstack: one declarative model (`stack.toml`) rendered into every file a production
//! stack needs, and checked for consistency before anything is deployed.
//!
//! The pipeline: [`model`] (load, locate, resolve) -> [`render`] (templates into a tree)
//! -> [`check`] (rules over the model, the rendered files and their consistency).

pub mod catalog;
pub mod check;
pub mod cli;
pub mod finding;
pub mod import;
pub mod model;
pub mod parallel;
mod pipeline;
pub mod plan;
pub mod render;
pub mod report;
pub mod source;
pub mod suggest;
pub mod tree;

pub use pipeline::{Against, Rendered, Report, render, validate};

/// The JSON Schema of stack.toml, derived from the model types.
pub fn schema_json() -> String {
    let schema = model::json_schema::document();
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
