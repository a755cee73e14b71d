//! A question and an image prepared for one checkpoint, as its transformers processor does: the
//! image preprocessed with the checkpoint's `preprocessor_config.json`, the question rendered with
//! its chat template, each image pad expanded to one pad per merged patch, then tokenized. It
//! sits above [`crate::loader`] (which reads those files) and [`crate::processor`] (which does
//! each step), so neither needs the other.

use candle_core::Device;
use tokenizers::Tokenizer;

use crate::error::{Error, Result};
use crate::loader::Checkpoint;
use crate::models::{ImageInput, PromptInput};
use crate::processor::{image, prompt, SourceImage};

/// Refuses a prompt of `prompt_tokens` tokens that, with `new_tokens` more, does not fit the
/// context of `checkpoint` (`max_position_embeddings`), before any memory is spent on it: a
/// prefill past the context costs quadratic memory and decodes positions the model never saw.
/// `budget_flag` names where the budget came from (`--max-new-tokens`, `--steps`).
pub fn check_context(checkpoint: &Checkpoint, name: &str, prompt_tokens: usize, new_tokens: usize, budget_flag: &str) -> Result<()> {
    let context = checkpoint.config.text.max_position_embeddings;
    let model = format!("{name} {}", checkpoint.dir.display());
    if prompt_tokens >= context {
        return Err(Error::invalid(format!(
            "the prompt is {prompt_tokens} tokens but {model} reads at most {context} (max_position_embeddings in its config.json), with room for one new token; shorten the question (or use a smaller image)"
        )));
    }
    if prompt_tokens.saturating_add(new_tokens) > context {
        return Err(Error::invalid(format!(
            "the prompt ({prompt_tokens} tokens) plus {budget_flag} {new_tokens} is past the {context}-token context of {model} (max_position_embeddings); lower {budget_flag} to at most {}",
            context - prompt_tokens
        )));
    }
    Ok(())
}

/// Bytes of a long prompt tokenized first, per token of context: real text averages 3 to 5
/// bytes a token, so this prefix of a prompt that fits holds fewer tokens than the context.
const PROBE_BYTES_PER_TOKEN: usize = 8;

/// Tokens a cut through a word may add to a prefix's count.
const PROBE_MARGIN: usize = 64;

/// Refuses a prompt far past the context from a prefix of it, so that a megabytes-long one costs
/// what the context does, not what its own length does (tokenizing holds about 300 bytes per
/// token). The prefix ends at whitespace, where the tokenizer splits words anyway.
fn probe_context(checkpoint: &Checkpoint, tokenizer: &Tokenizer, text: &str) -> Result<()> {
    let context = checkpoint.config.text.max_position_embeddings;
    let probe = context.saturating_mul(PROBE_BYTES_PER_TOKEN);
    if text.len() <= probe {
        return Ok(());
    }
    let mut end = probe;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let end = text[..end].rfind(char::is_whitespace).filter(|&i| i > 0).unwrap_or(end);
    let tokens = prompt::encode(tokenizer, &text[..end])?.len();
    if tokens > context + PROBE_MARGIN {
        return Err(Error::invalid(format!(
            "the prompt is more than {} tokens but the model {} reads at most {context} (max_position_embeddings in its config.json; the first {end} of the prompt's {} bytes alone hold that many), with room for one new token; shorten the question (or use a smaller image)",
            tokens - PROBE_MARGIN,
            checkpoint.dir.display(),
            text.len()
        )));
    }
    Ok(())
}

/// A prompt ready for a model: the text that was tokenized, its ids, and its images.
#[derive(Debug, Clone)]
pub struct PreparedPrompt {
    /// The text after the chat template and image-pad expansion.
    pub text: String,
    pub input: PromptInput,
    /// With `--own-templates`, each model's prompt rendered with its own chat template (the
    /// base model's is `input`); `None` when one prompt serves all three.
    pub per_model: Option<crate::trio::PerModel<PromptInput>>,
    /// The texts of `per_model`'s prompts, when there are.
    pub per_model_text: Option<crate::trio::PerModel<String>>,
}

/// Prepares one user turn for `checkpoint`: the image (if any) is preprocessed with the
/// checkpoint's preprocessor_config.json, the question is rendered with its chat template (unless
/// `raw`, which tokenizes `question` as given), and each image pad is expanded to one pad per
/// merged patch.
pub fn prepare_prompt(
    checkpoint: &Checkpoint,
    tokenizer: &Tokenizer,
    question: &str,
    image: Option<&SourceImage>,
    raw: bool,
    device: &Device,
) -> Result<PreparedPrompt> {
    if question.trim().is_empty() {
        return Err(Error::invalid("the prompt is empty: pass a question with --prompt"));
    }
    // Far past any model's context, and tokenizing it would cost gigabytes before that is known.
    let cap = crate::limits::PROMPT_BYTES;
    if question.len() as u64 > cap.get() {
        return Err(Error::invalid(format!(
            "the question is {} bytes, over the prompt limit of {} bytes (far past any model's context); shorten it, or raise {}",
            question.len(),
            cap.get(),
            cap.var
        )));
    }
    let mut images = Vec::new();
    let mut counts = Vec::new();
    if let Some(source) = image {
        let processed = image::preprocess(&source.image, &checkpoint.processor).map_err(|e| match e {
            Error::Invalid(m) => Error::image(&source.path, m),
            other => other,
        })?;
        let merge = checkpoint.config.vision.spatial_merge_size;
        counts.push(processed.grid_thw.iter().product::<usize>() / (merge * merge));
        images.push(ImageInput { pixel_values: image::to_tensor(&processed, device)?, grid_thw: processed.grid_thw });
    }
    let text = if raw {
        if image.is_some() && !question.contains(prompt::IMAGE_PAD) {
            return Err(Error::invalid(format!(
                "--raw with --image needs the prompt to hold {} where the image goes",
                prompt::IMAGE_PAD
            )));
        }
        question.to_string()
    } else {
        let Some(template) = &checkpoint.chat_template else {
            return Err(Error::invalid(format!(
                "{} has no chat template (chat_template.jinja, chat_template.json or tokenizer_config.json); pass --raw to send the prompt as is",
                checkpoint.dir.display()
            )));
        };
        prompt::render_user_turn(template, question, image.is_some(), &checkpoint.special_tokens)?
    };
    let text = prompt::expand_image_pads(&text, &counts)?;
    probe_context(checkpoint, tokenizer, &text)?;
    let input_ids = prompt::encode(tokenizer, &text)?;
    if input_ids.is_empty() {
        return Err(Error::invalid("the prompt tokenizes to nothing: pass a non-empty prompt"));
    }
    check_context(checkpoint, "the model", input_ids.len(), 0, "")?;
    Ok(PreparedPrompt { text, input: PromptInput { input_ids, images }, per_model: None, per_model_text: None })
}
