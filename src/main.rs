//! The proxythinker binary: parses the command line, runs the subcommand, and turns every error
//! into one line on stderr with exit status 2.

use clap::error::ErrorKind;
use clap::Parser;
use proxythinker::cli::{run_bench, run_generate, run_guided, run_logits, Cli, Command};

fn main() {
    // Before any thread starts (see the module's docs).
    proxythinker::cpu_threads::fix_thread_count();
    if std::env::args_os().len() <= 1 {
        use clap::CommandFactory;
        let names: Vec<String> = Cli::command().get_subcommands().map(|c| c.get_name().to_string()).collect();
        eprintln!("error: a subcommand is missing: one of {} (see --help)", names.join(", "));
        std::process::exit(2);
    }
    // `proxythinker --base ..` (no subcommand) is the terminal UI.
    let cli = match Cli::try_parse_from(proxythinker::cli::with_default_subcommand(std::env::args_os())) {
        Ok(cli) => cli,
        Err(e) => match e.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                let _ = e.print();
                std::process::exit(0);
            }
            _ => {
                let rendered = e.render().to_string();
                let line = rendered.lines().find(|l| !l.trim().is_empty()).unwrap_or("error: bad arguments");
                eprintln!("{} (see --help)", line.trim_end());
                std::process::exit(2);
            }
        },
    };
    let result = match &cli.command {
        // The config file's hub_cache applies to --model too.
        Command::Logits(args) => with_hub_cache().and_then(|_| run_logits(args)),
        Command::Generate(args) => with_hub_cache().and_then(|_| run_generate(args)),
        Command::Run(args) => run_guided(args),
        Command::Bench(args) => run_bench(args),
        Command::Tui(args) => proxythinker::tui::run_tui(args),
        Command::Demo(args) => proxythinker::tui::run_demo(args),
        Command::Replay(args) => proxythinker::tui::run_replay(args),
        Command::Presets(args) => proxythinker::presets::run_presets(args),
        Command::Config(args) => proxythinker::cli::run_config(args),
        Command::Grade(args) => proxythinker::cli::run_grade(args),
        Command::Eval(args) => proxythinker::cli::run_eval(args),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

/// Sets HF_HUB_CACHE from the config file's `hub_cache` (when the environment does not).
fn with_hub_cache() -> proxythinker::Result<()> {
    proxythinker::config::apply_hub_cache(&proxythinker::config::load()?);
    Ok(())
}
