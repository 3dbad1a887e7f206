//! `shopchat eval run` and `eval from-transcript`: test conversations that
//! catch regressions in prompts and models.
//!
//! A suite is YAML: cases of shopper turns, each with assertions on its
//! answer (see docs/prompt-testing.md). Everything a suite can get wrong is
//! checked while it is read, inside deserialization, so that every error
//! (an unknown key, a bad regex, an unknown outcome) carries its line.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize};
use shopchat_core::protocol::AnswerOutcome;
use shopchat_core::Language;
use shopchat_pipeline::Assistant;
use shopchat_retrieval::VerifiedCustomer;
use shopchat_store::{ConversationId, Role, SqliteStore, Store};

use crate::harness::{conversation, outcome_name, run_turn, PipelineArgs, TurnResult};
use crate::suite_score::Tally;

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The shop folder the suite is written for, relative to the suite
    /// file; without it, the run's `--shop`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shop: Option<PathBuf>,
    /// Floors for the suite as a whole (see [`Floors`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require: Option<Floors>,
    pub cases: Vec<Case>,
}

/// What a suite as a whole must reach, besides every case passing. Shares
/// rather than single cases, so that one answer worded differently on
/// another CPU does not fail a run, while a prompt that makes the model
/// useless still does.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Floors {
    /// Of the knowledge questions (turns that expect a citation), the share
    /// resolved: answered or replaced, citing the expected passage, with a
    /// `contains` met.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<f64>,
    /// Of the turns marked `by_model`, the share the model's own answer
    /// passed the check for (outcome `answered` from a model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_model: Option<f64>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    /// Who the shopper is verified as before the first turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<Identity>,
    pub turns: Vec<TurnSpec>,
}

/// An order number with its e-mail address, or a customer id as a shop's
/// signed identity would give it.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TurnSpec {
    pub say: String,
    #[serde(default, skip_serializing_if = "Expect::is_empty")]
    pub expect: Expect,
}

/// Assertions on one answer. Text matches ignore case.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The answer contains at least one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<OneOrMany<String>>,
    /// The answer contains none of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_contains: Option<OneOrMany<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<Pattern>,
    /// A passage id among the answer's sources; with several, any of them
    /// (for a fact two passages state, such as an FAQ and its policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cites: Option<OneOrMany<String>>,
    /// One of these outcomes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<OneOrMany<Outcome>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<Lang>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ttft_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<usize>,
    /// Counts toward the suite's `require.by_model` share: the model's own
    /// answer is expected to stand here with a good prompt.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub by_model: bool,
}

impl Expect {
    fn is_empty(&self) -> bool {
        self.contains.is_none()
            && self.not_contains.is_none()
            && self.regex.is_none()
            && self.cites.is_none()
            && self.outcome.is_none()
            && self.language.is_none()
            && self.max_ttft_ms.is_none()
            && self.max_tokens.is_none()
            && !self.by_model
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn items(&self) -> &[T] {
        match self {
            OneOrMany::One(item) => std::slice::from_ref(item),
            OneOrMany::Many(items) => items,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Answered,
    Refused,
    Replaced,
    Handoff,
}

impl Outcome {
    fn matches(self, outcome: AnswerOutcome) -> bool {
        matches!(
            (self, outcome),
            (Outcome::Answered, AnswerOutcome::Answered)
                | (Outcome::Refused, AnswerOutcome::Refused)
                | (Outcome::Replaced, AnswerOutcome::Replaced)
                | (Outcome::Handoff, AnswerOutcome::Handoff)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum Lang {
    #[serde(rename = "en")]
    En,
    #[serde(rename = "zh")]
    Zh,
}

/// A regular expression, compiled while the suite is read.
#[derive(Debug, Clone)]
pub struct Pattern(Regex);

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        regex::RegexBuilder::new(&text)
            .case_insensitive(true)
            .build()
            .map(Pattern)
            .map_err(|e| serde::de::Error::custom(format!("invalid regex: {e}")))
    }
}

impl Serialize for Pattern {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.as_str())
    }
}

/// Reads and checks a suite file.
pub fn read_suite(path: &Path) -> Result<Suite> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_suite(path, &text)
}

/// Deepest `[`/`{` nesting a suite may have. Suites never nest flow
/// collections more than a level or two; the YAML scanner takes time
/// quadratic in the depth (20,000 levels took 4 s, 100,000 took 108 s), so
/// deeper text is refused before it is scanned. 128 is serde's own limit.
const MAX_NESTING: usize = 128;

/// Checks the text of the suite file at `path`.
pub fn parse_suite(path: &Path, text: &str) -> Result<Suite> {
    // Counted over the raw text, brackets in quotes and comments included:
    // no suite comes near the limit with those.
    let mut depth = 0usize;
    for byte in text.bytes() {
        match byte {
            b'[' | b'{' => depth += 1,
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth > MAX_NESTING {
            bail!("{}: nested deeper than {MAX_NESTING} levels", path.display());
        }
    }
    let suite: Suite =
        serde_norway::from_str(text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if suite.cases.is_empty() {
        bail!("{}: the suite has no cases", path.display());
    }
    for case in &suite.cases {
        if case.turns.is_empty() {
            bail!("{}: case `{}` has no turns", path.display(), case.name);
        }
    }
    Ok(suite)
}

/// Which assertions an answer failed; empty when it passed.
fn failed_assertions(expect: &Expect, result: &TurnResult) -> Vec<String> {
    let reply = &result.reply;
    let text = reply.text.to_lowercase();
    let mut failures = Vec::new();
    if let Some(any) = &expect.contains {
        if !any.items().iter().any(|needle| text.contains(&needle.to_lowercase())) {
            failures.push(format!("contains none of {:?}", any.items()));
        }
    }
    if let Some(none) = &expect.not_contains {
        for needle in none.items() {
            if text.contains(&needle.to_lowercase()) {
                failures.push(format!("contains {needle:?}"));
            }
        }
    }
    if let Some(Pattern(regex)) = &expect.regex {
        if !regex.is_match(&reply.text) {
            failures.push(format!("does not match /{}/", regex.as_str()));
        }
    }
    if let Some(ids) = &expect.cites {
        if !reply.sources.iter().any(|s| ids.items().contains(&s.id)) {
            let cited: Vec<&str> = reply.sources.iter().map(|s| s.id.as_str()).collect();
            failures.push(format!("does not cite {:?} (cites {cited:?})", ids.items()));
        }
    }
    if let Some(outcomes) = &expect.outcome {
        if !outcomes.items().iter().any(|o| o.matches(reply.outcome)) {
            failures.push(format!(
                "outcome is {}, expected {:?}",
                outcome_name(reply.outcome),
                outcomes.items()
            ));
        }
    }
    if let Some(lang) = expect.language {
        let expected = match lang {
            Lang::En => Language::En,
            Lang::Zh => Language::Zh,
        };
        if reply.lang != expected || Language::detect(&reply.text) != expected {
            failures.push(format!("is not in {}", expected.code()));
        }
    }
    if let Some(max) = expect.max_ttft_ms {
        if let Some(ttft) = result.ttft_ms.filter(|&ttft| ttft > max) {
            failures.push(format!("first token after {ttft:.0} ms, more than {max:.0}"));
        }
    }
    if let Some(max) = expect.max_tokens {
        if result.tokens > max {
            failures.push(format!("{} tokens, more than {max}", result.tokens));
        }
    }
    failures
}

#[derive(Args)]
pub struct RunArgs {
    /// Suite files (YAML).
    #[arg(required = true)]
    suites: Vec<PathBuf>,
    /// Prompt template files to compare; default: the built-in prompt.
    #[arg(long = "prompt")]
    prompts: Vec<PathBuf>,
    /// Chat models to compare; default: smollm2-135m.
    #[arg(long = "model")]
    models: Vec<String>,
    /// A model for languages the chat model cannot write; `none` to answer
    /// those from passage text.
    #[arg(long, default_value = "qwen2.5-coder-0.5b")]
    extra_model: String,
    #[arg(long, default_value = "faq")]
    shop: PathBuf,
    #[arg(long, env = "SHOPCHAT_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// Memory for retrieved passages' attention caches reused across
    /// answers, in MiB; 0 computes every passage for every answer.
    #[arg(long, default_value_t = 0)]
    passage_cache_mb: usize,
    /// `exact` or `moved`: see `shopchat ask --help`.
    #[arg(long, default_value = "exact")]
    passage_reuse: shopchat_inference::PassageReuse,
    /// Only the cases whose name contains this text.
    #[arg(long)]
    filter: Option<String>,
    /// One JSON object with the totals and every failure.
    #[arg(long)]
    json: bool,
    /// Also write the results as JUnit XML (for CI dashboards).
    #[arg(long)]
    junit: Option<PathBuf>,
}

/// One failed case.
#[derive(Debug, Serialize)]
struct Failure {
    suite: String,
    case: String,
    prompt: String,
    model: String,
    turn: usize,
    said: String,
    answer: String,
    failed: Vec<String>,
}

/// The results of one prompt and model on every suite.
#[derive(Debug, Serialize)]
struct RunSummary {
    prompt: String,
    model: String,
    total: usize,
    passed: usize,
    failed: usize,
    mean_ttft_ms: Option<f64>,
    mean_total_ms: f64,
    /// Per suite: answers by outcome, resolution and the model's own share.
    suites: BTreeMap<String, Tally>,
    #[serde(skip)]
    cases: Vec<(String, String, Option<String>)>,
    #[serde(skip)]
    ttfts: Vec<f64>,
    #[serde(skip)]
    totals: Vec<f64>,
}

/// The suites written for one shop, run on its own assistant and index.
struct ShopSuites {
    shop: PathBuf,
    data_dir: PathBuf,
    suites: Vec<(PathBuf, Suite)>,
}

pub fn run(models_dir: &Path, args: RunArgs) -> Result<()> {
    let mut suites: Vec<(PathBuf, Suite)> = args
        .suites
        .iter()
        .map(|path| Ok((path.clone(), read_suite(path)?)))
        .collect::<Result<_>>()?;
    if let Some(filter) = &args.filter {
        for (_, suite) in &mut suites {
            suite.cases.retain(|case| case.name.contains(filter.as_str()));
        }
        if suites.iter().all(|(_, suite)| suite.cases.is_empty()) {
            bail!("no case name contains `{filter}`");
        }
    }
    let prompts: Vec<Option<PathBuf>> = if args.prompts.is_empty() {
        vec![None]
    } else {
        args.prompts.iter().cloned().map(Some).collect()
    };
    let models =
        if args.models.is_empty() { vec!["smollm2-135m".to_owned()] } else { args.models.clone() };
    let runtime = tokio::runtime::Runtime::new()?;
    // Suites written for another shop run on their own assistant and index.
    let mut shops: Vec<ShopSuites> = Vec::new();
    for (path, suite) in suites {
        let (shop, data_dir) = match &suite.shop {
            None => (args.shop.clone(), args.data_dir.clone()),
            Some(shop) => {
                let shop = path.parent().unwrap_or(Path::new(".")).join(shop);
                let name =
                    shop.file_name().map_or("shop".into(), |n| n.to_string_lossy().into_owned());
                (shop, args.data_dir.join(format!("shop-{name}")))
            }
        };
        match shops.iter_mut().find(|s| s.shop == shop) {
            Some(known) => known.suites.push((path, suite)),
            None => shops.push(ShopSuites { shop, data_dir, suites: vec![(path, suite)] }),
        }
    }

    let mut runs = Vec::new();
    let mut failures = Vec::new();
    for model in &models {
        for prompt in &prompts {
            let mut summary: Option<RunSummary> = None;
            for ShopSuites { shop, data_dir, suites: group } in &shops {
                let pipeline = PipelineArgs {
                    model: model.clone(),
                    extra_model: args.extra_model.clone(),
                    prompt: prompt.clone(),
                    shop: shop.clone(),
                    data_dir: data_dir.clone(),
                    passage_cache_mb: args.passage_cache_mb,
                    passage_reuse: args.passage_reuse,
                };
                let assistant = pipeline.load(models_dir)?;
                let summary = summary.get_or_insert_with(|| RunSummary::new(&assistant));
                run_all(&runtime, &assistant, group, args.json, summary, &mut failures)?;
            }
            if let Some(mut summary) = summary {
                summary.finish();
                runs.push(summary);
            }
        }
    }
    // Shares below a suite's floors fail the run like a failed case.
    for run in &runs {
        for (path, suite) in shops.iter().flat_map(|shop| &shop.suites) {
            let name = suite_name(path, suite);
            let (Some(floors), Some(tally)) = (&suite.require, run.suites.get(&name)) else {
                continue;
            };
            let failed = tally.below(floors);
            if !failed.is_empty() {
                failures.push(Failure {
                    suite: name.clone(),
                    case: "(suite floors)".into(),
                    prompt: run.prompt.clone(),
                    model: run.model.clone(),
                    turn: 0,
                    said: String::new(),
                    answer: String::new(),
                    failed,
                });
            }
        }
    }
    let floor_failures = failures.iter().filter(|f| f.turn == 0).count();
    for failure in failures.iter().filter(|f| f.turn == 0) {
        if !args.json {
            println!("  ✗ {} — {}: {}", failure.suite, failure.prompt, failure.failed.join("; "));
        }
    }

    let total: usize = runs.iter().map(|r| r.total).sum::<usize>() + floor_failures;
    let failed: usize = runs.iter().map(|r| r.failed).sum::<usize>() + floor_failures;
    if let Some(path) = &args.junit {
        std::fs::write(path, junit(&runs, &failures))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if args.json {
        let report = serde_json::json!({
            "total": total,
            "passed": total - failed,
            "failed": failed,
            "failures": failures,
            "runs": runs,
        });
        println!("{report}");
    } else {
        if runs.len() > 1 {
            println!(
                "\n{:<28} {:<28} {:>9} {:>7} {:>10} {:>10}",
                "prompt", "model", "passed", "rate", "ttft ms", "total ms"
            );
            for run in &runs {
                let ttft = run.mean_ttft_ms.map_or("-".to_owned(), |t| format!("{t:.0}"));
                println!(
                    "{:<28} {:<28} {:>9} {:>6.0}% {:>10} {:>10.0}",
                    run.prompt,
                    run.model,
                    format!("{}/{}", run.passed, run.total),
                    100.0 * run.passed as f64 / run.total.max(1) as f64,
                    ttft,
                    run.mean_total_ms
                );
            }
        }
        println!("\n{} of {total} cases passed", total - failed);
    }
    if failed > 0 {
        bail!("{failed} of {total} cases failed");
    }
    Ok(())
}

impl RunSummary {
    fn new(assistant: &Assistant) -> Self {
        let prompt = assistant.prompt().id();
        let model =
            assistant.models().iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join("+");
        RunSummary {
            prompt,
            model,
            total: 0,
            passed: 0,
            failed: 0,
            mean_ttft_ms: None,
            mean_total_ms: 0.0,
            suites: BTreeMap::new(),
            cases: Vec::new(),
            ttfts: Vec::new(),
            totals: Vec::new(),
        }
    }

    fn finish(&mut self) {
        let (ttfts, totals) = (&self.ttfts, &self.totals);
        self.mean_ttft_ms =
            (!ttfts.is_empty()).then(|| ttfts.iter().sum::<f64>() / ttfts.len() as f64);
        self.mean_total_ms = totals.iter().sum::<f64>() / totals.len().max(1) as f64;
        for tally in self.suites.values_mut() {
            tally.finish();
        }
    }
}

fn suite_name(path: &Path, suite: &Suite) -> String {
    suite.name.clone().unwrap_or_else(|| path.display().to_string())
}

fn run_all(
    runtime: &tokio::runtime::Runtime,
    assistant: &Assistant,
    suites: &[(PathBuf, Suite)],
    quiet: bool,
    summary: &mut RunSummary,
    failures: &mut Vec<Failure>,
) -> Result<()> {
    let prompt = summary.prompt.clone();
    let model = summary.model.clone();
    if !quiet {
        println!("── prompt {prompt}, model {model}, shop {}", assistant.shop_name());
    }
    for (path, suite) in suites {
        let suite_name = suite_name(path, suite);
        let tally = summary.suites.entry(suite_name.clone()).or_default();
        for (number, case) in suite.cases.iter().enumerate() {
            let customer = match &case.verified {
                Some(identity) => Some(verify(assistant, identity).with_context(|| {
                    format!(
                        "{}: case `{}`: the identity does not verify",
                        path.display(),
                        case.name
                    )
                })?),
                None => None,
            };
            let mut session = conversation(format!("eval-{number}-{}", case.name), customer);
            let mut failure = None;
            for (turn_number, turn) in case.turns.iter().enumerate() {
                let result = run_turn(runtime, assistant, &mut session, &turn.say, &mut |_| {})?;
                summary.ttfts.extend(result.ttft_ms);
                summary.totals.push(result.total_ms);
                let failed = failed_assertions(&turn.expect, &result);
                tally.count(&turn.expect, &result.reply, &failed);
                if !failed.is_empty() {
                    failure = Some(Failure {
                        suite: suite_name.clone(),
                        case: case.name.clone(),
                        prompt: prompt.clone(),
                        model: model.clone(),
                        turn: turn_number + 1,
                        said: turn.say.clone(),
                        answer: result.reply.text.clone(),
                        failed,
                    });
                    break;
                }
            }
            summary.total += 1;
            match &failure {
                None => {
                    summary.passed += 1;
                    if !quiet {
                        println!("  ✓ {}", case.name);
                    }
                }
                Some(f) => {
                    summary.failed += 1;
                    if !quiet {
                        println!(
                            "  ✗ {} — turn {} ({:?}): {}",
                            case.name,
                            f.turn,
                            f.said,
                            f.failed.join("; ")
                        );
                        println!(
                            "      answer: {}",
                            f.answer.split_whitespace().collect::<Vec<_>>().join(" ")
                        );
                    }
                }
            }
            let message =
                failure.as_ref().map(|f| format!("turn {}: {}", f.turn, f.failed.join("; ")));
            summary.cases.push((suite_name.clone(), case.name.clone(), message));
            failures.extend(failure);
        }
    }
    Ok(())
}

fn verify(assistant: &Assistant, identity: &Identity) -> Result<VerifiedCustomer> {
    match identity {
        Identity { customer: Some(customer), order: None, email: None } => {
            Ok(VerifiedCustomer::from_signed_identity(customer.clone()))
        }
        Identity { customer: None, order: Some(order), email: Some(email) } => {
            assistant.verify_order(order, email).context("the order and email do not match")
        }
        _ => bail!("`verified` needs either `customer`, or `order` and `email`"),
    }
}

fn junit(runs: &[RunSummary], _failures: &[Failure]) -> String {
    let escape = |text: &str| {
        text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
    };
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    for run in runs {
        let name = format!("{} / {}", run.prompt, run.model);
        let _ = writeln!(
            xml,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\">",
            escape(&name),
            run.total,
            run.failed
        );
        for (suite, case, failure) in &run.cases {
            let _ = write!(
                xml,
                "    <testcase classname=\"{}\" name=\"{}\"",
                escape(suite),
                escape(case)
            );
            match failure {
                None => xml.push_str("/>\n"),
                Some(message) => {
                    let _ = writeln!(xml, "><failure message=\"{}\"/></testcase>", escape(message));
                }
            }
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}

#[derive(Args)]
pub struct FromTranscriptArgs {
    conversation_id: String,
    #[arg(long, env = "SHOPCHAT_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
}

/// Turns a reviewed conversation into a test case. Staff mark what a good
/// answer must (not) contain in the conversation's note, one line each:
/// `turn 2 contains: 5 business days`, `turn 2 not_contains: 10 days`,
/// `turn 1 outcome: refused`, `turn 3 cites: faq/returns@en`. An answer
/// rated up keeps its outcome as an assertion.
pub fn from_transcript(args: FromTranscriptArgs) -> Result<()> {
    let database = args.data_dir.join("shopchat.db");
    if !database.is_file() {
        bail!("no database at {}", database.display());
    }
    let store = SqliteStore::open(&database)?;
    let transcript = store
        .transcript(&ConversationId(args.conversation_id.clone()))?
        .with_context(|| format!("no conversation {}", args.conversation_id))?;
    let marks = note_marks(transcript.conversation.note.as_deref().unwrap_or(""))?;

    let messages = &transcript.messages;
    let mut turns = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        if message.role != Role::Shopper {
            continue;
        }
        let number = turns.len() + 1;
        let answer = messages[i + 1..]
            .iter()
            .take_while(|m| m.role != Role::Shopper)
            .find(|m| m.role == Role::Assistant);
        let mut expect = Expect::default();
        if let Some(answer) = answer {
            let rated_up =
                answer.feedback.as_ref().is_some_and(|f| f.rating == shopchat_store::Rating::Up);
            if rated_up {
                expect.outcome = answer.answer.as_ref().and_then(|a| match a.outcome {
                    shopchat_store::Outcome::Answered => Some(OneOrMany::One(Outcome::Answered)),
                    shopchat_store::Outcome::Refused => Some(OneOrMany::One(Outcome::Refused)),
                    shopchat_store::Outcome::Replaced => Some(OneOrMany::One(Outcome::Replaced)),
                    shopchat_store::Outcome::Handoff => Some(OneOrMany::One(Outcome::Handoff)),
                    shopchat_store::Outcome::Error | shopchat_store::Outcome::Stopped => None,
                });
            }
        }
        for (key, value) in marks.get(&number).into_iter().flatten() {
            let one = |v: &str| Some(OneOrMany::One(v.to_owned()));
            match key.as_str() {
                "contains" => expect.contains = one(value),
                "not_contains" => expect.not_contains = one(value),
                "cites" => expect.cites = Some(OneOrMany::One(value.clone())),
                "outcome" => {
                    let outcome: Outcome = serde_norway::from_str(value).with_context(|| {
                        format!("note: turn {number}: unknown outcome `{value}`")
                    })?;
                    expect.outcome = Some(OneOrMany::One(outcome));
                }
                _ => unreachable!("note_marks returns known keys only"),
            }
        }
        turns.push(TurnSpec { say: message.text.clone(), expect });
    }
    if turns.is_empty() {
        bail!("conversation {} has no shopper messages", args.conversation_id);
    }
    let case = Case {
        name: format!("from conversation {}", args.conversation_id),
        verified: transcript.conversation.customer_id.map(|customer| Identity {
            customer: Some(customer),
            order: None,
            email: None,
        }),
        turns,
    };
    // One item of a `cases:` list, so that `>> suite.yaml` appends it.
    println!("  # from conversation {}, reviewed by staff", args.conversation_id);
    for line in serde_norway::to_string(&vec![case])?.lines() {
        println!("  {line}");
    }
    Ok(())
}

/// `turn N KEY: VALUE` lines of a staff note; other lines are ignored.
fn note_marks(note: &str) -> Result<BTreeMap<usize, Vec<(String, String)>>> {
    let mut marks: BTreeMap<usize, Vec<(String, String)>> = BTreeMap::new();
    for line in note.lines() {
        let Some(rest) = line.trim().strip_prefix("turn ") else { continue };
        let Some((head, value)) = rest.split_once(':') else { continue };
        let mut words = head.split_whitespace();
        let (Some(number), Some(key), None) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        let Ok(number) = number.parse::<usize>() else { continue };
        if !["contains", "not_contains", "cites", "outcome"].contains(&key) {
            bail!("note: `{}`: use contains, not_contains, cites or outcome", line.trim());
        }
        marks.entry(number).or_default().push((key.to_owned(), value.trim().to_owned()));
    }
    Ok(marks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_key_is_an_error_with_its_line() {
        let yaml = "cases:\n  - name: a\n    turns:\n      - say: hi\n        expect:\n          contain: x\n";
        let error = serde_norway::from_str::<Suite>(yaml).unwrap_err().to_string();
        assert!(error.contains("unknown field `contain`"), "{error}");
        assert!(error.contains("line 6"), "{error}");
    }

    #[test]
    fn a_bad_regex_and_an_unknown_outcome_are_errors_with_their_line() {
        let yaml = "cases:\n  - name: a\n    turns:\n      - say: hi\n        expect:\n          regex: '(['\n";
        let error = serde_norway::from_str::<Suite>(yaml).unwrap_err().to_string();
        assert!(error.contains("invalid regex") && error.contains("line 6"), "{error}");
        let yaml = "cases:\n  - name: a\n    turns:\n      - say: hi\n        expect:\n          outcome: great\n";
        let error = serde_norway::from_str::<Suite>(yaml).unwrap_err().to_string();
        assert!(error.contains("line 6"), "{error}");
    }

    #[test]
    fn note_marks_read_turn_lines_and_reject_unknown_keys() {
        let marks =
            note_marks("checked by Sam\nturn 2 contains: 5 business days\nturn 1 outcome: refused")
                .unwrap();
        assert_eq!(marks[&2], vec![("contains".to_owned(), "5 business days".to_owned())]);
        assert_eq!(marks[&1], vec![("outcome".to_owned(), "refused".to_owned())]);
        assert!(note_marks("turn 1 mentions: x").is_err());
    }
}
