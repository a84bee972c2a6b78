//! The model: stack.toml typed, located and resolved.

mod load;
mod monitoring;
pub mod schema_names;
mod types;
pub mod units;

pub use load::{Model, load_files, load_texts, path_at};
pub use monitoring::*;
pub use types::*;
mod topology;
pub use topology::{Endpoint, Instance, PublishedPort, Unreachable};
