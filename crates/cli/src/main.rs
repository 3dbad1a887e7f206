//! `shopchat`: the command line of ShopChat.
//!
//! Thin by design: argument parsing and printing live here, the work lives
//! in the library crates, so the server and this harness run the same code.

mod attack;
mod attack_script;
mod bench_passages;
mod bench_search;
mod eval;
mod eval_check;
mod harness;
mod knowledge;
mod loadtest;
#[cfg(test)]
#[path = "../../../tests/fuzz/mutations.rs"]
mod mutations;
mod serve;
mod server_stats;
mod suite;
mod suite_from_transcript;
#[cfg(test)]
mod suite_fuzz;
mod suite_score;
mod suite_spec;
mod ws_client;

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use shopchat_core::{ChatMessage, Language};
use shopchat_inference::bench::{self, BenchConfig};
use shopchat_inference::tokenizer::Tokenizer;
use shopchat_inference::{
    spawn_worker, FetchOptions, GenerationEvent, GenerationRequest, LanguageModel, LoadConfig,
    ModelRegistry, Progress, Prompt, Quantization, SamplingConfig, WorkerConfig,
};

#[derive(Parser)]
#[command(
    name = "shopchat",
    version,
    about = "A self-hosted customer-service chatbot for online shops"
)]
struct Cli {
    /// Where models are installed.
    #[arg(long, global = true, env = "SHOPCHAT_MODELS_DIR", default_value = "models")]
    models_dir: PathBuf,
    /// The sentence embedders for hybrid search: one for every language
    /// (`minilm-l6`, which reads English only; `multilingual-e5-small`,
    /// English and Chinese) or one per language, as in the default
    /// `en=minilm-l6,zh=multilingual-e5-small`. For `serve` it overrides
    /// `[models] embedding` in shopchat.toml.
    #[arg(long, global = true, env = "SHOPCHAT_EMBEDDING_MODEL")]
    embedding_model: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the chat server on the shop (default: the demo shop in faq/).
    Serve(serve::ServeArgs),
    /// One answer through the full pipeline, with its passages, gate, check and timings.
    Ask(harness::AskArgs),
    /// Chat with the shop's assistant in the terminal.
    Chat(harness::ChatArgs),
    /// Re-run a stored conversation and compare old and new answers.
    Replay(harness::ReplayArgs),
    /// Staff accounts for the console and the staff API.
    #[command(subcommand)]
    Staff(serve::StaffCommand),
    /// List or install models.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Stream a model's answer to a prompt.
    Generate(GenerateArgs),
    /// Tokenize `{"text": ...}` JSON lines; prints `{"text": ..., "ids": [...]}`.
    Tokenize(TokenizeArgs),
    /// Embed `{"text": ...}` JSON lines with the sentence embedder (as a
    /// query, or with `--passages` as passages); prints `{"text": ..., "vector": [...]}`.
    Embed(EmbedArgs),
    /// Measure load time, prefill and decode speed, time to first token.
    Bench(BenchArgs),
    /// Index build time and search latency on a generated corpus.
    BenchSearch(bench_search::BenchSearchArgs),
    /// The passage cache's memory and reuse over a generated corpus.
    BenchPassageCache(bench_passages::BenchPassageCacheArgs),
    /// Build the search index from the knowledge base (`faq/`).
    Index(knowledge::IndexArgs),
    /// Search the knowledge base as the chat does (never returns orders).
    Search(knowledge::SearchArgs),
    /// Measure answer quality: retrieval, the relevance gate, intent routing.
    #[command(subcommand)]
    Eval(eval::EvalCommand),
    /// Many shoppers at once (or at a steady rate) against a server on this
    /// machine: answered/busy/error counts, first-token percentiles, RSS.
    Loadtest(loadtest::LoadtestArgs),
    /// Scripted attempts to reach other customers' orders through a server
    /// on this machine: leaks counted, timing per kind of attempt.
    Attack(attack::AttackArgs),
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Show the known models and whether they are installed.
    List,
    /// Install a model (default: smollm2-135m), verifying every file.
    Fetch {
        name: Option<String>,
        /// A directory that already holds the model's files.
        #[arg(long)]
        from: Option<PathBuf>,
        /// Also write a re-quantized copy (`q8_0`), much faster on CPU.
        #[arg(long)]
        quantize: Option<String>,
        /// No progress bars.
        #[arg(long)]
        quiet: bool,
    },
}

#[derive(Args)]
struct ModelArg {
    /// A model name (`smollm2-135m`), a variant (`smollm2-135m:q8_0`) or a .gguf path.
    #[arg(long, default_value = "smollm2-135m")]
    model: String,
    /// Longest conversation in tokens.
    #[arg(long, default_value_t = 4096)]
    max_context: usize,
}

#[derive(Args)]
struct GenerateArgs {
    #[command(flatten)]
    model: ModelArg,
    #[arg(long, default_value_t = 256)]
    max_tokens: usize,
    /// 0 is greedy decoding.
    #[arg(long, default_value_t = 0.0)]
    temperature: f64,
    #[arg(long)]
    top_k: Option<usize>,
    #[arg(long)]
    top_p: Option<f64>,
    #[arg(long, default_value_t = 1.0)]
    repetition_penalty: f32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// A system message before the prompt.
    #[arg(long)]
    system: Option<String>,
    /// Print timings to stderr at the end.
    #[arg(long)]
    stats: bool,
    /// Print the prompt as the model sees it (to stderr) before the answer.
    #[arg(long)]
    show_prompt: bool,
    prompt: String,
}

#[derive(Args)]
struct TokenizeArgs {
    #[command(flatten)]
    model: ModelArg,
    /// JSON lines with a `text` field; `-` for standard input.
    #[arg(long)]
    jsonl: PathBuf,
}

#[derive(Args)]
struct EmbedArgs {
    /// JSON lines with a `text` field; `-` for standard input.
    #[arg(long)]
    jsonl: PathBuf,
    /// Embed the texts as passages (e5 prefixes `passage: `), not queries.
    #[arg(long)]
    passages: bool,
}

#[derive(Args)]
struct BenchArgs {
    #[command(flatten)]
    model: ModelArg,
    /// One JSON object instead of a table.
    #[arg(long)]
    json: bool,
    #[arg(long, default_value_t = 600)]
    prompt_tokens: usize,
    #[arg(long, default_value_t = 128)]
    decode_tokens: usize,
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Share of each moved passage recomputed in the last first-token case,
    /// in percent.
    #[arg(long, default_value_t = shopchat_inference::DEFAULT_RECOMPUTE_PERCENT,
          value_parser = clap::value_parser!(u8).range(0..=100))]
    recompute_percent: u8,
}

fn main() {
    let cli = Cli::parse();
    // The server reports what it does; the other commands only warnings.
    let default_level = if matches!(cli.command, Command::Serve(_)) { "info" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SHOPCHAT_LOG")
                .unwrap_or_else(|_| default_level.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(error) = run(cli) {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let registry = ModelRegistry::open(&cli.models_dir)?;
    if let Some(spec) = cli.embedding_model {
        shopchat_core::EmbedderChoice::parse(&spec)
            .map_err(|reason| anyhow::anyhow!("--embedding-model: {reason}"))?;
        knowledge::choose_embedding_model(spec);
    }
    match cli.command {
        Command::Models(ModelsCommand::List) => list_models(&registry),
        Command::Models(ModelsCommand::Fetch { name, from, quantize, quiet }) => {
            let name = name.unwrap_or_else(|| "smollm2-135m".into());
            let options = FetchOptions {
                from,
                quantize: quantize.as_deref().map(Quantization::parse).transpose()?,
                progress: if quiet { Progress::Hidden } else { Progress::Bar },
            };
            let report = registry.fetch(&name, &options)?;
            for (path, how) in report.files {
                println!("{}: {how}", path.display());
            }
            Ok(())
        }
        Command::Serve(args) => serve::serve(cli.models_dir, args),
        Command::Staff(command) => serve::staff(command),
        Command::Ask(args) => harness::ask(&cli.models_dir, args),
        Command::Chat(args) => harness::chat(&cli.models_dir, args),
        Command::Replay(args) => harness::replay(&cli.models_dir, args),
        Command::Generate(args) => generate(&registry, args),
        Command::Tokenize(args) => tokenize(&registry, args),
        Command::Embed(args) => embed(&registry, args),
        Command::Bench(args) => bench_model(&registry, args),
        Command::BenchSearch(args) => bench_search::run(&registry, args),
        Command::BenchPassageCache(args) => bench_passages::run(&registry, args),
        Command::Index(args) => knowledge::index(&registry, args),
        Command::Search(args) => knowledge::search(&registry, args),
        Command::Eval(command) => eval::run(&registry, command),
        Command::Loadtest(args) => loadtest::run(args),
        Command::Attack(args) => attack::run(args),
    }
}

fn list_models(registry: &ModelRegistry) -> Result<()> {
    println!("{:<20} {:<10} {:<10} DESCRIPTION", "NAME", "KIND", "STATUS");
    for entry in registry.models() {
        let mut status =
            if registry.is_installed(entry) { "installed" } else { "missing" }.to_owned();
        for variant in registry.installed_variants(entry) {
            status.push_str(&format!(" +{variant}"));
        }
        let kind = format!("{:?}", entry.kind).to_lowercase();
        println!("{:<20} {:<10} {:<10} {}", entry.name, kind, status, entry.description);
    }
    println!("\nmodels directory: {}", registry.dir().display());
    Ok(())
}

fn load(registry: &ModelRegistry, model: &ModelArg) -> Result<LanguageModel> {
    let path = registry.resolve_chat_model(&model.model)?;
    LanguageModel::load(
        &path,
        &LoadConfig { max_context: Some(model.max_context), ..LoadConfig::default() },
    )
    .with_context(|| format!("loading {}", path.display()))
}

fn generate(registry: &ModelRegistry, args: GenerateArgs) -> Result<()> {
    let model = Arc::new(load(registry, &args.model)?);
    let worker = spawn_worker(model, WorkerConfig::standard())?;
    let mut messages = Vec::new();
    if let Some(system) = args.system {
        messages.push(ChatMessage::system(system));
    }
    messages.push(ChatMessage::user(args.prompt));
    if args.show_prompt {
        eprintln!("{}", worker.model().render_chat(&messages)?);
    }
    let request = GenerationRequest {
        prompt: Prompt::Chat(messages),
        sampling: SamplingConfig {
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: args.top_p,
            repetition_penalty: args.repetition_penalty,
            repetition_window: 64,
            seed: args.seed,
            max_tokens: args.max_tokens,
        },
        conversation: None,
        passages: Vec::new(),
    };
    let mut generation = worker.submit(request)?;
    let mut stdout = std::io::stdout().lock();
    while let Some(event) = generation.events.blocking_recv() {
        match event {
            GenerationEvent::Started { .. } => {}
            GenerationEvent::Text(text) => {
                stdout.write_all(text.as_bytes())?;
                stdout.flush()?;
            }
            GenerationEvent::Finished(stats) => {
                writeln!(stdout)?;
                if args.stats {
                    eprintln!("{}", serde_json::to_string(&stats)?);
                }
                return Ok(());
            }
            GenerationEvent::Failed { message, .. } => bail!(message),
        }
    }
    bail!("the inference worker stopped without finishing")
}

fn tokenize(registry: &ModelRegistry, args: TokenizeArgs) -> Result<()> {
    let path = registry.resolve_chat_model(&args.model.model)?;
    let tokenizer = Tokenizer::load(&path)?;
    let mut stdout = std::io::stdout().lock();
    for text in read_texts(&args.jsonl)? {
        // Like llama.cpp's llama-tokenize: control-token text is parsed as
        // control tokens, and no BOS is added.
        let ids = tokenizer.encode_trusted(&text)?;
        writeln!(stdout, "{}", serde_json::json!({"text": text, "ids": ids}))?;
    }
    Ok(())
}

fn embed(registry: &ModelRegistry, args: EmbedArgs) -> Result<()> {
    let Some(embedder) = knowledge::load_embedder(registry)? else {
        let spec = knowledge::embedding_model();
        let names = shopchat_core::EmbedderChoice::parse(spec).map(|c| c.names().join(", "));
        let names = names.unwrap_or_else(|_| spec.to_owned());
        bail!(
            "no sentence embedder of `{spec}` is installed: `shopchat models fetch NAME` for {names}"
        );
    };
    let texts = read_texts(&args.jsonl)?;
    let mut stdout = std::io::stdout().lock();
    for batch in texts.chunks(32) {
        // Each language may have its own embedder: a batch is embedded one
        // language at a time and printed in its lines' order.
        let mut vectors: Vec<Vec<f32>> = vec![Vec::new(); batch.len()];
        for lang in Language::ALL {
            let lines: Vec<usize> =
                (0..batch.len()).filter(|&i| Language::detect(&batch[i]) == lang).collect();
            if lines.is_empty() {
                continue;
            }
            if !embedder.supports(lang) {
                bail!(
                    "the sentence embedder {} does not read {}: {:?}",
                    knowledge::embedding_model(),
                    lang.code(),
                    batch[lines[0]]
                );
            }
            let refs: Vec<&str> = lines.iter().map(|&i| batch[i].as_str()).collect();
            let embedded = if args.passages {
                embedder.embed_passages(lang, &refs)?
            } else {
                embedder.embed_queries(lang, &refs)?
            };
            for (&i, vector) in lines.iter().zip(embedded) {
                vectors[i] = vector;
            }
        }
        for (text, vector) in batch.iter().zip(vectors) {
            writeln!(stdout, "{}", serde_json::json!({"text": text, "vector": vector}))?;
        }
    }
    Ok(())
}

/// The `text` of each JSON line in `path` (`-` for standard input), blank
/// lines skipped.
fn read_texts(path: &std::path::Path) -> Result<Vec<String>> {
    let input: Box<dyn BufRead> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?,
        ))
    };
    let mut texts = Vec::new();
    for (number, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("line {}: not JSON", number + 1))?;
        let Some(text) = value.get("text").and_then(|t| t.as_str()) else {
            bail!("line {}: no \"text\" string", number + 1);
        };
        texts.push(text.to_owned());
    }
    Ok(texts)
}

fn bench_model(registry: &ModelRegistry, args: BenchArgs) -> Result<()> {
    let model = load(registry, &args.model)?;
    let config = BenchConfig {
        prompt_tokens: args.prompt_tokens,
        decode_tokens: args.decode_tokens,
        runs: args.runs.max(1),
        recompute_percent: args.recompute_percent,
    };
    let report = bench::run(&model, &args.model.model, &config)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("model            {}", report.model);
        println!("threads          {}", report.threads);
        println!("kernels          {}", report.kernels);
        println!("load             {:.2} s", report.load_s);
        println!("prompt           {} tokens", report.prompt_tokens);
        println!("prefill          {:.1} tokens/s", report.prefill_tps);
        println!(
            "decode           {:.1} tokens/s ({} tokens)",
            report.decode_tps, report.decode_tokens
        );
        println!("ttft cold        {:.0} ms", report.ttft_cold_ms);
        println!("ttft warm        {:.0} ms (system prompt cached)", report.ttft_warm_ms);
        println!(
            "ttft passages    {:.0} ms kept in the same order (exact), {:.0} ms in another (moved)",
            report.ttft_passages_exact_ms, report.ttft_passages_moved_ms
        );
        println!(
            "                 {:.0} ms moved with {} % of each passage recomputed",
            report.ttft_passages_moved_recomputed_ms, report.recompute_percent
        );
        println!("peak rss         {:.0} MB", report.peak_rss_mb);
    }
    Ok(())
}
