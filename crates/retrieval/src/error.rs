//! The retrieval crate's error type.
//!
//! User errors (a malformed FAQ file, an index that was never built or is
//! damaged) say what to fix or which command to run; internal errors (IO,
//! tantivy, a misbehaving embedding model) carry their cause.
//! [`Error::is_user_error`] tells callers which is which.

use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The command that (re)builds the search index; every index error names it.
pub const REBUILD_COMMAND: &str = "shopchat index";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no knowledge base at {}: the directory does not exist", path.display())]
    NoKnowledgeBase { path: PathBuf },

    #[error("{}: {reason}", location(path, *line))]
    MalformedFile { path: PathBuf, line: Option<usize>, reason: String },

    #[error("{}: passage id `{id}` is used twice", location(path, *line))]
    DuplicateId { id: String, path: PathBuf, line: Option<usize> },

    #[error("cannot import {}: the file name must end in .jsonl or .csv", path.display())]
    UnsupportedImport { path: PathBuf },

    #[error("the knowledge base is empty: there is nothing to index")]
    EmptyKnowledgeBase,

    #[error("no search index in {}; build it with `{REBUILD_COMMAND}`", dir.display())]
    IndexMissing { dir: PathBuf },

    #[error(
        "the search index in {} cannot be used ({reason}); rebuild it with `{REBUILD_COMMAND}`",
        dir.display()
    )]
    IndexCorrupt { dir: PathBuf, reason: String },

    /// Written by a version of ShopChat with another index layout. The index
    /// is made from the shop's files alone, so a server rebuilds it.
    #[error(
        "the search index in {} has format {found}, this version reads {expected}; rebuild it with `{REBUILD_COMMAND}`",
        dir.display()
    )]
    IndexOutdated { dir: PathBuf, found: u32, expected: u32 },

    #[error(transparent)]
    Embed(#[from] shopchat_core::EmbedError),

    /// The embedder answered, but not with one vector of the promised length
    /// per text: a bug in the embedder, not in the knowledge base.
    #[error("the embedding model misbehaved: {0}")]
    BadEmbedding(String),

    /// Tantivy failed while building or searching. The source is boxed so that
    /// tantivy's types stay out of this crate's public API.
    #[error("search index: {context}: {source}")]
    Index {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// True for errors caused by the shop's files or a missing or damaged
    /// index (fixed by editing a file or running [`REBUILD_COMMAND`]) rather
    /// than by a bug or a failing machine.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            Error::NoKnowledgeBase { .. }
                | Error::MalformedFile { .. }
                | Error::DuplicateId { .. }
                | Error::UnsupportedImport { .. }
                | Error::EmptyKnowledgeBase
                | Error::IndexMissing { .. }
                | Error::IndexCorrupt { .. }
                | Error::IndexOutdated { .. }
        )
    }

    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }

    pub(crate) fn index(context: impl Into<String>) -> impl FnOnce(tantivy::TantivyError) -> Error {
        let context = context.into();
        move |source| Error::Index { context, source: Box::new(source) }
    }

    pub(crate) fn malformed(path: &Path, line: Option<usize>, reason: impl Into<String>) -> Error {
        Error::MalformedFile { path: path.to_owned(), line, reason: reason.into() }
    }

    pub(crate) fn corrupt(dir: &Path, reason: impl Into<String>) -> Error {
        Error::IndexCorrupt { dir: dir.to_owned(), reason: reason.into() }
    }
}

/// `path:line`, the way compilers name a place in a file.
fn location(path: &Path, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("{}:{line}", path.display()),
        None => path.display().to_string(),
    }
}
