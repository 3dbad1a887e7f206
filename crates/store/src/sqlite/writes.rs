//! Writing: the statements the store's write transactions share, and the
//! conversation filters of listings and exports.

use super::*;

/// Marks a conversation as active now; `NotFound` if there is no such
/// conversation.
pub(super) fn touch(tx: &Transaction<'_>, id: &ConversationId, now: i64) -> Result<()> {
    let changed = tx.execute(
        "UPDATE conversations SET updated_at = ?2 WHERE id = ?1",
        params![id.as_str(), now],
    )?;
    if changed == 0 {
        return Err(Error::not_found("conversation", id));
    }
    Ok(())
}

/// Inserts a message with the conversation's next seq and returns it.
pub(super) fn insert_message(
    tx: &Transaction<'_>,
    conversation_id: &ConversationId,
    message: &NewMessage,
    state: MessageState,
    client_id: Option<&str>,
) -> Result<StoredMessage> {
    let now = now_millis();
    // The counter lives on the conversation row, so taking the next seq,
    // checking that the conversation exists and marking it active is one
    // statement (and on PostgreSQL, one row lock).
    let seq: Option<u32> = tx
        .query_row(
            "UPDATE conversations SET last_seq = last_seq + 1, updated_at = ?2 WHERE id = ?1 \
             RETURNING last_seq",
            params![conversation_id.as_str(), now],
            |row| row.get(0),
        )
        .optional()?;
    let Some(seq) = seq else {
        return Err(Error::not_found("conversation", conversation_id));
    };
    tx.execute(
        "INSERT INTO messages \
         (conversation_id, seq, role, text, author, state, created_at, client_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            conversation_id.as_str(),
            seq,
            message.role,
            message.text,
            message.author,
            state,
            now,
            client_id
        ],
    )?;
    let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1");
    Ok(tx.query_row(&sql, [tx.last_insert_rowid()], message_from)?)
}

/// The WHERE clause and its parameters for a filter, over `conversations c`.
pub(super) fn filter_clause(filter: &ConversationFilter) -> (String, Vec<Value>) {
    let mut conditions: Vec<String> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    let mut condition = |sql: &str, value: Option<Value>| {
        conditions.push(sql.to_owned());
        values.extend(value);
    };
    if let Some(from) = filter.from {
        condition("c.created_at >= ?", Some(Value::Integer(to_millis(from))));
    }
    if let Some(to) = filter.to {
        condition("c.created_at < ?", Some(Value::Integer(to_millis(to))));
    }
    if let Some(outcome) = filter.outcome {
        condition(
            "EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id AND m.outcome = ?)",
            Some(Value::Text(outcome.as_str().into())),
        );
    }
    if let Some(rating) = filter.feedback {
        condition(
            "EXISTS (SELECT 1 FROM messages m \
             WHERE m.conversation_id = c.id AND m.feedback_rating = ?)",
            Some(Value::Text(rating.as_str().into())),
        );
    }
    if let Some(tag) = &filter.tag {
        condition(
            "EXISTS (SELECT 1 FROM conversation_tags t WHERE t.conversation_id = c.id AND t.tag = ?)",
            Some(Value::Text(tag.trim().to_owned())),
        );
    }
    match filter.needs_human {
        Some(true) => condition("c.needs_human IS NOT NULL", None),
        Some(false) => condition("c.needs_human IS NULL", None),
        None => {}
    }
    match filter.text.as_deref().and_then(search::parse) {
        Some(TextQuery::Words(query)) => condition(
            "c.id IN (SELECT m.conversation_id FROM messages_words \
             JOIN messages m ON m.id = messages_words.rowid WHERE messages_words MATCH ?)",
            Some(Value::Text(query)),
        ),
        Some(TextQuery::Substrings(patterns)) => {
            let likes = vec!["t.text LIKE ?"; patterns.len()].join(" AND ");
            conditions.push(format!(
                "c.id IN (SELECT m.conversation_id FROM messages_trigrams t \
                 JOIN messages m ON m.id = t.rowid WHERE {likes})"
            ));
            values.extend(patterns.into_iter().map(Value::Text));
        }
        None => {}
    }
    let clause = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    (clause, values)
}

/// A query over the conversations matching `filter`, in review order:
/// those needing a person first, then the most recently active.
pub(super) fn filtered(columns: &str, filter: &ConversationFilter) -> (String, Vec<Value>) {
    let (clause, mut values) = filter_clause(filter);
    let sql = format!(
        "SELECT {columns} FROM conversations c {clause} \
         ORDER BY (c.needs_human IS NOT NULL) DESC, c.updated_at DESC, c.id \
         LIMIT ? OFFSET ?"
    );
    // SQLite reads a negative LIMIT as "no limit".
    values.push(Value::Integer(filter.limit.map_or(-1, i64::from)));
    values.push(Value::Integer(i64::from(filter.offset)));
    (sql, values)
}

/// Writes each matching transcript with `write`, from one snapshot.
pub(super) fn for_each_transcript(
    conn: &Connection,
    filter: &ConversationFilter,
    mut write: impl FnMut(&Transcript) -> Result<()>,
) -> Result<()> {
    let (sql, values) = filtered("c.id", filter);
    // Ids first, then one transcript at a time: memory stays at one
    // conversation however large the export.
    let ids: Vec<String> = conn
        .prepare(&sql)?
        .query_map(params_from_iter(values), |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for id in ids {
        if let Some(transcript) = find_transcript(conn, &ConversationId(id))? {
            write(&transcript)?;
        }
    }
    Ok(())
}
