//! `GET /api/v1/system/stream`: what a connected client reads, the cap on
//! open streams, and the end of every stream at shutdown. Read over raw
//! TCP, as a browser's EventSource reads it.

mod support;

use seawall::config::Config;
use seawall::Seawall;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const TOKEN: &str = "stream-test-token-0123456789";

async fn tree(max_connections: usize) -> Seawall {
    let text = include_str!("../actors.toml").replace(
        "listen = \"127.0.0.1:8080\"",
        &format!("listen = \"127.0.0.1:0\"\nmax_connections = {max_connections}"),
    );
    let config = Config::from_toml_with_env(&text, "actors.toml", |_| None).expect("valid");
    let (builder, _) = support::register_all(Seawall::builder(config.clone()), &config);
    builder
        .admin_token(Some(TOKEN.to_string()))
        .start()
        .await
        .expect("the tree starts")
}

/// Opens the stream; the reader after the response head, and the status.
async fn open(addr: std::net::SocketAddr) -> (u16, BufReader<TcpStream>) {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(
            b"GET /api/v1/system/stream HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n",
        )
        .await
        .unwrap();
    let mut reader = BufReader::new(socket);
    let mut status = String::new();
    reader.read_line(&mut status).await.unwrap();
    let code = status
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        if line.trim().is_empty() {
            break;
        }
    }
    (code, reader)
}

/// The first data of each event named in `kinds`, in whatever order they
/// come (a transition, its mode change and the admin entry race), within 5 s.
async fn collect(
    reader: &mut BufReader<TcpStream>,
    kinds: &[&str],
) -> std::collections::HashMap<String, serde_json::Value> {
    let mut found = std::collections::HashMap::new();
    let read = async {
        let mut current = String::new();
        while found.len() < kinds.len() {
            let mut line = String::new();
            if reader.read_line(&mut line).await.unwrap() == 0 {
                panic!("the stream ended; saw {:?}", found.keys());
            }
            let line = line.trim_end();
            if let Some(kind) = line.strip_prefix("event: ") {
                current = kind.to_string();
            } else if let Some(data) = line.strip_prefix("data: ") {
                if kinds.contains(&current.as_str()) && !found.contains_key(&current) {
                    found.insert(current.clone(), serde_json::from_str(data).unwrap());
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .unwrap_or_else(|_| panic!("not every one of {kinds:?} within 5 s"));
    found
}

/// The data of the next event named `kind`, within 5 s.
async fn next_event(reader: &mut BufReader<TcpStream>, kind: &str) -> String {
    let wanted = format!("event: {kind}");
    let read = async {
        let mut current = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).await.unwrap() == 0 {
                panic!("the stream ended before a {kind} event");
            }
            let line = line.trim_end();
            if line.starts_with("event: ") {
                current = line.to_string();
            } else if let Some(data) = line.strip_prefix("data: ") {
                if current == wanted {
                    return data.to_string();
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .unwrap_or_else(|_| panic!("no {kind} event within 5 s"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_stream_when_breaker_forced_open_then_snapshot_transition_modes_and_admin_events_arrive(
) {
    let seawall = tree(64).await;
    let addr = seawall.http_addr().unwrap();
    let (status, mut reader) = open(addr).await;
    assert_eq!(status, 200);
    let history: serde_json::Value =
        serde_json::from_str(&next_event(&mut reader, "history").await).unwrap();
    assert!(
        history.is_object(),
        "the sparklines' history comes first: {history}"
    );
    let snapshot: serde_json::Value =
        serde_json::from_str(&next_event(&mut reader, "snapshot").await).unwrap();
    assert_eq!(snapshot["circuit_breakers"]["kite_api"]["state"], "closed");
    assert!(snapshot["config"]["version"].is_string());

    let path = "/api/v1/system/health/circuit-breakers/kite_api/force-open";
    assert_eq!(support::post(addr, path, Some(TOKEN)).await.0, 200);
    let seen = collect(&mut reader, &["transition", "modes", "admin"]).await;
    assert_eq!(seen["transition"]["service"], "kite_api");
    assert_eq!(seen["transition"]["to"], "forced_open");
    assert_eq!(seen["modes"]["modes"]["trading"], "halted");
    assert_eq!(seen["admin"]["action"], "forced open");
    assert_eq!(seen["admin"]["service"], "kite_api");
    let snapshot: serde_json::Value =
        serde_json::from_str(&next_event(&mut reader, "snapshot").await).unwrap();
    assert_eq!(
        snapshot["circuit_breakers"]["kite_api"]["state"],
        "forced_open"
    );

    seawall.shutdown().await;
    let mut rest = String::new();
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while reader
            .read_line(&mut rest)
            .await
            .map(|n| n > 0)
            .unwrap_or(false)
        {}
    })
    .await;
    assert!(ended.is_ok(), "the stream ends at shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_stream_when_streams_fill_half_the_connections_then_next_refused_and_livez_answers() {
    let seawall = tree(4).await;
    let addr = seawall.http_addr().unwrap();
    let (first, _a) = open(addr).await;
    let (second, _b) = open(addr).await;
    assert_eq!((first, second), (200, 200));
    let (third, _c) = open(addr).await;
    assert_eq!(third, 503, "at most max_connections / 2 streams");
    let livez = tokio::task::spawn_blocking(move || {
        ureq::get(&format!("http://{addr}/livez"))
            .call()
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    })
    .await
    .unwrap();
    assert_eq!(livez, 200, "probes keep their slots");
    drop(_a);
    // The seat is given back when the client goes away.
    let mut reopened = 0;
    for _ in 0..50 {
        let (status, _d) = open(addr).await;
        if status == 200 {
            reopened = status;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(reopened, 200, "a closed stream frees its seat");
    seawall.shutdown().await;
}
