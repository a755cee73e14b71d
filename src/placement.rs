//! Where a model runs: the device names the command line and the config file accept, the dtype
//! names, opening devices so that models placed on the same GPU share one handle, and checking
//! that a device can run a model's quantized products before any weights load.

use candle_core::{DType, Device};

use crate::error::{Error, Result};
use crate::models::QuantFormat;
use crate::per_model::{PerModel, Role};

/// Where a model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceSpec {
    Cpu,
    Cuda(usize),
}

impl DeviceSpec {
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim().to_ascii_lowercase();
        if s == "cpu" {
            return Ok(DeviceSpec::Cpu);
        }
        let ordinal = if s == "cuda" { Some(0) } else { s.strip_prefix("cuda:").and_then(|n| n.parse::<usize>().ok()) };
        match ordinal {
            Some(n) => Ok(DeviceSpec::Cuda(n)),
            None => Err(format!("unknown device \"{s}\": use cpu, cuda or cuda:N")),
        }
    }

    /// Opens the device; CUDA needs a build with the `cuda` feature.
    pub fn open(self) -> Result<Device> {
        self.open_for("--device")
    }

    /// Opens the device named by `flag` (the command-line flag or config key, for messages).
    pub fn open_for(self, flag: &str) -> Result<Device> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(n) => {
                if !cfg!(feature = "cuda") {
                    return Err(Error::invalid(format!(
                        "{flag} cuda:{n}: this build has no CUDA support; rebuild with `cargo build --release --features cuda` (see the README's GPU section) or use {flag} cpu"
                    )));
                }
                Device::new_cuda(n).map_err(|e| {
                    Error::invalid(format!("{flag} cuda:{n}: cannot open the GPU: {}", crate::error::first_line(&e)))
                })
            }
        }
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// The name of a dtype as the command line spells it.
pub fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F32 => "f32",
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        _ => "other",
    }
}

/// Parses a dtype name as transformers and candle spell them.
pub fn parse_dtype(s: &str) -> std::result::Result<DType, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "f32" | "float32" | "fp32" => Ok(DType::F32),
        "f16" | "float16" | "fp16" | "half" => Ok(DType::F16),
        "bf16" | "bfloat16" => Ok(DType::BF16),
        other => Err(format!("unknown dtype \"{other}\": use f32, f16 or bf16")),
    }
}

/// Each model's dtype and opened device. The paper places its models on different GPUs; the
/// streams only meet as logits, which the session brings together.
pub type Devices = PerModel<(DType, Device)>;

/// The same dtype and device for all three models.
pub fn uniform(dtype: DType, device: &Device) -> Devices {
    PerModel::from_fn(|_| (dtype, device.clone()))
}

/// Opens each model's device, each distinct one once (so that models on one GPU share it);
/// `flags` name what chose each device, for error messages.
pub fn open_all(specs: PerModel<(DType, DeviceSpec)>, flags: PerModel<&str>) -> Result<Devices> {
    let mut opened: Vec<(DeviceSpec, Device)> = Vec::new();
    specs.zip(flags).try_map(|_, ((dtype, spec), flag)| {
        if let Some((_, d)) = opened.iter().find(|(s, _)| *s == spec) {
            return Ok((dtype, d.clone()));
        }
        let d = spec.open_for(flag)?;
        opened.push((spec, d.clone()));
        Ok((dtype, d))
    })
}

/// Refuses a quantization that `device` cannot run for `role`'s model, by quantizing and
/// multiplying one block there (before any weights load).
pub fn check_quant(role: Role, quant: QuantFormat, dtype: DType, device: &Device, spec: DeviceSpec) -> Result<()> {
    crate::models::linear::probe(quant, dtype, device).map_err(|e| {
        let lower = if quant == QuantFormat::Q8_0 { "none" } else { "q8_0" };
        Error::invalid(format!(
            "{} model: {spec} cannot run {quant} quantized weights with {} activations ({}); try --{}-quant {lower}, --quant none, or another --device",
            role.name(),
            dtype_name(dtype),
            crate::error::first_line(&e),
            role.name(),
        ))
    })
}
