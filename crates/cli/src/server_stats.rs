//! What the server process costs while it is under load: resident memory
//! (now and its high-water mark) and open file descriptors, read from
//! `/proc/PID` on Linux, and the server's own `/metrics` figures.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One reading of the server process.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ProcessSample {
    /// Seconds since the run started.
    pub at_s: f64,
    pub rss_mb: f64,
    /// The most the process has held resident since it started.
    pub hwm_mb: f64,
    pub open_fds: usize,
}

/// Reads `/proc/PID/status` and counts `/proc/PID/fd`; `None` when the
/// process is gone or this is not Linux.
pub fn sample(pid: u32, at_s: f64) -> Option<ProcessSample> {
    let proc_dir = Path::new("/proc").join(pid.to_string());
    let status = std::fs::read_to_string(proc_dir.join("status")).ok()?;
    let kib = |key: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        line[key.len()..].trim().trim_end_matches("kB").trim().parse::<f64>().ok()
    };
    let open_fds = std::fs::read_dir(proc_dir.join("fd")).ok()?.count();
    Some(ProcessSample {
        at_s,
        rss_mb: kib("VmRSS:")? / 1024.0,
        hwm_mb: kib("VmHWM:")? / 1024.0,
        open_fds,
    })
}

/// `GET /metrics` from the server, as Prometheus text; `None` when it does
/// not answer in time.
pub async fn metrics(authority: &str) -> Option<String> {
    let fetch = async {
        let mut stream = tokio::net::TcpStream::connect(authority).await.ok()?;
        let request =
            format!("GET /metrics HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.ok()?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
    };
    tokio::time::timeout(Duration::from_secs(5), fetch).await.ok().flatten()
}

/// The sum of a metric's samples (over its labels), e.g.
/// `shopchat_busy_total`. Chunked bodies still parse: chunk sizes are lines
/// of their own that never start with the metric's name.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else { continue };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        let value = rest.rsplit(' ').next().and_then(|v| v.trim().parse::<f64>().ok());
        if let Some(value) = value {
            *found.get_or_insert(0.0) += value;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_can_be_sampled() {
        let own = sample(std::process::id(), 0.0).expect("/proc is readable");
        assert!(own.rss_mb > 0.0 && own.hwm_mb >= own.rss_mb, "{own:?}");
        assert!(own.open_fds >= 3, "{own:?}");
        assert!(sample(u32::MAX, 0.0).is_none());
    }

    #[test]
    fn metrics_are_summed_over_labels() {
        let text = "# HELP x\nshopchat_answers_total{outcome=\"answered\"} 3\n\
                    shopchat_answers_total{outcome=\"error\"} 1\nshopchat_answers_totals 9\n\
                    shopchat_busy_total 2\n";
        assert_eq!(metric(text, "shopchat_answers_total"), Some(4.0));
        assert_eq!(metric(text, "shopchat_busy_total"), Some(2.0));
        assert_eq!(metric(text, "shopchat_queue_depth"), None);
    }
}
