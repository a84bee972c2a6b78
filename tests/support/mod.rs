//! Helpers of the tgstack integration tests that know the model: load the reference model
//! with an overlay, render it, write its deploy-time secrets. The generic ones (daemons,
//! ports, psql, polling) are in the `testkit` crate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tgstack::model::{self, Model};
use tgstack::render;
use tgstack::tree::Tree;

/// Runs the tgstack binary in `cwd`: (exit code, stdout, stderr).
pub fn tgstack(args: &[&str], cwd: &Path) -> (i32, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tgstack"))
        .args(args)
        .current_dir(cwd)
        .env_remove("RUST_BACKTRACE")
        .env_remove("TGSTACK_MODEL")
        .output()
        .expect("run tgstack");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The root stack.toml with `overlay` (if not empty) merged over it.
pub fn load(overlay: &str) -> Model {
    let base = root().join("stack.toml");
    let text = std::fs::read_to_string(&base).expect("read stack.toml");
    let mut texts = vec![(base, text)];
    if !overlay.is_empty() {
        texts.push((PathBuf::from("overlay.toml"), overlay.to_string()));
    }
    model::load_texts(texts)
        .unwrap_or_else(|f| panic!("model does not load:\n{}", tgstack::report::human(&f)))
}

/// Renames the roles of the postgres service `service` to `<name>_<suffix>` and returns
/// the new names. Roles are cluster-wide: a test with its own never collides with another
/// running at the same time.
pub fn own_roles(model: &mut Model, service: &str, suffix: &str) -> Vec<String> {
    let pg = model
        .stack
        .services
        .get_mut(service)
        .and_then(|s| s.postgres.as_mut())
        .expect("reference model has a postgres service");
    pg.roles = std::mem::take(&mut pg.roles)
        .into_iter()
        .map(|(name, role)| (format!("{name}_{suffix}"), role))
        .collect();
    pg.roles.keys().cloned().collect()
}

/// The rendered tree of a model that must render.
pub fn render_tree(model: &Model) -> Tree {
    render::render(model, None)
        .unwrap_or_else(|f| panic!("render fails:\n{}", tgstack::report::human(&f)))
}

/// Renders the model into `dir` (as `tgstack render --out dir` would).
pub fn render_into(model: &Model, dir: &Path) {
    let rendered = tgstack::render(model, None)
        .unwrap_or_else(|f| panic!("model does not render:\n{}", tgstack::report::human(&f)));
    render::write::write_tree(&rendered.tree, dir).expect("write rendered tree");
}

/// Test values for every secret of the model, and the deploy-time files made from them.
pub fn write_secrets(model: &Model) -> BTreeMap<String, String> {
    let values: BTreeMap<String, String> = model
        .stack
        .secrets
        .keys()
        .map(|id| (id.clone(), testkit::secret_value(id)))
        .collect();
    let files = render::secrets::files(model, &values);
    render::secrets::write(Path::new(&model.stack.deploy.secrets_dir), &files)
        .expect("write secrets");
    values
}
