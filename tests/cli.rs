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
        err.contains("services.kite_api.failur_threshold") && err.contains(":2:"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn test_check_config_when_shipped_file_then_prints_effective_config() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/actors.toml");
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
