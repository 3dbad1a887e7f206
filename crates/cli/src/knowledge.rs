//! `shopchat index` and `shopchat search`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use shopchat_core::{Language, TextEmbedder};
use shopchat_inference::ModelRegistry;
use shopchat_retrieval::{
    build_index, BuildProgress, Hit, IndexHandle, KnowledgeBase, SearchQuery,
};

/// The embedding models used for hybrid retrieval unless `--embedding-model`
/// names others.
pub const EMBEDDING_MODEL: &str = shopchat_pipeline::DEFAULT_EMBEDDERS;

/// The `--embedding-model` flag, set once at start: it is global, and every
/// command that searches loads the embedder through [`load_embedder`].
static CHOSEN_EMBEDDING_MODEL: std::sync::OnceLock<String> = std::sync::OnceLock::new();

pub fn choose_embedding_model(name: String) {
    let _ = CHOSEN_EMBEDDING_MODEL.set(name);
}

/// The embedder named by `--embedding-model`, if the flag was given.
pub fn chosen_embedding_model() -> Option<&'static str> {
    CHOSEN_EMBEDDING_MODEL.get().map(String::as_str)
}

/// The embedder commands load: the one `--embedding-model` names, else the
/// default.
pub fn embedding_model() -> &'static str {
    chosen_embedding_model().unwrap_or(EMBEDDING_MODEL)
}

#[derive(Args)]
pub struct DataDirArg {
    /// Where the index and the database live.
    #[arg(long, env = "SHOPCHAT_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
}

#[derive(Args)]
pub struct IndexArgs {
    /// The knowledge base: FAQ, policies, orders.
    #[arg(long, default_value = "faq")]
    kb: PathBuf,
    /// Extra FAQ entries to import: JSONL `{"id","question","answer","lang"?}` or CSV.
    #[arg(long)]
    import: Vec<PathBuf>,
    #[command(flatten)]
    data: DataDirArg,
    /// Index without the embedding model (BM25 only).
    #[arg(long)]
    bm25_only: bool,
}

#[derive(Args)]
pub struct SearchArgs {
    #[command(flatten)]
    data: DataDirArg,
    /// Hits to show.
    #[arg(short, default_value_t = 5)]
    k: usize,
    /// Query language (default: detected from the query).
    #[arg(long)]
    lang: Option<String>,
    /// One JSON object per hit.
    #[arg(long)]
    json: bool,
    /// The shop whose gate rule (`gate.toml`) decides; without one, the default.
    #[arg(long, default_value = "faq")]
    shop: PathBuf,
    query: String,
}

/// The sentence embedder, or `None` with a warning when it is not installed:
/// retrieval then runs on BM25 alone. The same loader as the server's.
pub fn load_embedder(registry: &ModelRegistry) -> Result<Option<Arc<dyn TextEmbedder>>> {
    let name = embedding_model();
    shopchat_pipeline::load_embedder(registry, name)
        .with_context(|| format!("loading the embedding model {name}"))
}

pub fn index(registry: &ModelRegistry, args: IndexArgs) -> Result<()> {
    let mut kb = KnowledgeBase::load(&args.kb)?;
    for file in &args.import {
        let added = kb.import_faq(file)?;
        eprintln!("imported {added} entries from {}", file.display());
    }
    let embedder = if args.bm25_only { None } else { load_embedder(registry)? };
    let report = build_with_progress(&kb, &args.data.data_dir, embedder.as_deref())?;
    println!(
        "indexed {} passages ({} with vectors) as generation {} in {}",
        report.passages,
        report.embedded,
        report.generation,
        report.dir.display()
    );
    Ok(())
}

pub fn build_with_progress(
    kb: &KnowledgeBase,
    data_dir: &Path,
    embedder: Option<&dyn TextEmbedder>,
) -> Result<shopchat_retrieval::BuildReport> {
    let bar = indicatif::ProgressBar::new(kb.passages().len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:12} [{bar:30}] {pos}/{len} {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let report = build_index(kb, data_dir, embedder, &mut |progress| match progress {
        BuildProgress::Embedding { done, total } => {
            bar.set_message("embedding");
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        }
        BuildProgress::Indexing { passages } => {
            bar.set_message("indexing");
            bar.set_position(passages as u64);
        }
        BuildProgress::Switched { .. } => bar.finish_and_clear(),
    })?;
    bar.finish_and_clear();
    Ok(report)
}

pub fn search(registry: &ModelRegistry, args: SearchArgs) -> Result<()> {
    let embedder = load_embedder(registry)?;
    let embedder_name = embedder.as_deref().map(shopchat_pipeline::embedder_name);
    let index = IndexHandle::open(&args.data.data_dir, embedder)?;
    let lang = args.lang.as_deref().map(parse_language).transpose()?;
    let query = SearchQuery { text: &args.query, lang, limit: args.k };
    let hits = index.search(&query)?;
    let lang = lang.unwrap_or_else(|| Language::detect(&args.query));
    let gate = shopchat_pipeline::load_gate(&args.shop, embedder_name.as_deref())?;
    let signals = index.query_signals(&query, gate.signals_wanted(lang))?;
    let gate = gate.decide(lang, &signals, &hits);
    if !args.json {
        println!(
            "gate: {} (score {:.2})",
            if gate.covered { "covered" } else { "not covered: the chat would refuse" },
            gate.score
        );
    }
    for hit in &hits {
        if args.json {
            println!("{}", hit_json(hit));
        } else {
            print_hit(hit);
        }
    }
    if hits.is_empty() && !args.json {
        println!("no passages match");
    }
    Ok(())
}

pub fn parse_language(tag: &str) -> Result<Language> {
    Language::from_tag(tag).with_context(|| format!("unknown language `{tag}` (en, zh)"))
}

fn hit_json(hit: &Hit) -> serde_json::Value {
    serde_json::json!({
        "rank": hit.rank,
        "id": hit.passage.id,
        "kind": hit.passage.kind,
        "lang": hit.passage.lang,
        "title": hit.passage.title,
        "heading_path": hit.passage.heading_path,
        "url": hit.passage.url,
        "fused": hit.fused,
        "bm25": hit.bm25.as_ref().map(|r| r.score),
        "cosine": hit.cosine.as_ref().map(|r| r.score),
        "coverage": hit.coverage,
        "text": hit.passage.text,
    })
}

fn print_hit(hit: &Hit) {
    let score = |r: Option<&shopchat_retrieval::Ranked>| {
        r.map(|r| format!("{:.3} (#{})", r.score, r.rank)).unwrap_or_else(|| "-".into())
    };
    println!(
        "{}. {}  fused {:.4}  bm25 {}  cosine {}  coverage {:.2}",
        hit.rank,
        hit.passage.id,
        hit.fused,
        score(hit.bm25.as_ref()),
        score(hit.cosine.as_ref()),
        hit.coverage
    );
    println!("   {}", hit.passage.title);
    let preview: String = hit.passage.text.chars().take(160).collect();
    println!("   {}", preview.replace('\n', " "));
}
