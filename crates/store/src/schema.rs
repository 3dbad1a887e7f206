//! The SQLite schema and its migrations.
//!
//! `PRAGMA user_version` counts the migrations a database file has had. On
//! open, the missing ones run in order, each in its own transaction together
//! with the version bump, so a crash leaves the file at one version or the
//! next, never in between. A shipped migration is never edited: changes are
//! new entries at the end.
//!
//! Conventions: timestamps are UTC unix milliseconds (INTEGER), which sort
//! and compare as numbers; enums are their lowercase names; lists that are
//! only ever read whole (sources, return items) are JSON text. Tables are
//! STRICT, so a value of the wrong type is an error rather than stored.

use rusqlite::{Connection, TransactionBehavior};

use crate::{Error, Result};

const MIGRATIONS: &[&str] = &[V1];

const V1: &str = r#"
CREATE TABLE conversations (
    id                  TEXT PRIMARY KEY,
    lang                TEXT NOT NULL,
    channel             TEXT NOT NULL,
    resume_token_sha256 TEXT NOT NULL UNIQUE,
    customer_id         TEXT,
    needs_human         TEXT,     -- why a person should take over; NULL when not
    note                TEXT,
    last_seq            INTEGER NOT NULL DEFAULT 0,  -- the seq of the latest message
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
) STRICT;
CREATE INDEX conversations_by_start ON conversations (created_at);
CREATE INDEX conversations_for_review ON conversations ((needs_human IS NOT NULL), updated_at);

CREATE TABLE conversation_tags (
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    tag             TEXT NOT NULL,
    PRIMARY KEY (conversation_id, tag)
) STRICT, WITHOUT ROWID;
CREATE INDEX conversation_tags_by_tag ON conversation_tags (tag);

CREATE TABLE messages (
    id              INTEGER PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    role            TEXT NOT NULL,
    text            TEXT NOT NULL,
    author          TEXT,
    state           TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    finished_at     INTEGER,
    -- How an answer ended; NULL until it has (and on other roles' messages).
    outcome         TEXT,
    sources         TEXT,         -- JSON: [{"id", "title", "url"}]
    model           TEXT,
    prompt_version  TEXT,
    ttft_ms         INTEGER,
    total_ms        INTEGER,
    tokens          INTEGER,
    tokens_per_s    REAL,
    gate_covered    INTEGER,
    gate_score      REAL,
    check_passed    INTEGER,
    check_reason    TEXT,
    feedback_rating TEXT,
    feedback_comment TEXT,
    UNIQUE (conversation_id, seq)
) STRICT;
-- Answers a killed process left streaming are looked for at every start.
CREATE INDEX messages_streaming ON messages (id) WHERE state = 'streaming';

-- Full-text search over message texts, kept in step by the triggers below.
-- Words, stemmed for English, for most searches; trigrams for Chinese, which
-- unicode61 cannot split into words (see search.rs).
CREATE VIRTUAL TABLE messages_words USING fts5 (
    text, content = 'messages', content_rowid = 'id',
    tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE VIRTUAL TABLE messages_trigrams USING fts5 (
    text, content = 'messages', content_rowid = 'id', tokenize = 'trigram'
);
CREATE TRIGGER messages_indexed AFTER INSERT ON messages BEGIN
    INSERT INTO messages_words (rowid, text) VALUES (new.id, new.text);
    INSERT INTO messages_trigrams (rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER messages_reindexed AFTER UPDATE OF text ON messages BEGIN
    INSERT INTO messages_words (messages_words, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO messages_trigrams (messages_trigrams, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO messages_words (rowid, text) VALUES (new.id, new.text);
    INSERT INTO messages_trigrams (rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER messages_unindexed AFTER DELETE ON messages BEGIN
    INSERT INTO messages_words (messages_words, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO messages_trigrams (messages_trigrams, rowid, text) VALUES ('delete', old.id, old.text);
END;

CREATE TABLE staff (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL,  -- argon2id, PHC string
    created_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE staff_sessions (
    token_sha256 TEXT PRIMARY KEY,
    staff_id     INTEGER NOT NULL REFERENCES staff (id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX staff_sessions_by_expiry ON staff_sessions (expires_at);

CREATE TABLE returns (
    id            INTEGER PRIMARY KEY,
    return_number TEXT NOT NULL UNIQUE,
    order_number  TEXT NOT NULL,
    customer_id   TEXT NOT NULL,
    items         TEXT NOT NULL,  -- JSON: ["sku", ...]
    reason        TEXT,
    created_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX returns_by_order ON returns (order_number);
"#;

/// Brings the database up to the newest schema.
pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    let supported = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    loop {
        // IMMEDIATE takes the write lock before reading the version, so two
        // processes opening a new file at once cannot both run a migration.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
        if version > supported {
            return Err(Error::SchemaTooNew { found: version, supported });
        }
        let Some(migration) = usize::try_from(version).ok().and_then(|v| MIGRATIONS.get(v)) else {
            return Ok(());
        };
        tx.execute_batch(migration)?;
        tx.pragma_update(None, "user_version", version + 1)?;
        tx.commit()?;
    }
}
