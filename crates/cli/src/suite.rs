//! `shopchat eval run`: plays test conversations through the pipeline and
//! checks each answer's assertions, to catch regressions in prompts and
//! models. The suite format is read by `suite_spec`, the run is scored by
//! `suite_score`, and `eval from-transcript` (`suite_from_transcript`) makes
//! cases out of reviewed conversations.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;
use shopchat_core::language::is_cjk;
use shopchat_core::Language;
use shopchat_pipeline::Assistant;
use shopchat_retrieval::VerifiedCustomer;

use crate::harness::{conversation, outcome_name, run_turn, PipelineArgs, TurnResult};
use crate::suite_score::Tally;
use crate::suite_spec::{read_suite, Expect, Identity, Lang, Pattern, Suite};

/// Text as `contains` compares it: lower case, without the spaces that
/// Chinese typography leaves to the writer ("30 天" and "30天", "2 年保修"
/// and "2年保修" state the same fact; a model writes either).
fn comparable(text: &str) -> String {
    let chars: Vec<char> = text.to_lowercase().chars().collect();
    let mut out = String::with_capacity(text.len());
    for (i, &c) in chars.iter().enumerate() {
        if c.is_whitespace() {
            let before = i.checked_sub(1).map(|j| chars[j]);
            let after = chars[i + 1..].iter().find(|c| !c.is_whitespace()).copied();
            if before.is_some_and(is_cjk) || after.is_some_and(is_cjk) {
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// Which assertions an answer failed; empty when it passed.
fn failed_assertions(expect: &Expect, result: &TurnResult) -> Vec<String> {
    let reply = &result.reply;
    let text = comparable(&reply.text);
    let mut failures = Vec::new();
    if let Some(any) = &expect.contains {
        if !any.items().iter().any(|needle| text.contains(&comparable(needle))) {
            failures.push(format!("contains none of {:?}", any.items()));
        }
    }
    if let Some(none) = &expect.not_contains {
        for needle in none.items() {
            if text.contains(&comparable(needle)) {
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
    /// answers, in MiB, as the server's `[models] passage_cache_mb`; 0
    /// computes every passage for every answer.
    #[arg(long, default_value_t = shopchat_inference::DEFAULT_PASSAGE_CACHE_MB)]
    passage_cache_mb: usize,
    /// `exact` or `moved`: see `shopchat ask --help`.
    #[arg(long, default_value = "exact")]
    passage_reuse: shopchat_inference::PassageReuse,
    /// With `moved`, the share of each moved passage recomputed, in percent.
    #[arg(long, default_value_t = shopchat_inference::DEFAULT_RECOMPUTE_PERCENT,
          value_parser = clap::value_parser!(u8).range(0..=100))]
    passage_recompute_percent: u8,
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
    /// Per model: its passage cache over the run (hits and misses summed
    /// over the shops' assistants, the largest memory any of them used).
    passage_cache: BTreeMap<String, PassageCacheUse>,
    #[serde(skip)]
    cases: Vec<(String, String, Option<String>)>,
    #[serde(skip)]
    ttfts: Vec<f64>,
    #[serde(skip)]
    totals: Vec<f64>,
}

/// How much a model's passage cache served during a run.
#[derive(Debug, Default, Serialize)]
struct PassageCacheUse {
    hits: u64,
    misses: u64,
    /// Of the passages looked up, the share found kept.
    hit_rate: Option<f64>,
    max_bytes: usize,
    budget_bytes: usize,
}

impl PassageCacheUse {
    fn add(&mut self, stats: &shopchat_inference::passage_cache::PassageCacheStats) {
        self.hits += stats.hits;
        self.misses += stats.misses;
        let looked_up = self.hits + self.misses;
        self.hit_rate = (looked_up > 0).then(|| self.hits as f64 / looked_up as f64);
        self.max_bytes = self.max_bytes.max(stats.bytes);
        self.budget_bytes = stats.budget_bytes;
    }
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
                    passage_recompute_percent: args.passage_recompute_percent,
                };
                let assistant = pipeline.load(models_dir)?;
                let summary = summary.get_or_insert_with(|| RunSummary::new(&assistant));
                run_all(&runtime, &assistant, group, args.json, summary, &mut failures)?;
                for model in assistant.models() {
                    let stats = model.worker.passage_cache_stats();
                    summary.passage_cache.entry(model.name.clone()).or_default().add(&stats);
                }
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
        for run in &runs {
            for (model, cache) in &run.passage_cache {
                let Some(rate) = cache.hit_rate else { continue };
                println!(
                    "passage cache of {model}: {} of {} passages kept ({:.0}%), {:.0} of {:.0} MiB",
                    cache.hits,
                    cache.hits + cache.misses,
                    100.0 * rate,
                    cache.max_bytes as f64 / 1048576.0,
                    cache.budget_bytes as f64 / 1048576.0
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
            passage_cache: BTreeMap::new(),
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

#[cfg(test)]
mod tests {
    use super::comparable;

    #[test]
    fn spaces_next_to_chinese_do_not_count() {
        assert_eq!(comparable("退货期限是 30 天。"), comparable("退货期限是30天。"));
        assert!(comparable("享有2年保修").contains(&comparable("2 年保修")));
        // Between Latin words a space is a space.
        assert_ne!(comparable("Free  returns"), comparable("freereturns"));
        assert_eq!(comparable("Free Returns"), "free returns");
    }
}
