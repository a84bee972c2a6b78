//! The rule catalog: stable IDs, names, default severities and explanations with a bad
//! and a good example. `tgstack rules`, `tgstack explain` and docs/rules.md come from here.

use serde::Serialize;

use crate::finding::Severity;

#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    pub id: &'static str,
    pub name: &'static str,
    pub severity: Severity,
    /// Incidents of incidents.md this rule catches.
    pub incidents: &'static [u32],
    pub summary: &'static str,
    pub explanation: &'static str,
    pub bad: &'static str,
    pub good: &'static str,
}

pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

pub static RULES: &[Rule] = &[
    Rule {
        id: "TG000",
        name: "io-error",
        severity: Severity::Error,
        incidents: &[],
        summary: "A file could not be read or written.",
        explanation: "tgstack could not read the model or a rendered file, or could not write the output. Nothing was changed.",
        bad: "tgstack validate -f missing.toml",
        good: "tgstack validate -f stack.toml",
    },
    Rule {
        id: "TG001",
        name: "toml-syntax",
        severity: Severity::Error,
        incidents: &[],
        summary: "The model is not valid TOML.",
        explanation: "stack.toml (or an overlay) does not parse as TOML 1.1. The finding points at the first place the parser could not read.",
        bad: "[services.redis\nport = 6379",
        good: "[services.redis]\nport = 6379",
    },
    Rule {
        id: "TG002",
        name: "schema",
        severity: Severity::Error,
        incidents: &[7],
        summary: "A key is unknown, missing or of the wrong type.",
        explanation: "Every table of the model has a fixed set of keys (see `tgstack schema`). Unknown keys are errors, never silently ignored, so a typo cannot turn a setting off.",
        bad: "[services.pgbouncer.pgbouncer]\npool_mod = \"transaction\"",
        good: "[services.pgbouncer.pgbouncer]\npool_mode = \"transaction\"",
    },
    Rule {
        id: "TG003",
        name: "unknown-reference",
        severity: Severity::Error,
        incidents: &[2, 9],
        summary: "A reference names a service, network, secret, role or user that does not exist.",
        explanation: "Services refer to each other by name (upstream, monitored master, database, broker), to networks, to secrets by id and to database roles and broker users. Each reference must resolve to a declaration of the right kind.",
        bad: "[services.pgbouncer.pgbouncer]\nupstream = \"timescale\"",
        good: "[services.pgbouncer.pgbouncer]\nupstream = \"timescaledb\"",
    },
    Rule {
        id: "TG004",
        name: "host-budget",
        severity: Severity::Error,
        incidents: &[],
        summary: "The services' CPU or memory limits exceed the host budget.",
        explanation: "The limits of all services (every instance counted) must fit the declared host. `tgstack budget` prints the table per layer.",
        bad: "[host]\ncpus = 4.0   # the services need 10",
        good: "[host]\ncpus = 10.0",
    },
    Rule {
        id: "TG005",
        name: "kind-settings",
        severity: Severity::Error,
        incidents: &[30],
        summary: "A service's settings table does not match its kind, or the kind cannot run that way.",
        explanation: "A service of kind `pgbouncer` is configured by `[services.NAME.pgbouncer]`, and so on. A table for another kind is an error, as is a missing required one, `publish` on a native service, or a native deploy of a kind that only runs as a container.",
        bad: "[services.cache]\nkind = \"redis\"\n[services.cache.pgbouncer]\nupstream = \"db\"",
        good: "[services.cache]\nkind = \"redis\"\n[services.cache.redis]\npassword = { secret = \"redis\" }\nmaxmemory = \"768MiB\"",
    },
    Rule {
        id: "TG006",
        name: "invalid-name",
        severity: Severity::Error,
        incidents: &[],
        summary: "A service, network or environment variable name cannot be used.",
        explanation: "Service names become container and host names (DNS labels); secret variables must be valid environment variable names, one variable per secret.",
        bad: "[services.Redis_Master]",
        good: "[services.redis-master]",
    },
    Rule {
        id: "TG007",
        name: "missing-image",
        severity: Severity::Error,
        incidents: &[32],
        summary: "A container service has no image.",
        explanation: "Every container needs an image, pinned to a version.",
        bad: "[services.redis-master]\nkind = \"redis\"",
        good: "[services.redis-master]\nkind = \"redis\"\nimage = \"redis:7.4.1-alpine\"",
    },
    Rule {
        id: "TG009",
        name: "invalid-subnet",
        severity: Severity::Error,
        incidents: &[3],
        summary: "A network subnet is not IPv4 CIDR.",
        explanation: "pg_hba.conf admits exactly the subnets of the networks the database joins, so each subnet must be a valid CIDR.",
        bad: "[networks.data]\nsubnet = \"172.28.10.0\"",
        good: "[networks.data]\nsubnet = \"172.28.10.0/24\"",
    },
    Rule {
        id: "TG010",
        name: "render-error",
        severity: Severity::Error,
        incidents: &[],
        summary: "A value cannot be written in a rendered file's format.",
        explanation: "Values are quoted for each format by explicit filters. A value the format cannot hold (a newline in an INI value, a leading `;`) is an error instead of silent corruption.",
        bad: "database = \"telegram\\nadmin_users = evil\"",
        good: "database = \"telegram\"",
    },
    Rule {
        id: "TG011",
        name: "secret-unavailable",
        severity: Severity::Error,
        incidents: &[4],
        summary: "A secret's environment variable is not set at deploy time.",
        explanation: "`tgstack render --with-secrets` reads every secret from its environment variable. Missing, empty or multi-line values are reported by variable name; the value is never printed.",
        bad: "tgstack render --out /opt/tgstack --with-secrets   # TG_DB_APP_PASSWORD unset",
        good: "TG_DB_APP_PASSWORD=... tgstack render --out /opt/tgstack --with-secrets",
    },
    Rule {
        id: "TG012",
        name: "suppression",
        severity: Severity::Warning,
        incidents: &[],
        summary: "An `[[allow]]` entry is unused, unknown or has no reason.",
        explanation: "Suppressions name one rule, optionally one model path, and a reason. One that no longer suppresses anything hides nothing and should go.",
        bad: "[[allow]]\nrule = \"TG205\"\nreason = \"\"",
        good: "[[allow]]\nrule = \"TG205\"\npath = \"services.grafana\"\nreason = \"reverse proxy on the same host terminates TLS\"",
    },
    Rule {
        id: "TG013",
        name: "generated-drift",
        severity: Severity::Error,
        incidents: &[22, 23, 25],
        summary: "A rendered file differs from what the model renders (hand-edited or stale).",
        explanation: "generated/ is derived from stack.toml. A file edited by hand, a stale file, a missing or an extra one is reported with the rendered file and its first differing line; the rules of that file's dialect also judge the edited content.",
        bad: "vim generated/pgbouncer/pgbouncer.ini",
        good: "edit stack.toml, then `tgstack render`",
    },
    Rule {
        id: "TG020",
        name: "yaml-invalid",
        severity: Severity::Error,
        incidents: &[23],
        summary: "A rendered YAML file does not parse, or repeats a key.",
        explanation: "Every YAML file is re-parsed; duplicate keys are errors because most readers silently keep one of them.",
        bad: "restart: \"unless-stopped\"\nrestart: \"always\"",
        good: "restart: \"unless-stopped\"",
    },
    Rule {
        id: "TG021",
        name: "yaml-ambiguous-scalar",
        severity: Severity::Warning,
        incidents: &[],
        summary: "An unquoted YAML scalar a YAML 1.1 reader turns into a boolean or octal number.",
        explanation: "`yes`, `no`, `on`, `off`, `y`, `n` and numbers with a leading zero change type under YAML 1.1 (Compose, Grafana and Prometheus readers differ). tgstack quotes every scalar; this catches hand edits.",
        bad: "GF_USERS_ALLOW_SIGN_UP: no",
        good: "GF_USERS_ALLOW_SIGN_UP: \"false\"",
    },
    Rule {
        id: "TG022",
        name: "config-dialect",
        severity: Severity::Error,
        incidents: &[],
        summary: "A rendered config has an unknown setting, directive or section, or a malformed line.",
        explanation: "pgbouncer.ini, postgresql.conf, pg_hba.conf, redis.conf, sentinel.conf, rabbitmq.conf and definitions.json are re-read in their own dialects. Unknown keys are typos that the daemon rejects at start (or ignores).",
        bad: "pool_mod = transaction",
        good: "pool_mode = transaction",
    },
    Rule {
        id: "TG023",
        name: "compose-format",
        severity: Severity::Error,
        incidents: &[27],
        summary: "docker-compose.yml does not match the Compose file format.",
        explanation: "The compose file is re-read with typed structures that reject unknown keys: a misspelt `healthcheck` silently disables the check that `depends_on` waits for.",
        bad: "    healtcheck:",
        good: "    healthcheck:",
    },
    Rule {
        id: "TG024",
        name: "broker-topology",
        severity: Severity::Error,
        incidents: &[],
        summary: "Broker definitions reference an undeclared exchange, queue or vhost.",
        explanation: "Every binding source and destination, dead-letter exchange and vhost of definitions.json must be declared in it, or the import fails or messages are dropped.",
        bad: "\"destination\": \"telegram.archiv\"",
        good: "\"destination\": \"telegram.archive\"",
    },
    Rule {
        id: "TG101",
        name: "auth-method-mismatch",
        severity: Severity::Error,
        incidents: &[1],
        summary: "PgBouncer's auth_type and PostgreSQL's password_encryption disagree.",
        explanation: "PostgreSQL 14+ hashes passwords with SCRAM; a PgBouncer set to md5 cannot log in. tgstack derives auth_type, the userlist format and every pg_hba method from password_encryption; setting auth_type to something else is an error.",
        bad: "[services.pgbouncer.pgbouncer]\nauth_type = \"md5\"   # server uses scram-sha-256",
        good: "[services.pgbouncer.pgbouncer]\n# auth_type follows the server's password_encryption",
    },
    Rule {
        id: "TG102",
        name: "secret-per-credential",
        severity: Severity::Warning,
        incidents: &[2],
        summary: "One secret is used for several credentials, or a replica's password differs from its master's.",
        explanation: "Each credential has exactly one secret and every consumer references it by id, so there is one value to rotate. Sharing a secret between different roles couples them (warning); a Redis replica with another password than its master cannot replicate (error).",
        bad: "roles.tg_app.password = { secret = \"db\" }\nroles.grafana_ro.password = { secret = \"db\" }",
        good: "roles.tg_app.password = { secret = \"db_app\" }\nroles.grafana_ro.password = { secret = \"db_readonly\" }",
    },
    Rule {
        id: "TG103",
        name: "hba-too-wide",
        severity: Severity::Error,
        incidents: &[3],
        summary: "pg_hba.conf would trust, or admit more than the declared networks.",
        explanation: "Every pg_hba line uses the password method and admits only the subnets of the database's networks. A `trust` line, or a subnet wider than /16, opens the database to far more than the stack.",
        bad: "[networks.data]\nsubnet = \"10.0.0.0/8\"",
        good: "[networks.data]\nsubnet = \"172.28.10.0/24\"",
    },
    Rule {
        id: "TG104",
        name: "literal-secret",
        severity: Severity::Error,
        incidents: &[4],
        summary: "A secret value is written in the model or a rendered file.",
        explanation: "Secrets are references to environment variables: `[secrets.ID] env = \"VAR\"`, used as `{ secret = \"ID\" }`. A literal password anywhere in the model is an error, and the value is never echoed back in the finding.",
        bad: "password = \"hunter2\"",
        good: "password = { secret = \"db_app\" }",
    },
    Rule {
        id: "TG105",
        name: "api-auth",
        severity: Severity::Error,
        incidents: &[5],
        summary: "The REST API would run without its API key.",
        explanation: "Every route of the API except /health and /metrics requires X-API-Key. The key is a model secret (an `api` service cannot be declared without one) and reaches the container through its environment variable; the gateway refuses to start without it.",
        bad: "environment:\n  TG_DB_APP_PASSWORD: ...   # no TG_API_KEY",
        good: "environment:\n  TG_API_KEY: \"${TG_API_KEY:?...}\"",
    },
    Rule {
        id: "TG106",
        name: "unused-secret",
        severity: Severity::Warning,
        incidents: &[2],
        summary: "A declared secret is referenced by nothing.",
        explanation: "An unused secret is usually a leftover of a renamed credential; operators keep setting a variable nothing reads.",
        bad: "[secrets.old_db]\nenv = \"TG_OLD_DB_PASSWORD\"",
        good: "# remove it",
    },
    Rule {
        id: "TG201",
        name: "listen-port",
        severity: Severity::Error,
        incidents: &[6],
        summary: "A rendered listen setting differs from the service's internal port.",
        explanation: "Listen settings, healthchecks, scrape targets and URLs use the internal `port`; only compose `ports:` uses `publish`. A listener taken from the host-port variable breaks every caller.",
        bad: "listen_port = 6434   # publish",
        good: "listen_port = 6432   # port",
    },
    Rule {
        id: "TG202",
        name: "wrong-address",
        severity: Severity::Error,
        incidents: &[7, 9],
        summary: "A rendered address of another service is not how this service reaches it.",
        explanation: "Containers reach containers by service name and internal port; native services reach containers through 127.0.0.1 and the published port. A URL mixing the two (`pgbouncer:6434`) cannot connect.",
        bad: "telegram = host=timescaledb port=5434",
        good: "telegram = host=timescaledb port=5432",
    },
    Rule {
        id: "TG203",
        name: "duplicate-host-port",
        severity: Severity::Error,
        incidents: &[8],
        summary: "Two services publish the same host port.",
        explanation: "Every published host port (including sentinel instances, management ports and native listeners) must be unique across the stack.",
        bad: "[services.redis-master]\npublish = 6379\n[services.redis-replica]\npublish = 6379",
        good: "[services.redis-replica]\npublish = 6380",
    },
    Rule {
        id: "TG204",
        name: "reserved-host-port",
        severity: Severity::Error,
        incidents: &[8],
        summary: "A service publishes a port the host reserves.",
        explanation: "host.reserved_ports lists ports other software on the host owns.",
        bad: "[host]\nreserved_ports = [80]\n[services.grafana]\npublish = 80",
        good: "[services.grafana]\npublish = 3100",
    },
    Rule {
        id: "TG205",
        name: "published-on-all-interfaces",
        severity: Severity::Warning,
        incidents: &[8],
        summary: "A port is published on 0.0.0.0.",
        explanation: "Published ports bind to 127.0.0.1 unless the model says otherwise; binding all interfaces exposes databases and consoles to the network.",
        bad: "[host]\nbind = \"0.0.0.0\"",
        good: "[host]\nbind = \"127.0.0.1\"",
    },
    Rule {
        id: "TG206",
        name: "native-needs-published-port",
        severity: Severity::Error,
        incidents: &[9],
        summary: "A native service reaches a container that publishes no host port.",
        explanation: "A service running on the host (systemd) can reach a container only through a published port; container names and internal ports do not resolve on the host.",
        bad: "[services.tg-gateway]\ndeploy = \"native\"\n[services.pgbouncer]\n# no publish",
        good: "[services.pgbouncer]\npublish = 6434",
    },
    Rule {
        id: "TG207",
        name: "no-shared-network",
        severity: Severity::Error,
        incidents: &[11, 12],
        summary: "Two containers that talk share no network.",
        explanation: "Containers reach each other by service name on a common network. A reference between containers without one cannot connect.",
        bad: "[services.grafana]\nnetworks = [\"monitoring\"]   # database on data only",
        good: "[services.grafana]\nnetworks = [\"monitoring\", \"data\"]",
    },
    Rule {
        id: "TG210",
        name: "listen-addresses",
        severity: Severity::Error,
        incidents: &[10],
        summary: "PostgreSQL in a container listens on localhost only.",
        explanation: "Inside a container, localhost is the container itself: other containers cannot connect. Set listen_addresses to '*' and let pg_hba.conf decide who gets in.",
        bad: "listen_addresses = 'localhost'",
        good: "listen_addresses = '*'",
    },
    Rule {
        id: "TG301",
        name: "sentinel-quorum",
        severity: Severity::Error,
        incidents: &[13],
        summary: "Sentinel quorum cannot be reached or is not a majority.",
        explanation: "With quorum greater than the number of sentinels, failover never happens. The quorum must be a majority, and fewer than 3 sentinels is a warning (no high availability).",
        bad: "[services.sentinel.sentinel]\ncount = 1\nquorum = 2",
        good: "[services.sentinel.sentinel]\ncount = 3\nquorum = 2",
    },
    Rule {
        id: "TG302",
        name: "sentinel-config",
        severity: Severity::Error,
        incidents: &[14],
        summary: "Sentinel runs from a read-only config, or monitors a literal IP or an unresolved host name.",
        explanation: "Sentinel rewrites its config file, so it must run from a writable copy. Container addresses change on every recreate, so the master is monitored by service name with `sentinel resolve-hostnames yes`.",
        bad: "sentinel monitor mymaster 172.28.10.5 6379 2",
        good: "sentinel resolve-hostnames yes\nsentinel monitor mymaster redis-master 6379 2",
    },
    Rule {
        id: "TG303",
        name: "redis-maxmemory-headroom",
        severity: Severity::Error,
        incidents: &[15],
        summary: "Redis maxmemory leaves no headroom below the memory limit.",
        explanation: "With maxmemory equal to the container limit, the kernel kills Redis before it evicts. Keep maxmemory at most 75 % of the limit.",
        bad: "memory = \"1GiB\"\n[services.redis-master.redis]\nmaxmemory = \"1GiB\"",
        good: "memory = \"1GiB\"\n[services.redis-master.redis]\nmaxmemory = \"768MiB\"",
    },
    Rule {
        id: "TG304",
        name: "unwritten-volume",
        severity: Severity::Warning,
        incidents: &[16],
        summary: "A data volume is mounted for data nothing writes.",
        explanation: "With Redis persistence off, a mounted data volume suggests durability that does not exist.",
        bad: "persistence = \"none\"   # and a /data volume in compose",
        good: "persistence = \"aof\"",
    },
    Rule {
        id: "TG404",
        name: "pool-exceeds-max-connections",
        severity: Severity::Error,
        incidents: &[20],
        summary: "PgBouncer can open more server connections than PostgreSQL accepts.",
        explanation: "users x (default_pool_size + reserve_pool_size) must fit max_connections minus superuser_reserved_connections.",
        bad: "default_pool_size = 60   # 2 users, max_connections = 100",
        good: "default_pool_size = 20",
    },
    Rule {
        id: "TG402",
        name: "session-state-behind-pooler",
        severity: Severity::Error,
        incidents: &[18],
        summary: "Session state is relied on behind PgBouncer transaction pooling.",
        explanation: "In transaction mode consecutive transactions of one client run on different server connections: `SET search_path`, session advisory locks and named prepared statements (without max_prepared_statements) leak or vanish. Schema-qualify names, use `SET LOCAL`, use unnamed statements.",
        bad: "ignore_startup_parameters = extra_float_digits,search_path",
        good: "ignore_startup_parameters = extra_float_digits",
    },
    Rule {
        id: "TG403",
        name: "init-scripts",
        severity: Severity::Error,
        incidents: &[19],
        summary: "SQL is applied by container init scripts instead of the migrate step.",
        explanation: "/docker-entrypoint-initdb.d runs only on an empty data volume, so the schema silently goes missing after a rebuild. Migrations are idempotent and applied by an explicit step.",
        bad: "- ./schema.sql:/docker-entrypoint-initdb.d/schema.sql",
        good: "scripts/migrate.sh   # or: tg-gateway migrate",
    },
    Rule {
        id: "TG501",
        name: "alert-without-source",
        severity: Severity::Error,
        incidents: &[21],
        summary: "An alert watches a service that does not exist, is of the wrong kind, or has no exporter providing its metrics.",
        explanation: "Typed alerts build their PromQL from the metric catalog of the process that exports the metrics: a redis-down alert needs a redis-exporter watching that Redis, pool-exhausted a pgbouncer-exporter, disk-space a node-exporter, memory-high a cadvisor. Without it the alert could never fire.",
        bad: "[[alerts]]\nname = \"LowDiskSpace\"\nkind = \"disk-space\"   # no node-exporter service",
        good: "[services.node-exporter]\nkind = \"node-exporter\"\n...\n[[alerts]]\nname = \"LowDiskSpace\"\nkind = \"disk-space\"",
    },
    Rule {
        id: "TG502",
        name: "invalid-alert",
        severity: Severity::Error,
        incidents: &[24],
        summary: "An alert is malformed: bad or duplicate name, threshold outside its unit, or a custom expression that is not PromQL.",
        explanation: "Alert names are UpperCamelCase and unique; ratio thresholds lie between 0 and 1; typed kinds generate their expression, annotations (with $value in the metric's unit) and test; custom alerts need expr, summary and description, and expr must parse as PromQL.",
        bad: "[[alerts]]\nname = \"low disk\"\nkind = \"disk-space\"\nthreshold = 10",
        good: "[[alerts]]\nname = \"LowDiskSpace\"\nkind = \"disk-space\"\nthreshold = 0.10",
    },
    Rule {
        id: "TG503",
        name: "scrape-target-unreachable",
        severity: Severity::Error,
        incidents: &[11],
        summary: "Prometheus cannot reach a service it must scrape.",
        explanation: "Every service with a metrics endpoint gets a scrape job; Prometheus must share a network with it, or, for a native service, reach it through host.docker.internal, which needs the native process to listen on the Docker bridge address rather than loopback.",
        bad: "[services.tg-gateway]\ndeploy = \"native\"   # listens on 127.0.0.1",
        good: "[services.tg-gateway]\ndeploy = \"native\"\nlisten = \"172.17.0.1\"",
    },
    Rule {
        id: "TG504",
        name: "untested-custom-alert",
        severity: Severity::Warning,
        incidents: &[],
        summary: "A custom alert has no promtool test case.",
        explanation: "Typed alerts get a rendered promtool test that fires them; a custom expression only gets one when the model gives input series and the expected annotations under [alerts.test].",
        bad: "[[alerts]]\nkind = \"custom\"\nexpr = \"...\"",
        good: "[[alerts]]\nkind = \"custom\"\nexpr = \"...\"\n[alerts.test]\ninput = [{ series = \"...\", values = \"1x10\" }]",
    },
    Rule {
        id: "TG607",
        name: "timeout-chain",
        severity: Severity::Error,
        incidents: &[31],
        summary: "A caller's timeout is not longer than its callee's.",
        explanation: "Timeouts must shrink along a call chain: dashboard/API > PgBouncer query_timeout > PostgreSQL statement_timeout. Otherwise the caller gives up while the callee still works, and retries pile up.",
        bad: "api.request_timeout = \"10s\"\npgbouncer.query_timeout = \"90s\"",
        good: "api.request_timeout = \"30s\"\npgbouncer.query_timeout = \"25s\"\npostgres.statement_timeout = \"20s\"",
    },
    Rule {
        id: "TG601",
        name: "bind-mount-source",
        severity: Severity::Error,
        incidents: &[25],
        summary: "A bind-mount source is not a rendered file or directory of the right type.",
        explanation: "Docker creates a missing bind-mount source as an empty directory, so a config file silently becomes a directory (\"is a directory\"). Relative sources must be rendered files (see MANIFEST), absolute ones deploy-time secret files.",
        bad: "source: \"./pgbouncer/pgbouncer.conf\"",
        good: "source: \"./pgbouncer/pgbouncer.ini\"",
    },
    Rule {
        id: "TG602",
        name: "healthcheck",
        severity: Severity::Error,
        incidents: &[26],
        summary: "A healthcheck does not use the model's user, database and port.",
        explanation: "Healthchecks are generated from the model. A hard-coded user or a socket check goes green while the database is still in its init restart.",
        bad: "pg_isready -U admin",
        good: "pg_isready -h 127.0.0.1 -p 5432 -U postgres -d telegram",
    },
    Rule {
        id: "TG603",
        name: "depends-on",
        severity: Severity::Error,
        incidents: &[27],
        summary: "A dependency can never be satisfied: no healthcheck behind service_healthy, an unknown service, or a cycle.",
        explanation: "`depends_on: condition: service_healthy` on a service without a healthcheck never starts; a cycle never starts either. CI once hung 23 minutes on this.",
        bad: "depends_on:\n  redis-exporter:\n    condition: service_healthy   # no healthcheck",
        good: "depends_on:\n  redis-master:\n    condition: service_healthy",
    },
    Rule {
        id: "TG604",
        name: "undeclared-variable",
        severity: Severity::Error,
        incidents: &[28],
        summary: "The compose file interpolates a variable .env.example does not declare.",
        explanation: "Compose interpolates `${VAR}` from the shell and the project .env; `env_file:` entries do not feed interpolation. Every variable must be a declared secret, listed in .env.example.",
        bad: "GF_SERVER_HTTP_PORT: \"${GRAFANA_PORT}\"",
        good: "GF_SERVER_HTTP_PORT: \"3000\"",
    },
    Rule {
        id: "TG608",
        name: "unpinned-image",
        severity: Severity::Warning,
        incidents: &[32],
        summary: "An image is not pinned to a version.",
        explanation: "`:latest` (or no tag) changes under you on the next pull. Pin a version tag or a digest.",
        bad: "image = \"redis:latest\"",
        good: "image = \"redis:7.4.1-alpine\"",
    },
    Rule {
        id: "TG701",
        name: "native-deploy",
        severity: Severity::Error,
        incidents: &[29, 30],
        summary: "A native service cannot get a sound systemd unit, or two gateways share a session file.",
        explanation: "A service runs either as a container or as a systemd unit, never both: a `native` table on a container service is refused. Units are written for gateway and api services, with an absolute ExecStart, a dedicated user (never root), secrets from an EnvironmentFile, and the Telegram session in the unit's StateDirectory below /var/lib (mode 0700, UMask 0077). Two gateways on one session file log each other out and corrupt it.",
        bad: "[services.tg-gateway]\ndeploy = \"container\"\n[services.tg-gateway.native]\nbinary = \"/usr/local/bin/tg-gateway\"",
        good: "[services.tg-gateway]\ndeploy = \"native\"\n[services.tg-gateway.native]\nbinary = \"/usr/local/bin/tg-gateway\"",
    },
];

/// The 32 incidents of incidents.md, by number, with their one-line title.
pub static INCIDENTS: &[(u32, &str)] = &[
    (1, "PgBouncer md5 against SCRAM-hashed PostgreSQL passwords"),
    (2, "one role, three password variables that drifted"),
    (3, "a pg_hba trust line for a whole /16"),
    (4, "literal passwords committed (ini, SQL, env fallbacks)"),
    (
        5,
        "API authentication off by default; gateway endpoints without auth",
    ),
    (6, "listen port taken from the host-port variable"),
    (
        7,
        "one port per service in a registry: URLs mixed host and internal ports",
    ),
    (8, "host ports collided and were moved three times"),
    (9, "native gateway pointed at an unpublished host port"),
    (10, "PostgreSQL listened on localhost inside its container"),
    (
        11,
        "scrape target on the wrong port: gateway-down fired forever",
    ),
    (
        12,
        "Grafana datasource on the wrong port, with missing credentials",
    ),
    (13, "one Sentinel with quorum 2"),
    (
        14,
        "Sentinel config mounted read-only, literal container IP",
    ),
    (15, "Redis maxmemory equal to the container limit"),
    (16, "volumes nothing wrote; no Sentinel-aware client"),
    (17, "dedup key included created_at DEFAULT now()"),
    (18, "session state through a transaction pooler"),
    (19, "schema only created by init scripts on an empty volume"),
    (20, "pool sizes beyond max_connections"),
    (21, "alerts on metrics nothing exported"),
    (22, "rule files moved and silently not loaded"),
    (23, "a dashboard JSON in the provider YAML folder"),
    (24, "annotation units did not match the metric"),
    (25, "bind-mount sources that did not exist"),
    (
        26,
        "healthcheck green during the init restart, hard-coded user",
    ),
    (
        27,
        "service_healthy on a service that could never be healthy",
    ),
    (28, "${VAR} no env file defined"),
    (
        29,
        "unit environment the program never read, ${} in systemd",
    ),
    (
        30,
        "session file 0644, committed, two processes on one session",
    ),
    (31, "caller timeouts shorter than callee timeouts"),
    (32, "images tagged :latest"),
];

/// Incidents (or parts of them) no static rule can catch, and why; listed in docs/rules.md.
pub static NOT_STATIC: &[(u32, &str)] = &[
    (
        2,
        "Whether the value behind a secret matches what the server stores is only known at deploy time; statically, one secret per credential and references by id (TG102, TG106) remove the three-variables failure mode.",
    ),
    (
        16,
        "Whether a client library follows Sentinel failover is a property of the client code; the gateway's own Redis client is tested against a private Redis that is stopped mid-run (gateway tests).",
    ),
    (
        18,
        "Session state used inside application code (not rendered files) is outside the model; the gateway uses unnamed statements only and is tested through a PgBouncer started from the rendered config.",
    ),
    (
        30,
        "That a session file was committed to git is a repository event; the model owns the session path under the state directory, outside the rendered tree.",
    ),
];

/// docs/rules.md: every rule with its explanation and examples, and the incident coverage.
pub fn markdown() -> String {
    use std::fmt::Write as _;
    let mut out = String::from(
        "<!-- generated by `tgstack rules --markdown`; do not edit (a test checks it is current) -->\n# tgstack validation rules\n\n",
    );
    out.push_str("`tgstack validate` runs every rule and reports all findings in one run. `tgstack explain ID` prints one rule; suppress a finding with `[[allow]] rule = \"ID\"`, an optional `path`, and a required `reason`.\n\n");
    out.push_str("| ID | name | severity | summary |\n|---|---|---|---|\n");
    for rule in RULES {
        let _ = writeln!(
            out,
            "| [{}](#{}) | {} | {} | {} |",
            rule.id,
            rule.id.to_lowercase(),
            rule.name,
            rule.severity.as_str(),
            rule.summary.replace('|', "\\|")
        );
    }
    out.push_str("\n## Incidents of the hand-written stack and the rules that catch them\n\n| # | incident | rules |\n|---|---|---|\n");
    for (number, title) in INCIDENTS {
        let rules: Vec<String> = RULES
            .iter()
            .filter(|r| r.incidents.contains(number))
            .map(|r| format!("[{}](#{})", r.id, r.id.to_lowercase()))
            .collect();
        let note = if NOT_STATIC.iter().any(|(n, _)| n == number) {
            " (partly not static, see below)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "| {number} | {title} | {}{note} |",
            if rules.is_empty() {
                "none".into()
            } else {
                rules.join(", ")
            }
        );
    }
    out.push_str("\n### What cannot be checked statically\n\n");
    for (number, reason) in NOT_STATIC {
        let _ = writeln!(out, "- Incident {number}: {reason}");
    }
    out.push_str("\n## Rules\n");
    for rule in RULES {
        let _ = write!(
            out,
            "\n### {}\n\n**{}** ({})",
            rule.id,
            rule.name,
            rule.severity.as_str()
        );
        if !rule.incidents.is_empty() {
            let list: Vec<String> = rule.incidents.iter().map(u32::to_string).collect();
            let _ = write!(out, ", incidents {}", list.join(", "));
        }
        let _ = write!(
            out,
            "\n\n{}\n\n{}\n\nBad:\n\n```\n{}\n```\n\nGood:\n\n```\n{}\n```\n",
            rule.summary, rule.explanation, rule.bad, rule.good
        );
    }
    out
}
