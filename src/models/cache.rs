//! The key/value cache of one or more sequences decoded by a model.
//!
//! A model holds weights only; the cache is a separate value the caller owns, so one set of
//! weights can decode several sequences. A cache holds `rows` sequences of equal length that are
//! decoded together in one batched forward. Besides keys and values it remembers, per row, the
//! M-RoPE position delta (how far image tokens shifted the text positions) so that decoding
//! continues at the right rotary positions, and can be truncated to an earlier length to
//! re-decode from there.
//!
//! Each layer's keys and values live in buffers with room for more positions than are used
//! (rows, kv_heads, capacity, head_dim): a step writes its new position in place and the
//! attention reads a view of the first `len` positions, so a step costs no copy of the cache.
//! The buffers grow by whole chunks of positions when full (the only time the cache is copied),
//! and truncation only sets the length.

use candle_core::{Result as CandleResult, Tensor};

use crate::error::{Error, Result};

/// Positions a full buffer grows by (rounded up to fit what is appended).
const GROWTH: usize = 256;

/// Keys and values of every layer for a batch of equal-length sequences.
/// Not `Clone`: the buffers are written in place, so two caches must never share them (take
/// [`select_rows`](Self::select_rows) for a copy).
#[derive(Debug)]
pub struct KvCache {
    /// Per layer: key and value buffers of shape (rows, kv_heads, capacity, head_dim) whose first
    /// `len` positions hold the sequence, or `None` before the first forward.
    layers: Vec<Option<(Tensor, Tensor)>>,
    len: usize,
    rows: usize,
    /// Per row: position of the next token minus its index (M-RoPE delta).
    rope_deltas: Vec<i64>,
    /// The shortest length the cache may be truncated to: positions after the last image are
    /// `index + delta`, so truncation must not cut into an image (or the text before it).
    min_len: usize,
}

impl KvCache {
    /// An empty cache for a model with `num_layers` decoder layers.
    pub fn new(num_layers: usize) -> Self {
        KvCache { layers: vec![None; num_layers], len: 0, rows: 0, rope_deltas: Vec::new(), min_len: 0 }
    }

    /// Number of tokens cached per row.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of sequences (rows) in the cache; 0 before the first forward.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The M-RoPE position delta of each row.
    pub fn rope_deltas(&self) -> &[i64] {
        &self.rope_deltas
    }

    /// The shortest length [`truncate`](Self::truncate) accepts.
    pub fn min_len(&self) -> usize {
        self.min_len
    }

    pub(crate) fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Records the rows and rope deltas of a prompt about to be prefilled into an empty cache.
    pub(crate) fn start(&mut self, rope_deltas: Vec<i64>, min_len: usize) {
        self.rows = rope_deltas.len();
        self.rope_deltas = rope_deltas;
        self.min_len = min_len;
    }

    /// Positions each layer's buffers hold room for (0 before the first forward).
    pub fn capacity(&self) -> usize {
        self.layers.iter().flatten().next().and_then(|(k, _)| k.dim(2).ok()).unwrap_or(0)
    }

    /// Appends `k`, `v` of shape (rows, kv_heads, new, head_dim) to layer `layer` and returns
    /// views of the whole keys and values of that layer (positions `0..len + new`). The caller
    /// advances the length with [`advance`](Self::advance) once every layer has appended.
    pub(crate) fn append(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> CandleResult<(Tensor, Tensor)> {
        let (k, v) = (k.contiguous()?, v.contiguous()?);
        let (at, new) = (self.len, k.dim(2)?);
        let used = at + new;
        let (bk, bv) = match self.layers[layer].take() {
            Some((bk, bv)) if bk.dim(2)? >= used => (bk, bv),
            old => {
                // A new buffer with room for the next chunk of steps; what the old one held moves over.
                let (rows, heads, _, head_dim) = k.dims4()?;
                let capacity = used.div_ceil(GROWTH) * GROWTH;
                let bk = Tensor::zeros((rows, heads, capacity, head_dim), k.dtype(), k.device())?;
                let bv = Tensor::zeros((rows, heads, capacity, v.dim(3)?), v.dtype(), v.device())?;
                if let (Some((ok, ov)), true) = (old, at > 0) {
                    bk.slice_set(&ok.narrow(2, 0, at)?.contiguous()?, 2, 0)?;
                    bv.slice_set(&ov.narrow(2, 0, at)?.contiguous()?, 2, 0)?;
                }
                (bk, bv)
            }
        };
        bk.slice_set(&k, 2, at)?;
        bv.slice_set(&v, 2, at)?;
        let views = (bk.narrow(2, 0, used)?, bv.narrow(2, 0, used)?);
        self.layers[layer] = Some((bk, bv));
        Ok(views)
    }

    /// Advances the cached length after every layer appended `n` tokens.
    pub(crate) fn advance(&mut self, n: usize) {
        self.len += n;
    }

    /// Forgets everything after the first `len` tokens of every row, so decoding continues from
    /// there. `len` must lie between [`min_len`](Self::min_len) and the current length.
    pub fn truncate(&mut self, len: usize) -> Result<()> {
        if len > self.len {
            return Err(Error::invalid(format!(
                "cannot truncate a cache of {} tokens to {len}: it is shorter than that",
                self.len
            )));
        }
        if len < self.min_len {
            return Err(Error::invalid(format!(
                "cannot truncate the cache to {len} tokens: the prompt's image ends at token {}; prefill again instead",
                self.min_len
            )));
        }
        // The positions after `len` are overwritten by the next steps and never read before.
        self.len = len;
        Ok(())
    }

    /// A new cache holding the given rows of this one, in that order (a row may repeat).
    pub fn select_rows(&self, rows: &[usize]) -> Result<KvCache> {
        if let Some(&bad) = rows.iter().find(|&&r| r >= self.rows) {
            return Err(Error::invalid(format!("row {bad} does not exist: the cache holds {} rows", self.rows)));
        }
        if rows.is_empty() {
            return Err(Error::invalid("select_rows needs at least one row"));
        }
        let device = self.layers.iter().flatten().next().map(|(k, _)| k.device().clone());
        let mut layers = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            layers.push(match (layer, &device) {
                (Some((k, v)), Some(dev)) => {
                    let idx = Tensor::from_vec(rows.iter().map(|&r| r as u32).collect::<Vec<_>>(), rows.len(), dev)?;
                    Some((k.index_select(&idx, 0)?, v.index_select(&idx, 0)?))
                }
                _ => None,
            });
        }
        Ok(KvCache {
            layers,
            len: self.len,
            rows: rows.len(),
            rope_deltas: rows.iter().map(|&r| self.rope_deltas[r]).collect(),
            min_len: self.min_len,
        })
    }

    /// Stacks caches of equal length into one cache whose rows are theirs, in order, so that the
    /// sequences decode in one batched forward.
    pub fn cat_rows(caches: &[&KvCache]) -> Result<KvCache> {
        let Some(first) = caches.first() else {
            return Err(Error::invalid("cat_rows needs at least one cache"));
        };
        if let Some(other) = caches.iter().find(|c| c.len != first.len || c.layers.len() != first.layers.len()) {
            return Err(Error::invalid(format!(
                "caches of different lengths ({} and {} tokens) cannot decode as one batch",
                first.len, other.len
            )));
        }
        let mut layers = Vec::with_capacity(first.layers.len());
        for i in 0..first.layers.len() {
            let parts: Vec<&(Tensor, Tensor)> = caches.iter().filter_map(|c| c.layers[i].as_ref()).collect();
            layers.push(if parts.len() == caches.len() {
                // Only the positions in use: the caches' capacities may differ.
                let ks = parts.iter().map(|(k, _)| k.narrow(2, 0, first.len)).collect::<CandleResult<Vec<_>>>()?;
                let vs = parts.iter().map(|(_, v)| v.narrow(2, 0, first.len)).collect::<CandleResult<Vec<_>>>()?;
                Some((Tensor::cat(&ks, 0)?, Tensor::cat(&vs, 0)?))
            } else {
                None
            });
        }
        Ok(KvCache {
            layers,
            len: first.len,
            rows: caches.iter().map(|c| c.rows).sum(),
            rope_deltas: caches.iter().flat_map(|c| c.rope_deltas.iter().copied()).collect(),
            min_len: caches.iter().map(|c| c.min_len).max().unwrap_or(0),
        })
    }
}
