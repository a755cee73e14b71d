//! The CPU thread count, settled once when the program starts.
//!
//! Why: candle asks for its thread count on every matrix product (a decoding step of a 0.5 B
//! model makes 48 of them for attention alone), and unless `RAYON_NUM_THREADS` is set it counts
//! the physical cores afresh each time by reading `/proc/cpuinfo` — which the kernel answers by
//! asking every core for its clock, interrupting the threads that are decoding. On the 2-core
//! development machine the bench model's q8_0 decode (head quantized too) went from 43.5–48.1 to
//! 46.6–50.3 tokens/s once the count was set (four alternating pairs of runs). Setting the
//! variable to candle's own count, once, keeps every thread count what candle would have chosen
//! and makes asking for it free.

/// Sets `RAYON_NUM_THREADS` to candle's thread count where the environment does not set it
/// (a count the user gives is kept). Call it first thing in `main`, before any thread starts:
/// the environment is not safe to change while other threads read it.
pub fn fix_thread_count() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none_or(|v| v.is_empty()) {
        let threads = candle_core::utils::get_num_threads();
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
}
