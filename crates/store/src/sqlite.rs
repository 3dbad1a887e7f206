//! [`SqliteStore`]: the [`Store`] on one SQLite file.
//!
//! One process owns the file. It writes through a single connection, one
//! transaction at a time, and reads through a small pool of others: in WAL
//! mode readers see the last commit without waiting for the writer or
//! holding it up, so a staff export never delays a shopper's message.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, Type, Value, ValueRef};
use rusqlite::{
    named_params, params, params_from_iter, Connection, OptionalExtension, Row, ToSql, Transaction,
    TransactionBehavior,
};
use time::OffsetDateTime;

use crate::export::{self, CsvExport};
use crate::model::*;
use crate::search::{self, TextQuery};
use crate::{schema, secret, Error, Result, Store};

mod rows;
mod writes;

use rows::*;
use writes::*;

/// How long a statement waits for a lock held by another process (a backup,
/// the `sqlite3` shell) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Read connections kept open between uses. When all are busy another is
/// opened (that takes well under a millisecond) and closed after its use.
const IDLE_READERS: usize = 4;
/// Resume tokens shorter than this could be guessed.
const MIN_RESUME_TOKEN_CHARS: usize = 16;
/// Attempts to draw a return number that is not taken yet.
const RETURN_NUMBER_TRIES: u32 = 20;

/// The [`Store`] on one SQLite file in WAL mode: one writing connection,
/// a pool of reading ones. Create it with [`SqliteStore::open`] and share it
/// as `Arc<dyn Store>`.
pub struct SqliteStore {
    path: PathBuf,
    /// The only connection that writes. SQLite runs one write transaction at
    /// a time anyway; queueing on this mutex instead of on SQLite's file
    /// lock means our own writes never fail with SQLITE_BUSY. It is held for
    /// exactly one transaction. A std mutex, not tokio's: callers run on
    /// blocking threads and never hold it across an `.await`.
    writer: Mutex<Connection>,
    /// Idle read-only connections. A reader is taken out for one transaction
    /// and put back; the mutex is held only to take or return one.
    readers: Mutex<Vec<Connection>>,
}

impl SqliteStore {
    /// Opens the database at `path`, creating the file and the schema on
    /// first start and migrating an older schema.
    ///
    /// Open each file once per process: the open also closes answers that a
    /// previous process left streaming, which would wrongly include the live
    /// answers of another process using the same file.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        let mut writer = connect(path)?;
        // WAL lets readers work beside the writer. With `synchronous=NORMAL`
        // a commit is in the WAL file (the OS has it) when it returns, so it
        // survives the process being killed; only a power cut can lose the
        // last commits, and never corrupts the file.
        let mode: String =
            writer.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::NoWal(mode));
        }
        writer.pragma_update(None, "synchronous", "NORMAL")?;
        schema::migrate(&mut writer)?;
        close_interrupted_answers(&writer)?;
        Ok(SqliteStore {
            path: path.to_owned(),
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
        })
    }

    /// Runs `f` in one write transaction and commits it.
    fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = lock(&self.writer);
        // IMMEDIATE takes SQLite's write lock at BEGIN: a transaction that
        // started as a reader and then wrote could fail half-way with BUSY.
        in_transaction(&mut conn, TransactionBehavior::Immediate, f)
    }

    /// Runs `f` in one read transaction, so that it sees a single snapshot.
    fn read<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let idle = lock(&self.readers).pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => {
                let conn = connect(&self.path)?;
                conn.pragma_update(None, "query_only", true)?;
                conn
            }
        };
        let result = in_transaction(&mut conn, TransactionBehavior::Deferred, f);
        let mut idle = lock(&self.readers);
        if idle.len() < IDLE_READERS {
            idle.push(conn);
        }
        result
    }
}

/// A panic inside a transaction rolls it back as it unwinds (the
/// `Transaction` is dropped), so the connection behind a poisoned mutex is
/// still in a clean state and can be used.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn connect(path: &Path) -> Result<Connection> {
    let open_error = |source| Error::Open { path: path.to_owned(), source };
    let conn = Connection::open(path).map_err(open_error)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_error)?;
    conn.pragma_update(None, "foreign_keys", true).map_err(open_error)?;
    Ok(conn)
}

fn in_transaction<T>(
    conn: &mut Connection,
    behavior: TransactionBehavior,
    f: impl FnOnce(&Transaction<'_>) -> Result<T>,
) -> Result<T> {
    let tx = conn.transaction_with_behavior(behavior)?;
    let value = f(&tx)?;
    tx.commit()?;
    Ok(value)
}

/// An answer still streaming when the store opens was being generated by a
/// process that died (killed, crashed, power cut): nothing will finish it.
/// It becomes Partial with outcome Error, so transcripts show it was cut off
/// and staff can find it by outcome. `finished_at` stays empty: nobody knows
/// when it stopped. Its text is kept as it is: whatever the last
/// `save_answer_progress` stored (the shopper saw at least that much), or
/// empty if none did; the shopper's question before it was stored earlier.
fn close_interrupted_answers(conn: &Connection) -> Result<()> {
    conn.execute(
        "UPDATE messages SET state = 'partial', outcome = 'error' WHERE state = 'streaming'",
        [],
    )?;
    Ok(())
}

impl Store for SqliteStore {
    fn create_conversation(&self, new: NewConversation) -> Result<Conversation> {
        required("conversation id", new.id.as_str())?;
        required("lang", &new.lang)?;
        required("channel", &new.channel)?;
        if new.resume_token.chars().count() < MIN_RESUME_TOKEN_CHARS {
            return Err(Error::InvalidInput(format!(
                "resume tokens need at least {MIN_RESUME_TOKEN_CHARS} characters"
            )));
        }
        let digest = secret::token_digest(&new.resume_token);
        let now = now_millis();
        self.write(|tx| {
            let inserted = tx.execute(
                "INSERT INTO conversations \
                 (id, lang, channel, resume_token_sha256, customer_id, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                params![new.id.as_str(), new.lang, new.channel, digest, new.customer_id, now],
            );
            match inserted {
                Err(e) if is_duplicate(&e) => {
                    // Both the id and the resume token are unique; a clash of
                    // random tokens is practically impossible.
                    return Err(Error::AlreadyExists {
                        kind: "conversation",
                        key: new.id.0.clone(),
                    });
                }
                other => other?,
            };
            find_conversation(tx, &new.id)?.ok_or_else(|| Error::not_found("conversation", &new.id))
        })
    }

    fn conversation(&self, id: &ConversationId) -> Result<Option<Conversation>> {
        self.read(|tx| find_conversation(tx, id))
    }

    fn conversation_by_resume_token(&self, token: &str) -> Result<Option<Conversation>> {
        let digest = secret::token_digest(token);
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations c WHERE c.resume_token_sha256 = ?1"
        );
        self.read(|tx| Ok(tx.query_row(&sql, [digest], conversation_from).optional()?))
    }

    fn set_customer(&self, id: &ConversationId, customer_id: &str) -> Result<()> {
        required("customer id", customer_id)?;
        self.write(|tx| {
            let changed = tx.execute(
                "UPDATE conversations SET customer_id = ?2 WHERE id = ?1",
                params![id.as_str(), customer_id],
            )?;
            if changed == 0 {
                return Err(Error::not_found("conversation", id));
            }
            Ok(())
        })
    }

    fn set_needs_human(&self, id: &ConversationId, reason: Option<&str>) -> Result<()> {
        self.write(|tx| {
            touch(tx, id, now_millis())?;
            tx.execute(
                "UPDATE conversations SET needs_human = ?2 WHERE id = ?1",
                params![id.as_str(), reason],
            )?;
            Ok(())
        })
    }

    fn add_tag(&self, id: &ConversationId, tag: &str) -> Result<()> {
        let tag = tag.trim();
        required("tag", tag)?;
        self.write(|tx| {
            // Not `touch`: tagging is staff bookkeeping, not activity.
            ensure_exists(tx, id)?;
            tx.execute(
                "INSERT OR IGNORE INTO conversation_tags (conversation_id, tag) VALUES (?1, ?2)",
                params![id.as_str(), tag],
            )?;
            Ok(())
        })
    }

    fn remove_tag(&self, id: &ConversationId, tag: &str) -> Result<()> {
        self.write(|tx| {
            ensure_exists(tx, id)?;
            tx.execute(
                "DELETE FROM conversation_tags WHERE conversation_id = ?1 AND tag = ?2",
                params![id.as_str(), tag.trim()],
            )?;
            Ok(())
        })
    }

    fn set_note(&self, id: &ConversationId, note: &str) -> Result<()> {
        let note = Some(note).filter(|note| !note.trim().is_empty());
        self.write(|tx| {
            let changed = tx.execute(
                "UPDATE conversations SET note = ?2 WHERE id = ?1",
                params![id.as_str(), note],
            )?;
            if changed == 0 {
                return Err(Error::not_found("conversation", id));
            }
            Ok(())
        })
    }

    fn add_message(
        &self,
        conversation_id: &ConversationId,
        message: NewMessage,
    ) -> Result<StoredMessage> {
        if message.role == Role::Staff
            && message.author.as_deref().is_none_or(|a| a.trim().is_empty())
        {
            return Err(Error::InvalidInput("a staff message needs its author".into()));
        }
        self.write(|tx| insert_message(tx, conversation_id, &message, MessageState::Complete, None))
    }

    fn add_shopper_message(
        &self,
        conversation_id: &ConversationId,
        client_id: &str,
        text: &str,
    ) -> Result<ReceivedMessage> {
        required("client id", client_id)?;
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ?1 AND client_id = ?2"
        );
        self.write(|tx| {
            // Looking and inserting in one write transaction: no other write
            // can come between them, from this process or another. The
            // unique index is the backstop.
            let earlier = tx
                .query_row(&sql, params![conversation_id.as_str(), client_id], message_from)
                .optional()?;
            if let Some(message) = earlier {
                return Ok(ReceivedMessage { message, duplicate: true });
            }
            let new = NewMessage::shopper(text);
            let message =
                insert_message(tx, conversation_id, &new, MessageState::Complete, Some(client_id))?;
            Ok(ReceivedMessage { message, duplicate: false })
        })
    }

    fn start_answer(&self, conversation_id: &ConversationId) -> Result<StoredMessage> {
        let empty = NewMessage { role: Role::Assistant, text: String::new(), author: None };
        self.write(|tx| insert_message(tx, conversation_id, &empty, MessageState::Streaming, None))
    }

    fn save_answer_progress(&self, message_id: MessageId, text: &str) -> Result<()> {
        self.write(|tx| {
            // Only while streaming: after that the text is final, or was
            // kept as what the shopper saw when the answer was closed as
            // interrupted. Not `touch`: the answer's start and end mark the
            // conversation active, and the staff list should not reshuffle
            // every second while an answer streams.
            let changed = tx.execute(
                "UPDATE messages SET text = ?2 \
                 WHERE id = ?1 AND role = 'assistant' AND state = 'streaming' \
                 AND finished_at IS NULL",
                params![message_id.0, text],
            )?;
            if changed == 0 {
                return Err(Error::not_found("streaming answer", message_id));
            }
            Ok(())
        })
    }

    fn finish_answer(&self, message_id: MessageId, answer: AnswerRecord) -> Result<()> {
        let AnswerRecord { text, state, details } = answer;
        let sources = serde_json::to_string(&details.sources)?;
        let now = now_millis();
        self.write(|tx| {
            // `finished_at IS NULL` makes an answer finish once. It still
            // admits an answer marked Partial by `close_interrupted_answers`,
            // in case a second process opened the file while this one was
            // answering: the real ending wins.
            let conversation_id: Option<String> = tx
                .query_row(
                    "UPDATE messages SET text = :text, state = :state, finished_at = :now, \
                       outcome = :outcome, sources = :sources, model = :model, \
                       prompt_version = :prompt_version, ttft_ms = :ttft_ms, \
                       total_ms = :total_ms, tokens = :tokens, tokens_per_s = :tokens_per_s, \
                       gate_covered = :gate_covered, gate_score = :gate_score, \
                       check_passed = :check_passed, check_reason = :check_reason \
                     WHERE id = :id AND role = 'assistant' AND finished_at IS NULL \
                     RETURNING conversation_id",
                    named_params! {
                        ":id": message_id.0,
                        ":text": text,
                        ":state": MessageState::from(state),
                        ":now": now,
                        ":outcome": details.outcome,
                        ":sources": sources,
                        ":model": details.model,
                        ":prompt_version": details.prompt_version,
                        ":ttft_ms": details.timings.ttft_ms,
                        ":total_ms": details.timings.total_ms,
                        ":tokens": details.timings.tokens,
                        ":tokens_per_s": details.timings.tokens_per_s,
                        ":gate_covered": details.gate.map(|g| g.covered),
                        ":gate_score": details.gate.map(|g| g.score),
                        ":check_passed": details.check.as_ref().map(|c| c.passed),
                        ":check_reason": details.check.as_ref().and_then(|c| c.reason.as_deref()),
                    },
                    |row| row.get(0),
                )
                .optional()?;
            let Some(conversation_id) = conversation_id else {
                return Err(Error::not_found("unfinished answer", message_id));
            };
            touch(tx, &ConversationId(conversation_id), now)
        })
    }

    fn set_feedback(&self, message_id: MessageId, feedback: Feedback) -> Result<()> {
        self.write(|tx| {
            let conversation_id: Option<String> = tx
                .query_row(
                    "UPDATE messages SET feedback_rating = ?2, feedback_comment = ?3 \
                     WHERE id = ?1 AND role = 'assistant' RETURNING conversation_id",
                    params![message_id.0, feedback.rating, feedback.comment],
                    |row| row.get(0),
                )
                .optional()?;
            let Some(conversation_id) = conversation_id else {
                return Err(Error::not_found("answer", message_id));
            };
            touch(tx, &ConversationId(conversation_id), now_millis())
        })
    }

    fn messages_after(
        &self,
        conversation_id: &ConversationId,
        after_seq: u32,
    ) -> Result<Vec<StoredMessage>> {
        self.read(|tx| {
            ensure_exists(tx, conversation_id)?;
            messages_of(tx, conversation_id, after_seq)
        })
    }

    fn answer_by_seq(
        &self,
        conversation_id: &ConversationId,
        seq: u32,
    ) -> Result<Option<StoredMessage>> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages \
             WHERE conversation_id = ?1 AND seq = ?2 AND role = 'assistant'"
        );
        self.read(|tx| {
            Ok(tx
                .query_row(&sql, params![conversation_id.as_str(), seq], message_from)
                .optional()?)
        })
    }

    fn list_conversations(&self, filter: &ConversationFilter) -> Result<Vec<ConversationSummary>> {
        let columns = format!(
            "{CONVERSATION_COLUMNS}, \
             (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id), \
             (SELECT text FROM messages m WHERE m.conversation_id = c.id AND m.role = 'shopper' \
                ORDER BY m.seq LIMIT 1), \
             (SELECT outcome FROM messages m WHERE m.conversation_id = c.id \
                AND m.outcome IS NOT NULL ORDER BY m.seq DESC LIMIT 1)"
        );
        let (sql, values) = filtered(&columns, filter);
        self.read(|tx| {
            let mut statement = tx.prepare(&sql)?;
            let summaries = statement.query_map(params_from_iter(values), |row| {
                Ok(ConversationSummary {
                    conversation: conversation_from(row)?,
                    message_count: row.get(CONVERSATION_COLUMN_COUNT)?,
                    first_question: row.get(CONVERSATION_COLUMN_COUNT + 1)?,
                    last_outcome: row.get(CONVERSATION_COLUMN_COUNT + 2)?,
                })
            })?;
            Ok(summaries.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn transcript(&self, id: &ConversationId) -> Result<Option<Transcript>> {
        self.read(|tx| find_transcript(tx, id))
    }

    fn export_jsonl(&self, filter: &ConversationFilter, out: &mut dyn Write) -> Result<()> {
        // The read transaction stays open while `out` takes the data. That
        // never blocks writers (WAL), though a very slow reader keeps the WAL
        // file from being checkpointed back to its start meanwhile.
        self.read(|tx| {
            for_each_transcript(tx, filter, |transcript| export::write_jsonl(out, transcript))?;
            out.flush()?;
            Ok(())
        })
    }

    fn export_csv(&self, filter: &ConversationFilter, out: &mut dyn Write) -> Result<()> {
        self.read(|tx| {
            let mut csv = CsvExport::new(out)?;
            for_each_transcript(tx, filter, |transcript| csv.write(transcript))?;
            csv.finish()
        })
    }

    fn add_staff(&self, name: &str, password: &str) -> Result<StaffId> {
        let name = name.trim();
        required("staff name", name)?;
        secret::check_password_strength(password)?;
        // Hashing takes tens of milliseconds: do it before taking the writer.
        let hash = secret::hash_password(password)?;
        self.write(|tx| {
            let inserted = tx.execute(
                "INSERT INTO staff (name, password_hash, created_at) VALUES (?1, ?2, ?3)",
                params![name, hash, now_millis()],
            );
            match inserted {
                Err(e) if is_duplicate(&e) => {
                    Err(Error::AlreadyExists { kind: "staff member", key: name.to_owned() })
                }
                Err(e) => Err(e.into()),
                Ok(_) => Ok(StaffId(tx.last_insert_rowid())),
            }
        })
    }

    fn verify_staff(&self, name: &str, password: &str) -> Result<Option<Staff>> {
        let sql = format!("SELECT {STAFF_COLUMNS}, s.password_hash FROM staff s WHERE s.name = ?1");
        let found = self.read(|tx| {
            Ok(tx
                .query_row(&sql, [name.trim()], |row| {
                    Ok((staff_from(row)?, row.get::<_, String>(3)?))
                })
                .optional()?)
        })?;
        // No lock is held while the hash is checked.
        let (staff, hash) = found.unzip();
        let matches = secret::verify_password(password, hash.as_deref())?;
        Ok(staff.filter(|_| matches))
    }

    fn create_session(&self, staff_id: StaffId, ttl: Duration) -> Result<SessionToken> {
        let token = secret::random_token()?;
        let digest = secret::token_digest(&token);
        let now = now_millis();
        let expires_at = now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        self.write(|tx| {
            // Sessions nobody came back with would otherwise stay forever.
            tx.execute("DELETE FROM staff_sessions WHERE expires_at <= ?1", [now])?;
            let inserted = tx.execute(
                "INSERT INTO staff_sessions (token_sha256, staff_id, created_at, expires_at) \
                 SELECT ?1, id, ?2, ?3 FROM staff WHERE id = ?4",
                params![digest, now, expires_at, staff_id.0],
            )?;
            if inserted == 0 {
                return Err(Error::not_found("staff member", staff_id));
            }
            Ok(())
        })?;
        Ok(SessionToken(token))
    }

    fn session(&self, token: &str) -> Result<Option<Staff>> {
        let digest = secret::token_digest(token);
        let sql = format!(
            "SELECT {STAFF_COLUMNS}, x.expires_at FROM staff_sessions x \
             JOIN staff s ON s.id = x.staff_id WHERE x.token_sha256 = ?1"
        );
        let found = self.read(|tx| {
            Ok(tx
                .query_row(&sql, [&digest], |row| Ok((staff_from(row)?, row.get::<_, i64>(3)?)))
                .optional()?)
        })?;
        match found {
            Some((staff, expires_at)) if expires_at > now_millis() => Ok(Some(staff)),
            Some(_) => {
                self.write(|tx| {
                    tx.execute("DELETE FROM staff_sessions WHERE token_sha256 = ?1", [&digest])?;
                    Ok(())
                })?;
                Ok(None)
            }
            None => Ok(None),
        }
    }

    fn delete_session(&self, token: &str) -> Result<()> {
        let digest = secret::token_digest(token);
        self.write(|tx| {
            tx.execute("DELETE FROM staff_sessions WHERE token_sha256 = ?1", [digest])?;
            Ok(())
        })
    }

    fn create_return(&self, new: NewReturn) -> Result<ReturnRecord> {
        required("order number", &new.order_number)?;
        required("customer id", &new.customer_id)?;
        if new.items.is_empty() || new.items.iter().any(|sku| sku.trim().is_empty()) {
            return Err(Error::InvalidInput("a return needs at least one item, each a SKU".into()));
        }
        let items = serde_json::to_string(&new.items)?;
        let now = now_millis();
        self.write(|tx| {
            // Random rather than counted, so that a return number tells a
            // shopper nothing about how many returns the shop has.
            for _ in 0..RETURN_NUMBER_TRIES {
                let number = u32::from_le_bytes(secret::random_bytes()?) % 1_000_000;
                let inserted = tx.execute(
                    "INSERT INTO returns \
                     (return_number, order_number, customer_id, items, reason, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        format!("RMA-{number:06}"),
                        new.order_number,
                        new.customer_id,
                        items,
                        new.reason,
                        now
                    ],
                );
                match inserted {
                    Err(e) if is_duplicate(&e) => continue,
                    Err(e) => return Err(e.into()),
                    Ok(_) => {
                        let sql = format!("SELECT {RETURN_COLUMNS} FROM returns WHERE id = ?1");
                        return Ok(tx.query_row(&sql, [tx.last_insert_rowid()], return_from)?);
                    }
                }
            }
            Err(Error::NoFreeReturnNumber(RETURN_NUMBER_TRIES))
        })
    }

    fn returns_for_order(&self, order_number: &str) -> Result<Vec<ReturnRecord>> {
        let sql = format!(
            "SELECT {RETURN_COLUMNS} FROM returns WHERE order_number = ?1 ORDER BY created_at, id"
        );
        self.read(|tx| {
            let mut statement = tx.prepare(&sql)?;
            let returns = statement.query_map([order_number], return_from)?;
            Ok(returns.collect::<rusqlite::Result<_>>()?)
        })
    }
}
