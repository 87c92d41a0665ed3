//! Schema migrations: an ordered, append-only list of SQL scripts compiled into the binary. Each is
//! applied once, inside the same immediate transaction that records it in `schema_migrations` with a
//! checksum, so a crash never leaves half a migration and two processes starting at once apply each
//! script exactly once. Never edit a script that has shipped: append a new one.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::error::{StoreError, classify};
use crate::hashing::sha256_hex;

pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) name: &'static str,
    pub(crate) sql: &'static str,
}

pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "jobs",
        sql: include_str!("migrations/0001_jobs.sql"),
    },
    Migration {
        version: 2,
        name: "presets",
        sql: include_str!("migrations/0002_presets.sql"),
    },
    Migration {
        version: 3,
        name: "audit and metrics",
        sql: include_str!("migrations/0003_audit_and_metrics.sql"),
    },
    Migration {
        version: 4,
        name: "shares",
        sql: include_str!("migrations/0004_shares.sql"),
    },
    Migration {
        version: 5,
        name: "outputs",
        sql: include_str!("migrations/0005_outputs.sql"),
    },
    Migration {
        version: 6,
        name: "styles",
        sql: include_str!("migrations/0006_styles.sql"),
    },
    Migration {
        version: 7,
        name: "experiments",
        sql: include_str!("migrations/0007_experiments.sql"),
    },
];

/// The schema version this build brings a database to.
pub fn latest_schema_version() -> i64 {
    MIGRATIONS.last().map_or(0, |migration| migration.version)
}

pub(crate) fn apply(connection: &mut Connection, path: &Path) -> Result<(), StoreError> {
    apply_list(connection, path, MIGRATIONS)
}

pub(crate) fn apply_list(
    connection: &mut Connection,
    path: &Path,
    migrations: &[Migration],
) -> Result<(), StoreError> {
    let sqlite = |error| classify(error, path);
    let transaction = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite)?;
    transaction
        .execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                checksum TEXT NOT NULL,
                applied_at INTEGER NOT NULL
            )",
        )
        .map_err(sqlite)?;
    let known = migrations.last().map_or(0, |migration| migration.version);
    let found: Option<i64> = transaction
        .query_row("SELECT max(version) FROM schema_migrations", [], |row| row.get(0))
        .map_err(sqlite)?;
    if let Some(found) = found.filter(|found| *found > known) {
        return Err(StoreError::SchemaTooNew {
            path: path.to_path_buf(),
            found,
            known,
        });
    }
    for migration in migrations {
        let checksum = sha256_hex(migration.sql.as_bytes());
        let recorded: Option<String> = transaction
            .query_row(
                "SELECT checksum FROM schema_migrations WHERE version = ?1",
                [migration.version],
                |row| row.get(0),
            )
            .optional()
            .map_err(sqlite)?;
        match recorded {
            Some(recorded) if recorded == checksum => continue,
            Some(_) => {
                return Err(StoreError::MigrationChanged {
                    path: path.to_path_buf(),
                    version: migration.version,
                    name: migration.name.to_owned(),
                });
            }
            None => {}
        }
        let failed = |source: rusqlite::Error| match classify(source, path) {
            StoreError::Sqlite { source, .. } => StoreError::Migration {
                path: path.to_path_buf(),
                version: migration.version,
                name: migration.name,
                source,
            },
            // Corruption, a busy lock or a full disk say more than "migration failed".
            other => other,
        };
        transaction.execute_batch(migration.sql).map_err(failed)?;
        transaction
            .execute(
                "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![
                    migration.version,
                    migration.name,
                    checksum,
                    crate::clock::now_ms()
                ],
            )
            .map_err(failed)?;
    }
    transaction.commit().map_err(sqlite)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory() -> Connection {
        Connection::open_in_memory().unwrap()
    }

    const FIRST: Migration = Migration {
        version: 1,
        name: "first",
        sql: "CREATE TABLE a (x INTEGER);",
    };
    const SECOND: Migration = Migration {
        version: 2,
        name: "second",
        sql: "CREATE TABLE b (y INTEGER);",
    };

    #[test]
    fn versions_are_strictly_increasing_from_one() {
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(
                migration.version,
                i64::try_from(index).unwrap() + 1,
                "{}",
                migration.name
            );
        }
    }

    #[test]
    fn every_migration_applies_on_an_empty_database_and_again_is_a_no_op() {
        let mut connection = memory();
        apply(&mut connection, Path::new(":memory:")).unwrap();
        apply(&mut connection, Path::new(":memory:")).unwrap();
        let count: i64 = connection
            .query_row("SELECT count(*) FROM schema_migrations", [], |row| row.get(0))
            .unwrap();
        assert_eq!(count, latest_schema_version());
    }

    #[test]
    fn only_new_migrations_are_applied() {
        let mut connection = memory();
        apply_list(&mut connection, Path::new("test"), &[FIRST]).unwrap();
        connection.execute("INSERT INTO a VALUES (7)", []).unwrap();
        apply_list(&mut connection, Path::new("test"), &[FIRST, SECOND]).unwrap();
        let kept: i64 = connection
            .query_row("SELECT x FROM a", [], |row| row.get(0))
            .unwrap();
        assert_eq!(kept, 7);
        connection.execute("INSERT INTO b VALUES (1)", []).unwrap();
    }

    #[test]
    fn an_edited_migration_is_refused() {
        let mut connection = memory();
        apply_list(&mut connection, Path::new("test"), &[FIRST]).unwrap();
        let edited = Migration {
            version: 1,
            name: "first",
            sql: "CREATE TABLE a (x TEXT);",
        };
        let error = apply_list(&mut connection, Path::new("test"), &[edited]).unwrap_err();
        assert!(
            matches!(error, StoreError::MigrationChanged { version: 1, .. }),
            "{error}"
        );
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let mut connection = memory();
        apply_list(&mut connection, Path::new("test"), &[FIRST, SECOND]).unwrap();
        let error = apply_list(&mut connection, Path::new("test"), &[FIRST]).unwrap_err();
        assert!(
            matches!(
                error,
                StoreError::SchemaTooNew {
                    found: 2,
                    known: 1,
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn a_failing_migration_leaves_nothing_behind() {
        let mut connection = memory();
        let broken = Migration {
            version: 2,
            name: "broken",
            sql: "CREATE TABLE c (z); SELECT * FROM missing;",
        };
        let error = apply_list(&mut connection, Path::new("test"), &[FIRST, broken]).unwrap_err();
        assert!(
            matches!(error, StoreError::Migration { version: 2, .. }),
            "{error}"
        );
        let tables: i64 = connection
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name IN ('a', 'c', 'schema_migrations')",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(tables, 0, "the whole run is one transaction");
    }
}
