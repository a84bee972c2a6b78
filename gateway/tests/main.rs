//! Every integration test of tg-gateway, in one binary: one link and one process start
//! instead of one per file. Each module was a test target of its own before.

mod support;

mod api;
mod api_openapi;
mod api_timeout;
mod e2e_stack;
mod legacy;
mod pipeline;
mod read_cache;
mod session;
mod shutdown;
mod sql;
mod swarm_stack;
