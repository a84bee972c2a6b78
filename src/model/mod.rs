//! The model: stack.toml typed, located and resolved.

pub mod alerting;
pub mod app;
pub mod json_schema;
pub mod kinds;
mod limits;
mod load;
mod monitoring;
pub mod native;
pub mod nginx;
pub mod paths;
pub mod placement;
pub mod schema_names;
pub mod secret_files;
pub mod text;
mod types;
pub mod units;

pub use load::{Model, load_files, load_texts, path_at};
pub use monitoring::*;
pub use types::*;
mod topology;
pub use topology::{Endpoint, Instance, PublishedPort, SentinelView, Unreachable};
