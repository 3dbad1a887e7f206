//! `shopchat eval`: quality figures on data we did not write.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use shopchat_core::{Language, TextEmbedder};
use shopchat_inference::ModelRegistry;
use shopchat_retrieval::{IndexHandle, KnowledgeBase, PassageKind, SearchQuery};

use shopchat_retrieval::gate::{calibrate, GateCounts, GateSignals};

use crate::bench_search::percentile;
use crate::knowledge::{build_with_progress, load_embedder, parse_language, DataDirArg};

#[derive(Subcommand)]
pub enum EvalCommand {
    /// Hit@k, MRR@10 and latency of retrieval on a FAQ corpus and its queries.
    Retrieval(RetrievalArgs),
    /// Precision and recall of the relevance gate on labelled questions.
    Gate(GateArgs),
    /// Routes customer-support utterances (Bitext) to the demo FAQ topics.
    Routing(RoutingArgs),
    /// Runs test conversations (YAML suites); fails when an assertion fails.
    Run(crate::suite::RunArgs),
    /// Prints a reviewed conversation as a test case for a suite.
    FromTranscript(crate::suite_from_transcript::FromTranscriptArgs),
    /// Precision and recall of the answer check on labelled answers.
    Check(crate::eval_check::CheckArgs),
}

#[derive(Args)]
pub struct GateArgs {
    #[command(flatten)]
    data: DataDirArg,
    /// JSON lines `{"q","lang","in_scope"}`.
    #[arg(long, default_value = "tests/gate/questions.jsonl")]
    questions: PathBuf,
    /// Also fit the rules on half the questions and report the other half
    /// (both ways round), then print the rules fitted on all of them.
    #[arg(long)]
    calibrate: bool,
    /// The shop whose rule (`gate.toml`) is scored; without one, the default.
    #[arg(long, default_value = "faq")]
    shop: PathBuf,
    /// How --calibrate fits a rule: `grid` (cosine + w * coverage, with the
    /// unknown share as a veto) or `logistic` (every signal weighted).
    #[arg(long, value_enum, default_value = "grid")]
    fit: GateFit,
    /// With --calibrate: write the rules fitted on all the questions to the
    /// shop's `gate.toml`, where the server reads them.
    #[arg(long, requires = "calibrate")]
    write: bool,
    /// Writes each question's raw signals (its top hits with their BM25 and
    /// cosine places, coverage, unknown share) as JSON lines, to study other
    /// rules without rebuilding.
    #[arg(long)]
    dump: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum GateFit {
    Grid,
    Logistic,
}

impl GateFit {
    fn calibrate(self, examples: &[(GateSignals, bool)]) -> shopchat_retrieval::gate::GateRule {
        match self {
            GateFit::Grid => calibrate(examples),
            GateFit::Logistic => shopchat_retrieval::gate_fit::calibrate_logistic(examples),
        }
    }
}

#[derive(Args)]
pub struct RoutingArgs {
    #[command(flatten)]
    data: DataDirArg,
    /// The Bitext customer-support CSV (`instruction`, `intent` columns).
    #[arg(long)]
    bitext: PathBuf,
    /// Which FAQ ids answer each intent (TOML: intent = [ids]).
    #[arg(long, default_value = "tests/eval/bitext-intents.toml")]
    map: PathBuf,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct RetrievalArgs {
    /// JSON lines `{"id","question","answer"}`.
    #[arg(long)]
    corpus: PathBuf,
    /// JSON lines `{"query","gold_id"}`.
    #[arg(long)]
    queries: PathBuf,
    /// BM25 alone instead of BM25 fused with sentence vectors.
    #[arg(long)]
    bm25_only: bool,
    #[arg(long)]
    json: bool,
}

pub fn run(registry: &ModelRegistry, command: EvalCommand) -> Result<()> {
    match command {
        EvalCommand::Retrieval(args) => retrieval(registry, args),
        EvalCommand::Gate(args) => gate(registry, args),
        EvalCommand::Routing(args) => routing(registry, args),
        EvalCommand::Run(args) => crate::suite::run(registry.dir(), args),
        EvalCommand::FromTranscript(args) => crate::suite_from_transcript::from_transcript(args),
        EvalCommand::Check(args) => crate::eval_check::check(args),
    }
}

fn read_jsonl(path: &Path) -> Result<Vec<serde_json::Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{}:{}: not JSON", path.display(), i + 1))
        })
        .collect()
}

/// A scratch index of a corpus, gone when dropped.
struct ScratchIndex {
    _dir: tempfile::TempDir,
    handle: IndexHandle,
}

fn scratch_index(corpus: &Path, embedder: Option<Arc<dyn TextEmbedder>>) -> Result<ScratchIndex> {
    let dir = tempfile::tempdir()?;
    let mut kb = KnowledgeBase::default();
    kb.import_faq(corpus)?;
    build_with_progress(&kb, dir.path(), embedder.as_deref())?;
    let handle = IndexHandle::open(dir.path(), embedder)?;
    Ok(ScratchIndex { _dir: dir, handle })
}

/// The FAQ id behind a passage id (`faq/ID@lang`).
pub fn faq_id(passage_id: &str) -> &str {
    let id = passage_id.strip_prefix("faq/").unwrap_or(passage_id);
    id.rsplit_once('@').map(|(id, _)| id).unwrap_or(id)
}

fn retrieval(registry: &ModelRegistry, args: RetrievalArgs) -> Result<()> {
    let embedder = if args.bm25_only { None } else { load_embedder(registry)? };
    let hybrid = embedder.is_some();
    let index = scratch_index(&args.corpus, embedder)?;
    let queries = read_jsonl(&args.queries)?;
    if queries.is_empty() {
        bail!("{} holds no queries", args.queries.display());
    }
    let (mut hit1, mut hit3, mut hit10, mut mrr) = (0usize, 0usize, 0usize, 0.0f64);
    let mut latencies = Vec::with_capacity(queries.len());
    for (number, query) in queries.iter().enumerate() {
        let (Some(text), Some(gold)) = (query["query"].as_str(), query["gold_id"].as_str()) else {
            bail!("{}:{}: needs \"query\" and \"gold_id\"", args.queries.display(), number + 1);
        };
        let started = Instant::now();
        let hits =
            index.handle.search(&SearchQuery { text, lang: Some(Language::En), limit: 10 })?;
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        if let Some(rank) = hits
            .iter()
            .position(|h| h.passage.kind == PassageKind::Faq && faq_id(&h.passage.id) == gold)
        {
            hit1 += usize::from(rank < 1);
            hit3 += usize::from(rank < 3);
            hit10 += 1;
            mrr += 1.0 / (rank as f64 + 1.0);
        }
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    let n = queries.len() as f64;
    let report = serde_json::json!({
        "n": queries.len(),
        "mode": if hybrid { "hybrid" } else { "bm25" },
        "hit@1": hit1 as f64 / n,
        "hit@3": hit3 as f64 / n,
        "hit@10": hit10 as f64 / n,
        "mrr@10": mrr / n,
        "p50_ms": percentile(&latencies, 0.5),
        "p99_ms": percentile(&latencies, 0.99),
    });
    if args.json {
        println!("{report}");
    } else {
        println!("queries   {}", report["n"]);
        println!("mode      {}", report["mode"].as_str().unwrap_or_default());
        for key in ["hit@1", "hit@3", "hit@10", "mrr@10"] {
            println!("{key:<9} {:.3}", report[key].as_f64().unwrap_or_default());
        }
        println!(
            "latency   p50 {:.2} ms, p99 {:.2} ms",
            report["p50_ms"].as_f64().unwrap_or_default(),
            report["p99_ms"].as_f64().unwrap_or_default()
        );
    }
    Ok(())
}

fn gate(registry: &ModelRegistry, args: GateArgs) -> Result<()> {
    let embedder = load_embedder(registry)?;
    let embedder_name = embedder.as_deref().map(shopchat_pipeline::embedder_name);
    let index = IndexHandle::open(&args.data.data_dir, embedder)?;
    let hybrid = index.current().is_hybrid();
    let gate_file = args.shop.join(shopchat_retrieval::gate::GATE_FILE);
    let config = shopchat_pipeline::load_gate(&args.shop, embedder_name.as_deref())?;
    let mut fitted = config.clone();
    let mut examples: Vec<(Language, GateSignals, bool)> = Vec::new();
    // Per language: in-scope questions that name their expected FAQ entry,
    // and how many of those find it first.
    let mut first_places: std::collections::HashMap<Language, (usize, usize)> = Default::default();
    let mut dump = Vec::new();
    for (number, question) in read_jsonl(&args.questions)?.iter().enumerate() {
        let (Some(text), Some(lang), Some(in_scope)) =
            (question["q"].as_str(), question["lang"].as_str(), question["in_scope"].as_bool())
        else {
            bail!(
                "{}:{}: needs \"q\", \"lang\" and \"in_scope\"",
                args.questions.display(),
                number + 1
            );
        };
        let lang = parse_language(lang)?;
        // Deep enough to hold every candidate of both rankings, for the dump.
        let query = SearchQuery { text, lang: Some(lang), limit: 100 };
        let hits = index.search(&query)?;
        // Every signal, whatever the shop's rule weighs: a fit may use any.
        let wanted = shopchat_retrieval::SignalsWanted { cosine_without_unknown: true };
        let signals = index.query_signals(&query, wanted)?;
        if let (true, Some(expected)) = (in_scope, question["expect_id"].as_str()) {
            let entry = first_places.entry(lang).or_default();
            entry.0 += 1;
            entry.1 += usize::from(hits.first().is_some_and(|h| is_expected(&h.passage, expected)));
        }
        let gate_signals = GateSignals::of(&signals, &hits);
        if args.dump.is_some() {
            dump.push(dump_line(question, &signals, &gate_signals, &hits).to_string());
        }
        examples.push((lang, gate_signals, in_scope));
    }
    if let Some(path) = &args.dump {
        std::fs::write(path, dump.join("\n") + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let mut report = serde_json::Map::new();
    report.insert("mode".into(), (if hybrid { "hybrid" } else { "bm25" }).into());
    for lang in Language::ALL {
        let labelled: Vec<(GateSignals, bool)> =
            examples.iter().filter(|e| e.0 == lang).map(|e| (e.1, e.2)).collect();
        if labelled.is_empty() {
            continue;
        }
        // The embedder may not cover every language (MiniLM is English
        // only): the rule follows whether this language's hits had vectors.
        let lang_hybrid = labelled.iter().any(|(signals, _)| signals.cosine.is_some());
        let rule = config.rule(lang, lang_hybrid);
        let mut entry = serde_json::json!({
            "rule": rule,
            "mode": if lang_hybrid { "hybrid" } else { "bm25" },
            "shipped": counts_json(&GateCounts::of(&rule, &labelled)),
        });
        if let Some(&(asked, first)) = first_places.get(&lang) {
            entry["expected_first"] = serde_json::json!({
                "in_scope_with_expect_id": asked,
                "share": first as f64 / asked.max(1) as f64,
            });
        }
        if args.calibrate {
            // Two-fold: fit on even lines, test on odd ones, and the reverse.
            let halves: [Vec<(GateSignals, bool)>; 2] = [
                labelled.iter().step_by(2).copied().collect(),
                labelled.iter().skip(1).step_by(2).copied().collect(),
            ];
            let mut held_out = GateCounts::default();
            for (fit, test) in [(0, 1), (1, 0)] {
                let counts = GateCounts::of(&args.fit.calibrate(&halves[fit]), &halves[test]);
                held_out.true_covered += counts.true_covered;
                held_out.false_covered += counts.false_covered;
                held_out.true_refused += counts.true_refused;
                held_out.false_refused += counts.false_refused;
            }
            entry["held_out"] = counts_json(&held_out);
            let rule = args.fit.calibrate(&labelled);
            fitted.set_rule(lang, lang_hybrid, rule);
            entry["fitted_on_all"] = serde_json::to_value(rule)?;
        }
        report.insert(lang.code().into(), entry);
    }
    if args.write {
        let header = format!(
            "The relevance gate's rule for this shop, fitted by\n  shopchat eval gate --calibrate --fit {} --write --shop {} --questions {}\non {} labelled questions, with the embedding model {}. Rerun it after changing the knowledge base\nor the embedding model.",
            match args.fit {
                GateFit::Grid => "grid",
                GateFit::Logistic => "logistic",
            },
            args.shop.display(),
            args.questions.display(),
            examples.len(),
            embedder_name.as_deref().filter(|_| hybrid).unwrap_or("none (BM25 only)")
        );
        std::fs::write(
            &gate_file,
            fitted.to_toml(&header, embedder_name.as_deref().filter(|_| hybrid)),
        )
        .with_context(|| format!("writing {}", gate_file.display()))?;
        report.insert("written".into(), gate_file.display().to_string().into());
    }
    let report = serde_json::Value::Object(report);
    if args.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

/// Whether a hit is the passage a gate question expects: the FAQ entry of
/// that id, or a section of the policy document of that id (`returns` for
/// "what is your returns policy").
fn is_expected(passage: &shopchat_retrieval::Passage, expected: &str) -> bool {
    let id = faq_id(&passage.id);
    match id.strip_prefix("policy/") {
        Some(policy) => policy.split('#').next() == Some(expected),
        None => passage.kind == PassageKind::Faq && id == expected,
    }
}

/// One question's raw signals for `--dump`.
fn dump_line(
    question: &serde_json::Value,
    signals: &shopchat_retrieval::QuerySignals,
    gate_signals: &GateSignals,
    hits: &[shopchat_retrieval::Hit],
) -> serde_json::Value {
    let hits: Vec<serde_json::Value> = hits
        .iter()
        .map(|h| {
            serde_json::json!({
                "id": faq_id(&h.passage.id),
                "kind": h.passage.kind,
                "bm25": h.bm25.map(|r| (r.score, r.rank)),
                "cosine": h.cosine.map(|r| (r.score, r.rank)),
                "coverage": h.coverage,
            })
        })
        .collect();
    serde_json::json!({
        "q": question["q"],
        "lang": question["lang"],
        "in_scope": question["in_scope"],
        "expect_id": question["expect_id"],
        "unknown_share": signals.unknown_share,
        "cosine_without_unknown": signals.cosine_without_unknown,
        "contact_missing": gate_signals.contact_missing,
        "hits": hits,
    })
}

fn counts_json(counts: &GateCounts) -> serde_json::Value {
    serde_json::json!({
        "in_scope": counts.true_covered + counts.false_refused,
        "out_of_scope": counts.true_refused + counts.false_covered,
        "precision": counts.precision(),
        "recall": counts.recall(),
        "refused_out_of_scope": counts.refusal_rate(),
        "f1": counts.f1(),
    })
}

fn routing(registry: &ModelRegistry, args: RoutingArgs) -> Result<()> {
    let index = IndexHandle::open(&args.data.data_dir, load_embedder(registry)?)?;
    let map: std::collections::BTreeMap<String, Vec<String>> = toml::from_str(
        &std::fs::read_to_string(&args.map)
            .with_context(|| format!("reading {}", args.map.display()))?,
    )
    .with_context(|| format!("parsing {}", args.map.display()))?;
    let mut reader = csv::Reader::from_path(&args.bitext)
        .with_context(|| format!("reading {}", args.bitext.display()))?;
    let headers = reader.headers()?.clone();
    let column = |name: &str| {
        headers.iter().position(|h| h == name).with_context(|| format!("no `{name}` column"))
    };
    let (text_column, intent_column) = (column("instruction")?, column("intent")?);
    let (mut total, mut correct, mut unmapped) = (0usize, 0usize, 0usize);
    let mut by_intent: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    for record in reader.records() {
        let record = record?;
        let (text, intent) = (&record[text_column], &record[intent_column]);
        let Some(expected) = map.get(intent) else {
            unmapped += 1;
            continue;
        };
        let hits = index.search(&SearchQuery { text, lang: Some(Language::En), limit: 10 })?;
        let top_faq =
            hits.iter().find(|h| h.passage.kind == PassageKind::Faq).map(|h| faq_id(&h.passage.id));
        let right = top_faq.is_some_and(|id| expected.iter().any(|e| e == id));
        total += 1;
        correct += usize::from(right);
        let entry = by_intent.entry(intent.to_owned()).or_default();
        entry.0 += 1;
        entry.1 += usize::from(right);
    }
    if total == 0 {
        bail!("no utterance has an intent listed in {}", args.map.display());
    }
    let report = serde_json::json!({
        "utterances": total,
        "accuracy": correct as f64 / total as f64,
        "left_out_no_demo_topic": unmapped,
        "by_intent": by_intent.iter().map(|(k, (n, c))| (k.clone(), serde_json::json!(*c as f64 / *n as f64))).collect::<serde_json::Map<_, _>>(),
    });
    if args.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}
