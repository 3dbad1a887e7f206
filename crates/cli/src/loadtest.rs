//! `shopchat loadtest`: many shoppers against a running server on this
//! machine, each a short conversation over the widget's websocket.
//!
//! Two shapes: a burst (`--shoppers N`, all at once: what the queue and the
//! caps do when a crowd arrives) and a steady rate (`--rate R --duration S`,
//! the soak: whether memory and file descriptors stay flat over time).
//! Every run is bounded: a fixed number of shoppers and a hard deadline
//! (`--duration-limit`), after which whatever has not finished counts as
//! unfinished. The server's own limits per address (50 connections, 120
//! messages a minute) are meant for strangers; a load run from one address
//! needs a settings file that raises them (`tests/load/shopchat.toml`,
//! docs/reliability.md).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;
use shopchat_core::protocol::{AnswerOutcome, ClientFrame, ErrorCode, ServerFrame};

use crate::server_stats::{self, ProcessSample};
use crate::ws_client::{millis, Closed, Connection, Percentiles, Target};

#[derive(Args)]
pub struct LoadtestArgs {
    /// The server's websocket, on this machine: ws://127.0.0.1:PORT.
    #[arg(long)]
    url: String,
    /// Shoppers that arrive at once (burst); ignored with `--rate`.
    #[arg(long, default_value_t = 20)]
    shoppers: usize,
    /// Questions, one a line: plain text, or JSON with `text` (or `question`).
    #[arg(long)]
    questions: PathBuf,
    /// Each shopper asks one question, or up to this many (shopper i asks 1 + i mod N).
    #[arg(long, default_value_t = 2)]
    questions_per_shopper: usize,
    /// A steady arrival rate instead of a burst: shoppers started per second.
    #[arg(long, requires = "duration")]
    rate: Option<f64>,
    /// How long shoppers keep arriving at `--rate`, in seconds.
    #[arg(long)]
    duration: Option<u64>,
    /// Hard stop of the whole run, in seconds (default: 600, or the
    /// duration plus 300 with `--rate`); what is still running then counts
    /// as unfinished.
    #[arg(long)]
    duration_limit: Option<u64>,
    /// The server's process id: its RSS (VmRSS, VmHWM) and open file
    /// descriptors are sampled from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Seconds between samples of the server process.
    #[arg(long, default_value_t = 10)]
    sample_every: u64,
    /// The language each shopper's widget says in `hello`.
    #[arg(long, default_value = "en")]
    lang: String,
    /// One JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// How one question ended for its shopper.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ending {
    /// `answer_end` with any outcome but `error` (the label is the outcome).
    Answered(&'static str),
    /// `answer_end` with outcome `error`: the answer failed on the server.
    Failed,
    Busy,
    /// An `error` frame (`rate_limited` among them).
    ErrorFrame(ErrorCode),
    /// The connection ended before the answer did.
    Dropped(Closed),
    /// The run's deadline came first.
    Unfinished,
}

#[derive(Debug, Clone)]
struct Asked {
    ending: Ending,
    acked_at: Option<Instant>,
    first_delta_at: Option<Instant>,
    /// Message sent to first delta, as the shopper waits.
    first_delta_ms: Option<f64>,
    /// Message sent to `answer_end`.
    total_ms: Option<f64>,
    /// The server's own time to the first generated token (model answers only).
    server_ttft_ms: Option<f64>,
    /// `queued.position` when the answer had to wait for the model.
    queued: Option<u64>,
}

impl Asked {
    fn ended(ending: Ending) -> Asked {
        Asked {
            ending,
            acked_at: None,
            first_delta_at: None,
            first_delta_ms: None,
            total_ms: None,
            server_ttft_ms: None,
            queued: None,
        }
    }
}

/// Reads the questions file: blank lines and `#` comments are skipped.
pub fn read_questions(path: &Path) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut questions = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('{') {
            let value: serde_json::Value = serde_json::from_str(line)
                .with_context(|| format!("{}:{}: not JSON", path.display(), number + 1))?;
            let text = ["text", "question", "say"].iter().find_map(|k| value[*k].as_str());
            let Some(text) = text else {
                bail!("{}:{}: no \"text\" string", path.display(), number + 1);
            };
            questions.push(text.to_owned());
        } else {
            questions.push(line.to_owned());
        }
    }
    if questions.is_empty() {
        bail!("{}: no questions", path.display());
    }
    Ok(questions)
}

/// One shopper: joins, asks its questions one after another, leaves.
async fn shopper(
    target: Arc<Target>,
    questions: Vec<String>,
    lang: String,
    deadline: Instant,
) -> Vec<Asked> {
    let mut connection = match Connection::join(&target, &lang, deadline).await {
        Ok(joined) => joined,
        Err(Closed::TimedOut) => return vec![Asked::ended(Ending::Unfinished)],
        Err(closed) => return vec![Asked::ended(Ending::Dropped(closed))],
    };
    let mut asked = Vec::new();
    for (k, text) in questions.into_iter().enumerate() {
        let one = ask(&mut connection, &format!("q-{k}"), text, deadline).await;
        let go_on = matches!(one.ending, Ending::Answered(label) if label != "handoff")
            || one.ending == Ending::Busy;
        asked.push(one);
        // A handed-over conversation is the staff's: the assistant does not
        // answer it, so there is nothing more to measure in it.
        if !go_on {
            break;
        }
    }
    connection.close().await;
    asked
}

async fn ask(
    connection: &mut Connection,
    client_id: &str,
    text: String,
    deadline: Instant,
) -> Asked {
    let sent = Instant::now();
    let mut asked = Asked::ended(Ending::Unfinished);
    let message = ClientFrame::Message { client_id: client_id.to_owned(), text };
    if let Err(closed) = connection.send(&message).await {
        asked.ending = Ending::Dropped(closed);
        return asked;
    }
    loop {
        let frame = match connection.recv(deadline).await {
            Ok(frame) => frame,
            Err(Closed::TimedOut) => return asked,
            Err(closed) => {
                asked.ending = Ending::Dropped(closed);
                return asked;
            }
        };
        let now = Instant::now();
        match frame {
            ServerFrame::Ack { .. } => asked.acked_at = Some(now),
            ServerFrame::Queued { position } => {
                asked.queued.get_or_insert(position);
            }
            ServerFrame::Delta { .. } if asked.first_delta_at.is_none() => {
                asked.first_delta_at = Some(now);
                asked.first_delta_ms = Some(millis(now - sent));
            }
            ServerFrame::AnswerEnd { outcome, timings, .. } => {
                asked.total_ms = Some(millis(now - sent));
                asked.server_ttft_ms = timings.ttft_ms;
                asked.ending = match outcome {
                    AnswerOutcome::Error => Ending::Failed,
                    other => Ending::Answered(outcome_label(other)),
                };
                return asked;
            }
            ServerFrame::Busy { .. } => {
                asked.ending = Ending::Busy;
                return asked;
            }
            ServerFrame::Error { code, .. } => {
                asked.ending = Ending::ErrorFrame(code);
                return asked;
            }
            _ => {}
        }
    }
}

fn outcome_label(outcome: AnswerOutcome) -> &'static str {
    match outcome {
        AnswerOutcome::Answered => "answered",
        AnswerOutcome::Refused => "refused",
        AnswerOutcome::Replaced => "replaced",
        AnswerOutcome::Handoff => "handoff",
        AnswerOutcome::Stopped => "stopped",
        AnswerOutcome::Error => "error",
    }
}

fn code_label(code: ErrorCode) -> String {
    serde_json::to_value(code).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// Whether shoppers who waited were served in the order they asked.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Fairness {
    /// Answers that got `queued` and then a first delta.
    pub queued: usize,
    /// Pairs of those where the one who asked later got words first.
    pub inversions: usize,
    pub pairs: usize,
    /// Kendall's tau between asking order and serving order (1: strictly first come, first served).
    pub kendall_tau: f64,
    /// The most shoppers who asked later but were served before one shopper.
    pub max_overtaken_by: usize,
}

fn fairness(asked: &[&Asked]) -> Fairness {
    let mut waited: Vec<(Instant, Instant)> = asked
        .iter()
        .filter(|a| a.queued.is_some())
        .filter_map(|a| Some((a.acked_at?, a.first_delta_at?)))
        .collect();
    waited.sort_by_key(|(acked, _)| *acked);
    let n = waited.len();
    let mut inversions = 0;
    let mut max_overtaken_by = 0;
    for i in 0..n {
        let overtaken = waited[i + 1..].iter().filter(|later| later.1 < waited[i].1).count();
        inversions += overtaken;
        max_overtaken_by = max_overtaken_by.max(overtaken);
    }
    let pairs = n * n.saturating_sub(1) / 2;
    let kendall_tau = if pairs == 0 { 1.0 } else { 1.0 - 2.0 * inversions as f64 / pairs as f64 };
    Fairness { queued: n, inversions, pairs, kendall_tau, max_overtaken_by }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ProcessReport {
    pub pid: u32,
    pub samples: Vec<ProcessSample>,
    pub rss_first_mb: f64,
    pub rss_last_mb: f64,
    pub rss_max_mb: f64,
    /// VmHWM at the end: the most the server ever held resident.
    pub hwm_mb: f64,
    pub fds_first: usize,
    pub fds_last: usize,
    pub fds_max: usize,
}

impl ProcessReport {
    fn of(pid: u32, samples: Vec<ProcessSample>) -> Option<ProcessReport> {
        let (first, last) = (*samples.first()?, *samples.last()?);
        Some(ProcessReport {
            pid,
            rss_first_mb: first.rss_mb,
            rss_last_mb: last.rss_mb,
            rss_max_mb: samples.iter().map(|s| s.rss_mb).fold(0.0, f64::max),
            hwm_mb: last.hwm_mb,
            fds_first: first.open_fds,
            fds_last: last.open_fds,
            fds_max: samples.iter().map(|s| s.open_fds).max().unwrap_or(0),
            samples,
        })
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadReport {
    pub mode: String,
    pub shoppers: usize,
    pub questions_asked: usize,
    /// Questions that got an answer (any outcome but `error`).
    pub answered: usize,
    pub outcomes: BTreeMap<String, usize>,
    pub busy: usize,
    pub rate_limited: usize,
    /// `error` frames by code, `rate_limited` excluded.
    pub errors: BTreeMap<String, usize>,
    /// Answers that ended with outcome `error`.
    pub failed_answers: usize,
    /// Connections that ended (or were refused) before their answer.
    pub dropped: usize,
    pub dropped_why: BTreeMap<String, usize>,
    pub unfinished: usize,
    /// Message sent to first delta, every answer.
    pub first_delta: Percentiles,
    /// Message sent to first delta, answers a model generated.
    pub first_token: Percentiles,
    /// The server's own `ttft_ms` of model answers.
    pub server_ttft: Percentiles,
    pub answer_total: Percentiles,
    pub total_s: f64,
    pub fairness: Fairness,
    pub process: Option<ProcessReport>,
    /// Figures from the server's `/metrics` after the run.
    pub metrics: BTreeMap<String, f64>,
}

fn report(mode: &str, shoppers: usize, runs: &[Vec<Asked>], total: Duration) -> LoadReport {
    let all: Vec<&Asked> = runs.iter().flatten().collect();
    let mut out = LoadReport {
        mode: mode.into(),
        shoppers,
        questions_asked: all.len(),
        total_s: total.as_secs_f64(),
        ..LoadReport::default()
    };
    for asked in &all {
        match &asked.ending {
            Ending::Answered(label) => {
                out.answered += 1;
                *out.outcomes.entry((*label).into()).or_default() += 1;
            }
            Ending::Failed => out.failed_answers += 1,
            Ending::Busy => out.busy += 1,
            Ending::ErrorFrame(ErrorCode::RateLimited) => out.rate_limited += 1,
            Ending::ErrorFrame(code) => *out.errors.entry(code_label(*code)).or_default() += 1,
            Ending::Dropped(closed) => {
                out.dropped += 1;
                let why = match closed {
                    Closed::Code(code, reason) => format!("{code} {reason}"),
                    Closed::Dropped(_) => "no close frame".into(),
                    Closed::TimedOut => "timed out".into(),
                };
                *out.dropped_why.entry(why).or_default() += 1;
            }
            Ending::Unfinished => out.unfinished += 1,
        }
    }
    let values = |f: &dyn Fn(&Asked) -> Option<f64>| -> Vec<f64> {
        all.iter()
            .filter(|a| matches!(a.ending, Ending::Answered(_)))
            .filter_map(|a| f(a))
            .collect()
    };
    out.first_delta = Percentiles::of(&values(&|a| a.first_delta_ms));
    out.first_token = Percentiles::of(&values(&|a| a.server_ttft_ms.and(a.first_delta_ms)));
    out.server_ttft = Percentiles::of(&values(&|a| a.server_ttft_ms));
    out.answer_total = Percentiles::of(&values(&|a| a.total_ms));
    out.fairness = fairness(&all);
    out
}

pub fn run(args: LoadtestArgs) -> Result<()> {
    let target = Arc::new(Target::parse(&args.url)?);
    let questions = read_questions(&args.questions)?;
    if args.questions_per_shopper == 0 {
        bail!("--questions-per-shopper must be at least 1");
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let report = runtime.block_on(drive(&args, target, questions))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

async fn drive(
    args: &LoadtestArgs,
    target: Arc<Target>,
    questions: Vec<String>,
) -> Result<LoadReport> {
    let started = Instant::now();
    let (mode, count, spacing) = match (args.rate, args.duration) {
        (Some(rate), Some(duration)) => {
            if !(rate > 0.0 && rate <= 100.0) {
                bail!("--rate must be above 0 and at most 100 shoppers a second");
            }
            let count = (rate * duration as f64).round().max(1.0) as usize;
            ("steady", count, Duration::from_secs_f64(1.0 / rate))
        }
        _ => ("burst", args.shoppers.max(1), Duration::ZERO),
    };
    let limit = args.duration_limit.unwrap_or(match args.duration {
        Some(duration) if args.rate.is_some() => duration + 300,
        _ => 600,
    });
    let deadline = started + Duration::from_secs(limit);

    // Samples go into a shared list, so that stopping the sampler keeps them.
    let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sampler = args.server_pid.map(|pid| {
        let every = Duration::from_secs(args.sample_every.max(1));
        let samples = samples.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            while Instant::now() < deadline {
                tick.tick().await;
                let Some(sample) = server_stats::sample(pid, started.elapsed().as_secs_f64())
                else {
                    return;
                };
                samples.lock().unwrap_or_else(|e| e.into_inner()).push(sample);
            }
        })
    });

    let per = args.questions_per_shopper;
    let mut tasks = Vec::with_capacity(count);
    for i in 0..count {
        if !spacing.is_zero() {
            tokio::time::sleep_until((started + spacing * i as u32).into()).await;
            if Instant::now() >= deadline {
                break;
            }
        }
        let picked: Vec<String> =
            (0..1 + i % per).map(|k| questions[(i * per + k) % questions.len()].clone()).collect();
        tasks.push(tokio::spawn(shopper(target.clone(), picked, args.lang.clone(), deadline)));
    }
    let mut runs = Vec::with_capacity(tasks.len());
    for task in tasks {
        runs.push(task.await.unwrap_or_else(|_| vec![Asked::ended(Ending::Unfinished)]));
    }
    let total = started.elapsed();

    let mut out = report(mode, runs.len(), &runs, total);
    if let (Some(pid), Some(sampler)) = (args.server_pid, sampler) {
        sampler.abort();
        let mut samples = std::mem::take(&mut *samples.lock().unwrap_or_else(|e| e.into_inner()));
        samples.extend(server_stats::sample(pid, started.elapsed().as_secs_f64()));
        out.process = ProcessReport::of(pid, samples);
    }
    if let Some(text) = server_stats::metrics(&target.authority).await {
        for name in [
            "shopchat_open_sessions",
            "shopchat_queue_depth",
            "shopchat_busy_total",
            "shopchat_frame_errors_total",
            "shopchat_answers_total",
            "shopchat_worker_restarts_total",
            "process_resident_memory_bytes",
            "process_open_fds",
        ] {
            if let Some(value) = server_stats::metric(&text, name) {
                out.metrics.insert(name.into(), value);
            }
        }
    }
    Ok(out)
}

fn print_table(r: &LoadReport) {
    let map = |m: &BTreeMap<String, usize>| -> String {
        if m.is_empty() {
            return "-".into();
        }
        m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
    };
    println!("mode               {}", r.mode);
    println!("shoppers           {}", r.shoppers);
    println!("questions asked    {}", r.questions_asked);
    println!("answered           {} ({})", r.answered, map(&r.outcomes));
    println!("busy               {}", r.busy);
    println!("rate limited       {}", r.rate_limited);
    println!("error frames       {} ({})", r.errors.values().sum::<usize>(), map(&r.errors));
    println!("failed answers     {}", r.failed_answers);
    println!("dropped            {} ({})", r.dropped, map(&r.dropped_why));
    println!("unfinished         {}", r.unfinished);
    println!("first delta        {}  p50/p95/p99, every answer", r.first_delta.row());
    println!("first token        {}  p50/p95/p99, model answers", r.first_token.row());
    println!("server ttft        {}  p50/p95/p99, the server's ttft_ms", r.server_ttft.row());
    println!("answer total       {}  p50/p95/p99", r.answer_total.row());
    println!("total time         {:.1} s", r.total_s);
    let f = &r.fairness;
    println!(
        "fairness           {} queued; {} of {} pairs served out of asking order; tau {:.3}; most overtaken by {}",
        f.queued, f.inversions, f.pairs, f.kendall_tau, f.max_overtaken_by
    );
    if let Some(p) = &r.process {
        println!(
            "server rss         {:.0} MB first, {:.0} MB last, {:.0} MB max sampled, {:.0} MB high-water (pid {})",
            p.rss_first_mb, p.rss_last_mb, p.rss_max_mb, p.hwm_mb, p.pid
        );
        println!(
            "server open fds    {} first, {} last, {} max ({} samples)",
            p.fds_first,
            p.fds_last,
            p.fds_max,
            p.samples.len()
        );
        // A dozen samples spread over the run: enough to see a trend.
        let step = p.samples.len().div_ceil(12).max(1);
        let spread: Vec<String> = p
            .samples
            .iter()
            .step_by(step)
            .map(|s| format!("{:.0}s {:.0} MB {} fds", s.at_s, s.rss_mb, s.open_fds))
            .collect();
        println!("server over time   {}", spread.join(" | "));
    }
    for (name, value) in &r.metrics {
        println!("metrics            {name} {value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waited(acked_ms: u64, served_ms: u64, base: Instant) -> Asked {
        let mut asked = Asked::ended(Ending::Answered("answered"));
        asked.queued = Some(1);
        asked.acked_at = Some(base + Duration::from_millis(acked_ms));
        asked.first_delta_at = Some(base + Duration::from_millis(served_ms));
        asked
    }

    #[test]
    fn fairness_counts_who_was_served_before_an_earlier_asker() {
        let base = Instant::now();
        let in_order = [waited(1, 10, base), waited(2, 20, base), waited(3, 30, base)];
        let f = fairness(&in_order.iter().collect::<Vec<_>>());
        assert_eq!((f.queued, f.inversions, f.pairs, f.kendall_tau), (3, 0, 3, 1.0));
        // The last to ask is served first: it overtakes both.
        let jumped = [waited(1, 10, base), waited(2, 20, base), waited(3, 5, base)];
        let f = fairness(&jumped.iter().collect::<Vec<_>>());
        assert_eq!((f.inversions, f.max_overtaken_by), (2, 1));
        assert!((f.kendall_tau - (1.0 - 4.0 / 3.0)).abs() < 1e-9);
    }

    #[test]
    fn questions_are_read_from_plain_or_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.txt");
        std::fs::write(&path, "# a comment\n\nDo gift cards expire?\n{\"text\": \"Hi\"}\n")
            .unwrap();
        assert_eq!(read_questions(&path).unwrap(), ["Do gift cards expire?", "Hi"]);
        std::fs::write(&path, "{\"q\": 1}\n").unwrap();
        assert!(read_questions(&path).unwrap_err().to_string().contains(":1: no"));
    }
}
