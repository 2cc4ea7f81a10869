//! The `seawall` binary: the demo trading engine, config checking, and a
//! status view of a running instance.
//!
//! ```text
//! seawall [run] [--config FILE] [--duration D] [--scenario NAME] [--log-format text|json]
//! seawall check-config FILE
//! seawall status [--url URL]
//! ```

use clap::{Parser, Subcommand, ValueEnum};
use seawall::config::{Config, ENV_VARIABLES};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// `println!` that ends quietly on a closed pipe (see [`say`]).
macro_rules! say_fmt {
    ($($arg:tt)*) => { say(format_args!($($arg)*)) };
}

#[derive(Debug, Parser)]
#[command(
    name = "seawall",
    version,
    about = "A supervision runtime for trading engines"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Log format (RUST_LOG filters).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the demo trading engine (the default command).
    Run(RunArgs),
    /// Validate a config file and print the effective values.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Print the breakers of a running instance.
    Status {
        /// The instance's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The tree's configuration.
    #[arg(long, default_value = "actors.toml")]
    config: PathBuf,
    /// Stop after this long and print a summary (e.g. 30s); runs until Ctrl-C otherwise.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// The outage scenario: default or calm.
    #[arg(long, default_value = "default")]
    scenario: String,
    /// Where the demo keeps its SQLite trade store (and a persisted write
    /// journal, if the database is out at shutdown). Created if missing.
    #[arg(long, env = "SEAWALL_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// Run in real time instead of compressing timeouts and open durations.
    #[arg(long)]
    no_compress: bool,
    /// Seed for the simulation and the chaos.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Also write the summary as JSON to this file.
    #[arg(long)]
    summary_json: Option<PathBuf>,
}

impl Default for RunArgs {
    fn default() -> Self {
        Self {
            config: PathBuf::from("actors.toml"),
            duration: None,
            scenario: "default".into(),
            data_dir: PathBuf::from("data"),
            no_compress: false,
            seed: 7,
            summary_json: None,
        }
    }
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,seawall=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run(RunArgs::default())) {
        Command::CheckConfig { file } => check_config(&file),
        Command::Status { url } => status(&url),
        Command::Run(args) => {
            init_logs(cli.log_format);
            run(args)
        }
    }
}

/// SIGTERM or SIGINT: the first runs the graceful shutdown (new calls
/// refused, in-flight calls answered, the journal flushed or persisted, the
/// summary printed, exit 0); a second forces an exit.
async fn watch_signals(stop: tokio_util::sync::CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            eprintln!("warning: cannot install signal handlers; stop with --duration");
            return;
        };
        for round in 0..2 {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            if round == 0 {
                eprintln!(
                    "seawall: signal received, shutting down gracefully (send it again to force)"
                );
                stop.cancel();
            } else {
                eprintln!("seawall: second signal, exiting at once");
                std::process::exit(130);
            }
        }
    }
    #[cfg(not(unix))]
    {
        if tokio::signal::ctrl_c().await.is_ok() {
            stop.cancel();
        }
    }
}

/// Writes a line to stdout; a closed pipe (`| head`) ends the output quietly.
fn say(text: impl std::fmt::Display) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

fn check_config(file: &std::path::Path) -> ExitCode {
    match Config::load(file) {
        Ok(config) => {
            say_fmt!("{}: valid", file.display());
            let set: Vec<&str> = ENV_VARIABLES
                .iter()
                .copied()
                .filter(|v| std::env::var(v).is_ok_and(|x| !x.trim().is_empty()))
                .collect();
            if !set.is_empty() {
                say_fmt!("# environment overrides applied: {}", set.join(", "));
            }
            match toml::to_string_pretty(&config) {
                Ok(text) => say_fmt!("{text}"),
                Err(e) => say_fmt!("(cannot print the effective config: {e})"),
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn status(url: &str) -> ExitCode {
    let endpoint = format!(
        "{}/api/v1/system/health/circuit-breakers",
        url.trim_end_matches('/')
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let body: serde_json::Value = match agent
        .get(&endpoint)
        .call()
        .map_err(|e| e.to_string())
        .and_then(|mut r| r.body_mut().read_json().map_err(|e| e.to_string()))
    {
        Ok(body) => body,
        Err(error) => {
            eprintln!("error: cannot read {endpoint}: {error}; is seawall running there? (--url)");
            return ExitCode::FAILURE;
        }
    };
    say_fmt!(
        "{:<14} {:<12} {:>8} {:>8} {:>10} {:>10}",
        "breaker",
        "state",
        "success",
        "failure",
        "p50 ms",
        "p99 ms"
    );
    if let Some(map) = body["circuit_breakers"].as_object() {
        for (name, b) in map {
            let m = &b["metrics"];
            let ms = |v: &serde_json::Value| {
                v.as_f64()
                    .map_or("-".to_string(), |s| format!("{:.2}", s * 1000.0))
            };
            say_fmt!(
                "{:<14} {:<12} {:>8} {:>8} {:>10} {:>10}",
                name,
                b["state"].as_str().unwrap_or("?"),
                m["success_count"],
                m["failure_count"],
                ms(&m["p50_response_time"]),
                ms(&m["p99_response_time"]),
            );
        }
    }
    ExitCode::SUCCESS
}

/// Prints the summary (and writes it as JSON); fails when a rule broke.
fn report(summary: &seawall_demo::Summary, json: Option<&std::path::Path>) -> ExitCode {
    say_fmt!("{}", summary.render());
    if let Some(path) = json {
        let written = serde_json::to_string_pretty(summary)
            .map_err(|e| e.to_string())
            .and_then(|json| std::fs::write(path, json).map_err(|e| e.to_string()));
        if let Err(error) = written {
            eprintln!(
                "error: cannot write the summary to {} (--summary-json): {error}",
                path.display()
            );
            return ExitCode::FAILURE;
        }
    }
    let violations = summary.violations();
    if violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("error: trading rules broken: {}", violations.join("; "));
        ExitCode::FAILURE
    }
}

fn run(args: RunArgs) -> ExitCode {
    let config = match Config::load(&args.config) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("error: cannot start the tokio runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(error) = std::fs::create_dir_all(&args.data_dir) {
        eprintln!(
            "error: cannot create the data directory {} (--data-dir or SEAWALL_DATA_DIR): {error}",
            args.data_dir.display()
        );
        return ExitCode::FAILURE;
    }
    let data_dir = std::fs::canonicalize(&args.data_dir).unwrap_or(args.data_dir.clone());
    eprintln!(
        "seawall: data directory {} (--data-dir or SEAWALL_DATA_DIR to change)",
        data_dir.display()
    );
    let stop = tokio_util::sync::CancellationToken::new();
    runtime.spawn(watch_signals(stop.clone()));
    let options = seawall_demo::DemoOptions {
        config,
        duration: args.duration,
        scenario: args.scenario,
        db_path: data_dir.join("seawall-demo.db"),
        compress: !args.no_compress,
        status_line: true,
        admin_token: std::env::var("SEAWALL_ADMIN_TOKEN").ok(),
        seed: args.seed,
        plant: None,
        stop,
        config_file: Some(args.config.clone()),
    };
    match runtime.block_on(seawall_demo::run(options)) {
        Ok(summary) => report(&summary, args.summary_json.as_deref()),
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
