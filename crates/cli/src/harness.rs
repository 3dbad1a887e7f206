//! `shopchat ask`, `chat` and `replay`: the answer pipeline in a terminal.
//!
//! Each turn goes through [`run_turn`], which drives the same
//! [`Assistant::respond`] and [`shopchat_pipeline::AnswerStream`] as the
//! chat server, with the conversation bookkeeping the server keeps (history,
//! verification from a message holding an order number and an e-mail
//! address, "don't know" answers in a row).

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use shopchat_core::protocol::AnswerOutcome;
use shopchat_core::{ChatMessage, Language};
use shopchat_pipeline::{
    Assistant, AssistantConfig, ModelChoice, Reply, Response, StreamEvent, Turn,
};
use shopchat_retrieval::VerifiedCustomer;
use shopchat_store::{ConversationId, Role, SqliteStore, Store};

/// Which shop, models and prompt answer.
#[derive(Args, Clone)]
pub struct PipelineArgs {
    /// The chat model (a manifest name, name:q8_0, or a .gguf path).
    #[arg(long, default_value = "smollm2-135m")]
    pub model: String,
    /// A model for languages the chat model cannot write; `none` to answer
    /// those from passage text.
    #[arg(long, default_value = "qwen2.5-coder-0.5b")]
    pub extra_model: String,
    /// A prompt template file (default: prompts/default.toml, built in).
    #[arg(long)]
    pub prompt: Option<PathBuf>,
    /// The shop's files.
    #[arg(long, default_value = "faq")]
    pub shop: PathBuf,
    /// Where the index (and the server's database) live.
    #[arg(long, env = "SHOPCHAT_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
}

impl PipelineArgs {
    pub fn config(&self, models_dir: &std::path::Path) -> AssistantConfig {
        let mut config = AssistantConfig::standard();
        config.models_dir = models_dir.to_owned();
        config.faq_dir = self.shop.clone();
        config.data_dir = self.data_dir.clone();
        config.models = ModelChoice::main_and_extra(&self.model, &self.extra_model);
        config.prompt_file = self.prompt.clone();
        if let Some(name) = crate::knowledge::chosen_embedding_model() {
            config.embedding_model = Some(name.to_owned());
        }
        config
    }

    pub fn load(&self, models_dir: &std::path::Path) -> Result<Assistant> {
        let (assistant, _) = Assistant::load(&self.config(models_dir))
            .context("loading the shop, the index and the models")?;
        Ok(assistant)
    }
}

/// One conversation's state, as the server keeps it per connection.
pub struct Session {
    pub key: String,
    pub customer: Option<VerifiedCustomer>,
    pub history: Vec<ChatMessage>,
    pub lang: Option<Language>,
    pub refusals_in_a_row: u32,
    pub handed_over: bool,
}

impl Session {
    pub fn new(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            customer: None,
            history: Vec::new(),
            lang: None,
            refusals_in_a_row: 0,
            handed_over: false,
        }
    }
}

/// What one turn produced.
pub struct TurnResult {
    pub reply: Reply,
    /// The text as it streamed (empty for answers no model wrote).
    pub streamed: String,
    pub ttft_ms: Option<f64>,
    pub total_ms: f64,
    pub tokens: usize,
    /// The prompt as sent, for answers a model wrote.
    pub prompt: Option<Vec<ChatMessage>>,
    /// Set when the message verified the shopper.
    pub verified_as: Option<String>,
}

/// Answers one shopper message. `on_delta` sees the text as it streams.
pub fn run_turn(
    runtime: &tokio::runtime::Runtime,
    assistant: &Assistant,
    session: &mut Session,
    text: &str,
    on_delta: &mut dyn FnMut(&str),
) -> Result<TurnResult> {
    let started = Instant::now();
    let understanding = assistant.understand(text);
    let mut verified_as = None;
    if session.customer.is_none() {
        if let (Some(number), Some(email)) = (&understanding.order_number, &understanding.email) {
            if let Some(customer) = assistant.verify_order(number, email) {
                verified_as = Some(assistant.customer_name(&customer));
                session.customer = Some(customer);
            }
        }
    }
    let turn = Turn {
        text,
        lang: session.lang,
        history: &session.history,
        customer: session.customer.as_ref(),
        conversation: Some(&session.key),
        refusals_in_a_row: session.refusals_in_a_row,
    };
    if text.chars().any(char::is_alphabetic) {
        session.lang = Some(assistant.answer_language(&turn));
    }
    let response = assistant.respond(&turn)?;
    let mut result = match response {
        Response::Reply(reply) => TurnResult {
            reply,
            streamed: String::new(),
            ttft_ms: None,
            total_ms: 0.0,
            tokens: 0,
            prompt: None,
            verified_as: None,
        },
        Response::Stream(mut stream) => {
            let prompt = stream.prompt_messages().to_vec();
            let mut first_token = None;
            let finished = runtime.block_on(async {
                while let Some(event) = stream.next().await {
                    match event {
                        StreamEvent::Started { .. } => {}
                        StreamEvent::Delta(delta) => {
                            first_token.get_or_insert_with(Instant::now);
                            on_delta(&delta);
                        }
                        StreamEvent::Done(finished) => return Some(*finished),
                    }
                }
                None
            });
            let Some(finished) = finished else { bail!("the answer stream ended without an end") };
            TurnResult {
                reply: finished.reply,
                streamed: finished.generated,
                ttft_ms: first_token.map(|t| t.duration_since(started).as_secs_f64() * 1000.0),
                total_ms: 0.0,
                tokens: finished.stats.map_or(0, |s| s.generated_tokens),
                prompt: Some(prompt),
                verified_as: None,
            }
        }
    };
    result.total_ms = started.elapsed().as_secs_f64() * 1000.0;
    result.verified_as = verified_as;

    session.history.push(ChatMessage::user(text));
    if !result.reply.text.is_empty() {
        session.history.push(ChatMessage::assistant(result.reply.text.clone()));
    }
    match result.reply.outcome {
        AnswerOutcome::Refused => session.refusals_in_a_row += 1,
        AnswerOutcome::Answered | AnswerOutcome::Replaced => session.refusals_in_a_row = 0,
        AnswerOutcome::Handoff => {
            session.refusals_in_a_row = 0;
            session.handed_over = true;
        }
        AnswerOutcome::Error => {}
    }
    Ok(result)
}

pub fn outcome_name(outcome: AnswerOutcome) -> &'static str {
    match outcome {
        AnswerOutcome::Answered => "answered",
        AnswerOutcome::Refused => "refused",
        AnswerOutcome::Replaced => "replaced",
        AnswerOutcome::Handoff => "handoff",
        AnswerOutcome::Error => "error",
    }
}

#[derive(Args)]
pub struct AskArgs {
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// Print the prompt as the model sees it.
    #[arg(long)]
    show_prompt: bool,
    /// Verify as the owner of this order first (with --email).
    #[arg(long, requires = "email")]
    order: Option<String>,
    #[arg(long, requires = "order")]
    email: Option<String>,
    question: String,
}

/// One answer through the full pipeline, with everything it was made from.
pub fn ask(models_dir: &std::path::Path, args: AskArgs) -> Result<()> {
    let assistant = args.pipeline.load(models_dir)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let mut session = Session::new("ask");
    if let (Some(order), Some(email)) = (&args.order, &args.email) {
        let customer = assistant
            .verify_order(order, email)
            .context("that order number and email address do not verify")?;
        println!("verified as {}", assistant.customer_name(&customer));
        session.customer = Some(customer);
    }

    let turn = Turn {
        text: &args.question,
        lang: None,
        history: &[],
        customer: session.customer.as_ref(),
        conversation: None,
        refusals_in_a_row: 0,
    };
    let understanding = assistant.understand(&args.question);
    let lang = assistant.answer_language(&turn);
    println!("intent: {:?}, language: {}", understanding.intent, lang.code());
    if understanding.intent == shopchat_core::intent::Intent::Question {
        let (hits, gate) = assistant.retrieve(&args.question, lang)?;
        println!("passages:");
        for hit in &hits {
            let score = |r: Option<shopchat_retrieval::Ranked>| {
                r.map_or("-".to_owned(), |r| format!("{:.3} (#{})", r.score, r.rank))
            };
            println!(
                "  {}. {}  fused {:.4}  bm25 {}  cosine {}  coverage {:.2}",
                hit.rank,
                hit.passage.id,
                hit.fused,
                score(hit.bm25),
                score(hit.cosine),
                hit.coverage
            );
        }
        println!(
            "gate: {} (score {:.2})",
            if gate.covered { "covered" } else { "not covered: no model is called" },
            gate.score
        );
    }

    let mut stdout = std::io::stdout();
    let mut printed_header = false;
    let result = run_turn(&runtime, &assistant, &mut session, &args.question, &mut |delta| {
        if !printed_header {
            println!("answer (streaming):");
            printed_header = true;
        }
        print!("{delta}");
        let _ = stdout.flush();
    })?;
    if printed_header {
        println!();
    }
    if args.show_prompt {
        if let Some(prompt) = &result.prompt {
            let model = &assistant.models()[0];
            let rendered = model.worker.model().render_chat(prompt)?;
            println!("prompt as sent ({}):\n{rendered}", model.name);
        }
    }
    print_reply(&result);
    Ok(())
}

fn print_reply(result: &TurnResult) {
    let reply = &result.reply;
    if result.streamed.trim() != reply.text.trim() || result.streamed.is_empty() {
        println!("answer:\n{}", reply.text);
    }
    println!("outcome: {}", outcome_name(reply.outcome));
    for (n, source) in reply.sources.iter().enumerate() {
        println!("  [{}] {} — {}", n + 1, source.id, source.title);
    }
    if let Some(check) = &reply.check {
        match check.reason() {
            Some(reason) => println!("check: failed: {reason}"),
            None => println!("check: passed"),
        }
    }
    let ttft = result.ttft_ms.map_or("-".to_owned(), |ms| format!("{ms:.0} ms"));
    println!(
        "timings: first token {ttft}, total {:.0} ms, {} tokens; model {}, prompt {}",
        result.total_ms,
        result.tokens,
        reply.model.as_deref().unwrap_or("none"),
        reply.prompt_version.as_deref().unwrap_or("none")
    );
}

#[derive(Args)]
pub struct ChatArgs {
    #[command(flatten)]
    pipeline: PipelineArgs,
}

/// An interactive session: the server's conversation, in a terminal.
pub fn chat(models_dir: &std::path::Path, args: ChatArgs) -> Result<()> {
    let assistant = args.pipeline.load(models_dir)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let mut session = Session::new(format!("chat-{}", std::process::id()));
    let mut last: Option<TurnResult> = None;
    println!(
        "Chatting with {} ({}). Commands: /reset, /verify ORDER EMAIL, /sources, /quit",
        assistant.shop_name(),
        assistant.models().iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ")
    );
    let stdin = std::io::stdin();
    loop {
        print!("> ");
        std::io::stdout().flush()?;
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim();
        match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            [] => continue,
            ["/quit" | "/exit"] => break,
            ["/reset"] => {
                session = Session::new(format!("chat-{}-{}", std::process::id(), rand_suffix()));
                last = None;
                println!("(new conversation)");
            }
            ["/verify", order, email] => match assistant.verify_order(order, email) {
                Some(customer) => {
                    println!("(verified as {})", assistant.customer_name(&customer));
                    session.customer = Some(customer);
                }
                None => println!("(we couldn't verify that order number and email address)"),
            },
            ["/verify", ..] => println!("usage: /verify ORDER EMAIL"),
            ["/sources"] => match &last {
                Some(result) if !result.reply.sources.is_empty() => {
                    for (n, source) in result.reply.sources.iter().enumerate() {
                        let url = source.url.as_deref().unwrap_or("");
                        println!("  [{}] {} — {} {url}", n + 1, source.id, source.title);
                    }
                }
                _ => println!("(the last answer has no sources)"),
            },
            [command, ..] if command.starts_with('/') => println!("unknown command {command}"),
            _ => {
                if session.handed_over {
                    println!("(this conversation was handed to a person; /reset to start over)");
                    continue;
                }
                let mut streamed = false;
                let result = run_turn(&runtime, &assistant, &mut session, line, &mut |delta| {
                    streamed = true;
                    print!("{delta}");
                    let _ = std::io::stdout().flush();
                })?;
                if let Some(name) = &result.verified_as {
                    println!("(verified as {name})");
                }
                if !streamed || result.streamed.trim() != result.reply.text.trim() {
                    if streamed {
                        println!("\n(replaced by:)");
                    }
                    print!("{}", result.reply.text);
                }
                println!("\n({}, {:.0} ms)", outcome_name(result.reply.outcome), result.total_ms);
                last = Some(result);
            }
        }
    }
    Ok(())
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

#[derive(Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// The conversation to replay (as listed by the staff API).
    conversation_id: String,
}

/// Re-runs a stored conversation's shopper turns and shows the stored and
/// the new answer of each side by side.
pub fn replay(models_dir: &std::path::Path, args: ReplayArgs) -> Result<()> {
    let database = args.pipeline.data_dir.join("shopchat.db");
    if !database.is_file() {
        bail!("no database at {}; run `shopchat serve` first", database.display());
    }
    let store = SqliteStore::open(&database)?;
    let transcript = store
        .transcript(&ConversationId(args.conversation_id.clone()))?
        .with_context(|| format!("no conversation {}", args.conversation_id))?;
    let assistant = args.pipeline.load(models_dir)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let mut session = Session::new(format!("replay-{}", args.conversation_id));
    // The server verified this customer when the conversation was live.
    session.customer =
        transcript.conversation.customer_id.as_deref().map(VerifiedCustomer::from_signed_identity);

    let messages = &transcript.messages;
    let mut changed = 0;
    let mut turns = 0;
    for (i, message) in messages.iter().enumerate() {
        if message.role != Role::Shopper {
            continue;
        }
        turns += 1;
        let old = messages[i + 1..]
            .iter()
            .take_while(|m| m.role != Role::Shopper)
            .find(|m| m.role == Role::Assistant);
        let new = run_turn(&runtime, &assistant, &mut session, &message.text, &mut |_| {})?;
        let old_outcome = old
            .and_then(|m| m.answer.as_ref())
            .map_or("-".to_owned(), |a| a.outcome.as_str().to_owned());
        let old_text = old.map_or("(no answer)".to_owned(), |m| m.text.clone());
        let same = old_text.trim() == new.reply.text.trim();
        if !same {
            changed += 1;
        }
        println!("── turn {turns}: {}", message.text);
        println!("   old [{old_outcome}]: {}", one_line(&old_text));
        println!(
            "   new [{}]: {}{}",
            outcome_name(new.reply.outcome),
            one_line(&new.reply.text),
            if same { "   (same)" } else { "" }
        );
    }
    println!("{turns} turns replayed, {changed} answers changed");
    Ok(())
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
