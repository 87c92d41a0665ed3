//! Reading and writing this machine's files for tools that are allowed to (stdio by default).
//!
//! Reads accept only regular files and are bounded by the bytes actually read, not by what
//! `metadata().len()` claims: devices such as `/dev/zero` report 0 and never end, `/proc` files
//! report 0 and have content, and a FIFO blocks its opener until a writer appears. Writes go to a
//! temporary file beside the target and are renamed into place, so a target is never left
//! half-written, and an existing file is replaced only when the caller says so.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

/// Largest image read from a local path (a 16k x 16k PNG compresses well below this).
pub const MAXIMUM_IMAGE_BYTES: u64 = 128 * 1024 * 1024;
/// Largest workflow or preset bundle read from a local path.
pub const MAXIMUM_DOCUMENT_BYTES: u64 = 32 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum LocalFileError {
    #[error("{path} is {kind}, not a regular file; only regular files are read")]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{path} holds more than {limit} bytes, the most this tool reads")]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("{path} already exists; pass overwrite: true to replace it")]
    Exists { path: PathBuf },
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> LocalFileError + 'a {
    move |source| LocalFileError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

fn kind_of(file_type: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if file_type.is_fifo() {
            return "a FIFO";
        }
        if file_type.is_char_device() || file_type.is_block_device() {
            return "a device";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    if file_type.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// Reads `path` whole when it is a regular file of at most `limit` bytes.
pub async fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, LocalFileError> {
    let path = path.to_owned();
    // Blocking file IO belongs off the async workers.
    tokio::task::spawn_blocking(move || read_bounded_blocking(&path, limit))
        .await
        .unwrap_or_else(|error| {
            Err(LocalFileError::Io {
                action: "read",
                path: PathBuf::new(),
                source: std::io::Error::other(error),
            })
        })
}

fn read_bounded_blocking(path: &Path, limit: u64) -> Result<Vec<u8>, LocalFileError> {
    // Checked before opening: opening a FIFO would block until a writer appears.
    let metadata = fs_err::metadata(path).map_err(io_error("read", path))?;
    if !metadata.is_file() {
        return Err(LocalFileError::NotRegular {
            path: path.to_owned(),
            kind: kind_of(metadata.file_type()),
        });
    }
    let file = fs_err::File::open(path).map_err(io_error("open", path))?;
    // And again on the open file, in case the path was swapped in between.
    let opened = file.metadata().map_err(io_error("read", path))?;
    if !opened.is_file() {
        return Err(LocalFileError::NotRegular {
            path: path.to_owned(),
            kind: kind_of(opened.file_type()),
        });
    }
    let expected = usize::try_from(opened.len().min(limit)).unwrap_or(0);
    let mut bytes = Vec::with_capacity(expected);
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_error("read", path))?;
    if bytes.len() as u64 > limit {
        return Err(LocalFileError::TooLarge {
            path: path.to_owned(),
            limit,
        });
    }
    Ok(bytes)
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename; refuses
/// an existing `path` unless `overwrite`.
pub async fn write_atomically(path: &Path, bytes: Vec<u8>, overwrite: bool) -> Result<(), LocalFileError> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || write_atomically_blocking(&path, &bytes, overwrite))
        .await
        .unwrap_or_else(|error| {
            Err(LocalFileError::Io {
                action: "write",
                path: PathBuf::new(),
                source: std::io::Error::other(error),
            })
        })
}

fn write_atomically_blocking(path: &Path, bytes: &[u8], overwrite: bool) -> Result<(), LocalFileError> {
    let exists = || LocalFileError::Exists {
        path: path.to_owned(),
    };
    if !overwrite && fs_err::symlink_metadata(path).is_ok() {
        return Err(exists());
    }
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .map_or_else(|| "output".into(), |name| name.to_string_lossy().into_owned());
    let temporary = directory.join(format!(".{file_name}.{}.partial", uuid::Uuid::new_v4().simple()));
    let result = (|| {
        let mut file = fs_err::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temporary)
            .map_err(io_error("create", &temporary))?;
        file.write_all(bytes).map_err(io_error("write", &temporary))?;
        file.sync_all().map_err(io_error("write", &temporary))?;
        if overwrite {
            fs_err::rename(&temporary, path).map_err(io_error("write", path))
        } else {
            // A hard link fails if the target appeared meanwhile, which a rename would replace.
            match fs_err::hard_link(&temporary, path) {
                Ok(()) => Ok(()),
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Err(exists()),
                Err(_) if fs_err::symlink_metadata(path).is_ok() => Err(exists()),
                // Filesystems without hard links: the check above is the best there is.
                Err(_) => fs_err::rename(&temporary, path).map_err(io_error("write", path)),
            }
        }
    })();
    let _ = fs_err::remove_file(&temporary);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let directory = std::env::temp_dir().join(format!("comfyui-mcp-local-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&directory).unwrap();
        directory.join(name)
    }

    #[tokio::test]
    async fn devices_and_directories_are_refused_without_reading() {
        for path in ["/dev/zero", "/dev/urandom", "/tmp"] {
            let error = read_bounded(Path::new(path), 1024).await.unwrap_err();
            assert!(
                matches!(error, LocalFileError::NotRegular { .. }),
                "{path}: {error}"
            );
        }
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_fifo_is_refused_at_once() {
        let path = scratch("pipe");
        let status = std::process::Command::new("mkfifo").arg(&path).status().unwrap();
        assert!(status.success());
        let answer = tokio::time::timeout(std::time::Duration::from_secs(5), read_bounded(&path, 1024)).await;
        let error = answer.expect("a FIFO must not block the read").unwrap_err();
        assert!(error.to_string().contains("a FIFO"), "{error}");
    }

    #[tokio::test]
    async fn reads_are_bounded_by_what_is_read() {
        let path = scratch("big.bin");
        std::fs::write(&path, vec![7u8; 4097]).unwrap();
        assert!(matches!(
            read_bounded(&path, 4096).await,
            Err(LocalFileError::TooLarge { limit: 4096, .. })
        ));
        assert_eq!(read_bounded(&path, 4097).await.unwrap().len(), 4097);
    }

    #[tokio::test]
    async fn writes_never_replace_unless_asked() {
        let path = scratch("catalog.json");
        write_atomically(&path, b"first".to_vec(), false).await.unwrap();
        let error = write_atomically(&path, b"second".to_vec(), false)
            .await
            .unwrap_err();
        assert!(matches!(error, LocalFileError::Exists { .. }), "{error}");
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        write_atomically(&path, b"third".to_vec(), true).await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"third");
        let leftovers = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file is left behind");
    }
}
