//! Opening an index generation and searching it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use shopchat_core::answer_rules::AnswerRules;
use shopchat_core::check::FactKind;
use shopchat_core::{EmbedError, Language, TextEmbedder};
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, ConstScoreQuery, Occur, Query};
use tantivy::schema::Value as _;
use tantivy::{DocAddress, Index, IndexReader, ReloadPolicy, Searcher, TantivyDocument};

use crate::fusion::{fuse, fused_score, rrf, Standing, POLICY_PLACES};
use crate::layout;
use crate::orders::VerifiedCustomer;
use crate::passage::{Passage, PassageKind};
use crate::query_text::{
    distinct_terms, is_written_as_name, query_bigrams, same_words, without_spans, words,
};
use crate::schema::{query_terms, query_tokens, register_analyzers, Fields};
use crate::vectors::{normalized, VectorFile};
use crate::{Error, Result};
use shopchat_core::embed::dot;

mod signals;

pub use signals::{QuerySignals, SignalsWanted};

/// What a Chinese character bigram match weighs against a word match. Tried
/// 0, 0.25, 0.5, 1 and 2 on both shops' Chinese gate questions and suites
/// (`docs/quality.md`): 0.5 lifts the shop we did not write the most while
/// keeping the demo shop's suite green; at 1 it starts to outweigh words.
const BIGRAM_WEIGHT: f32 = 0.5;

/// How deep each ranking goes before fusion. A passage below this in both
/// lists is too weak a match to be worth showing.
const CANDIDATES: usize = 50;

/// How many of the best fused passages are looked at for an FAQ whose
/// question is the shopper's own.
const TITLE_SCAN: usize = 10;

/// More orders than any one customer has; order lookups rank all of theirs.
const MAX_ORDERS: usize = 1000;

/// How many places lower a passage kind counts in each ranking
/// ([`POLICY_PLACES`]), when there are two. With BM25 alone a place is all
/// there is to go by, and a place in one list is a larger step than in
/// two: with three, "when will my refund arrive" went to the gift card
/// refund entry before the refund section.
fn places_lower(kind: PassageKind) -> usize {
    match kind {
        PassageKind::Policy => POLICY_PLACES,
        _ => 0,
    }
}

/// A general search: public passages only.
#[derive(Debug, Clone, Copy)]
pub struct SearchQuery<'a> {
    pub text: &'a str,
    /// The language to answer in; detected from `text` when `None`.
    pub lang: Option<Language>,
    pub limit: usize,
}

/// A score and the 1-based place it earned in one ranking.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ranked {
    pub score: f32,
    pub rank: usize,
}

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub passage: Passage,
    /// 1-based place in the returned list.
    pub rank: usize,
    /// The reciprocal rank fusion score the list is sorted by, a policy
    /// section's places counted lower than an FAQ entry's.
    pub fused: f32,
    /// The BM25 score, if the passage matched a query term.
    pub bm25: Option<Ranked>,
    /// The cosine similarity, if the vector search ranked the passage.
    pub cosine: Option<Ranked>,
    /// How much of the query the passage covers: the query terms it
    /// contains, weighted by their inverse document frequency, over all the
    /// query's terms (0 to 1). A term the knowledge base never uses weighs
    /// the most, so a question about something the shop never mentions
    /// scores low even when its common words match.
    pub coverage: f32,
}

/// The index a server searches, reloadable while in use.
///
/// Searches run on a snapshot ([`IndexHandle::current`]): a reload swaps in
/// a new generation for later searches while earlier ones finish on the old
/// one, which stays open as long as anyone holds it.
pub struct IndexHandle {
    data_dir: PathBuf,
    embedder: Option<Arc<dyn TextEmbedder>>,
    /// A lock around an `Arc` rather than around the generation: it is held
    /// only to clone or replace the pointer, never during a search, so a
    /// reload never waits for searches nor they for it.
    current: RwLock<Arc<Generation>>,
}

impl IndexHandle {
    /// Opens the generation `data_dir/index/CURRENT` points to. With an
    /// embedder whose model made the stored vectors, searches are hybrid;
    /// otherwise BM25 only, with a warning saying why.
    pub fn open(data_dir: &Path, embedder: Option<Arc<dyn TextEmbedder>>) -> Result<IndexHandle> {
        let generation = layout::read_current(data_dir)?;
        let opened = Generation::open(data_dir, generation, embedder.clone())?;
        Ok(IndexHandle {
            data_dir: data_dir.to_owned(),
            embedder,
            current: RwLock::new(Arc::new(opened)),
        })
    }

    /// The generation new searches use. Holding it keeps it usable however
    /// many reloads happen meanwhile.
    pub fn current(&self) -> Arc<Generation> {
        // The lock guards a single pointer that is replaced whole, so a
        // panic elsewhere cannot have left it half-written.
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Switches to the generation `CURRENT` now points to, if it is newer.
    /// Returns whether it switched. On error the current generation stays.
    pub fn reload(&self) -> Result<bool> {
        let newest = layout::read_current(&self.data_dir)?;
        if newest <= self.current().number {
            return Ok(false);
        }
        // Opened outside the lock: searches go on meanwhile.
        let opened = Arc::new(Generation::open(&self.data_dir, newest, self.embedder.clone())?);
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        // Another reload may have switched to an even newer one meanwhile.
        if opened.number <= current.number {
            return Ok(false);
        }
        *current = opened;
        Ok(true)
    }

    /// [`Generation::query_signals`] on the current generation.
    pub fn query_signals(
        &self,
        query: &SearchQuery,
        wanted: SignalsWanted,
    ) -> Result<QuerySignals> {
        self.current().query_signals(query, wanted)
    }

    /// [`Generation::search`] on the current generation.
    pub fn search(&self, query: &SearchQuery) -> Result<Vec<Hit>> {
        self.current().search(query)
    }

    /// [`Generation::find_orders`] on the current generation.
    pub fn find_orders(
        &self,
        customer: &VerifiedCustomer,
        text: &str,
        limit: usize,
    ) -> Result<Vec<Hit>> {
        self.current().find_orders(customer, text, limit)
    }
}

/// One immutable index generation, open for searching.
pub struct Generation {
    number: u64,
    dir: PathBuf,
    index: Index,
    /// One reader for the generation's lifetime and a new searcher per
    /// search, as tantivy recommends. The index never changes after it is
    /// built, so the reader never reloads.
    reader: IndexReader,
    fields: Fields,
    passages: usize,
    /// Present only when searches are hybrid.
    vectors: Option<Vectors>,
}

/// The stored vectors and the embedder that made them.
struct Vectors {
    embedder: Arc<dyn TextEmbedder>,
    entries: Vec<VectorEntry>,
}

struct VectorEntry {
    /// Stable for the generation's lifetime: its segments never change.
    address: DocAddress,
    /// Taken from the indexed passage, not from the vectors file, so that
    /// a stray vector can never make a private passage eligible.
    kind: PassageKind,
    lang: Language,
    vector: Vec<f32>,
}

impl Generation {
    fn open(
        data_dir: &Path,
        number: u64,
        embedder: Option<Arc<dyn TextEmbedder>>,
    ) -> Result<Generation> {
        let dir = layout::generation_dir(data_dir, number);
        if !dir.is_dir() {
            let reason = format!("CURRENT points to gen-{number}, which does not exist");
            return Err(Error::corrupt(&layout::index_dir(data_dir), reason));
        }
        let manifest = layout::read_manifest(&dir)?;
        let corrupt = |reason: String| Error::corrupt(&dir, reason);
        let index = Index::open_in_dir(layout::tantivy_dir(&dir))
            .map_err(|e| corrupt(format!("tantivy cannot open it: {e}")))?;
        register_analyzers(&index);
        let fields = Fields::of(&index.schema()).map_err(corrupt)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e| corrupt(format!("tantivy cannot read it: {e}")))?;
        let mut generation = Generation {
            number,
            dir: dir.clone(),
            index,
            reader,
            fields,
            passages: manifest.passages,
            vectors: None,
        };
        // Jieba loads its dictionary on first use; paying that here keeps it
        // out of the first shopper's wait.
        query_terms(&generation.index, Language::Zh, "预热")
            .map_err(Error::index("cannot load the Chinese analyzer"))?;

        let stored = match &manifest.model_id {
            Some(_) => Some(VectorFile::read(&layout::vectors_path(&dir)).map_err(corrupt)?),
            None => None,
        };
        match (embedder, stored) {
            (Some(embedder), Some(stored))
                if stored.model_id == embedder.model_id()
                    && stored.dimension == embedder.dimension() =>
            {
                let entries = generation.vector_entries(stored)?;
                generation.vectors = Some(Vectors { embedder, entries });
            }
            (Some(embedder), Some(stored)) => tracing::warn!(
                stored = %stored.model_id,
                given = %embedder.model_id(),
                "the index's vectors come from another embedding model: searching with BM25 \
                 only until `{}` is run again",
                crate::REBUILD_COMMAND
            ),
            (Some(_), None) => tracing::warn!(
                "the index was built without an embedding model: searching with BM25 only \
                 until `{}` is run with one",
                crate::REBUILD_COMMAND
            ),
            (None, _) => tracing::warn!("no embedding model given: searching with BM25 only"),
        }
        Ok(generation)
    }

    /// Attaches each stored vector to its indexed passage.
    fn vector_entries(&self, stored: VectorFile) -> Result<Vec<VectorEntry>> {
        let searcher = self.reader.searcher();
        let mut entries = Vec::with_capacity(stored.ids.len());
        for (id, vector) in stored.ids.into_iter().zip(stored.vectors) {
            let query = self.fields.exact(self.fields.id, &id);
            let found = searcher
                .search(&query, &TopDocs::with_limit(1).order_by_score())
                .map_err(Error::index("cannot look up a passage id"))?;
            let Some(&(_, address)) = found.first() else {
                let reason = format!("the vectors file names `{id}`, which is not indexed");
                return Err(Error::corrupt(&self.dir, reason));
            };
            let passage = self.passage(&searcher, address)?;
            let vector = normalized(vector);
            entries.push(VectorEntry { address, kind: passage.kind, lang: passage.lang, vector });
        }
        Ok(entries)
    }

    /// The generation's number, as in `gen-<n>`.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// How many passages the generation holds, orders included.
    pub fn passage_count(&self) -> usize {
        self.passages
    }

    /// True when searches combine BM25 with vectors.
    pub fn is_hybrid(&self) -> bool {
        self.vectors.is_some()
    }

    /// The FAQ and policy passages that best answer `query.text` in the
    /// query's language: BM25 and, when hybrid, cosine similarity, fused by
    /// reciprocal rank. **Never returns an order passage**: the query itself
    /// admits only public kinds, and the results are checked again.
    pub fn search(&self, query: &SearchQuery) -> Result<Vec<Hit>> {
        if query.limit == 0 || query.text.trim().is_empty() {
            return Ok(Vec::new());
        }
        let lang = query.lang.unwrap_or_else(|| Language::detect(query.text));
        let searcher = self.reader.searcher();
        let tokens = query_tokens(&self.index, lang, query.text)
            .map_err(Error::index("cannot analyze the query"))?;
        let terms = distinct_terms(&tokens);

        let bm25 = if terms.is_empty() {
            Vec::new()
        } else {
            let f = &self.fields;
            let public: Vec<(Occur, Box<dyn Query>)> = PassageKind::PUBLIC
                .iter()
                .map(|kind| (Occur::Should, f.exact(f.kind, kind.as_str())))
                .collect();
            let filter = BooleanQuery::new(vec![
                (Occur::Must, Box::new(BooleanQuery::new(public)) as Box<dyn Query>),
                (Occur::Must, f.exact(f.lang, lang.code())),
            ]);
            let words = f.any_term(lang, &terms);
            let matching = match lang {
                Language::En => words,
                Language::Zh => {
                    let bigrams = query_bigrams(query.text, &tokens);
                    Box::new(BooleanQuery::new(vec![
                        (Occur::Should, words),
                        (Occur::Should, f.any_bigram(&bigrams, BIGRAM_WEIGHT)),
                    ]))
                }
            };
            let query = BooleanQuery::new(vec![
                (Occur::Must, matching),
                // Filters only: they must match but add nothing to the score.
                (Occur::Must, Box::new(ConstScoreQuery::new(Box::new(filter), 0.0))),
            ]);
            searcher
                .search(&query, &TopDocs::with_limit(CANDIDATES).order_by_score())
                .map_err(Error::index("cannot search"))?
        };
        let cosine = self.cosine_ranking(lang, query.text)?;

        let query_words = words(&tokens);
        let wanted = query.limit.max(TITLE_SCAN);
        let mut found = Vec::with_capacity(wanted);
        for (address, bm25, cosine) in fuse(&bm25, &cosine) {
            let passage = self.passage(&searcher, address)?;
            if !passage.kind.is_public() {
                // The query excludes these, so this is a bug; refusing the
                // passage is the one safe answer.
                tracing::error!(id = %passage.id, "the general search matched a private passage");
                continue;
            }
            found.push((passage, bm25, cosine));
            if found.len() == wanted {
                break;
            }
        }
        // The passage kind is known only once a passage is read, so the
        // policy offset reorders the best few fetched (at least ten), which
        // is where it changes what a shopper is shown. So does the tie-break
        // by closeness, which needs each passage's coverage.
        let hybrid = !cosine.is_empty();
        let weights = self.word_weights(&searcher, lang, &tokens);
        let mut hits = Vec::with_capacity(found.len());
        for (passage, bm25, cosine) in found {
            let lower = if hybrid { places_lower(passage.kind) } else { 0 };
            let fused = fused_score(bm25, cosine, lower);
            let coverage = self.coverage(lang, &passage, &weights)?;
            hits.push(Hit { passage, rank: 0, fused, bm25, cosine, coverage });
        }
        // Closeness adds the two measures of fit, meaning and words: a tie
        // goes to the passage nearer in meaning that also holds more of
        // the question's words.
        let standing = |hit: &Hit| {
            let closeness = hit.cosine.map_or(0.0, |c| c.score) + hit.coverage;
            Standing::new(hit.fused, closeness, hit.bm25, hit.cosine)
        };
        hits.sort_by(|x, y| standing(x).best_first(&standing(y)));
        // A shopper who asks an FAQ's own question, in other function words
        // ("怎么退货？" for "如何退货？", "How do I return an item?" for "How can
        // I return an item?"), wants that entry, however close its
        // neighbours score: it goes first.
        let same_question = hits.iter().position(|hit| {
            hit.passage.kind == PassageKind::Faq
                && query_terms(&self.index, lang, &hit.passage.title)
                    .is_ok_and(|title| same_words(&query_words, &title))
        });
        if let Some(at) = same_question {
            let first = hits.remove(at);
            hits.insert(0, first);
        }
        hits.truncate(query.limit);
        for (i, hit) in hits.iter_mut().enumerate() {
            hit.rank = i + 1;
        }
        Ok(hits)
    }

    /// The orders of `customer`, best match for `text` first (an order
    /// number in the text puts that order on top; with no match, the most
    /// recent order numbers come first). **Only that customer's orders**: the
    /// query filters on the customer id, and the results are checked again.
    pub fn find_orders(
        &self,
        customer: &VerifiedCustomer,
        text: &str,
        limit: usize,
    ) -> Result<Vec<Hit>> {
        let customer_id = customer.customer_id();
        if limit == 0 || customer_id.is_empty() {
            return Ok(Vec::new());
        }
        let f = &self.fields;
        // Order passages are written in English, so the query is analyzed
        // as English whatever the shopper's language: numbers, carriers and
        // product names match either way.
        let terms = query_terms(&self.index, Language::En, text)
            .map_err(Error::index("cannot analyze the query"))?;
        let filter = BooleanQuery::new(vec![
            (Occur::Must, f.exact(f.kind, PassageKind::Order.as_str())),
            (Occur::Must, f.exact(f.customer_id, customer_id)),
        ]);
        let mut clauses: Vec<(Occur, Box<dyn Query>)> =
            vec![(Occur::Must, Box::new(ConstScoreQuery::new(Box::new(filter), 0.0)))];
        if !terms.is_empty() {
            clauses.push((Occur::Should, f.any_term(Language::En, &terms)));
        }
        let searcher = self.reader.searcher();
        let found = searcher
            .search(&BooleanQuery::new(clauses), &TopDocs::with_limit(MAX_ORDERS).order_by_score())
            .map_err(Error::index("cannot search orders"))?;

        let mut orders = Vec::with_capacity(found.len());
        for (score, address) in found {
            let passage = self.passage(&searcher, address)?;
            if passage.kind != PassageKind::Order
                || passage.customer_id.as_deref() != Some(customer_id)
            {
                tracing::error!(id = %passage.id, "an order lookup matched another passage");
                continue;
            }
            orders.push((score, passage));
        }
        // Order numbers grow over time, so among equal scores the highest
        // number is the most recent order.
        orders.sort_by(|(a, pa), (b, pb)| b.total_cmp(a).then_with(|| pb.id.cmp(&pa.id)));
        Ok(orders
            .into_iter()
            .take(limit)
            .enumerate()
            .map(|(i, (score, passage))| Hit {
                passage,
                rank: i + 1,
                fused: rrf(i + 1),
                bm25: (score > 0.0).then_some(Ranked { score, rank: i + 1 }),
                cosine: None,
                // Orders are looked up, not judged by the relevance gate.
                coverage: 1.0,
            })
            .collect())
    }

    /// Public passages of `lang` by cosine similarity to the query, best
    /// first; empty when not hybrid. A busy embedder is an error (the
    /// shopper is told `busy`, as for a full model queue); a failing one
    /// leaves the search to BM25, which still answers.
    fn cosine_ranking(&self, lang: Language, text: &str) -> Result<Vec<(f32, DocAddress)>> {
        let Some(vectors) = self.vectors.as_ref().filter(|v| v.embedder.supports(lang)) else {
            return Ok(Vec::new());
        };
        let query = match vectors.embedder.embed_queries(lang, &[text]) {
            Ok(mut embedded) if embedded.len() == 1 => embedded.remove(0),
            Ok(embedded) => {
                tracing::warn!(
                    count = embedded.len(),
                    "the embedder returned no single vector: BM25 only"
                );
                return Ok(Vec::new());
            }
            Err(busy @ EmbedError::Busy { .. }) => return Err(busy.into()),
            Err(error) => {
                tracing::warn!(%error, "cannot embed the query: BM25 only");
                return Ok(Vec::new());
            }
        };
        // Stored vectors are unit length (made so at load), so after scaling
        // the query a dot product is the cosine.
        let query = normalized(query);
        let mut ranking: Vec<(f32, DocAddress)> = vectors
            .entries
            .iter()
            .filter(|entry| entry.kind.is_public() && entry.lang == lang)
            .map(|entry| (dot(&query, &entry.vector), entry.address))
            .collect();
        let best_first = |a: &(f32, DocAddress), b: &(f32, DocAddress)| {
            b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1))
        };
        // Only the best few are needed: partition, then sort just those.
        if ranking.len() > CANDIDATES {
            ranking.select_nth_unstable_by(CANDIDATES - 1, best_first);
            ranking.truncate(CANDIDATES);
        }
        ranking.sort_by(best_first);
        Ok(ranking)
    }

    fn passage(&self, searcher: &Searcher, address: DocAddress) -> Result<Passage> {
        let doc: TantivyDocument =
            searcher.doc(address).map_err(Error::index("cannot read a stored passage"))?;
        let json = doc.get_first(self.fields.passage).and_then(|value| value.as_str());
        json.and_then(|json| serde_json::from_str(json).ok())
            .ok_or_else(|| Error::corrupt(&self.dir, "a stored passage is missing or unreadable"))
    }
}
