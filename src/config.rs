//! The config file and the one place where settings are resolved.
//!
//! `config.toml` lives in the platform's config directory (`~/.config/proxythinker/` on Linux,
//! `~/Library/Application Support/proxythinker/` on macOS), or wherever `PROXYTHINKER_CONFIG`
//! points. Every setting is resolved in [`resolve`], in this order: the command line, then the
//! config file, then the preset (chosen by `--preset` or by `preset` in the file), then the
//! built-in default. Each resolved value remembers where it came from; `proxythinker config`
//! prints them.

use std::path::{Path, PathBuf};

use candle_core::DType;
use serde::{Deserialize, Deserializer};
use serde_json::json;

use crate::error::{Error, Result};
use crate::guidance::Sampling;
use crate::models::{QuantFormat, Quantization};
use crate::placement::{dtype_name, parse_dtype, DeviceSpec, Devices};
use crate::presets::{self, Preset, Suffix};
use crate::trio::{PerModel, Role};

/// The environment variable that overrides the config file's path.
pub const CONFIG_ENV: &str = "PROXYTHINKER_CONFIG";

/// What config.toml may hold. Keys are the long flags' names with `_` for `-`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default, deserialize_with = "de_preset")]
    pub preset: Option<String>,
    pub base: Option<String>,
    pub rft: Option<String>,
    pub small: Option<String>,
    #[serde(default, deserialize_with = "de_alpha")]
    pub alpha: Option<f32>,
    pub suffix: Option<String>,
    /// Each model reads its own chat template (`--own-templates`).
    pub own_templates: Option<bool>,
    /// The self-verification phrases the UI highlights (see [`crate::markers`]).
    pub verification_phrases: Option<Vec<String>>,
    pub temperature: Option<f32>,
    pub top_k: Option<usize>,
    pub top_p: Option<f32>,
    pub seed: Option<u64>,
    /// Stop a stream when its text contains one of these strings (`--stop`).
    pub stop: Option<Vec<String>>,
    /// Keep decoding past the end-of-sequence tokens (`--ignore-eos`).
    pub ignore_eos: Option<bool>,
    pub max_new_tokens: Option<usize>,
    #[serde(default, deserialize_with = "de_dtype")]
    pub dtype: Option<DType>,
    #[serde(default, deserialize_with = "de_device")]
    pub device: Option<DeviceSpec>,
    #[serde(default, deserialize_with = "de_dtype")]
    pub base_dtype: Option<DType>,
    #[serde(default, deserialize_with = "de_dtype")]
    pub rft_dtype: Option<DType>,
    #[serde(default, deserialize_with = "de_dtype")]
    pub small_dtype: Option<DType>,
    #[serde(default, deserialize_with = "de_device")]
    pub base_device: Option<DeviceSpec>,
    #[serde(default, deserialize_with = "de_device")]
    pub rft_device: Option<DeviceSpec>,
    #[serde(default, deserialize_with = "de_device")]
    pub small_device: Option<DeviceSpec>,
    /// The block format of every model's text decoder linear layers (`--quant`).
    #[serde(default, deserialize_with = "de_quant")]
    pub quant: Option<QuantFormat>,
    #[serde(default, deserialize_with = "de_quant")]
    pub base_quant: Option<QuantFormat>,
    #[serde(default, deserialize_with = "de_quant")]
    pub rft_quant: Option<QuantFormat>,
    #[serde(default, deserialize_with = "de_quant")]
    pub small_quant: Option<QuantFormat>,
    /// The block format of every model's output head (`--quant-head`; unquantized by default).
    #[serde(default, deserialize_with = "de_quant")]
    pub quant_head: Option<QuantFormat>,
    /// The Hugging Face cache (sets HF_HUB_CACHE when the environment does not).
    pub hub_cache: Option<PathBuf>,
}

fn de_dtype<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<DType>, D::Error> {
    let s = String::deserialize(d)?;
    parse_dtype(&s).map(Some).map_err(serde::de::Error::custom)
}

fn de_device<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<DeviceSpec>, D::Error> {
    let s = String::deserialize(d)?;
    DeviceSpec::parse(&s).map(Some).map_err(serde::de::Error::custom)
}

fn de_quant<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<QuantFormat>, D::Error> {
    let s = String::deserialize(d)?;
    QuantFormat::parse(&s).map(Some).map_err(serde::de::Error::custom)
}

fn de_preset<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    presets::find(&s).map(|p| Some(p.name.to_string())).map_err(serde::de::Error::custom)
}

fn de_alpha<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<f32>, D::Error> {
    let a = f32::deserialize(d)?;
    if a.is_finite() {
        Ok(Some(a))
    } else {
        Err(serde::de::Error::custom(format!("alpha must be a finite number, got {a}")))
    }
}

/// Where the config file is looked for: `$PROXYTHINKER_CONFIG`, else `config.toml` in the
/// platform's config directory.
pub fn config_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(CONFIG_ENV).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    directories::ProjectDirs::from("", "", "proxythinker").map(|d| d.config_dir().join("config.toml"))
}

/// The config file as found (a missing file is an empty config).
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub path: Option<PathBuf>,
    pub found: bool,
    pub file: ConfigFile,
}

/// Reads the config file, if there is one. A malformed file or an unknown key is an error naming
/// the file, the line and column, and the key.
pub fn load() -> Result<Loaded> {
    let Some(path) = config_path() else { return Ok(Loaded::default()) };
    if path.exists() && !path.is_file() {
        return Err(Error::invalid(format!(
            "config file {}: is a directory or special file, not a TOML file; name a file in {CONFIG_ENV} (or unset it)",
            path.display()
        )));
    }
    if !path.is_file() {
        return Ok(Loaded { path: Some(path), found: false, file: ConfigFile::default() });
    }
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
    let file = parse(&text, &path)?;
    Ok(Loaded { path: Some(path), found: true, file })
}

/// Parses config.toml text; `path` is for error messages.
pub fn parse(text: &str, path: &Path) -> Result<ConfigFile> {
    toml::from_str::<ConfigFile>(text).map_err(|e| {
        let message = cut(e.message().lines().next().unwrap_or("malformed").trim().trim_end_matches('.'));
        let Some(span) = e.span() else {
            return Error::invalid(format!("{}: {message}", path.display()));
        };
        let start = span.start.min(text.len());
        let before = &text[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        let line_text = text[line_start..].lines().next().unwrap_or("");
        let key = line_text.split_once('=').map(|(k, _)| k.trim().trim_matches('"')).filter(|k| !k.is_empty() && !k.starts_with('['));
        let key = match key {
            Some(k) => format!(" key `{}`:", cut(k)),
            None => String::new(),
        };
        Error::invalid(format!("{}:{line}:{column}:{key} {message}", path.display()))
    })
}

/// `s`, cut to a length that fits in a one-line message (a hostile file's 8 MB key must not
/// become an 8 MB line).
fn cut(s: &str) -> String {
    const MAX: usize = 80;
    match s.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}… ({} bytes)", &s[..at], s.len()),
        None => s.to_string(),
    }
}

/// Where a setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    /// The config file at this path.
    File(PathBuf),
    CommandLine,
    Preset(&'static str),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Default => write!(f, "default"),
            Source::File(p) => write!(f, "{}", p.display()),
            Source::CommandLine => write!(f, "command line"),
            Source::Preset(n) => write!(f, "preset {n}"),
        }
    }
}

/// A resolved value and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting<T> {
    pub value: T,
    pub from: Source,
}

/// The first of command line, config file, preset that has a value.
fn pick_opt<T>(cli: Option<T>, file: Option<T>, file_src: &Source, preset: Option<(T, &'static str)>) -> Option<Setting<T>> {
    if let Some(value) = cli {
        return Some(Setting { value, from: Source::CommandLine });
    }
    if let Some(value) = file {
        return Some(Setting { value, from: file_src.clone() });
    }
    preset.map(|(value, name)| Setting { value, from: Source::Preset(name) })
}

/// The first of command line, config file, preset, default.
fn pick<T>(cli: Option<T>, file: Option<T>, file_src: &Source, preset: Option<(T, &'static str)>, default: T) -> Setting<T> {
    pick_opt(cli, file, file_src, preset).unwrap_or(Setting { value: default, from: Source::Default })
}

/// What the command line said (None where a flag was not given). The front ends build it from
/// their flags in one place (`cli::DecodingArgs::overrides`); tests build it by hand.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Whether the subcommand takes models (`demo` does not: the file's models, preset and
    /// suffix are ignored there).
    pub with_models: bool,
    pub preset: Option<String>,
    pub models: PerModel<Option<String>>,
    pub alpha: Option<f32>,
    pub suffix: Option<String>,
    /// `--own-templates`.
    pub own_templates: Option<bool>,
    /// `--greedy`: sampling settings of the file are overridden.
    pub greedy: bool,
    pub temperature: Option<f32>,
    pub top_k: Option<usize>,
    pub top_p: Option<f32>,
    pub seed: Option<u64>,
    pub stop: Option<Vec<String>>,
    pub ignore_eos: Option<bool>,
    pub max_new_tokens: Option<usize>,
    pub placement: PlacementOverrides,
}

/// The placement flags: one dtype/device/quantization for all, and each model's own.
#[derive(Debug, Clone, Default)]
pub struct PlacementOverrides {
    pub dtype: Option<DType>,
    pub device: Option<DeviceSpec>,
    pub quant: Option<QuantFormat>,
    pub dtypes: PerModel<Option<DType>>,
    pub devices: PerModel<Option<DeviceSpec>>,
    pub quants: PerModel<Option<QuantFormat>>,
    /// The output heads' format (`--quant-head`).
    pub quant_head: Option<QuantFormat>,
}

/// One model's resolved dtype, device and weight quantization, with where each came from.
#[derive(Debug, Clone)]
pub struct ModelPlacement {
    pub dtype: Setting<DType>,
    pub device: Setting<DeviceSpec>,
    /// The block format of the text decoder's linear layers (`none`: the dtype's).
    pub quant: Setting<QuantFormat>,
    /// The block format of the output head (`none` unless `--quant-head` or `quant_head` asks).
    pub head: Setting<QuantFormat>,
    /// What named the device, for error messages ("--small-device", "device in /path/config.toml").
    pub device_flag: String,
}

/// The resolved placement of base, rft and small.
#[derive(Debug, Clone)]
pub struct TrioPlacement(pub PerModel<ModelPlacement>);

impl TrioPlacement {
    /// (dtype, device) of base, rft and small.
    pub fn specs(&self) -> PerModel<(DType, DeviceSpec)> {
        self.0.as_ref().map(|m| (m.dtype.value, m.device.value))
    }

    /// The quantization of base, rft and small.
    pub fn quants(&self) -> PerModel<QuantFormat> {
        self.0.as_ref().map(|m| m.quant.value)
    }

    /// The whole quantization of base, rft and small: linear layers and output head.
    pub fn quantizations(&self) -> PerModel<Quantization> {
        self.0.as_ref().map(|m| Quantization { format: m.quant.value, head: m.head.value, vocab_dtype: None })
    }

    /// Opens the devices, each one once, so that models on the same GPU share it, and checks that
    /// each device can run its model's quantized products.
    pub fn open(&self) -> Result<Devices> {
        let devices = crate::placement::open_all(self.specs(), self.0.as_ref().map(|m| m.device_flag.as_str()))?;
        for ((role, m), (dtype, device)) in self.0.iter().zip(devices.as_ref().into_array()) {
            crate::placement::check_quant(role, m.quant.value, *dtype, device, m.device.value)?;
            crate::placement::check_quant(role, m.head.value, *dtype, device, m.device.value)?;
        }
        Ok(devices)
    }

    /// "cuda:0" when the three agree, else "base cuda:0, rft cuda:1, small cuda:1".
    fn summary(values: PerModel<String>) -> String {
        if values.all_equal() {
            values.base
        } else {
            format!("base {}, rft {}, small {}", values.base, values.rft, values.small)
        }
    }

    /// The devices for a header: "cuda:0", or "base cuda:0, rft cuda:1, small cuda:1".
    pub fn device_summary(&self) -> String {
        Self::summary(self.specs().map(|(_, spec)| spec.to_string()))
    }

    /// The dtypes for a header: "bf16", or each model's when they differ.
    pub fn dtype_summary(&self) -> String {
        Self::summary(self.specs().map(|(d, _)| dtype_name(d).to_string()))
    }

    /// The quantizations for a header: "q8_0", or each model's when they differ.
    pub fn quant_summary(&self) -> String {
        Self::summary(self.quants().map(|q| q.name().to_string()))
    }

    /// A short description for headers and reports: "cpu f32" ("cpu bf16 q8_0" when quantized,
    /// "cpu f32 q8_0 head q8_0" with a quantized head), or each model's when they differ.
    pub fn describe(&self) -> String {
        Self::summary(self.specs().zip(self.quantizations()).map(|((d, spec), q)| {
            let mut s = format!("{spec} {}", dtype_name(d));
            if q.format != QuantFormat::None {
                s.push_str(&format!(" {}", q.format));
            }
            if q.head != QuantFormat::None {
                s.push_str(&format!(" head {}", q.head));
            }
            s
        }))
    }

    /// The placement as JSON: {"base": {"device", "dtype"}, "rft": ..., "small": ...}, with
    /// "quant" for a quantized model (absent when unquantized, so the unquantized form is the
    /// one `run --json` always printed).
    pub fn to_json(&self) -> serde_json::Value {
        let s = self.specs().zip(self.quantizations()).map(|((d, spec), q)| {
            let mut m = json!({"device": spec.to_string(), "dtype": dtype_name(d)});
            if q.format != QuantFormat::None {
                m["quant"] = json!(q.format.name());
            }
            if q.head != QuantFormat::None {
                m["quant_head"] = json!(q.head.name());
            }
            m
        });
        json!({"base": s.base, "rft": s.rft, "small": s.small})
    }
}

/// Every setting, resolved, with where it came from.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config: Loaded,
    pub preset: Option<Setting<&'static str>>,
    pub models: PerModel<Option<Setting<String>>>,
    pub alpha: Setting<f32>,
    pub suffix: Setting<Suffix>,
    /// Each model renders the question with its own chat template (`--own-templates`); by
    /// default the base model's template serves all three, as in the paper.
    pub own_templates: Setting<bool>,
    /// The self-verification phrases the UI highlights (config file only).
    pub verification_phrases: Setting<Vec<String>>,
    /// None: greedy.
    pub temperature: Setting<Option<f32>>,
    pub top_k: Setting<usize>,
    pub top_p: Setting<f32>,
    pub seed: Setting<u64>,
    pub stop: Setting<Vec<String>>,
    pub ignore_eos: Setting<bool>,
    pub max_new_tokens: Setting<usize>,
    pub placement: TrioPlacement,
    pub hub_cache: Option<Setting<PathBuf>>,
}

/// Defaults when nothing else says otherwise.
pub const DEFAULT_ALPHA: f32 = 0.5;
pub const DEFAULT_MAX_NEW_TOKENS: usize = 512;

/// Resolves every setting from the command line, the config file and the preset.
pub fn resolve(cli: &Overrides) -> Result<Settings> {
    resolve_with(cli, load()?)
}

/// [`resolve`] with a config already loaded.
pub fn resolve_with(cli: &Overrides, config: Loaded) -> Result<Settings> {
    let f = &config.file;
    let fsrc = Source::File(config.path.clone().unwrap_or_default());
    let with_models = cli.with_models;
    // The preset: --preset, else the file's `preset` (ignored by subcommands without models).
    let preset_name =
        pick_opt(cli.preset.clone().filter(|_| with_models), f.preset.clone().filter(|_| with_models), &fsrc, None);
    let preset: Option<Preset> = preset_name.as_ref().map(|p| presets::find(&p.value)).transpose()?;
    let preset_setting = preset.as_ref().zip(preset_name.as_ref()).map(|(p, s)| Setting { value: p.name, from: s.from.clone() });
    let pv = |get: fn(&Preset) -> String| preset.as_ref().map(|p| (get(p), p.name));
    // A preset typed on the command line is a command-line choice: its models, α and suffix
    // replace the file's (a file's `base` must not end up guided by another preset's pair),
    // while flags typed beside it still win.
    let cli_preset = preset_name.as_ref().is_some_and(|p| p.from == Source::CommandLine);
    let file_value = |v: Option<String>| v.filter(|_| !cli_preset);
    let file_models = PerModel::new(f.base.clone(), f.rft.clone(), f.small.clone());
    let models = PerModel::from_fn(|role| {
        if !with_models {
            return None;
        }
        let preset = match role {
            Role::Base => pv(|p| p.base.repo.to_string()),
            Role::Rft => pv(|p| p.rft.repo.to_string()),
            Role::Small => pv(|p| p.small.repo.to_string()),
        };
        pick_opt(cli.models.get(role).clone(), file_value(file_models.get(role).clone()), &fsrc, preset)
    });
    let file_alpha = f.alpha.filter(|_| !cli_preset);
    let alpha = pick(cli.alpha, file_alpha, &fsrc, preset.as_ref().map(|p| (p.alpha, p.name)), DEFAULT_ALPHA);
    if !alpha.value.is_finite() {
        return Err(Error::invalid(format!("--alpha must be a finite number, got {}", alpha.value)));
    }
    let suffix = pick(
        cli.suffix.as_deref().map(Suffix::parse),
        f.suffix.as_deref().filter(|_| with_models && !cli_preset).map(Suffix::parse),
        &fsrc,
        preset.as_ref().map(|p| (p.suffix.clone(), p.name)),
        Suffix::None,
    );
    let own_templates = pick(cli.own_templates, f.own_templates.filter(|_| with_models), &fsrc, None, false);
    let default_phrases = crate::markers::DEFAULT_PHRASES.iter().map(|p| p.to_string()).collect();
    let verification_phrases = pick(None, f.verification_phrases.clone(), &fsrc, None, default_phrases);
    let temperature = if cli.greedy {
        Setting { value: None, from: Source::CommandLine }
    } else {
        let t = pick_opt(cli.temperature, f.temperature, &fsrc, None);
        t.map_or(Setting { value: None, from: Source::Default }, |t| Setting { value: Some(t.value), from: t.from })
    };
    let top_k = pick(cli.top_k, f.top_k, &fsrc, None, 0);
    let top_p = pick(cli.top_p, f.top_p, &fsrc, None, 1.0);
    let seed = pick(cli.seed, f.seed, &fsrc, None, 0);
    let stop = pick(cli.stop.clone(), f.stop.clone(), &fsrc, None, Vec::new());
    if let Some(empty) = stop.value.iter().position(|s| s.is_empty()) {
        return Err(Error::invalid(format!(
            "stop string {} (from {}) is empty: it would end every stream at once; give a non-empty --stop TEXT",
            empty + 1,
            stop.from
        )));
    }
    let ignore_eos = pick(cli.ignore_eos, f.ignore_eos, &fsrc, None, false);
    if temperature.value.is_none() {
        for (flag, given) in [
            ("--top-k", top_k.from == Source::CommandLine),
            ("--top-p", top_p.from == Source::CommandLine),
            ("--seed", seed.from == Source::CommandLine),
        ] {
            if given {
                return Err(Error::invalid(format!(
                    "{flag} applies to sampling: add --temperature T (or set temperature in the config file)"
                )));
            }
        }
    }
    let max_new_tokens = pick(cli.max_new_tokens, f.max_new_tokens, &fsrc, None, DEFAULT_MAX_NEW_TOKENS);
    let placement = resolve_placement(&cli.placement, f, &fsrc);
    let hub_cache = f.hub_cache.clone().map(|value| Setting { value, from: fsrc.clone() });
    Ok(Settings {
        config,
        preset: preset_setting,
        models,
        alpha,
        suffix,
        own_templates,
        verification_phrases,
        temperature,
        top_k,
        top_p,
        seed,
        stop,
        ignore_eos,
        max_new_tokens,
        placement,
        hub_cache,
    })
}

/// Each model's dtype, device and quantization: its own flag, then --dtype/--device/--quant, then
/// the file's own key, then the file's `dtype`/`device`/`quant`, then f32 on the cpu, unquantized.
/// The command line wins as a whole.
pub fn resolve_placement(p: &PlacementOverrides, f: &ConfigFile, fsrc: &Source) -> TrioPlacement {
    let file_dtypes = PerModel::new(f.base_dtype, f.rft_dtype, f.small_dtype);
    let file_devices = PerModel::new(f.base_device, f.rft_device, f.small_device);
    let file_quants = PerModel::new(f.base_quant, f.rft_quant, f.small_quant);
    TrioPlacement(PerModel::from_fn(|role| {
        let name = role.name();
        let (own_dtype, own_device) = (*p.dtypes.get(role), *p.devices.get(role));
        let (fd, fdev) = (*file_dtypes.get(role), *file_devices.get(role));
        let dtype = pick(own_dtype.or(p.dtype), fd.or(f.dtype), fsrc, None, DType::F32);
        let device = pick(own_device.or(p.device), fdev.or(f.device), fsrc, None, DeviceSpec::Cpu);
        let quant = pick(p.quants.get(role).or(p.quant), file_quants.get(role).or(f.quant), fsrc, None, QuantFormat::None);
        let head = pick(p.quant_head, f.quant_head, fsrc, None, QuantFormat::None);
        let device_flag = match &device.from {
            Source::CommandLine if own_device.is_some() => format!("--{name}-device"),
            Source::File(path) if fdev.is_some() => format!("{name}_device in {}", path.display()),
            Source::File(path) => format!("device in {}", path.display()),
            _ => "--device".to_string(),
        };
        ModelPlacement { dtype, device, quant, head, device_flag }
    }))
}

impl Settings {
    /// The model references of base, rft and small, or "--base is required".
    pub fn references(&self) -> Result<PerModel<Setting<String>>> {
        self.models.clone().try_map(|role, m| {
            m.ok_or_else(|| {
                let flag = role.flag();
                Error::invalid(format!(
                    "{flag} is required: name the model with {flag} DIR|REPO, or choose a trio with --preset NAME (`proxythinker presets` lists them)"
                ))
            })
        })
    }

    /// Local checkpoint directories of base, rft and small (the hub module downloads what is
    /// missing, with a progress bar per file on stderr).
    pub fn resolve_models(&self) -> Result<PerModel<PathBuf>> {
        self.model_references()?.try_map(|_, (reference, flag)| crate::hub::resolve(&reference, &flag))
    }

    /// (reference, flag for messages) of base, rft and small, with `hub_cache` applied, for a
    /// caller that resolves them itself (the UI draws its own download gauge).
    pub fn model_references(&self) -> Result<PerModel<(String, String)>> {
        self.apply_hub_cache();
        Ok(self.references()?.map_with_role(|role, s| {
            let flag = match &s.from {
                Source::CommandLine => role.flag().to_string(),
                other => format!("{} (from {other})", role.flag()),
            };
            (s.value, flag)
        }))
    }

    /// Sets HF_HUB_CACHE from `hub_cache` when the environment does not set it.
    pub fn apply_hub_cache(&self) {
        apply_hub_cache(&self.config);
    }

    pub fn sampling(&self) -> Sampling {
        match self.temperature.value {
            None => Sampling::Greedy,
            Some(temperature) => {
                Sampling::Sample { temperature, top_k: self.top_k.value, top_p: self.top_p.value, seed: self.seed.value }
            }
        }
    }

    /// The question with the suffix appended (what goes into the chat template).
    pub fn question(&self, question: &str) -> String {
        self.suffix.value.apply(question)
    }

    /// (name, value, from) of every setting, in the order `config` prints them.
    pub fn rows(&self) -> Vec<(String, String, String)> {
        let mut rows = Vec::new();
        let mut row = |name: &str, value: String, from: &Source| rows.push((name.to_string(), value, from.to_string()));
        match &self.preset {
            Some(p) => row("preset", p.value.to_string(), &p.from),
            None => row("preset", "(none)".into(), &Source::Default),
        }
        for (role, m) in self.models.iter() {
            match m {
                Some(m) => row(role.name(), m.value.clone(), &m.from),
                None => row(role.name(), "(not set)".into(), &Source::Default),
            }
        }
        row("alpha", format!("{}", self.alpha.value), &self.alpha.from);
        row("suffix", self.suffix.value.name().to_string(), &self.suffix.from);
        row("own_templates", self.own_templates.value.to_string(), &self.own_templates.from);
        row(
            "temperature",
            self.temperature.value.map_or("(greedy)".to_string(), |t| t.to_string()),
            &self.temperature.from,
        );
        row("top_k", self.top_k.value.to_string(), &self.top_k.from);
        row("top_p", self.top_p.value.to_string(), &self.top_p.from);
        row("seed", self.seed.value.to_string(), &self.seed.from);
        row("stop", format!("{:?}", self.stop.value), &self.stop.from);
        row("verification_phrases", format!("{:?}", self.verification_phrases.value), &self.verification_phrases.from);
        row("ignore_eos", self.ignore_eos.value.to_string(), &self.ignore_eos.from);
        row("max_new_tokens", self.max_new_tokens.value.to_string(), &self.max_new_tokens.from);
        for (role, m) in self.placement.0.iter() {
            let name = role.name();
            row(&format!("{name}_dtype"), dtype_name(m.dtype.value).to_string(), &m.dtype.from);
            row(&format!("{name}_device"), m.device.value.to_string(), &m.device.from);
            row(&format!("{name}_quant"), m.quant.value.name().to_string(), &m.quant.from);
        }
        let head = &self.placement.0.base.head;
        row("quant_head", head.value.name().to_string(), &head.from);
        match &self.hub_cache {
            Some(h) => row("hub_cache", h.value.display().to_string(), &h.from),
            None => row("hub_cache", "(not set)".into(), &Source::Default),
        }
        rows
    }

    pub fn to_json(&self) -> serde_json::Value {
        let mut settings = serde_json::Map::new();
        for (name, value, from) in self.rows() {
            settings.insert(name, json!({"value": value, "from": from}));
        }
        // Typed values where a consumer wants numbers.
        settings.insert("alpha".into(), json!({"value": self.alpha.value, "from": self.alpha.from.to_string()}));
        settings.insert(
            "suffix".into(),
            json!({"value": self.suffix.value.name(), "text": self.suffix.value.text(), "from": self.suffix.from.to_string()}),
        );
        settings.insert("max_new_tokens".into(), json!({"value": self.max_new_tokens.value, "from": self.max_new_tokens.from.to_string()}));
        settings.insert("temperature".into(), json!({"value": self.temperature.value, "from": self.temperature.from.to_string()}));
        settings.insert("top_k".into(), json!({"value": self.top_k.value, "from": self.top_k.from.to_string()}));
        settings.insert("top_p".into(), json!({"value": self.top_p.value, "from": self.top_p.from.to_string()}));
        settings.insert("seed".into(), json!({"value": self.seed.value, "from": self.seed.from.to_string()}));
        settings.insert("stop".into(), json!({"value": self.stop.value, "from": self.stop.from.to_string()}));
        settings.insert("ignore_eos".into(), json!({"value": self.ignore_eos.value, "from": self.ignore_eos.from.to_string()}));
        settings.insert("own_templates".into(), json!({"value": self.own_templates.value, "from": self.own_templates.from.to_string()}));
        settings.insert(
            "verification_phrases".into(),
            json!({"value": self.verification_phrases.value, "from": self.verification_phrases.from.to_string()}),
        );
        for (role, m) in self.models.iter() {
            if m.is_none() {
                settings.insert(role.name().into(), json!({"value": null, "from": "default"}));
            }
        }
        if self.preset.is_none() {
            settings.insert("preset".into(), json!({"value": null, "from": "default"}));
        }
        if self.hub_cache.is_none() {
            settings.insert("hub_cache".into(), json!({"value": null, "from": "default"}));
        }
        json!({
            "config_file": self.config.path,
            "config_file_found": self.config.found,
            "settings": settings,
        })
    }

    /// The settings as a readable table.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        match (&self.config.path, self.config.found) {
            (Some(p), true) => {
                let _ = writeln!(s, "config file: {}", p.display());
            }
            (Some(p), false) => {
                let _ = writeln!(s, "config file: {} (not found: built-in defaults apply)", p.display());
            }
            (None, _) => {
                let _ = writeln!(s, "config file: none (no config directory on this platform; set {CONFIG_ENV})");
            }
        }
        let rows = self.rows();
        let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        let v = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0).min(48);
        let _ = writeln!(s, "{:<w$}  {:<v$}  from", "setting", "value");
        for (name, value, from) in rows {
            let _ = writeln!(s, "{name:<w$}  {value:<v$}  {from}");
        }
        let _ = write!(s, "precedence: command line > config file > preset > default");
        s
    }
}

/// Sets HF_HUB_CACHE from the config's `hub_cache` when the environment does not set it. The hub
/// module reads the environment.
pub fn apply_hub_cache(config: &Loaded) {
    if let Some(dir) = &config.file.hub_cache {
        if std::env::var_os("HF_HUB_CACHE").is_none_or(|v| v.is_empty()) {
            std::env::set_var("HF_HUB_CACHE", dir);
        }
    }
}
