//! Decoding's products with q8_0 weights on x86-64 CPUs: `x·Wᵀ` for a few rows of `x`, read in
//! place from the blocks that candle's `QTensor` holds, on every core.
//!
//! Why the project has its own kernel: a q8_0 decode step spends most of its time in these
//! products, and candle 0.11's two x86 paths both lose here. Its generic one takes one block per
//! step of a single accumulator chain (each step waits for the last fused multiply-add) and
//! converts both f16 scales through a function call; its repacked AVX-512 VNNI kernel only takes
//! input widths that are multiples of 256 (Qwen2.5-0.5B's 896 is not) and keeps a second, repacked
//! copy of every weight it multiplies beside the original, twice the memory. This kernel reads
//! each weight row as one sequential stream with four blocks in flight on four accumulators,
//! asks for the bytes a few KiB ahead before it needs them ([`super::thin::prefetch`]), converts
//! the scales inline, and runs on candle's own thread pool. On the 2-core development machine it
//! reads the 151,936 × 896 head (145 MB, from memory) at 17 GB/s, where candle's generic path gets
//! 10.4, and a layer that stays in cache at 20–26 GB/s.
//!
//! The numerics are GGML's q8_0 × q8_0, as candle's generic path computes them: the activations
//! are rounded to 8 bits per block of 32 with an f16 scale (amax / 127), each block's integer dot
//! product is scaled by both scales and the blocks are summed in f32. Only the order of the f32
//! sums differs from candle's.

use candle_core::quantized::{GgmlDType, QMatMul};
use candle_core::Tensor;
use half::f16;

use super::thin::has_avx2_fma_f16c as supported;

/// Values per q8_0 block.
const BLOCK: usize = 32;
/// Bytes per q8_0 block: an f16 scale, then 32 signed bytes.
const BLOCK_BYTES: usize = 34;

/// Activation rows rounded to q8_0: `qs[r·k + i]`, one scale per block in `d[r·k/32 + b]`.
struct QuantizedRows {
    qs: Vec<i8>,
    d: Vec<f32>,
}

/// GGML's q8_0 rounding of `rows` rows of width `k` (a multiple of 32): the scale is stored as f16
/// and used as the f16 value, as candle's `BlockQ8_0::from_float` does.
fn quantize_rows(x: &[f32], k: usize) -> QuantizedRows {
    let mut qs = vec![0i8; x.len()];
    let mut d = Vec::with_capacity(x.len() / BLOCK);
    for (xs, q) in x.chunks_exact(BLOCK).zip(qs.chunks_exact_mut(BLOCK)) {
        let amax = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = amax / 127.0;
        let inverse = if scale != 0.0 { 1.0 / scale } else { 0.0 };
        d.push(f16::from_f32(scale).to_f32());
        for (q, &v) in q.iter_mut().zip(xs) {
            *q = (v * inverse).round() as i8;
        }
    }
    debug_assert_eq!(d.len() * BLOCK, qs.len());
    debug_assert!(k.is_multiple_of(BLOCK));
    QuantizedRows { qs, d }
}

/// `x·Wᵀ` for a q8_0 `W` (out_features × in_features) and `rows` rows of `x` on the CPU, or None
/// where this kernel does not apply (another format or device, a CPU without AVX2, more rows than
/// `max_rows`), for the caller to use candle's.
pub fn product(x: &Tensor, weight: &QMatMul, max_rows: usize) -> candle_core::Result<Option<Tensor>> {
    let QMatMul::QTensor(q) = weight else { return Ok(None) };
    if q.dtype() != GgmlDType::Q8_0 || !x.device().is_cpu() || !q.device().is_cpu() || !supported() {
        return Ok(None);
    }
    let (out_features, in_features) = q.shape().dims2()?;
    if in_features == 0 || !in_features.is_multiple_of(BLOCK) || x.dims().last() != Some(&in_features) {
        return Ok(None);
    }
    let rows = x.elem_count() / in_features;
    if rows == 0 || rows > max_rows {
        return Ok(None);
    }
    let data = q.data()?;
    let row_bytes = in_features / BLOCK * BLOCK_BYTES;
    if data.len() != out_features * row_bytes {
        return Ok(None);
    }
    let xs = x.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let activations = quantize_rows(&xs, in_features);
    let transposed = multiply(&data, out_features, in_features, &activations, rows);
    Ok(Some(super::thin::row_major(&transposed, rows, out_features, x.dims())?))
}

/// The product, feature-major (`out[feature·rows + row]`), split in runs of output features over
/// candle's thread pool (see [`super::thin::split`]).
fn multiply(blocks: &[u8], out_features: usize, k: usize, x: &QuantizedRows, rows: usize) -> Vec<f32> {
    let row_bytes = k / BLOCK * BLOCK_BYTES;
    super::thin::split(out_features, rows, |first, count, out| run_features(&blocks[first * row_bytes..(first + count) * row_bytes], row_bytes, k, x, rows, out))
}

/// Output features `weights` (whole rows of blocks) against every activation row: one weight
/// row at a time, read once from memory; further activation rows find it in L1.
fn run_features(weights: &[u8], row_bytes: usize, k: usize, x: &QuantizedRows, rows: usize, out: &mut [f32]) {
    let blocks = k / BLOCK;
    for (f, w) in weights.chunks_exact(row_bytes).enumerate() {
        for row in 0..rows {
            let xq = &x.qs[row * k..(row + 1) * k];
            let xd = &x.d[row * blocks..(row + 1) * blocks];
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `product` checked AVX2, FMA and F16C; `w` is one whole row of `blocks` blocks
            // and `xq`/`xd` one activation row of them, which is what the kernel reads.
            {
                out[f * rows + row] = unsafe { avx2::dot_row(w, xq, xd) };
            }
        }
    }
}

/// q8_0 blocks expanded to f32 (`out` holds 32 values per 34-byte block of `blocks`): each value
/// is its 8-bit integer times the block's f16 scale, one f32 multiply, as candle's `to_float`
/// computes it, so the values are the same bits. For a prefill's product from the dequantized
/// weight; with AVX2 eight values per instruction where candle's portable loop (built for any
/// x86-64) takes four. False where the lengths do not match.
pub fn expand(blocks: &[u8], out: &mut [f32]) -> bool {
    if !blocks.len().is_multiple_of(BLOCK_BYTES) || out.len() != blocks.len() / BLOCK_BYTES * BLOCK {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    if super::thin::has_avx2_fma_f16c() {
        // SAFETY: the CPU has AVX2, FMA and F16C; the lengths were checked above.
        unsafe { avx2::expand(blocks, out) };
        return true;
    }
    expand_portable(blocks, out);
    true
}

/// [`expand`] on any CPU.
fn expand_portable(blocks: &[u8], out: &mut [f32]) {
    for (block, values) in blocks.chunks_exact(BLOCK_BYTES).zip(out.chunks_exact_mut(BLOCK)) {
        let d = half::f16::from_bits(u16::from_le_bytes([block[0], block[1]])).to_f32();
        for (v, &q) in values.iter_mut().zip(&block[2..]) {
            *v = q as i8 as f32 * d;
        }
    }
}

/// The scalar definition the kernel must agree with (for the tests).
#[cfg(test)]
fn dot_reference(w: &[u8], xq: &[i8], xd: &[f32]) -> f32 {
    let mut sum = 0f32;
    for (b, block) in w.chunks_exact(BLOCK_BYTES).enumerate() {
        let dw = f16::from_le_bytes([block[0], block[1]]).to_f32();
        let dot: i32 = block[2..].iter().zip(&xq[b * BLOCK..(b + 1) * BLOCK]).map(|(&w, &x)| (w as i8) as i32 * x as i32).sum();
        sum += dw * xd[b] * dot as f32;
    }
    sum
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::super::thin::PREFETCH_AHEAD;
    use super::{BLOCK, BLOCK_BYTES};
    use std::arch::x86_64::*;

    /// [`super::expand`] eight values per instruction.
    ///
    /// # Safety
    /// The CPU must have AVX2 and F16C; `out` must hold 32 values per 34-byte block of `blocks`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn expand(blocks: &[u8], out: &mut [f32]) {
        debug_assert_eq!(out.len(), blocks.len() / BLOCK_BYTES * BLOCK);
        for b in 0..blocks.len() / BLOCK_BYTES {
            // SAFETY: block b lies inside `blocks` and its 32 values inside `out`.
            unsafe {
                let p = blocks.as_ptr().add(b * BLOCK_BYTES);
                let bits = std::ptr::read_unaligned(p as *const u16);
                let d = _mm256_set1_ps(_mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32))));
                let o = out.as_mut_ptr().add(b * BLOCK);
                for j in 0..4 {
                    let q = _mm_loadl_epi64(p.add(2 + 8 * j) as *const __m128i);
                    let v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
                    _mm256_storeu_ps(o.add(8 * j), _mm256_mul_ps(v, d));
                }
            }
        }
    }

    /// The dot product of one weight row with one q8_0 activation row, four blocks in flight on
    /// four accumulators; the row is read as one sequential stream, each group of four blocks
    /// asking for the bytes [`PREFETCH_AHEAD`] further on.
    ///
    /// # Safety
    /// The CPU must have AVX2, FMA and F16C; `w` must hold `xd.len()` blocks and `xq`
    /// `32·xd.len()` values.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot_row(w: &[u8], xq: &[i8], xd: &[f32]) -> f32 {
        let blocks = xd.len();
        debug_assert!(w.len() >= blocks * BLOCK_BYTES && xq.len() == blocks * BLOCK);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); 4];
        let base = w.as_ptr();
        let term = |b: usize| {
            // SAFETY: block b lies inside `w` and `xq` (b < blocks).
            let p = unsafe { base.add(b * BLOCK_BYTES) };
            let bits = unsafe { std::ptr::read_unaligned(p as *const u16) };
            let dw = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)));
            let wv = unsafe { _mm256_loadu_si256(p.add(2) as *const __m256i) };
            let xv = unsafe { _mm256_loadu_si256(xq.as_ptr().add(b * BLOCK) as *const __m256i) };
            let pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv));
            (_mm256_set1_ps(dw * xd[b]), _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones)))
        };
        let mut b = 0;
        while b + 4 <= blocks {
            super::super::thin::prefetch(base.wrapping_add(b * BLOCK_BYTES + PREFETCH_AHEAD), 4 * BLOCK_BYTES);
            for (j, acc) in acc.iter_mut().enumerate() {
                let (d, v) = term(b + j);
                *acc = _mm256_fmadd_ps(d, v, *acc);
            }
            b += 4;
        }
        while b < blocks {
            let (d, v) = term(b);
            acc[0] = _mm256_fmadd_ps(d, v, acc[0]);
            b += 1;
        }
        let a = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let half = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
        let half = _mm_add_ps(half, _mm_movehl_ps(half, half));
        _mm_cvtss_f32(_mm_add_ss(half, _mm_movehdup_ps(half)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::thin::random;
    use super::*;
    use candle_core::Device;
    use candle_core::quantized::QTensor;
    use candle_core::Module;

    /// The expansion is candle's `to_float`, bit for bit, on the AVX2 path and the portable one.
    #[test]
    fn expanded_blocks_are_candles_values() {
        use candle_core::quantized::k_quants::{BlockQ8_0, GgmlType};
        let w = candle_core::Tensor::randn(0f32, 1.0, (37, 96), &candle_core::Device::Cpu).unwrap();
        let q = candle_core::quantized::QTensor::quantize(&w, candle_core::quantized::GgmlDType::Q8_0).unwrap();
        let bytes = q.data().unwrap();
        let blocks = super::super::thin_kquant::as_blocks::<BlockQ8_0>(&bytes).unwrap();
        let mut want = vec![0f32; 37 * 96];
        BlockQ8_0::to_float(blocks, &mut want);
        let mut got = vec![f32::NAN; 37 * 96];
        assert!(expand(&bytes, &mut got));
        assert_eq!(got, want);
        let mut portable = vec![f32::NAN; 37 * 96];
        expand_portable(&bytes, &mut portable);
        assert_eq!(portable, want);
        assert!(!expand(&bytes[..bytes.len() - 1], &mut got), "a part block is refused");
    }

    fn layer(out_features: usize, in_features: usize) -> QMatMul {
        let w = Tensor::from_vec(random(out_features * in_features, 7), (out_features, in_features), &Device::Cpu).unwrap();
        QMatMul::from_qtensor(QTensor::quantize(&w, GgmlDType::Q8_0).unwrap()).unwrap()
    }

    #[test]
    fn the_thin_product_equals_candles_q8_0_product() {
        if !supported() {
            eprintln!("skipped: this CPU lacks AVX2/FMA/F16C, the kernel is not used here");
            return;
        }
        // 37 output features: nine groups of four and a tail of one; 3 rows as an eval batch. Widths
        // that are not multiples of 256, where candle multiplies q8_0 by q8_0 too (at multiples of
        // 256 its VNNI kernel rounds the activations per 256 instead).
        for (rows, out_features, in_features) in [(1, 37, 96), (3, 37, 96), (1, 1030, 896), (2, 64, 4832)] {
            let weight = layer(out_features, in_features);
            let x = Tensor::from_vec(random(rows * in_features, 3 + rows as u64), (1, rows, in_features), &Device::Cpu).unwrap();
            let ours = product(&x, &weight, 8).unwrap().expect("the kernel applies to q8_0 on this CPU");
            let candle = weight.forward(&x).unwrap();
            assert_eq!(ours.dims(), candle.dims());
            let (a, b) = (ours.flatten_all().unwrap().to_vec1::<f32>().unwrap(), candle.flatten_all().unwrap().to_vec1::<f32>().unwrap());
            let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
            for (i, (a, b)) in a.iter().zip(&b).enumerate() {
                assert!((a - b).abs() <= 1e-5 * scale, "{rows}×{in_features}→{out_features}: output {i}: ours {a}, candle {b}");
            }
        }
    }

    #[test]
    fn every_feature_and_row_is_the_blockwise_dot_product() {
        if !supported() {
            return;
        }
        let (rows, out_features, in_features) = (2, 13, 64);
        let weight = layer(out_features, in_features);
        let QMatMul::QTensor(q) = &weight else { unreachable!() };
        let data = q.data().unwrap();
        let xs = random(rows * in_features, 11);
        let activations = quantize_rows(&xs, in_features);
        let out = multiply(&data, out_features, in_features, &activations, rows);
        let row_bytes = in_features / BLOCK * BLOCK_BYTES;
        for f in 0..out_features {
            for r in 0..rows {
                let want = dot_reference(&data[f * row_bytes..(f + 1) * row_bytes], &activations.qs[r * in_features..(r + 1) * in_features], &activations.d[r * 2..(r + 1) * 2]);
                let got = out[f * rows + r];
                assert!((got - want).abs() <= 1e-5 * want.abs().max(1.0), "feature {f}, row {r}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn other_formats_and_wide_inputs_are_left_to_candle() {
        let w = Tensor::from_vec(random(32 * 256, 5), (32, 256), &Device::Cpu).unwrap();
        let q4 = QMatMul::from_qtensor(QTensor::quantize(&w, GgmlDType::Q4K).unwrap()).unwrap();
        let x = Tensor::from_vec(random(256, 1), (1, 256), &Device::Cpu).unwrap();
        assert!(product(&x, &q4, 8).unwrap().is_none());
        let q8 = layer(32, 256);
        let many = Tensor::from_vec(random(9 * 256, 1), (9, 256), &Device::Cpu).unwrap();
        assert!(product(&many, &q8, 8).unwrap().is_none());
    }
}
