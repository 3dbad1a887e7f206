//! `shopchat ask`, `chat` and `replay`: the answer pipeline in a terminal.
//!
//! Each turn goes through [`run_turn`], which drives the same
//! [`Conversation`] (language, verification, history, "don't know" answers
//! in a row, handoff), [`Assistant::respond`] and
//! [`shopchat_pipeline::AnswerStream`] as the chat server.

use std::collections::VecDeque;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use shopchat_core::protocol::AnswerOutcome;
use shopchat_core::ChatMessage;
use shopchat_inference::PassageReuse;
use shopchat_pipeline::{
    Action, Assistant, AssistantConfig, Check, Checked, Conversation, Event, ModelChoice, Reply,
    Response, Resumed, StreamEvent, Turn, TurnRequest,
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
    /// Memory for retrieved passages' attention caches reused across
    /// answers, in MiB, as the server's `[models] passage_cache_mb`; 0
    /// computes every passage for every answer.
    #[arg(long, default_value_t = shopchat_inference::DEFAULT_PASSAGE_CACHE_MB)]
    pub passage_cache_mb: usize,
    /// When a kept passage stands in for computing it: `exact` (after the
    /// same tokens only; answers unchanged) or `moved` (in any order; more
    /// reuse, answers change, see docs/performance.md).
    #[arg(long, default_value = "exact")]
    pub passage_reuse: PassageReuse,
    /// With `moved`, the share of each moved passage recomputed after the
    /// passages before it, in percent, as `[models] passage_recompute_percent`.
    #[arg(long, default_value_t = shopchat_inference::DEFAULT_RECOMPUTE_PERCENT,
          value_parser = clap::value_parser!(u8).range(0..=100))]
    pub passage_recompute_percent: u8,
}

impl PipelineArgs {
    pub fn config(&self, models_dir: &std::path::Path) -> AssistantConfig {
        let mut config = AssistantConfig::standard();
        config.models_dir = models_dir.to_owned();
        config.faq_dir = self.shop.clone();
        config.data_dir = self.data_dir.clone();
        config.models = ModelChoice::main_and_extra(&self.model, &self.extra_model);
        config.prompt_file = self.prompt.clone();
        config.worker.passage_cache_bytes = self.passage_cache_mb.saturating_mul(1024 * 1024);
        config.worker.passage_reuse = self.passage_reuse;
        config.worker.passage_recompute_percent = self.passage_recompute_percent;
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

/// A conversation as the server holds one per connection, verified as
/// `customer` from the start when given.
pub fn conversation(key: impl Into<String>, customer: Option<VerifiedCustomer>) -> Conversation {
    Conversation::resume(key, Resumed { customer, ..Resumed::default() })
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

impl TurnResult {
    fn of(reply: Reply) -> Self {
        TurnResult {
            reply,
            streamed: String::new(),
            ttft_ms: None,
            total_ms: 0.0,
            tokens: 0,
            prompt: None,
            verified_as: None,
        }
    }
}

/// Runs a verification the conversation asked for (no rate limit here).
fn check(assistant: &Assistant, check: &Check) -> Checked {
    let customer = match check {
        Check::Order { order_number, email } => assistant.verify_order(order_number, email),
        Check::Identity { customer_id, signature } => {
            assistant.verify_identity(customer_id, signature)
        }
    };
    customer.map_or(Checked::Failed, Checked::Verified)
}

/// Answers one shopper message: the [`Conversation`] decides, as it does in
/// the server; this carries its actions out. `on_delta` sees the text as
/// it streams.
pub fn run_turn(
    runtime: &tokio::runtime::Runtime,
    assistant: &Assistant,
    conversation: &mut Conversation,
    text: &str,
    on_delta: &mut dyn FnMut(&str),
) -> Result<TurnResult> {
    let started = Instant::now();
    let rules = assistant.rules();
    let mut actions: VecDeque<Action> = conversation.handle(&rules, Event::Message(text)).into();
    let mut verified_as = None;
    let mut result = None;
    while let Some(action) = actions.pop_front() {
        match action {
            Action::Verify(asked) => {
                let checked = check(assistant, &asked);
                actions.extend(conversation.handle(&rules, Event::Checked(checked)));
            }
            Action::Verified(customer) => verified_as = Some(assistant.customer_name(&customer)),
            Action::Respond(request) => {
                let turn = answer(runtime, assistant, &request, started, on_delta)?;
                actions.extend(conversation.handle(&rules, Event::Answered(&turn.reply)));
                result = Some(turn);
            }
            Action::Reply(reply) => {
                actions.extend(conversation.handle(&rules, Event::Answered(&reply)));
                result = Some(TurnResult::of(reply));
            }
            // No staff here: the handoff is the reply's outcome; and a
            // message asks for none of the rest.
            Action::Handoff { .. }
            | Action::NotVerified { .. }
            | Action::StartReturn { .. }
            | Action::StopAnswer => {}
        }
    }
    // Handed to a person earlier: the assistant keeps out, as in the server.
    let mut result = result.unwrap_or_else(|| {
        TurnResult::of(Reply::fixed(String::new(), AnswerOutcome::Handoff, conversation.lang()))
    });
    result.total_ms = started.elapsed().as_secs_f64() * 1000.0;
    result.verified_as = verified_as;
    Ok(result)
}

/// The answer to one turn, streamed to its end when a model writes it.
fn answer(
    runtime: &tokio::runtime::Runtime,
    assistant: &Assistant,
    request: &TurnRequest,
    started: Instant,
    on_delta: &mut dyn FnMut(&str),
) -> Result<TurnResult> {
    let mut stream = match assistant.respond(&request.turn())? {
        Response::Reply(reply) => return Ok(TurnResult::of(reply)),
        Response::Stream(stream) => stream,
    };
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
    Ok(TurnResult {
        reply: finished.reply,
        streamed: finished.generated,
        ttft_ms: first_token.map(|t| t.duration_since(started).as_secs_f64() * 1000.0),
        total_ms: 0.0,
        tokens: finished.stats.map_or(0, |s| s.generated_tokens),
        prompt: Some(prompt),
        verified_as: None,
    })
}

pub fn outcome_name(outcome: AnswerOutcome) -> &'static str {
    match outcome {
        AnswerOutcome::Answered => "answered",
        AnswerOutcome::Refused => "refused",
        AnswerOutcome::Replaced => "replaced",
        AnswerOutcome::Handoff => "handoff",
        AnswerOutcome::Error => "error",
        AnswerOutcome::Stopped => "stopped",
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
    let mut customer = None;
    if let (Some(order), Some(email)) = (&args.order, &args.email) {
        let verified = assistant
            .verify_order(order, email)
            .context("that order number and email address do not verify")?;
        println!("verified as {}", assistant.customer_name(&verified));
        customer = Some(verified);
    }

    let turn = Turn {
        text: &args.question,
        lang: None,
        history: &[],
        customer: customer.as_ref(),
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
    let mut session = conversation("ask", customer);
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
    let mut session = conversation(format!("chat-{}", std::process::id()), None);
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
                session =
                    conversation(format!("chat-{}-{}", std::process::id(), rand_suffix()), None);
                last = None;
                println!("(new conversation)");
            }
            ["/verify", order, email] => {
                let rules = assistant.rules();
                let mut actions: VecDeque<Action> = session
                    .handle(&rules, Event::VerifyOrder { order_number: order, email })
                    .into();
                while let Some(action) = actions.pop_front() {
                    match action {
                        Action::Verify(asked) => {
                            let checked = check(&assistant, &asked);
                            actions.extend(session.handle(&rules, Event::Checked(checked)));
                        }
                        Action::Verified(customer) => {
                            println!("(verified as {})", assistant.customer_name(&customer));
                        }
                        _ => println!("(we couldn't verify that order number and email address)"),
                    }
                }
            }
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
                if session.handed_over() {
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
    // The server verified this customer when the conversation was live.
    let customer =
        transcript.conversation.customer_id.as_deref().map(VerifiedCustomer::from_signed_identity);
    let mut session = conversation(format!("replay-{}", args.conversation_id), customer);

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
