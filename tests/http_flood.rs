//! Floods against the HTTP face, alone in their own test binary so the
//! memory they measure is theirs: unauthenticated 2 MB admin POSTs are
//! refused before their body is read.

use seawall::config::{Config, HttpConfig};
use seawall::Seawall;

const TOKEN: &str = "s3cret-token-0123456789abcdef";

#[derive(Debug, thiserror::Error)]
#[error("unused")]
struct Never;

struct Idle;

impl seawall::Service for Idle {
    type Request = ();
    type Response = ();
    type Error = Never;
    type Policy = seawall::DefaultPolicy;
    async fn call(&mut self, _: ()) -> Result<(), Never> {
        Ok(())
    }
}

impl seawall::Lifecycle for Idle {}

async fn start() -> (Seawall, String) {
    let mut config = Config::seed_defaults();
    config.runtime.http = Some(HttpConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        allow_remote_admin: false,
        ..HttpConfig::default()
    });
    let mut builder = Seawall::builder(config.clone()).admin_token(Some(TOKEN.to_string()));
    for name in config.services.keys() {
        builder = builder.service(name, || Idle);
    }
    let seawall = builder.start().await.unwrap();
    let base = format!("http://{}", seawall.http_addr().expect("listening"));
    (seawall, base)
}

/// The peak resident memory since the last reset (`VmHWM`), in bytes.
fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))?
                .split_whitespace()
                .nth(1)?
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

/// Resets the peak to the current resident memory (Linux: `clear_refs` 5).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Sends a POST head declaring a `body_len` body and waits for the answer
/// before sending a byte of it: a server that reads the body before checking
/// the token would never answer (the read times out, code 0). Then it sends
/// the body anyway, as an attacker would.
fn raw_post(addr: &str, path: &str, auth: Option<&str>, body_len: usize) -> u16 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let auth = auth.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {body_len}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut answer = [0u8; 12];
    let code = match stream.read(&mut answer) {
        Ok(n) if n >= 12 => std::str::from_utf8(&answer[9..12])
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(0),
        _ => 0,
    };
    let chunk = vec![b' '; 64 * 1024];
    let mut sent = 0;
    while sent < body_len {
        let n = chunk.len().min(body_len - sent);
        if stream.write_all(&chunk[..n]).is_err() {
            break;
        }
        sent += n;
    }
    code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_admin_when_300_unauthenticated_2mb_posts_then_401_or_403_and_memory_flat() {
    let (seawall, base) = start().await;
    let addr = base.trim_start_matches("http://").to_string();
    let path = "/api/v1/system/health/circuit-breakers/kite_api/force-open";
    reset_peak_rss();
    let before = peak_rss_bytes();
    let codes = tokio::task::spawn_blocking(move || {
        (0..300)
            .map(|i| {
                raw_post(
                    &addr,
                    path,
                    (i % 2 == 0).then_some("wrong"),
                    2 * 1024 * 1024,
                )
            })
            .collect::<Vec<u16>>()
    })
    .await
    .unwrap();
    assert!(
        codes.iter().all(|c| *c == 401 || *c == 403 || *c == 429),
        "every one refused before its body: {codes:?}"
    );
    let grown = peak_rss_bytes().saturating_sub(before);
    assert!(
        grown < 50 * 1024 * 1024,
        "peak RSS grew {} MiB: bodies were read before the token was checked",
        grown / 1024 / 1024
    );
    assert_eq!(
        seawall.breaker("kite_api").unwrap().state(),
        seawall::BreakerState::Closed,
        "no admin action without the token"
    );
    seawall.shutdown().await;
}

/// `GET /livez` on a fresh connection: (status, how long it took).
fn livez(addr: &str) -> (u16, std::time::Duration) {
    use std::io::{Read, Write};
    let started = std::time::Instant::now();
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return (0, started.elapsed());
    };
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .unwrap();
    let _ = stream.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut answer = [0u8; 12];
    let code = match stream.read(&mut answer) {
        Ok(n) if n >= 12 => std::str::from_utf8(&answer[9..12])
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(0),
        _ => 0,
    };
    (code, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_connections_when_2000_idle_and_200_slow_header_then_livez_answers_and_idle_are_closed(
) {
    use std::io::{Read, Write};
    let mut config = Config::seed_defaults();
    config.runtime.http = Some(HttpConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        idle_timeout: std::time::Duration::from_secs(2),
        max_connections: 1024,
        ..HttpConfig::default()
    });
    let mut builder = Seawall::builder(config.clone());
    for name in config.services.keys() {
        builder = builder.service(name, || Idle);
    }
    let seawall = builder.start().await.unwrap();
    let addr = seawall.http_addr().unwrap().to_string();
    let report = tokio::task::spawn_blocking(move || {
        let opened = std::time::Instant::now();
        let idle: Vec<std::net::TcpStream> = (0..2000)
            .filter_map(|_| std::net::TcpStream::connect(&addr).ok())
            .collect();
        let mut slow: Vec<std::net::TcpStream> = (0..200)
            .filter_map(|_| {
                let mut s = std::net::TcpStream::connect(&addr).ok()?;
                s.write_all(b"GET /livez HTTP/1.1\r\n").ok()?;
                Some(s)
            })
            .collect();
        // Probe /livez while the slow ones trickle a header byte at a time.
        let mut probes = Vec::new();
        for round in 0..12 {
            for s in &mut slow {
                let _ = s.write_all(if round % 2 == 0 { b"X" } else { b"-" });
            }
            probes.push(livez(&addr));
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        // Past the idle timeout, the idle connections have been closed by the server.
        std::thread::sleep(std::time::Duration::from_secs(2));
        let closed = idle
            .into_iter()
            .filter(|s| {
                let mut s = s;
                s.set_read_timeout(Some(std::time::Duration::from_millis(200)))
                    .unwrap();
                let mut buf = [0u8; 1];
                match s.read(&mut buf) {
                    Ok(0) => true, // closed by the server
                    Ok(_) => false,
                    Err(e) => !matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ),
                }
            })
            .count();
        (probes, closed, opened.elapsed())
    })
    .await
    .unwrap();
    let (probes, closed, _) = report;
    for (code, took) in &probes {
        assert_eq!(
            *code, 200,
            "/livez must answer through the flood: {probes:?}"
        );
        assert!(*took < std::time::Duration::from_secs(1), "{probes:?}");
    }
    assert_eq!(
        closed, 2000,
        "every idle connection closed within the idle timeout"
    );
    seawall.shutdown().await;
}
