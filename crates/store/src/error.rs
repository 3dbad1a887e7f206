//! The store's error type.
//!
//! User errors (an unknown id, a taken staff name, a weak password, bad
//! input) say what was wrong with the request; internal errors (the
//! database, the disk, the random number generator) carry their cause.
//! [`Error::is_user_error`] tells the server which is which, so that it can
//! answer 4xx for the first and log and answer 500 for the second.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{kind} `{id}` not found")]
    NotFound { kind: &'static str, id: String },

    #[error("{kind} `{key}` already exists")]
    AlreadyExists { kind: &'static str, key: String },

    #[error("the password is too short: use at least {min_chars} characters")]
    WeakPassword { min_chars: usize },

    #[error("invalid input: {0}")]
    InvalidInput(String),

    #[error("cannot open the database {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    #[error("the database has schema version {found}, newer than the {supported} this build knows: upgrade ShopChat")]
    SchemaTooNew { found: i64, supported: i64 },

    #[error("the database could not switch to WAL journaling (it is in `{0}` mode); is it on a network file system?")]
    NoWal(String),

    #[error("database: {0}")]
    Database(#[from] rusqlite::Error),

    #[error("password hashing: {0}")]
    PasswordHash(#[from] argon2::password_hash::Error),

    #[error("the system random number generator failed: {0}")]
    Random(String),

    #[error("no free return number found after {0} tries")]
    NoFreeReturnNumber(u32),

    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),

    #[error("CSV: {0}")]
    Csv(#[from] csv::Error),

    #[error("writing the export: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// True for errors caused by the request rather than by a bug or a
    /// failing machine.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            Error::NotFound { .. }
                | Error::AlreadyExists { .. }
                | Error::WeakPassword { .. }
                | Error::InvalidInput(_)
        )
    }

    pub(crate) fn not_found(kind: &'static str, id: impl ToString) -> Error {
        Error::NotFound { kind, id: id.to_string() }
    }
}
