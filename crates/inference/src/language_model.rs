//! A loaded chat model: weights, tokenizer, chat template and stop tokens.

use std::path::Path;
use std::time::{Duration, Instant};

use shopchat_core::{ChatMessage, Role};

use crate::error::{Error, Result};
use crate::model::{ModelConfig, Transformer};
use crate::template::{ChatTemplate, RenderOptions};
use crate::tokenizer::Tokenizer;
use shopchat_kernels::KernelSet;

/// Settings for loading a model.
#[derive(Debug, Clone, Default)]
pub struct LoadConfig {
    /// Longest conversation in tokens; `None` keeps the model's own limit.
    /// Smaller limits keep attention cheap and memory bounded.
    pub max_context: Option<usize>,
    /// The matrix kernels to run; `None` takes `SHOPCHAT_KERNELS`, or the
    /// fastest this CPU has. Every set computes the same bits.
    pub kernels: Option<KernelSet>,
}

/// Control tokens that end an assistant turn in the chat formats we know.
const END_OF_TURN_TOKENS: &[&str] = &["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "</s>"];

/// Fewest new tokens a prompt must leave room for before it is trimmed or
/// refused.
const MIN_ANSWER_TOKENS: usize = 16;

pub struct LanguageModel {
    pub(crate) transformer: Transformer,
    pub(crate) tokenizer: Tokenizer,
    template: ChatTemplate,
    stop_tokens: Vec<u32>,
    load_time: Duration,
}

/// A prompt that fits in the context, and what was done to make it fit.
#[derive(Debug, Clone)]
pub struct FittedPrompt {
    pub tokens: Vec<u32>,
    /// Oldest messages dropped to make room.
    pub dropped_messages: usize,
    /// The answer budget, lowered when the prompt leaves less room.
    pub max_tokens: usize,
    /// Length of the leading system turn in tokens (0 if none), a prefix
    /// that many conversations share and whose cache can be reused.
    pub system_prefix_len: usize,
}

impl LanguageModel {
    /// Loads a GGUF model. A `tokenizer.json` beside the file is used when
    /// present; otherwise the tokenizer is built from the GGUF metadata.
    pub fn load(path: &Path, config: &LoadConfig) -> Result<Self> {
        let started = Instant::now();
        if !path.is_file() {
            return Err(Error::BadModelFile {
                path: path.to_owned(),
                reason: "no such file".into(),
            });
        }
        let (transformer, content) = Transformer::load(path, config)?;
        let tokenizer = Tokenizer::for_gguf(path, &content)?;
        let token_text =
            |id: Option<u32>| id.map(|id| tokenizer.decode_special(id)).unwrap_or_default();
        let template_source =
            content.metadata.get("tokenizer.chat_template").and_then(|v| v.to_string().ok());
        let template = ChatTemplate::new(
            template_source.map(String::as_str),
            &token_text(tokenizer.bos()),
            &token_text(tokenizer.eos()),
        )?;
        let mut stop_tokens: Vec<u32> = tokenizer.eos().into_iter().collect();
        for text in END_OF_TURN_TOKENS {
            if let Some(id) = tokenizer.control_token(text) {
                if !stop_tokens.contains(&id) {
                    stop_tokens.push(id);
                }
            }
        }
        Ok(Self { transformer, tokenizer, template, stop_tokens, load_time: started.elapsed() })
    }

    pub fn config(&self) -> &ModelConfig {
        self.transformer.config()
    }

    pub fn context_length(&self) -> usize {
        self.transformer.config().context_length
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn transformer(&self) -> &Transformer {
        &self.transformer
    }

    pub fn load_time(&self) -> Duration {
        self.load_time
    }

    pub fn is_stop_token(&self, token: u32) -> bool {
        self.stop_tokens.contains(&token)
    }

    /// The prompt tokens for a conversation, ready for generation.
    pub fn encode_chat(&self, messages: &[ChatMessage]) -> Result<Vec<u32>> {
        self.template.encode(
            &self.tokenizer,
            messages,
            RenderOptions { add_generation_prompt: true },
        )
    }

    /// The prompt as text, for people debugging prompts.
    pub fn render_chat(&self, messages: &[ChatMessage]) -> Result<String> {
        self.template.render_text(messages, RenderOptions { add_generation_prompt: true })
    }

    /// Encodes a conversation so that it and `max_tokens` of answer fit in the
    /// context: the oldest turns after the system message are dropped first;
    /// the system message and the latest message are always kept. When even
    /// those leave less room than asked for, the answer budget shrinks; when
    /// they leave almost none, it is an error.
    pub fn fit_chat(&self, messages: &[ChatMessage], max_tokens: usize) -> Result<FittedPrompt> {
        let limit = self.context_length();
        let has_system = messages.first().is_some_and(|m| m.role == Role::System);
        let first_droppable = usize::from(has_system);
        let mut dropped = 0;
        loop {
            let kept: Vec<ChatMessage> = messages[..first_droppable]
                .iter()
                .chain(&messages[first_droppable + dropped..])
                .cloned()
                .collect();
            let tokens = self.encode_chat(&kept)?;
            let can_drop = first_droppable + dropped + 1 < messages.len();
            if tokens.len() + max_tokens <= limit || !can_drop {
                let room = limit.saturating_sub(tokens.len());
                if room < MIN_ANSWER_TOKENS.min(max_tokens) {
                    return Err(Error::ContextOverflow {
                        needed: tokens.len() + MIN_ANSWER_TOKENS.min(max_tokens),
                        limit,
                    });
                }
                let system_prefix_len =
                    if has_system { self.system_prefix_len(&kept[0], &tokens)? } else { 0 };
                return Ok(FittedPrompt {
                    tokens,
                    dropped_messages: dropped,
                    max_tokens: max_tokens.min(room),
                    system_prefix_len,
                });
            }
            // Drop a whole exchange at a time so that the conversation never
            // starts with an assistant message.
            dropped += 1;
            while first_droppable + dropped + 1 < messages.len()
                && messages[first_droppable + dropped].role == Role::Assistant
            {
                dropped += 1;
            }
        }
    }

    fn system_prefix_len(&self, system: &ChatMessage, full: &[u32]) -> Result<usize> {
        let prefix = self.template.encode(
            &self.tokenizer,
            std::slice::from_ref(system),
            RenderOptions { add_generation_prompt: false },
        )?;
        Ok(if full.starts_with(&prefix) { prefix.len() } else { 0 })
    }
}
