//! Retrieval over the bundled `faq/` content, end to end: load, build an
//! index in a temporary data directory, open, search, rebuild, reload.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use shopchat_core::{EmbedError, Language, TextEmbedder};
use shopchat_retrieval::{
    build_index, BuildProgress, Error, Hit, IndexHandle, KnowledgeBase, PassageKind, SearchQuery,
    SignalsWanted, VerifiedCustomer,
};

fn faq_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../faq")
}

fn knowledge_base() -> KnowledgeBase {
    KnowledgeBase::load(&faq_dir()).expect("the bundled faq/ loads")
}

/// A data directory with a BM25-only index of the bundled content.
fn built() -> (tempfile::TempDir, IndexHandle) {
    let data = tempfile::tempdir().unwrap();
    build_index(&knowledge_base(), data.path(), None, &mut |_| {}).unwrap();
    let handle = IndexHandle::open(data.path(), None).unwrap();
    (data, handle)
}

fn search(handle: &IndexHandle, text: &str, lang: Option<Language>) -> Vec<Hit> {
    handle.search(&SearchQuery { text, lang, limit: 5 }).unwrap()
}

fn ids(hits: &[Hit]) -> Vec<&str> {
    hits.iter().map(|hit| hit.passage.id.as_str()).collect()
}

/// The place (1-based) of passage `id` among the hits.
fn rank_of(hits: &[Hit], id: &str) -> Option<usize> {
    hits.iter().find(|hit| hit.passage.id == id).map(|hit| hit.rank)
}

/// A stand-in for the sentence-embedding model, which this crate does not
/// own: words (and Chinese characters) hashed into a unit vector. Good
/// enough to test that vectors are stored, matched to their model and fused
/// with BM25; the real model is tested where it lives.
struct HashedWords {
    model_id: &'static str,
}

const DIMENSION: usize = 64;

impl TextEmbedder for HashedWords {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts.iter().map(|text| hashed(text)).collect())
    }
    fn dimension(&self) -> usize {
        DIMENSION
    }
    fn model_id(&self) -> &str {
        self.model_id
    }
}

fn hashed(text: &str) -> Vec<f32> {
    let mut vector = vec![0.0f32; DIMENSION];
    let lower = text.to_lowercase();
    let words = lower.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty());
    for word in words {
        // FNV-1a: deterministic across runs, unlike std's hasher.
        let hash = word
            .bytes()
            .fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3));
        vector[(hash % DIMENSION as u64) as usize] += 1.0;
    }
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::EPSILON);
    vector.iter().map(|x| x / norm).collect()
}

#[test]
fn english_and_chinese_questions_find_their_faq() {
    let (_data, handle) = built();
    // (question, language given by the caller, expected passage, worst rank)
    let check = |question: &str, lang: Option<Language>, expected: &str, worst: usize| {
        let hits = search(&handle, question, lang);
        let rank = rank_of(&hits, expected);
        assert!(
            rank.is_some_and(|rank| rank <= worst),
            "{question:?}: expected {expected} at rank <= {worst}, got {:?}",
            ids(&hits)
        );
    };
    check("how long does delivery take", None, "faq/shipping-times@en", 3);
    check("How long does delivery take?", Some(Language::En), "faq/shipping-times@en", 1);
    check("are earrings returnable", None, "policy/returns#non-returnable-items@en", 3);
    check("when will my refund arrive", None, "policy/returns#refunds@en", 1);
    check("can I pay with klarna", None, "faq/pay-later@en", 3);
    check("退货要在多少天内", None, "faq/return-window@zh", 3);
    check("do you ship to canada", None, "faq/shipping-countries@en", 3);
    check("退款需要多长时间？", None, "policy/returns#refunds@zh", 3);
    check("礼品卡会过期吗", None, "faq/gift-card-expiry@zh", 3);
    check("可以开发票吗", None, "faq/invoices@zh", 3);
    // The shopper's language wins over the words: a Chinese question about
    // "Klarna" is answered from Chinese passages only.
    let hits = search(&handle, "可以用 Klarna 分期付款吗", None);
    assert!(
        !hits.is_empty() && hits.iter().all(|hit| hit.passage.lang == Language::Zh),
        "{:?}",
        ids(&hits)
    );
}

#[test]
fn chinese_delivery_question_finds_a_chinese_shipping_passage() {
    let (_data, handle) = built();
    let hits = search(&handle, "多久能收到货", None);
    // BM25 alone matches words, and the FAQ asks "配送需要多长时间" where the
    // shopper says "多久…收到货": only a multilingual embedding model can
    // connect the two, so the best this test can ask of BM25 is a Chinese
    // shipping passage among the first five.
    let shipping = hits.iter().find(|hit| {
        hit.passage.lang == Language::Zh
            && hit.passage.tags.iter().any(|tag| tag == "shipping" || tag == "delivery")
    });
    assert!(shipping.is_some(), "{:?}", ids(&hits));
    assert!(hits.iter().all(|hit| hit.passage.lang == Language::Zh));
}

#[test]
fn policy_passages_carry_their_heading_path_and_anchor() {
    let kb = knowledge_base();
    let passage = |id: &str| {
        kb.passages().iter().find(|p| p.id == id).unwrap_or_else(|| panic!("no passage {id}"))
    };
    let refunds = passage("policy/returns#refunds@en");
    assert_eq!(refunds.kind, PassageKind::Policy);
    assert_eq!(refunds.heading_path, ["Returns and refunds policy", "Refunds"]);
    assert_eq!(refunds.title, "Returns and refunds policy > Refunds");
    assert_eq!(
        refunds.url.as_deref(),
        Some("https://northwind-threads.example/help/returns#refunds")
    );
    assert!(refunds.text.contains("within 5 business days"));

    let step = passage("policy/returns#step-2-get-your-return-label@en");
    assert_eq!(
        step.heading_path,
        ["Returns and refunds policy", "How to start a return", "Step 2: Get your return label"]
    );
    // The Chinese section shares the English anchor, as FAQ entries share ids.
    let refunds_zh = passage("policy/returns#refunds@zh");
    assert_eq!(refunds_zh.heading_path, ["退货与退款政策", "退款"]);
    assert_eq!(
        refunds_zh.url.as_deref(),
        Some("https://northwind-threads.example/help/returns?lang=zh#refunds")
    );

    let (_data, handle) = built();
    let hits = search(&handle, "refund to my original payment method", None);
    let hit = hits.iter().find(|hit| hit.passage.id == "policy/returns#refunds@en");
    assert_eq!(
        hit.map(|hit| hit.passage.title.as_str()),
        Some("Returns and refunds policy > Refunds")
    );
}

#[test]
fn the_bundled_content_loads_completely() {
    let kb = knowledge_base();
    let count = |kind: PassageKind, lang: Language| {
        kb.passages().iter().filter(|p| p.kind == kind && p.lang == lang).count()
    };
    let faq_files = std::fs::read_dir(faq_dir().join("faq/en")).unwrap().count();
    assert_eq!(count(PassageKind::Faq, Language::En), faq_files);
    assert_eq!(count(PassageKind::Faq, Language::Zh), faq_files);
    assert_eq!(count(PassageKind::Policy, Language::En), count(PassageKind::Policy, Language::Zh));
    let order = kb.passages().iter().find(|p| p.id == "order/NW-100231").unwrap();
    assert_eq!(order.customer_id.as_deref(), Some("C1001"));
    assert!(order.text.contains("Breton Striped Top (SKU TP-101, category tops"), "{}", order.text);
    assert!(order.text.contains("RM003710149GB"));
}

#[test]
fn orders_reach_only_their_verified_customer() {
    let kb = knowledge_base();
    let (_data, handle) = built();

    // Emma (C1001) placed NW-100231; NW-100274 belongs to C1022.
    let emma = kb.verify_order("NW-100231", "emma.clarke@example.com").expect("Emma's own order");
    assert_eq!(emma.customer_id(), "C1001");
    assert_eq!(kb.verify_order(" nw-100231", "  Emma.Clarke@EXAMPLE.com ").as_ref(), Some(&emma));
    assert_eq!(kb.verify_order("NW-100231", "liam.obrien@example.com"), None);
    assert_eq!(kb.verify_order("NW-100274", "emma.clarke@example.com"), None);
    assert_eq!(kb.verify_order("NW-100231", ""), None);

    // The general search never returns an order, whatever the text quotes.
    for text in [
        "NW-100231",
        "where is order NW-100274? my email is emma.clarke@example.com",
        "Breton Striped Top RM003710149GB delivered",
        "我的订单 NW-100231 到哪里了？",
        "order status shipped tracking number",
    ] {
        for lang in [None, Some(Language::En), Some(Language::Zh)] {
            let hits = handle.search(&SearchQuery { text, lang, limit: 100 }).unwrap();
            assert!(
                hits.iter().all(|hit| hit.passage.kind != PassageKind::Order),
                "{text:?} returned an order: {:?}",
                ids(&hits)
            );
        }
    }

    // Verified, Emma sees her orders only, even when she quotes another's.
    let orders_of = |customer: &VerifiedCustomer, text: &str| {
        let hits = handle.find_orders(customer, text, 100).unwrap();
        assert!(hits.iter().all(|hit| hit.passage.kind == PassageKind::Order));
        hits
    };
    let expected =
        kb.passages().iter().filter(|p| p.customer_id.as_deref() == Some("C1001")).count();
    for text in ["", "NW-100274", "where is NW-100274, email liam.obrien@example.com", "C1022"] {
        let hits = orders_of(&emma, text);
        assert_eq!(hits.len(), expected, "{text:?}: {:?}", ids(&hits));
        assert!(hits.iter().all(|hit| hit.passage.customer_id.as_deref() == Some("C1001")));
    }
    let hits = orders_of(&emma, "where is my order NW-100231?");
    assert_eq!(ids(&hits)[0], "order/NW-100231");
    assert_eq!(hits[0].rank, 1);
    assert!(hits[0].bm25.is_some());

    // A server-verified identity sees that customer's orders, and an unknown
    // one sees none.
    let other = VerifiedCustomer::from_signed_identity("C1022");
    let hits = orders_of(&other, "NW-100231");
    assert!(!hits.is_empty());
    assert!(hits.iter().all(|hit| hit.passage.customer_id.as_deref() == Some("C1022")));
    assert!(rank_of(&hits, "order/NW-100274").is_some());
    assert!(orders_of(&VerifiedCustomer::from_signed_identity("C9999"), "").is_empty());
    assert!(orders_of(&VerifiedCustomer::from_signed_identity(""), "").is_empty());
}

#[test]
fn imported_faqs_are_searchable_and_bad_lines_are_named() {
    let files = tempfile::tempdir().unwrap();
    let jsonl = files.path().join("shop-faq.jsonl");
    std::fs::write(
        &jsonl,
        concat!(
            r#"{"id": "gift-wrapping", "question": "Do you offer gift wrapping?", "answer": "Yes: choose gift wrapping at checkout for 3.50."}"#,
            "\n",
            r#"{"id": "gift-wrapping", "question": "可以礼品包装吗？", "answer": "可以，结账时选择礼品包装，收费 3.50。"}"#,
            "\n",
        ),
    )
    .unwrap();
    let csv = files.path().join("shop-faq.csv");
    std::fs::write(
        &csv,
        "id,question,answer,lang\n\
         loyalty-points,\"Do I earn points, and how?\",\"Yes: 1 point per euro, \"\"shown\"\" in your account.\",en\n",
    )
    .unwrap();

    let mut kb = knowledge_base();
    let before = kb.passages().len();
    assert_eq!(kb.import_faq(&jsonl).unwrap(), 2);
    assert_eq!(kb.import_faq(&csv).unwrap(), 1);
    assert_eq!(kb.passages().len(), before + 3);
    let loyalty = kb.passages().iter().find(|p| p.id == "faq/loyalty-points@en").unwrap();
    assert_eq!(loyalty.title, "Do I earn points, and how?");
    assert_eq!(loyalty.text, "Yes: 1 point per euro, \"shown\" in your account.");

    let data = tempfile::tempdir().unwrap();
    build_index(&kb, data.path(), None, &mut |_| {}).unwrap();
    let handle = IndexHandle::open(data.path(), None).unwrap();
    let hits = search(&handle, "gift wrapping", None);
    assert_eq!(ids(&hits)[0], "faq/gift-wrapping@en");
    let hits = search(&handle, "礼品包装", None);
    assert_eq!(ids(&hits)[0], "faq/gift-wrapping@zh");

    // Bad files: the error names the file and line, and nothing is added.
    let check = |name: &str, content: &str, expected: &str| {
        let path = files.path().join(name);
        std::fs::write(&path, content).unwrap();
        let mut kb = knowledge_base();
        let error = kb.import_faq(&path).unwrap_err();
        assert!(error.is_user_error(), "{error}");
        let message = error.to_string();
        assert!(message.contains(expected), "{message:?} should contain {expected:?}");
        assert_eq!(kb.passages().len(), before);
    };
    let good = r#"{"id": "a", "question": "Q?", "answer": "A."}"#;
    check("bad.jsonl", &format!("{good}\n{{\"id\": \"b\", \"question\": \"Q?\"\n"), "bad.jsonl:2:");
    check("bad.csv", "id,question,answer\na,Q?,A.\nb,\"unclosed,A.\nc,Q?\n", "bad.csv:");
    check("bad2.csv", "id,question,answer\na,Q?,A.\nb,Q?\n", "bad2.csv:3:");
    check(
        "clash.jsonl",
        r#"{"id": "shipping-times", "question": "Q?", "answer": "A.", "lang": "en"}"#,
        "clash.jsonl:1: passage id `faq/shipping-times@en` is used twice",
    );
}

#[test]
fn a_malformed_faq_file_is_a_user_error_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("faq/en")).unwrap();
    let path = dir.path().join("faq/en/x.md");
    std::fs::write(&path, "---\nid: x\ntitle: Why?\nlang en\n---\nBecause.\n").unwrap();
    let error = KnowledgeBase::load(dir.path()).unwrap_err();
    assert!(error.is_user_error());
    assert!(error.to_string().contains("faq/en/x.md:4: expected `key: value`"), "{error}");

    let error = KnowledgeBase::load(&dir.path().join("nowhere")).unwrap_err();
    assert!(matches!(error, Error::NoKnowledgeBase { .. }), "{error}");
}

#[test]
fn a_missing_or_corrupt_index_says_how_to_rebuild_it() {
    let check = |data: &Path, what: &str| {
        let error = IndexHandle::open(data, None).err().unwrap_or_else(|| panic!("{what}: opened"));
        assert!(error.is_user_error(), "{what}: {error}");
        assert!(error.to_string().contains("`shopchat index`"), "{what}: {error}");
    };
    let empty = tempfile::tempdir().unwrap();
    check(empty.path(), "no index at all");
    let error = IndexHandle::open(empty.path(), None).err().unwrap();
    assert!(matches!(error, Error::IndexMissing { .. }), "{error}");

    let (data, handle) = built();
    drop(handle);
    let index = data.path().join("index");
    let current = std::fs::read_to_string(index.join("CURRENT")).unwrap();
    assert_eq!(current, "gen-1\n");

    std::fs::write(index.join("CURRENT"), "gen-99\n").unwrap();
    check(data.path(), "CURRENT pointing nowhere");
    std::fs::write(index.join("CURRENT"), "garbage").unwrap();
    check(data.path(), "CURRENT unreadable");
    std::fs::write(index.join("CURRENT"), &current).unwrap();
    IndexHandle::open(data.path(), None).expect("restored");

    let meta = index.join("gen-1/tantivy/meta.json");
    let saved = std::fs::read(&meta).unwrap();
    std::fs::write(&meta, "{ not json").unwrap();
    check(data.path(), "tantivy's meta.json damaged");
    std::fs::write(&meta, &saved).unwrap();

    let manifest = index.join("gen-1/manifest.json");
    std::fs::remove_file(&manifest).unwrap();
    check(data.path(), "an incomplete generation");

    // A generation written by a version with another layout.
    build_index(&knowledge_base(), data.path(), None, &mut |_| {}).unwrap();
    let manifest = index.join("gen-2/manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let mut old: serde_json::Value = serde_json::from_str(&text).unwrap();
    old["format"] = serde_json::json!(1);
    std::fs::write(&manifest, old.to_string()).unwrap();
    check(data.path(), "an index of an older format");
    let error = IndexHandle::open(data.path(), None).err().unwrap();
    assert!(matches!(error, Error::IndexOutdated { found: 1, .. }), "{error}");

    // A vectors file that does not parse.
    let embedder = Arc::new(HashedWords { model_id: "hashed-words-v1" });
    build_index(&knowledge_base(), data.path(), Some(embedder.as_ref()), &mut |_| {}).unwrap();
    std::fs::write(index.join("gen-3/vectors.json"), "[1, 2").unwrap();
    check(data.path(), "vectors.json damaged");
}

#[test]
fn rebuilding_while_a_reader_holds_the_old_generation_then_reloading() {
    let data = tempfile::tempdir().unwrap();
    let mut kb = knowledge_base();
    let mut steps = Vec::new();
    let report = build_index(&kb, data.path(), None, &mut |step| steps.push(step)).unwrap();
    assert_eq!(report.generation, 1);
    assert_eq!(steps.last(), Some(&BuildProgress::Switched { generation: 1 }));
    let handle = Arc::new(IndexHandle::open(data.path(), None).unwrap());
    let old = handle.current();
    assert_eq!(old.number(), 1);
    assert!(!handle.reload().unwrap(), "nothing newer yet");

    // Searches keep running on other threads through rebuilds and reloads:
    // each must succeed and see a whole generation.
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (handle, stop) = (handle.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut searches = 0;
                while !stop.load(Ordering::Relaxed) && searches < 100_000 {
                    let generation = handle.current();
                    let query =
                        SearchQuery { text: "how long does delivery take", lang: None, limit: 3 };
                    let hits = generation.search(&query).expect("a search during a rebuild");
                    assert_eq!(hits[0].passage.id, "faq/shipping-times@en");
                    searches += 1;
                }
                searches
            })
        })
        .collect();

    let faq = data.path().join("new.jsonl");
    std::fs::write(&faq, r#"{"id": "pet-policy", "question": "Can I bring my dog to the store?", "answer": "Dogs are welcome in our Bristol store."}"#).unwrap();
    kb.import_faq(&faq).unwrap();
    assert_eq!(build_index(&kb, data.path(), None, &mut |_| {}).unwrap().generation, 2);
    assert!(handle.reload().unwrap());
    assert_eq!(handle.current().number(), 2);
    // A third build removes gen-1, which `old` still holds open.
    assert_eq!(build_index(&kb, data.path(), None, &mut |_| {}).unwrap().generation, 3);
    let mut left: Vec<String> = std::fs::read_dir(data.path().join("index"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["CURRENT", "LOCK", "gen-2", "gen-3"]);
    assert!(handle.reload().unwrap());

    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        assert!(reader.join().unwrap() > 0);
    }

    // The new generation has the new entry; the old one, still open,
    // answers as it did.
    let query = SearchQuery { text: "can I bring my dog", lang: None, limit: 3 };
    assert_eq!(ids(&handle.search(&query).unwrap())[0], "faq/pet-policy@en");
    assert!(ids(&old.search(&query).unwrap()).iter().all(|id| *id != "faq/pet-policy@en"));
    let query = SearchQuery { text: "how long does delivery take", lang: None, limit: 3 };
    assert_eq!(ids(&old.search(&query).unwrap())[0], "faq/shipping-times@en");
    assert_eq!(old.number(), 1);
}

#[test]
fn builds_at_once_wait_for_each_other_and_keep_each_others_generation() {
    let data = tempfile::tempdir().unwrap();
    let kb = Arc::new(knowledge_base());
    for _round in 0..3 {
        let builds: Vec<_> = (0..4)
            .map(|_| {
                let (kb, dir) = (kb.clone(), data.path().to_owned());
                std::thread::spawn(move || build_index(&kb, &dir, None, &mut |_| {}))
            })
            .collect();
        let mut generations: Vec<u64> = builds
            .into_iter()
            .map(|b| b.join().unwrap().expect("every build succeeds").generation)
            .collect();
        generations.sort_unstable();
        generations.dedup();
        assert_eq!(generations.len(), 4, "each build has its own generation");
        // The index opens on the newest generation, complete.
        let handle = IndexHandle::open(data.path(), None).unwrap();
        assert!(!search(&handle, "How long does delivery to the UK take?", None).is_empty());
    }
}

/// [`HashedWords`] for English alone, as all-MiniLM-L6-v2 is.
struct EnglishOnly(HashedWords);

impl TextEmbedder for EnglishOnly {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.0.embed(texts)
    }
    fn dimension(&self) -> usize {
        DIMENSION
    }
    fn model_id(&self) -> &str {
        self.0.model_id()
    }
    fn supports(&self, lang: Language) -> bool {
        lang == Language::En
    }
}

#[test]
fn passages_in_a_language_the_embedder_cannot_read_get_no_vector() {
    let kb = knowledge_base();
    let data = tempfile::tempdir().unwrap();
    let embedder = Arc::new(EnglishOnly(HashedWords { model_id: "hashed-english-v1" }));
    let report = build_index(&kb, data.path(), Some(embedder.as_ref()), &mut |_| {}).unwrap();
    let english = kb
        .passages()
        .iter()
        .filter(|p| p.kind != PassageKind::Order && p.lang == Language::En)
        .count();
    assert!(english > 0 && english < kb.passages().len());
    assert_eq!(report.embedded, english, "English public passages only");
    let handle = IndexHandle::open(data.path(), Some(embedder)).unwrap();
    let chinese =
        handle.search(&SearchQuery { text: "礼品卡会过期吗", lang: None, limit: 5 }).unwrap();
    assert!(!chinese.is_empty() && chinese.iter().all(|h| h.cosine.is_none()), "{chinese:?}");
    let english =
        handle.search(&SearchQuery { text: "do gift cards expire", lang: None, limit: 5 }).unwrap();
    assert!(english.iter().any(|h| h.cosine.is_some()), "{english:?}");
}

#[test]
fn hybrid_search_fuses_bm25_with_vectors_of_the_same_model() {
    let kb = knowledge_base();
    let data = tempfile::tempdir().unwrap();
    let embedder = Arc::new(HashedWords { model_id: "hashed-words-v1" });
    let mut embedded = Vec::new();
    let report = build_index(&kb, data.path(), Some(embedder.as_ref()), &mut |step| {
        if let BuildProgress::Embedding { done, total } = step {
            embedded.push((done, total));
        }
    })
    .unwrap();
    let public = kb.passages().iter().filter(|p| p.kind != PassageKind::Order).count();
    assert_eq!(report.embedded, public, "every public passage and no order");
    assert_eq!(report.model_id.as_deref(), Some("hashed-words-v1"));
    assert_eq!(embedded.last(), Some(&(public, public)));

    let handle = IndexHandle::open(data.path(), Some(embedder.clone())).unwrap();
    assert!(handle.current().is_hybrid());
    let hits = handle
        .search(&SearchQuery { text: "how long does delivery take", lang: None, limit: 10 })
        .unwrap();
    // The stand-in embedder is too crude to judge relevance, so only the
    // mechanics are checked: BM25's best stays in view, with both scores.
    let best = hits.iter().find(|hit| hit.passage.id == "faq/shipping-times@en").unwrap();
    assert_eq!(best.bm25.map(|r| r.rank), Some(1));
    assert!(best.cosine.is_some());
    for (i, hit) in hits.iter().enumerate() {
        assert_eq!(hit.rank, i + 1);
        // A policy section's places count one lower than an FAQ entry's.
        let lower = if hit.passage.kind == PassageKind::Policy { 1.0 } else { 0.0 };
        let expected: f32 = [hit.bm25, hit.cosine]
            .iter()
            .flatten()
            .map(|r| 1.0 / (60.0 + lower + r.rank as f32))
            .sum();
        assert!((hit.fused - expected).abs() < 1e-6, "{hit:?}");
        // Fused order, except that an FAQ asking the shopper's own question
        // ("How long does delivery take?") goes first.
        assert!(i <= 1 || hits[i - 1].fused >= hit.fused);
        assert_eq!(hit.passage.lang, Language::En);
    }
    assert_eq!(hits[0].passage.title, "How long does delivery take?");
    assert!(hits.iter().any(|hit| hit.bm25.is_some() && hit.cosine.is_some()));
    // Vectors reach passages that share no indexed term with the query.
    let hits = handle.search(&SearchQuery { text: "deliver", lang: None, limit: 50 }).unwrap();
    assert!(hits.iter().any(|hit| hit.bm25.is_none() && hit.cosine.is_some()));
    assert!(hits.iter().all(|hit| hit.passage.kind != PassageKind::Order));

    // Another model's vectors are never compared with these: BM25 only.
    let other = Arc::new(HashedWords { model_id: "hashed-words-v2" });
    let handle = IndexHandle::open(data.path(), Some(other)).unwrap();
    assert!(!handle.current().is_hybrid());
    let hits = handle
        .search(&SearchQuery { text: "how long does delivery take", lang: None, limit: 10 })
        .unwrap();
    assert!(hits.iter().all(|hit| hit.cosine.is_none() && hit.bm25.is_some()));
    // No embedder at all: BM25 only too.
    assert!(!IndexHandle::open(data.path(), None).unwrap().current().is_hybrid());
}

#[test]
fn the_query_without_its_unknown_words_is_embedded_only_when_wanted() {
    let kb = knowledge_base();
    let data = tempfile::tempdir().unwrap();
    let embedder = Arc::new(HashedWords { model_id: "hashed-words-v1" });
    build_index(&kb, data.path(), Some(embedder.as_ref()), &mut |_| {}).unwrap();
    let handle = IndexHandle::open(data.path(), Some(embedder)).unwrap();
    let wanted = SignalsWanted { cosine_without_unknown: true };
    let signals = |text: &str, wanted: SignalsWanted| {
        handle.query_signals(&SearchQuery { text, lang: None, limit: 5 }, wanted).unwrap()
    };
    let best_cosine = |text: &str| {
        let hits = handle.search(&SearchQuery { text, lang: None, limit: 100 }).unwrap();
        hits.iter().filter_map(|hit| hit.cosine.map(|c| c.score)).reduce(f32::max).unwrap()
    };

    // "zorblax" is a word no passage uses: it is cut, and what is left is
    // embedded as if the shopper had asked that.
    let with_unknown = signals("how long does zorblax delivery take", wanted);
    assert!(with_unknown.unknown_share > 0.0, "{with_unknown:?}");
    let rest = with_unknown.cosine_without_unknown.expect("measured");
    assert!((rest - best_cosine("how long does delivery take")).abs() < 1e-6);
    // Not wanted: no second embedding.
    let unwanted = signals("how long does zorblax delivery take", SignalsWanted::default());
    assert_eq!(unwanted.cosine_without_unknown, None);
    assert_eq!(unwanted.unknown_share, with_unknown.unknown_share);
    // No unknown word, or nothing but unknown words: nothing to compare.
    assert_eq!(signals("how long does delivery take", wanted).cosine_without_unknown, None);
    assert_eq!(signals("zorblax quuxle", wanted).cosine_without_unknown, None);
}

/// jieba cuts "品卡" as a word no passage holds (the passages hold 礼品卡,
/// cut 礼品 + 礼品卡): only the character bigrams can match it.
#[test]
fn chinese_matches_across_the_segmenters_cuts() {
    let (_data, handle) = built();
    let hits = search(&handle, "品卡", Some(Language::Zh));
    assert!(!hits.is_empty(), "no hit");
    assert!(
        hits.iter().take(3).all(|hit| hit.passage.id.starts_with("faq/gift-card")),
        "{:?}",
        ids(&hits)
    );
    assert!(
        hits.iter().all(|hit| hit.coverage == 0.0),
        "matched by words after all: {:?}",
        ids(&hits)
    );
    // English is untouched: bigrams are Chinese only.
    assert!(search(&handle, "ift car", Some(Language::En)).is_empty());
}
