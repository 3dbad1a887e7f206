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

const MIGRATIONS: &[&str] = &[V1, V2];

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

/// Shopper messages carry the id the shopper's browser gave them, so that a
/// message resent after a dropped connection is recognised rather than
/// stored (and answered) twice. Only within one conversation: the ids come
/// from browsers and need not be unique across them. Older messages, and
/// messages of other roles, have none.
const V2: &str = r#"
ALTER TABLE messages ADD COLUMN client_id TEXT;
CREATE UNIQUE INDEX messages_by_client_id ON messages (conversation_id, client_id)
    WHERE client_id IS NOT NULL;
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

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::{MIGRATIONS, V1};
    use crate::{ConversationId, MessageState, Outcome, SqliteStore, Store};

    /// A file the first release wrote, one answer left streaming, opens with
    /// its messages intact and takes the newer operations.
    #[test]
    fn a_version_1_database_upgrades() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(V1).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute_batch(
                "INSERT INTO conversations \
                 (id, lang, channel, resume_token_sha256, last_seq, created_at, updated_at) \
                 VALUES ('old', 'en', 'web', 'digest', 2, 0, 0); \
                 INSERT INTO messages (conversation_id, seq, role, text, state, created_at) \
                 VALUES ('old', 1, 'shopper', 'hello', 'complete', 0), \
                        ('old', 2, 'assistant', '', 'streaming', 0);",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let c = ConversationId::from("old");
        let messages = store.messages_after(&c, 0).unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!((messages[0].text.as_str(), messages[0].client_id.as_deref()), ("hello", None));
        assert_eq!(messages[1].state, MessageState::Partial);
        assert_eq!(messages[1].answer.as_ref().map(|a| a.outcome), Some(Outcome::Error));

        let received = store.add_shopper_message(&c, "m-3", "still there?").unwrap();
        assert_eq!((received.message.seq, received.duplicate), (3, false));
        assert!(store.add_shopper_message(&c, "m-3", "still there?").unwrap().duplicate);
        drop(store);

        let version: i64 = Connection::open(&path)
            .unwrap()
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(usize::try_from(version).ok(), Some(MIGRATIONS.len()));
    }
}
