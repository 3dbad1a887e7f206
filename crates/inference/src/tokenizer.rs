//! Tokenizers built from GGUF metadata, and UTF-8-safe streaming of output.
//!
//! The GGUF files we ship have no `tokenizer.json`, but their metadata holds
//! everything a byte-level BPE needs: the vocabulary, the merges, the token
//! types, and the name of the pre-tokenizer (`tokenizer.ggml.pre`). We build
//! the equivalent Hugging Face `tokenizer.json` in memory and load it with the
//! `tokenizers` crate, so encoding matches llama.cpp token for token.
//!
//! Untrusted text (a shopper's message, a passage) is encoded with special-
//! token parsing switched off: typing `<|im_end|>` produces the ordinary
//! tokens for those characters, never the control token that ends a turn.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file;
use serde_json::{json, Value};

use crate::error::{Error, Result};

/// GGUF token types (llama.cpp's `llama_token_type`).
const TOKEN_TYPE_CONTROL: i32 = 3;
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// Qwen2's pre-tokenizer split pattern, as in its `tokenizer.json`.
const QWEN2_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Llama 3's pre-tokenizer split pattern (`llama-bpe`).
const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

pub struct Tokenizer {
    /// Parses control-token text (`<|im_start|>`) into control tokens; used
    /// only for text that comes from the chat template itself.
    trusted: tokenizers::Tokenizer,
    /// Encodes control-token text as ordinary characters.
    untrusted: tokenizers::Tokenizer,
    /// The bytes each token stands for; empty for control tokens.
    token_bytes: Vec<Vec<u8>>,
    control_tokens: HashMap<String, u32>,
    bos: Option<u32>,
    eos: Option<u32>,
    add_bos: bool,
}

impl Tokenizer {
    /// The tokenizer of a GGUF model: a `tokenizer.json` beside the file
    /// (`NAME.tokenizer.json`) when there is one, else one built from the
    /// GGUF metadata.
    pub fn for_gguf(path: &Path, content: &gguf_file::Content) -> Result<Self> {
        let beside = path.with_extension("tokenizer.json");
        if beside.is_file() {
            let id = |key: &str| content.metadata.get(key).and_then(|v| v.to_u32().ok());
            return Self::from_file(
                &beside,
                id("tokenizer.ggml.bos_token_id"),
                id("tokenizer.ggml.eos_token_id"),
            );
        }
        Self::from_gguf(content)
    }

    /// Reads only a GGUF file's metadata (not its weights) for the tokenizer.
    pub fn load(path: &Path) -> Result<Self> {
        let mut file = std::fs::File::open(path).map_err(crate::error::Error::io(format!(
            "cannot open model file {}",
            path.display()
        )))?;
        let content = gguf_file::Content::read(&mut file)
            .map_err(|e| Error::BadModelFile { path: path.to_owned(), reason: e.to_string() })?;
        Self::for_gguf(path, &content)
    }

    /// Builds the tokenizer described by a GGUF file's metadata.
    pub fn from_gguf(content: &gguf_file::Content) -> Result<Self> {
        let md = &content.metadata;
        let string = |key: &str| md.get(key).and_then(|v| v.to_string().ok()).cloned();
        let u32_of = |key: &str| md.get(key).and_then(|v| v.to_u32().ok());
        let model = string("tokenizer.ggml.model").unwrap_or_default();
        if model != "gpt2" {
            return Err(Error::Tokenizer(format!(
                "tokenizer.ggml.model `{model}` is not a byte-level BPE; put a tokenizer.json beside the model"
            )));
        }
        let tokens: Vec<String> = md
            .get("tokenizer.ggml.tokens")
            .and_then(|v| v.to_vec().ok())
            .ok_or_else(|| Error::Tokenizer("no tokenizer.ggml.tokens".into()))?
            .iter()
            .map(|v| v.to_string().cloned())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::Tokenizer(format!("bad token list: {e}")))?;
        let merges: Vec<String> = match md.get("tokenizer.ggml.merges") {
            Some(v) => v
                .to_vec()
                .and_then(|v| v.iter().map(|m| m.to_string().cloned()).collect())
                .map_err(|e| Error::Tokenizer(format!("bad merges: {e}")))?,
            None => Vec::new(),
        };
        let token_types: Vec<i32> = match md.get("tokenizer.ggml.token_type") {
            Some(v) => v
                .to_vec()
                .and_then(|v| v.iter().map(|t| t.to_i32()).collect())
                .map_err(|e| Error::Tokenizer(format!("bad token types: {e}")))?,
            None => vec![1; tokens.len()],
        };
        let pre = string("tokenizer.ggml.pre").unwrap_or_else(|| "default".into());
        let json = tokenizer_json(&tokens, &merges, &token_types, &pre)?;
        let add_bos =
            md.get("tokenizer.ggml.add_bos_token").and_then(|v| v.to_bool().ok()).unwrap_or(false);
        let trusted = tokenizers::Tokenizer::from_bytes(json.to_string().as_bytes())
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Self::assemble(
            trusted,
            u32_of("tokenizer.ggml.bos_token_id"),
            u32_of("tokenizer.ggml.eos_token_id"),
            add_bos,
        )
    }

    /// Loads a Hugging Face `tokenizer.json` (for models that ship one).
    pub fn from_file(path: &Path, bos: Option<u32>, eos: Option<u32>) -> Result<Self> {
        let trusted = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))?;
        Self::assemble(trusted, bos, eos, false)
    }

    fn assemble(
        trusted: tokenizers::Tokenizer,
        bos: Option<u32>,
        eos: Option<u32>,
        add_bos: bool,
    ) -> Result<Self> {
        let mut untrusted = trusted.clone();
        untrusted.set_encode_special_tokens(true);
        let vocab = trusted.get_vocab(true);
        let size = vocab.values().map(|&id| id as usize + 1).max().unwrap_or(0);
        let mut token_bytes = vec![Vec::new(); size];
        let mut control_tokens = HashMap::new();
        let added = trusted.get_added_tokens_decoder();
        let byte_of_char = byte_level_decoding_table();
        for (text, id) in vocab {
            let bytes = match added.get(&id) {
                Some(token) if token.special => {
                    control_tokens.insert(text.clone(), id);
                    Vec::new()
                }
                Some(_) => text.as_bytes().to_vec(),
                None => decode_byte_level(&text, &byte_of_char),
            };
            token_bytes[id as usize] = bytes;
        }
        Ok(Self { trusted, untrusted, token_bytes, control_tokens, bos, eos, add_bos })
    }

    /// Encodes template text: control-token text becomes control tokens.
    pub fn encode_trusted(&self, text: &str) -> Result<Vec<u32>> {
        encode(&self.trusted, text)
    }

    /// Encodes untrusted text: it can never produce a control token.
    pub fn encode_untrusted(&self, text: &str) -> Result<Vec<u32>> {
        encode(&self.untrusted, text)
    }

    /// The beginning-of-sequence token to put before a prompt, if the model
    /// wants one.
    pub fn prompt_prefix(&self) -> Option<u32> {
        self.bos.filter(|_| self.add_bos)
    }

    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    /// The id of a control token such as `<|im_end|>`.
    pub fn control_token(&self, text: &str) -> Option<u32> {
        self.control_tokens.get(text).copied()
    }

    /// The raw bytes a token stands for (empty for control tokens, which are
    /// never shown to a reader).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.token_bytes.get(id as usize).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn vocab_size(&self) -> usize {
        self.token_bytes.len()
    }

    /// The text of a token as the vocabulary spells it (`<|im_end|>` for a
    /// control token), for filling template variables like `eos_token`.
    pub fn decode_special(&self, id: u32) -> String {
        self.trusted.id_to_token(id).unwrap_or_default()
    }

    /// Decodes tokens to text, replacing invalid UTF-8.
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids.iter().flat_map(|&id| self.token_bytes(id).to_vec()).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

fn encode(tokenizer: &tokenizers::Tokenizer, text: &str) -> Result<Vec<u32>> {
    let encoding = tokenizer.encode(text, false).map_err(|e| Error::Tokenizer(e.to_string()))?;
    Ok(encoding.get_ids().to_vec())
}

/// The in-memory `tokenizer.json` for a GGUF byte-level BPE.
fn tokenizer_json(tokens: &[String], merges: &[String], types: &[i32], pre: &str) -> Result<Value> {
    let byte_level = |use_regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex});
    let split = |pattern: &str| json!({"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": false});
    let (normalizer, pre_tokenizer) = match pre {
        "smollm" => (
            Value::Null,
            json!({"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true}, byte_level(true)]}),
        ),
        "qwen2" => (
            json!({"type": "NFC"}),
            json!({"type": "Sequence", "pretokenizers": [split(QWEN2_PATTERN), byte_level(false)]}),
        ),
        "llama-bpe" | "llama3" => (
            Value::Null,
            json!({"type": "Sequence", "pretokenizers": [split(LLAMA3_PATTERN), byte_level(false)]}),
        ),
        "gpt2" | "default" => (Value::Null, byte_level(true)),
        other => {
            return Err(Error::Tokenizer(format!(
                "pre-tokenizer `{other}` is not supported; put a tokenizer.json beside the model"
            )))
        }
    };
    let vocab: serde_json::Map<String, Value> =
        tokens.iter().enumerate().map(|(id, t)| (t.clone(), json!(id))).collect();
    let added_tokens: Vec<Value> = tokens
        .iter()
        .enumerate()
        .filter_map(|(id, t)| {
            let kind = types.get(id).copied().unwrap_or(1);
            (kind == TOKEN_TYPE_CONTROL || kind == TOKEN_TYPE_USER_DEFINED).then(|| {
                json!({"id": id, "content": t, "single_word": false, "lstrip": false,
                       "rstrip": false, "normalized": false,
                       "special": kind == TOKEN_TYPE_CONTROL})
            })
        })
        .collect();
    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added_tokens,
        "normalizer": normalizer,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": null,
        "decoder": byte_level(true),
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null,
            "continuing_subword_prefix": null, "end_of_word_suffix": null,
            "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": merges,
        }
    }))
}

/// GPT-2's byte-to-character table, inverted: byte-level BPE vocabularies
/// spell every byte as one printable character.
fn byte_level_decoding_table() -> HashMap<char, u8> {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut table = HashMap::with_capacity(256);
    let mut next = 0u32;
    for b in 0..=255u8 {
        let c = if printable(b) {
            char::from(b)
        } else {
            next += 1;
            char::from_u32(255 + next).expect("valid code point")
        };
        table.insert(c, b);
    }
    table
}

fn decode_byte_level(text: &str, byte_of_char: &HashMap<char, u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match byte_of_char.get(&c) {
            Some(&b) => out.push(b),
            // Not a byte-level token (a sentencepiece vocabulary loaded from a
            // tokenizer.json): take the text as it is.
            None if c == '\u{2581}' => out.push(b' '),
            None => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    out
}

/// Turns a stream of token bytes into text without ever splitting a
/// character: bytes of an incomplete UTF-8 sequence wait for the next token.
#[derive(Debug, Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes and returns the text that is now complete (may be empty).
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(text) => {
                    out.push_str(text);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(std::str::from_utf8(&self.pending[..valid]).expect("checked"));
                    match e.error_len() {
                        // Incomplete sequence at the end: wait for more bytes.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        // Bytes that can never become valid: show the
                        // replacement character and go on after them.
                        Some(len) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + len);
                        }
                    }
                }
            }
        }
    }

    /// Ends the stream: leftover bytes of a cut-off character become U+FFFD.
    pub fn finish(&mut self) -> String {
        if self.pending.is_empty() {
            return String::new();
        }
        self.pending.clear();
        char::REPLACEMENT_CHARACTER.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_stream_never_splits_a_character() {
        let text = "退货 ok 👍🏽 é";
        let bytes = text.as_bytes();
        // Feed one byte at a time: every emitted piece must be whole text and
        // the pieces must add up to the input.
        let mut stream = Utf8Stream::new();
        let mut out = String::new();
        for b in bytes {
            out.push_str(&stream.push(std::slice::from_ref(b)));
        }
        out.push_str(&stream.finish());
        assert_eq!(out, text);
    }

    #[test]
    fn utf8_stream_replaces_invalid_bytes() {
        let mut stream = Utf8Stream::new();
        assert_eq!(stream.push(b"a\xffb"), "a\u{FFFD}b");
        assert_eq!(stream.push(b"\xe4\xbd"), "");
        assert_eq!(stream.finish(), "\u{FFFD}");
    }

    #[test]
    fn byte_level_table_covers_every_byte() {
        let table = byte_level_decoding_table();
        assert_eq!(table.len(), 256);
        assert_eq!(table[&'Ġ'], b' ');
        assert_eq!(table[&'Ċ'], b'\n');
    }
}
