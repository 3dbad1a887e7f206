//! Reading records: conversions between the model's types and SQL values,
//! and rows into conversations, messages, staff and returns.

use super::*;

macro_rules! sql_text {
    ($($name:ident),+) => {$(
        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(self.as_str().into())
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                let text = value.as_str()?;
                $name::parse(text).ok_or_else(|| {
                    FromSqlError::Other(format!("unknown {} `{text}`", stringify!($name)).into())
                })
            }
        }
    )+};
}
sql_text!(Role, MessageState, Outcome, Rating);

pub(super) fn now_millis() -> i64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

pub(super) fn to_millis(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Column `idx`, unix milliseconds, as a time.
pub(super) fn time_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<OffsetDateTime> {
    let millis: i64 = row.get(idx)?;
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Integer, Box::new(e)))
}

pub(super) fn optional_time_at(
    row: &Row<'_>,
    idx: usize,
) -> rusqlite::Result<Option<OffsetDateTime>> {
    match row.get_ref(idx)? {
        ValueRef::Null => Ok(None),
        _ => time_at(row, idx).map(Some),
    }
}

/// Column `idx`, JSON text, parsed; `None` for NULL.
pub(super) fn json_at<T: serde::de::DeserializeOwned>(
    row: &Row<'_>,
    idx: usize,
) -> rusqlite::Result<Option<T>> {
    let Some(text) = row.get_ref(idx)?.as_str_or_null()? else {
        return Ok(None);
    };
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e)))
}

/// True if `e` is a UNIQUE or PRIMARY KEY violation.
pub(super) fn is_duplicate(e: &rusqlite::Error) -> bool {
    use rusqlite::ffi::{SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_CONSTRAINT_UNIQUE};
    matches!(
        e.sqlite_error().map(|e| e.extended_code),
        Some(SQLITE_CONSTRAINT_UNIQUE | SQLITE_CONSTRAINT_PRIMARYKEY)
    )
}

pub(super) fn required(what: &str, value: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(Error::InvalidInput(format!("{what} must not be empty")));
    }
    Ok(())
}

// Reading records.

pub(super) const CONVERSATION_COLUMNS: &str =
    "c.id, c.lang, c.channel, c.customer_id, c.needs_human, \
    c.note, c.created_at, c.updated_at, \
    (SELECT json_group_array(tag) FROM \
        (SELECT tag FROM conversation_tags WHERE conversation_id = c.id ORDER BY tag))";
pub(super) const CONVERSATION_COLUMN_COUNT: usize = 9;

pub(super) fn conversation_from(row: &Row<'_>) -> rusqlite::Result<Conversation> {
    Ok(Conversation {
        id: ConversationId(row.get(0)?),
        lang: row.get(1)?,
        channel: row.get(2)?,
        customer_id: row.get(3)?,
        needs_human: row.get(4)?,
        note: row.get(5)?,
        created_at: time_at(row, 6)?,
        updated_at: time_at(row, 7)?,
        tags: json_at(row, 8)?.unwrap_or_default(),
    })
}

pub(super) fn find_conversation(
    conn: &Connection,
    id: &ConversationId,
) -> Result<Option<Conversation>> {
    let sql = format!("SELECT {CONVERSATION_COLUMNS} FROM conversations c WHERE c.id = ?1");
    Ok(conn.query_row(&sql, [id.as_str()], conversation_from).optional()?)
}

pub(super) const MESSAGE_COLUMNS: &str =
    "id, conversation_id, seq, role, text, author, state, created_at, \
    finished_at, outcome, sources, model, prompt_version, ttft_ms, total_ms, tokens, \
    tokens_per_s, gate_covered, gate_score, check_passed, check_reason, feedback_rating, \
    feedback_comment, client_id";

pub(super) fn message_from(row: &Row<'_>) -> rusqlite::Result<StoredMessage> {
    let answer = match row.get::<_, Option<Outcome>>(9)? {
        None => None,
        Some(outcome) => Some(AnswerDetails {
            outcome,
            sources: json_at(row, 10)?.unwrap_or_default(),
            model: row.get(11)?,
            prompt_version: row.get(12)?,
            // An answer the process died in has no timings: zeros say so.
            timings: Timings {
                ttft_ms: row.get(13)?,
                total_ms: row.get::<_, Option<u32>>(14)?.unwrap_or(0),
                tokens: row.get::<_, Option<u32>>(15)?.unwrap_or(0),
                tokens_per_s: row.get::<_, Option<f32>>(16)?.unwrap_or(0.0),
            },
            gate: match (row.get(17)?, row.get(18)?) {
                (Some(covered), Some(score)) => Some(GateRecord { covered, score }),
                _ => None,
            },
            check: match row.get(19)? {
                Some(passed) => Some(CheckRecord { passed, reason: row.get(20)? }),
                None => None,
            },
        }),
    };
    let feedback = match row.get(21)? {
        Some(rating) => Some(Feedback { rating, comment: row.get(22)? }),
        None => None,
    };
    Ok(StoredMessage {
        id: MessageId(row.get(0)?),
        conversation_id: ConversationId(row.get(1)?),
        seq: row.get(2)?,
        role: row.get(3)?,
        text: row.get(4)?,
        author: row.get(5)?,
        state: row.get(6)?,
        created_at: time_at(row, 7)?,
        finished_at: optional_time_at(row, 8)?,
        answer,
        feedback,
        client_id: row.get(23)?,
    })
}

pub(super) fn messages_of(
    conn: &Connection,
    id: &ConversationId,
    after_seq: u32,
) -> Result<Vec<StoredMessage>> {
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ?1 AND seq > ?2 ORDER BY seq"
    );
    let mut statement = conn.prepare(&sql)?;
    let messages = statement.query_map(params![id.as_str(), after_seq], message_from)?;
    Ok(messages.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn find_transcript(
    conn: &Connection,
    id: &ConversationId,
) -> Result<Option<Transcript>> {
    let Some(conversation) = find_conversation(conn, id)? else {
        return Ok(None);
    };
    let messages = messages_of(conn, id, 0)?;
    Ok(Some(Transcript { conversation, messages }))
}

pub(super) const STAFF_COLUMNS: &str = "s.id, s.name, s.created_at";

pub(super) fn staff_from(row: &Row<'_>) -> rusqlite::Result<Staff> {
    Ok(Staff { id: StaffId(row.get(0)?), name: row.get(1)?, created_at: time_at(row, 2)? })
}

pub(super) const RETURN_COLUMNS: &str =
    "return_number, order_number, customer_id, items, reason, created_at";

pub(super) fn return_from(row: &Row<'_>) -> rusqlite::Result<ReturnRecord> {
    Ok(ReturnRecord {
        return_number: row.get(0)?,
        order_number: row.get(1)?,
        customer_id: row.get(2)?,
        items: json_at(row, 3)?.unwrap_or_default(),
        reason: row.get(4)?,
        created_at: time_at(row, 5)?,
    })
}

/// `NotFound` unless the conversation exists.
pub(super) fn ensure_exists(conn: &Connection, id: &ConversationId) -> Result<()> {
    let found: Option<i64> = conn
        .query_row("SELECT 1 FROM conversations WHERE id = ?1", [id.as_str()], |row| row.get(0))
        .optional()?;
    match found {
        Some(_) => Ok(()),
        None => Err(Error::not_found("conversation", id)),
    }
}
