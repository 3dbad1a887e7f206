//! The models: tokenizers against llama.cpp's ids, generation, the model list
//! and errors, and the benchmark's output.

use super::*;

/// Runs `shopchat tokenize` on llama.cpp's reference file for a model and
/// returns the texts whose ids differ.
fn tokenizer_mismatches(model: &str, reference: &str) -> Vec<String> {
    let file = workspace().join("tests/data/reference").join(reference);
    let output = shopchat(&["tokenize", "--model", model, "--jsonl", file.to_str().unwrap()]);
    let ours: Vec<serde_json::Value> =
        stdout(&output).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let expected: Vec<serde_json::Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(ours.len(), expected.len());
    assert!(expected.len() >= 90);
    ours.iter()
        .zip(&expected)
        .filter(|(a, b)| {
            assert_eq!(a["text"], b["text"]);
            a["ids"] != b["ids"]
        })
        .map(|(a, _)| a["text"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn smollm2_tokenizer_matches_llama_cpp_on_every_reference_text() {
    assert_eq!(
        tokenizer_mismatches("smollm2-135m", "smollm2-135m-instruct.jsonl"),
        Vec::<String>::new()
    );
}

#[test]
fn qwen_tokenizer_matches_llama_cpp_except_for_unicode_normalization() {
    // Qwen's tokenizer normalizes to NFC, as its own tokenizer.json does;
    // llama.cpp does not, so decomposed accents ("e" + U+0301) are the one
    // documented difference.
    let mismatches =
        tokenizer_mismatches("qwen2.5-coder-0.5b", "qwen2.5-coder-0.5b-instruct.jsonl");
    for text in &mismatches {
        assert!(has_combining_marks(text), "unexpected mismatch: {text:?}");
    }
    assert!(mismatches.len() <= 1, "{mismatches:?}");
}

/// Combining marks (U+0300..U+036F) are what NFC composes with the letter
/// before them: the only texts where normalizing changes the ids.
fn has_combining_marks(text: &str) -> bool {
    text.chars().any(|c| ('\u{0300}'..='\u{036F}').contains(&c))
}

#[test]
fn generate_streams_a_grounded_answer() {
    let output = shopchat(&[
        "generate",
        "--model",
        "smollm2-135m:q8_0",
        "--max-tokens",
        "40",
        "--system",
        "You are a customer-service assistant for an online shop. Answer only from the passages below.\n\n\
         Passage [returns-1]: Unused items can be returned within 30 days of delivery. Refunds are issued to the original payment method within 5-7 business days.\n\
         Passage [shipping-1]: Standard shipping takes 3-5 business days. Shipping is free on orders over $50.",
        "How long does shipping take?",
    ]);
    let answer = stdout(&output);
    assert!(answer.contains("3-5"), "{answer}");
}

#[test]
fn models_list_shows_what_is_installed() {
    let listing = stdout(&shopchat(&["models", "list"]));
    let line = listing.lines().find(|l| l.starts_with("smollm2-135m")).unwrap();
    assert!(line.contains("installed") && line.contains("+q8_0"), "{line}");
    assert!(listing.contains("qwen2.5-coder-0.5b") && listing.contains("minilm-l6"));
}

#[test]
fn unknown_and_missing_models_fail_with_a_clear_message() {
    let output = shopchat(&["models", "fetch", "no-such-model"]);
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("unknown model `no-such-model`") && message.contains("smollm2-135m"),
        "{message}"
    );

    let empty = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_shopchat"))
        .args(["generate", "hello"])
        .env("SHOPCHAT_MODELS_DIR", empty.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("shopchat models fetch smollm2-135m"), "{message}");
}

#[test]
fn bench_prints_one_json_object_with_every_figure() {
    let output = shopchat(&[
        "bench",
        "--model",
        "smollm2-135m:q8_0",
        "--json",
        "--runs",
        "1",
        "--prompt-tokens",
        "120",
        "--decode-tokens",
        "8",
    ]);
    let report: serde_json::Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    for key in
        ["load_s", "prefill_tps", "decode_tps", "ttft_cold_ms", "ttft_warm_ms", "peak_rss_mb"]
    {
        let value = report[key].as_f64().unwrap_or_else(|| panic!("{key} missing in {report}"));
        assert!(value > 0.0, "{key} = {value}");
    }
    assert!(report["prompt_tokens"].as_u64().unwrap() >= 120);
}

/// The passage cache over a generated corpus: it fills to its budget and no
/// further, evicts, and serves the questions that come back.
#[test]
fn bench_passage_cache_stays_within_its_budget_and_reuses_passages() {
    let output = shopchat(&[
        "bench-passage-cache",
        "--passages",
        "50",
        "--answers",
        "16",
        "--budget-mb",
        "64",
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    assert_eq!(report["within_budget"], true, "{report}");
    let most = report["max_cache_mb"].as_f64().unwrap();
    // Filled (a passage is a few MB with SmolLM2), never past the budget.
    assert!(most > 48.0 && most <= 64.0, "{report}");
    let (hits, misses) = (report["hits"].as_u64().unwrap(), report["misses"].as_u64().unwrap());
    assert_eq!(hits + misses, 16 * 3, "{report}");
    assert!(hits > 0, "a question asked again finds its passages kept: {report}");
    assert!(report["ttft_all_kept_ms"].as_f64().is_some(), "{report}");
}
