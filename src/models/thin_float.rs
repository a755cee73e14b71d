//! Decoding's products with an f32, bf16 or f16 weight and f32 activations on x86-64 CPUs:
//! `x·Wᵀ` for a few rows of `x`, every product and sum in f32, on every core.
//!
//! Why: a decoding step multiplies one row (or a few) by every weight, and candle's matrix product
//! (gemm) runs so thin a product on one thread and, for a 16-bit weight, widens the whole weight to
//! f32 first. Here each weight row is read once, as one sequential stream, 32 values per step on
//! four accumulators, the bytes a few KiB ahead asked for before they are needed
//! ([`super::thin::prefetch`]), against every activation row (which stay in L1), and the output features are
//! split in runs over candle's thread pool ([`super::thin::split`]), the pool candle's own
//! operations use (a second pool beside it competes with its spinning workers for the cores).
//!
//! The 16-bit case is there because Qwen checkpoints store their weights in bf16, and a model that
//! runs in f32 on the CPU would widen them to f32 when it loads. For the vocabulary-sized matrices
//! (the input embedding and the output head, 151,936 rows) that doubles both their memory and, for
//! the head, the bytes every decoding step reads, and widening adds nothing: a bf16 value widened
//! to f32 is the same number. So those matrices stay as the checkpoint stores them and this kernel
//! widens each value as it multiplies (a 16-bit shift for bf16, `vcvtph2ps` for f16): the products
//! and sums are the f32 model's, only the order of the sums differs, and a step reads half the
//! head's bytes.

use candle_core::{DType, Storage, Tensor};
use half::{bf16, f16};

use super::thin::has_avx2_fma_f16c as supported;

/// `x·Wᵀ` for an f32, bf16 or f16 `W` (out_features × in_features, contiguous, on the CPU) and at
/// most `max_rows` f32 rows of `x`, in f32; None where the kernel does not apply (another dtype or
/// device, a CPU without AVX2, more rows), for the caller to multiply another way.
pub fn product(x: &Tensor, weight: &Tensor, max_rows: usize) -> candle_core::Result<Option<Tensor>> {
    if x.dtype() != DType::F32 || !x.device().is_cpu() || !weight.device().is_cpu() || !supported() {
        return Ok(None);
    }
    let (out_features, in_features) = weight.dims2()?;
    if in_features == 0 || x.dims().last() != Some(&in_features) {
        return Ok(None);
    }
    let rows = x.elem_count() / in_features;
    if rows == 0 || rows > max_rows {
        return Ok(None);
    }
    let (storage, layout) = weight.storage_and_layout();
    let Some((start, end)) = layout.contiguous_offsets() else { return Ok(None) };
    let Storage::Cpu(cpu) = &*storage else { return Ok(None) };
    // The weight's bytes, borrowed from its storage, and how its values widen to f32.
    let (bytes, width): (&[u8], Width) = match weight.dtype() {
        DType::BF16 => (number_bytes(&cpu.as_slice::<bf16>()?[start..end]), Width::Bf16),
        DType::F16 => (number_bytes(&cpu.as_slice::<f16>()?[start..end]), Width::F16),
        DType::F32 => (number_bytes(&cpu.as_slice::<f32>()?[start..end]), Width::F32),
        _ => return Ok(None),
    };
    let xs = x.flatten_all()?.to_vec1::<f32>()?;
    let row_bytes = in_features * width.bytes();
    let transposed = super::thin::split(out_features, rows, |first, count, out| {
        run_features(&bytes[first * row_bytes..(first + count) * row_bytes], in_features, &xs, rows, out, width)
    });
    drop(storage);
    Ok(Some(super::thin::row_major(&transposed, rows, out_features, x.dims())?))
}

/// The bytes of a slice of plain numbers.
fn number_bytes<T: Copy>(values: &[T]) -> &[u8] {
    // SAFETY: f32, bf16 and f16 are plain numbers without padding; the bytes live as long as
    // `values` and are only read.
    unsafe { std::slice::from_raw_parts(values.as_ptr() as *const u8, std::mem::size_of_val(values)) }
}

/// How a weight's value widens to f32.
#[derive(Clone, Copy)]
enum Width {
    Bf16,
    F16,
    F32,
}

impl Width {
    fn bytes(self) -> usize {
        match self {
            Width::Bf16 | Width::F16 => 2,
            Width::F32 => 4,
        }
    }
}

/// Output features `weights` (whole rows of `k` values, as bytes) against every activation row,
/// one weight row at a time: read once from memory, found in L1 by the further rows.
fn run_features(weights: &[u8], k: usize, x: &[f32], rows: usize, out: &mut [f32], width: Width) {
    for (f, w) in weights.chunks_exact(k * width.bytes()).enumerate() {
        for row in 0..rows {
            let xr = &x[row * k..(row + 1) * k];
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `product` checked AVX2, FMA and F16C; `w` holds k values of `width` and `xr`
            // k values.
            {
                out[f * rows + row] = unsafe { avx2::dot_row(w.as_ptr(), xr, width) };
            }
        }
    }
}

/// The definition the kernel must agree with: widen, multiply and sum in f32 (for the tests).
#[cfg(test)]
fn dot_reference(w: &[f32], x: &[f32]) -> f32 {
    w.iter().zip(x).map(|(a, b)| a * b).sum()
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::super::thin::PREFETCH_AHEAD;
    use super::Width;
    use std::arch::x86_64::*;

    /// The eight values from value `i` of the row at `w` as f32.
    #[inline(always)]
    unsafe fn widen(w: *const u8, i: usize, width: Width) -> __m256 {
        // SAFETY: the caller reads inside the row.
        unsafe {
            match width {
                Width::Bf16 => _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(w.add(2 * i) as *const __m128i)), 16)),
                Width::F16 => _mm256_cvtph_ps(_mm_loadu_si128(w.add(2 * i) as *const __m128i)),
                Width::F32 => _mm256_loadu_ps(w.add(4 * i) as *const f32),
            }
        }
    }

    /// Value `i` of the row at `w` as f32.
    #[inline(always)]
    unsafe fn widen_one(w: *const u8, i: usize, width: Width) -> f32 {
        // SAFETY: the caller reads inside the row.
        unsafe {
            match width {
                Width::Bf16 => f32::from_bits((std::ptr::read_unaligned(w.add(2 * i) as *const u16) as u32) << 16),
                Width::F16 => half::f16::from_bits(std::ptr::read_unaligned(w.add(2 * i) as *const u16)).to_f32(),
                Width::F32 => std::ptr::read_unaligned(w.add(4 * i) as *const f32),
            }
        }
    }

    /// The dot product of one weight row (`x.len()` values of `width` at `w`) with one f32 row.
    ///
    /// # Safety
    /// The CPU must have AVX2, FMA and F16C; `w` must point at `x.len()` readable values.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot_row(w: *const u8, x: &[f32], width: Width) -> f32 {
        let k = x.len();
        let xp = x.as_ptr();
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= k {
            super::super::thin::prefetch(w.wrapping_add(i * width.bytes() + PREFETCH_AHEAD), 32 * width.bytes());
            for (j, acc) in acc.iter_mut().enumerate() {
                // SAFETY: i + 8j + 8 ≤ k.
                let (wv, xv) = unsafe { (widen(w, i + 8 * j, width), _mm256_loadu_ps(xp.add(i + 8 * j))) };
                *acc = _mm256_fmadd_ps(wv, xv, *acc);
            }
            i += 32;
        }
        while i + 8 <= k {
            // SAFETY: i + 8 ≤ k.
            let (wv, xv) = unsafe { (widen(w, i, width), _mm256_loadu_ps(xp.add(i))) };
            acc[0] = _mm256_fmadd_ps(wv, xv, acc[0]);
            i += 8;
        }
        let a = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let half = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
        let half = _mm_add_ps(half, _mm_movehl_ps(half, half));
        let mut sum = _mm_cvtss_f32(_mm_add_ss(half, _mm_movehdup_ps(half)));
        while i < k {
            // SAFETY: i < k.
            sum += unsafe { widen_one(w, i, width) } * x[i];
            i += 1;
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::super::thin::random;
    use super::*;
    use candle_core::Device;

    #[test]
    fn the_thin_product_is_the_f32_product_of_the_widened_weight() {
        if !supported() {
            eprintln!("skipped: this CPU lacks AVX2/FMA/F16C, the kernel is not used here");
            return;
        }
        // Widths with a tail of single values (101), of groups of eight (72) and none (896); 37
        // features over several tasks; up to 3 rows as an eval batch.
        for dtype in [DType::BF16, DType::F16, DType::F32] {
            for (rows, out_features, in_features) in [(1, 37, 101), (3, 37, 72), (1, 1030, 896), (2, 300, 4864)] {
                let w = Tensor::from_vec(random(out_features * in_features, 7), (out_features, in_features), &Device::Cpu).unwrap().to_dtype(dtype).unwrap();
                let x = Tensor::from_vec(random(rows * in_features, 3 + rows as u64), (1, rows, in_features), &Device::Cpu).unwrap();
                let ours = product(&x, &w, 8).unwrap().expect("the kernel applies to an f32 or 16-bit weight on this CPU");
                let widened = w.to_dtype(DType::F32).unwrap();
                let want = x.broadcast_matmul(&widened.t().unwrap()).unwrap();
                assert_eq!(ours.dims(), want.dims());
                let (a, b) = (ours.flatten_all().unwrap().to_vec1::<f32>().unwrap(), want.flatten_all().unwrap().to_vec1::<f32>().unwrap());
                let ws = widened.to_vec2::<f32>().unwrap();
                let xs = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                for (i, (a, b)) in a.iter().zip(&b).enumerate() {
                    // Only the order of f32 sums differs: a few ulps of the terms' magnitude.
                    let (row, feature) = (i / out_features, i % out_features);
                    let r = dot_reference(&ws[feature], &xs[row * in_features..(row + 1) * in_features]);
                    let bound = 1e-6 * in_features as f32;
                    assert!((a - b).abs() <= bound && (a - r).abs() <= bound, "{dtype:?} {rows}×{in_features}→{out_features}: output {i}: ours {a}, gemm {b}, scalar {r}");
                }
            }
        }
    }

    #[test]
    fn other_dtypes_many_rows_and_views_are_left_to_the_caller() {
        let w = Tensor::from_vec(random(64 * 32, 5), (64, 32), &Device::Cpu).unwrap();
        let x = Tensor::from_vec(random(32, 1), (1, 32), &Device::Cpu).unwrap();
        assert!(product(&x, &w.to_dtype(DType::F64).unwrap(), 8).unwrap().is_none(), "an f64 weight is not this kernel's");
        let half = w.to_dtype(DType::BF16).unwrap();
        let many = Tensor::from_vec(random(9 * 32, 1), (9, 32), &Device::Cpu).unwrap();
        assert!(product(&many, &half, 8).unwrap().is_none());
        assert!(product(&x.to_dtype(DType::BF16).unwrap(), &half, 8).unwrap().is_none(), "bf16 activations are not this kernel's");
        let transposed = Tensor::from_vec(random(32 * 64, 5), (32, 64), &Device::Cpu).unwrap().to_dtype(DType::BF16).unwrap().t().unwrap();
        assert!(product(&x, &transposed, 8).unwrap().is_none(), "a strided weight is not read in place");
    }
}
