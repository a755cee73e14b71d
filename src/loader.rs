//! Turning a checkpoint directory in the Hugging Face Hub layout into checked files and loaded
//! weights.
//!
//! A checkpoint directory holds `config.json`, the weights (`model.safetensors`, or shards
//! listed by `model.safetensors.index.json`), `tokenizer.json`, the chat template (in
//! `chat_template.jinja`, `chat_template.json` or `tokenizer_config.json`),
//! `preprocessor_config.json` and `generation_config.json`. [`Checkpoint::open`] finds and
//! checks all of them before any weights are read, so that a broken directory is reported in one
//! line naming the file and what to do. Weights are read tensor by tensor ([`crate::weights`]) and may be named as on the Hub
//! (`model.layers.*`, `visual.*`, `lm_head.*`) or as transformers 5 saves them
//! (`model.language_model.*`, `model.visual.*`).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::models::linear::is_quantized_weight;
use crate::models::{Decoder, Family, ModelConfig, QuantFormat, Quantization, VlModel};
use crate::processor::image::ImageProcessorConfig;
use crate::weights::SafetensorsFiles;

/// How tensor names in the safetensors files are spelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightLayout {
    /// `model.layers.*`, `visual.*`, `lm_head.*` (the Hub's checkpoints).
    Hub,
    /// `model.language_model.*`, `model.visual.*`, `lm_head.*` (transformers 5).
    Transformers5,
}

/// A checkpoint directory whose files have been found and whose small files have been parsed.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub dir: PathBuf,
    pub config: ModelConfig,
    pub weight_files: Vec<PathBuf>,
    pub layout: WeightLayout,
    pub tokenizer_file: PathBuf,
    /// The chat template's source text, if the checkpoint has one.
    pub chat_template: Option<String>,
    /// Special tokens named in tokenizer_config.json (`bos_token`, `eos_token`, ...), passed to
    /// the chat template as transformers does.
    pub special_tokens: HashMap<String, String>,
    pub processor: ImageProcessorConfig,
    /// Token ids that end generation (generation_config.json's `eos_token_id`).
    pub eos_token_ids: Vec<u32>,
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    serde_json::from_str(&text)
        .map_err(|e| Error::config(path, format!("not valid JSON at line {} column {}: {e}", e.line(), e.column())))
}

fn token_ids(v: &Value) -> Option<Vec<u32>> {
    match v {
        Value::Number(n) => n.as_u64().map(|x| vec![x as u32]),
        Value::Array(items) => items.iter().map(|x| x.as_u64().map(|x| x as u32)).collect(),
        _ => None,
    }
}

/// A special token in tokenizer_config.json is a string or an AddedToken object.
fn token_content(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

impl Checkpoint {
    /// Finds and checks the files of the checkpoint in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        if !dir.exists() {
            return Err(Error::NotFound {
                what: "model directory",
                path: dir.to_path_buf(),
                hint: "pass a directory holding config.json, *.safetensors and tokenizer.json".into(),
            });
        }
        if !dir.is_dir() {
            return Err(Error::invalid(format!(
                "{} is not a directory: --model takes a checkpoint directory holding config.json, *.safetensors and tokenizer.json",
                dir.display()
            )));
        }
        let need = |name: &str, what: &'static str| -> Result<PathBuf> {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(Error::NotFound {
                    what,
                    path: p,
                    hint: "the checkpoint directory is incomplete; download the file again from the model's repository".into(),
                })
            }
        };
        let config_path = need("config.json", "config.json")?;
        let config = ModelConfig::from_file(&config_path)?;
        let weight_files = Self::find_weights(dir)?;
        let layout = Self::detect_layout(&weight_files)?;
        let tokenizer_file = need("tokenizer.json", "tokenizer.json")?;

        let tokenizer_config_path = dir.join("tokenizer_config.json");
        let tokenizer_config = if tokenizer_config_path.is_file() { Some(read_json(&tokenizer_config_path)?) } else { None };
        let mut special_tokens = HashMap::new();
        if let Some(Value::Object(tc)) = &tokenizer_config {
            for key in ["bos_token", "eos_token", "pad_token", "unk_token"] {
                if let Some(t) = tc.get(key).and_then(token_content) {
                    special_tokens.insert(key.to_string(), t);
                }
            }
        }
        let chat_template = Self::find_chat_template(dir, tokenizer_config.as_ref(), &tokenizer_config_path)?;

        let pre = dir.join("preprocessor_config.json");
        let processor = if pre.is_file() { ImageProcessorConfig::from_file(&pre)? } else { ImageProcessorConfig::default() };

        let eos_token_ids = Self::eos_ids(dir, &config_path)?;
        Ok(Checkpoint {
            dir: dir.to_path_buf(),
            config,
            weight_files,
            layout,
            tokenizer_file,
            chat_template,
            special_tokens,
            processor,
            eos_token_ids,
        })
    }

    fn find_weights(dir: &Path) -> Result<Vec<PathBuf>> {
        let index = dir.join("model.safetensors.index.json");
        if index.is_file() {
            let v = read_json(&index)?;
            let Some(map) = v.get("weight_map").and_then(Value::as_object) else {
                return Err(Error::config(&index, "no `weight_map` object: the shard index is malformed"));
            };
            let mut files = BTreeSet::new();
            for (name, file) in map {
                let Some(file) = file.as_str() else {
                    return Err(Error::config(&index, format!("`weight_map.{name}` must be a file name")));
                };
                files.insert(file.to_string());
            }
            let mut paths = Vec::with_capacity(files.len());
            for f in files {
                // A shard lives in the checkpoint: `../x` or `/x` would read outside it.
                let inside = std::path::Path::new(&f).components().all(|c| matches!(c, std::path::Component::Normal(_)));
                if !inside || f.is_empty() {
                    return Err(Error::config(&index, format!("`weight_map` names the shard {f:?}, which is outside the checkpoint directory; shards must be plain file names in it")));
                }
                let p = dir.join(&f);
                if !p.is_file() {
                    return Err(Error::NotFound {
                        what: "weight shard",
                        path: p,
                        hint: format!("{} lists it; download the missing shard", index.display()),
                    });
                }
                paths.push(p);
            }
            if paths.is_empty() {
                return Err(Error::config(&index, "the shard index lists no files"));
            }
            return Ok(paths);
        }
        let single = dir.join("model.safetensors");
        if single.is_file() {
            return Ok(vec![single]);
        }
        Err(Error::NotFound {
            what: "weights",
            path: single,
            hint: "expected model.safetensors or model.safetensors.index.json with its shards".into(),
        })
    }

    /// The layout of the first file that shows one; every file's header is read (and so checked,
    /// see [`safetensors_header`]) before any weights are.
    fn detect_layout(files: &[PathBuf]) -> Result<WeightLayout> {
        let mut layout = None;
        for f in files {
            let names = safetensors_names(f)?;
            if layout.is_some() {
                continue;
            }
            if names.iter().any(|n| n.starts_with("model.language_model.")) {
                layout = Some(WeightLayout::Transformers5);
            } else if names.iter().any(|n| n.starts_with("model.layers.") || n.starts_with("model.embed_tokens.")) {
                layout = Some(WeightLayout::Hub);
            }
        }
        Ok(layout.unwrap_or(WeightLayout::Hub))
    }

    fn find_chat_template(dir: &Path, tokenizer_config: Option<&Value>, tc_path: &Path) -> Result<Option<String>> {
        let jinja = dir.join("chat_template.jinja");
        if jinja.is_file() {
            let t = std::fs::read_to_string(&jinja).map_err(|source| Error::Io { path: jinja.clone(), source })?;
            return Ok(Some(t));
        }
        let json = dir.join("chat_template.json");
        if json.is_file() {
            let v = read_json(&json)?;
            return match v.get("chat_template") {
                Some(Value::String(s)) => Ok(Some(s.clone())),
                _ => Err(Error::config(&json, "`chat_template` must be a string")),
            };
        }
        match tokenizer_config.and_then(|tc| tc.get("chat_template")) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            // A list of named templates: use the one named "default".
            Some(Value::Array(items)) => Ok(items
                .iter()
                .find(|i| i.get("name").and_then(Value::as_str) == Some("default"))
                .and_then(|i| i.get("template"))
                .and_then(Value::as_str)
                .map(str::to_owned)),
            Some(_) => Err(Error::config(tc_path, "`chat_template` must be a string or a list of named templates")),
        }
    }

    fn eos_ids(dir: &Path, config_path: &Path) -> Result<Vec<u32>> {
        let gen = dir.join("generation_config.json");
        for path in [gen.as_path(), config_path] {
            if !path.is_file() {
                continue;
            }
            let v = read_json(path)?;
            let eos = v.get("eos_token_id").or_else(|| v.get("text_config").and_then(|t| t.get("eos_token_id")));
            if let Some(eos) = eos {
                if eos.is_null() {
                    continue;
                }
                return token_ids(eos).ok_or_else(|| {
                    Error::config(path, format!("`eos_token_id` must be a token id or a list of them, found {eos}"))
                });
            }
        }
        Ok(Vec::new())
    }

    /// Every tensor of the checkpoint, from the safetensors headers.
    pub fn tensors(&self) -> Result<Vec<TensorEntry>> {
        let mut all = Vec::new();
        for f in &self.weight_files {
            all.extend(safetensors_header(f)?);
        }
        Ok(all)
    }

    /// Bytes of the weights, loaded as `dtype`, that one decoding step reads: the text decoder and
    /// the output head. The vision tower is idle while decoding, and an untied input embedding is
    /// only indexed (one row per token), so neither counts.
    pub fn decode_weight_bytes(&self, dtype: DType) -> Result<u64> {
        self.decode_weight_bytes_quantized(dtype, QuantFormat::None)
    }

    /// [`decode_weight_bytes`](Self::decode_weight_bytes) with the decoder's linear layers in `quant`.
    pub fn decode_weight_bytes_quantized(&self, dtype: DType, quant: QuantFormat) -> Result<u64> {
        self.decode_weight_bytes_with_head(dtype, Quantization::new(quant))
    }

    /// Bytes of every weight of the checkpoint loaded as `dtype` with the decoder's linear layers
    /// in `quant` (each at the format its input width allows).
    pub fn weight_bytes(&self, dtype: DType, quant: QuantFormat) -> Result<u64> {
        Ok(self.tensors()?.iter().map(|t| t.bytes(dtype, quant)).sum())
    }

    /// `quant` as a model placed in `dtype`, on the CPU or not, gets it: the vocabulary matrices
    /// (input embedding and untied head) stay in the checkpoint's own bf16 or f16 when the model
    /// runs in f32 on the CPU (see [`Quantization::vocab_dtype`]), where both are stored in the
    /// same 16-bit dtype. Loading applies this itself; the memory accounting takes what it gives.
    pub fn placed(&self, quant: Quantization, dtype: DType, on_cpu: bool) -> Result<Quantization> {
        let mut stored = None;
        if dtype == DType::F32 && on_cpu {
            let tensors = self.tensors()?;
            let mut vocab = tensors.iter().filter(|t| is_vocab_matrix(&t.name)).map(|t| t.stored);
            if let Some(first @ Some(DType::BF16 | DType::F16)) = vocab.next() {
                if vocab.all(|d| d == first) {
                    stored = first;
                }
            }
        }
        Ok(Quantization { vocab_dtype: stored, ..quant })
    }

    /// Bytes of every weight as `quant` holds them: the decoder's linear layers in `quant.format`,
    /// the vocabulary matrices in `quant.vocab_dtype` if set, and the output head in `quant.head`
    /// (an untied head is held in that format instead; a tied one is an extra quantized copy of the
    /// input embedding, which stays for its lookups).
    pub fn weight_bytes_with_head(&self, dtype: DType, quant: Quantization) -> Result<u64> {
        let all: u64 = self.tensors()?.iter().map(|t| t.held_bytes(dtype, quant.format, quant.vocab_dtype)).sum();
        Ok(match self.quantized_head(dtype, quant)? {
            None => all,
            Some(QuantizedHead { untied: Some(plain), bytes }) => all.saturating_sub(plain).saturating_add(bytes),
            Some(QuantizedHead { untied: None, bytes }) => all.saturating_add(bytes),
        })
    }

    /// Bytes of the weights, held as `quant` says, that one decoding step reads: the text decoder
    /// and the output head (a quantized head instead of the one it was made from).
    pub fn decode_weight_bytes_with_head(&self, dtype: DType, quant: Quantization) -> Result<u64> {
        let tensors = self.tensors()?;
        let has_head = tensors.iter().any(|t| t.name.starts_with("lm_head."));
        let idle = |name: &str| name.contains("visual.") || (has_head && name.contains("embed_tokens."));
        let read: u64 = tensors.iter().filter(|t| !idle(&t.name)).map(|t| t.held_bytes(dtype, quant.format, quant.vocab_dtype)).sum();
        Ok(match self.quantized_head(dtype, quant)? {
            None => read,
            Some(QuantizedHead { untied: Some(plain), bytes }) => read.saturating_sub(plain).saturating_add(bytes),
            Some(QuantizedHead { untied: None, bytes }) => {
                let embedding = tensors.iter().find(|t| is_input_embedding(&t.name)).map_or(0, |t| t.held_bytes(dtype, QuantFormat::None, quant.vocab_dtype));
                read.saturating_sub(embedding).saturating_add(bytes)
            }
        })
    }

    /// The output head's bytes in `quant.head` (None when it is not quantized), and for an untied
    /// head what its `lm_head.weight` would take unquantized.
    fn quantized_head(&self, dtype: DType, quant: Quantization) -> Result<Option<QuantizedHead>> {
        if quant.head == QuantFormat::None {
            return Ok(None);
        }
        let tensors = self.tensors()?;
        let untied = tensors.iter().find(|t| t.name == "lm_head.weight");
        let Some(weight) = untied.or_else(|| tensors.iter().find(|t| is_input_embedding(&t.name))) else { return Ok(None) };
        let [out, width] = weight.shape[..] else { return Ok(None) };
        Ok(Some(QuantizedHead {
            untied: untied.map(|t| t.held_bytes(dtype, QuantFormat::None, quant.vocab_dtype)),
            bytes: quant.head.for_width(width).weight_bytes(out as u64, width as u64, dtype),
        }))
    }

    /// How the decoder's linear layers take `quant`: (how many there are, and for each format
    /// they fall back to: how many, the kinds of layer, e.g. `mlp.down_proj`, and their input
    /// widths).
    pub fn quant_fallbacks(&self, quant: QuantFormat) -> Result<(usize, Vec<QuantFallback>)> {
        let mut total = 0;
        let mut out: Vec<QuantFallback> = Vec::new();
        for t in self.tensors()?.iter().filter(|t| is_quantized_weight(&t.name)) {
            total += 1;
            let width = t.shape.last().copied().unwrap_or(0);
            let got = quant.for_width(width);
            if got == quant {
                continue;
            }
            // "model.layers.3.mlp.down_proj.weight" → "mlp.down_proj"
            let parts: Vec<&str> = t.name.split('.').collect();
            let kind = parts[parts.len().saturating_sub(3)..parts.len() - 1].join(".");
            let i = match out.iter().position(|f| f.format == got) {
                Some(i) => i,
                None => {
                    out.push(QuantFallback { format: got, layers: 0, kinds: Vec::new(), widths: Vec::new() });
                    out.len() - 1
                }
            };
            let f = &mut out[i];
            f.layers += 1;
            if !f.kinds.contains(&kind) {
                f.kinds.push(kind);
            }
            if !f.widths.contains(&width) {
                f.widths.push(width);
            }
        }
        for f in &mut out {
            f.kinds.sort();
            f.widths.sort();
        }
        Ok((total, out))
    }

    /// One note per model and fallback format, e.g. "note: --base: q4_k needs input widths that
    /// are multiples of 256: 80 of 560 linear layers (mlp.down_proj; input width 29568) use q8_0
    /// instead"; `who` names the model.
    pub fn quant_notes(&self, who: &str, quant: QuantFormat) -> Result<Vec<String>> {
        let (total, fallbacks) = self.quant_fallbacks(quant)?;
        Ok(fallbacks
            .into_iter()
            .map(|f| {
                let widths: Vec<String> = f.widths.iter().map(|w| w.to_string()).collect();
                let got = if f.format == QuantFormat::None { "stay unquantized".to_string() } else { format!("use {} instead", f.format) };
                format!(
                    "note: {who}: {quant} needs input widths that are multiples of {}: {} of {total} linear layers ({}; input width{} {}) {got}",
                    quant.block(),
                    f.layers,
                    f.kinds.join(", "),
                    if widths.len() == 1 { "" } else { "s" },
                    widths.join(", "),
                )
            })
            .collect())
    }

    /// Loads the weights as this checkpoint's family's model, behind the [`Decoder`] seam.
    pub fn load_decoder(&self, dtype: DType, device: &Device) -> Result<std::sync::Arc<dyn Decoder>> {
        self.load_decoder_quantized(dtype, device, Quantization::default())
    }

    /// [`load_decoder`](Self::load_decoder) with the text decoder's linear layers quantized as
    /// `quant` says.
    pub fn load_decoder_quantized(&self, dtype: DType, device: &Device, quant: Quantization) -> Result<std::sync::Arc<dyn Decoder>> {
        Ok(match self.config.family {
            Family::Qwen3Vl => std::sync::Arc::new(self.load_qwen3_vl(dtype, device, quant)?),
            Family::Qwen2Vl | Family::Qwen2_5Vl => std::sync::Arc::new(self.load_model_quantized(dtype, device, quant)?),
        })
    }

    /// The weights as a `VarBuilder` that reads each tensor from its file when the model asks
    /// for it (see [`crate::weights`]: the peak is the model plus about one tensor).
    fn var_builder(&self, dtype: DType, device: &Device) -> Result<VarBuilder<'static>> {
        let files = SafetensorsFiles::open(&self.weight_files)?;
        Ok(VarBuilder::from_backend(Box::new(files), dtype, device.clone()))
    }

    /// Loads a Qwen3-VL checkpoint. Its weights are named as transformers names
    /// them in memory, so no renaming.
    fn load_qwen3_vl(&self, dtype: DType, device: &Device, quant: Quantization) -> Result<crate::models::qwen3_vl::Qwen3VlModel> {
        let quant = self.placed(quant, dtype, device.is_cpu())?;
        let vb = self.var_builder(dtype, device)?;
        crate::models::qwen3_vl::Qwen3VlModel::new_quantized(&self.config, vb, quant).map_err(|e| {
            let message = first_line(&e);
            let hint = if is_out_of_memory(&message) {
                "the device ran out of memory: try --dtype bf16, another device, or a smaller model"
            } else {
                "the weights do not match config.json (is it the right checkpoint?)"
            };
            Error::weights(&self.dir, format!("{message}; {hint}"))
        })
    }

    /// Loads the weights into a Qwen2-VL or Qwen2.5-VL model of the given dtype
    /// on the given device.
    pub fn load_model(&self, dtype: DType, device: &Device) -> Result<VlModel> {
        self.load_model_quantized(dtype, device, Quantization::default())
    }

    /// [`load_model`](Self::load_model) with the text decoder's linear layers quantized as
    /// `quant` says, while they load (in-situ).
    pub fn load_model_quantized(&self, dtype: DType, device: &Device, quant: Quantization) -> Result<VlModel> {
        let quant = self.placed(quant, dtype, device.is_cpu())?;
        let vb = self.var_builder(dtype, device)?;
        let vb = match self.layout {
            WeightLayout::Hub => vb,
            WeightLayout::Transformers5 => vb.rename_f(|name: &str| {
                if let Some(rest) = name.strip_prefix("model.") {
                    format!("model.language_model.{rest}")
                } else if let Some(rest) = name.strip_prefix("visual.") {
                    format!("model.visual.{rest}")
                } else {
                    name.to_string()
                }
            }),
        };
        VlModel::new_quantized(&self.config, vb, quant).map_err(|e| {
            let message = first_line(&e);
            if is_out_of_memory(&message) {
                let need = self.weight_bytes_with_head(dtype, quant).unwrap_or(0);
                let quantized = if quant.format == QuantFormat::None { String::new() } else { format!(" ({} linear layers)", quant.format) };
                let tries = match quant.format {
                    QuantFormat::None => "try --dtype bf16, --quant q8_0, another device, or a smaller model",
                    QuantFormat::Q8_0 | QuantFormat::Q6K => "try --quant q4_k, another device, or a smaller model",
                    QuantFormat::Q4K => "try another device or a smaller model",
                };
                return Error::weights(
                    &self.dir,
                    format!(
                        "the device ran out of memory loading this model: its weights need {:.1} GiB as {}{quantized} on {}; {tries}",
                        need as f64 / (1u64 << 30) as f64,
                        format!("{dtype:?}").to_lowercase(),
                        device_name(device),
                    ),
                );
            }
            Error::weights(&self.dir, format!("{message}; the weights do not match config.json (is it the right checkpoint?)"))
        })
    }
}

/// Linear layers that take another format than the one asked for (see
/// [`Checkpoint::quant_fallbacks`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuantFallback {
    pub format: QuantFormat,
    pub layers: usize,
    pub kinds: Vec<String>,
    pub widths: Vec<usize>,
}

/// One tensor as a safetensors header describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorEntry {
    pub name: String,
    pub shape: Vec<usize>,
    /// The dtype the file stores it in (None: one candle cannot hold).
    pub stored: Option<DType>,
}

/// An output head held in a block format; see [`Checkpoint::weight_bytes_with_head`].
struct QuantizedHead {
    /// An untied head's bytes in the dtype (None: the head is tied to the input embedding).
    untied: Option<u64>,
    bytes: u64,
}

/// Whether `name` is the text decoder's input embedding (the Hub's or transformers 5's spelling).
fn is_input_embedding(name: &str) -> bool {
    !name.contains("visual.") && name.ends_with("embed_tokens.weight")
}

/// Whether `name` is one of the vocabulary-sized matrices: the input embedding or an untied head.
fn is_vocab_matrix(name: &str) -> bool {
    is_input_embedding(name) || name == "lm_head.weight"
}

impl TensorEntry {
    pub fn numel(&self) -> u64 {
        // Saturating: a hostile header's [2³², 2³²] must not wrap around to 0 elements.
        self.shape.iter().fold(1u64, |n, &d| n.saturating_mul(d as u64))
    }

    /// Bytes once loaded as `dtype`, in `quant` if it is one of the decoder's linear weights
    /// (at the format its input width allows).
    pub fn bytes(&self, dtype: DType, quant: QuantFormat) -> u64 {
        match self.shape.as_slice() {
            [out, width] if is_quantized_weight(&self.name) => quant.for_width(*width).weight_bytes(*out as u64, *width as u64, dtype),
            _ => self.numel() * dtype.size_in_bytes() as u64,
        }
    }

    /// [`bytes`](Self::bytes) where a vocabulary matrix is held in `vocab` when that is set.
    fn held_bytes(&self, dtype: DType, quant: QuantFormat, vocab: Option<DType>) -> u64 {
        match vocab {
            Some(v) if is_vocab_matrix(&self.name) => self.numel() * v.size_in_bytes() as u64,
            _ => self.bytes(dtype, quant),
        }
    }
}

/// The tensors of one safetensors file, from its header alone (no weights read), in file order.
pub fn safetensors_header(path: &Path) -> Result<Vec<TensorEntry>> {
    let (metadata, _) = crate::weights::read_header(path)?;
    let tensors = metadata.tensors();
    Ok(metadata
        .offset_keys()
        .into_iter()
        .map(|name| {
            let info = &tensors[&name];
            TensorEntry { shape: info.shape.clone(), stored: crate::weights::stored_dtype(info.dtype).ok(), name }
        })
        .collect())
}

/// Tensor names in one safetensors file, from its header alone.
pub fn safetensors_names(path: &Path) -> Result<Vec<String>> {
    Ok(safetensors_header(path)?.into_iter().map(|t| t.name).collect())
}

/// Whether a device error message says that memory ran out (CUDA's or the allocator's wording).
pub fn is_out_of_memory(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("out_of_memory") || m.contains("out of memory")
}

/// A device as the command line names it.
pub fn device_name(device: &Device) -> String {
    match device {
        Device::Cpu => "cpu".to_string(),
        Device::Cuda(_) => match device.location() {
            candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
            _ => "cuda".to_string(),
        },
        other => format!("{:?}", other.location()),
    }
}

pub use crate::error::first_line;
