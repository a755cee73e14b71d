//! Decoding's products with q6_k and q4_k weights on the CPU: `x·Wᵀ` for a few rows of `x`, each
//! weight row read where candle's `QTensor` holds it and multiplied by candle's own block dot
//! product, on every core.
//!
//! Why not candle's product: on x86-64 with AVX2, candle 0.11 multiplies q4_k weights (and q6_k
//! weights against more than one row) through a repacked copy of the weight, tiles of 16 rows for
//! its vector kernels, made on the first product and kept beside the original for the life of the
//! tensor. The tiles hold unpacked f32 scales (192 bytes per 256 q4_k values, against the block's
//! 144), so once a q4_k model has decoded a token it holds 2.3 times its q4_k bytes — more than
//! the same model in q8_0 — and every token reads the larger copy. Here nothing is copied: the
//! activations are rounded to q8_K blocks (256 values, an f32 scale, 16 partial sums), as GGML
//! and candle do for these formats, and each weight row's blocks are handed in place to candle's
//! `vec_dot` for that block type (its AVX2 code on x86-64), runs of output features split over
//! candle's thread pool as [`super::thin::split`] splits them. The numbers are candle's: the same
//! activation rounding and the same dot product per output feature.

use candle_core::quantized::k_quants::{BlockQ4K, BlockQ6K, GgmlType};
use candle_core::quantized::{GgmlDType, QMatMul};
use candle_core::Tensor;

/// `x·Wᵀ` for a q6_k or q4_k `W` (out_features × in_features) and at most `max_rows` rows of `x`
/// on the CPU, or None where this path does not apply (another format or device, more rows), for
/// the caller to use another.
pub fn product(x: &Tensor, weight: &QMatMul, max_rows: usize) -> candle_core::Result<Option<Tensor>> {
    let QMatMul::QTensor(q) = weight else { return Ok(None) };
    if !x.device().is_cpu() || !q.device().is_cpu() {
        return Ok(None);
    }
    let (out_features, in_features) = q.shape().dims2()?;
    if in_features == 0 || x.dims().last() != Some(&in_features) {
        return Ok(None);
    }
    let rows = x.elem_count() / in_features;
    if rows == 0 || rows > max_rows {
        return Ok(None);
    }
    let data = q.data()?;
    let xs = x.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let transposed = match q.dtype() {
        GgmlDType::Q4K => multiply::<BlockQ4K>(&data, out_features, in_features, &xs, rows),
        GgmlDType::Q6K => multiply::<BlockQ6K>(&data, out_features, in_features, &xs, rows),
        _ => None,
    };
    let Some(transposed) = transposed else { return Ok(None) };
    Ok(Some(super::thin::row_major(&transposed, rows, out_features, x.dims())?))
}

/// The blocks of `bytes` as `T`s, or None where they do not line up (a length that is not whole
/// blocks, or storage not aligned for `T`).
pub(super) fn as_blocks<T: GgmlType>(bytes: &[u8]) -> Option<&[T]> {
    let size = std::mem::size_of::<T>();
    if !bytes.len().is_multiple_of(size) || !(bytes.as_ptr() as usize).is_multiple_of(std::mem::align_of::<T>()) {
        return None;
    }
    // SAFETY: the length is whole blocks and the pointer is aligned for T; the block types are
    // plain data (f16 scales and byte arrays), valid for any bit pattern, which is how candle
    // itself reads them from a file's bytes.
    Some(unsafe { std::slice::from_raw_parts(bytes.as_ptr() as *const T, bytes.len() / size) })
}

/// The product, feature-major (`out[feature·rows + row]`), or None where the blocks do not line up.
fn multiply<T: GgmlType>(data: &[u8], out_features: usize, k: usize, xs: &[f32], rows: usize) -> Option<Vec<f32>> {
    if !k.is_multiple_of(T::BLCK_SIZE) {
        return None;
    }
    let per_row = k / T::BLCK_SIZE;
    let weights = as_blocks::<T>(data)?;
    if weights.len() != out_features * per_row {
        return None;
    }
    // The activations in the block type the weights' dot product takes (q8_K), row by row.
    let mut activations = vec![T::VecDotType::zeros(); rows * per_row];
    for (x, a) in xs.chunks_exact(k).zip(activations.chunks_exact_mut(per_row)) {
        T::VecDotType::from_float(x, a);
    }
    Some(super::thin::split(out_features, rows, |first, count, out| {
        for (f, w) in weights[first * per_row..(first + count) * per_row].chunks_exact(per_row).enumerate() {
            // candle's block dot product reads the row; the bytes as far ahead of it are asked for now.
            super::thin::prefetch((w.as_ptr() as *const u8).wrapping_add(super::thin::PREFETCH_AHEAD), std::mem::size_of_val(w));
            for (row, a) in activations.chunks_exact(per_row).enumerate() {
                out[f * rows + row] = T::vec_dot(k, w, a);
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::super::thin::random;
    use super::*;
    use candle_core::Device;
    use candle_core::quantized::QTensor;

    #[test]
    fn the_thin_product_is_candles_block_product_without_its_copy() {
        for format in [GgmlDType::Q4K, GgmlDType::Q6K] {
            // 37 features: a run shorter than a thread's share; 1, 3 and 8 rows as decoding and an
            // eval batch have them.
            for (rows, out_features, in_features) in [(1, 37, 256), (3, 37, 512), (8, 300, 768), (1, 1030, 1536)] {
                let w = Tensor::from_vec(random(out_features * in_features, 7), (out_features, in_features), &Device::Cpu).unwrap();
                let weight = QMatMul::from_qtensor(QTensor::quantize(&w, format).unwrap()).unwrap();
                let x = Tensor::from_vec(random(rows * in_features, 3 + rows as u64), (1, rows, in_features), &Device::Cpu).unwrap();
                let ours = product(&x, &weight, 8).unwrap().expect("q4_k and q6_k on the CPU take this path");
                // The reference: each output is candle's own dot product of the weight row's blocks
                // with the q8_K-rounded activation row, computed here without any split.
                let QMatMul::QTensor(q) = &weight else { unreachable!() };
                let data = q.data().unwrap();
                let got = ours.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let per_row = in_features / 256;
                let xs = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let check = |want: &dyn Fn(usize, usize) -> f32| {
                    for r in 0..rows {
                        for f in 0..out_features {
                            assert_eq!(got[r * out_features + f], want(r, f), "{format:?} {rows}×{in_features}→{out_features}: row {r} feature {f}");
                        }
                    }
                };
                fn dot<T: GgmlType>(data: &[u8], xs: &[f32], k: usize, per_row: usize, r: usize, f: usize) -> f32 {
                    let w = as_blocks::<T>(data).unwrap();
                    let mut a = vec![T::VecDotType::zeros(); per_row];
                    T::VecDotType::from_float(&xs[r * k..(r + 1) * k], &mut a);
                    T::vec_dot(k, &w[f * per_row..(f + 1) * per_row], &a)
                }
                match format {
                    GgmlDType::Q4K => check(&|r, f| dot::<BlockQ4K>(&data, &xs, in_features, per_row, r, f)),
                    _ => check(&|r, f| dot::<BlockQ6K>(&data, &xs, in_features, per_row, r, f)),
                }
                // And it is the product of the dequantized weight, within the activations' 8-bit rounding.
                let dense = x.broadcast_matmul(&q.dequantize(&Device::Cpu).unwrap().t().unwrap()).unwrap();
                let dense = dense.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let scale = dense.iter().fold(0f32, |m, v| m.max(v.abs()));
                let worst = got.iter().zip(&dense).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(worst < 0.02 * scale, "{format:?}: {worst} of {scale}");
                assert!(product(&x, &weight, rows - 1).unwrap().is_none(), "more rows than asked are left to the caller");
            }
        }
    }

    #[test]
    fn q8_0_and_unaligned_inputs_are_left_to_others() {
        let w = Tensor::from_vec(random(32 * 256, 5), (32, 256), &Device::Cpu).unwrap();
        let q8 = QMatMul::from_qtensor(QTensor::quantize(&w, GgmlDType::Q8_0).unwrap()).unwrap();
        let x = Tensor::from_vec(random(256, 1), (1, 256), &Device::Cpu).unwrap();
        assert!(product(&x, &q8, 8).unwrap().is_none());
        // Bytes that are not whole blocks, or not aligned for the block type, are not read as blocks.
        let bytes = vec![0u8; 2 * std::mem::size_of::<BlockQ4K>() + 2];
        assert!(as_blocks::<BlockQ4K>(&bytes[..bytes.len() - 1]).is_none());
        let offset = if (bytes.as_ptr() as usize).is_multiple_of(2) { 1 } else { 0 };
        assert!(as_blocks::<BlockQ4K>(&bytes[offset..offset + 2 * std::mem::size_of::<BlockQ4K>()]).is_none());
    }
}
