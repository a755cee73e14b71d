//! Prompt building: the model's own chat template rendered as transformers renders it, image
//! pads expanded to one `<|image_pad|>` per merged patch, and tokenization with the model's
//! tokenizer.json.
//!
//! transformers renders chat templates with Jinja2 in a sandbox with `trim_blocks` and
//! `lstrip_blocks` on, Python string methods available, a `raise_exception` function, and the
//! tokenizer's special tokens (`bos_token`, `eos_token`, ...) in the context. minijinja with its
//! Python-compatibility layer is set up the same way. Templates come from downloaded repos, so a
//! rendering gets a budget of minijinja "fuel" ([`crate::limits::TEMPLATE_FUEL`] instructions,
//! thousands of times what a real chat template needs): a template that loops forever fails
//! with a message instead of hanging. What it renders is capped too
//! ([`crate::limits::PROMPT_BYTES`]): one instruction may write 100 MB, so fuel alone does not
//! bound the output, and a rendering past the cap stops there instead of filling memory.

use std::collections::HashMap;
use std::path::Path;

use minijinja::{context, Environment, Value};
use tokenizers::Tokenizer;

use crate::error::{Error, Result};

/// The placeholder the chat template writes for each image.
pub const IMAGE_PAD: &str = "<|image_pad|>";

/// Renders `template` for one user turn: the image (if any) first, then the text, with the
/// generation prompt added, as `processor.apply_chat_template` does for the content
/// `[{"type": "image"}, {"type": "text", "text": question}]`.
pub fn render_user_turn(
    template: &str,
    question: &str,
    with_image: bool,
    special_tokens: &HashMap<String, String>,
) -> Result<String> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    let fuel = crate::limits::TEMPLATE_FUEL;
    env.set_fuel(Some(fuel.get()));
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", |msg: String| -> std::result::Result<Value, minijinja::Error> {
        Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, msg))
    });
    env.add_template("chat", template)
        .map_err(|e| Error::Template(format!("the model's chat template does not parse: {e}")))?;
    let mut content = Vec::new();
    if with_image {
        content.push(context! { type => "image" });
    }
    content.push(context! { type => "text", text => question });
    let messages = vec![context! { role => "user", content => content }];
    let tmpl = env.get_template("chat").map_err(|e| Error::Template(e.to_string()))?;
    let mut ctx: HashMap<String, Value> = special_tokens.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect();
    ctx.insert("messages".into(), Value::from_serialize(&messages));
    ctx.insert("add_generation_prompt".into(), Value::from(true));
    let cap = crate::limits::PROMPT_BYTES;
    let mut out = Capped { bytes: Vec::new(), cap: cap.get(), over: false };
    let rendered = tmpl.render_captured_to(ctx, &mut out);
    if out.over {
        return Err(Error::Template(format!(
            "the model's chat template rendered more than {} bytes, the prompt limit: it repeats far too much; fix the template, or raise {}",
            cap.get(),
            cap.var
        )));
    }
    rendered.map_err(|e| match e.kind() {
        minijinja::ErrorKind::OutOfFuel => Error::Template(format!(
            "rendering stopped after {} instructions: the model's chat template loops or does far too much; fix the template, or raise {}",
            fuel.get(),
            fuel.var
        )),
        _ => Error::Template(format!("rendering failed: {}", crate::error::first_line(&e))),
    })?;
    String::from_utf8(out.bytes).map_err(|_| Error::Template("the model's chat template rendered text that is not UTF-8".into()))
}

/// A rendering's output, refusing to grow past `cap` bytes.
struct Capped {
    bytes: Vec<u8>,
    cap: u64,
    over: bool,
}

impl std::io::Write for Capped {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if (self.bytes.len() + data.len()) as u64 > self.cap {
            self.over = true;
            return Err(std::io::Error::other("past the prompt limit"));
        }
        self.bytes.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Replaces the `n`-th image pad in `text` by `counts[n]` pads.
pub fn expand_image_pads(text: &str, counts: &[usize]) -> Result<String> {
    let parts: Vec<&str> = text.split(IMAGE_PAD).collect();
    if parts.len() - 1 != counts.len() {
        return Err(Error::invalid(format!(
            "the prompt has {} image placeholders but {} images were given",
            parts.len() - 1,
            counts.len()
        )));
    }
    let mut out = String::with_capacity(text.len() + counts.iter().sum::<usize>() * IMAGE_PAD.len());
    for (i, part) in parts.iter().enumerate() {
        out.push_str(part);
        if let Some(&n) = counts.get(i) {
            for _ in 0..n {
                out.push_str(IMAGE_PAD);
            }
        }
    }
    Ok(out)
}

/// Loads a tokenizer.json.
pub fn load_tokenizer(path: &Path) -> Result<Tokenizer> {
    Tokenizer::from_file(path).map_err(|e| {
        Error::config(path, format!("cannot load the tokenizer: {}", crate::error::first_line(&e)))
    })
}

/// Token ids of `text`, special tokens recognised, as transformers' tokenizer call gives them.
pub fn encode(tokenizer: &Tokenizer, text: &str) -> Result<Vec<u32>> {
    tokenizer
        .encode(text, true)
        .map(|e| e.get_ids().to_vec())
        .map_err(|e| Error::Tokenizer(crate::error::first_line(&e)))
}

/// Text of `ids`, special tokens kept.
pub fn decode(tokenizer: &Tokenizer, ids: &[u32]) -> Result<String> {
    tokenizer.decode(ids, false).map_err(|e| Error::Tokenizer(crate::error::first_line(&e)))
}
