//! The store's connections and the threads that own them. One writer thread holds the only write
//! connection and runs write commands one at a time in order; one reader thread holds a `query_only`
//! connection so reads see committed data (WAL) without waiting behind writes. Async callers send
//! closures over a bounded channel and await a `oneshot` reply, so they never block a runtime thread.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use crate::error::{StoreError, classify};
use crate::migrations;

/// How many commands may wait for a connection thread before senders are made to wait.
const QUEUE_CAPACITY: usize = 256;

/// How to open a store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The database file. Its directory is created when missing.
    pub path: PathBuf,
    /// How long a statement waits for a lock held by another connection or process before it fails
    /// with [`StoreError::Busy`].
    pub busy_timeout: Duration,
    /// How many failed share redemptions (wrong code or password) one client may make per window.
    pub share_attempt_limit: u32,
    /// The sliding window for [`StoreOptions::share_attempt_limit`].
    pub share_attempt_window: Duration,
}

impl StoreOptions {
    /// Options with defaults for the database at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StoreOptions {
            path: path.into(),
            busy_timeout: Duration::from_secs(5),
            share_attempt_limit: 10,
            share_attempt_window: Duration::from_secs(15 * 60),
        }
    }

    /// Options for the database at [`crate::default_database_path`].
    pub fn at_default_path() -> Result<Self, StoreError> {
        Ok(StoreOptions::new(crate::paths::default_database_path()?))
    }
}

type Command = Box<dyn FnOnce(&mut Connection) + Send>;

enum Message {
    Run(Command),
    Close(oneshot::Sender<()>),
}

/// A handle to the store. Cheap to clone; every clone talks to the same connection threads. The
/// threads end when [`Store::close`] is called or the last clone is dropped.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

struct Shared {
    options: StoreOptions,
    writer: mpsc::Sender<Message>,
    reader: mpsc::Sender<Message>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Store")
            .field("path", &self.shared.options.path)
            .finish()
    }
}

impl Store {
    /// Opens (or creates) the database, applies pending migrations and starts the connection threads.
    ///
    /// A file that is not an SQLite database gives [`StoreError::Corrupt`] and is left as it was. A
    /// database written by a newer build gives [`StoreError::SchemaTooNew`].
    pub async fn open(options: StoreOptions) -> Result<Store, StoreError> {
        let path = options.path.clone();
        if let Some(directory) = path
            .parent()
            .filter(|directory| !directory.as_os_str().is_empty())
        {
            let directory = directory.to_path_buf();
            let created = tokio::task::spawn_blocking({
                let directory = directory.clone();
                move || std::fs::create_dir_all(&directory)
            })
            .await
            .map_err(|join_error| StoreError::CreateDirectory {
                path: directory.clone(),
                source: std::io::Error::other(join_error.to_string()),
            })?;
            created.map_err(|source| StoreError::CreateDirectory {
                path: directory,
                source,
            })?;
        }
        let busy_timeout = options.busy_timeout;
        // The writer opens first and migrates, so the reader always sees a complete schema.
        let writer = spawn_connection_thread("comfy-store-writer", &path, move |path| {
            let mut connection = open_connection(path, busy_timeout)?;
            configure_writer(&connection)?;
            migrations::apply(&mut connection, path)?;
            Ok(connection)
        })
        .await?;
        let reader = spawn_connection_thread("comfy-store-reader", &path, move |path| {
            let connection = open_connection(path, busy_timeout)?;
            connection
                .pragma_update(None, "query_only", true)
                .map_err(|error| classify(error, path))?;
            Ok(connection)
        })
        .await?;
        Ok(Store {
            shared: Arc::new(Shared {
                options,
                writer,
                reader,
            }),
        })
    }

    /// The database file this store uses.
    pub fn path(&self) -> &Path {
        &self.shared.options.path
    }

    pub(crate) fn options(&self) -> &StoreOptions {
        &self.shared.options
    }

    /// Stops both connection threads after the commands already queued; later calls on any clone
    /// return [`StoreError::Closed`]. Closing the last connection checkpoints the WAL.
    pub async fn close(&self) {
        for sender in [&self.shared.writer, &self.shared.reader] {
            let (reply, done) = oneshot::channel();
            if sender.send(Message::Close(reply)).await.is_ok() {
                // An error only means the thread has already gone, which is what we wanted.
                let _ = done.await;
            }
        }
    }

    /// Runs `work` inside an immediate transaction on the writer thread and commits it when `work`
    /// returns `Ok`. Immediate transactions take the write lock up front, so the busy timeout applies
    /// instead of a read lock failing to upgrade half way through.
    pub(crate) async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.write_outcome(move |transaction| match work(transaction) {
            Ok(value) => (Ok(value), true),
            Err(error) => (Err(error), false),
        })
        .await
    }

    /// Like [`Store::write`], but `work` decides whether to commit independently of its result; a
    /// refused share redemption must commit the attempt it records and still return an error.
    pub(crate) async fn write_outcome<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> (Result<T, StoreError>, bool) + Send + 'static,
    {
        self.run(&self.shared.writer, move |connection| {
            let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let (result, commit) = work(&transaction);
            if commit {
                transaction.commit()?;
            }
            // Without commit the transaction rolls back when dropped.
            result
        })
        .await
    }

    /// Runs `work` inside a read transaction on the reader thread, so all its queries see one snapshot.
    pub(crate) async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.run(&self.shared.reader, move |connection| {
            let transaction = connection.transaction()?;
            work(&transaction)
        })
        .await
    }

    async fn run<T, F>(&self, sender: &mpsc::Sender<Message>, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, result) = oneshot::channel();
        let path = self.shared.options.path.clone();
        let command: Command = Box::new(move |connection| {
            let outcome = work(connection).map_err(|error| error.with_path(&path));
            // The caller may have stopped waiting; the work is done either way.
            let _ = reply.send(outcome);
        });
        sender
            .send(Message::Run(command))
            .await
            .map_err(|_| StoreError::Closed)?;
        result.await.map_err(|_| StoreError::Closed)?
    }
}

fn open_connection(path: &Path, busy_timeout: Duration) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let connection = Connection::open_with_flags(path, flags).map_err(|error| classify(error, path))?;
    connection
        .busy_timeout(busy_timeout)
        .map_err(|error| classify(error, path))?;
    // Reading the schema first makes a file that is not a database fail here, before any pragma could
    // write to it.
    connection
        .query_row("SELECT count(*) FROM sqlite_schema", [], |row| {
            row.get::<_, i64>(0)
        })
        .map_err(|error| classify(error, path))?;
    connection
        .pragma_update(None, "foreign_keys", true)
        .map_err(|error| classify(error, path))?;
    Ok(connection)
}

fn configure_writer(connection: &Connection) -> Result<(), StoreError> {
    let path = connection.path().map(PathBuf::from).unwrap_or_default();
    // WAL lets the reader connection and other processes read while this one writes; NORMAL sync is
    // durable across application crashes and keeps the database consistent across power loss.
    let mode: String = connection
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(|error| classify(error, &path))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(crate::error::invalid(
            "database path",
            format!("SQLite refused WAL mode (got {mode})"),
        ));
    }
    connection
        .pragma_update(None, "synchronous", "NORMAL")
        .map_err(|error| classify(error, &path))?;
    Ok(())
}

/// Starts a thread that opens its connection with `open` and then serves commands until closed. The
/// returned future resolves once the connection is open, or with the error that prevented it.
async fn spawn_connection_thread<O>(
    name: &str,
    path: &Path,
    open: O,
) -> Result<mpsc::Sender<Message>, StoreError>
where
    O: FnOnce(&Path) -> Result<Connection, StoreError> + Send + 'static,
{
    let (sender, mut receiver) = mpsc::channel::<Message>(QUEUE_CAPACITY);
    let (ready, opened) = oneshot::channel::<Result<(), StoreError>>();
    let thread_path = path.to_path_buf();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let mut connection = match open(&thread_path) {
                Ok(connection) => {
                    let _ = ready.send(Ok(()));
                    connection
                }
                Err(error) => {
                    let _ = ready.send(Err(error));
                    return;
                }
            };
            while let Some(message) = receiver.blocking_recv() {
                match message {
                    Message::Run(command) => command(&mut connection),
                    Message::Close(done) => {
                        drop(connection);
                        let _ = done.send(());
                        return;
                    }
                }
            }
        })
        .map_err(|source| StoreError::Thread {
            path: path.to_path_buf(),
            source,
        })?;
    opened.await.map_err(|_| StoreError::Closed)??;
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::{JobQuery, NewJob};

    fn job(id: &str, request_bytes: usize) -> NewJob {
        NewJob {
            id: id.to_owned(),
            workflow: None,
            client: None,
            priority: 0,
            request: serde_json::Value::String("x".repeat(request_bytes)),
        }
    }

    #[tokio::test]
    async fn a_full_disk_rolls_back_the_write_and_keeps_earlier_data() {
        let directory = std::env::temp_dir().join(format!(
            "comfy-store-full-{}-{}",
            std::process::id(),
            crate::now_ms()
        ));
        let store = Store::open(StoreOptions::new(directory.join("full.sqlite3")))
            .await
            .unwrap();
        store.insert_job(job("small", 10)).await.unwrap();
        // SQLite reports a database at max_page_count exactly as it reports a full disk.
        store
            .write(|transaction| {
                let pages: i64 = transaction.query_row("PRAGMA page_count", [], |row| row.get(0))?;
                transaction.pragma_update(None, "max_page_count", pages + 2)?;
                Ok(())
            })
            .await
            .unwrap();
        let error = store.insert_job(job("large", 200_000)).await.unwrap_err();
        assert!(matches!(error, StoreError::DiskFull { .. }), "{error}");
        let large_output = crate::outputs::NewOutput {
            job_id: None,
            prompt_text: format!("zebra {}", "words ".repeat(40_000)),
            parameters: serde_json::json!({}),
            model: None,
            seed: None,
            width: None,
            height: None,
            media_type: "image/png".to_owned(),
            file: crate::outputs::FileReference {
                backend_id: "b".to_owned(),
                filename: "big.png".to_owned(),
                subfolder: String::new(),
                file_type: "output".to_owned(),
            },
            perceptual_hash: None,
            created_at_ms: 0,
        };
        let error = store.add_output(large_output).await.unwrap_err();
        assert!(matches!(error, StoreError::DiskFull { .. }), "{error}");
        let query = crate::outputs::OutputQuery {
            text: Some("zebra".to_owned()),
            ..Default::default()
        };
        assert!(
            store.search_outputs(query).await.unwrap().is_empty(),
            "neither the row nor its index entry"
        );
        store
            .write(|transaction| {
                // Raises an error if the full-text index disagrees with the outputs table.
                transaction.execute(
                    "INSERT INTO outputs_search (outputs_search) VALUES ('integrity-check')",
                    [],
                )?;
                Ok(())
            })
            .await
            .unwrap();
        let jobs = store.list_jobs(JobQuery::default()).await.unwrap();
        let ids: Vec<&str> = jobs.iter().map(|job| job.id.as_str()).collect();
        assert_eq!(ids, ["small"]);
        store.insert_job(job("small-again", 10)).await.unwrap();
        store.close().await;
        let _ = std::fs::remove_dir_all(directory);
    }
}
