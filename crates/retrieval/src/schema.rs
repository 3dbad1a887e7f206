//! The tantivy schema and the analyzers of each language.
//!
//! A tantivy field has exactly one analyzer, so each language gets its own
//! pair of fields (`title_en`/`text_en` with `en_stem`, `title_zh`/`text_zh`
//! with jieba). A passage fills only the pair of its own language.

use std::ops::Range;

use shopchat_core::Language;
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, STORED, STRING,
};
use tantivy::tokenizer::{
    LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
    TokenStream,
};
use tantivy::{Index, Term};

/// Tantivy's built-in English analyzer: simple tokens, lower case, Snowball
/// stemming.
const EN_ANALYZER: &str = "en_stem";
/// Registered by [`register_analyzers`]; tantivy does not store analyzers
/// with an index, so every opened index needs them registered again.
const ZH_ANALYZER: &str = "zh_jieba";
/// Chinese character bigrams ([`crate::bigrams`]), for the `_zh_bigram` fields.
const ZH_BIGRAM_ANALYZER: &str = "zh_bigram";
/// Query-side analyzers: the same tokens as the index analyzers, minus the
/// words of a question that say nothing about its topic ("how do I", "我的",
/// "可以吗"). Passages are indexed whole, so BM25 lengths stay true; only
/// the query drops them, as Lucene's search analyzers do.
const EN_QUERY_ANALYZER: &str = "en_query";
const ZH_QUERY_ANALYZER: &str = "zh_query";

/// Words dropped from a query, one per line, `#` comments: data, so that a
/// language's list is edited without touching code.
const EN_STOP_WORDS: &str = include_str!("../rules/query-stop-words.en.txt");
const ZH_STOP_WORDS: &str = include_str!("../rules/query-stop-words.zh.txt");

fn word_list(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// A title term weighs this much more than a body term: a question that
/// matches the shopper's words is a better sign than an answer mentioning them.
const TITLE_BOOST: f32 = 2.0;

/// The fields of the index. Everything a hit returns comes from the stored
/// `passage` (the [`crate::Passage`] as JSON); the other fields are only
/// indexed, for matching and filtering.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields {
    pub id: Field,
    pub kind: Field,
    pub lang: Field,
    pub customer_id: Field,
    pub title_en: Field,
    pub text_en: Field,
    pub title_zh: Field,
    pub text_zh: Field,
    pub title_zh_bigram: Field,
    pub text_zh_bigram: Field,
    pub passage: Field,
}

impl Fields {
    pub fn schema() -> (Schema, Fields) {
        let mut builder = Schema::builder();
        let text = |analyzer: &str| {
            // Frequencies for BM25; no positions, since we never run phrase
            // queries.
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(analyzer)
                    .set_index_option(IndexRecordOption::WithFreqs),
            )
        };
        let fields = Fields {
            id: builder.add_text_field("id", STRING),
            kind: builder.add_text_field("kind", STRING),
            lang: builder.add_text_field("lang", STRING),
            customer_id: builder.add_text_field("customer_id", STRING),
            title_en: builder.add_text_field("title_en", text(EN_ANALYZER)),
            text_en: builder.add_text_field("text_en", text(EN_ANALYZER)),
            title_zh: builder.add_text_field("title_zh", text(ZH_ANALYZER)),
            text_zh: builder.add_text_field("text_zh", text(ZH_ANALYZER)),
            title_zh_bigram: builder.add_text_field("title_zh_bigram", text(ZH_BIGRAM_ANALYZER)),
            text_zh_bigram: builder.add_text_field("text_zh_bigram", text(ZH_BIGRAM_ANALYZER)),
            passage: builder.add_text_field("passage", STORED),
        };
        (builder.build(), fields)
    }

    /// The fields of an index on disk, or which one it lacks (an index from
    /// an older version of this crate).
    pub fn of(schema: &Schema) -> Result<Fields, String> {
        let field = |name: &str| {
            schema.get_field(name).map_err(|_| format!("the index has no `{name}` field"))
        };
        Ok(Fields {
            id: field("id")?,
            kind: field("kind")?,
            lang: field("lang")?,
            customer_id: field("customer_id")?,
            title_en: field("title_en")?,
            text_en: field("text_en")?,
            title_zh: field("title_zh")?,
            text_zh: field("text_zh")?,
            title_zh_bigram: field("title_zh_bigram")?,
            text_zh_bigram: field("text_zh_bigram")?,
            passage: field("passage")?,
        })
    }

    pub fn title(&self, lang: Language) -> Field {
        match lang {
            Language::En => self.title_en,
            Language::Zh => self.title_zh,
        }
    }

    pub fn text(&self, lang: Language) -> Field {
        match lang {
            Language::En => self.text_en,
            Language::Zh => self.text_zh,
        }
    }

    /// Matches `value` exactly in an untokenized field.
    pub fn exact(&self, field: Field, value: &str) -> Box<dyn Query> {
        Box::new(TermQuery::new(Term::from_field_text(field, value), IndexRecordOption::Basic))
    }

    /// Any of `terms` in the title or text of `lang`. Built from terms rather
    /// than with tantivy's query parser so that a shopper's `"`, `:` or `-`
    /// is just text, never query syntax.
    pub fn any_term(&self, lang: Language, terms: &[String]) -> Box<dyn Query> {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::with_capacity(terms.len() * 2);
        for term in terms {
            let title = TermQuery::new(
                Term::from_field_text(self.title(lang), term),
                IndexRecordOption::WithFreqs,
            );
            let text = TermQuery::new(
                Term::from_field_text(self.text(lang), term),
                IndexRecordOption::WithFreqs,
            );
            clauses.push((Occur::Should, Box::new(BoostQuery::new(Box::new(title), TITLE_BOOST))));
            clauses.push((Occur::Should, Box::new(text)));
        }
        Box::new(BooleanQuery::new(clauses))
    }

    /// Any of the Chinese character `bigrams` in a title or text, each
    /// match weighing `weight` of a word match.
    pub fn any_bigram(&self, bigrams: &[String], weight: f32) -> Box<dyn Query> {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::with_capacity(bigrams.len() * 2);
        for bigram in bigrams {
            for (field, boost) in
                [(self.title_zh_bigram, TITLE_BOOST * weight), (self.text_zh_bigram, weight)]
            {
                let query = TermQuery::new(
                    Term::from_field_text(field, bigram),
                    IndexRecordOption::WithFreqs,
                );
                clauses.push((Occur::Should, Box::new(BoostQuery::new(Box::new(query), boost))));
            }
        }
        Box::new(BooleanQuery::new(clauses))
    }
}

pub(crate) fn register_analyzers(index: &Index) {
    let stop_words = |list: &str| StopWordFilter::remove(word_list(list));
    let jieba = || {
        TextAnalyzer::builder(tantivy_jieba::JiebaTokenizer::new())
            .filter(RemoveLongFilter::limit(40))
            .filter(LowerCaser)
    };
    let tokenizers = index.tokenizers();
    tokenizers.register(ZH_ANALYZER, jieba().build());
    tokenizers.register(ZH_BIGRAM_ANALYZER, crate::bigrams::HanBigramTokenizer);
    tokenizers.register(ZH_QUERY_ANALYZER, jieba().filter(stop_words(ZH_STOP_WORDS)).build());
    // `en_stem` with stop words removed before stemming.
    let en_query = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(stop_words(EN_STOP_WORDS))
        .filter(Stemmer::new(tantivy::tokenizer::Language::English))
        .build();
    tokenizers.register(EN_QUERY_ANALYZER, en_query);
}

/// The distinct terms of `text` as the fields of `lang` index them. Tokens
/// without a letter or digit (jieba keeps punctuation and spaces as tokens)
/// are dropped: they match nearly every passage and mean nothing.
pub(crate) fn query_terms(
    index: &Index,
    lang: Language,
    text: &str,
) -> tantivy::Result<Vec<String>> {
    Ok(crate::query_text::distinct_terms(&query_tokens(index, lang, text)?))
}

/// Every term of `text` as the query analyzer of `lang` makes it, with the
/// byte range of the words it came from (a term may occur more than once).
pub(crate) fn query_tokens(
    index: &Index,
    lang: Language,
    text: &str,
) -> tantivy::Result<Vec<(String, Range<usize>)>> {
    let name = match lang {
        Language::En => EN_QUERY_ANALYZER,
        Language::Zh => ZH_QUERY_ANALYZER,
    };
    let mut analyzer = index.tokenizers().get(name).ok_or_else(|| {
        tantivy::TantivyError::SchemaError(format!("the `{name}` analyzer is not registered"))
    })?;
    let mut stream = analyzer.token_stream(text);
    let mut tokens = Vec::new();
    while stream.advance() {
        let token = stream.token();
        if token.text.chars().any(char::is_alphanumeric) {
            tokens.push((token.text.clone(), token.offset_from..token.offset_to));
        }
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(lang: Language, text: &str) -> Vec<String> {
        let (schema, _) = Fields::schema();
        let index = Index::create_in_ram(schema);
        register_analyzers(&index);
        query_terms(&index, lang, text).unwrap()
    }

    #[test]
    fn english_is_stemmed_and_chinese_segmented() {
        assert_eq!(terms(Language::En, "Refunds: returning items?"), ["refund", "return", "item"]);
        assert_eq!(terms(Language::En, "How do I return my order, please?"), ["return", "order"]);
        assert_eq!(terms(Language::Zh, "我可以退款吗？"), ["退款"]);
        let zh = terms(Language::Zh, "退款需要多长时间？");
        assert!(zh.contains(&"退款".to_owned()), "{zh:?}");
        assert!(zh.contains(&"时间".to_owned()), "{zh:?}");
        assert!(!zh.iter().any(|t| t == "？"), "{zh:?}");
    }

    #[test]
    fn casual_fillers_say_nothing_about_the_topic() {
        assert_eq!(terms(Language::En, "how can I pay for my stuff?"), ["pay"]);
        assert_eq!(terms(Language::En, "hey, wanna know how to send it back"), ["send", "back"]);
        assert_eq!(terms(Language::En, "my package has not arrived"), ["packag", "not", "arriv"]);
        assert_eq!(terms(Language::Zh, "亲，想问一下东西怎么退？"), ["退"]);
    }

    #[test]
    fn the_word_lists_hold_words_not_comments() {
        for list in [EN_STOP_WORDS, ZH_STOP_WORDS] {
            let words = word_list(list);
            assert!(words.len() > 30);
            assert!(words.iter().all(|w| !w.starts_with('#') && w.trim() == w && !w.is_empty()));
        }
    }
}
