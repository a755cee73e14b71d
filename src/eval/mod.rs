//! Evaluation on benchmarks, as the paper evaluates: [`source`] finds the dataset (a file, or a
//! Hub dataset's parquet files of one split), [`dataset`] reads the questions, [`run`]
//! decodes every question's three streams (guided at each α of a sweep) and writes results that
//! survive a crash and a summary, [`grade`] extracts an answer from a response and decides whether
//! it is correct (also what `proxythinker grade` prints).

pub mod dataset;
pub mod grade;
pub mod run;
pub mod source;
