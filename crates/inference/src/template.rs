//! Rendering a model's chat template into prompt tokens.
//!
//! The template (Jinja, from `tokenizer.chat_template`) decides the layout of
//! a conversation; the message contents are untrusted. To keep the two apart
//! the template is rendered with each content replaced by a placeholder, and
//! the output is then tokenized piece by piece: the template's own text with
//! control tokens allowed, each content with control tokens forbidden.

use minijinja::{context, Environment, ErrorKind};
use shopchat_core::ChatMessage;

use crate::error::{Error, Result};
use crate::tokenizer::Tokenizer;

/// The ChatML layout, for models whose GGUF carries no template.
const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// Marks a placeholder in the rendered template. A private-use character:
/// shopper text that contains it has it replaced before rendering, so a
/// shopper cannot forge a placeholder.
const MARK: char = '\u{F8FF}';

pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

/// Options for one rendering.
#[derive(Debug, Clone, Copy)]
pub struct RenderOptions {
    /// End with the opening of an assistant turn, for generation.
    pub add_generation_prompt: bool,
}

impl ChatTemplate {
    /// `source` is the Jinja template; `None` means ChatML.
    pub fn new(source: Option<&str>, bos_token: &str, eos_token: &str) -> Result<Self> {
        let mut env = Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |message: String| -> std::result::Result<String, minijinja::Error> {
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
            },
        );
        env.add_template_owned("chat", source.unwrap_or(CHATML).to_owned())
            .map_err(|e| Error::Template(e.to_string()))?;
        Ok(Self { env, bos_token: bos_token.to_owned(), eos_token: eos_token.to_owned() })
    }

    /// Renders the conversation to prompt tokens.
    pub fn encode(
        &self,
        tokenizer: &Tokenizer,
        messages: &[ChatMessage],
        options: RenderOptions,
    ) -> Result<Vec<u32>> {
        let mut ids: Vec<u32> = tokenizer.prompt_prefix().into_iter().collect();
        for piece in self.render_pieces(messages, options)? {
            match piece {
                Piece::Template(text) => {
                    let encoded = tokenizer.encode_trusted(&text)?;
                    // Some templates write the BOS token themselves.
                    let skip = usize::from(
                        ids.len() == 1 && !encoded.is_empty() && encoded.first() == ids.first(),
                    );
                    ids.extend_from_slice(&encoded[skip..]);
                }
                Piece::Content(text) => ids.extend(tokenizer.encode_untrusted(&text)?),
            }
        }
        Ok(ids)
    }

    /// Renders to text, for display (`--show-prompt`). Contents appear as
    /// they are; the tokens are what [`Self::encode`] produces.
    pub fn render_text(&self, messages: &[ChatMessage], options: RenderOptions) -> Result<String> {
        Ok(self
            .render_pieces(messages, options)?
            .into_iter()
            .map(|piece| match piece {
                Piece::Template(text) | Piece::Content(text) => text,
            })
            .collect())
    }

    fn render_pieces(
        &self,
        messages: &[ChatMessage],
        options: RenderOptions,
    ) -> Result<Vec<Piece>> {
        let placeholders: Vec<minijinja::Value> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                minijinja::Value::from_serialize(serde_json::json!({
                    "role": m.role.as_str(),
                    "content": format!("{MARK}{i}{MARK}"),
                }))
            })
            .collect();
        let template = self.env.get_template("chat").map_err(|e| Error::Template(e.to_string()))?;
        let rendered = template
            .render(context! {
                messages => placeholders,
                add_generation_prompt => options.add_generation_prompt,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
            })
            .map_err(|e| Error::Template(e.to_string()))?;

        let mut pieces = Vec::new();
        let mut parts = rendered.split(MARK);
        if let Some(head) = parts.next() {
            push_template(&mut pieces, head);
        }
        // After the head, parts alternate: placeholder index, template text.
        while let (Some(index), Some(text)) = (parts.next(), parts.next()) {
            let message =
                index.parse::<usize>().ok().and_then(|i| messages.get(i)).ok_or_else(|| {
                    Error::Template("the template altered a message placeholder".into())
                })?;
            pieces.push(Piece::Content(message.content.replace(MARK, "\u{FFFD}")));
            push_template(&mut pieces, text);
        }
        Ok(pieces)
    }
}

enum Piece {
    Template(String),
    Content(String),
}

fn push_template(pieces: &mut Vec<Piece>, text: &str) {
    if !text.is_empty() {
        pieces.push(Piece::Template(text.to_owned()));
    }
}
