//! `.env.example` (every secret variable, no values) and the effective model the
//! gateway containers read.

use minijinja::context;

use super::Output;
use crate::model::{Model, paths};

pub fn outputs(model: &Model) -> Vec<Output> {
    let stack = &model.stack;
    let secrets: Vec<_> = stack
        .secrets
        .iter()
        .map(|(id, s)| context! { id, env => &s.env, description => &s.description })
        .collect();
    // The merged model (overlays applied), for processes that read stack.toml at run time.
    let effective = toml::to_string_pretty(stack).unwrap_or_default();
    vec![
        Output::new(paths::ENV_EXAMPLE, "env.example.j2", context! { secrets }),
        Output::new(
            paths::EFFECTIVE_MODEL,
            "model.toml.j2",
            context! { model => effective },
        ),
    ]
}
