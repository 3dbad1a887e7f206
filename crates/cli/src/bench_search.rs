//! `shopchat bench-search`: index build time and search latency on a
//! generated corpus of any size.
//!
//! The corpus is synthetic but shaped like a shop's FAQ (a question and a
//! two-to-four sentence answer over a shop vocabulary), generated from a
//! fixed seed so that runs compare.

use std::io::Write;
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use shopchat_core::Language;
use shopchat_inference::ModelRegistry;
use shopchat_retrieval::{IndexHandle, KnowledgeBase, SearchQuery};

use crate::knowledge::{build_with_progress, load_embedder};

#[derive(Args)]
pub struct BenchSearchArgs {
    #[arg(long, default_value_t = 10_000)]
    passages: usize,
    #[arg(long, default_value_t = 500)]
    queries: usize,
    #[arg(long)]
    json: bool,
}

const SUBJECTS: &[&str] = &[
    "order",
    "parcel",
    "refund",
    "return",
    "exchange",
    "gift card",
    "invoice",
    "password",
    "account",
    "size guide",
    "warranty",
    "discount code",
    "delivery",
    "tracking number",
    "payment",
    "newsletter",
    "jacket",
    "dress",
    "trainers",
    "backpack",
    "scarf",
    "charger",
    "duvet cover",
    "wallet",
];
const VERBS: &[&str] = &[
    "cancel",
    "change",
    "track",
    "return",
    "exchange",
    "pay for",
    "reset",
    "delete",
    "update",
    "claim",
    "use",
    "find",
    "ship",
    "replace",
    "repair",
    "send back",
];
const DETAILS: &[&str] = &[
    "within 30 days of delivery",
    "in 3-5 business days",
    "from your account page",
    "by email",
    "before it is dispatched",
    "with the original receipt",
    "to the original payment method",
    "free of charge in the UK",
    "for orders over 60 euros",
    "during our opening hours",
    "with a prepaid label",
    "at no extra cost",
    "after our warehouse checks it",
    "within 24 hours",
];

/// A small deterministic generator (xorshift), so the corpus is the same
/// on every run without a dependency.
struct Generator(u64);

impl Generator {
    fn next(&mut self) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 as usize
    }

    fn pick<'a>(&mut self, words: &[&'a str]) -> &'a str {
        words[self.next() % words.len()]
    }
}

/// One generated FAQ entry.
pub(crate) struct GeneratedEntry {
    pub question: String,
    pub answer: String,
}

/// `count` FAQ-shaped entries, the same on every run, and up to `queries`
/// shopper questions about them.
pub(crate) fn generated_corpus(count: usize, queries: usize) -> (Vec<GeneratedEntry>, Vec<String>) {
    let mut generator = Generator(0x5eed_cafe);
    let mut entries = Vec::with_capacity(count);
    let mut questions = Vec::new();
    for id in 0..count {
        let (verb, subject) = (generator.pick(VERBS), generator.pick(SUBJECTS));
        let question = format!("How do I {verb} my {subject}? (topic {id})");
        let sentences: Vec<String> = (0..2 + generator.next() % 3)
            .map(|_| {
                format!(
                    "You can {} your {} {}.",
                    generator.pick(VERBS),
                    generator.pick(SUBJECTS),
                    generator.pick(DETAILS)
                )
            })
            .collect();
        entries.push(GeneratedEntry { question, answer: sentences.join(" ") });
        if questions.len() < queries {
            questions.push(format!("can i {verb} the {subject} {}", generator.pick(DETAILS)));
        }
    }
    (entries, questions)
}

pub fn run(registry: &ModelRegistry, args: BenchSearchArgs) -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let corpus_path = scratch.path().join("corpus.jsonl");
    let mut corpus = std::io::BufWriter::new(std::fs::File::create(&corpus_path)?);
    let (entries, questions) = generated_corpus(args.passages, args.queries);
    for (id, entry) in entries.iter().enumerate() {
        let line = serde_json::json!({"id": format!("p{id}"), "question": entry.question, "answer": entry.answer, "lang": "en"});
        writeln!(corpus, "{line}")?;
    }
    corpus.flush()?;
    drop(corpus);

    let mut kb = KnowledgeBase::default();
    kb.import_faq(&corpus_path)?;
    let embedder = load_embedder(registry)?;
    let mut report = serde_json::json!({"passages": args.passages, "queries": questions.len()});
    for (mode, embedder) in [("bm25", None), ("hybrid", embedder.clone())] {
        if mode == "hybrid" && embedder.is_none() {
            continue;
        }
        let data = tempfile::tempdir()?;
        let started = Instant::now();
        build_with_progress(&kb, data.path(), embedder.as_deref())?;
        let build_s = started.elapsed().as_secs_f64();
        let index = IndexHandle::open(data.path(), embedder.clone())?;
        let mut latencies = Vec::with_capacity(questions.len());
        for question in &questions {
            let started = Instant::now();
            index.search(&SearchQuery { text: question, lang: Some(Language::En), limit: 10 })?;
            latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        latencies.sort_by(|a, b| a.total_cmp(b));
        report[mode] = serde_json::json!({
            "build_s": build_s,
            "p50_ms": percentile(&latencies, 0.5),
            "p99_ms": percentile(&latencies, 0.99),
        });
    }
    // The query's embedding is the bulk of a hybrid search: measure it
    // alone so the index's own share can be read off.
    if let Some(embedder) = &embedder {
        let mut latencies = Vec::with_capacity(questions.len());
        for question in &questions {
            let started = Instant::now();
            embedder.embed_queries(Language::detect(question), &[question.as_str()])?;
            latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        latencies.sort_by(|a, b| a.total_cmp(b));
        report["query_embedding"] = serde_json::json!({
            "p50_ms": percentile(&latencies, 0.5),
            "p99_ms": percentile(&latencies, 0.99),
        });
    }
    if args.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}
