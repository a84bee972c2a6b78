//! Every integration test of tgstack, in one binary: one link and one process start
//! instead of one per file. Each module was a test target of its own before.

mod support;

mod architecture;
mod audit;
mod cli;
mod data_layer;
mod dialects;
mod getting_started;
mod import;
mod loader_robustness;
mod monitoring;
mod native;
mod nginx;
mod ops;
mod rules;
mod snapshots_render;
mod sql;
mod swarm;
