//! A shopper's websocket to the chat server, for `loadtest` and `attack`:
//! the protocol of `docs/protocol.md` with the frame types of
//! `shopchat_core::protocol`, as the widget speaks it.
//!
//! These commands send traffic on purpose, so they refuse any host that is
//! not this machine's loopback: a load test of someone else's server is an
//! attack, not a measurement.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use shopchat_core::protocol::{ClientFrame, ServerFrame, PROTOCOL_VERSION};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A chat server's websocket address on this machine.
#[derive(Debug, Clone)]
pub struct Target {
    /// `ws://host:port/ws`.
    pub ws_url: String,
    /// `host:port`, for plain HTTP requests (`/metrics`).
    pub authority: String,
}

impl Target {
    /// Reads `ws://127.0.0.1:PORT` (the path defaults to `/ws`) and refuses
    /// every host but loopback.
    pub fn parse(url: &str) -> Result<Target> {
        let rest = url
            .strip_prefix("ws://")
            .with_context(|| format!("{url}: only ws:// URLs on this machine are accepted"))?;
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/ws"),
        };
        let host = match authority.rsplit_once(':') {
            Some((host, port)) if port.parse::<u16>().is_ok() => host,
            _ => bail!("{url}: give the port, as in ws://127.0.0.1:8080"),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let loopback =
            host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            bail!("{url}: load and attack runs target this machine's loopback only (127.0.0.1, [::1], localhost)");
        }
        let path = if path == "/" { "/ws" } else { path };
        Ok(Target { ws_url: format!("ws://{authority}{path}"), authority: authority.to_owned() })
    }
}

/// How a connection ended, when it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// A close frame with its code and reason.
    Code(u16, String),
    /// The TCP connection ended without a close frame, or failed.
    Dropped(String),
    /// Nothing arrived within the deadline.
    TimedOut,
}

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Closed::Code(code, reason) => write!(f, "closed {code} {reason}"),
            Closed::Dropped(why) => write!(f, "dropped: {why}"),
            Closed::TimedOut => write!(f, "timed out"),
        }
    }
}

pub struct Connection {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Connection {
    pub async fn open(target: &Target) -> Result<Connection, Closed> {
        match tokio_tungstenite::connect_async(target.ws_url.as_str()).await {
            Ok((ws, _)) => Ok(Connection { ws }),
            Err(error) => Err(Closed::Dropped(error.to_string())),
        }
    }

    /// Opens a connection and starts a new conversation.
    pub async fn join(
        target: &Target,
        lang: &str,
        deadline: Instant,
    ) -> Result<Connection, Closed> {
        let mut connection = Connection::open(target).await?;
        let hello = ClientFrame::Hello {
            v: PROTOCOL_VERSION,
            session: None,
            last_seq: None,
            lang: Some(lang.into()),
        };
        connection.send(&hello).await?;
        match connection.recv(deadline).await? {
            ServerFrame::Welcome { .. } => Ok(connection),
            other => Err(Closed::Dropped(format!("expected welcome, got {other:?}"))),
        }
    }

    pub async fn send(&mut self, frame: &ClientFrame) -> Result<(), Closed> {
        // Serializing our own frame types cannot fail.
        let text = serde_json::to_string(frame).unwrap_or_default();
        self.ws.send(Message::text(text)).await.map_err(|e| Closed::Dropped(e.to_string()))
    }

    /// The next frame, skipping websocket Ping/Pong, until `deadline`.
    pub async fn recv(&mut self, deadline: Instant) -> Result<ServerFrame, Closed> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let next = match tokio::time::timeout(left, self.ws.next()).await {
                Ok(next) => next,
                Err(_) => return Err(Closed::TimedOut),
            };
            match next {
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(text.as_str()).map_err(|e| {
                        Closed::Dropped(format!("not a server frame ({e}): {}", text.as_str()))
                    })
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(match frame {
                        Some(frame) => Closed::Code(frame.code.into(), frame.reason.to_string()),
                        None => Closed::Code(1005, String::new()),
                    })
                }
                Some(Ok(_)) => continue,
                Some(Err(error)) => return Err(Closed::Dropped(error.to_string())),
                None => return Err(Closed::Dropped("the connection ended".into())),
            }
        }
    }

    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.ws.close(None)).await;
    }
}

/// Percentiles of a set of durations in milliseconds (nearest rank).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Percentiles {
    pub count: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    pub fn of(values: &[f64]) -> Percentiles {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let at = |q: f64| -> f64 {
            if sorted.is_empty() {
                return 0.0;
            }
            let rank = (q * sorted.len() as f64).ceil() as usize;
            sorted[rank.clamp(1, sorted.len()) - 1]
        };
        Percentiles {
            count: sorted.len(),
            p50_ms: at(0.50),
            p95_ms: at(0.95),
            p99_ms: at(0.99),
            max_ms: sorted.last().copied().unwrap_or(0.0),
        }
    }

    /// `p50/p95/p99 ms (n)`, for tables.
    pub fn row(&self) -> String {
        if self.count == 0 {
            return "-".into();
        }
        format!(
            "{:.1} / {:.1} / {:.1} ms (n={})",
            self.p50_ms, self.p95_ms, self.p99_ms, self.count
        )
    }
}

pub fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_accepted() {
        let target = Target::parse("ws://127.0.0.1:8080").unwrap();
        assert_eq!(target.ws_url, "ws://127.0.0.1:8080/ws");
        assert_eq!(target.authority, "127.0.0.1:8080");
        assert_eq!(Target::parse("ws://[::1]:9/ws").unwrap().ws_url, "ws://[::1]:9/ws");
        assert_eq!(Target::parse("ws://localhost:80/").unwrap().ws_url, "ws://localhost:80/ws");
        for refused in
            ["ws://10.0.0.5:8080", "ws://shop.example:80", "wss://127.0.0.1:1", "ws://127.0.0.1"]
        {
            assert!(Target::parse(refused).is_err(), "{refused} was accepted");
        }
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = Percentiles::of(&values);
        assert_eq!((p.p50_ms, p.p95_ms, p.p99_ms, p.max_ms), (50.0, 95.0, 99.0, 100.0));
        assert_eq!(Percentiles::of(&[7.0]).p99_ms, 7.0);
        assert_eq!(Percentiles::of(&[]).count, 0);
    }
}
