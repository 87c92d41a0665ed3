//! Where the database lives by default: the platform's per-user data directory, so that the store
//! survives reinstalls and is not mixed with configuration or cache.

use std::path::PathBuf;

use crate::error::StoreError;

/// The directory name under the platform data directory.
pub const APPLICATION_DIRECTORY: &str = "comfyui-mcp";
/// The database file name inside [`APPLICATION_DIRECTORY`].
pub const DATABASE_FILE_NAME: &str = "comfyui-mcp.sqlite3";

/// `<data dir>/comfyui-mcp/comfyui-mcp.sqlite3`, where the data directory is `$XDG_DATA_HOME` or
/// `~/.local/share` on Linux and other Unix systems, `~/Library/Application Support` on macOS and
/// `%APPDATA%` on Windows.
pub fn default_database_path() -> Result<PathBuf, StoreError> {
    let data_directory = platform_data_directory().ok_or(StoreError::NoDataDirectory)?;
    Ok(data_directory
        .join(APPLICATION_DIRECTORY)
        .join(DATABASE_FILE_NAME))
}

fn environment_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .map(PathBuf::from)
        .filter(|path| path.is_absolute())
}

#[cfg(target_os = "windows")]
fn platform_data_directory() -> Option<PathBuf> {
    environment_path("APPDATA")
}

#[cfg(target_os = "macos")]
fn platform_data_directory() -> Option<PathBuf> {
    environment_path("HOME").map(|home| home.join("Library").join("Application Support"))
}

#[cfg(not(any(target_os = "windows", target_os = "macos")))]
fn platform_data_directory() -> Option<PathBuf> {
    // The XDG base directory specification says a relative XDG_DATA_HOME is invalid and must be ignored.
    environment_path("XDG_DATA_HOME")
        .or_else(|| environment_path("HOME").map(|home| home.join(".local").join("share")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_path_ends_with_the_application_file() {
        // HOME is set on every machine that runs the tests; without it the function must say so.
        match default_database_path() {
            Ok(path) => {
                assert!(path.is_absolute());
                assert!(path.ends_with(format!("{APPLICATION_DIRECTORY}/{DATABASE_FILE_NAME}")));
            }
            Err(error) => assert!(matches!(error, StoreError::NoDataDirectory)),
        }
    }
}
