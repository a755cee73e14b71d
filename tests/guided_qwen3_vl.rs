//! ProxyThinker guided decoding on a Qwen3-VL trio against a reference loop written with
//! transformers (tests/fixtures/reference_qwen3_vl.py): base `qwen3_vl_untied` (368 rows) guided
//! by α·(`qwen3_vl` − `qwen3_vl_small`) (336 rows), so the base is cut to the shared vocabulary;
//! with and without an image (DeepStack in all three models). Live α must equal a fresh run.

mod common;

use candle_core::{DType, Device};
use common::*;
use proxythinker::engine::{Session, Settings, Stop, StreamKind};
use proxythinker::guidance::Sampling;
use proxythinker::models::PromptInput;
use proxythinker::placement::uniform;
use proxythinker::prepare::prepare_prompt;
use proxythinker::trio::{PerModel, TrioFiles};

struct Setup {
    files: TrioFiles,
    trio: proxythinker::engine::Trio,
}

fn setup() -> Setup {
    let dirs = PerModel::new(tiny("qwen3_vl_untied"), tiny("qwen3_vl"), tiny("qwen3_vl_small"));
    let files = TrioFiles::open(dirs.as_ref().map(|p| p.as_path())).unwrap_or_else(|e| panic!("{e}"));
    let trio = files.load(&uniform(DType::F32, &Device::Cpu)).unwrap_or_else(|e| panic!("{e}"));
    Setup { files, trio }
}

impl Setup {
    fn prompt(&self, question: &str, image: Option<&str>) -> PromptInput {
        let image = image.map(|i| proxythinker::processor::SourceImage::open(&tiny(i)).unwrap());
        let (checkpoint, tokenizer) = self.files.base();
        prepare_prompt(checkpoint, tokenizer, question, image.as_ref(), false, &Device::Cpu).unwrap().input
    }

    fn session(&self, prompt: &PromptInput, alpha: f32, n: usize) -> Session {
        let settings = Settings { alpha, sampling: Sampling::Greedy, max_new_tokens: n, stop_strings: vec![], stop_at_eos: false };
        let (checkpoint, tokenizer) = self.files.base();
        Session::new(self.trio.clone(), tokenizer.clone(), prompt.clone(), settings, checkpoint.eos_token_ids.clone()).unwrap()
    }
}

#[test]
fn qwen3_vl_guided_streams_match_the_transformers_reference() {
    let s = setup();
    let exp = read_json(&tiny("expected/qwen3_vl_guided.json"));
    let mut checked = 0;
    for case in exp["cases"].as_array().unwrap() {
        let prompt = s.prompt(case["prompt"].as_str().unwrap(), case["image"].as_str());
        assert_eq!(prompt.input_ids, u32s(&case["input_ids"]));
        let n = case["new_tokens"].as_u64().unwrap() as usize;
        for (alpha, want) in case["guided"].as_object().unwrap() {
            let mut session = s.session(&prompt, alpha.parse().unwrap(), n);
            assert_eq!(session.shared_vocab(), 336);
            session.run_to_end().unwrap();
            let what = format!("α={alpha} image={} {}", case["image"], case["prompt"]);
            assert_eq!(session.tokens(StreamKind::Guided), &u32s(want)[..], "guided {what}");
            assert_eq!(session.tokens(StreamKind::Base), &u32s(&case["base"])[..], "base alone {what}");
            assert_eq!(session.tokens(StreamKind::Rft), &u32s(&case["rft"])[..], "rft alone {what}");
            assert_eq!(session.stop(StreamKind::Guided), Some(&Stop::MaxNewTokens));
            checked += 1;
        }
    }
    assert_eq!(checked, 9);
}

#[test]
fn qwen3_vl_live_alpha_equals_a_fresh_run() {
    let s = setup();
    let prompt = s.prompt("What is in the picture?", Some("images/56x56.png"));
    for (from, to) in [(0.5f32, 2.0f32), (2.0, 0.5), (1.0, 1.0)] {
        let mut live = s.session(&prompt, from, 12);
        live.run_to_end().unwrap();
        live.set_alpha(to).unwrap();
        live.run_to_end().unwrap();
        let mut fresh = s.session(&prompt, to, 12);
        fresh.run_to_end().unwrap();
        for kind in [StreamKind::Base, StreamKind::Rft, StreamKind::Guided] {
            assert_eq!(live.tokens(kind), fresh.tokens(kind), "{kind:?} α {from} → {to}");
        }
        assert_eq!(live.guided_records(), fresh.guided_records(), "records after α {from} → {to}");
    }
}
