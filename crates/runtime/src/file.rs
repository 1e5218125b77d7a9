//! Reading plugin files (components and manifests) without trusting the file system.
//!
//! A plugins directory is written by teams, and a file there can be anything: a symlink
//! to `/dev/zero` (endless), a FIFO (an `open` that blocks until a writer appears), a
//! multi-gigabyte file, or a link out of the directory. Every plugin file sluice reads
//! goes through [`read_plugin_file`], which
//! 1. resolves symlinks and, when given a folder, refuses a target outside it;
//! 2. refuses anything but a regular file, looking at the type **before** opening (so a
//!    FIFO is never opened for a blocking read);
//! 3. opens non-blocking and checks the type again on the handle (a file swapped for a
//!    FIFO between the two steps is caught without blocking);
//! 4. reads at most `max_bytes + 1` bytes, so an oversized or growing file costs at most
//!    the cap in memory.
//!
//! Each refusal is a [`PluginFileError`] naming the file and the [`FileRule`] it broke.

use std::fs::File;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// The default cap on a component's size. The largest real plugins are a Python
/// interpreter (~40 MB) and a JavaScript engine (~12 MB); 256 MiB leaves room for six
/// times that while a misplaced disk image or a device is refused.
pub const DEFAULT_MAX_PLUGIN_BYTES: u64 = 256 << 20;

/// The cap on a manifest's size: a manifest is a few hundred bytes of TOML.
pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;

/// Which rule a plugin file broke (the `rule` field of the refusal's log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRule {
    /// The file resolves (through symlinks) outside the folder it must stay in.
    OutsideFolder,
    /// A manifest's `path` is absolute or climbs with `..`.
    PathNotConfined,
    /// Not a regular file (a device, FIFO, socket or directory).
    NotRegularFile,
    /// Larger than the configured cap.
    TooLarge,
    /// The file could not be read at all (missing, permissions).
    Unreadable,
}

impl FileRule {
    /// The rule's name in logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            FileRule::OutsideFolder => "outside_folder",
            FileRule::PathNotConfined => "path_not_confined",
            FileRule::NotRegularFile => "not_regular_file",
            FileRule::TooLarge => "too_large",
            FileRule::Unreadable => "unreadable",
        }
    }
}

impl std::fmt::Display for FileRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A plugin file refused by [`read_plugin_file`]: which file, which rule, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: refused ({rule}): {detail}", super::log::printable_path(path))]
pub struct PluginFileError {
    pub path: PathBuf,
    pub rule: FileRule,
    pub detail: String,
}

impl PluginFileError {
    fn new(path: &Path, rule: FileRule, detail: impl Into<String>) -> Self {
        Self {
            path: path.to_owned(),
            rule,
            detail: detail.into(),
        }
    }
}

/// Reads the plugin file at `path`: a regular file of at most `max_bytes` bytes that,
/// with symlinks resolved, lies inside `folder` when one is given (see the module docs).
pub fn read_plugin_file(
    path: &Path,
    folder: Option<&Path>,
    max_bytes: u64,
) -> Result<Vec<u8>, PluginFileError> {
    let unreadable =
        |e: std::io::Error| PluginFileError::new(path, FileRule::Unreadable, e.to_string());
    let resolved = std::fs::canonicalize(path).map_err(unreadable)?;
    if let Some(folder) = folder {
        let folder = std::fs::canonicalize(folder).map_err(unreadable)?;
        if !resolved.starts_with(&folder) {
            return Err(PluginFileError::new(
                path,
                FileRule::OutsideFolder,
                format!(
                    "resolves to {}, outside {}",
                    super::log::printable_path(&resolved),
                    super::log::printable_path(&folder)
                ),
            ));
        }
    }
    // The type before opening: opening a FIFO for reading blocks until a writer comes.
    let metadata = std::fs::metadata(&resolved).map_err(unreadable)?;
    check_regular(path, &metadata.file_type(), metadata.len(), max_bytes)?;
    let file = open_nonblocking(&resolved).map_err(unreadable)?;
    // Again on the handle: the name may have been swapped for something else meanwhile.
    let metadata = file.metadata().map_err(unreadable)?;
    check_regular(path, &metadata.file_type(), metadata.len(), max_bytes)?;
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_large(path, max_bytes));
    }
    Ok(bytes)
}

fn check_regular(
    path: &Path,
    kind: &std::fs::FileType,
    len: u64,
    max_bytes: u64,
) -> Result<(), PluginFileError> {
    if !kind.is_file() {
        return Err(PluginFileError::new(
            path,
            FileRule::NotRegularFile,
            format!("is a {}, not a regular file", describe_type(kind)),
        ));
    }
    if len > max_bytes {
        return Err(too_large(path, max_bytes));
    }
    Ok(())
}

fn too_large(path: &Path, max_bytes: u64) -> PluginFileError {
    PluginFileError::new(
        path,
        FileRule::TooLarge,
        format!("larger than the cap of {max_bytes} bytes (runtime.max_plugin_size)"),
    )
}

fn describe_type(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_dir() {
        "directory"
    } else if kind.is_fifo() {
        "FIFO"
    } else if kind.is_char_device() {
        "character device"
    } else if kind.is_block_device() {
        "block device"
    } else if kind.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

/// Checks that a manifest's `path` (as written) names a file inside the manifest's own
/// folder: relative, no `..`, no root. Symlinks are checked when the file is read.
pub fn check_confined(manifest: &Path, written: &Path) -> Result<(), PluginFileError> {
    let bad = written
        .components()
        .find(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
    match bad {
        None => Ok(()),
        Some(_) => Err(PluginFileError::new(
            manifest,
            FileRule::PathNotConfined,
            format!(
                "path {} must be relative to the manifest's folder, without `..`",
                super::log::printable_path(written)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_regular_file_within_the_cap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("a.wasm");
        std::fs::write(&file, b"0123456789").expect("write");
        assert_eq!(
            read_plugin_file(&file, Some(dir.path()), 10).expect("fits"),
            b"0123456789"
        );
        let err = read_plugin_file(&file, Some(dir.path()), 9).expect_err("over the cap");
        assert_eq!(err.rule, FileRule::TooLarge);
    }

    #[test]
    fn refuses_devices_and_links_out_of_the_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let link = dir.path().join("zero.wasm");
        std::os::unix::fs::symlink("/dev/zero", &link).expect("symlink");
        let err = read_plugin_file(&link, None, 1 << 20).expect_err("device");
        assert_eq!(err.rule, FileRule::NotRegularFile, "{err}");
        assert!(err.to_string().contains("character device"), "{err}");
        let err = read_plugin_file(&link, Some(dir.path()), 1 << 20).expect_err("outside");
        assert_eq!(err.rule, FileRule::OutsideFolder, "{err}");
    }

    #[test]
    fn manifest_paths_stay_in_their_folder() {
        let manifest = Path::new("/p/team/a.toml");
        assert!(check_confined(manifest, Path::new("a.wasm")).is_ok());
        assert!(check_confined(manifest, Path::new("./build/a.wasm")).is_ok());
        for bad in ["../other/b.wasm", "/tmp/x.wasm", "build/../../b.wasm"] {
            let err = check_confined(manifest, Path::new(bad)).expect_err(bad);
            assert_eq!(err.rule, FileRule::PathNotConfined);
        }
    }
}
