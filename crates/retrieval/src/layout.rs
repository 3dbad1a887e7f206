//! Where an index lives on disk, and switching generations atomically.
//!
//! ```text
//! <data_dir>/index/
//!   CURRENT              "gen-7\n": the generation servers open
//!   gen-6/               the previous generation, kept for readers still on it
//!   gen-7/
//!     tantivy/           the tantivy index
//!     vectors.json       passage ids, dimension, model id and vectors (optional)
//!     manifest.json      written last: a generation without it is incomplete
//! ```
//!
//! A build writes a whole new `gen-<n>` and only then replaces `CURRENT`
//! (temp file, fsync, rename), so a server that opens or reloads the index
//! sees either the old generation or the new one, never a mixture. Builds
//! hold an exclusive lock on `index/LOCK` from choosing their generation to
//! removing old ones, so two at once (the staff API's re-index and the CLI
//! against a live server) run one after the other and never remove each
//! other's generation.

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Bumped whenever the schema or the files of a generation change, so that
/// an index from another version asks to be rebuilt instead of misbehaving.
pub(crate) const FORMAT_VERSION: u32 = 2;

const CURRENT: &str = "CURRENT";
const LOCK: &str = "LOCK";
const PREFIX: &str = "gen-";

/// What a generation holds, written when it is complete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub format: u32,
    pub passages: usize,
    /// Set when the generation has a `vectors.json`.
    pub model_id: Option<String>,
}

pub(crate) fn index_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("index")
}

pub(crate) fn generation_dir(data_dir: &Path, generation: u64) -> PathBuf {
    index_dir(data_dir).join(format!("{PREFIX}{generation}"))
}

pub(crate) fn tantivy_dir(generation_dir: &Path) -> PathBuf {
    generation_dir.join("tantivy")
}

pub(crate) fn vectors_path(generation_dir: &Path) -> PathBuf {
    generation_dir.join("vectors.json")
}

pub(crate) fn manifest_path(generation_dir: &Path) -> PathBuf {
    generation_dir.join("manifest.json")
}

/// The generation `CURRENT` points to.
pub(crate) fn read_current(data_dir: &Path) -> Result<u64> {
    let index_dir = index_dir(data_dir);
    let path = index_dir.join(CURRENT);
    let content = match fs::read_to_string(&path) {
        Ok(content) => content,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::IndexMissing { dir: index_dir });
        }
        Err(e) => return Err(Error::io(format!("cannot read {}", path.display()))(e)),
    };
    parse_generation(content.trim())
        .ok_or_else(|| Error::corrupt(&index_dir, format!("{CURRENT} holds {:?}", content.trim())))
}

fn parse_generation(name: &str) -> Option<u64> {
    name.strip_prefix(PREFIX)?.parse().ok()
}

/// Every `gen-<n>` directory, complete or not.
pub(crate) fn generations(data_dir: &Path) -> Result<Vec<u64>> {
    let dir = index_dir(data_dir);
    let listing = match fs::read_dir(&dir) {
        Ok(listing) => listing,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("cannot list {}", dir.display()))(e)),
    };
    let mut found = Vec::new();
    for entry in listing {
        let entry = entry.map_err(Error::io(format!("cannot list {}", dir.display())))?;
        if let Some(generation) = entry.file_name().to_str().and_then(parse_generation) {
            found.push(generation);
        }
    }
    found.sort_unstable();
    Ok(found)
}

/// Waits for, and holds until the file is dropped, the exclusive lock of
/// the index directory: an OS file lock, so it also holds between
/// processes, and is let go if the holder dies.
pub(crate) fn lock_index(data_dir: &Path) -> Result<File> {
    let index_dir = index_dir(data_dir);
    fs::create_dir_all(&index_dir)
        .map_err(Error::io(format!("cannot create {}", index_dir.display())))?;
    let path = index_dir.join(LOCK);
    let context = || format!("cannot lock {}", path.display());
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(Error::io(context()))?;
    file.lock().map_err(Error::io(context()))?;
    Ok(file)
}

/// Creates the directory of a new generation numbered above every existing
/// one. `create_dir` fails on an existing directory, so two builds running
/// at once never write into the same generation.
pub(crate) fn create_generation(data_dir: &Path) -> Result<(u64, PathBuf)> {
    let index_dir = index_dir(data_dir);
    fs::create_dir_all(&index_dir)
        .map_err(Error::io(format!("cannot create {}", index_dir.display())))?;
    let mut generation = generations(data_dir)?.last().map_or(1, |last| last + 1);
    loop {
        let dir = generation_dir(data_dir, generation);
        match fs::create_dir(&dir) {
            Ok(()) => return Ok((generation, dir)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => generation += 1,
            Err(e) => return Err(Error::io(format!("cannot create {}", dir.display()))(e)),
        }
    }
}

/// Points `CURRENT` at `generation`: a reader of `CURRENT` sees the old
/// content or the new one, never a partial write, even after a crash.
pub(crate) fn switch_current(data_dir: &Path, generation: u64) -> Result<()> {
    let index_dir = index_dir(data_dir);
    let temp = index_dir.join(format!("{CURRENT}.tmp"));
    write_synced(&temp, format!("{PREFIX}{generation}\n").as_bytes())?;
    let current = index_dir.join(CURRENT);
    fs::rename(&temp, &current)
        .map_err(Error::io(format!("cannot replace {}", current.display())))?;
    sync_dir(&index_dir)
}

/// Writes a file and flushes it to the disk before returning.
pub(crate) fn write_synced(path: &Path, content: &[u8]) -> Result<()> {
    let context = || format!("cannot write {}", path.display());
    let mut file = File::create(path).map_err(Error::io(context()))?;
    file.write_all(content).map_err(Error::io(context()))?;
    file.sync_all().map_err(Error::io(context()))
}

/// Makes renames and new files in `dir` durable. Directories cannot be
/// opened as files on Windows, where the rename itself is durable enough.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    if cfg!(unix) {
        File::open(dir)
            .and_then(|dir| dir.sync_all())
            .map_err(Error::io(format!("cannot sync {}", dir.display())))?;
    }
    Ok(())
}

/// Removes every generation except those in `keep`. Failing to remove one
/// only wastes disk space, so it is logged rather than returned.
pub(crate) fn remove_generations_except(data_dir: &Path, keep: &[u64]) -> Result<()> {
    for generation in generations(data_dir)? {
        if keep.contains(&generation) {
            continue;
        }
        let dir = generation_dir(data_dir, generation);
        // A process may still have this generation open: on Unix its mapped
        // files stay readable until it lets go of them.
        if let Err(error) = fs::remove_dir_all(&dir) {
            tracing::warn!(dir = %dir.display(), %error, "cannot remove an old index generation");
        }
    }
    Ok(())
}

pub(crate) fn read_manifest(generation_dir: &Path) -> Result<Manifest> {
    let path = manifest_path(generation_dir);
    let manifest: Manifest = fs::read_to_string(&path)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
        .map_err(|reason| {
            Error::corrupt(generation_dir, format!("{}: {reason}", path.display()))
        })?;
    if manifest.format != FORMAT_VERSION {
        return Err(Error::IndexOutdated {
            dir: generation_dir.to_owned(),
            found: manifest.format,
            expected: FORMAT_VERSION,
        });
    }
    Ok(manifest)
}
