//! The Qwen3-VL Instruct and Thinking chat templates (tests/fixtures/templates/, the models' own)
//! render through minijinja exactly as transformers' apply_chat_template renders them
//! (tests/fixtures/qwen3_vl_templates.py wrote the expected texts), and tokenize to the same ids.

mod common;

use std::collections::HashMap;

use common::*;
use proxythinker::processor::prompt::{encode, load_tokenizer, render_user_turn};

fn template(name: &str) -> String {
    std::fs::read_to_string(fixtures().join(format!("templates/Qwen3-VL-{name}.chat_template.jinja"))).unwrap()
}

#[test]
fn qwen3_vl_templates_render_as_transformers_renders_them() {
    let expected = read_json(&tiny("expected/qwen3_vl_templates.json"));
    let tokenizer = load_tokenizer(&tiny("qwen3_vl/tokenizer.json")).unwrap();
    let templates: HashMap<&str, String> = ["Instruct", "Thinking"].into_iter().map(|n| (n, template(n))).collect();
    let mut checked = HashMap::new();
    for case in expected["cases"].as_array().unwrap() {
        let name = case["template"].as_str().unwrap();
        let question = case["question"].as_str().unwrap();
        let image = case["image"].as_bool().unwrap();
        let text = render_user_turn(&templates[name], question, image, &HashMap::new()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(text, case["text"].as_str().unwrap(), "{name} image={image} {question:?}");
        assert_eq!(encode(&tokenizer, &text).unwrap(), u32s(&case["input_ids"]), "{name} {question:?}");
        *checked.entry(name).or_insert(0) += 1;
    }
    assert_eq!(checked, HashMap::from([("Instruct", 10), ("Thinking", 10)]));
    // What tells them apart: the Thinking model's generation prompt opens its reasoning.
    let render = |n: &str| render_user_turn(&templates[n], "Hi", false, &HashMap::new()).unwrap();
    assert!(render("Thinking").ends_with("<|im_start|>assistant\n<think>\n"));
    assert!(render("Instruct").ends_with("<|im_start|>assistant\n"));
}
