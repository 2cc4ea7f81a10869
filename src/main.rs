//! The `seawall` binary. For now it validates a tree's configuration and
//! prints the effective values (file plus environment overrides):
//!
//! ```text
//! seawall [check-config] [FILE]     # FILE defaults to actors.toml
//! ```

use seawall::config::{Config, ENV_VARIABLES};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("check-config") {
        args.remove(0);
    }
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("usage: seawall [check-config] [FILE]\n\nValidates FILE (default actors.toml) with the environment overrides applied\nand prints the effective breaker settings. Exits 1 on any problem.");
        return ExitCode::SUCCESS;
    }
    let path = args.first().map_or("actors.toml", String::as_str);
    match Config::load(path) {
        Ok(config) => {
            print_config(path, &config);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn print_config(path: &str, config: &Config) {
    let rt = &config.runtime;
    println!("{path}: valid");
    let set: Vec<&str> = ENV_VARIABLES
        .iter()
        .copied()
        .filter(|v| std::env::var(v).is_ok_and(|x| !x.trim().is_empty()))
        .collect();
    if !set.is_empty() {
        println!("environment overrides: {}", set.join(", "));
    }
    println!(
        "runtime: breakers {}, degradation {}, auto-recovery {}, health every {}, alert below {}",
        on(rt.circuit_breaker_enabled),
        on(rt.graceful_degradation_enabled),
        on(rt.auto_recovery_enabled),
        humantime::format_duration(rt.health_check_interval),
        rt.health_score_threshold
    );
    println!(
        "{:<14} {:>5} {:>5} {:>8} {:>8} {:>8} {:>5} {:>9}",
        "service", "fail", "succ", "open", "max", "call", "conc", "in-flight"
    );
    for (name, s) in &config.services {
        println!(
            "{:<14} {:>5} {:>5} {:>8} {:>8} {:>8} {:>5} {:>9}",
            name,
            s.failure_threshold,
            s.success_threshold,
            humantime::format_duration(s.open_timeout).to_string(),
            humantime::format_duration(s.effective_max_open_timeout()).to_string(),
            humantime::format_duration(s.call_timeout).to_string(),
            s.concurrency,
            s.max_in_flight
        );
    }
}

fn on(flag: bool) -> &'static str {
    if flag {
        "on"
    } else {
        "off"
    }
}
