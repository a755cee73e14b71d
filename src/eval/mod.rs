//! Evaluation on benchmarks, as the paper evaluates: [`grade`] extracts an answer from a response
//! and decides whether it is correct (what `proxythinker grade` prints).

pub mod grade;
