//! Writing transcripts out for staff: JSON Lines for programs, CSV for
//! spreadsheets.
//!
//! JSON Lines is lossless: one [`Transcript`] a line, as the server's API
//! returns it. CSV is flat, one row per message with the conversation's
//! fields repeated, and made safe to open in a spreadsheet: shopper text
//! that starts like a formula is prefixed with `'` so that it stays text.

use std::io::Write;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::model::{StoredMessage, Transcript};
use crate::Result;

pub(crate) fn write_jsonl(out: &mut dyn Write, transcript: &Transcript) -> Result<()> {
    serde_json::to_writer(&mut *out, transcript)?;
    out.write_all(b"\n")?;
    Ok(())
}

const CSV_HEADER: &[&str] = &[
    "conversation_id",
    "lang",
    "channel",
    "customer_id",
    "tags",
    "needs_human",
    "note",
    "seq",
    "message_id",
    "created_at",
    "role",
    "author",
    "state",
    "text",
    "outcome",
    "sources",
    "model",
    "prompt_version",
    "ttft_ms",
    "total_ms",
    "tokens",
    "tokens_per_s",
    "gate_covered",
    "gate_score",
    "check_passed",
    "check_reason",
    "feedback",
    "feedback_comment",
];

pub(crate) struct CsvExport<'a> {
    writer: csv::Writer<&'a mut dyn Write>,
}

impl<'a> CsvExport<'a> {
    pub(crate) fn new(out: &'a mut dyn Write) -> Result<Self> {
        let mut writer = csv::Writer::from_writer(out);
        writer.write_record(CSV_HEADER)?;
        Ok(CsvExport { writer })
    }

    pub(crate) fn write(&mut self, transcript: &Transcript) -> Result<()> {
        for message in &transcript.messages {
            let row = row(transcript, message);
            debug_assert_eq!(row.len(), CSV_HEADER.len());
            self.writer.write_record(row.into_iter().map(spreadsheet_safe))?;
        }
        Ok(())
    }

    pub(crate) fn finish(mut self) -> Result<()> {
        self.writer.flush()?;
        Ok(())
    }
}

fn row(transcript: &Transcript, message: &StoredMessage) -> Vec<String> {
    let c = &transcript.conversation;
    let answer = message.answer.as_ref();
    let text = |value: Option<&String>| value.cloned().unwrap_or_default();
    let number = |value: Option<String>| value.unwrap_or_default();
    vec![
        c.id.to_string(),
        c.lang.clone(),
        c.channel.clone(),
        text(c.customer_id.as_ref()),
        c.tags.join(", "),
        text(c.needs_human.as_ref()),
        text(c.note.as_ref()),
        message.seq.to_string(),
        message.id.to_string(),
        timestamp(message.created_at),
        message.role.as_str().to_owned(),
        text(message.author.as_ref()),
        message.state.as_str().to_owned(),
        message.text.clone(),
        number(answer.map(|a| a.outcome.as_str().to_owned())),
        // Source ids are what staff look up; the URLs are in the JSON export.
        number(
            answer.map(|a| a.sources.iter().map(|s| s.id.as_str()).collect::<Vec<_>>().join(", ")),
        ),
        text(answer.and_then(|a| a.model.as_ref())),
        text(answer.and_then(|a| a.prompt_version.as_ref())),
        number(answer.and_then(|a| a.timings.ttft_ms).map(|v| v.to_string())),
        number(answer.map(|a| a.timings.total_ms.to_string())),
        number(answer.map(|a| a.timings.tokens.to_string())),
        number(answer.map(|a| format!("{:.1}", a.timings.tokens_per_s))),
        number(answer.and_then(|a| a.gate).map(|g| g.covered.to_string())),
        number(answer.and_then(|a| a.gate).map(|g| format!("{:.3}", g.score))),
        number(answer.and_then(|a| a.check.as_ref()).map(|c| c.passed.to_string())),
        text(answer.and_then(|a| a.check.as_ref()).and_then(|c| c.reason.as_ref())),
        number(message.feedback.as_ref().map(|f| f.rating.as_str().to_owned())),
        text(message.feedback.as_ref().and_then(|f| f.comment.as_ref())),
    ]
}

fn timestamp(at: OffsetDateTime) -> String {
    // Formatting a UTC time as RFC 3339 fails only for years past 9999.
    at.format(&Rfc3339).unwrap_or_default()
}

/// Spreadsheets run a cell that starts with `=`, `+`, `-` or `@` as a
/// formula (OWASP "CSV injection"), and shoppers choose what their messages
/// start with. A leading `'` makes such a cell plain text.
fn spreadsheet_safe(mut cell: String) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        cell.insert(0, '\'');
    }
    cell
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_that_look_like_formulas_stay_text() {
        let check =
            |cell: &str, expected: &str| assert_eq!(spreadsheet_safe(cell.into()), expected);
        check("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")");
        check("+1", "'+1");
        check("@SUM(A1)", "'@SUM(A1)");
        check("where is my order?", "where is my order?");
        check("", "");
        check("2024-05-01T10:00:00Z", "2024-05-01T10:00:00Z");
    }
}
