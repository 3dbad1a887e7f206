//! `shopchat bench-passage-cache`: the passage cache's memory and reuse on
//! `bench-search`'s generated corpus (10k passages by default), with a
//! real model's keys and values. Prints figures; asserts nothing.

use anyhow::{Context, Result};
use clap::Args;
use shopchat_inference::bench_passages::{self, PassageMemoryConfig};
use shopchat_inference::{LanguageModel, LoadConfig, ModelRegistry, DEFAULT_PASSAGE_CACHE_MB};

use crate::bench_search::generated_corpus;

#[derive(Args)]
pub struct BenchPassageCacheArgs {
    /// A model name (`smollm2-135m`), a variant (`smollm2-135m:q8_0`) or a .gguf path.
    #[arg(long, default_value = "smollm2-135m:q8_0")]
    model: String,
    /// Passages in the generated corpus.
    #[arg(long, default_value_t = 10_000)]
    passages: usize,
    /// Questions asked, the popular ones more often (Zipf), each on three passages.
    #[arg(long, default_value_t = 200)]
    answers: usize,
    /// The cache's budget in MiB (the server's default unless given).
    #[arg(long, default_value_t = DEFAULT_PASSAGE_CACHE_MB)]
    budget_mb: usize,
    #[arg(long)]
    json: bool,
}

pub fn run(registry: &ModelRegistry, args: BenchPassageCacheArgs) -> Result<()> {
    let path = registry.resolve_chat_model(&args.model)?;
    let model = LanguageModel::load(&path, &LoadConfig::default())
        .with_context(|| format!("loading {}", path.display()))?;
    let (entries, _) = generated_corpus(args.passages.max(3), 0);
    let corpus: Vec<String> =
        entries.into_iter().map(|e| format!("{}\n{}", e.question, e.answer)).collect();
    let config = PassageMemoryConfig {
        budget_bytes: args.budget_mb.saturating_mul(1024 * 1024),
        answers: args.answers,
        per_answer: 3,
        seed: 0x5eed,
    };
    let report = bench_passages::run(&model, &args.model, &corpus, &config)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0} ms"));
    println!("model            {}", report.model);
    println!("corpus           {} passages, {} answers", report.corpus_passages, report.answers);
    println!(
        "cache            at most {:.0} of {:.0} MiB ({}), {} passages kept at the end",
        report.max_cache_mb,
        report.budget_mb,
        if report.within_budget { "within budget" } else { "OVER BUDGET" },
        report.kept_passages_at_end
    );
    println!(
        "reuse            {} kept of {} looked up ({:.0}%)",
        report.hits,
        report.hits + report.misses,
        100.0 * report.hit_rate
    );
    println!(
        "first token      {} all passages kept, {} some computed",
        ms(report.ttft_all_kept_ms),
        ms(report.ttft_some_computed_ms)
    );
    println!("peak rss         {:.0} MB", report.peak_rss_mb);
    Ok(())
}
