//! The built-in demo: three tiny Qwen2.5-VL checkpoints trained on a synthetic counting task by
//! `scripts/train_demo.py` (a base that answers directly, a smaller model trained on the same
//! answers, and that smaller model fine-tuned to count one by one and verify), their picture and
//! question, all embedded in the binary. On first use they are written to the cache directory and
//! then loaded through the session plan and the real loading code, exactly as checkpoints given on
//! the command line are. The UI's header says what the models are.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// One embedded file: its name and bytes.
type Embedded = (&'static str, &'static [u8]);

macro_rules! checkpoint {
    ($dir:literal) => {
        [
            ("config.json", include_bytes!(concat!("../../assets/demo/", $dir, "/config.json")).as_slice()),
            ("generation_config.json", include_bytes!(concat!("../../assets/demo/", $dir, "/generation_config.json")).as_slice()),
            ("model.safetensors", include_bytes!(concat!("../../assets/demo/", $dir, "/model.safetensors")).as_slice()),
            ("preprocessor_config.json", include_bytes!(concat!("../../assets/demo/", $dir, "/preprocessor_config.json")).as_slice()),
            ("tokenizer.json", include_bytes!(concat!("../../assets/demo/", $dir, "/tokenizer.json")).as_slice()),
            ("tokenizer_config.json", include_bytes!(concat!("../../assets/demo/", $dir, "/tokenizer_config.json")).as_slice()),
        ]
    };
}

const BASE: [Embedded; 6] = checkpoint!("base");
const RFT: [Embedded; 6] = checkpoint!("rft");
const SMALL: [Embedded; 6] = checkpoint!("small");
/// The demo picture (84×84, three circles), drawn as the models' training pictures are.
pub const IMAGE: &[u8] = include_bytes!("../../assets/demo/picture.png");
const QUESTION: &str = include_str!("../../assets/demo/question.txt");

/// The demo's sample question.
pub fn question() -> String {
    QUESTION.trim().to_string()
}

/// Where the demo files are on disk.
#[derive(Debug, Clone)]
pub struct DemoFiles {
    pub base: PathBuf,
    pub rft: PathBuf,
    pub small: PathBuf,
    pub image: PathBuf,
}

/// The directory for cached files: `$PROXYTHINKER_CACHE` when set, else the platform's cache
/// directory (`~/.cache/proxythinker` on Linux), else one under the temporary directory.
pub fn cache_dir() -> PathBuf {
    crate::dirs::cache_dir()
}

/// Writes the demo files under `root` (once: files already there with the same bytes are left
/// alone) and says where they are.
pub fn install_in(root: &Path) -> Result<DemoFiles> {
    // The crate version in the name keeps an older binary's files from being mistaken for these.
    let dir = root.join(format!("demo-{}", env!("CARGO_PKG_VERSION")));
    let files = DemoFiles { base: dir.join("base"), rft: dir.join("rft"), small: dir.join("small"), image: dir.join("picture.png") };
    for (sub, contents) in [(&files.base, &BASE), (&files.rft, &RFT), (&files.small, &SMALL)] {
        for (name, bytes) in contents {
            write_if_changed(&sub.join(name), bytes)?;
        }
    }
    write_if_changed(&files.image, IMAGE)?;
    Ok(files)
}

/// Writes the demo files under [`cache_dir`], falling back to the temporary directory when the
/// cache directory cannot be written.
pub fn install() -> Result<DemoFiles> {
    match install_in(&cache_dir()) {
        Ok(files) => Ok(files),
        Err(first) => install_in(&std::env::temp_dir().join("proxythinker"))
            .map_err(|_| Error::invalid(format!("cannot write the demo checkpoints: {first}"))),
    }
}

fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    let io = |e: std::io::Error| Error::Io { path: path.to_path_buf(), source: e };
    let parent = path.parent().ok_or_else(|| Error::invalid(format!("{}: no parent directory", path.display())))?;
    std::fs::create_dir_all(parent).map_err(io)?;
    // Written beside the target and renamed, so two demos starting at once never read half a file.
    let temp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&temp, bytes).map_err(io)?;
    std::fs::rename(&temp, path).map_err(io)
}
