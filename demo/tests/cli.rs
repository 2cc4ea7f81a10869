//! The `seawall` binary's commands, run as a user would.

use std::process::Command;

fn seawall(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_seawall"))
        .args(args)
        .env_remove("CIRCUIT_BREAKER_FAILURE_THRESHOLD")
        .output()
        .expect("the binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn test_check_config_when_file_broken_then_exits_nonzero_naming_the_key() {
    let dir = std::env::temp_dir().join(format!("seawall-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[services.kite_api]\nfailure_threshold = 0\ncall_timeout = \"7s\"\n",
    )
    .unwrap();
    let (ok, _, err) = seawall(&["check-config", bad.to_str().unwrap()]);
    assert!(!ok, "a broken file must fail");
    assert!(err.contains("services.kite_api.failure_threshold"), "{err}");
    let typo = dir.join("typo.toml");
    std::fs::write(&typo, "[services.kite_api]\nfailur_threshold = 5\n").unwrap();
    let (ok, _, err) = seawall(&["check-config", typo.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("services.kite_api.failur_threshold") && err.contains("line 2"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn test_check_config_when_shipped_file_then_prints_effective_config() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../actors.toml");
    let (ok, out, err) = seawall(&["check-config", path]);
    assert!(ok, "{err}");
    assert!(out.contains("valid"));
    assert!(
        out.contains("[services.kite_api]") && out.contains("failure_threshold = 5"),
        "{out}"
    );
}

#[test]
fn test_status_when_nothing_listening_then_clear_error_and_nonzero() {
    let (ok, _, err) = seawall(&["status", "--url", "http://127.0.0.1:9"]);
    assert!(!ok);
    assert!(err.contains("is seawall running there"), "{err}");
}

/// The promise, as a user runs it: the shipped actors.toml with only the
/// listen port changed, 40 s of the default outage scenario over real HTTP,
/// and the JSON summary read back.
#[test]
fn test_run_when_shipped_config_for_40s_then_summary_json_shows_rules_held_and_all_closed() {
    let dir = std::env::temp_dir().join(format!("seawall-cli-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let shipped = include_str!("../../actors.toml");
    assert!(shipped.contains("listen = \"127.0.0.1:8080\""));
    let config = dir.join("actors.toml");
    std::fs::write(
        &config,
        shipped.replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\""),
    )
    .unwrap();
    let summary = dir.join("s.json");
    let data = dir.join("data");
    let (ok, out, err) = seawall(&[
        "run",
        "--config",
        config.to_str().unwrap(),
        "--duration",
        "40s",
        "--summary-json",
        summary.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("service        trips"),
        "the text summary stays: {out}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert!(
        json["services"]["kite_api"]["trips"].as_u64().unwrap() >= 1,
        "{json}"
    );
    for (name, s) in json["services"].as_object().unwrap() {
        assert_eq!(s["flaps"], 0, "{name}: {json}");
        assert_eq!(s["final_state"], "closed", "{name}: {json}");
        assert!(s["recoveries"].is_u64(), "{json}");
    }
    let orders = &json["orders"];
    assert_eq!(orders["received_by_broker_while_halted"], 0, "{json}");
    for key in [
        "attempted",
        "placed",
        "refused_while_halted",
        "unknown",
        "reconciled",
    ] {
        assert!(orders[key].is_u64(), "orders.{key}: {json}");
    }
    assert!(
        json["prices"]["bad_quotes_injected"].as_u64().unwrap() > 0,
        "{json}"
    );
    assert_eq!(json["prices"]["bad_prices_used"], 0, "{json}");
    assert!(json["prices"]["stale_prices_used"].is_u64(), "{json}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn test_check_config_when_health_score_threshold_50_then_exits_0() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../actors.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_seawall"))
        .args(["check-config", path])
        .env("HEALTH_SCORE_THRESHOLD", "50")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("health_score_threshold = 50"));
}

#[test]
fn test_check_config_when_no_open_timeout_then_effective_5_minutes() {
    let dir = std::env::temp_dir().join(format!("seawall-cli-ot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("actors.toml");
    std::fs::write(&file, "[services.my_service]\nfailure_threshold = 4\n").unwrap();
    let (ok, out, err) = seawall(&["check-config", file.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("open_timeout = \"5m\""), "{out}");
    let _ = std::fs::remove_dir_all(dir);
}

/// A copy of the shipped config listening on an ephemeral port, in `dir`.
fn shipped_config_in(dir: &std::path::Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let config = dir.join("actors.toml");
    std::fs::write(
        &config,
        include_str!("../../actors.toml")
            .replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\""),
    )
    .unwrap();
    config
}

fn trade_rows(db: &std::path::Path) -> u64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("SELECT COUNT(*) FROM trades", [], |r| r.get::<_, i64>(0))
        .unwrap() as u64
}

#[test]
fn test_run_when_second_run_in_same_data_dir_then_rows_added_equal_its_summary() {
    let dir = std::env::temp_dir().join(format!("seawall-cli-twice-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = shipped_config_in(&dir);
    let data = dir.join("data");
    let mut before = 0;
    for run in 0..2 {
        let summary = dir.join(format!("s{run}.json"));
        let (ok, _, err) = seawall(&[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--duration",
            "6s",
            "--scenario",
            "calm",
            "--summary-json",
            summary.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ]);
        assert!(ok, "{err}");
        assert!(
            err.contains("data directory"),
            "the data dir is printed: {err}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
        let recorded = json["trades_recorded"].as_u64().unwrap();
        assert!(recorded > 0, "{json}");
        let after = trade_rows(&data.join("seawall-demo.db"));
        assert_eq!(
            after - before,
            recorded,
            "run {run}: the rows the database gained are the trades the summary reports"
        );
        before = after;
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg(unix)]
#[test]
fn test_run_when_sigterm_then_graceful_summary_exit_0_and_journal_empty_or_persisted() {
    use std::io::Read;
    let dir = std::env::temp_dir().join(format!("seawall-cli-term-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = shipped_config_in(&dir);
    let summary = dir.join("s.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_seawall"))
        .args([
            "run",
            "--config",
            config.to_str().unwrap(),
            "--summary-json",
            summary.to_str().unwrap(),
            "--data-dir",
            dir.join("data").to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // No --duration: it runs until a signal. Let it trade for a while
    // (the default scenario's database outage starts at 22 % of 60 s).
    std::thread::sleep(std::time::Duration::from_secs(16));
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "SIGTERM must exit 0: {status:?}\n{err}");
    assert!(
        out.contains("service        trips"),
        "the summary is printed: {out}"
    );
    assert!(err.contains("shutting down gracefully"), "{err}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let pending = json["journal"]["pending_at_exit"].as_u64().unwrap();
    if pending > 0 {
        let path = json["journal"]["persisted_to"].as_str().expect("persisted");
        let lines = std::fs::read_to_string(path).unwrap().lines().count() as u64;
        assert_eq!(lines, pending, "every journaled write persisted");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn test_check_config_when_output_pipe_closes_early_then_ends_quietly() {
    use std::io::{BufRead, BufReader};
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../actors.toml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_seawall"))
        .args(["check-config", path])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The reader is dropped here, like `| head -1`.
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(first.contains("valid"), "{first}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn test_check_config_when_file_has_invalid_utf8_then_error_names_line_and_column() {
    let dir = std::env::temp_dir().join(format!("seawall-cli-utf8-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("actors.toml");
    std::fs::write(
        &file,
        b"[runtime]\nhealth_score_threshold = 80\n# caf\xe9\n",
    )
    .unwrap();
    let (ok, _, err) = seawall(&["check-config", file.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains(":3:6:") && err.contains("UTF-8"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}
