//! What the decode-time kernels ([`super::thin_q8_0`], [`super::thin_kquant`],
//! [`super::thin_float`]) share: the CPU check, the software prefetch of the weights ahead of the
//! reads, the split of a product's output features over candle's thread pool, and the join of the
//! tasks' feature-major results into the caller's tensor.

use candle_core::{Device, Tensor};

/// Output features a task takes at least: below this, handing out work costs more than it saves.
const MIN_FEATURES_PER_TASK: usize = 64;
/// Tasks per thread: enough that a thread slowed by something else does not hold the step up.
const TASKS_PER_THREAD: usize = 8;

/// How far ahead of a kernel's reads, in bytes, it asks for the weight's bytes to be brought into
/// cache. A decoding step streams every weight once from memory, and the hardware prefetcher
/// alone does not keep enough of it in flight: with two cores on the development machine (a
/// 2-core AVX-512 Xeon VM, 23 GB/s for a plain two-thread read of 2 GB) the q8_0 kernel read a
/// 145 MB weight at 8.7 GB/s without this and 17 GB/s with it, and the bench model decoded at
/// 13.5–15.8 tokens/s in q8_0 without it and 22–27 with it (1.5 B: 5.6–6.2 → 9.8–11.1). Distances
/// of 2–8 KiB did about as well; 1 KiB was short of it.
pub(super) const PREFETCH_AHEAD: usize = 4096;

/// Asks the CPU to bring the cache lines holding `bytes` bytes from `p` into cache. A hint: an
/// address past the end of the weights is not read and does not fault, so callers prefetch a
/// fixed distance ahead without checking where the weights end; nothing on other CPUs.
#[inline(always)]
pub(super) fn prefetch(p: *const u8, bytes: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        let mut offset = 0;
        while offset < bytes {
            // SAFETY: a prefetch reads nothing the program sees and cannot fault; SSE, which it
            // needs, is part of every x86-64 CPU.
            unsafe { std::arch::x86_64::_mm_prefetch(p.wrapping_add(offset) as *const i8, std::arch::x86_64::_MM_HINT_T0) };
            offset += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, bytes);
}

/// Whether this CPU runs the AVX2 kernels (AVX2 with FMA and F16C: every x86-64 CPU since 2013).
pub(super) fn has_avx2_fma_f16c() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Runs `task(first, count, out)` for runs of output features on candle's own thread pool and
/// returns what they wrote: a feature-major buffer (`out[feature·rows + row]`), of which each task
/// gets its run, `count·rows` values starting at feature `first`. candle's pool, not rayon's: its
/// workers spin for a while after each op, so work handed to another pool would compete with them
/// for the cores (measured: slower than one thread).
pub(super) fn split(out_features: usize, rows: usize, task: impl Fn(usize, usize, &mut [f32]) + Sync) -> Vec<f32> {
    let pool = candle_core::utils::barrier_pool();
    let threads = pool.n_workers() + 1;
    let per_task = out_features.div_ceil(threads * TASKS_PER_THREAD).max(MIN_FEATURES_PER_TASK).next_multiple_of(4);
    let tasks = out_features.div_ceil(per_task);
    let mut out = vec![0f32; out_features * rows];
    let dst = SharedOut(out.as_mut_ptr());
    pool.execute_chunked(tasks, |range| {
        for t in range {
            let first = t * per_task;
            let count = per_task.min(out_features - first);
            // SAFETY: task `t` alone writes features first..first+count, i.e. this run of `out`,
            // and `out` outlives the call, which returns only when every task is done.
            let out = unsafe { std::slice::from_raw_parts_mut(dst.at(first * rows), count * rows) };
            task(first, count, out);
        }
    });
    out
}

/// The output buffer, shared by the pool's tasks, each writing its own disjoint run.
struct SharedOut(*mut f32);
// SAFETY: the tasks write disjoint runs (see `split`).
unsafe impl Sync for SharedOut {}
impl SharedOut {
    fn at(&self, offset: usize) -> *mut f32 {
        // SAFETY: callers stay inside the buffer.
        unsafe { self.0.add(offset) }
    }
}

/// The tasks' feature-major product (`transposed[feature·rows + row]`) as the row-major tensor the
/// caller wants: `x_dims` with the last dimension replaced by `out_features`.
pub(super) fn row_major(transposed: &[f32], rows: usize, out_features: usize, x_dims: &[usize]) -> candle_core::Result<Tensor> {
    let mut out = vec![0f32; rows * out_features];
    for (feature, values) in transposed.chunks_exact(rows).enumerate() {
        for (row, &v) in values.iter().enumerate() {
            out[row * out_features + feature] = v;
        }
    }
    let mut dims = x_dims.to_vec();
    if let Some(last) = dims.last_mut() {
        *last = out_features;
    }
    Tensor::from_vec(out, dims, &Device::Cpu)
}

/// Values in [-1, 1) from a seeded generator, for the kernels' tests.
#[cfg(test)]
pub(super) fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}
