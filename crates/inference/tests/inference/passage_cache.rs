//! Retrieved passages' attention caches reused across answers: exact where
//! nothing moved, close where passages moved, and never served stale.

use shopchat_inference::kv_cache::PassageKv;
use shopchat_inference::passage_cache::{locate, plan, PassageCache, PlanSettings};

use super::*;

const SYSTEM: &str = "You are a shop's customer service assistant. Answer the question in one \
                      full sentence, using only the facts in the passages. Cite the passage like [1].";

const PASSAGES: [&str; 3] = [
    "Standard delivery to Germany takes 3-5 business days and costs 4.95 euros. Orders paid \
     before 14:00 leave our warehouse the same day; later orders leave the next working day.",
    "You can return unworn items within 30 days of delivery for a full refund. Print the free \
     return label from your account and drop the parcel at any post office.",
    "Gift cards are valid for three years from the day they are bought and can be used for \
     anything in the shop, including sale items, but not for other gift cards.",
];

fn rag_messages(order: &[usize], question: &str) -> Vec<ChatMessage> {
    let passages: Vec<String> =
        order.iter().enumerate().map(|(n, &i)| format!("[{}] {}", n + 1, PASSAGES[i])).collect();
    vec![
        ChatMessage::system(SYSTEM),
        ChatMessage::user(format!("Passages:\n{}\n\nQuestion: {question}", passages.join("\n\n"))),
    ]
}

fn passage_tokens(model: &LanguageModel) -> Vec<Vec<u32>> {
    PASSAGES.iter().map(|p| model.tokenizer().encode_untrusted(&format!(" {p}")).unwrap()).collect()
}

fn logits(
    model: &LanguageModel,
    tokens: &[u32],
    cache: &mut shopchat_inference::model::KvCache,
) -> Vec<f32> {
    let logits = model.transformer().forward(tokens, cache).unwrap();
    shopchat_inference::model::Transformer::logits_to_vec(&logits).unwrap()
}

/// The length of the system turn at the start of `prompt`.
fn system_prefix_len(model: &LanguageModel, messages: &[ChatMessage]) -> usize {
    let len = model.fit_chat(messages, 8).unwrap().system_prefix_len;
    assert!(len > 0);
    len
}

/// A passage's cache computed after `context` alone.
fn computed_alone(model: &LanguageModel, context: &[u32], passage: &[u32]) -> PassageKv {
    let mut cache = model.transformer().new_cache();
    logits(model, context, &mut cache);
    logits(model, passage, &mut cache);
    cache.cut(context.len(), passage.len())
}

/// The logits of `prompt` as [`PassageReuse::Moved`] computes them: each
/// passage computed after the prompt's opening (everything before the first
/// passage) alone and moved to where it sits; the rest computed in place.
/// With `recompute_percent` above 0, that share of each passage that moved
/// is then recomputed after the passages before it (CacheBlend).
fn moved_logits(
    model: &LanguageModel,
    prompt: &[u32],
    system_len: usize,
    recompute_percent: u8,
) -> Vec<f32> {
    let candidates = passage_tokens(model);
    let located = locate(prompt, system_len, &candidates);
    let opening = &prompt[..located[0].0];
    let mut cache = model.transformer().new_cache();
    logits(model, opening, &mut cache);
    let mut position = opening.len();
    for (at, index) in located {
        if at > position {
            logits(model, &prompt[position..at], &mut cache);
        }
        let kept = computed_alone(model, opening, &candidates[index]);
        cache.append_moved(&kept, model.transformer().rope_shift());
        if at > opening.len() {
            let transformer = model.transformer();
            transformer
                .recompute_moved(&candidates[index], at, &mut cache, recompute_percent)
                .unwrap();
        }
        position = at + candidates[index].len();
    }
    logits(model, &prompt[position..], &mut cache)
}

fn softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().fold(f32::MIN, |m, &x| m.max(x));
    let exp: Vec<f64> = logits.iter().map(|&x| f64::from(x - max).exp()).collect();
    let total: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / total).collect()
}

/// How far the spliced next-token distribution is from the full one.
fn kl_divergence(full: &[f32], spliced: &[f32]) -> f64 {
    let (p, q) = (softmax(full), softmax(spliced));
    p.iter().zip(&q).filter(|(p, _)| **p > 0.0).map(|(p, q)| p * (p / q.max(1e-300)).ln()).sum()
}

fn argmax(values: &[f32]) -> usize {
    values.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i).unwrap()
}

#[test]
fn a_kept_passage_at_the_position_it_was_computed_at_gives_the_same_logits_bit_for_bit() {
    let model = smollm2();
    let messages = rag_messages(&[0], "How long does delivery take?");
    let system_len = system_prefix_len(&model, &messages);
    let system = &model.encode_chat(&messages).unwrap()[..system_len];
    let passage = &passage_tokens(&model)[0];
    let question = model.tokenizer().encode_untrusted("\n\nQuestion: how long?").unwrap();

    // The passage right after the system turn, where it is computed.
    let mut cache = model.transformer().new_cache();
    logits(&model, system, &mut cache);
    logits(&model, passage, &mut cache);
    let full = logits(&model, &question, &mut cache);

    let mut spliced = model.transformer().new_cache();
    logits(&model, system, &mut spliced);
    let kept = computed_alone(&model, system, passage);
    assert_eq!(kept.computed_at(), system.len());
    spliced.append_moved(&kept, model.transformer().rope_shift());
    let from_kept = logits(&model, &question, &mut spliced);
    assert!(full.iter().zip(&from_kept).all(|(a, b)| a.to_bits() == b.to_bits()));
}

#[test]
fn moved_passages_stay_close_to_a_full_prefill() {
    let model = smollm2();
    // Three passages, each computed after the prompt's opening alone and
    // moved to its place: none attended to the passages it now follows.
    let messages = rag_messages(&[0, 1, 2], "How long does delivery to Germany take?");
    let prompt = model.encode_chat(&messages).unwrap();
    let system_len = system_prefix_len(&model, &messages);
    assert_eq!(locate(&prompt, system_len, &passage_tokens(&model)).len(), 3);

    let mut cache = model.transformer().new_cache();
    logits(&model, &prompt[..system_len], &mut cache);
    let full = logits(&model, &prompt[system_len..], &mut cache);
    let spliced = moved_logits(&model, &prompt, system_len, 0);
    let divergence = kl_divergence(&full, &spliced);
    let (p_full, p_spliced) = (softmax(&full), softmax(&spliced));
    let top = argmax(&full);
    eprintln!(
        "three moved passages: KL(full || spliced) {divergence:.4} nats; next token {top} at p {:.3} (full) and {:.3} (spliced)",
        p_full[top], p_spliced[top]
    );
    // Measured: see docs/performance.md. The next-token distribution here
    // is flat (p ~0.15 at the top), so the top token itself may change.
    assert!(divergence < 0.3, "KL divergence {divergence}");
}

/// The logits of `prompt` computed in place, in chunks that end where its
/// passages start and end, as the worker prefills with the cache on.
fn in_place_logits(model: &LanguageModel, prompt: &[u32], system_len: usize) -> Vec<f32> {
    let candidates = passage_tokens(model);
    let mut ends = vec![system_len];
    for (at, index) in locate(prompt, system_len, &candidates) {
        ends.extend([at, at + candidates[index].len()]);
    }
    ends.push(prompt.len());
    let mut cache = model.transformer().new_cache();
    let mut last = vec![];
    for end in ends {
        if end > cache.len() {
            last = logits(model, &prompt[cache.len()..end], &mut cache);
        }
    }
    last
}

#[test]
fn recomputing_part_of_each_moved_passage_brings_the_logits_back_to_a_full_prefill() {
    let model = smollm2();
    let messages = rag_messages(&[0, 1, 2], "How long does delivery to Germany take?");
    let prompt = model.encode_chat(&messages).unwrap();
    let system_len = system_prefix_len(&model, &messages);
    let full = in_place_logits(&model, &prompt, system_len);

    let recomputed: Vec<(u8, Vec<f32>)> = [0, 15, 50, 100]
        .into_iter()
        .map(|percent| (percent, moved_logits(&model, &prompt, system_len, percent)))
        .collect();
    let divergences: Vec<(u8, f64)> = recomputed
        .iter()
        .map(|(percent, spliced)| (*percent, kl_divergence(&full, spliced)))
        .collect();
    eprintln!("three moved passages, KL(full || spliced) by share recomputed: {divergences:?}");
    // Every position recomputed is the prefill itself: each row's
    // arithmetic does not depend on which other rows are computed with it.
    let all = &recomputed[3].1;
    assert!(full.iter().zip(all).all(|(a, b)| a.to_bits() == b.to_bits()), "{divergences:?}");
    // A share of it closes part of the gap, more closes more.
    let kl: Vec<f64> = divergences.iter().map(|(_, kl)| *kl).collect();
    assert!(kl[1] < kl[0] / 2.0 && kl[2] < kl[1], "{divergences:?}");
}

fn ask(worker: &WorkerHandle, order: &[usize], question: &str) -> (String, GenerationStats) {
    let mut request = request(Prompt::Chat(rag_messages(order, question)), 12);
    request.passages = PASSAGES.iter().map(|p| p.to_string()).collect();
    let outcome = run(worker, request);
    (outcome.text, outcome.stats.expect("finished"))
}

/// A worker that keeps passages, reused as `reuse` says.
fn kept(reuse: PassageReuse) -> WorkerConfig {
    WorkerConfig {
        passage_cache_bytes: 256 << 20,
        passage_reuse: reuse,
        ..WorkerConfig::standard()
    }
}

fn passage_lengths() -> Vec<usize> {
    passage_tokens(&smollm2()).iter().map(Vec::len).collect()
}

#[test]
fn exact_reuse_serves_passages_after_the_same_tokens_and_changes_no_answer() {
    let worker = worker(kept(PassageReuse::Exact));
    let lengths = passage_lengths();
    let (first_text, first) = ask(&worker, &[0, 1, 2], "How long does delivery take?");
    assert_eq!(first.passage_tokens_reused, 0, "nothing is kept before the first answer");

    // The same passages in the same order: all three come from the cache
    // with the template words before each, and the answer is the one a
    // fresh worker computes.
    let (again, stats) = ask(&worker, &[0, 1, 2], "How long does delivery take?");
    let all_three = stats.passage_tokens_reused;
    assert!(all_three > lengths.iter().sum::<usize>(), "reused {all_three}");
    assert_eq!(again, first_text);
    let fresh = super::worker(kept(PassageReuse::Exact));
    let (cold, stats) = ask(&fresh, &[0, 1, 2], "How long does delivery take?");
    assert_eq!((cold, stats.passage_tokens_reused), (first_text, 0));
    // Off (a budget of 0), nothing is kept.
    let off = super::worker(WorkerConfig { passage_cache_bytes: 0, ..WorkerConfig::standard() });
    for _ in 0..2 {
        assert_eq!(ask(&off, &[0, 1, 2], "Hi?").1.passage_tokens_reused, 0);
    }

    // Another question on the same first two passages reuses those two;
    // another order reuses nothing, since what came before differs.
    let (_, stats) = ask(&worker, &[0, 1], "Where do I send a return?");
    let first_two = stats.passage_tokens_reused;
    assert!(first_two > lengths[0] + lengths[1] && first_two < all_three, "reused {first_two}");
    let (_, stats) = ask(&worker, &[1, 0, 2], "Where do I send a return?");
    assert_eq!(stats.passage_tokens_reused, 0);

    // A passage whose text changed (re-indexed) is computed, not served stale.
    let mut messages = rag_messages(&[0, 1, 2], "How long does delivery take?");
    messages[1] = ChatMessage::user(messages[1].content.replace("three years", "two years"));
    let mut request = request(Prompt::Chat(messages), 8);
    request.passages = vec![
        PASSAGES[0].to_string(),
        PASSAGES[1].to_string(),
        PASSAGES[2].replace("three years", "two years"),
    ];
    let stats = run(&worker, request).stats.unwrap();
    assert_eq!(stats.passage_tokens_reused, first_two);
}

#[test]
fn moved_reuse_serves_passages_in_any_order_and_answers_never_depend_on_the_cache() {
    let moved = || super::worker(kept(PassageReuse::Moved));
    let worker = moved();
    let (first_text, first) = ask(&worker, &[0, 1, 2], "How long does delivery take?");
    assert_eq!(first.passage_tokens_reused, 0);
    let (_, second) = ask(&worker, &[1, 2, 0], "Can I return a jumper?");
    assert_eq!(second.passage_tokens_reused, passage_lengths().iter().sum::<usize>());

    // Each passage is computed after the same context whether it is kept or
    // not, so the answer is the same from a warm cache and a fresh worker.
    let (again, _) = ask(&worker, &[0, 1, 2], "How long does delivery take?");
    assert_eq!(again, first_text);
    assert_eq!(ask(&moved(), &[0, 1, 2], "How long does delivery take?").0, first_text);
}

#[test]
fn passages_are_found_though_a_tokenizer_joins_their_last_token_with_the_newlines() {
    // Qwen's tokenizer writes "faulty.\n\n" as "faulty" + ".\n\n": the
    // passage's own last token is not in the prompt.
    let path = model_path("qwen2.5-coder-0.5b");
    let qwen = LanguageModel::load(
        &path,
        &LoadConfig { max_context: Some(1024), ..LoadConfig::default() },
    )
    .unwrap();
    let messages = rag_messages(&[0, 1, 2], "How long does delivery take?");
    let fitted = qwen.fit_chat(&messages, 8).unwrap();
    let sequence = shopchat_inference::generate::Sequence::new(
        fitted.tokens,
        qwen.transformer().new_cache(),
        SamplingConfig::greedy(8),
    )
    .unwrap();
    let texts: Vec<String> = PASSAGES.iter().map(|p| p.to_string()).collect();
    let settings = PlanSettings {
        system_prefix_len: fitted.system_prefix_len,
        reuse: PassageReuse::Moved,
        recompute_percent: 0,
    };
    let mut cache = PassageCache::new(1 << 20);
    let planned = plan(qwen.tokenizer(), &sequence, settings, &texts, &mut cache).unwrap();
    assert_eq!(planned.len(), 3, "every passage is found");
    for passage in &planned {
        let tokens = passage.key.tokens();
        assert_eq!(&sequence.prompt()[passage.at..passage.at + tokens.len()], tokens);
    }
}
