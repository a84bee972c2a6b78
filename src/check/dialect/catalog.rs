//! The programs' own catalogs of settings (catalogs/*.tsv, generated from the real programs
//! or their source at the pinned tag; catalogs/SOURCES.md), embedded in the binary and
//! indexed on first use.

use std::collections::HashMap;
use std::sync::LazyLock;

/// One catalog: rows of tab-separated columns keyed by the first.
pub struct Catalog {
    pub version: &'static str,
    rows: HashMap<&'static str, Vec<&'static str>>,
}

impl Catalog {
    fn parse(version: &'static str, text: &'static str) -> Catalog {
        let rows = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let columns: Vec<&str> = l.split('\t').collect();
                (columns[0], columns)
            })
            .collect();
        Catalog { version, rows }
    }

    /// The columns of `key`'s row (column 0 is the key itself).
    pub fn get(&self, key: &str) -> Option<&[&'static str]> {
        self.rows.get(key).map(Vec::as_slice)
    }

    pub fn keys(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.rows.keys().copied()
    }
}

macro_rules! catalog {
    ($version:literal, $file:literal) => {
        LazyLock::new(|| {
            Catalog::parse($version, include_str!(concat!("../../../catalogs/", $file)))
        })
    };
}

pub static POSTGRESQL_15: LazyLock<Catalog> = catalog!("15", "postgresql-15.tsv");
pub static POSTGRESQL_16: LazyLock<Catalog> = catalog!("16", "postgresql-16.tsv");
pub static PGBOUNCER_1_18: LazyLock<Catalog> = catalog!("1.18.0", "pgbouncer-1.18.0.tsv");
pub static PGBOUNCER_1_23: LazyLock<Catalog> = catalog!("1.23.1", "pgbouncer-1.23.1.tsv");
pub static REDIS_7_0: LazyLock<Catalog> = catalog!("7.0.15", "redis-7.0.15.tsv");
pub static REDIS_7_4: LazyLock<Catalog> = catalog!("7.4.1", "redis-7.4.1.tsv");
pub static SENTINEL_7_0: LazyLock<Catalog> = catalog!("7.0.15", "sentinel-7.0.15.tsv");
pub static SENTINEL_7_4: LazyLock<Catalog> = catalog!("7.4.1", "sentinel-7.4.1.tsv");
pub static RABBITMQ_3_10: LazyLock<Catalog> = catalog!("3.10.8", "rabbitmq-3.10.8.tsv");
pub static RABBITMQ_3_13: LazyLock<Catalog> = catalog!("3.13.7", "rabbitmq-3.13.7.tsv");
pub static SYSTEMD: LazyLock<Catalog> = catalog!("252", "systemd-252.tsv");
pub static COMPOSE: LazyLock<Catalog> = catalog!("spec", "compose-spec.tsv");

/// A program's catalogs, oldest first: the oldest is the version Debian 12 installs (what a
/// native deploy runs), the newest the version of the images the reference model pins.
pub struct Versions(pub &'static [&'static LazyLock<Catalog>]);

pub static POSTGRESQL: Versions = Versions(&[&POSTGRESQL_15, &POSTGRESQL_16]);
pub static PGBOUNCER: Versions = Versions(&[&PGBOUNCER_1_18, &PGBOUNCER_1_23]);
pub static REDIS: Versions = Versions(&[&REDIS_7_0, &REDIS_7_4]);
pub static RABBITMQ: Versions = Versions(&[&RABBITMQ_3_10, &RABBITMQ_3_13]);

/// Which release of a program a file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release<'a> {
    /// The image the file is deployed with (its tag names the version).
    Image(&'a str),
    /// The program installed on the host (a native deploy).
    Installed,
    /// The newest release tgstack has a catalog of (a file seen without its deploy).
    Newest,
}

impl Release<'_> {
    /// The release a model service runs: its image's, or the installed program's when it
    /// runs natively (or names no image).
    pub fn of(service: &crate::model::Service) -> Release<'_> {
        match (&service.deploy, &service.image) {
            (crate::model::Deploy::Container, Some(image)) => Release::Image(image),
            _ => Release::Installed,
        }
    }
}

impl Versions {
    /// The catalog for `release`: an image tag picks the newest catalog not newer than the
    /// tag's version (the newest for a tag without one, e.g. `latest`).
    pub fn pick(&self, release: Release<'_>) -> &'static Catalog {
        let oldest: &'static Catalog = self.0[0];
        let newest: &'static Catalog = self.0[self.0.len() - 1];
        let image = match release {
            Release::Installed => return oldest,
            Release::Newest => return newest,
            Release::Image(image) => image,
        };
        let Some(pinned) = tag_version(image) else {
            return newest;
        };
        self.0
            .iter()
            .map(|c| -> &'static Catalog { c })
            // `redis:7.4` pins 7.4.x: compare as many numbers as the tag gives.
            .rfind(|c| {
                let version = numbers(c.version);
                version[..version.len().min(pinned.len())] <= pinned[..]
            })
            .unwrap_or(oldest)
    }
}

/// The numbers of a version: `1.23.1` -> [1, 23, 1].
fn numbers(version: &str) -> Vec<u64> {
    version.split('.').map_while(|n| n.parse().ok()).collect()
}

/// The program version an image tag names: `v1.23.1-p3` -> 1.23.1, `3.13.7-management-alpine`
/// -> 3.13.7; for PostgreSQL-based images the `pgNN` part wins (`2.17.2-pg16` -> 16).
pub fn tag_version(image: &str) -> Option<Vec<u64>> {
    let image = image.split('@').next().unwrap_or(image);
    let tag = image.rsplit_once(':')?.1;
    if tag.contains('/') {
        return None; // `registry:5000/redis` names a port, not a tag
    }
    if let Some(at) = tag.find("pg") {
        let digits: String = tag[at + 2..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if !digits.is_empty() {
            return Some(vec![digits.parse().ok()?]);
        }
    }
    let start = tag.find(|c: char| c.is_ascii_digit())?;
    let version: String = tag[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let parsed = numbers(version.trim_end_matches('.'));
    (!parsed.is_empty()).then_some(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_tags_pick_the_pinned_catalog() {
        let image = |tag| Release::Image(tag);
        assert_eq!(
            POSTGRESQL
                .pick(image("timescale/timescaledb:2.17.2-pg16"))
                .version,
            "16"
        );
        assert_eq!(POSTGRESQL.pick(image("postgres:15.8")).version, "15");
        assert_eq!(POSTGRESQL.pick(Release::Installed).version, "15");
        assert_eq!(POSTGRESQL.pick(Release::Newest).version, "16");
        assert_eq!(
            PGBOUNCER
                .pick(image("edoburu/pgbouncer:v1.23.1-p3"))
                .version,
            "1.23.1"
        );
        assert_eq!(
            PGBOUNCER.pick(image("edoburu/pgbouncer:v1.20.0")).version,
            "1.18.0"
        );
        assert_eq!(REDIS.pick(image("redis:7.4.1-alpine")).version, "7.4.1");
        assert_eq!(REDIS.pick(image("redis:latest")).version, "7.4.1");
        assert_eq!(
            RABBITMQ
                .pick(image("rabbitmq:3.13.7-management-alpine"))
                .version,
            "3.13.7"
        );
        assert_eq!(
            RABBITMQ.pick(image("rabbitmq:3.12-management")).version,
            "3.10.8"
        );
    }
}
