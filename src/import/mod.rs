//! `tgstack import [DIR]`: a hand-written stack read back into a `stack.toml`.
//!
//! The files are found and tied to their services as the audit finds them (compose bind
//! mounts, units); each service's kind comes from its image or program, and its settings
//! from the config files it reads. A value that had to be guessed carries a comment that
//! says so; what the model cannot say is listed at the end of the document. Secrets are
//! never copied: a literal credential becomes a `[secrets]` entry read from the
//! environment at deploy time.

mod compare;
mod data;
mod draft;
mod monitoring;
mod read;
mod secrets;
mod services;

use std::path::Path;

use crate::check::audit::{Audited, FileKind, deployment::Deployment, discover};
use draft::Table;
use secrets::Secrets;
use services::Found;

/// The model an import wrote, and what it could not carry.
pub struct Imported {
    /// The `stack.toml` text, guesses commented, the unrepresentable listed at the end.
    pub toml: String,
    /// Values that had to be guessed (each a `# guessed:` comment).
    pub guesses: usize,
    /// What the hand-written files say that the model cannot.
    pub unrepresented: Vec<String>,
}

/// Reads the stack below `dir` into a model.
pub fn import(dir: &Path) -> std::io::Result<Imported> {
    let files = discover::read(dir)?;
    let deployment = Deployment::new(dir, &files);
    let source = Source::new(dir, &files, &deployment);
    let mut import = Import {
        source: &source,
        root: Table::default(),
        secrets: Secrets::read(&source),
        unrepresented: Vec::new(),
    };
    import.run();
    let Import {
        mut root,
        secrets,
        mut unrepresented,
        ..
    } = import;
    secrets.write(root.table("secrets"));
    unrepresented.sort();
    unrepresented.dedup();
    let body = root.to_toml();
    let guesses = body.matches("  # guessed: ").count();
    Ok(Imported {
        toml: document(dir, &body, &unrepresented),
        guesses,
        unrepresented,
    })
}

/// The header, the model, and the list of what it leaves out.
fn document(dir: &Path, body: &str, unrepresented: &[String]) -> String {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    let mut text = format!(
        "# imported by `tgstack import` from {name}/: review every `# guessed:` value, then\n\
         # `tgstack render` and compare with the original files (`tgstack import --compare`).\n\n"
    );
    text.push_str(body);
    if !unrepresented.is_empty() {
        text.push_str("\n# Not represented in the model (kept out of the rendered stack):\n");
        for item in unrepresented {
            text.push_str(&format!("# - {}\n", item.replace('\n', " ")));
        }
    }
    text
}

/// The files of the imported directory, as the audit sees them.
pub struct Source<'a> {
    pub dir: &'a Path,
    pub files: &'a [Audited],
    pub deployment: &'a Deployment<'a>,
}

impl<'a> Source<'a> {
    fn new(dir: &'a Path, files: &'a [Audited], deployment: &'a Deployment<'a>) -> Self {
        Source {
            dir,
            files,
            deployment,
        }
    }

    /// The file at `rel`, when the audit found it.
    pub fn file(&self, rel: &str) -> Option<&'a Audited> {
        self.files.iter().find(|f| f.rel == rel)
    }

    /// Files of `kind`.
    pub fn of_kind(&self, kind: FileKind) -> impl Iterator<Item = &'a Audited> + '_ {
        self.files.iter().filter(move |f| f.kind == kind)
    }

    /// A file of the directory the audit does not classify (`.env.example`,
    /// `definitions.json`), read when it exists and is small.
    pub fn other(&self, rel: &str) -> Option<String> {
        let path = self.dir.join(rel);
        let meta = std::fs::metadata(&path).ok()?;
        (meta.is_file() && meta.len() < 4 << 20)
            .then(|| std::fs::read_to_string(path).ok())
            .flatten()
    }
}

/// One import under way.
struct Import<'a> {
    source: &'a Source<'a>,
    root: Table,
    secrets: Secrets,
    unrepresented: Vec<String>,
}

impl Import<'_> {
    fn run(&mut self) {
        let found = services::find(self.source, &mut self.unrepresented);
        self.root.set("name", services::stack_name(self.source));
        services::host(self, &found);
        services::deploy_dirs(self, &found);
        services::networks(self);
        for service in &found {
            services::common(self, service);
        }
        // Databases first: a pooler's defaults follow its upstream's settings.
        let (databases, rest): (Vec<&Found>, Vec<&Found>) = found
            .iter()
            .partition(|f| f.kind == crate::model::Kind::Postgres);
        for service in databases.into_iter().chain(rest) {
            self.settings(service, &found);
        }
        for service in &found {
            services::publish(self, service, &found);
        }
        monitoring::alerts(self, &found);
        data::channels(self, &found);
    }

    /// The kind's own table, from the files the service reads.
    fn settings(&mut self, service: &Found, found: &[Found]) {
        use crate::model::Kind;
        match service.kind {
            Kind::Postgres => data::postgres(self, service, found),
            Kind::Pgbouncer => data::pgbouncer(self, service, found),
            Kind::Redis => data::redis(self, service, found),
            Kind::Sentinel => data::sentinel(self, service, found),
            Kind::Rabbitmq => data::rabbitmq(self, service, found),
            Kind::Prometheus => monitoring::prometheus(self, service),
            Kind::Grafana => monitoring::grafana(self, service, found),
            Kind::PostgresExporter
            | Kind::RedisExporter
            | Kind::PgbouncerExporter
            | Kind::NodeExporter
            | Kind::Cadvisor => monitoring::exporter(self, service, found),
            Kind::Gateway | Kind::Api => services::own_config(self, service),
            Kind::App => services::app(self, service, found),
            Kind::Nginx => self.unrepresented(format!(
                "service `{}`: an nginx proxy is imported with its common fields only",
                service.name
            )),
        }
    }

    /// The draft table of a service.
    fn service(&mut self, name: &str) -> &mut Table {
        self.root.table("services").table(name)
    }

    fn unrepresented(&mut self, what: impl Into<String>) {
        self.unrepresented.push(what.into());
    }
}

pub use compare::compare;
