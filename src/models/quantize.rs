//! Load-time quantization of one weight, split over the cores.
//!
//! Why: candle's `QTensor::quantize` widens the whole weight to f32 and quantizes it on one
//! thread, and the k-quants' block search is slow (a q4_k load of a model with Qwen2.5-1.5B's
//! widths took a minute on the 2-core development machine, most of it in that loop). Here the
//! weight's rows are cut into runs of whole rows (GGML blocks never straddle a row), and each run
//! is widened to f32 and quantized by candle's own block code (`GgmlType::from_float`) as one task
//! on rayon's thread pool. The blocks are the bytes candle's one-thread path writes, only one run
//! per thread is held in f32 at a time, and a load scales with the cores.

use candle_core::quantized::k_quants::{BlockQ4K, BlockQ6K, BlockQ8_0, GgmlType};
use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::{CpuStorage, Device, Storage, Tensor};
use half::{bf16, f16};
use rayon::prelude::*;

/// Values per task: big enough that a task's setup is noise, small enough that every core gets
/// several tasks on the smallest layers of the models we load (896 × 128 in Qwen2.5-0.5B's k/v).
const VALUES_PER_TASK: usize = 1 << 16;

/// The weight (rows, in) quantized to `ggml`, on `device`. The weight may be on any device and
/// in f32, bf16 or f16; it is quantized on the host and the blocks are then placed on `device`.
pub fn quantize_weight(weight: &Tensor, ggml: GgmlDType, device: &Device) -> candle_core::Result<QTensor> {
    let host = quantize_on_host(weight, ggml)?;
    if device.is_cpu() {
        return Ok(host);
    }
    candle_core::quantized::ggml_file::qtensor_from_ggml(ggml, &host.data()?, host.shape().dims().to_vec(), device)
}

/// The weight quantized to `ggml`, held on the host.
pub fn quantize_on_host(weight: &Tensor, ggml: GgmlDType) -> candle_core::Result<QTensor> {
    let (rows, width) = weight.dims2()?;
    if width % ggml.block_size() != 0 {
        candle_core::bail!("a {width}-wide weight cannot be quantized to {ggml:?}, whose blocks hold {} values", ggml.block_size());
    }
    let host = weight.to_device(&Device::Cpu)?.contiguous()?;
    let (storage, layout) = host.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else { candle_core::bail!("a host tensor is not in host memory") };
    let (start, end) = layout.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg("a contiguous tensor has no contiguous offsets".into()))?;
    let values = match cpu {
        CpuStorage::F32(v) => Values::F32(&v[start..end]),
        CpuStorage::BF16(v) => Values::BF16(&v[start..end]),
        CpuStorage::F16(v) => Values::F16(&v[start..end]),
        _ => candle_core::bail!("a {:?} weight cannot be quantized", host.dtype()),
    };
    let storage: Box<dyn candle_core::quantized::QuantizedType> = match ggml {
        GgmlDType::Q8_0 => Box::new(quantize_rows::<BlockQ8_0>(values, width)),
        GgmlDType::Q6K => Box::new(quantize_rows::<BlockQ6K>(values, width)),
        GgmlDType::Q4K => Box::new(quantize_rows::<BlockQ4K>(values, width)),
        // Formats `--quant` does not offer: candle's one-thread path.
        _ => return QTensor::quantize(&host, ggml),
    };
    QTensor::new(QStorage::Cpu(storage), (rows, width))
}

/// A weight's values as the checkpoint holds them.
#[derive(Clone, Copy)]
enum Values<'a> {
    F32(&'a [f32]),
    BF16(&'a [bf16]),
    F16(&'a [f16]),
}

impl Values<'_> {
    fn len(&self) -> usize {
        match self {
            Values::F32(v) => v.len(),
            Values::BF16(v) => v.len(),
            Values::F16(v) => v.len(),
        }
    }
}

/// Rows of `width` values quantized to `T`'s blocks, runs of whole rows per task.
fn quantize_rows<T: GgmlType>(values: Values<'_>, width: usize) -> Vec<T> {
    let blocks_per_row = width / T::BLCK_SIZE;
    let rows = values.len() / width;
    let rows_per_task = (VALUES_PER_TASK / width).max(1);
    let mut blocks = vec![T::zeros(); rows * blocks_per_row];
    blocks.par_chunks_mut(rows_per_task * blocks_per_row).enumerate().for_each(|(task, out)| {
        let first = task * rows_per_task * width;
        let count = out.len() * T::BLCK_SIZE;
        match values {
            Values::F32(v) => T::from_float(&v[first..first + count], out),
            Values::BF16(v) => T::from_float(&v[first..first + count].iter().map(|x| x.to_f32()).collect::<Vec<_>>(), out),
            Values::F16(v) => T::from_float(&v[first..first + count].iter().map(|x| x.to_f32()).collect::<Vec<_>>(), out),
        }
    });
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    /// The split is invisible: every format and source dtype gives the bytes of candle's
    /// one-thread quantization, for row counts that leave a part task at the end.
    #[test]
    fn blocks_are_candles_own() {
        let dev = Device::Cpu;
        for (ggml, width) in [(GgmlDType::Q8_0, 96), (GgmlDType::Q8_0, 4864), (GgmlDType::Q6K, 512), (GgmlDType::Q4K, 768)] {
            // More rows than one task holds, and not a multiple of a task's rows.
            let rows = VALUES_PER_TASK / width * 3 + 5;
            let w = Tensor::randn(0f32, 1.0, (rows, width), &dev).unwrap();
            for dtype in [DType::F32, DType::BF16, DType::F16] {
                let w = w.to_dtype(dtype).unwrap();
                let want = QTensor::quantize(&w, ggml).unwrap();
                let got = quantize_weight(&w, ggml, &dev).unwrap();
                assert_eq!(got.shape(), want.shape());
                assert_eq!(got.dtype(), ggml);
                assert!(got.data().unwrap() == want.data().unwrap(), "{ggml:?} {dtype:?} {rows}×{width}: blocks differ");
            }
        }
    }

    #[test]
    fn a_width_that_is_not_whole_blocks_is_an_error() {
        let w = Tensor::zeros((4, 96), DType::F32, &Device::Cpu).unwrap();
        let err = quantize_weight(&w, GgmlDType::Q4K, &Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("96-wide") && err.contains("256"), "{err}");
    }

    /// A view into a larger tensor (rows 32.. of 64) quantizes its own values, not its storage's
    /// (candle's `QTensor::quantize` reads the whole storage and fails on such a view).
    #[test]
    fn a_view_quantizes_its_values() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (64, 96), &dev).unwrap();
        let part = w.narrow(0, 32, 32).unwrap();
        let fresh = Tensor::from_vec(part.flatten_all().unwrap().to_vec1::<f32>().unwrap(), (32, 96), &dev).unwrap();
        let want = QTensor::quantize(&fresh, GgmlDType::Q8_0).unwrap();
        let got = quantize_weight(&part, GgmlDType::Q8_0, &dev).unwrap();
        assert!(got.data().unwrap() == want.data().unwrap());
    }
}
