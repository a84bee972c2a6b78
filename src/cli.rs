//! The command line: parse arguments, run one command, map the outcome to an exit code
//! (0 clean, 1 findings or stale output, 2 usage or I/O error).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::Against;
use crate::check;
use crate::finding::Finding;
use crate::model::{self, Model};
use crate::plan::Plan;
use crate::render::{self, write};
use crate::report;
use crate::tree::{self, Tree};

#[derive(Parser, Debug)]
#[command(
    name = "tgstack",
    version,
    about = "Render and validate a whole stack from one stack.toml"
)]
pub struct Cli {
    /// Print only findings and errors: no progress or success lines.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Colour findings: `auto` (when printing to a terminal and NO_COLOR is not set),
    /// `always` or `never`.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true)]
    pub color: ColorChoice,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Model file; repeat to merge overlays over it in order (`-f stack.toml -f overlays/test.toml`);
    /// `-` reads it from standard input. Default: `TGSTACK_MODEL` (files separated by
    /// commas, as tg-gateway reads it), else the nearest `stack.toml` in this directory or
    /// a parent.
    #[arg(short = 'f', long = "file")]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// Set from `--color` and NO_COLOR: whether findings on stdout are coloured.
static COLOR: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn color_enabled(choice: ColorChoice) -> bool {
    use std::io::IsTerminal as _;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => !no_color && std::io::stdout().is_terminal(),
    }
}

/// The environment variable naming the model files when no `-f` is given.
pub const MODEL_ENV: &str = "TGSTACK_MODEL";

impl ModelArgs {
    /// The model files: `-f` as given, else `TGSTACK_MODEL`, else the nearest `stack.toml`
    /// upwards from the working directory; an error saying where it looked when none is.
    pub fn resolved(&self) -> Result<Vec<PathBuf>, String> {
        if !self.files.is_empty() {
            return Ok(self.files.clone());
        }
        if let Ok(list) = std::env::var(MODEL_ENV) {
            let files: Vec<PathBuf> = list
                .split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .map(PathBuf::from)
                .collect();
            if !files.is_empty() {
                return Ok(files);
            }
        }
        let here = std::env::current_dir().unwrap_or_default();
        let nearest = here
            .ancestors()
            .map(|dir| dir.join("stack.toml"))
            .find(|candidate| candidate.is_file())
            .map(|found| {
                // Relative to here when below it, so messages stay short.
                found
                    .strip_prefix(&here)
                    .map(Path::to_path_buf)
                    .unwrap_or(found)
            })
            .ok_or_else(|| {
                format!(
                    "no stack.toml in {} or any directory above it: pass `-f FILE` or set {MODEL_ENV}",
                    here.display()
                )
            })?;
        Ok(vec![nearest])
    }
}

/// The model files of a command, or its exit code (2) after saying why there are none.
fn model_files(model: &ModelArgs) -> Result<Vec<PathBuf>, i32> {
    model.resolved().map_err(|message| {
        eprintln!("error: {message}");
        2
    })
}

/// Set by `-q`: progress and success lines are not printed.
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A progress or success line on stderr, unless `-q`.
macro_rules! progress {
    ($($arg:tt)*) => {
        if !QUIET.load(std::sync::atomic::Ordering::Relaxed) {
            eprintln!($($arg)*);
        }
    };
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Render every artifact of the model into a directory (default `generated/` next to the model).
    Render {
        #[command(flatten)]
        model: ModelArgs,
        /// Output directory.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Do not write: exit 1 with a unified diff if the output directory is stale.
        #[arg(long, conflicts_with = "with_secrets")]
        check: bool,
        /// Also write the secret-bearing files into the model's deploy.secrets_dir, reading
        /// each secret from its environment variable. Requires --out.
        #[arg(long, requires = "out")]
        with_secrets: bool,
        /// Use templates from this directory instead of the built-in ones.
        #[arg(long)]
        templates: Option<PathBuf>,
    },
    /// Show what `render` would change in the output directory, and what a deploy must then
    /// restart, reload, recreate, migrate or import; writes nothing.
    Plan {
        #[command(flatten)]
        model: ModelArgs,
        /// The rendered tree to compare with (default `generated/` next to the model).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also print a unified diff per file (secrets masked).
        #[arg(long)]
        diff: bool,
        /// Exit 0 when nothing would change, 2 when something would, 1 on errors (as
        /// `terraform plan -detailed-exitcode`).
        #[arg(long)]
        detailed_exitcode: bool,
        /// Use templates from this directory instead of the built-in ones.
        #[arg(long)]
        templates: Option<PathBuf>,
    },
    /// Compare two effective models and their rendered trees (two environments, say):
    /// `tgstack diff -f stack.toml -f prod.toml --against stack.toml --against dev.toml`.
    /// Exit 0 when they render the same, 1 when not, 2 on errors (as diff).
    Diff {
        #[command(flatten)]
        model: ModelArgs,
        /// The other model's files, in merge order (repeat).
        #[arg(long, required = true)]
        against: Vec<PathBuf>,
        /// Only the files and the deploy steps, no unified diffs.
        #[arg(long)]
        stat: bool,
        /// Use templates from this directory instead of the built-in ones.
        #[arg(long)]
        templates: Option<PathBuf>,
    },
    /// Check the model and the rendered tree; exit 1 on findings.
    Validate {
        #[command(flatten)]
        model: ModelArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Treat warnings as errors.
        #[arg(long)]
        deny_warnings: bool,
        /// The rendered tree to check against the model (default `generated/` next to the model).
        #[arg(long)]
        generated: Option<PathBuf>,
        /// Use templates from this directory instead of the built-in ones.
        #[arg(long)]
        templates: Option<PathBuf>,
    },
    /// Check a directory of hand-written stack files with no model: every dialect rule and
    /// every cross-file rule that needs no model; exit 1 on findings.
    Audit {
        /// The directory (compose files, configs, rules, units, SQL, scripts).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Treat warnings as errors.
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Read a hand-written stack (compose files, configs, rules, units, SQL) into a model:
    /// `tgstack import DIR > stack.toml`. Guessed values carry a `# guessed:` comment; what
    /// the model cannot say is listed at the end. No secret value is copied.
    Import {
        /// The directory of the stack.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Write the model to this file (it must not exist yet) instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also render the imported model and compare it with the original files: every
        /// difference with its reason (a model default, a rule, or what was not imported).
        #[arg(long)]
        compare: bool,
    },
    /// Print the JSON Schema of stack.toml.
    Schema {
        /// As the Markdown reference of every key (docs/model.md).
        #[arg(long)]
        markdown: bool,
    },
    /// List every rule.
    Rules {
        /// As JSON.
        #[arg(long, conflicts_with = "markdown")]
        json: bool,
        /// As the Markdown of docs/rules.md (with the incident coverage).
        #[arg(long)]
        markdown: bool,
    },
    /// Explain one rule, with a bad and a good example.
    Explain {
        /// Rule ID or name, e.g. TG203 or duplicate-host-port.
        id: String,
    },
    /// Print a shell's completion script, e.g. `tgstack completions bash > /etc/bash_completion.d/tgstack`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `tgstack man > /usr/local/share/man/man1/tgstack.1`.
    Man,
    /// Print the CPU/memory budget table per layer and service.
    Budget {
        #[command(flatten)]
        model: ModelArgs,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Human,
    /// Documented in docs/validate-json.md.
    Json,
    Sarif,
    /// GitHub Actions workflow commands: each finding shown on its line in the run.
    Github,
}

/// Writes formatted text to stdout (see [`write_out`]).
macro_rules! out {
    ($($arg:tt)*) => { write_out(&format!($($arg)*)) };
}

/// [`out!`] with a newline.
macro_rules! outln {
    ($($arg:tt)*) => { write_out(&format!("{}\n", format!($($arg)*))) };
}

/// Writes to stdout. A reader that went away (`tgstack rules --json | head`) ends the
/// process quietly with SIGPIPE's status, 141, instead of a panic.
fn write_out(text: &str) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("error: cannot write the output: {error}");
        std::process::exit(2);
    }
}

/// Runs the CLI with the process arguments; returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() { 2 } else { 0 };
            let _ = error.print();
            return code;
        }
    };
    run(cli)
}

pub fn run(cli: Cli) -> i32 {
    QUIET.store(cli.quiet, std::sync::atomic::Ordering::Relaxed);
    COLOR.store(
        color_enabled(cli.color),
        std::sync::atomic::Ordering::Relaxed,
    );
    match cli.command {
        Command::Render {
            model,
            out,
            check,
            with_secrets,
            templates,
        } => match model_files(&model) {
            Ok(files) => render_command(&files, out, check, with_secrets, templates.as_deref()),
            Err(code) => code,
        },
        Command::Validate {
            model,
            format,
            deny_warnings,
            generated,
            templates,
        } => match model_files(&model) {
            Ok(files) => validate_command(
                &files,
                format,
                deny_warnings,
                generated,
                templates.as_deref(),
            ),
            Err(code) => code,
        },
        Command::Audit {
            dir,
            format,
            deny_warnings,
        } => audit_command(&dir, format, deny_warnings),
        Command::Import { dir, out, compare } => import_command(&dir, out.as_deref(), compare),
        Command::Plan {
            model,
            out,
            diff,
            detailed_exitcode,
            templates,
        } => match model_files(&model) {
            Ok(files) => plan_command(&files, out, diff, detailed_exitcode, templates.as_deref()),
            Err(code) => code,
        },
        Command::Diff {
            model,
            against,
            stat,
            templates,
        } => match model_files(&model) {
            Ok(files) => diff_command(&files, &against, stat, templates.as_deref()),
            Err(code) => code,
        },
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "tgstack", &mut script);
            out!("{}", String::from_utf8_lossy(&script));
            0
        }
        Command::Man => {
            let mut page = Vec::new();
            match clap_mangen::Man::new(Cli::command()).render(&mut page) {
                Ok(()) => {
                    out!("{}", String::from_utf8_lossy(&page));
                    0
                }
                Err(error) => {
                    eprintln!("error: cannot write the manual page: {error}");
                    2
                }
            }
        }
        Command::Schema { markdown } => {
            if markdown {
                out!("{}", model::json_schema::markdown());
            } else {
                out!("{}", crate::schema_json());
            }
            0
        }
        Command::Rules { json, markdown } => {
            if markdown {
                out!("{}", check::catalog::markdown());
            } else if json {
                outln!("{}", report::rules_json());
            } else {
                for rule in check::catalog::RULES {
                    outln!(
                        "{}  {:<8} {:<32} {}",
                        rule.id,
                        rule.severity.as_str(),
                        rule.name,
                        rule.summary
                    );
                }
            }
            0
        }
        Command::Explain { id } => {
            let by_name = check::catalog::RULES
                .iter()
                .find(|r| r.name.eq_ignore_ascii_case(&id));
            match check::catalog::rule(&id.to_ascii_uppercase()).or(by_name) {
                Some(rule) => {
                    out!("{}", explain(rule));
                    0
                }
                None => {
                    // Suggest among IDs for something shaped like one, else among names.
                    let looks_like_id =
                        id.len() == 5 && id.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("TG"));
                    let suggestion = if looks_like_id {
                        let ids = check::catalog::RULES.iter().map(|r| r.id);
                        crate::suggest::did_you_mean(&id.to_ascii_uppercase(), ids)
                    } else {
                        let names = check::catalog::RULES.iter().map(|r| r.name);
                        crate::suggest::did_you_mean(&id.to_ascii_lowercase(), names)
                    };
                    eprintln!("error: unknown rule `{id}` {suggestion}");
                    2
                }
            }
        }
        Command::Budget { model } => match model_files(&model).and_then(|files| load(&files)) {
            Ok(model) => {
                out!("{}", budget_table(&model));
                0
            }
            Err(code) => code,
        },
    }
}

/// The explanation of a rule as printed by `tgstack explain`.
pub fn explain(rule: &check::catalog::Rule) -> String {
    let mut text = format!(
        "{} {} ({})\n\n{}\n\n{}\n",
        rule.id,
        rule.name,
        rule.severity.as_str(),
        rule.summary,
        rule.explanation
    );
    if !rule.incidents.is_empty() {
        let list: Vec<String> = rule.incidents.iter().map(|i| i.to_string()).collect();
        text.push_str(&format!("\nIncidents: {}\n", list.join(", ")));
    }
    text.push_str(&format!(
        "\nBad:\n{}\n\nGood:\n{}\n",
        indent(rule.bad),
        indent(rule.good)
    ));
    text
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Findings go to stdout in every command (errors of the tool itself to stderr), so
/// `tgstack render | grep TG203` and `tgstack validate > report` both hold them.
fn print_findings(findings: &[Finding]) {
    let color = COLOR.load(std::sync::atomic::Ordering::Relaxed);
    out!("{}", report::human_styled(findings, color));
}

/// Loads the model; on failure prints the findings and returns the exit code.
fn load(files: &[PathBuf]) -> Result<Model, i32> {
    match model::load_files(files) {
        Ok(model) => Ok(model),
        Err(findings) => {
            print_findings(&findings);
            let io = findings.iter().all(|f| f.rule == "TG000");
            Err(if io { 2 } else { 1 })
        }
    }
}

/// `generated/` next to the first model file.
fn default_out(files: &[PathBuf]) -> PathBuf {
    files
        .first()
        .and_then(|f| f.parent())
        .map(|dir| dir.join("generated"))
        .unwrap_or_else(|| PathBuf::from("generated"))
}

/// Loads, checks and renders; prints findings. Returns the model and tree, or an exit code.
fn prepare(
    files: &[PathBuf],
    templates: Option<&Path>,
) -> Result<(Model, Tree, Vec<Finding>), i32> {
    let model = load(files)?;
    match crate::render(&model, templates) {
        Ok(rendered) => Ok((model, rendered.tree, rendered.warnings)),
        Err(findings) => {
            print_findings(&findings);
            Err(1)
        }
    }
}

fn plan_command(
    files: &[PathBuf],
    out: Option<PathBuf>,
    diff: bool,
    detailed_exitcode: bool,
    templates: Option<&Path>,
) -> i32 {
    // Errors are 1 either way: with --detailed-exitcode, 2 means "changes".
    let (model, tree, warnings) = match prepare(files, templates) {
        Ok(prepared) => prepared,
        Err(_) => return 1,
    };
    if !warnings.is_empty() {
        print_findings(&warnings);
    }
    let out = out.unwrap_or_else(|| default_out(files));
    let actual = match tree::read_tree(&out) {
        Ok(actual) => actual,
        Err(error) => {
            eprintln!("error: cannot read {}: {error}", out.display());
            return 1;
        }
    };
    let plan = Plan::new(&model, &tree, &actual);
    if !plan.has_changes() {
        outln!("{}: no changes ({} files)", out.display(), plan.unchanged);
        return 0;
    }
    outln!("{}: {}", out.display(), plan.summary());
    out!("{}", plan.report());
    if diff {
        out!(
            "\n{}",
            tree::unified_diff(&out.display().to_string(), &tree, &actual, &plan.drift)
        );
    }
    if detailed_exitcode { 2 } else { 0 }
}

fn diff_command(
    files: &[PathBuf],
    against: &[PathBuf],
    stat: bool,
    templates: Option<&Path>,
) -> i32 {
    let Ok((model, tree, _)) = prepare(files, templates) else {
        return 2;
    };
    let Ok((_, other, _)) = prepare(against, templates) else {
        return 2;
    };
    let name = |list: &[PathBuf]| {
        list.iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(" + ")
    };
    // Read as going from `against` to the model: what deploying the model over the other
    // environment's tree would change.
    let plan = Plan::new(&model, &tree, &other);
    if !plan.has_changes() {
        outln!(
            "{} and {} render the same ({} files)",
            name(files),
            name(against),
            tree.len()
        );
        return 0;
    }
    outln!("{} -> {}: {}", name(against), name(files), plan.summary());
    out!("{}", plan.report());
    if !stat {
        out!(
            "\n{}",
            tree::unified_diff("generated", &tree, &other, &plan.drift)
        );
    }
    1
}

fn render_command(
    files: &[PathBuf],
    out: Option<PathBuf>,
    check_only: bool,
    with_secrets: bool,
    templates: Option<&Path>,
) -> i32 {
    let (model, tree, warnings) = match prepare(files, templates) {
        Ok(prepared) => prepared,
        Err(code) => return code,
    };
    if !warnings.is_empty() {
        print_findings(&warnings);
    }
    for replaced in &model.replaced {
        eprintln!(
            "note: {} replaces `{}` ({} entries -> {}); to add to them instead, write `append = [\"{}\"]` in it",
            replaced.overlay.display(),
            replaced.path,
            replaced.before,
            replaced.after,
            replaced.path
        );
    }
    let out = out.unwrap_or_else(|| default_out(files));
    if check_only {
        let actual = match tree::read_tree(&out) {
            Ok(actual) => actual,
            Err(error) => {
                eprintln!("error: cannot read {}: {error}", out.display());
                return 2;
            }
        };
        let drift = tree::compare(&tree, &actual);
        if drift.is_empty() {
            progress!("{} is up to date ({} files)", out.display(), tree.len());
            return 0;
        }
        out!(
            "{}",
            tree::unified_diff(&out.display().to_string(), &tree, &actual, &drift)
        );
        let model_args: Vec<String> = files
            .iter()
            .map(|f| format!("-f {}", f.display()))
            .collect();
        // Files tgstack did not write stop a render (it never deletes them): say so now.
        let foreign = write::foreign_entries(&out).unwrap_or_default();
        let first = if foreign.is_empty() {
            String::new()
        } else {
            format!(
                "move away {} (tgstack did not write them), then ",
                foreign.join(", ")
            )
        };
        eprintln!(
            "error: {} is stale ({} file(s) differ); {first}run `tgstack render {} --out {}` and commit the result",
            out.display(),
            drift.len(),
            model_args.join(" "),
            out.display()
        );
        return 1;
    }
    // Render replaces `out` whole: only a tree tgstack wrote (its MANIFEST lists every
    // file), an empty directory or nothing. Checked before anything is written.
    if let Some(code) = refuse_foreign_out(&out) {
        return code;
    }
    let previous = match tree::read_tree(&out) {
        Ok(previous) => previous,
        Err(error) => {
            eprintln!("error: cannot read {}: {error}", out.display());
            return 2;
        }
    };
    let plan = Plan::new(&model, &tree, &previous);
    // Secrets are resolved before anything is written, so a missing variable changes nothing.
    let secret_files = if with_secrets {
        let lookup = |var: &str| std::env::var(var).ok();
        match render::secrets::resolve(&model.stack, &lookup) {
            Ok(values) => Some(render::secrets::files(&model, &values)),
            Err(findings) => {
                let located: Vec<Finding> = findings
                    .into_iter()
                    .map(|f| locate_key(&model, f))
                    .collect();
                print_findings(&located);
                return 1;
            }
        }
    } else {
        None
    };
    if let Some(files) = &secret_files {
        let secrets_dir = PathBuf::from(&model.stack.deploy.secrets_dir);
        if let (Ok(a), Ok(b)) = (absolute(&secrets_dir), absolute(&out))
            && a.starts_with(&b)
        {
            eprintln!(
                "error: deploy.secrets_dir {} is inside the output directory {}; secrets never go into the rendered tree",
                secrets_dir.display(),
                out.display()
            );
            return 1;
        }
        if let Err(error) = render::secrets::write(&secrets_dir, files) {
            eprintln!(
                "error: cannot write secrets to {}: {error}",
                secrets_dir.display()
            );
            return 2;
        }
    }
    if !plan.has_changes() {
        progress!(
            "{} is up to date ({} files): nothing written",
            out.display(),
            tree.len()
        );
    } else {
        if let Err(error) = write::write_tree_over(&tree, &out, &previous) {
            eprintln!(
                "error: cannot write {}: {error} (the previous tree is unchanged)",
                out.display()
            );
            return 2;
        }
        if plan.is_first() {
            progress!("rendered {} files into {}", tree.len(), out.display());
        } else {
            progress!("rendered {}: {}", out.display(), plan.done());
            if !QUIET.load(std::sync::atomic::Ordering::Relaxed) {
                eprint!("{}", plan.report());
            }
        }
    }
    if let Some(files) = secret_files {
        progress!(
            "wrote {} secret file(s) into {} (mode 0600)",
            files.len(),
            model.stack.deploy.secrets_dir
        );
    }
    0
}

/// An exit code when `out` holds anything tgstack did not write (1) or cannot be read (2).
fn refuse_foreign_out(out: &Path) -> Option<i32> {
    if out.exists() && !out.is_dir() {
        eprintln!(
            "error: cannot render into {}: it exists and is not a directory",
            out.display()
        );
        return Some(1);
    }
    match write::foreign_entries(out) {
        Ok(foreign) if foreign.is_empty() => None,
        Ok(foreign) => {
            const SHOWN: usize = 5;
            let mut named: Vec<&str> = foreign.iter().take(SHOWN).map(String::as_str).collect();
            if foreign.len() > SHOWN {
                named.push("...");
            }
            eprintln!(
                "error: refusing to render into {}: it holds {} entr{} tgstack did not write \
                 (not in its MANIFEST): {}; render into a new or empty directory, or move them away",
                out.display(),
                foreign.len(),
                if foreign.len() == 1 { "y" } else { "ies" },
                named.join(", ")
            );
            Some(1)
        }
        Err(error) => {
            eprintln!("error: cannot read {}: {error}", out.display());
            Some(2)
        }
    }
}

fn absolute(path: &Path) -> std::io::Result<PathBuf> {
    std::path::absolute(path)
}

fn locate_key(model: &Model, finding: Finding) -> Finding {
    let segments = check::split_path(&finding.path);
    let finding = match model.spans.span_for(&segments) {
        Some(span) => finding.with_span(span),
        None => finding,
    };
    finding.locate(&model.sources, &model.redactions)
}

fn validate_command(
    files: &[PathBuf],
    format: Format,
    deny_warnings: bool,
    generated: Option<PathBuf>,
    templates: Option<&Path>,
) -> i32 {
    let dir = generated.unwrap_or_else(|| default_out(files));
    // The tree on disk is read, and its YAML parsed, while the model loads: neither needs
    // the other. The tree lives outside the threads so the parsed files can borrow it.
    let read = OnceLock::new();
    let (loaded, on_disk) = std::thread::scope(|scope| {
        let on_disk = scope.spawn(|| {
            let tree = read.get_or_init(|| tree::read_tree(&dir)).as_ref()?;
            let files = check::Files::new(tree);
            files.parse_yaml();
            Ok::<_, &std::io::Error>(files)
        });
        let loaded = model::load_files(files);
        let on_disk = on_disk
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (loaded, on_disk)
    });
    let model = match loaded {
        Ok(model) => model,
        Err(findings) => {
            emit(&findings, format, &sarif_base(files, &dir));
            return if findings.iter().all(|f| f.rule == "TG000") {
                2
            } else {
                1
            };
        }
    };
    let on_disk = match on_disk {
        Ok(on_disk) => on_disk,
        Err(error) => {
            emit(
                &[Finding::io(format!(
                    "cannot read {}: {error}",
                    dir.display()
                ))],
                format,
                &sarif_base(files, &dir),
            );
            return 2;
        }
    };
    let report = crate::validate(
        &model,
        templates,
        Against::Disk {
            dir: &dir,
            files: &on_disk,
        },
    );
    emit(&report.findings, format, &sarif_base(files, &dir));
    // The process ends here: freeing a large model and tree piece by piece only costs time.
    std::mem::forget(on_disk);
    std::mem::forget(model);
    std::mem::forget(read);
    if report.fails(deny_warnings) { 1 } else { 0 }
}

/// `tgstack audit DIR`: exit 2 when the directory cannot be read, 1 on findings (errors, or
/// warnings with --deny-warnings), else 0.
fn audit_command(dir: &Path, format: Format, deny_warnings: bool) -> i32 {
    let base = report::SarifBase::find(Path::new("."), dir);
    let findings = match check::audit::audit(dir) {
        Ok(findings) => findings,
        Err(error) => {
            emit(
                &[Finding::io(format!(
                    "cannot read {}: {error}",
                    dir.display()
                ))],
                format,
                &base,
            );
            return 2;
        }
    };
    emit(&findings, format, &base);
    let fails = findings.iter().any(|f| f.is_error() || deny_warnings);
    if fails { 1 } else { 0 }
}

fn import_command(dir: &Path, out: Option<&Path>, compare: bool) -> i32 {
    if !dir.is_dir() {
        eprintln!("error: {}: not a directory", dir.display());
        return 1;
    }
    let imported = match crate::import::import(dir) {
        Ok(imported) => imported,
        Err(error) => {
            eprintln!("error: cannot read {}: {error}", dir.display());
            return 1;
        }
    };
    match out {
        Some(path) => {
            // create_new: never through a symlink, never over a file (even one that
            // appears between a check and the write).
            let written = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .and_then(|mut file| {
                    std::io::Write::write_all(&mut file, imported.toml.as_bytes())
                });
            if let Err(error) = written {
                let why = if error.kind() == std::io::ErrorKind::AlreadyExists {
                    "exists; tgstack import writes a new file only".to_owned()
                } else {
                    error.to_string()
                };
                eprintln!("error: cannot write {}: {why}", path.display());
                return 1;
            }
        }
        None => out!("{}", imported.toml),
    }
    progress!(
        "imported {}: {} guessed values (`# guessed:`), {} things not represented (listed at the end)",
        dir.display(),
        imported.guesses,
        imported.unrepresented.len()
    );
    if compare {
        return compare_import(dir, &imported);
    }
    0
}

/// Renders the imported model and explains how it differs from the original files.
fn compare_import(dir: &Path, imported: &crate::import::Imported) -> i32 {
    let texts = vec![(dir.join("stack.toml"), imported.toml.clone())];
    let model = match crate::model::load_texts(texts) {
        Ok(model) => model,
        Err(findings) => {
            eprintln!("the imported model does not load; fix it before comparing:");
            eprint!("{}", report::human(&findings));
            return 1;
        }
    };
    let rendered = match crate::render(&model, None) {
        Ok(rendered) => rendered.tree,
        Err(findings) => {
            eprintln!("the imported model does not render; fix it before comparing:");
            eprint!("{}", report::human(&findings));
            return 1;
        }
    };
    let original = match crate::tree::read_tree(dir) {
        Ok(tree) => tree,
        Err(error) => {
            eprintln!("error: cannot read {}: {error}", dir.display());
            return 1;
        }
    };
    eprint!("{}", crate::import::compare(&original, &rendered, imported));
    0
}

/// SARIF paths are relative to the repository that holds the model.
fn sarif_base(files: &[PathBuf], generated: &Path) -> report::SarifBase {
    let model_dir = files
        .first()
        .and_then(|f| f.parent())
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    report::SarifBase::find(model_dir, generated)
}

fn emit(findings: &[Finding], format: Format, base: &report::SarifBase) {
    match format {
        Format::Human => {
            if findings.is_empty() {
                progress!("no findings");
            } else {
                print_findings(findings);
            }
        }
        Format::Json => outln!("{}", report::json(findings)),
        Format::Sarif => outln!("{}", report::sarif(findings, base)),
        Format::Github => out!("{}", report::github(findings, base)),
    }
}

/// The budget table per layer and service, against the host.
pub fn budget_table(model: &Model) -> String {
    let stack = &model.stack;
    let mut rows = Vec::new();
    let mut layers: std::collections::BTreeMap<&str, (f64, u64)> =
        std::collections::BTreeMap::new();
    for (name, service) in &stack.services {
        let (cpus, memory) = stack.cost(name, service);
        let layer = if service.deploy == model::Deploy::Native {
            "native"
        } else {
            service.kind.layer()
        };
        let entry = layers.entry(layer).or_default();
        entry.0 += cpus;
        entry.1 += memory;
        let instances = stack.instances(name, service).len();
        let ports: Vec<String> = stack
            .published_ports()
            .into_iter()
            .filter(|p| &p.service == name)
            .map(|p| format!("{}->{}", p.host_port, p.container_port))
            .collect();
        rows.push(format!(
            "| {name} | {} | {layer} | {} | {instances} | {cpus:.2} | {} MiB | {} |",
            service.kind.as_str(),
            match service.deploy {
                model::Deploy::Container => "container",
                model::Deploy::Native => "native",
            },
            memory >> 20,
            if ports.is_empty() {
                "-".to_string()
            } else {
                ports.join(", ")
            }
        ));
    }
    let mut text = String::from(
        "| service | kind | layer | deploy | instances | CPU | memory | host ports |\n|---|---|---|---|---|---|---|---|\n",
    );
    for row in rows {
        text.push_str(&row);
        text.push('\n');
    }
    let (total_cpu, total_mem) = layers
        .values()
        .fold((0.0, 0), |acc, v| (acc.0 + v.0, acc.1 + v.1));
    text.push('\n');
    for (layer, (cpus, memory)) in &layers {
        text.push_str(&format!("{layer}: {cpus:.2} CPU, {} MiB\n", memory >> 20));
    }
    text.push_str(&format!(
        "total: {total_cpu:.2} CPU of {}, {} MiB of {} MiB\n",
        stack.host.cpus,
        total_mem >> 20,
        stack.host.memory.mebibytes()
    ));
    text
}
