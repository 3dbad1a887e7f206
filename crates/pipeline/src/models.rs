//! Which chat model answers which language.
//!
//! A shop chooses per language (`[models] en = …`, `zh = …` in
//! shopchat.toml); a model given on the command line wins for every
//! language it writes; the main model (`[models] chat`, the harness's
//! `--model`) answers the languages left that it writes, and a second model
//! (`extra`) those left after it, when installed. `none` anywhere means the
//! extractive answer: the sentence of the passages that answers, quoted.
//!
//! The choice is made from the manifest's `languages` of each model before
//! any weights are loaded (only a `.gguf` path, which only its architecture
//! describes, is loaded to find out), so a model that would answer no
//! language is never loaded, and one chosen for two languages is loaded once.

use std::collections::HashMap;

use shopchat_core::Language;
use shopchat_inference::ModelRegistry;

use crate::{Error, Result};

/// The value that chooses no model: the extractive answer.
pub const NO_MODEL: &str = "none";

/// Which chat model answers each language; see the module documentation
/// for the order in which these are consulted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelChoice {
    /// Given on the command line (`serve --model`): answers every language
    /// it writes, whatever the settings file chose; `none`: no model at all.
    pub command_line: Option<String>,
    /// Chosen per language (`[models] en`, `zh`). Must be installed; `none`
    /// answers that language from its passages.
    pub by_language: HashMap<Language, String>,
    /// The main model: a manifest name, `name:q8_0` or a `.gguf` path. It
    /// answers the languages not chosen above that it writes; `none`: those
    /// get no model at all (not even `extra`).
    pub chat: String,
    /// For the languages still without a model, used only when installed.
    pub extra: Option<String>,
}

impl ModelChoice {
    /// Today's defaults: SmolLM2 for English, Qwen 0.5B for Chinese when it
    /// is installed (else the extractive answer).
    pub fn standard() -> Self {
        Self {
            command_line: None,
            by_language: HashMap::new(),
            chat: "smollm2-135m".into(),
            extra: Some("qwen2.5-coder-0.5b".into()),
        }
    }

    /// The main model and the second one, as the harness's `--model` and
    /// `--extra-model` give them (`none` for either).
    pub fn main_and_extra(chat: &str, extra: &str) -> Self {
        Self {
            chat: chat.to_owned(),
            extra: Some(extra.to_owned()).filter(|e| !is_none(e)),
            ..Self::standard()
        }
    }

    /// Which model answers which languages. `languages_of` says which
    /// languages a model writes, and fails when it is unknown or not
    /// installed; for `extra` that failure only means "not this one".
    pub fn assign(
        &self,
        languages_of: &mut dyn FnMut(&str) -> Result<Vec<Language>>,
    ) -> Result<Vec<Assignment>> {
        let mut assignments: Vec<Assignment> = Vec::new();
        for lang in Language::ALL {
            if let Some(spec) = self.model_for(lang, languages_of)? {
                match assignments.iter_mut().find(|a| a.spec == spec) {
                    Some(assignment) => assignment.languages.push(lang),
                    None => assignments.push(Assignment { spec, languages: vec![lang] }),
                }
            }
        }
        Ok(assignments)
    }

    fn model_for(
        &self,
        lang: Language,
        languages_of: &mut dyn FnMut(&str) -> Result<Vec<Language>>,
    ) -> Result<Option<String>> {
        let mut writes = |spec: &str, setting: &str| -> Result<bool> {
            languages_of(spec).map(|languages| languages.contains(&lang)).map_err(|source| {
                Error::ModelChoice {
                    setting: setting.to_owned(),
                    spec: spec.to_owned(),
                    source: Box::new(source),
                }
            })
        };
        if let Some(spec) = &self.command_line {
            if is_none(spec) {
                return Ok(None);
            }
            if writes(spec, "--model")? {
                return Ok(Some(spec.clone()));
            }
        }
        if let Some(spec) = self.by_language.get(&lang) {
            if is_none(spec) {
                return Ok(None);
            }
            // A shop may know better than the manifest (a fine-tuned file);
            // it gets its choice, with a warning.
            if !writes(spec, &format!("[models] {}", lang.code()))? {
                tracing::warn!(model = %spec, lang = lang.code(), "the chosen model is not known to write this language");
            }
            return Ok(Some(spec.clone()));
        }
        if is_none(&self.chat) {
            return Ok(None);
        }
        if writes(&self.chat, "the chat model")? {
            return Ok(Some(self.chat.clone()));
        }
        if let Some(extra) = self.extra.as_ref().filter(|e| !is_none(e)) {
            match languages_of(extra) {
                Ok(languages) if languages.contains(&lang) => return Ok(Some(extra.clone())),
                Ok(_) => {}
                Err(Error::Inference(e @ shopchat_inference::Error::NotInstalled { .. })) => {
                    tracing::info!("{e}; answering {} from passage text", lang.code());
                }
                Err(source) => {
                    return Err(Error::ModelChoice {
                        setting: "the extra model".into(),
                        spec: extra.clone(),
                        source: Box::new(source),
                    })
                }
            }
        }
        Ok(None)
    }
}

/// One model to load and the languages it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub spec: String,
    pub languages: Vec<Language>,
}

/// `none` (or an empty string, as older settings files say it).
pub fn is_none(spec: &str) -> bool {
    spec.is_empty() || spec.eq_ignore_ascii_case(NO_MODEL)
}

/// The languages a manifest model writes, checking that it is installed
/// (a bare name may be installed as its Q8_0 copy only). `None` for a
/// `.gguf` path or a model whose entry does not say: then only its
/// architecture tells, once loaded.
pub fn manifest_languages(registry: &ModelRegistry, spec: &str) -> Result<Option<Vec<Language>>> {
    let bare = !spec.contains(':') && !spec.ends_with(".gguf");
    let preferred = format!("{spec}:q8_0");
    if !(bare && registry.resolve_chat_model(&preferred).is_ok()) {
        registry.resolve_chat_model(spec)?;
    }
    if spec.ends_with(".gguf") {
        return Ok(None);
    }
    let name = spec.split_once(':').map_or(spec, |(name, _)| name);
    let languages: Vec<Language> =
        registry.entry(name)?.languages.iter().filter_map(|tag| Language::from_tag(tag)).collect();
    Ok(Some(languages).filter(|l| !l.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A models directory where the given models look installed: sparse
    /// files of the pinned size, never loaded (choosing reads only the
    /// manifest and the file names).
    fn installed(names: &[&str]) -> (tempfile::TempDir, ModelRegistry) {
        let dir = tempfile::tempdir().unwrap();
        let registry = ModelRegistry::open(dir.path()).unwrap();
        for name in names {
            let (name, variant) = name.split_once(':').map_or((*name, None), |(n, v)| (n, Some(v)));
            let file = &registry.entry(name).unwrap().files[0];
            let model_dir = dir.path().join(name);
            std::fs::create_dir_all(&model_dir).unwrap();
            let path = match variant {
                Some(v) => format!("{}.{v}.gguf", file.path.trim_end_matches(".gguf")),
                None => file.path.clone(),
            };
            let out = std::fs::File::create(model_dir.join(path)).unwrap();
            out.set_len(file.size).unwrap();
        }
        let registry = ModelRegistry::open(dir.path()).unwrap();
        (dir, registry)
    }

    fn assign(choice: &ModelChoice, registry: &ModelRegistry) -> Result<Vec<(String, String)>> {
        let mut languages_of =
            |spec: &str| Ok(manifest_languages(registry, spec)?.unwrap_or_default());
        Ok(choice
            .assign(&mut languages_of)?
            .into_iter()
            .flat_map(|a| {
                a.languages.into_iter().map(move |l| (l.code().to_owned(), a.spec.clone()))
            })
            .collect())
    }

    fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected.iter().map(|(l, m)| (l.to_string(), m.to_string())).collect()
    }

    #[test]
    fn the_defaults_are_smollm2_for_english_and_qwen_for_chinese_when_installed() {
        let (_dir, registry) = installed(&["smollm2-135m", "qwen2.5-coder-0.5b"]);
        let choice = ModelChoice::standard();
        assert_eq!(
            assign(&choice, &registry).unwrap(),
            pairs(&[("en", "smollm2-135m"), ("zh", "qwen2.5-coder-0.5b")])
        );
        // Without Qwen, Chinese is answered from passage text.
        let (_dir, registry) = installed(&["smollm2-135m"]);
        assert_eq!(assign(&choice, &registry).unwrap(), pairs(&[("en", "smollm2-135m")]));
    }

    #[test]
    fn a_multilingual_main_model_answers_both_and_the_extra_is_not_loaded() {
        let (_dir, registry) = installed(&["qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b"]);
        let choice = ModelChoice::main_and_extra("qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b");
        let got = choice.assign(&mut |s| Ok(manifest_languages(&registry, s)?.unwrap())).unwrap();
        assert_eq!(
            got,
            [Assignment {
                spec: "qwen2.5-coder-1.5b".into(),
                languages: vec![Language::En, Language::Zh]
            }]
        );
    }

    #[test]
    fn per_language_choices_win_over_the_main_model_and_none_means_extractive() {
        let (_dir, registry) = installed(&["smollm2-135m:q8_0", "qwen2.5-coder-1.5b"]);
        let mut choice = ModelChoice::standard();
        choice.by_language.insert(Language::En, "smollm2-135m:q8_0".into());
        choice.by_language.insert(Language::Zh, "qwen2.5-coder-1.5b".into());
        assert_eq!(
            assign(&choice, &registry).unwrap(),
            pairs(&[("en", "smollm2-135m:q8_0"), ("zh", "qwen2.5-coder-1.5b")])
        );
        choice.by_language.insert(Language::Zh, "none".into());
        assert_eq!(assign(&choice, &registry).unwrap(), pairs(&[("en", "smollm2-135m:q8_0")]));
    }

    #[test]
    fn the_command_line_model_wins_for_the_languages_it_writes() {
        let (_dir, registry) = installed(&["smollm2-135m", "qwen2.5-coder-0.5b"]);
        let mut choice = ModelChoice::standard();
        choice.by_language.insert(Language::En, "qwen2.5-coder-0.5b".into());
        choice.by_language.insert(Language::Zh, "none".into());
        // SmolLM2 writes English only: Chinese keeps the file's choice.
        choice.command_line = Some("smollm2-135m".into());
        assert_eq!(assign(&choice, &registry).unwrap(), pairs(&[("en", "smollm2-135m")]));
        choice.command_line = Some("qwen2.5-coder-0.5b".into());
        assert_eq!(
            assign(&choice, &registry).unwrap(),
            pairs(&[("en", "qwen2.5-coder-0.5b"), ("zh", "qwen2.5-coder-0.5b")])
        );
        choice.command_line = Some("none".into());
        assert_eq!(assign(&choice, &registry).unwrap(), pairs(&[]));
    }

    #[test]
    fn a_chosen_model_that_is_missing_or_unknown_is_an_error_naming_the_fix() {
        let (_dir, registry) = installed(&["smollm2-135m"]);
        let mut choice = ModelChoice::standard();
        choice.by_language.insert(Language::Zh, "qwen2.5-coder-1.5b".into());
        let message = assign(&choice, &registry).unwrap_err().to_string();
        assert!(message.contains("[models] zh"), "{message}");
        assert!(message.contains("shopchat models fetch qwen2.5-coder-1.5b"), "{message}");

        choice.by_language.insert(Language::Zh, "qwen-9000".into());
        let message = assign(&choice, &registry).unwrap_err().to_string();
        assert!(message.contains("unknown model `qwen-9000`"), "{message}");
        assert!(message.contains("shopchat models list"), "{message}");

        // A missing variant names the command that writes it.
        choice.by_language.insert(Language::Zh, "none".into());
        choice.by_language.insert(Language::En, "smollm2-135m:q8_0".into());
        let message = assign(&choice, &registry).unwrap_err().to_string();
        assert!(
            message.contains("shopchat models fetch smollm2-135m --quantize q8_0"),
            "{message}"
        );
    }
}
