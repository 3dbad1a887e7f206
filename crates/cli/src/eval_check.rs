//! `shopchat eval check`: precision and recall of the answer check on a
//! labelled set of supported and unsupported answers (`tests/check/`).
//!
//! It runs the pipeline's own verdict ([`shopchat_core::verdict::judge`]) on
//! each answer, so the figures are those of what shoppers get. "Positive"
//! is an answer the check stops (replaced or refused): precision is the
//! share of stopped answers that were truly unsupported, recall the share
//! of unsupported answers that were stopped.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Deserialize;
use shopchat_core::check::AllowedFacts;
use shopchat_core::extract::Aliases;
use shopchat_core::verdict::{judge, AnswerInput, Verdict};
use shopchat_core::Language;

#[derive(Args)]
pub struct CheckArgs {
    /// JSON lines: {"id","lang","question","passages":[..],"answer","supported","kind"}.
    /// `--set tests/check/heldout.jsonl` measures the held-out set, written
    /// before the rules were tuned and not looked at while tuning them.
    #[arg(long, visible_alias = "set", default_value = "tests/check/labelled.jsonl")]
    labelled: PathBuf,
    /// Also list every item the check got wrong.
    #[arg(long)]
    verbose: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Deserialize)]
struct Item {
    id: String,
    lang: String,
    question: String,
    passages: Vec<String>,
    answer: String,
    supported: bool,
    #[serde(default)]
    kind: String,
    /// Search ranked the first passage first both ways (`AnswerInput::settled`).
    #[serde(default)]
    settled: bool,
}

#[derive(Default, Clone, Copy, serde::Serialize)]
struct Counts {
    true_stopped: usize,
    false_stopped: usize,
    true_passed: usize,
    false_passed: usize,
}

impl Counts {
    fn add(&mut self, supported: bool, stopped: bool) {
        match (supported, stopped) {
            (false, true) => self.true_stopped += 1,
            (true, true) => self.false_stopped += 1,
            (true, false) => self.true_passed += 1,
            (false, false) => self.false_passed += 1,
        }
    }

    fn json(&self) -> serde_json::Value {
        let ratio = |a: usize, b: usize| if b == 0 { None } else { Some(a as f64 / b as f64) };
        serde_json::json!({
            "items": self.true_stopped + self.false_stopped + self.true_passed + self.false_passed,
            "precision": ratio(self.true_stopped, self.true_stopped + self.false_stopped),
            "recall": ratio(self.true_stopped, self.true_stopped + self.false_passed),
            "counts": self,
        })
    }
}

pub fn check(args: CheckArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.labelled)
        .with_context(|| format!("reading {}", args.labelled.display()))?;
    let allowed = AllowedFacts::new();
    let mut all = Counts::default();
    let mut by_lang: BTreeMap<String, Counts> = BTreeMap::new();
    let mut by_kind: BTreeMap<String, Counts> = BTreeMap::new();
    let mut wrong = Vec::new();
    for (number, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let item: Item = serde_json::from_str(line)
            .with_context(|| format!("{}:{}", args.labelled.display(), number + 1))?;
        let Some(lang) = Language::from_tag(&item.lang) else {
            bail!("{}:{}: unknown lang {:?}", args.labelled.display(), number + 1, item.lang);
        };
        let passages: Vec<&str> = item.passages.iter().map(String::as_str).collect();
        let aliases = Aliases::from_texts(passages.iter().copied());
        let input = AnswerInput {
            question: &item.question,
            lang,
            passages: &passages,
            titles: &[],
            allowed: &allowed,
            aliases: &aliases,
            settled: item.settled,
        };
        let (stopped, reason) = match judge(&item.answer, &input, true) {
            Verdict::Refusal => (true, Some("refusal".to_owned())),
            Verdict::Checked { check, .. } => (!check.passed, check.reason()),
        };
        all.add(item.supported, stopped);
        by_lang.entry(item.lang.clone()).or_default().add(item.supported, stopped);
        by_kind.entry(item.kind.clone()).or_default().add(item.supported, stopped);
        if stopped == item.supported {
            wrong.push(serde_json::json!({
                "id": item.id, "kind": item.kind, "supported": item.supported,
                "answer": item.answer, "reason": reason,
            }));
        }
    }
    let report = serde_json::json!({
        "all": all.json(),
        "by_lang": by_lang.iter().map(|(k, c)| (k.clone(), c.json())).collect::<serde_json::Map<_, _>>(),
        "by_kind": by_kind.iter().map(|(k, c)| (k.clone(), c.json())).collect::<serde_json::Map<_, _>>(),
        "wrong": if args.verbose || args.json { serde_json::Value::Array(wrong) } else { serde_json::Value::Null },
    });
    if args.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}
