//! What the query's own words say about whether the knowledge base can
//! answer it (unknown words, an asked contact detail, an instruction
//! override), and how much of the query a passage covers.

use super::*;

/// Which of the costlier query signals to measure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignalsWanted {
    /// [`QuerySignals::cosine_without_unknown`]: one more query embedding
    /// when the query holds unknown words.
    pub cosine_without_unknown: bool,
}

/// Signals from the query alone.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QuerySignals {
    /// The share of the query's weight (idf) carried by words that no
    /// passage in its language uses: "CEO" in "the CEO's phone number".
    pub unknown_share: f32,
    /// The best cosine similarity of the query with those unknown words cut
    /// out; `None` without vectors, without unknown words, or when nothing
    /// is left. Set against the whole query's best cosine it tells the two
    /// kinds of unknown word apart: casual wording ("my stuff", "swap")
    /// leaves the match as it was, while a subject the shop does not cover
    /// ("the weather", "bitcoin") pulls the question away from every passage.
    #[serde(default)]
    pub cosine_without_unknown: Option<f32>,
    /// The contact detail the question asks for (a phone number, an e-mail
    /// address), which only a passage holding one can give.
    #[serde(default)]
    pub asked_contact: Option<FactKind>,
    /// The question asks for a person's own phone or e-mail (the CEO's),
    /// which no shop gives.
    #[serde(default)]
    pub personal_contact: bool,
    /// The message tries to replace the assistant's instructions ("ignore
    /// your instructions", chat-template markers).
    #[serde(default)]
    pub overrides_instructions: bool,
    /// Whether an unknown word is written as a name ("H&M", "Tesla"): the
    /// question is about a business or a thing the shop never mentions,
    /// not worded casually.
    #[serde(default)]
    pub unknown_names: bool,
}

impl Generation {
    /// What the query's words say about whether the knowledge base can
    /// answer it, before looking at any passage.
    pub fn query_signals(
        &self,
        query: &SearchQuery,
        wanted: SignalsWanted,
    ) -> Result<QuerySignals> {
        let lang = query.lang.unwrap_or_else(|| Language::detect(query.text));
        let searcher = self.reader.searcher();
        let tokens = query_tokens(&self.index, lang, query.text)
            .map_err(Error::index("cannot analyze the query"))?;
        let terms = distinct_terms(&tokens);
        let weights = self.word_weights(&searcher, lang, &tokens);
        let field = self.fields.text(lang);
        // A word is unknown when none of its terms is (see `words`).
        let unknown_words: Vec<&(Vec<String>, f32)> = weights
            .iter()
            .filter(|(word, _)| !word.iter().any(|term| self.knows(&searcher, lang, field, term)))
            .collect();
        let unknown_terms: Vec<&str> = terms
            .iter()
            .filter(|term| unknown_words.iter().any(|(word, _)| word.contains(term)))
            .map(String::as_str)
            .collect();
        let total: f32 = weights.iter().map(|(_, w)| w).sum();
        let unknown: f32 = unknown_words.iter().map(|(_, w)| w).sum();
        let cosine_without_unknown = if unknown_terms.is_empty() || !wanted.cosine_without_unknown {
            None
        } else {
            let is_unknown = |term: &String| unknown_terms.contains(&term.as_str());
            let unknown_spans =
                tokens.iter().filter(|(term, _)| is_unknown(term)).map(|(_, span)| span.clone());
            let known_spans =
                tokens.iter().filter(|(term, _)| !is_unknown(term)).map(|(_, span)| span.clone());
            let rest = without_spans(query.text, unknown_spans, known_spans);
            if rest.chars().any(char::is_alphanumeric) {
                self.cosine_ranking(lang, &rest)?.first().map(|(cosine, _)| *cosine)
            } else {
                None
            }
        };
        let unknown_names = tokens.iter().any(|(term, span)| {
            unknown_terms.contains(&term.as_str()) && is_written_as_name(query.text, span.clone())
        });
        let contact = AnswerRules::of(lang).contact_asked(query.text);
        Ok(QuerySignals {
            unknown_names,
            unknown_share: if total > 0.0 { unknown / total } else { 1.0 },
            cosine_without_unknown,
            asked_contact: contact.detail,
            personal_contact: contact.personal,
            overrides_instructions: AnswerRules::of(lang).overrides_instructions(query.text),
        })
    }

    /// Whether any passage uses `term`. A long English word one typo away
    /// from a used one counts as known: shoppers misspell ("shiping"), and a
    /// typo must not make a question look like one the shop cannot answer.
    fn knows(
        &self,
        searcher: &Searcher,
        lang: Language,
        field: tantivy::schema::Field,
        term: &str,
    ) -> bool {
        let indexed = tantivy::Term::from_field_text(field, term);
        if searcher.doc_freq(&indexed).unwrap_or(0) > 0 {
            return true;
        }
        if lang != Language::En || term.chars().count() < 5 {
            return false;
        }
        let fuzzy = tantivy::query::FuzzyTermQuery::new(indexed, 1, true);
        searcher.search(&fuzzy, &tantivy::collector::Count).unwrap_or(0) > 0
    }

    /// Each query word (see [`words`]) with its weight: the largest inverse
    /// document frequency (BM25's idf) among its terms in the query
    /// language's passages.
    pub(super) fn word_weights(
        &self,
        searcher: &Searcher,
        lang: Language,
        tokens: &[(String, std::ops::Range<usize>)],
    ) -> Vec<(Vec<String>, f32)> {
        let field = self.fields.text(lang);
        let total = searcher.num_docs() as f32;
        let idf = |term: &String| {
            let frequency =
                searcher.doc_freq(&tantivy::Term::from_field_text(field, term)).unwrap_or(0) as f32;
            (1.0 + (total - frequency + 0.5) / (frequency + 0.5)).ln()
        };
        words(tokens)
            .into_iter()
            .map(|word| {
                let weight = word.iter().map(idf).fold(0.0, f32::max);
                (word, weight)
            })
            .collect()
    }

    /// The weighted share of the query's words the passage uses.
    pub(super) fn coverage(
        &self,
        lang: Language,
        passage: &Passage,
        weights: &[(Vec<String>, f32)],
    ) -> Result<f32> {
        let total: f32 = weights.iter().map(|(_, w)| w).sum();
        if total <= 0.0 {
            return Ok(0.0);
        }
        let text = format!("{}\n{}", passage.title, passage.text);
        let present = query_terms(&self.index, lang, &text)
            .map_err(Error::index("cannot analyze a passage"))?;
        let covered: f32 = weights
            .iter()
            .filter(|(word, _)| word.iter().any(|term| present.contains(term)))
            .map(|(_, w)| w)
            .sum();
        Ok(covered / total)
    }
}
