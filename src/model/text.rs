//! What each kind of model string may contain. Each class is the `pattern` of the fields
//! that use it (`#[schemars(pattern(text::NAME))]` in types.rs), so the editor's schema says
//! it and the loader checks it (limits.rs) with the key's location. None of the structured
//! classes admits a newline, a comment or separator character of the formats values land
//! in (`#`, `;`, `=`, quotes, spaces) or `$`; free text admits anything but control
//! characters, and the renderers' quoting filters escape it per format.

/// Service, network and other names of the model: what Docker, DNS and file names take.
pub const NAME: &str = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$";
/// Identifiers of SQL and of the poolers' user lists (databases, schemas, roles, users).
pub const SQL_IDENT: &str = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$";
/// Ids of secrets and of broker users.
pub const ID: &str = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$";
/// Environment variable names.
pub const ENV_VAR: &str = r"^[A-Z_][A-Z0-9_]*$";
/// Absolute or relative file system paths, without spaces or shell/config metacharacters.
pub const PATH: &str = r"^[A-Za-z0-9_./@+-]+$";
/// Container image references (`repo/name:tag`, `name@sha256:...`).
pub const IMAGE: &str = r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$";
/// IP addresses (v4 or v6).
pub const ADDRESS: &str = r"^[0-9A-Fa-f.:]{2,45}$";
/// IP networks in CIDR notation.
pub const SUBNET: &str = r"^[0-9A-Fa-f.:]{2,45}/[0-9]{1,3}$";
/// Enum-like settings passed through to a program (`restart`, `maxmemory_policy`, ...).
pub const WORD: &str = r"^[a-z][a-z0-9_-]{0,63}$";
/// AMQP names: vhosts, exchanges, queues, routing-key prefixes.
pub const AMQP_NAME: &str = r"^[A-Za-z0-9_./:-]+$";
/// AMQP binding keys: names with the `*` and `#` wildcards.
pub const AMQP_PATTERN: &str = r"^[A-Za-z0-9_./:*#-]+$";
/// A Telegram username.
pub const TG_USERNAME: &str = r"^[A-Za-z0-9_]{0,64}$";
/// A rule id of tgstack.
pub const RULE_ID: &str = r"^TG[0-9]{3}$";
/// Free text (descriptions, titles, reasons, RabbitMQ permission regexes, PromQL): any
/// character but control characters (no newline, carriage return, NUL or escape).
pub const TEXT: &str = r"^[^\x00-\x1f\x7f]*$";

/// The classes the loader checks itself (limits.rs); ENV_VAR and SUBNET are checked by
/// their rules (TG006, TG009), with messages of their own.
pub const CHECKED_AT_LOAD: [&str; 12] = [
    NAME,
    SQL_IDENT,
    ID,
    PATH,
    IMAGE,
    ADDRESS,
    WORD,
    AMQP_NAME,
    AMQP_PATTERN,
    TG_USERNAME,
    RULE_ID,
    TEXT,
];

/// Schema of a map of free-text values (alert labels): the keys are label names, checked
/// by the rules; each value is [`TEXT`].
pub fn text_map(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "additionalProperties": { "type": "string", "pattern": TEXT }
    })
}

/// Schema of a map of node labels (`docker node update --label-add KEY=VALUE`): keys and
/// values are [`NAME`]s, so a label can be written in a constraint and a shell command
/// as it is.
pub fn label_map(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "propertyNames": { "pattern": NAME },
        "additionalProperties": { "type": "string", "pattern": NAME }
    })
}
