//! `GET /api/export`: transcripts as JSON Lines or CSV, streamed.
//!
//! The store writes an export into any `Write`; here that writer hands
//! chunks through a small bounded channel to the response body, so memory
//! stays at a few chunks whatever the shop's history, and a client that
//! reads slowly slows the export down instead of the server buffering for
//! it. A client that goes away closes the channel, which fails the next
//! write and ends the store's read transaction.
//!
//! The first chunk is awaited before the response starts, so an export that
//! fails early (most failures) is a plain 500; one that fails after its
//! first chunk was sent can only end the body early, which the client sees
//! as a cut-off transfer.

use std::io::{self, Write};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use crate::staff::{query_of, ApiError, ListQuery, StaffSession};
use crate::state::{AppState, StoreCallError};

/// Bytes gathered before a chunk goes to the client.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks waiting for the client: the memory bound of one export.
const CHUNKS_IN_FLIGHT: usize = 4;

#[derive(Clone, Copy)]
enum Format {
    JsonLines,
    Csv,
}

pub async fn export(
    State(state): State<Arc<AppState>>,
    _session: StaffSession,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let query = query_of(query)?;
    let mut filter = query.filter()?;
    filter.limit = query.limit;
    let format = match query.format.as_deref() {
        None | Some("jsonl") => Format::JsonLines,
        Some("csv") => Format::Csv,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "`format` must be jsonl or csv, not `{other}`"
            )))
        }
    };
    // Exports run one or two at a time, for as long as their bodies stream
    // (a concurrency limit on the route would be released with the headers).
    let permit = state.exports.clone().acquire_owned().await.map_err(|_| ApiError::Internal)?;

    let (chunks, mut body) = mpsc::channel::<Result<Bytes, StoreCallError>>(CHUNKS_IN_FLIGHT);
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || {
        let _permit: OwnedSemaphorePermit = permit;
        let mut out = ChunkWriter::new(chunks.clone());
        // A panic must reach the client as an error, not as the end of a
        // complete-looking (and cut-off) export.
        let ended = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let result = match format {
                Format::JsonLines => store.export_jsonl(&filter, &mut out),
                Format::Csv => store.export_csv(&filter, &mut out),
            };
            result.and_then(|()| Ok(out.flush()?)).map_err(StoreCallError::Store)
        }))
        .unwrap_or_else(|_| Err(StoreCallError::Panicked("the export panicked".into())));
        if let Err(error) = ended {
            // A client that went away is normal (the store sees it as a
            // failed write); anything else is worth a log line.
            if !chunks.is_closed() {
                tracing::error!(%error, "export failed");
                let _ = chunks.blocking_send(Err(error));
            }
        }
    });

    let first = match body.recv().await {
        Some(Ok(chunk)) => Some(chunk),
        None => None,
        Some(Err(error)) => return Err(error.into()),
    };
    let rest = futures_util::stream::unfold(body, |mut body| async move {
        body.recv().await.map(|chunk| (chunk, body))
    });
    let stream = futures_util::stream::iter(first.map(Ok)).chain(rest);

    let (content_type, file) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "conversations.csv"),
        Format::JsonLines => ("application/x-ndjson", "conversations.jsonl"),
    };
    let disposition = format!("attachment; filename=\"{file}\"");
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// A `Write` that sends what it is given as chunks of about
/// [`CHUNK_BYTES`], blocking while the channel is full. Use it on a
/// blocking thread only.
struct ChunkWriter {
    buffer: Vec<u8>,
    chunks: mpsc::Sender<Result<Bytes, StoreCallError>>,
}

impl ChunkWriter {
    fn new(chunks: mpsc::Sender<Result<Bytes, StoreCallError>>) -> Self {
        Self { buffer: Vec::with_capacity(CHUNK_BYTES), chunks }
    }

    fn send_buffer(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk =
            Bytes::from(std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK_BYTES)));
        self.chunks
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= CHUNK_BYTES {
            self.send_buffer()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_buffer()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_go_out_in_chunks_and_all_arrive() {
        let (tx, mut rx) = mpsc::channel(CHUNKS_IN_FLIGHT * 8);
        let mut out = ChunkWriter::new(tx);
        let line = vec![b'x'; 1000];
        for _ in 0..200 {
            out.write_all(&line).unwrap();
        }
        out.flush().unwrap();
        drop(out);
        let mut sizes = Vec::new();
        while let Ok(chunk) = rx.try_recv() {
            sizes.push(chunk.unwrap().len());
        }
        assert_eq!(sizes.iter().sum::<usize>(), 200_000);
        assert!(sizes.len() >= 3, "one chunk per ~64 KiB: {sizes:?}");
        assert!(sizes.iter().all(|&n| n <= CHUNK_BYTES + 1000), "{sizes:?}");
    }

    #[test]
    fn a_gone_client_fails_the_next_write() {
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let mut out = ChunkWriter::new(tx);
        let error = out.write_all(&vec![b'x'; CHUNK_BYTES]).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
    }
}
