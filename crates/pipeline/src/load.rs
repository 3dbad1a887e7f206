//! Loading an [`Assistant`]: the shop's files, the index (built on first
//! start), the models and the prompt.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use shopchat_core::check::AllowedFacts;
use shopchat_core::extract::Aliases;
use shopchat_core::intent::IntentConfig;
use shopchat_core::prompt::PromptTemplate;
use shopchat_core::shop::{Date, OrderData, ShopProfile};
use shopchat_core::{EmbedderChoice, Language, TextEmbedder};
use shopchat_inference::{
    load_sentence_embedder, spawn_worker, GenerationRequest, LanguageModel, LoadConfig,
    ModelRegistry, Prompt, SamplingConfig, WorkerConfig,
};
use shopchat_retrieval::gate::GATE_FILE;
use shopchat_retrieval::{build_index, GateConfig, IndexHandle, KnowledgeBase};

use crate::assistant::{Assistant, ChatModel, ShopData};
use crate::embedders::{embedder_name, ByLanguage};
use crate::models::{manifest_languages, Assignment, ModelChoice};
use crate::query_bound::{BoundedQueries, QueryEmbeddingLimits};
use crate::texts::Texts;
use crate::{AnswerSettings, Error, Result};

/// Where everything is and which models answer.
#[derive(Debug, Clone)]
pub struct AssistantConfig {
    /// The shop's files: `shop.toml`, `faq/`, `policies/`, `orders.json`.
    pub faq_dir: PathBuf,
    /// Where the index lives (built here on first start).
    pub data_dir: PathBuf,
    pub models_dir: PathBuf,
    /// Which chat model answers each language. A model is a name from the
    /// manifest (`smollm2-135m`, `smollm2-135m:q8_0`) or a `.gguf` path; a
    /// bare name prefers its installed Q8_0 copy.
    pub models: ModelChoice,
    /// The sentence embedders for hybrid search: one name (`minilm-l6`,
    /// English only; `multilingual-e5-small`, both languages) or one per
    /// language (`en=minilm-l6,zh=multilingual-e5-small`, the default),
    /// each used only when installed.
    pub embedding_model: Option<String>,
    /// How many shoppers' questions are embedded at once, and how many wait.
    pub query_embedding: QueryEmbeddingLimits,
    /// A prompt template file; `None` is `prompts/default.toml`, built in.
    pub prompt_file: Option<PathBuf>,
    /// The secret of signed identities; `None` accepts none.
    pub identity_secret: Option<String>,
    pub worker: WorkerConfig,
    pub answer: AnswerSettings,
    /// Longest conversation the model sees, in tokens.
    pub max_context: usize,
}

impl AssistantConfig {
    /// The defaults: the demo shop in `faq/`, data in `data/`, models in
    /// `models/`, SmolLM2 for English and Qwen for Chinese when installed.
    pub fn standard() -> Self {
        Self {
            faq_dir: "faq".into(),
            data_dir: "data".into(),
            models_dir: "models".into(),
            models: ModelChoice::standard(),
            embedding_model: Some(DEFAULT_EMBEDDERS.into()),
            query_embedding: QueryEmbeddingLimits::default(),
            prompt_file: None,
            identity_secret: None,
            worker: WorkerConfig::standard(),
            answer: AnswerSettings::default(),
            max_context: 2048,
        }
    }
}

/// What happened to the index at load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexStatus {
    Opened {
        generation: u64,
    },
    /// There was none: it was built from the shop's files.
    Built {
        generation: u64,
        passages: usize,
    },
}

impl Assistant {
    /// Loads everything; the slow part is the models. Blocking.
    pub fn load(config: &AssistantConfig) -> Result<(Assistant, IndexStatus)> {
        let prompt = match &config.prompt_file {
            Some(path) => load_prompt(path)?,
            None => PromptTemplate::builtin_default().map_err(|e| Error::Config {
                path: "prompts/default.toml".into(),
                reason: e.to_string(),
            })?,
        };
        let registry = ModelRegistry::open(&config.models_dir)?;
        // Chosen first: a model that is unknown or not installed is reported
        // before the index build, which can take minutes.
        let chosen = choose_chat_models(&registry, config)?;
        let bounded = match &config.embedding_model {
            Some(name) => load_embedder(&registry, name)?
                .map(|inner| Arc::new(BoundedQueries::new(inner, config.query_embedding))),
            None => None,
        };
        let embedder = bounded.clone().map(|e| e as Arc<dyn TextEmbedder>);
        let shop = load_shop(&config.faq_dir, embedder.as_deref())?;

        // The generation to serve, or why the index must be built now.
        let usable = match IndexHandle::open(&config.data_dir, embedder.clone()) {
            // Vectors made by other embedders than the ones installed (the
            // defaults changed, or a model was fetched since): built again
            // rather than served by keywords alone until someone notices.
            Ok(index) if embedder.is_some() && !index.current().is_hybrid() => {
                Err("the index has no vectors from the installed embedders".to_owned())
            }
            Ok(index) => Ok(index.current().number()),
            Err(
                reason @ (shopchat_retrieval::Error::IndexMissing { .. }
                | shopchat_retrieval::Error::IndexOutdated { .. }),
            ) => Err(reason.to_string()),
            Err(error) => return Err(error.into()),
        };
        let status = match usable {
            Ok(generation) => IndexStatus::Opened { generation },
            Err(reason) => {
                tracing::info!(dir = %config.data_dir.display(), %reason, "building the index");
                let report = build_index(
                    &shop.knowledge,
                    &config.data_dir,
                    embedder.as_deref(),
                    &mut |_| {},
                )?;
                IndexStatus::Built { generation: report.generation, passages: report.passages }
            }
        };
        let index = IndexHandle::open(&config.data_dir, embedder.clone())?;

        // A language without a model (`none`) has every covered question
        // answered with the sentence of the passages that answers it.
        let models = load_chat_models(&registry, chosen, config)?;

        for model in &models {
            warm_up(model, &prompt);
        }

        let assistant = Assistant {
            data: RwLock::new(Arc::new(shop)),
            index,
            embedder: bounded,
            prompt: Arc::new(prompt),
            models,
            settings: config.answer.clone(),
            identity_secret: config.identity_secret.as_ref().map(|s| s.as_bytes().to_vec()),
            faq_dir: config.faq_dir.clone(),
            data_dir: config.data_dir.clone(),
        };
        Ok((assistant, status))
    }
}

/// Runs the system prompt through the model once, so that the worker's
/// cache of it is ready for the first shopper (it is the same for every
/// question; see prompts/default.toml). Failure only costs that speed-up.
fn warm_up(model: &ChatModel, prompt: &PromptTemplate) {
    let messages = vec![prompt.system_message(), shopchat_core::ChatMessage::user("Hello")];
    let request = GenerationRequest {
        prompt: Prompt::Chat(messages),
        sampling: SamplingConfig::greedy(1),
        conversation: None,
        passages: Vec::new(),
    };
    match model.worker.submit(request) {
        // Waited for on a thread of its own: `load` may be called from async
        // code, where blocking on the channel directly would panic.
        Ok(mut generation) => {
            let waited =
                std::thread::spawn(move || while generation.events.blocking_recv().is_some() {});
            let _ = waited.join();
        }
        Err(error) => tracing::warn!(%error, model = %model.name, "warm-up failed"),
    }
}

/// Reads a prompt template file.
pub fn load_prompt(path: &Path) -> Result<PromptTemplate> {
    let text = std::fs::read_to_string(path)
        .map_err(Error::io(format!("cannot read the prompt {}", path.display())))?;
    PromptTemplate::from_toml(&text)
        .map_err(|e| Error::Config { path: path.display().to_string(), reason: e.to_string() })
}

/// The shop's profile, knowledge base and orders from its directory.
pub(crate) fn load_shop(dir: &Path, embedder: Option<&dyn TextEmbedder>) -> Result<ShopData> {
    let knowledge = KnowledgeBase::load(dir)?;
    let profile_path = dir.join("shop.toml");
    let profile_text = std::fs::read_to_string(&profile_path)
        .map_err(Error::io(format!("cannot read {}", profile_path.display())))?;
    let shop_error =
        |source| Error::Shop { path: profile_path.display().to_string(), source: Box::new(source) };
    let profile = ShopProfile::from_toml(&profile_text).map_err(shop_error)?;
    let extras = ShopExtras::parse(&profile_text)
        .map_err(|reason| Error::Config { path: profile_path.display().to_string(), reason })?;

    let orders_path = dir.join("orders.json");
    let orders = if orders_path.exists() {
        let text = std::fs::read_to_string(&orders_path)
            .map_err(Error::io(format!("cannot read {}", orders_path.display())))?;
        OrderData::from_json(&text).map_err(|source| Error::Shop {
            path: orders_path.display().to_string(),
            source: Box::new(source),
        })?
    } else {
        OrderData { customers: Vec::new(), orders: Vec::new() }
    };

    // Orders are private: only the public texts may define aliases.
    let aliases = Aliases::from_texts(
        knowledge.passages().iter().filter(|p| p.kind.is_public()).map(|p| p.text.as_str()),
    );
    let gate = load_gate(dir, embedder.map(embedder_name).as_deref())?;
    let rules = Arc::new(crate::conversation::Rules {
        intents: extras.intents,
        texts: Texts::for_shop(&profile),
    });
    Ok(ShopData {
        gate,
        aliases: Arc::new(aliases),
        allowed: AllowedFacts::for_shop(&profile),
        rules,
        data_as_of: extras.data_as_of,
        profile,
        knowledge,
        orders,
    })
}

/// Settings in `shop.toml` beyond the profile core reads.
struct ShopExtras {
    intents: IntentConfig,
    data_as_of: Option<Date>,
}

impl ShopExtras {
    fn parse(text: &str) -> std::result::Result<Self, String> {
        let value: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        let get = |table: &str, key: &str| {
            value.get(table).and_then(|t| t.get(key)).and_then(|v| v.as_str()).map(str::to_owned)
        };
        // `[orders] number_pattern` (a regex) wins; otherwise `number_format`
        // such as "NW-1xxxxx", where each x is a digit.
        let pattern = match (get("orders", "number_pattern"), get("orders", "number_format")) {
            (Some(pattern), _) => pattern,
            (None, Some(format)) => format_to_pattern(&format),
            (None, None) => GENERIC_ORDER_NUMBER.to_owned(),
        };
        let intents = IntentConfig::new(&pattern).map_err(|e| e.to_string())?;
        let data_as_of = match get("shop", "data_as_of") {
            Some(date) => {
                Some(date.parse::<Date>().map_err(|e| format!("[shop] data_as_of `{date}`: {e}"))?)
            }
            None => None,
        };
        Ok(Self { intents, data_as_of })
    }
}

/// Order numbers of a shop that does not describe its own: letters, a dash,
/// digits.
const GENERIC_ORDER_NUMBER: &str = r"[A-Z]{1,4}-\d{4,10}";

fn format_to_pattern(format: &str) -> String {
    format
        .chars()
        .map(|c| match c {
            'x' | 'X' => r"\d".to_owned(),
            c => regex_escape(c),
        })
        .collect()
}

fn regex_escape(c: char) -> String {
    if r"\.+*?()|[]{}^$#&-~".contains(c) {
        format!("\\{c}")
    } else {
        c.to_string()
    }
}

/// The shop's relevance-gate rule for a server that embeds with
/// `embedding_model` (a name such as `multilingual-e5-small`; `None` when
/// search runs on BM25 alone): its `gate.toml`, or the built-in default when
/// it has none. A file that does not parse is an error, never silently the
/// default; hybrid rules fitted with another embedder are replaced by the
/// built-in ones, with a warning.
pub fn load_gate(shop_dir: &Path, embedding_model: Option<&str>) -> Result<GateConfig> {
    let gate_path = shop_dir.join(GATE_FILE);
    match std::fs::read_to_string(&gate_path) {
        Ok(text) => {
            let file = GateConfig::from_toml(&text, embedding_model).map_err(|e| {
                Error::Config { path: gate_path.display().to_string(), reason: e.to_string() }
            })?;
            if let Some(fitted) = &file.fitted_for_other_embedder {
                tracing::warn!(
                    "{} was fitted with the embedding model {fitted}, not {}: using the built-in \
                     rules for vector search; refit it with `shopchat eval gate --calibrate --write`",
                    gate_path.display(),
                    embedding_model.unwrap_or("none"),
                );
            }
            Ok(file.config)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            Ok(GateConfig::built_in(embedding_model))
        }
        Err(error) => Err(Error::io(format!("cannot read {}", gate_path.display()))(error)),
    }
}

/// The sentence embedders a server uses unless told otherwise: MiniLM for
/// English, multilingual-e5-small for Chinese (see [`crate::embedders`]).
pub const DEFAULT_EMBEDDERS: &str = "en=minilm-l6,zh=multilingual-e5-small";

/// The sentence embedders `spec` names (one name such as `minilm-l6` or
/// `multilingual-e5-small`, or `en=NAME,zh=NAME`), or `None` when none of
/// them is installed: a language whose model is missing is searched by
/// BM25 alone, with a warning naming the fetch command.
pub fn load_embedder(
    registry: &ModelRegistry,
    spec: &str,
) -> Result<Option<Arc<dyn TextEmbedder>>> {
    let choice = EmbedderChoice::parse(spec)
        .map_err(|reason| Error::Config { path: "the embedding model".into(), reason })?;
    let mut loaded: HashMap<&str, Option<Arc<dyn TextEmbedder>>> = HashMap::new();
    for name in choice.names() {
        loaded.insert(name, load_one_embedder(registry, name)?);
    }
    let of = |lang| choice.get(lang).and_then(|name| loaded[name].clone());
    let (en, zh) = (of(Language::En), of(Language::Zh));
    for lang in Language::ALL {
        if let Some(embedder) = of(lang).filter(|e| !e.supports(lang)) {
            tracing::warn!(
                "the embedding model {} does not read {}: searching {} by BM25 only",
                embedder_name(embedder.as_ref()),
                lang.code(),
                lang.code()
            );
        }
    }
    match (en, zh) {
        (None, None) => Ok(None),
        // One model for every language keeps its own id, so that an index
        // built with it stays valid.
        (Some(en), Some(zh)) if Arc::ptr_eq(&en, &zh) => Ok(Some(en)),
        (en, zh) => {
            let both = ByLanguage::new(en, zh)
                .map_err(|reason| Error::Config { path: "the embedding model".into(), reason })?;
            Ok(Some(Arc::new(both)))
        }
    }
}

/// The sentence embedder `name`, or `None` (with a warning) when it is not
/// installed.
fn load_one_embedder(
    registry: &ModelRegistry,
    name: &str,
) -> Result<Option<Arc<dyn TextEmbedder>>> {
    let dir = match registry.resolve_dir(name) {
        Ok(dir) => dir,
        Err(error) => {
            tracing::warn!("{error}; searching with BM25 only where it would be used");
            return Ok(None);
        }
    };
    let entry = registry.entry(name)?;
    let weights_sha = entry.files.first().map(|f| &f.sha256[..12]).unwrap_or("unknown");
    // The files say which kind it is (MiniLM's safetensors, E5's container).
    let languages = entry.languages.iter().filter_map(|tag| Language::from_tag(tag)).collect();
    let embedder = load_sentence_embedder(&dir, &format!("{name}@{weights_sha}"), languages)?;
    Ok(Some(embedder))
}

/// Which model answers which languages, and the models already loaded to
/// find that out.
struct ChosenModels {
    assignments: Vec<Assignment>,
    /// By spec: its resolved name and the model.
    loaded: HashMap<String, (String, LanguageModel)>,
}

/// Applies the configuration's choice. Only models whose languages nothing
/// but their architecture tells (a `.gguf` path) are loaded here.
fn choose_chat_models(registry: &ModelRegistry, config: &AssistantConfig) -> Result<ChosenModels> {
    let mut loaded = HashMap::new();
    let mut languages_of = |spec: &str| -> Result<Vec<Language>> {
        if let Some(languages) = manifest_languages(registry, spec)? {
            return Ok(languages);
        }
        let (name, model) = load_chat_model(registry, spec, config)?;
        let languages = model_languages(&model.config().architecture);
        loaded.insert(spec.to_owned(), (name, model));
        Ok(languages)
    };
    let assignments = config.models.assign(&mut languages_of)?;
    Ok(ChosenModels { assignments, loaded })
}

/// The chosen chat models, each behind its own worker and answering the
/// languages chosen for it; each is loaded once, however many languages it
/// answers.
fn load_chat_models(
    registry: &ModelRegistry,
    chosen: ChosenModels,
    config: &AssistantConfig,
) -> Result<Vec<ChatModel>> {
    let ChosenModels { assignments, mut loaded } = chosen;
    let mut models = Vec::new();
    for Assignment { spec, languages } in assignments {
        let (name, model) = match loaded.remove(&spec) {
            Some(found) => found,
            None => load_chat_model(registry, &spec, config)?,
        };
        let languages_text: Vec<&str> = languages.iter().map(|l| l.code()).collect();
        tracing::info!(model = %name, languages = ?languages_text, "chat model loaded");
        let worker = spawn_worker(Arc::new(model), config.worker.clone())?;
        models.push(ChatModel { name, worker, languages });
    }
    Ok(models)
}

/// Loads one chat model: its name as resolved (a bare name may become its
/// `:q8_0` copy) and the model.
fn load_chat_model(
    registry: &ModelRegistry,
    spec: &str,
    config: &AssistantConfig,
) -> Result<(String, LanguageModel)> {
    // A bare name prefers its re-quantized Q8_0 copy: same model, several
    // times faster on CPU (docs/performance.md).
    let bare = !spec.contains(':') && !spec.ends_with(".gguf");
    let preferred = bare.then(|| format!("{spec}:q8_0")).and_then(|preferred| {
        registry.resolve_chat_model(&preferred).ok().map(|path| (preferred, path))
    });
    let (name, path) = match preferred {
        Some(found) => found,
        None => (spec.to_owned(), registry.resolve_chat_model(spec)?),
    };
    let model = LanguageModel::load(
        &path,
        &LoadConfig { max_context: Some(config.max_context), ..LoadConfig::default() },
    )?;
    tracing::debug!(model = %name, path = %path.display(), "weights loaded");
    Ok((name, model))
}

/// The languages a model family writes well enough to answer shoppers in,
/// for a `.gguf` file the manifest does not describe. SmolLM2 (llama) was
/// trained on English only; Qwen2 is multilingual.
fn model_languages(architecture: &str) -> Vec<Language> {
    match architecture {
        "qwen2" => vec![Language::En, Language::Zh],
        _ => vec![Language::En],
    }
}
