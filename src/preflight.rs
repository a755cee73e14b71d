//! Memory preflight: before any weights load, what the trio will need on each device against what
//! the device has free.
//!
//! Per model: its weights (every tensor in the safetensors headers × the size of the dtype it is
//! loaded in; the text decoder's linear weights at the bytes per block of their quantized format,
//! fallbacks included), its KV cache for the whole context (prompt + new tokens; base 2 rows,
//! rft 2, small 1; `eval`'s α sweep of k values: base and rft 1 + k, small k, see [`Decoding`];
//! per row and token: layers × 2 × kv_heads × head_dim × dtype size), the
//! live-α vectors (f32 `base[..V]` and `rft[..V] − small[..V]`, 4·V bytes each per guided token,
//! counted with the base and the RFT model), which the session keeps in host memory: they count
//! against the cpu whatever device the models are on (an α sweep keeps none); and the prefill's activations (the prompt's
//! attention scores, heads × prompt² f32 values held up to four times over while they are scaled,
//! masked and normalised, the causal mask, and the MLP's activations: the prefill of a long prompt
//! needs more than the weights). Each model is prefilled once, on one row, one after another, so
//! a device needs the largest prefill of its models, not their sum. Free memory: `MemAvailable`
//! of /proc/meminfo for the cpu (other systems: skipped with a note), the GPU's free memory for
//! `cuda:N`.
//! `PROXYTHINKER_FREE_MEMORY_BYTES=cpu:N,cuda:0:N` overrides the free figures (for tests).

use candle_core::{DType, Device};

use crate::config::TrioPlacement;
use crate::models::{QuantFormat, Quantization};
use crate::error::{Error, Result};
use crate::loader::Checkpoint;
use crate::placement::{dtype_name, DeviceSpec, Devices};
use crate::presets::{human_bytes, kv_bytes_per_token};
use crate::trio::{PerModel, Role, TrioFiles, ROW_PLAN};

/// The environment variable that overrides free memory: `cpu:BYTES,cuda:0:BYTES`.
pub const FREE_MEMORY_ENV: &str = "PROXYTHINKER_FREE_MEMORY_BYTES";

/// What one model will hold on its device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelNeed {
    pub name: &'static str,
    pub device: DeviceSpec,
    pub dtype: DType,
    pub quant: QuantFormat,
    pub weights: u64,
    pub kv_cache: u64,
    /// Held in host memory (see the module docs).
    pub live_alpha: u64,
    /// Transient: the prefill's activations.
    pub prefill: u64,
}

impl ModelNeed {
    /// Saturating: sizes from hostile headers must not wrap around to something that fits.
    pub fn total(&self) -> u64 {
        self.weights.saturating_add(self.kv_cache).saturating_add(self.live_alpha).saturating_add(self.prefill)
    }
}

/// Bytes of a checkpoint's weights loaded as `dtype` with the decoder's linear layers in `quant`.
pub fn weight_bytes(checkpoint: &Checkpoint, dtype: DType, quant: QuantFormat) -> Result<u64> {
    checkpoint.weight_bytes(dtype, quant)
}

/// KV cache bytes of one row of `checkpoint` for `tokens` tokens in `dtype`.
pub fn kv_row_bytes(checkpoint: &Checkpoint, dtype: DType, tokens: u64) -> u64 {
    let t = &checkpoint.config.text;
    tokens.saturating_mul(kv_bytes_per_token(t.num_hidden_layers as u64, t.num_key_value_heads as u64, t.head_dim as u64, dtype))
}

/// Peak activation bytes of the prefill of `rows` rows of `prompt_tokens` tokens, in one layer:
/// the attention scores (f32, up to four copies alive: the product, scaled, masked, softmaxed)
/// with the causal mask repeated for the query heads of a key head, and the MLP (gate, up and
/// their product, f32 as an upper bound).
pub fn prefill_bytes(checkpoint: &Checkpoint, rows: u64, prompt_tokens: u64) -> u64 {
    let t = &checkpoint.config.text;
    let square = prompt_tokens.saturating_mul(prompt_tokens);
    let scores = rows.saturating_mul(t.num_attention_heads as u64).saturating_mul(square).saturating_mul(4);
    let rep = (t.num_attention_heads / t.num_key_value_heads.max(1)).max(1) as u64;
    let mask = rep.saturating_mul(square);
    let mlp = rows.saturating_mul(prompt_tokens).saturating_mul(3 * t.intermediate_size as u64 + 4 * t.hidden_size as u64);
    scores.saturating_add(mask).saturating_add(mlp).saturating_mul(4)
}

/// How a trio decodes, as far as memory goes: the KV cache rows of each model, and whether the
/// live-α store is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoding {
    pub kv_rows: PerModel<u64>,
    pub live_alpha: bool,
    /// How many α values decode at once (1 for a session): a refusal suggests fewer when more.
    pub alphas: u64,
}

impl Decoding {
    /// A session (`run`, `bench`, the UI): the rows of [`ROW_PLAN`] (base 2, rft 2, small 1) and
    /// the live-α store.
    pub fn session() -> Decoding {
        Decoding { kv_rows: ROW_PLAN.map(|rows| rows.len() as u64), live_alpha: true, alphas: 1 }
    }

    /// An α sweep of `alphas` values (`eval`, see [`crate::engine::Sweep`]): base and RFT
    /// 1 + `alphas` rows, small `alphas`; its α values are fixed, so it keeps no live-α store.
    pub fn sweep(alphas: usize) -> Decoding {
        let k = alphas as u64;
        Decoding { kv_rows: PerModel::new(k.saturating_add(1), k.saturating_add(1), k), live_alpha: false, alphas: k }
    }
}

/// What each model of a session needs for a context of `context_tokens` (prompt + new tokens)
/// of which `guided_tokens` are guided tokens.
pub fn estimate(files: &TrioFiles, placement: &TrioPlacement, context_tokens: u64, guided_tokens: u64) -> Result<PerModel<ModelNeed>> {
    estimate_for(files, placement, context_tokens, guided_tokens, &Decoding::session())
}

/// [`estimate`] for a trio decoding as `decoding` says (an α sweep's rows, say).
pub fn estimate_for(files: &TrioFiles, placement: &TrioPlacement, context_tokens: u64, guided_tokens: u64, decoding: &Decoding) -> Result<PerModel<ModelNeed>> {
    let v = files.shared_vocab() as u64;
    let placed = placement.specs().zip(placement.quantizations());
    files.checkpoints().zip(placed).zip(decoding.kv_rows).try_map(|role, ((ckpt, ((dtype, device), quant)), rows)| {
        Ok(ModelNeed {
            name: role.name(),
            device,
            dtype,
            quant: quant.format,
            weights: ckpt.weight_bytes_with_head(dtype, ckpt.placed(quant, dtype, device == DeviceSpec::Cpu)?)?,
            kv_cache: kv_row_bytes(ckpt, dtype, context_tokens).saturating_mul(rows),
            // base[..V] lives with the base model, rft[..V] − small[..V] with the RFT model.
            live_alpha: if role == Role::Small || !decoding.live_alpha { 0 } else { v.saturating_mul(4).saturating_mul(guided_tokens) },
            // Each model is prefilled once, on one row, and the three one after another.
            prefill: prefill_bytes(ckpt, 1, context_tokens.saturating_sub(guided_tokens)),
        })
    })
}

/// Free memory of a device, and what said so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Free {
    Bytes { bytes: u64, source: &'static str },
    /// Not known here (the reason, for a note).
    Unknown(String),
}

/// The override from PROXYTHINKER_FREE_MEMORY_BYTES for `spec`, if any.
fn free_override(spec: DeviceSpec) -> Result<Option<u64>> {
    let Ok(text) = std::env::var(FREE_MEMORY_ENV) else { return Ok(None) };
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let parsed = item.rsplit_once(':').and_then(|(dev, n)| Some((DeviceSpec::parse(dev).ok()?, n.trim().parse::<u64>().ok()?)));
        let Some((dev, bytes)) = parsed else {
            return Err(Error::invalid(format!(
                "{FREE_MEMORY_ENV}: cannot read \"{item}\": use DEVICE:BYTES[,DEVICE:BYTES], e.g. cpu:8000000000,cuda:0:20000000000"
            )));
        };
        if dev == spec {
            return Ok(Some(bytes));
        }
    }
    Ok(None)
}

/// MemAvailable from /proc/meminfo, in bytes.
pub fn mem_available() -> std::result::Result<u64, String> {
    if !cfg!(target_os = "linux") {
        return Err("free RAM is only read on Linux (/proc/meminfo)".into());
    }
    let text = std::fs::read_to_string("/proc/meminfo").map_err(|e| format!("cannot read /proc/meminfo: {e}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| "/proc/meminfo has no MemAvailable line".into())
}

#[cfg(feature = "cuda")]
fn cuda_free(device: &Device) -> std::result::Result<u64, String> {
    match device {
        Device::Cuda(d) => {
            d.cuda_stream().context().mem_get_info().map(|(free, _total)| free as u64).map_err(|e| e.to_string())
        }
        _ => Err("not a CUDA device".into()),
    }
}

#[cfg(not(feature = "cuda"))]
fn cuda_free(_device: &Device) -> std::result::Result<u64, String> {
    Err("this build has no CUDA support".into())
}

/// How much memory `device` (opened from `spec`) has free.
pub fn free_memory(spec: DeviceSpec, device: &Device) -> Result<Free> {
    if let Some(bytes) = free_override(spec)? {
        return Ok(Free::Bytes { bytes, source: FREE_MEMORY_ENV });
    }
    Ok(match spec {
        DeviceSpec::Cpu => match mem_available() {
            Ok(bytes) => Free::Bytes { bytes, source: "MemAvailable" },
            Err(why) => Free::Unknown(why),
        },
        DeviceSpec::Cuda(_) => match cuda_free(device) {
            Ok(bytes) => Free::Bytes { bytes, source: "cuMemGetInfo" },
            Err(why) => Free::Unknown(why),
        },
    })
}

/// The needs of the models on one device, added up (the cpu's also holds the live-α store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceNeed {
    pub device: DeviceSpec,
    pub models: Vec<&'static str>,
    pub dtypes: Vec<DType>,
    pub quants: Vec<QuantFormat>,
    pub weights: u64,
    pub kv_cache: u64,
    pub live_alpha: u64,
    pub prefill: u64,
}

impl DeviceNeed {
    pub fn total(&self) -> u64 {
        self.weights.saturating_add(self.kv_cache).saturating_add(self.live_alpha).saturating_add(self.prefill)
    }
}

/// The needs grouped by device, in the order the devices first appear (base, rft, small); the
/// live-α store goes to the cpu (an entry of its own after the GPUs when no model is there).
pub fn per_device(needs: &[ModelNeed]) -> Vec<DeviceNeed> {
    let mut out: Vec<DeviceNeed> = Vec::new();
    fn entry(out: &mut Vec<DeviceNeed>, device: DeviceSpec) -> &mut DeviceNeed {
        let i = match out.iter().position(|d| d.device == device) {
            Some(i) => i,
            None => {
                out.push(DeviceNeed {
                    device,
                    models: Vec::new(),
                    dtypes: Vec::new(),
                    quants: Vec::new(),
                    weights: 0,
                    kv_cache: 0,
                    live_alpha: 0,
                    prefill: 0,
                });
                out.len() - 1
            }
        };
        &mut out[i]
    }
    for n in needs {
        let d = entry(&mut out, n.device);
        d.models.push(n.name);
        if !d.dtypes.contains(&n.dtype) {
            d.dtypes.push(n.dtype);
        }
        if !d.quants.contains(&n.quant) {
            d.quants.push(n.quant);
        }
        d.weights = d.weights.saturating_add(n.weights);
        d.kv_cache = d.kv_cache.saturating_add(n.kv_cache);
        // Transient and one model at a time: a device needs the largest of its models' prefills.
        d.prefill = d.prefill.max(n.prefill);
    }
    let live_alpha = needs.iter().fold(0u64, |acc, n| acc.saturating_add(n.live_alpha));
    if live_alpha > 0 {
        let cpu = entry(&mut out, DeviceSpec::Cpu);
        cpu.live_alpha = cpu.live_alpha.saturating_add(live_alpha);
    }
    out
}

fn join_names(names: &[&str]) -> String {
    match names {
        [one] => one.to_string(),
        [a, b] => format!("{a} and {b}"),
        [a, b, c] => format!("{a}, {b} and {c}"),
        _ => names.join(", "),
    }
}

/// The refusal for one device: what is needed, what is free, what to try.
pub fn refusal(need: &DeviceNeed, free: u64, source: &str, context_tokens: u64) -> String {
    refusal_for(need, free, source, context_tokens, &Decoding::session())
}

/// [`refusal`] for a trio decoding as `decoding` says: with several α values at once, fewer
/// of them is one more thing to try.
pub fn refusal_for(need: &DeviceNeed, free: u64, source: &str, context_tokens: u64, decoding: &Decoding) -> String {
    let dtypes: Vec<&str> = need.dtypes.iter().map(|d| dtype_name(*d)).collect();
    let quantized: Vec<&str> = need.quants.iter().filter(|q| **q != QuantFormat::None).map(|q| q.name()).collect();
    let mut format = dtypes.join("/");
    if !quantized.is_empty() {
        format = format!("{format} with {} linear layers", quantized.join("/"));
    }
    let mut tries = Vec::new();
    if need.dtypes.contains(&DType::F32) {
        tries.push("--dtype bf16 (half the bytes of f32)".to_string());
    }
    if need.weights > 0 {
        if need.quants.contains(&QuantFormat::None) {
            tries.push("--quant q8_0 (about half the bytes of bf16 for the decoder's linear layers)".to_string());
        } else if need.quants.iter().any(|q| *q != QuantFormat::Q4K) {
            tries.push("--quant q4_k".to_string());
        }
    }
    tries.push("another device (--device, or --base-device/--rft-device/--small-device to spread the models)".into());
    tries.push(if decoding.alphas > 1 && need.kv_cache > 0 {
        "fewer --max-new-tokens or --alphas (each α is one more KV cache row in every model)".into()
    } else {
        "fewer --max-new-tokens".into()
    });
    tries.push("or a smaller preset (`proxythinker presets`)".into());
    let (who, verb) = match need.models.as_slice() {
        [] => ("the live-α store".to_string(), "needs"),
        [one] => (one.to_string(), "needs"),
        names => (join_names(names), "need"),
    };
    format!(
        "not enough memory on {}: {who} {verb} {} there (weights {} as {}, KV cache {} for {} tokens, live α {}, prefill {}) but {} is free ({source}); try {}",
        need.device,
        human_bytes(need.total()),
        human_bytes(need.weights),
        format,
        human_bytes(need.kv_cache),
        context_tokens,
        human_bytes(need.live_alpha),
        human_bytes(need.prefill),
        human_bytes(free),
        tries.join(", ")
    )
}

/// Checks that one model (`logits`, `generate`) fits on its device for a prompt of
/// `prompt_tokens` and `new_tokens` more: weights, a one-row KV cache and the prefill.
#[allow(clippy::too_many_arguments)]
pub fn check_one(
    checkpoint: &Checkpoint,
    spec: DeviceSpec,
    device: &Device,
    dtype: DType,
    quant: Quantization,
    prompt_tokens: u64,
    new_tokens: u64,
) -> Result<Vec<String>> {
    let context = prompt_tokens.saturating_add(new_tokens);
    let need = DeviceNeed {
        device: spec,
        models: vec!["the model"],
        dtypes: vec![dtype],
        quants: vec![quant.format],
        weights: checkpoint.weight_bytes_with_head(dtype, checkpoint.placed(quant, dtype, spec == DeviceSpec::Cpu)?)?,
        kv_cache: kv_row_bytes(checkpoint, dtype, context),
        live_alpha: 0,
        prefill: prefill_bytes(checkpoint, 1, prompt_tokens),
    };
    Ok(match free_memory(spec, device)? {
        Free::Bytes { bytes, source } if need.total() > bytes => return Err(Error::invalid(refusal(&need, bytes, source, context))),
        Free::Bytes { .. } => Vec::new(),
        Free::Unknown(why) => vec![format!("note: memory preflight skipped for {spec} ({why}); the model needs {}", human_bytes(need.total()))],
    })
}

/// Checks that the trio fits on its devices for a session; refuses with the figures when it does
/// not. Returns notes for what could not be checked.
pub fn check(
    files: &TrioFiles,
    placement: &TrioPlacement,
    opened: &Devices,
    context_tokens: u64,
    guided_tokens: u64,
) -> Result<Vec<String>> {
    check_for(files, placement, opened, context_tokens, guided_tokens, &Decoding::session())
}

/// [`check`] for a trio decoding as `decoding` says (`eval`'s α sweep).
pub fn check_for(
    files: &TrioFiles,
    placement: &TrioPlacement,
    opened: &Devices,
    context_tokens: u64,
    guided_tokens: u64,
    decoding: &Decoding,
) -> Result<Vec<String>> {
    let needs = estimate_for(files, placement, context_tokens, guided_tokens, decoding)?.into_array();
    let devices = opened.as_ref().map(|(_, d)| d).into_array();
    let mut notes = Vec::new();
    for need in per_device(&needs) {
        // The cpu needs no handle; a GPU's is the one opened for its first model.
        let device = needs.iter().position(|n| n.device == need.device).map_or(&Device::Cpu, |i| devices[i]);
        match free_memory(need.device, device)? {
            Free::Bytes { bytes, source } => {
                if need.total() > bytes {
                    return Err(Error::invalid(refusal_for(&need, bytes, source, context_tokens, decoding)));
                }
            }
            Free::Unknown(why) => notes.push(format!(
                "note: memory preflight skipped for {} ({why}); the models need {} there",
                need.device,
                human_bytes(need.total())
            )),
        }
    }
    Ok(notes)
}
