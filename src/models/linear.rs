//! The models' linear layer, plain or quantized, behind one type, and the quantization formats
//! that `--quant` names. The text decoder's layers take a format; the vision towers' use the same
//! type kept in the model's dtype, for the same CPU products: a few rows (decoding) through the
//! thin paths, a prefill's rows as slices of output features on candle's pool (`sliced_gemm`).
//!
//! A quantized layer holds its weight as a candle `QTensor` in one of the GGML block formats
//! (q8_0: blocks of 32 values, 8.5 bits per weight; q6_k: 256, 6.56; q4_k: 256, 4.5), made from
//! the checkpoint's weight when the model loads (in-situ quantization, on every core:
//! [`super::quantize`]), and multiplies with
//! candle's quantized kernels (CPU and CUDA). The bias, when there is one, stays in the model's
//! dtype. A block format needs the layer's input width (the weight's last dimension) to be a
//! multiple of its block; where it is not, the layer falls back to the next format that fits
//! (q6_k or q4_k → q8_0 → unquantized), as llama.cpp does, and [`QuantFormat::for_width`] is the
//! one place that rule is written: loading, the preflight and the presets all ask it.

use candle_core::quantized::k_quants::{BlockQ4K, BlockQ6K, GgmlType};
use candle_core::quantized::{GgmlDType, QMatMul};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;

/// A weight format for the text decoder's linear layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub enum QuantFormat {
    /// The model's dtype (f32, f16 or bf16): no quantization.
    #[default]
    None,
    Q8_0,
    Q6K,
    Q4K,
}

impl QuantFormat {
    /// Every format, in the order `--quant` lists them.
    pub const ALL: [QuantFormat; 4] = [QuantFormat::None, QuantFormat::Q8_0, QuantFormat::Q6K, QuantFormat::Q4K];

    /// `none`, `q8_0`, `q6_k` or `q4_k` (also without the underscore, any case).
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "none" | "off" => Ok(QuantFormat::None),
            "q8_0" | "q80" => Ok(QuantFormat::Q8_0),
            "q6_k" | "q6k" => Ok(QuantFormat::Q6K),
            "q4_k" | "q4k" => Ok(QuantFormat::Q4K),
            other => Err(format!("unknown quantization \"{other}\": use none, q8_0, q6_k or q4_k")),
        }
    }

    /// The name as `--quant` spells it.
    pub fn name(self) -> &'static str {
        match self {
            QuantFormat::None => "none",
            QuantFormat::Q8_0 => "q8_0",
            QuantFormat::Q6K => "q6_k",
            QuantFormat::Q4K => "q4_k",
        }
    }

    /// candle's block type, or None for unquantized.
    pub fn ggml(self) -> Option<GgmlDType> {
        match self {
            QuantFormat::None => None,
            QuantFormat::Q8_0 => Some(GgmlDType::Q8_0),
            QuantFormat::Q6K => Some(GgmlDType::Q6K),
            QuantFormat::Q4K => Some(GgmlDType::Q4K),
        }
    }

    /// Values per block (1 for unquantized).
    pub fn block(self) -> usize {
        self.ggml().map_or(1, |g| g.block_size())
    }

    /// The next format to try when a width is not a multiple of this one's block.
    pub fn fallback(self) -> QuantFormat {
        match self {
            QuantFormat::Q6K | QuantFormat::Q4K => QuantFormat::Q8_0,
            QuantFormat::Q8_0 | QuantFormat::None => QuantFormat::None,
        }
    }

    /// The format a weight of input width `in_features` gets when this one is asked for.
    pub fn for_width(self, in_features: usize) -> QuantFormat {
        let mut f = self;
        while f != QuantFormat::None && !in_features.is_multiple_of(f.block()) {
            f = f.fallback();
        }
        f
    }

    /// Bytes of an (out, in) weight in this format (`dtype` when unquantized). The caller has
    /// applied [`for_width`](Self::for_width), so `in_features` is a multiple of the block.
    pub fn weight_bytes(self, out_features: u64, in_features: u64, dtype: DType) -> u64 {
        match self.ggml() {
            None => out_features * in_features * dtype.size_in_bytes() as u64,
            Some(g) => out_features * (in_features / g.block_size() as u64) * g.type_size() as u64,
        }
    }
}

impl std::fmt::Display for QuantFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How a model's text decoder is quantized when it loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Quantization {
    /// The format of the decoder's linear layers (q, k, v, o, gate, up, down).
    pub format: QuantFormat,
    /// The output head's format: `none` unless the user opts in (`--quant-head`): guidance
    /// subtracts logits, so the head's error lands in the mix directly (what it costs is
    /// measured in tests/quant.rs and stated in the README).
    pub head: QuantFormat,
    /// The dtype the vocabulary-sized matrices (the input embedding, and the output head where it
    /// is not quantized) are held in when it is not the model's: the checkpoint's own bf16 or f16
    /// for a model that runs in f32 on the CPU ([`crate::loader::Checkpoint::placed`] decides).
    /// Their values are the same numbers either way; lookups are widened to the model's dtype and
    /// the head is multiplied in it ([`Linear::Stored16`]), in half the bytes.
    pub vocab_dtype: Option<DType>,
}

impl Quantization {
    /// The decoder's linear layers in `format`, the head unquantized.
    pub fn new(format: QuantFormat) -> Self {
        Quantization { format, head: QuantFormat::None, vocab_dtype: None }
    }

    /// Whether any weight is quantized.
    pub fn is_quantized(&self) -> bool {
        self.format != QuantFormat::None || self.head != QuantFormat::None
    }
}

/// Whether a checkpoint tensor is one of the text decoder's quantized linear weights (by name,
/// in the Hub's and transformers 5's spelling); the vision tower's are not.
pub fn is_quantized_weight(name: &str) -> bool {
    const PROJECTIONS: [&str; 7] = [
        "self_attn.q_proj.weight",
        "self_attn.k_proj.weight",
        "self_attn.v_proj.weight",
        "self_attn.o_proj.weight",
        "mlp.gate_proj.weight",
        "mlp.up_proj.weight",
        "mlp.down_proj.weight",
    ];
    !name.contains("visual.") && name.contains("layers.") && PROJECTIONS.iter().any(|p| name.ends_with(p))
}

/// A linear layer `x·Wᵀ + b` with its weight in the model's dtype or in a block format.
#[derive(Debug, Clone)]
pub enum Linear {
    Plain(candle_nn::Linear),
    Quantized { weight: QMatMul, bias: Option<Tensor>, format: QuantFormat },
    /// A weight held in bf16 or f16, as the checkpoint stores it, multiplied by activations of
    /// another dtype (f32) in theirs: each value widened as it is used, which gives the f32
    /// layer's products in half its bytes (see [`super::thin_float`]).
    Stored16 { weight: Tensor, bias: Option<Tensor> },
}

impl Linear {
    /// Loads `weight` (and `bias` if `with_bias`) of an (out, in) layer from `vb`, quantized to
    /// `format` (or the fallback its input width allows).
    pub fn load(in_features: usize, out_features: usize, with_bias: bool, format: QuantFormat, vb: VarBuilder) -> candle_core::Result<Self> {
        let weight = vb.get((out_features, in_features), "weight")?;
        let bias = if with_bias { Some(vb.get(out_features, "bias")?) } else { None };
        Self::from_weight(weight, bias, format)
    }

    /// A layer over an existing weight (out, in), quantized to `format` or its fallback.
    pub fn from_weight(weight: Tensor, bias: Option<Tensor>, format: QuantFormat) -> candle_core::Result<Self> {
        let (_, in_features) = weight.dims2()?;
        let format = format.for_width(in_features);
        let Some(ggml) = format.ggml() else {
            return Ok(Linear::Plain(candle_nn::Linear::new(weight, bias)));
        };
        let device = weight.device().clone();
        // Quantized on the host, on every core, then placed on the device: a GPU holds at most
        // one unquantized tensor at a time while a model loads.
        let q = super::quantize::quantize_weight(&weight, ggml, &device)?;
        Ok(Linear::Quantized { weight: QMatMul::from_qtensor(q)?, bias, format })
    }

    /// A layer over a bf16 or f16 weight (out, in) kept in that dtype and multiplied in the
    /// activations' dtype.
    pub fn stored_16_bit(weight: Tensor, bias: Option<Tensor>) -> candle_core::Result<Self> {
        match weight.dtype() {
            DType::BF16 | DType::F16 => Ok(Linear::Stored16 { weight: weight.contiguous()?, bias }),
            other => Err(candle_core::Error::Msg(format!("a 16-bit layer was given a {other:?} weight"))),
        }
    }

    /// The format this layer's weight is held in.
    pub fn format(&self) -> QuantFormat {
        match self {
            Linear::Plain(_) | Linear::Stored16 { .. } => QuantFormat::None,
            Linear::Quantized { format, .. } => *format,
        }
    }
}

/// Linear layers that read the same input (q, k and v; gate and up), their weights stacked by
/// output features at load so that one product computes them all: one matrix product (one
/// kernel on a GPU, one split over the cores on the CPU) where there were several. Each row of a
/// weight is the same row as in the separate layer, quantized blocks included, so the outputs are
/// the separate layers' outputs.
#[derive(Debug, Clone)]
pub struct FusedLinear<const N: usize> {
    linear: Linear,
    /// Output features of each part, in order.
    widths: [usize; N],
}

impl<const N: usize> FusedLinear<N> {
    /// Loads the parts `(out_features, vb)` of an `in_features`-wide input (each with a bias if
    /// `with_bias`) as one layer in `format` (or its fallback).
    ///
    /// One part's unquantized weight at a time is held besides the result: a quantized layer is
    /// assembled from the parts' quantized rows (GGML blocks never straddle rows), a plain one
    /// is written part by part into its final tensor.
    pub fn load(in_features: usize, parts: [(usize, VarBuilder); N], with_bias: bool, format: QuantFormat) -> candle_core::Result<Self> {
        let out_features: usize = parts.iter().map(|(out, _)| out).sum();
        let format = format.for_width(in_features);
        let bias = if with_bias {
            let biases = parts.iter().map(|(out, vb)| vb.get(*out, "bias")).collect::<candle_core::Result<Vec<_>>>()?;
            Some(Tensor::cat(&biases, 0)?)
        } else {
            None
        };
        let linear = match format.ggml() {
            Some(ggml) => {
                let mut blocks = Vec::new();
                let mut device = Device::Cpu;
                for (out, vb) in &parts {
                    let weight = vb.get((*out, in_features), "weight")?;
                    device = weight.device().clone();
                    let q = super::quantize::quantize_on_host(&weight, ggml)?;
                    blocks.extend_from_slice(&q.data()?);
                }
                let q = candle_core::quantized::ggml_file::qtensor_from_ggml(ggml, &blocks, vec![out_features, in_features], &device)?;
                Linear::Quantized { weight: QMatMul::from_qtensor(q)?, bias, format }
            }
            None => {
                let mut weight: Option<Tensor> = None;
                let mut row = 0;
                for (out, vb) in &parts {
                    let part = vb.get((*out, in_features), "weight")?;
                    let whole = match weight.take() {
                        Some(w) => w,
                        None => Tensor::zeros((out_features, in_features), part.dtype(), part.device())?,
                    };
                    whole.slice_set(&part.contiguous()?, 0, row)?;
                    row += out;
                    weight = Some(whole);
                }
                let weight = weight.ok_or_else(|| candle_core::Error::Msg("a fused layer needs at least one part".into()))?;
                Linear::Plain(candle_nn::Linear::new(weight, bias))
            }
        };
        Ok(FusedLinear { linear, widths: parts.map(|(out, _)| out) })
    }

    /// Each part's output, in the order the parts were given (views of one product's output).
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<[Tensor; N]> {
        let y = self.linear.forward(x)?;
        let mut starts = [0; N];
        for i in 1..N {
            starts[i] = starts[i - 1] + self.widths[i - 1];
        }
        let parts = starts.iter().zip(&self.widths).map(|(&s, &w)| y.narrow(candle_core::D::Minus1, s, w)).collect::<candle_core::Result<Vec<_>>>()?;
        // N parts were made from N widths.
        parts.try_into().map_err(|_| candle_core::Error::Msg("a fused layer lost a part".into()))
    }

    /// The format the weights are held in, and how many checkpoint layers they are.
    pub fn format_and_parts(&self) -> (QuantFormat, usize) {
        (self.linear.format(), N)
    }
}

/// Rows at or below which a plain product on the CPU is split over the cores by output features.
/// Decoding multiplies one row per stream, and gemm runs a product that thin on one thread, so
/// without the split a decode step used one core however many the machine has. Prefill's
/// products are wide enough for gemm's own threading.
const THIN_ROWS: usize = 8;

/// Output features per task below which splitting costs more than it saves.
const MIN_FEATURES_PER_TASK: usize = 64;

/// `x·Wᵀ` for a thin `x` on the CPU, computed as one product per block of W's rows on rayon's
/// thread pool and joined; None where the plain product is the better choice (a GPU, many rows,
/// a narrow layer, one thread). Where the CPU has AVX2, [`super::thin_float`] takes these products
/// first; this is the portable way to use every core (other CPUs, e.g. ARM).
fn thin_product(x: &Tensor, weight: &Tensor) -> candle_core::Result<Option<Tensor>> {
    use rayon::prelude::*;
    if !x.device().is_cpu() {
        return Ok(None);
    }
    let (out_features, in_features) = weight.dims2()?;
    let rows = x.elem_count() / in_features.max(1);
    let threads = candle_core::utils::get_num_threads();
    if rows == 0 || rows > THIN_ROWS || threads < 2 || out_features < threads * MIN_FEATURES_PER_TASK {
        return Ok(None);
    }
    // Blocks a multiple of 16 rows long keep each task's gemm on its full-width kernels.
    let block = out_features.div_ceil(threads).next_multiple_of(16);
    let x2 = x.reshape((rows, in_features))?.contiguous()?;
    let parts = (0..out_features.div_ceil(block))
        .into_par_iter()
        .map(|i| {
            let start = i * block;
            x2.matmul(&weight.narrow(0, start, block.min(out_features - start))?.t()?)
        })
        .collect::<candle_core::Result<Vec<_>>>()?;
    let y = Tensor::cat(&parts, 1)?;
    let mut dims = x.dims().to_vec();
    if let Some(last) = dims.last_mut() {
        *last = out_features;
    }
    Ok(Some(y.reshape(dims)?))
}

/// Rows at or above which a quantized product on the CPU is computed from the dequantized
/// weight with gemm. candle's block kernels quantize the activations and take one dot product
/// per (row, output feature): right for decoding's few rows, but a prefill of a few hundred rows
/// ran at about 40% of f32's speed (57.7 against 150.8 tokens/s on the bench model). Expanding
/// the weight back to f32 costs one pass over it, shared by all the rows.
const WIDE_ROWS: usize = 32;

/// Rows up to which a quantized product on the CPU goes through the project's thin paths
/// ([`super::thin_q8_0`], [`super::thin_kquant`]), which read the blocks in place: every product
/// short of a prefill's, so candle's block kernels, which keep a repacked copy of each weight they
/// touch on x86-64, never run on the CPU, and a row's product does not depend on how many rows
/// share it (decoding's 1 or 2 rows, an eval batch's up to 31).
const THIN_QUANTIZED_ROWS: usize = WIDE_ROWS - 1;

/// Where a wide product's slices of W come from.
enum SliceSource<'a> {
    /// An f32 weight (out, in), row-major: a slice's rows are copied into the task's buffer.
    F32(&'a [f32]),
    /// A bf16 or f16 weight (out, in), row-major, as stored: a slice's rows are widened to f32
    /// into the task's buffer.
    BF16(&'a [half::bf16]),
    F16(&'a [half::f16]),
    /// Quantized rows of `row_bytes` each, expanded to f32 by `expand` into the task's buffer.
    Blocks { data: &'a [u8], row_bytes: usize, expand: fn(&[u8], &mut [f32]) -> bool },
}

/// `x·Wᵀ` for a wide, contiguous f32 `x` (rows × in) on the CPU: W's output features in slices of
/// [`slice_depth`] (256, fewer where 256 rows would pass 4 MiB), each slice a task on candle's
/// thread pool that puts its slice of W into the task's own buffer (copied, or dequantized; still
/// in cache when gemm reads it), its rows [`padded_row_stride`] apart, and makes one
/// single-threaded gemm call writing its columns of the result. None where a quantized slice did
/// not expand.
///
/// Why the copy: gemm reads the weight in place (it packs only the activations here), a few of
/// its rows at a time, and rows whose stride is a multiple of 256 bytes fall into the same few
/// sets of the core's L1 cache and evict each other. On the development machine (AMD EPYC,
/// AVX-512), one thread, 88 rows × 256 features: 39–51 GFLOP/s at input widths 1,024, 1,536,
/// 2,048, 2,560, 3,584 and 6,144 (76 at 4,864; 92 at 896) read in place, 90–97 with the rows
/// padded, which costs one pass over the slice.
///
/// Why candle's pool and one-thread gemm calls: candle's element-wise operations run on its pool,
/// whose workers spin for a while after each one, and gemm's own threading runs on rayon's; with
/// two cores the two pools took the cores from each other. Measured on the 2-core development
/// machine, alternating the builds, bench model: f32 prefill 128.7–133.2 → 135.2–137.4 tokens/s
/// (candle's matrix product, gemm on rayon), q8_0 123.8–129.1 → 135.3–138.5 (slices on rayon). For a
/// quantized weight, one thread's dequantizing (bound by memory) overlaps another's multiplying
/// (bound by arithmetic): one gemm per 1,024 dequantized features on both cores in turn prefilled
/// the 1.5 B model at 27.4 tokens/s in q8_0 against 38.2 for slices as tasks.
fn sliced_gemm(x: &Tensor, out_features: usize, source: SliceSource<'_>) -> candle_core::Result<Option<Tensor>> {
    use half::slice::HalfFloatSliceExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    let in_features = *x.dims().last().unwrap_or(&0);
    let rows = x.elem_count() / in_features.max(1);
    let x2 = x.reshape((rows, in_features))?.contiguous()?;
    let (storage, layout) = x2.storage_and_layout();
    let candle_core::Storage::Cpu(candle_core::CpuStorage::F32(xs)) = &*storage else { return Ok(None) };
    let Some((first, last)) = layout.contiguous_offsets() else { return Ok(None) };
    let xs = &xs[first..last];
    let mut out = vec![0f32; rows * out_features];
    let dst = SharedColumns(out.as_mut_ptr());
    let failed = AtomicBool::new(false);
    let stride = padded_row_stride(in_features);
    let depth = slice_depth(stride);
    candle_core::utils::barrier_pool().execute_chunked(out_features.div_ceil(depth), |slices| {
        let mut buffer = Vec::new();
        for i in slices {
            let start = i * depth;
            let n = depth.min(out_features - start);
            buffer.resize(n * stride, 0.0);
            for (feature, row) in (start..start + n).zip(buffer.chunks_exact_mut(stride)) {
                let row = &mut row[..in_features];
                let weights = feature * in_features..(feature + 1) * in_features;
                match &source {
                    SliceSource::F32(w) => row.copy_from_slice(&w[weights]),
                    SliceSource::BF16(w) => w[weights].convert_to_f32_slice(row),
                    SliceSource::F16(w) => w[weights].convert_to_f32_slice(row),
                    SliceSource::Blocks { data, row_bytes, expand } => {
                        if !expand(&data[feature * row_bytes..(feature + 1) * row_bytes], row) {
                            failed.store(true, Ordering::Relaxed);
                            return;
                        }
                    }
                }
            }
            // SAFETY: this task alone writes columns start..start+n of `out` (rows ×
            // out_features, row-major), which outlives the call; `xs` is rows × in_features,
            // row-major, and `buffer` n rows of in_features values `stride` apart, read as its
            // transpose (row stride 1, column stride `stride`). Every pointer stays inside its
            // buffer.
            unsafe {
                gemm::gemm(
                    rows,
                    n,
                    in_features,
                    dst.at(start),
                    1,
                    out_features as isize,
                    false,
                    xs.as_ptr(),
                    1,
                    in_features as isize,
                    buffer.as_ptr(),
                    stride as isize,
                    1,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        }
    });
    drop(storage);
    if failed.load(Ordering::Relaxed) {
        return Ok(None);
    }
    let mut dims = x.dims().to_vec();
    if let Some(last) = dims.last_mut() {
        *last = out_features;
    }
    Ok(Some(Tensor::from_vec(out, dims, &Device::Cpu)?))
}

/// Output features per slice of [`sliced_gemm`] for rows `stride` values apart:
/// [`DEQUANTIZED_SLICE`], fewer for wide rows so that a task's buffer stays near
/// [`SLICE_BUFFER_BYTES`] (each pool thread holds one during a product), but never fewer than 64.
fn slice_depth(stride: usize) -> usize {
    (SLICE_BUFFER_BYTES / (stride.max(1) * 4) / 16 * 16).clamp(64, DEQUANTIZED_SLICE)
}

/// What a slice's buffer may hold before [`slice_depth`] makes slices shallower: 4 MiB, so that a
/// machine with many cores does not hold a large part of a weight in f32 at once (a width of
/// 18,944, Qwen2.5-VL-7B's intermediate, would otherwise take 19 MB per thread).
const SLICE_BUFFER_BYTES: usize = 4 << 20;

/// The distance between rows of `width` f32 values in [`sliced_gemm`]'s buffers: an odd multiple
/// of 16 values (64 bytes, a cache line), so that successive rows start in different sets of the
/// L1 cache however wide they are.
fn padded_row_stride(width: usize) -> usize {
    width.next_multiple_of(16) | 16
}

/// The output of [`sliced_gemm`], shared by the pool's tasks, each writing its own columns.
struct SharedColumns(*mut f32);
// SAFETY: the tasks write disjoint columns (see `sliced_gemm`).
unsafe impl Sync for SharedColumns {}
impl SharedColumns {
    fn at(&self, column: usize) -> *mut f32 {
        // SAFETY: callers stay inside the buffer.
        unsafe { self.0.add(column) }
    }
}

/// `x·Wᵀ` for a quantized `W` and a wide `x` (f32, contiguous) on the CPU by [`sliced_gemm`], the
/// weight dequantized slice by slice (q8_0 by [`super::thin_q8_0::expand`], the k-quants by
/// candle's `to_float`), so it is never held whole in f32. The activations stay f32 (the block
/// kernels round them to 8 bits), so the result is slightly closer to the unquantized layer's
/// than the kernel's. None where the block kernel is the better choice (few rows, a GPU, a
/// format this path does not expand).
fn wide_quantized_product(x: &Tensor, weight: &QMatMul) -> candle_core::Result<Option<Tensor>> {
    let QMatMul::QTensor(q) = weight else { return Ok(None) };
    if !x.device().is_cpu() || !q.device().is_cpu() || x.dtype() != DType::F32 {
        return Ok(None);
    }
    let (out_features, in_features) = q.shape().dims2()?;
    if in_features == 0 || x.dims().last() != Some(&in_features) {
        return Ok(None);
    }
    if x.elem_count() / in_features < WIDE_ROWS {
        return Ok(None);
    }
    let ggml = q.dtype();
    let expand: fn(&[u8], &mut [f32]) -> bool = match ggml {
        GgmlDType::Q8_0 => super::thin_q8_0::expand,
        GgmlDType::Q6K => expand_blocks::<BlockQ6K>,
        GgmlDType::Q4K => expand_blocks::<BlockQ4K>,
        _ => return Ok(None),
    };
    let data = q.data()?;
    let row_bytes = in_features / ggml.block_size() * ggml.type_size();
    sliced_gemm(x, out_features, SliceSource::Blocks { data: &data, row_bytes, expand })
}

/// `x·Wᵀ` for an f32 `W` and a wide f32 `x` on the CPU by [`sliced_gemm`]; None where this path
/// does not apply (a GPU, another dtype, few rows).
fn wide_f32_product(x: &Tensor, weight: &Tensor) -> candle_core::Result<Option<Tensor>> {
    if !x.device().is_cpu() || !weight.device().is_cpu() || x.dtype() != DType::F32 || weight.dtype() != DType::F32 {
        return Ok(None);
    }
    let (out_features, in_features) = weight.dims2()?;
    if in_features == 0 || x.dims().last() != Some(&in_features) || x.elem_count() / in_features < WIDE_ROWS {
        return Ok(None);
    }
    let weight = weight.contiguous()?;
    let (storage, layout) = weight.storage_and_layout();
    let candle_core::Storage::Cpu(candle_core::CpuStorage::F32(w)) = &*storage else { return Ok(None) };
    let Some((first, last)) = layout.contiguous_offsets() else { return Ok(None) };
    sliced_gemm(&x.contiguous()?, out_features, SliceSource::F32(&w[first..last]))
}

/// `T` blocks expanded to f32 in `out` by candle's own `to_float`; false where the blocks do not
/// line up.
fn expand_blocks<T: GgmlType>(bytes: &[u8], out: &mut [f32]) -> bool {
    let Some(blocks) = super::thin_kquant::as_blocks::<T>(bytes) else { return false };
    if blocks.len() * T::BLCK_SIZE != out.len() {
        return false;
    }
    T::to_float(blocks, out);
    true
}

/// Output features a wide product expands at a time (a quantized weight dequantized, a 16-bit
/// one widened, an f32 one copied) where its rows are narrow enough ([`slice_depth`]): each task
/// expands a slice this many rows deep (896 KiB of f32 at a width of 896), multiplies it and drops
/// it, so the whole weight is never held in f32 and the slice is still in cache when gemm reads it.
const DEQUANTIZED_SLICE: usize = 256;

/// `x·Wᵀ` for a 16-bit `W` kept as stored: the thin kernel for a few f32 rows on the CPU, more f32
/// rows by [`sliced_gemm`] (W widened slice by slice), else W widened whole to `x`'s dtype and
/// multiplied by the device's product.
fn stored_16_bit_product(x: &Tensor, weight: &Tensor) -> candle_core::Result<Tensor> {
    if let Some(y) = super::thin_float::product(x, weight, THIN_ROWS)? {
        return Ok(y);
    }
    let (out_features, in_features) = weight.dims2()?;
    if x.device().is_cpu() && weight.device().is_cpu() && x.dtype() == DType::F32 && x.dims().last() == Some(&in_features) {
        let (storage, layout) = weight.storage_and_layout();
        let source = match (&*storage, layout.contiguous_offsets()) {
            (candle_core::Storage::Cpu(candle_core::CpuStorage::BF16(w)), Some((first, last))) => Some(SliceSource::BF16(&w[first..last])),
            (candle_core::Storage::Cpu(candle_core::CpuStorage::F16(w)), Some((first, last))) => Some(SliceSource::F16(&w[first..last])),
            _ => None,
        };
        if let Some(source) = source {
            if let Some(y) = sliced_gemm(&x.contiguous()?, out_features, source)? {
                return Ok(y);
            }
        }
    }
    x.broadcast_matmul(&weight.to_dtype(x.dtype())?.t()?)
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Linear::Plain(l) => {
                let thin = match super::thin_float::product(x, l.weight(), THIN_ROWS)? {
                    Some(y) => Some(y),
                    None => match thin_product(x, l.weight())? {
                        Some(y) => Some(y),
                        None => wide_f32_product(x, l.weight())?,
                    },
                };
                match thin {
                    Some(y) => match l.bias() {
                        Some(b) => y.broadcast_add(b),
                        None => Ok(y),
                    },
                    None => l.forward(x),
                }
            }
            Linear::Stored16 { weight, bias } => {
                let y = stored_16_bit_product(x, weight)?;
                match bias {
                    Some(b) => y.broadcast_add(b),
                    None => Ok(y),
                }
            }
            Linear::Quantized { weight, bias, .. } => {
                // The block kernels take f32 on every backend; bf16/f16 activations go through f32
                // and come back, which costs little next to the product.
                let dtype = x.dtype();
                let x32 = x.to_dtype(DType::F32)?.contiguous()?;
                let y = if let Some(y) = super::thin_q8_0::product(&x32, weight, THIN_QUANTIZED_ROWS)? {
                    y
                } else if let Some(y) = super::thin_kquant::product(&x32, weight, THIN_QUANTIZED_ROWS)? {
                    y
                } else if let Some(y) = wide_quantized_product(&x32, weight)? {
                    y
                } else {
                    weight.forward(&x32)?
                }
                .to_dtype(dtype)?;
                match bias {
                    Some(b) => y.broadcast_add(b),
                    None => Ok(y),
                }
            }
        }
    }
}

/// Checks that `device` can quantize to and multiply in `format` with `dtype` activations, with
/// a one-block layer; the error is candle's, for the caller to word.
pub fn probe(format: QuantFormat, dtype: DType, device: &Device) -> candle_core::Result<()> {
    if format == QuantFormat::None {
        return Ok(());
    }
    let n = format.block();
    let w = Tensor::ones((2, n), DType::F32, &Device::Cpu)?.to_dtype(dtype)?;
    let layer = Linear::from_weight(w.to_device(device)?, None, format)?;
    let x = Tensor::ones((1, n), dtype, device)?;
    layer.forward(&x)?.to_dtype(DType::F32)?.to_vec2::<f32>()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fused_layer_gives_each_part_what_the_separate_layer_gives() {
        let dev = Device::Cpu;
        let (inp, outs) = (256, [96usize, 32, 32]);
        let mut tensors = std::collections::HashMap::new();
        for (i, out) in outs.iter().enumerate() {
            let w = Tensor::randn(0f32, 1.0, (*out, inp), &dev).unwrap();
            tensors.insert(format!("p{i}.weight"), w);
            tensors.insert(format!("p{i}.bias"), Tensor::randn(0f32, 1.0, *out, &dev).unwrap());
        }
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &dev);
        let x = Tensor::randn(0f32, 1.0, (2, 3, inp), &dev).unwrap();
        for format in [QuantFormat::None, QuantFormat::Q8_0, QuantFormat::Q4K] {
            let fused = FusedLinear::load(inp, [(outs[0], vb.pp("p0")), (outs[1], vb.pp("p1")), (outs[2], vb.pp("p2"))], true, format).unwrap();
            assert_eq!(fused.format_and_parts(), (format, 3));
            let parts = fused.forward(&x).unwrap();
            for (i, (part, out)) in parts.iter().zip(outs).enumerate() {
                let alone = Linear::load(inp, out, true, format, vb.pp(format!("p{i}"))).unwrap().forward(&x).unwrap();
                assert_eq!(part.dims(), alone.dims());
                let diff = (part - &alone).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
                assert!(diff < 1e-4, "{format:?} part {i}: differs by {diff}");
            }
        }
    }

    #[test]
    fn widths_fall_back_to_the_next_format_that_fits() {
        assert_eq!(QuantFormat::Q4K.for_width(3584), QuantFormat::Q4K);
        // Qwen2.5-VL-72B's intermediate width: 29,568 = 115.5 × 256 = 924 × 32.
        assert_eq!(QuantFormat::Q4K.for_width(29_568), QuantFormat::Q8_0);
        assert_eq!(QuantFormat::Q6K.for_width(128), QuantFormat::Q8_0);
        assert_eq!(QuantFormat::Q8_0.for_width(48), QuantFormat::None);
        assert_eq!(QuantFormat::None.for_width(7), QuantFormat::None);
    }

    #[test]
    fn bytes_per_block_are_the_ggml_ones() {
        // q8_0: 32 int8 + an f16 scale = 34 bytes; q6_k: 210 bytes per 256; q4_k: 144 per 256.
        assert_eq!(QuantFormat::Q8_0.weight_bytes(1, 32, DType::F32), 34);
        assert_eq!(QuantFormat::Q6K.weight_bytes(1, 256, DType::F32), 210);
        assert_eq!(QuantFormat::Q4K.weight_bytes(2, 512, DType::F32), 4 * 144);
        assert_eq!(QuantFormat::None.weight_bytes(3, 4, DType::BF16), 24);
    }

    #[test]
    fn thin_products_are_split_over_the_cores_and_equal_the_plain_product() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (1000, 96), &dev).unwrap();
        let b = Tensor::randn(0f32, 1.0, 1000, &dev).unwrap();
        let layer = Linear::Plain(candle_nn::Linear::new(w.clone(), Some(b.clone())));
        for shape in [(1, 1, 96), (3, 1, 96), (1, 8, 96), (2, 9, 96)] {
            let x = Tensor::randn(0f32, 1.0, shape, &dev).unwrap();
            let want = x.broadcast_matmul(&w.t().unwrap()).unwrap().broadcast_add(&b).unwrap();
            let got = layer.forward(&x).unwrap();
            assert_eq!(got.dims(), want.dims());
            let diff = (got - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(diff < 1e-4, "{shape:?}: {diff}");
            let split = thin_product(&x, &w).unwrap().is_some();
            let rows = shape.0 * shape.1;
            if candle_core::utils::get_num_threads() >= 2 {
                assert_eq!(split, rows <= THIN_ROWS, "{shape:?}");
            }
        }
        // A layer too narrow to be worth it stays one product.
        let narrow = Tensor::randn(0f32, 1.0, (32, 96), &dev).unwrap();
        assert!(thin_product(&Tensor::ones((1, 96), DType::F32, &dev).unwrap(), &narrow).unwrap().is_none());
    }

    #[test]
    fn wide_quantized_products_multiply_the_dequantized_weight() {
        let dev = Device::Cpu;
        // 564 output features: two whole slices and a part one.
        let features = 2 * DEQUANTIZED_SLICE + 52;
        let w = Tensor::randn(0f32, 1.0, (features, 512), &dev).unwrap();
        for format in [QuantFormat::Q8_0, QuantFormat::Q6K, QuantFormat::Q4K] {
            let layer = Linear::from_weight(w.clone(), None, format).unwrap();
            let Linear::Quantized { weight, .. } = &layer else { panic!("{format:?} did not quantize") };
            let QMatMul::QTensor(q) = weight else { panic!("{format:?} kept no blocks") };
            let dequantized = q.dequantize(&dev).unwrap();
            for rows in [WIDE_ROWS, 70] {
                let x = Tensor::randn(0f32, 1.0, (1, rows, 512), &dev).unwrap();
                let got = wide_quantized_product(&x, weight).unwrap().expect("a wide product");
                assert_eq!(got.dims(), &[1, rows, features]);
                let want = x.broadcast_matmul(&dequantized.t().unwrap()).unwrap();
                let diff = (&got - &want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
                assert!(diff < 1e-3, "{format:?} {rows} rows: {diff}");
                // What the layer gives is this product, and close to the block kernel's (which
                // also rounds the activations).
                let layer_out = layer.forward(&x).unwrap();
                assert_eq!((&layer_out - &got).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
                let kernel = weight.forward(&x).unwrap();
                let rel = ((&kernel - &got).unwrap().sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap()
                    / got.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap())
                .sqrt();
                assert!(rel < 0.02, "{format:?}: the kernel and the wide product differ by {rel}");
            }
            let few = Tensor::randn(0f32, 1.0, (WIDE_ROWS - 1, 512), &dev).unwrap();
            assert!(wide_quantized_product(&few, weight).unwrap().is_none(), "few rows keep the block kernel");
        }
    }

    #[test]
    fn buffered_rows_never_share_a_cache_set_stride() {
        // Rows 64·(odd) bytes apart visit every L1 set before repeating one; widths that are
        // multiples of 256 bytes (the real models' 1,536, 2,048, 3,584, 4,864, 8,960...) would not.
        for width in [1, 16, 96, 512, 896, 1536, 2048, 3584, 4864, 8960, 29568] {
            let stride = padded_row_stride(width);
            assert!(stride >= width, "{width}");
            assert_eq!(stride % 16, 0, "{width}: whole cache lines");
            assert_eq!((stride / 16) % 2, 1, "{width}: an odd number of cache lines");
            assert!(stride - width < 32, "{width}: at most a line and a half of padding");
        }
    }

    #[test]
    fn slices_of_wide_rows_are_shallower_and_their_products_unchanged() {
        for width in [96, 896, 2048, 4864, 8960, 18944, 29568] {
            let stride = padded_row_stride(width);
            let depth = slice_depth(stride);
            assert!(depth.is_multiple_of(16) && (64..=DEQUANTIZED_SLICE).contains(&depth), "{width}: {depth}");
            assert!(depth == 64 || depth * stride * 4 <= SLICE_BUFFER_BYTES, "{width}: {depth} rows of {stride}");
        }
        assert_eq!(slice_depth(padded_row_stride(896)), DEQUANTIZED_SLICE);
        assert!(slice_depth(padded_row_stride(8192)) < DEQUANTIZED_SLICE);
        // Rows 8,192 wide: slices of 112 features, 300 = 112 + 112 + 76.
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (300, 8192), &dev).unwrap();
        let x = Tensor::randn(0f32, 1.0, (1, WIDE_ROWS + 8, 8192), &dev).unwrap();
        let got = wide_f32_product(&x, &w).unwrap().expect("a wide product");
        let want = x.broadcast_matmul(&w.t().unwrap()).unwrap();
        let diff = (&got - &want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-3, "{diff}");
        let layer = Linear::from_weight(w, None, QuantFormat::Q8_0).unwrap();
        let Linear::Quantized { weight, .. } = &layer else { panic!("q8_0 did not quantize") };
        let QMatMul::QTensor(q) = weight else { panic!("no blocks") };
        let want = x.broadcast_matmul(&q.dequantize(&dev).unwrap().t().unwrap()).unwrap();
        let got = wide_quantized_product(&x, weight).unwrap().expect("a wide product");
        let diff = (&got - &want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-3, "q8_0: {diff}");
    }

    #[test]
    fn wide_16_bit_products_equal_the_widened_product() {
        // More rows than the thin kernel takes (an eval batch of many α through a bf16 head):
        // the weight widened slice by slice gives what the widened weight gives.
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (2 * DEQUANTIZED_SLICE + 52, 96), &dev).unwrap();
        let x = Tensor::randn(0f32, 1.0, (THIN_ROWS + 3, 96), &dev).unwrap();
        for dtype in [DType::BF16, DType::F16] {
            let stored = w.to_dtype(dtype).unwrap();
            let layer = Linear::stored_16_bit(stored.clone(), None).unwrap();
            let got = layer.forward(&x).unwrap();
            let want = x.matmul(&stored.to_dtype(DType::F32).unwrap().t().unwrap()).unwrap();
            let diff = (&got - &want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(diff < 1e-4, "{dtype:?}: {diff}");
        }
    }

    #[test]
    fn wide_f32_products_equal_the_plain_product() {
        // A prefill's rows through an f32 layer: slices of W on the pool, each writing its own
        // columns; two whole slices and a part one, a bias, and a strided input.
        let dev = Device::Cpu;
        let features = 2 * DEQUANTIZED_SLICE + 52;
        let w = Tensor::randn(0f32, 1.0, (features, 96), &dev).unwrap();
        let b = Tensor::randn(0f32, 1.0, features, &dev).unwrap();
        let layer = Linear::Plain(candle_nn::Linear::new(w.clone(), Some(b.clone())));
        let strided = Tensor::randn(0f32, 1.0, (96, 40), &dev).unwrap().t().unwrap();
        for x in [Tensor::randn(0f32, 1.0, (1, WIDE_ROWS, 96), &dev).unwrap(), Tensor::randn(0f32, 1.0, (2, 70, 96), &dev).unwrap(), strided] {
            let product = wide_f32_product(&x, &w).unwrap().expect("a wide product");
            let want = x.broadcast_matmul(&w.t().unwrap()).unwrap();
            assert_eq!(product.dims(), want.dims());
            let diff = (&product - &want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(diff < 1e-4, "{:?}: {diff}", x.dims());
            let got = layer.forward(&x).unwrap();
            let with_bias = want.broadcast_add(&b).unwrap();
            let diff = (&got - &with_bias).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(diff < 1e-4, "{:?} through the layer: {diff}", x.dims());
        }
        let few = Tensor::randn(0f32, 1.0, (WIDE_ROWS - 1, 96), &dev).unwrap();
        assert!(wide_f32_product(&few, &w).unwrap().is_none(), "few rows keep the thin paths");
    }

    #[test]
    fn a_quantized_rows_product_is_the_same_alone_and_in_any_batch_short_of_a_prefill() {
        // An eval batch (1 + k rows per model) gives each row what decoding it alone gives: every
        // product below a prefill's takes the thin paths, which compute each row on its own.
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (300, 512), &dev).unwrap();
        for format in [QuantFormat::Q8_0, QuantFormat::Q6K, QuantFormat::Q4K] {
            let layer = Linear::from_weight(w.clone(), None, format).unwrap();
            let batch = Tensor::randn(0f32, 1.0, (1, THIN_QUANTIZED_ROWS, 512), &dev).unwrap();
            let together = layer.forward(&batch).unwrap();
            for rows in [1, 2, 9, THIN_QUANTIZED_ROWS] {
                let some = layer.forward(&batch.narrow(1, 0, rows).unwrap()).unwrap();
                let first = |t: &Tensor| t.narrow(1, 0, 1).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
                assert_eq!(first(&some), first(&together), "{format:?}: row 0 of {rows} rows vs of {THIN_QUANTIZED_ROWS}");
            }
        }
    }

    #[test]
    fn names_parse_back() {
        for f in QuantFormat::ALL {
            assert_eq!(QuantFormat::parse(f.name()), Ok(f));
        }
        assert!(QuantFormat::parse("q5_k").unwrap_err().contains("use none, q8_0, q6_k or q4_k"));
    }
}
