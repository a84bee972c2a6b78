//! Snapshots of the whole rendered tree of the fixture models. A config change is
//! reviewed as the diff of these snapshots (`cargo insta review`). The reference model's
//! tree is the committed generated/, held to the render by
//! `cli::reference_model_renders_validates_and_is_current`.

use std::path::PathBuf;

use crate::support::root;

fn render_text(files: Vec<(PathBuf, String)>) -> String {
    let model = tgstack::model::load_texts(files)
        .unwrap_or_else(|f| panic!("{}", tgstack::report::human(&f)));
    let rendered =
        tgstack::render(&model, None).unwrap_or_else(|f| panic!("{}", tgstack::report::human(&f)));
    // The whole tree is also clean under the validator's artifact rules.
    let report = tgstack::validate(&model, None, tgstack::Against::Rendered);
    assert!(
        !report.fails(false),
        "{}",
        tgstack::report::human(&report.findings)
    );
    rendered
        .tree
        .iter()
        .map(|(path, bytes)| format!("===== {path} =====\n{}", String::from_utf8_lossy(bytes)))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn fixture_model_trees() {
    insta::glob!("fixtures/models/*.toml", |path| {
        let text = std::fs::read_to_string(path).unwrap();
        let name = PathBuf::from(path.file_name().unwrap());
        let files = if name.to_string_lossy().ends_with(".overlay.toml") {
            let base = std::fs::read_to_string(root().join("stack.toml")).unwrap();
            vec![(PathBuf::from("stack.toml"), base), (name, text)]
        } else {
            vec![(name, text)]
        };
        insta::assert_snapshot!(render_text(files));
    });
}
