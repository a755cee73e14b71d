//! Reading a checkpoint's tensors from its safetensors files one at a time.
//!
//! candle's own loader memory-maps the files and copies each tensor out of the mapping, so while
//! a model loads the process holds both the mapped pages (counted in its resident memory) and the
//! copies: twice the weights at the peak. [`SafetensorsFiles`] instead reads each tensor's bytes
//! with an ordinary file read when the model asks for it, converts them to the wanted dtype and
//! device, and lets the bytes go, so the peak is the loaded model plus about one tensor (the file
//! pages sit in the kernel's page cache, which the system reclaims, not in the process). It is a
//! `VarBuilder` backend, so the models' `new(vb)` code is the same for every way of loading.
//!
//! The headers are parsed and checked by the `safetensors` crate (offsets contiguous and sized by
//! shape and dtype); a file whose data region is shorter or longer than its header says, a tensor
//! stored as integers where the model wants floats, and a dtype candle cannot hold are refused by
//! name. Tensor data is little-endian, as the format defines.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use safetensors::tensor::Metadata;
use safetensors::Dtype;

use crate::error::{Error, Result};

/// The largest header accepted (the format's own limit is 100 MB).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Where one tensor's bytes are.
#[derive(Debug, Clone)]
struct Slot {
    file: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    /// Absolute byte offset of the data in the file.
    start: u64,
    len: usize,
}

/// The tensors of a checkpoint's safetensors files, read on demand.
#[derive(Debug)]
pub struct SafetensorsFiles {
    paths: Vec<PathBuf>,
    slots: HashMap<String, Slot>,
}

/// One file's header: its tensors and where its data region starts.
pub fn read_header(path: &Path) -> Result<(Metadata, u64)> {
    let mut f = File::open(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    let size = f.metadata().map_err(|source| Error::Io { path: path.to_path_buf(), source })?.len();
    let mut len = [0u8; 8];
    f.read_exact(&mut len)
        .map_err(|_| Error::weights(path, "too short to be a safetensors file; download it again"))?;
    let len = u64::from_le_bytes(len);
    if len > MAX_HEADER_BYTES || len.saturating_add(8) > size {
        return Err(Error::weights(path, "not a safetensors file (bad header length); download it again"));
    }
    let mut header = vec![0u8; len as usize];
    f.read_exact(&mut header).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    let metadata: Metadata = serde_json::from_slice(&header).map_err(|e| {
        Error::weights(path, format!("not a safetensors file (its header does not parse: {}); download it again", crate::error::first_line(&e)))
    })?;
    let data_start = 8 + len;
    let data_len = size - data_start;
    if metadata.data_len() as u64 != data_len {
        return Err(Error::weights(
            path,
            format!(
                "the header describes {} bytes of tensor data but the file holds {data_len}: the file is truncated or damaged; download it again",
                metadata.data_len()
            ),
        ));
    }
    Ok((metadata, data_start))
}

impl SafetensorsFiles {
    /// Reads and checks the headers of `paths` (no tensor data is read). A name in several files
    /// takes the last file's tensor, as candle's loader does.
    pub fn open(paths: &[PathBuf]) -> Result<Self> {
        let mut slots = HashMap::new();
        for (file, path) in paths.iter().enumerate() {
            let (metadata, data_start) = read_header(path)?;
            for (name, info) in metadata.tensors() {
                let (s, e) = info.data_offsets;
                slots.insert(name, Slot { file, dtype: info.dtype, shape: info.shape.clone(), start: data_start + s as u64, len: e - s });
            }
        }
        Ok(SafetensorsFiles { paths: paths.to_vec(), slots })
    }

    /// The tensor `name` as `dtype` on `device`, read from its file now.
    pub fn load(&self, name: &str, dtype: DType, device: &Device) -> candle_core::Result<Tensor> {
        let slot = self
            .slots
            .get(name)
            .ok_or_else(|| candle_core::Error::CannotFindTensor { path: name.to_string() }.bt())?;
        let path = &self.paths[slot.file];
        let stored = stored_dtype(slot.dtype).map_err(|what| candle_core::Error::Msg(format!("{name} in {} is stored as {what}", path.display())))?;
        if !stored.is_float() && dtype.is_float() {
            return Err(candle_core::Error::Msg(format!(
                "{name} in {} is stored as {:?} integers where the model needs floating-point weights: this is not a float checkpoint (quantized integer formats are not read; use the model's bf16, f16 or f32 safetensors)",
                path.display(),
                slot.dtype
            )));
        }
        let mut bytes = vec![0u8; slot.len];
        let mut f = File::open(path)?;
        f.seek(SeekFrom::Start(slot.start))?;
        f.read_exact(&mut bytes)?;
        #[cfg(target_endian = "big")]
        compile_error!("safetensors data is little-endian: reading it on a big-endian host would need byte swaps");
        // One tensor's bytes live only until the typed copy exists; the dtype conversion then
        // replaces the typed copy, and the transfer to a GPU leaves no host copy behind.
        let host = Tensor::from_raw_buffer(&bytes, stored, &slot.shape, &Device::Cpu)?;
        drop(bytes);
        let host = if stored == dtype { host } else { host.to_dtype(dtype)? };
        host.to_device(device)
    }
}

/// The candle dtype of a safetensors dtype, or the name of one candle cannot hold.
pub(crate) fn stored_dtype(d: Dtype) -> std::result::Result<DType, String> {
    Ok(match d {
        Dtype::F32 => DType::F32,
        Dtype::F16 => DType::F16,
        Dtype::BF16 => DType::BF16,
        Dtype::F64 => DType::F64,
        Dtype::U8 => DType::U8,
        Dtype::U32 => DType::U32,
        Dtype::I16 => DType::I16,
        Dtype::I32 => DType::I32,
        Dtype::I64 => DType::I64,
        Dtype::F8_E4M3 => DType::F8E4M3,
        other => return Err(format!("{other:?}, a dtype proxythinker cannot read; use the model's bf16, f16 or f32 safetensors")),
    })
}

impl SimpleBackend for SafetensorsFiles {
    fn get(&self, s: Shape, name: &str, _: candle_nn::Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        if let Some(slot) = self.slots.get(name) {
            // Checked before reading: a mismatched checkpoint fails without reading a byte.
            if slot.shape.as_slice() != s.dims() {
                return Err(candle_core::Error::UnexpectedShape {
                    msg: format!("shape mismatch for {name}"),
                    expected: s,
                    got: Shape::from(slot.shape.clone()),
                }
                .bt());
            }
        }
        self.load(name, dtype, dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.load(name, dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.slots.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, tensors: &[(&str, Tensor)]) {
        let data: HashMap<String, Tensor> = tensors.iter().map(|(n, t)| (n.to_string(), t.clone())).collect();
        candle_core::safetensors::save(&data, path).unwrap();
    }

    #[test]
    fn tensors_read_back_equal_in_every_float_dtype_and_convert() {
        let dir = tempfile::tempdir().unwrap();
        let a = Tensor::arange(0f32, 12.0, &Device::Cpu).unwrap().reshape((3, 4)).unwrap();
        let b = a.to_dtype(DType::BF16).unwrap();
        let p1 = dir.path().join("a.safetensors");
        let p2 = dir.path().join("b.safetensors");
        write(&p1, &[("x.weight", a.clone()), ("y", a.to_dtype(DType::F16).unwrap())]);
        write(&p2, &[("z", b)]);
        let files = SafetensorsFiles::open(&[p1, p2]).unwrap();
        let want: Vec<Vec<f32>> = a.to_vec2().unwrap();
        for name in ["x.weight", "y", "z"] {
            for dtype in [DType::F32, DType::BF16, DType::F16] {
                let t = files.get(Shape::from((3, 4)), name, candle_nn::Init::Const(0.0), dtype, &Device::Cpu).unwrap();
                assert_eq!(t.dtype(), dtype);
                assert_eq!(t.to_dtype(DType::F32).unwrap().to_vec2::<f32>().unwrap(), want, "{name} as {dtype:?}");
            }
        }
        assert!(files.contains_tensor("z") && !files.contains_tensor("w"));
        let e = files.get(Shape::from((4, 3)), "x.weight", candle_nn::Init::Const(0.0), DType::F32, &Device::Cpu).unwrap_err();
        assert!(e.to_string().contains("shape mismatch for x.weight"), "{e}");
    }

    #[test]
    fn integer_weights_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.safetensors");
        write(&p, &[("w", Tensor::new(&[1i64, 2, 3], &Device::Cpu).unwrap())]);
        let files = SafetensorsFiles::open(std::slice::from_ref(&p)).unwrap();
        let e = files.load("w", DType::F32, &Device::Cpu).unwrap_err().to_string();
        assert!(e.contains("w in ") && e.contains("I64 integers") && e.contains("not a float checkpoint"), "{e}");
        // Asked as integers (no model does), it reads.
        assert_eq!(files.load("w", DType::I64, &Device::Cpu).unwrap().to_vec1::<i64>().unwrap(), vec![1, 2, 3]);
    }

    #[test]
    fn a_truncated_file_is_refused_before_any_tensor_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.safetensors");
        write(&p, &[("w", Tensor::zeros((64, 64), DType::F32, &Device::Cpu).unwrap())]);
        let len = std::fs::metadata(&p).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        f.set_len(len - 100).unwrap();
        let e = SafetensorsFiles::open(&[p]).unwrap_err().to_string();
        assert!(e.contains("16384 bytes of tensor data but the file holds 16284") && e.contains("truncated"), "{e}");
    }
}
