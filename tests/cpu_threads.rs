//! The thread count is settled once at start (its own test binary: it changes the environment,
//! which no other thread may read meanwhile).

#[test]
fn the_thread_count_is_candles_own_and_a_given_one_is_kept() {
    std::env::remove_var("RAYON_NUM_THREADS");
    let candle = candle_core::utils::get_num_threads();
    proxythinker::cpu_threads::fix_thread_count();
    assert_eq!(std::env::var("RAYON_NUM_THREADS").unwrap(), candle.to_string());
    assert_eq!(candle_core::utils::get_num_threads(), candle);

    std::env::set_var("RAYON_NUM_THREADS", "3");
    proxythinker::cpu_threads::fix_thread_count();
    assert_eq!(std::env::var("RAYON_NUM_THREADS").unwrap(), "3");
}
