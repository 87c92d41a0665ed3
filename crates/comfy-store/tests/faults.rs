//! Faults the store must survive: a file that is not a database, two connections and two processes
//! writing one database, a lock held past the busy timeout, and a schema from a newer build.

mod common;

use std::time::Duration;

use comfy_store::{JobQuery, NewJob, Store, StoreError, StoreOptions};
use serde_json::json;
use tokio::io::AsyncReadExt;

fn job(id: String) -> NewJob {
    NewJob {
        id,
        workflow: None,
        client: None,
        priority: 0,
        request: json!({"n": 1}),
    }
}

#[tokio::test]
async fn a_corrupt_file_gives_a_typed_error_and_is_left_untouched() {
    let directory = common::TempDirectory::new("corrupt");
    let path = directory.database();
    let garbage: Vec<u8> = (0..8192u32)
        .map(|index| (index.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&path, &garbage).unwrap();

    let error = Store::open(StoreOptions::new(&path)).await.unwrap_err();
    assert!(
        matches!(error, StoreError::Corrupt { path: ref reported, .. } if *reported == path),
        "{error}"
    );
    assert!(error.to_string().contains("left untouched"), "{error}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        garbage,
        "the file must not be rewritten"
    );
    assert!(!directory.path().join("store.sqlite3-wal").exists());
}

#[tokio::test]
async fn a_database_damaged_after_its_header_is_reported_as_corrupt() {
    let directory = common::TempDirectory::new("damaged");
    let path = directory.database();
    let store = Store::open(StoreOptions::new(&path)).await.unwrap();
    for index in 0..50 {
        store.insert_job(job(format!("job-{index}"))).await.unwrap();
    }
    store.close().await;
    // Overwrite everything after the 100-byte header (and so the schema page) with noise.
    let mut bytes = std::fs::read(&path).unwrap();
    for (index, byte) in bytes.iter_mut().enumerate().skip(100) {
        *byte = (index as u8).wrapping_mul(31) ^ 0x5a;
    }
    std::fs::write(&path, &bytes).unwrap();
    let error = Store::open(StoreOptions::new(&path)).await.unwrap_err();
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error}");
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

#[tokio::test]
async fn a_newer_schema_is_refused_without_changes() {
    let directory = common::TempDirectory::new("newer");
    let path = directory.database();
    Store::open(StoreOptions::new(&path)).await.unwrap().close().await;
    {
        let connection = rusqlite::Connection::open(&path).unwrap();
        connection
            .execute(
                "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (9999, 'future', '', 0)",
                [],
            )
            .unwrap();
    }
    let error = Store::open(StoreOptions::new(&path)).await.unwrap_err();
    assert!(
        matches!(error, StoreError::SchemaTooNew { found: 9999, .. }),
        "{error}"
    );
}

#[tokio::test]
async fn two_stores_on_one_database_interleave_writes_safely() {
    let directory = common::TempDirectory::new("two-stores");
    let first = Store::open(StoreOptions::new(directory.database()))
        .await
        .unwrap();
    let second = Store::open(StoreOptions::new(directory.database()))
        .await
        .unwrap();
    let write_many = |store: Store, prefix: &'static str| async move {
        for index in 0..100 {
            store.insert_job(job(format!("{prefix}-{index}"))).await.unwrap();
        }
    };
    tokio::join!(
        write_many(first.clone(), "first"),
        write_many(second.clone(), "second")
    );
    assert_eq!(first.list_jobs(JobQuery::default()).await.unwrap().len(), 200);
    assert_eq!(second.list_jobs(JobQuery::default()).await.unwrap().len(), 200);
    first.close().await;
    second.close().await;
    assert_integrity(&directory.database());
}

fn assert_integrity(path: &std::path::Path) {
    let connection = rusqlite::Connection::open(path).unwrap();
    let verdict: String = connection
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(verdict, "ok");
}

#[tokio::test]
async fn a_lock_held_past_the_busy_timeout_fails_clearly() {
    let directory = common::TempDirectory::new("busy");
    let path = directory.database();
    let mut options = StoreOptions::new(&path);
    options.busy_timeout = Duration::from_millis(200);
    let store = Store::open(options).await.unwrap();

    let mut holder = rusqlite::Connection::open(&path).unwrap();
    let transaction = holder
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .unwrap();
    let started = std::time::Instant::now();
    let error = store.insert_job(job("blocked".into())).await.unwrap_err();
    assert!(matches!(error, StoreError::Busy { .. }), "{error}");
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "it waited for the busy timeout first"
    );
    // Reads go on during a write lock in WAL mode.
    assert!(store.list_jobs(JobQuery::default()).await.unwrap().is_empty());
    transaction.rollback().unwrap();

    store.insert_job(job("after".into())).await.unwrap();
}

/// The child half of `two_processes_write_one_database`: ignored in normal runs, started by that test
/// in a separate process with the database path in the environment.
#[tokio::test]
#[ignore = "run by two_processes_write_one_database as a child process"]
async fn child_process_writer() {
    let path = std::env::var_os(CHILD_DATABASE).expect("the parent test sets the database path");
    let store = Store::open(StoreOptions::new(path)).await.unwrap();
    for index in 0..150 {
        store.insert_job(job(format!("child-{index}"))).await.unwrap();
    }
    store.close().await;
}

const CHILD_DATABASE: &str = "COMFY_STORE_TEST_CHILD_DATABASE";

#[tokio::test]
async fn two_processes_write_one_database() {
    let directory = common::TempDirectory::new("two-processes");
    let path = directory.database();
    let store = Store::open(StoreOptions::new(&path)).await.unwrap();
    let executable = std::env::current_exe().unwrap();
    let mut child = tokio::process::Command::new(executable)
        .args(["child_process_writer", "--exact", "--ignored", "--quiet"])
        .env(CHILD_DATABASE, &path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The parent keeps writing until the child is done, so the two really overlap.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut parent_jobs = 0;
    let status = loop {
        store
            .insert_job(job(format!("parent-{parent_jobs}")))
            .await
            .unwrap();
        parent_jobs += 1;
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the child process did not finish"
        );
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stdout.take() {
        pipe.read_to_string(&mut stdout).await.unwrap();
    }
    if let Some(mut pipe) = child.stderr.take() {
        pipe.read_to_string(&mut stderr).await.unwrap();
    }
    assert!(status.success(), "child failed: {stdout}{stderr}");
    assert!(stdout.contains("1 passed"), "the child really ran: {stdout}");
    let jobs = store.list_jobs(JobQuery::default()).await.unwrap();
    assert_eq!(jobs.len(), 150 + parent_jobs);
    assert_eq!(
        jobs.iter().filter(|job| job.id.starts_with("child-")).count(),
        150
    );
    store.close().await;
    assert_integrity(&path);
}
