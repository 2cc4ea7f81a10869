//! A Kite Connect v3-compatible broker on loopback, for the demo.
//!
//! It serves the shapes the demo needs — session, quote and LTP, place,
//! modify and cancel with a `tag`, the order book, the user profile — with
//! Kite's error body `{status, message, error_type}`, its HTTP codes and its
//! rate limits (quotes 1/s, orders 10/s, everything else 10/s, per calendar
//! second). Outages come from this side, so calls, health checks and
//! reconnects all see them: connection refused, 5xx, slow answers, 429, an
//! expired token, and "order request timed out" for an order that was in
//! fact placed.
//!
//! The server keeps its own ledger of every order it received, with the
//! trading mode the runtime had published at that moment. That ledger, not
//! a counter next to the engine's gate, is what the invariants are checked
//! against.

use crate::market::Tape;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use seawall::modes::{Modes, OrderIntent, TradingMode};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What the broker does wrong during a phase.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerFault {
    /// The port is closed: every connection is refused.
    Refuse,
    /// Every request answers this 5xx with Kite's matching error type.
    Status(u16),
    /// Every answer is delayed.
    Slow(Duration),
    /// Every request is throttled with 429.
    RateLimit,
    /// The access token is revoked; logins fail until the phase ends.
    TokenExpired,
    /// Orders are placed but answered "Order request timed out", with this
    /// probability.
    OrderTimedOut(f64),
}

/// One scheduled fault, from `from` to `until` after the server started.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultPhase {
    /// Start, after the server started.
    pub from: Duration,
    /// End.
    pub until: Duration,
    /// What goes wrong.
    pub fault: ServerFault,
}

/// One order the broker received, as it saw it.
#[derive(Debug, Clone, Serialize)]
pub struct Received {
    /// The engine's tag.
    pub tag: String,
    /// What it did to exposure.
    pub intent: OrderIntent,
    /// The trading mode the runtime had published when the order was sent:
    /// the client names the publication the order gate enforced
    /// (`X-Seawall-Modes-Epoch`) and the broker looks it up in its own
    /// record of the published modes; without one, the mode at its send
    /// time (`X-Seawall-Sent-At`) or arrival. Judged when the ledger is read,
    /// so a publication the broker heard of after the order still counts.
    pub mode: TradingMode,
    /// When it was sent, as the client stamped it.
    pub sent_at: Option<SystemTime>,
    /// The publication of the modes it was released under.
    pub modes_epoch: Option<u64>,
    /// The limit price it carried.
    pub price: Option<f64>,
    /// Whether the broker placed it.
    pub placed: bool,
    /// A protective stop (GTT), not an order.
    pub protective: bool,
}

/// The broker's own books: what it received and what it placed.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Every order request that reached the broker, in arrival order.
    pub received: Vec<Received>,
}

impl Ledger {
    /// Orders placed.
    pub fn placed(&self) -> u64 {
        self.received
            .iter()
            .filter(|r| r.placed && !r.protective)
            .count() as u64
    }

    /// Protective stops (GTTs) placed.
    pub fn protective_stops(&self) -> u64 {
        self.received
            .iter()
            .filter(|r| r.placed && r.protective)
            .count() as u64
    }

    /// Orders other than cancels that arrived while the runtime said Halted.
    pub fn received_while_halted(&self) -> u64 {
        self.received
            .iter()
            .filter(|r| r.mode == TradingMode::Halted && r.intent != OrderIntent::Cancel)
            .count() as u64
    }

    /// Orders that add risk and arrived while the runtime said Reducing.
    pub fn opens_received_while_reducing(&self) -> u64 {
        self.received
            .iter()
            .filter(|r| r.mode == TradingMode::Reducing && r.intent == OrderIntent::Open)
            .count() as u64
    }

    /// Orders that carried a price of 0 or less, or NaN.
    pub fn bad_prices(&self) -> u64 {
        self.received
            .iter()
            .filter(|r| r.price.is_some_and(|p| !(p.is_finite() && p > 0.0)))
            .count() as u64
    }

    /// Orders placed more than once under the same tag (re-sent orders).
    pub fn duplicate_tags(&self) -> u64 {
        let mut seen = HashMap::new();
        for r in self
            .received
            .iter()
            .filter(|r| r.placed && r.intent != OrderIntent::Cancel)
        {
            *seen.entry(r.tag.as_str()).or_insert(0u64) += 1;
        }
        seen.values().map(|n| n.saturating_sub(1)).sum()
    }
}

/// One order in the book.
#[derive(Debug, Clone, Serialize)]
struct BookOrder {
    order_id: String,
    tag: String,
    tradingsymbol: String,
    exchange: String,
    transaction_type: String,
    quantity: u32,
    price: f64,
    status: String,
}

struct Server {
    api_key: String,
    started: Instant,
    schedule: Mutex<Vec<FaultPhase>>,
    token: Mutex<Option<String>>,
    token_seq: AtomicU64,
    order_seq: AtomicU64,
    book: Mutex<Vec<BookOrder>>,
    ledger: Arc<Mutex<Ledger>>,
    tape: Arc<Tape>,
    modes: OnceLock<watch::Receiver<Modes>>,
    /// Every trading mode the runtime published, with when.
    mode_history: Mutex<Vec<(SystemTime, TradingMode, u64)>>,
    windows: Mutex<HashMap<&'static str, (u64, u32)>>,
    rng: Mutex<fastrand::Rng>,
}

/// A running loopback broker.
pub struct KiteServer {
    addr: SocketAddr,
    server: Arc<Server>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl KiteServer {
    /// Starts a broker on an ephemeral loopback port.
    pub async fn start(
        api_key: &str,
        tape: Arc<Tape>,
        schedule: Vec<FaultPhase>,
        seed: u64,
    ) -> std::io::Result<Self> {
        let server = Arc::new(Server {
            api_key: api_key.to_string(),
            started: Instant::now(),
            schedule: Mutex::new(schedule),
            token: Mutex::new(None),
            token_seq: AtomicU64::new(0),
            order_seq: AtomicU64::new(0),
            book: Mutex::new(Vec::new()),
            ledger: Arc::default(),
            tape,
            modes: OnceLock::new(),
            mode_history: Mutex::new(Vec::new()),
            windows: Mutex::new(HashMap::new()),
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
        });
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let task = tokio::spawn(supervise(Arc::clone(&server), listener, addr, stop.clone()));
        Ok(Self {
            addr,
            server,
            stop,
            task,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The trading modes to stamp on each order received: the broker keeps
    /// its own record of every mode the runtime publishes. `modes` gives the
    /// current one; `events` every change after it (a watch channel alone
    /// could skip a brief mode, and judge an order against the wrong one).
    pub fn watch_modes(
        &self,
        modes: watch::Receiver<Modes>,
        mut events: tokio::sync::broadcast::Receiver<seawall::Event>,
    ) {
        self.server.remember(&modes.borrow());
        let _ = self.server.modes.set(modes);
        let server = Arc::clone(&self.server);
        let stop = self.stop.clone();
        tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    () = stop.cancelled() => return,
                    event = events.recv() => event,
                };
                match event {
                    Ok(seawall::Event::ModesChanged(m)) => server.remember(&m),
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "demo broker missed runtime events");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }

    /// The broker's ledger.
    pub fn ledger(&self) -> Arc<Mutex<Ledger>> {
        self.server.judge_all();
        Arc::clone(&self.server.ledger)
    }

    /// Stops serving.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Serves while the port is open; closes it (connections refused) for a
/// `Refuse` phase and opens it again on the same port after.
async fn supervise(
    server: Arc<Server>,
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    stop: CancellationToken,
) {
    let mut listener = Some(listener);
    loop {
        let listening = match listener.take() {
            Some(l) => l,
            None => match bind(addr) {
                Ok(l) => l,
                Err(error) => {
                    tracing::warn!(%error, "demo broker could not reopen its port; retrying");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_millis(50)) => continue,
                    }
                }
            },
        };
        let closed = CancellationToken::new();
        let app = router(Arc::clone(&server));
        let serving = tokio::spawn({
            let closed = closed.clone();
            async move {
                let _ = axum::serve(listening, app)
                    .with_graceful_shutdown(closed.cancelled_owned())
                    .await;
            }
        });
        // Watch the schedule for a Refuse phase.
        loop {
            tokio::select! {
                () = stop.cancelled() => {
                    closed.cancel();
                    serving.abort();
                    return;
                }
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
            if server.fault() == Some(ServerFault::Refuse) {
                break;
            }
        }
        closed.cancel();
        serving.abort();
        let _ = serving.await;
        while server.fault() == Some(ServerFault::Refuse) {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
    }
}

fn router(server: Arc<Server>) -> Router {
    Router::new()
        .route("/session/token", post(login))
        .route("/user/profile", get(profile))
        .route("/quote", get(quote))
        .route("/quote/ltp", get(ltp))
        .route("/orders", get(orders))
        .route("/orders/regular", post(place))
        .route("/orders/regular/{id}", put(modify).delete(cancel))
        .route("/gtt/triggers", post(gtt))
        .with_state(server)
}

/// A Kite error response.
fn kite_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"status": "error", "message": message, "error_type": error_type})),
    )
        .into_response()
}

fn success(data: serde_json::Value) -> Response {
    Json(json!({"status": "success", "data": data})).into_response()
}

impl Server {
    fn fault(&self) -> Option<ServerFault> {
        let elapsed = self.started.elapsed();
        self.schedule
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|p| p.from <= elapsed && elapsed < p.until)
            .map(|p| p.fault.clone())
    }

    /// Kite's per-second limits, counted per calendar second.
    fn over_limit(&self, class: &'static str, limit: u32) -> bool {
        let second = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let window = windows.entry(class).or_insert((second, 0));
        if window.0 != second {
            *window = (second, 0);
        }
        window.1 += 1;
        window.1 > limit
    }

    /// The common gate of every authenticated route: faults, auth, limits.
    async fn admit(
        &self,
        headers: &HeaderMap,
        class: &'static str,
        limit: u32,
    ) -> Option<Response> {
        match self.fault() {
            Some(ServerFault::Slow(d)) => tokio::time::sleep(d).await,
            Some(ServerFault::Status(code)) => {
                let (status, kind) = match code {
                    502 => (StatusCode::BAD_GATEWAY, "DataException"),
                    503 => (StatusCode::SERVICE_UNAVAILABLE, "NetworkException"),
                    _ => (StatusCode::INTERNAL_SERVER_ERROR, "GeneralException"),
                };
                return Some(kite_error(status, kind, "simulated broker outage"));
            }
            Some(ServerFault::RateLimit) => {
                let mut response = kite_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "NetworkException",
                    "Too many requests",
                );
                response
                    .headers_mut()
                    .insert("retry-after", axum::http::HeaderValue::from_static("1"));
                return Some(response);
            }
            Some(ServerFault::TokenExpired) => {
                *self.token.lock().unwrap_or_else(|p| p.into_inner()) = None;
            }
            _ => {}
        }
        let presented = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("token "))
            .and_then(|v| v.split_once(':'))
            .map(|(key, token)| (key.to_string(), token.to_string()));
        let valid = self.token.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match (presented, valid) {
            (Some((key, token)), Some(valid)) if key == self.api_key && token == valid => {}
            _ => {
                return Some(kite_error(
                    StatusCode::FORBIDDEN,
                    "TokenException",
                    "Incorrect `api_key` or `access_token`.",
                ))
            }
        }
        if self.over_limit(class, limit) {
            return Some(kite_error(
                StatusCode::TOO_MANY_REQUESTS,
                "NetworkException",
                "Too many requests",
            ));
        }
        None
    }

    /// Adds a published mode to the broker's own record.
    fn remember(&self, modes: &Modes) {
        self.mode_history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((modes.changed_at, modes.trading, modes.epoch));
    }

    /// The mode of publication `epoch`, else the one published at `sent_at`
    /// (from the broker's own record), else the current one.
    fn mode(&self, sent_at: Option<SystemTime>, epoch: Option<u64>) -> TradingMode {
        let current = self
            .modes
            .get()
            .map_or(TradingMode::Active, |m| m.borrow().trading);
        let history = self.mode_history.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(epoch) = epoch {
            if let Some((_, mode, _)) = history.iter().rev().find(|(_, _, e)| *e == epoch) {
                return *mode;
            }
        }
        let Some(sent_at) = sent_at else {
            return current;
        };
        history
            .iter()
            .rev()
            .find(|(at, _, _)| *at <= sent_at)
            .map_or(current, |(_, mode, _)| *mode)
    }

    /// Judges every order again against the full record of publications
    /// (one may have reached the broker after the order it governed).
    fn judge_all(&self) {
        let mut ledger = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
        for received in &mut ledger.received {
            let judged = self.mode(received.sent_at, received.modes_epoch);
            if received.modes_epoch.is_some() {
                received.mode = judged;
            }
        }
    }

    fn receive(
        &self,
        h: &HeaderMap,
        tag: &str,
        intent: OrderIntent,
        price: Option<f64>,
        placed: bool,
    ) {
        self.record(h, tag, intent, price, placed, false);
    }

    fn record(
        &self,
        h: &HeaderMap,
        tag: &str,
        intent: OrderIntent,
        price: Option<f64>,
        placed: bool,
        protective: bool,
    ) {
        let sent_at = h
            .get("x-seawall-sent-at")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map(|nanos| SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos));
        let modes_epoch = h
            .get("x-seawall-modes-epoch")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let mode = self.mode(sent_at, modes_epoch);
        self.ledger
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .received
            .push(Received {
                tag: tag.to_string(),
                intent,
                mode,
                sent_at,
                modes_epoch,
                price,
                placed,
                protective,
            });
    }
}

#[derive(Deserialize)]
struct LoginForm {
    api_key: String,
    request_token: String,
}

async fn login(State(s): State<Arc<Server>>, Form(form): Form<LoginForm>) -> Response {
    match s.fault() {
        Some(ServerFault::TokenExpired) => {
            return kite_error(
                StatusCode::FORBIDDEN,
                "TokenException",
                "Token is invalid or has expired.",
            )
        }
        Some(ServerFault::Status(_)) => {
            return kite_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "NetworkException",
                "simulated broker outage",
            )
        }
        _ => {}
    }
    if form.api_key != s.api_key || form.request_token.is_empty() {
        return kite_error(
            StatusCode::FORBIDDEN,
            "TokenException",
            "Invalid `api_key` or `request_token`.",
        );
    }
    let token = format!("at{}", s.token_seq.fetch_add(1, Ordering::SeqCst) + 1);
    *s.token.lock().unwrap_or_else(|p| p.into_inner()) = Some(token.clone());
    success(json!({"user_id": "SW0001", "access_token": token}))
}

async fn profile(State(s): State<Arc<Server>>, headers: HeaderMap) -> Response {
    if let Some(refused) = s.admit(&headers, "other", 10).await {
        return refused;
    }
    success(json!({"user_id": "SW0001", "user_name": "seawall demo"}))
}

#[derive(Deserialize)]
struct Instruments {
    i: String,
}

fn quote_data(s: &Server, instrument: &str, full: bool) -> Option<serde_json::Value> {
    let price = s.tape.peek(instrument)?;
    let timestamp = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    Some(if full {
        json!({"instrument_token": 408065, "last_price": price, "timestamp": timestamp})
    } else {
        json!({"instrument_token": 408065, "last_price": price})
    })
}

/// `GET /quote` (with the exchange timestamp) and `GET /quote/ltp` (the
/// last price only); both count against the 1/s quote limit.
async fn quote_route(s: &Server, headers: &HeaderMap, instrument: &str, full: bool) -> Response {
    if let Some(refused) = s.admit(headers, "quote", 1).await {
        return refused;
    }
    match quote_data(s, instrument, full) {
        Some(data) => success(json!({ instrument: data })),
        None => kite_error(
            StatusCode::BAD_REQUEST,
            "InputException",
            "Invalid instrument",
        ),
    }
}

async fn quote(
    State(s): State<Arc<Server>>,
    headers: HeaderMap,
    Query(q): Query<Instruments>,
) -> Response {
    quote_route(&s, &headers, &q.i, true).await
}

async fn ltp(
    State(s): State<Arc<Server>>,
    headers: HeaderMap,
    Query(q): Query<Instruments>,
) -> Response {
    quote_route(&s, &headers, &q.i, false).await
}

async fn orders(State(s): State<Arc<Server>>, headers: HeaderMap) -> Response {
    if let Some(refused) = s.admit(&headers, "other", 10).await {
        return refused;
    }
    let book = s.book.lock().unwrap_or_else(|p| p.into_inner()).clone();
    success(serde_json::to_value(book).unwrap_or_default())
}

/// The form of a regular order, as Kite takes it.
#[derive(Debug, Deserialize)]
struct OrderForm {
    tradingsymbol: String,
    exchange: String,
    transaction_type: String,
    quantity: u32,
    #[serde(default)]
    price: Option<f64>,
    #[serde(default)]
    tag: String,
    /// The demo's own field: `open` or `exit` (what the order does to exposure).
    #[serde(default)]
    intent: Option<String>,
}

async fn place(
    State(s): State<Arc<Server>>,
    headers: HeaderMap,
    Form(form): Form<OrderForm>,
) -> Response {
    let intent = match form.intent.as_deref() {
        Some("exit") => OrderIntent::Exit,
        _ => OrderIntent::Open,
    };
    if let Some(refused) = s.admit(&headers, "orders", 10).await {
        s.receive(&headers, &form.tag, intent, form.price, false);
        return refused;
    }
    if form.quantity == 0
        || form.tag.len() > 20
        || !form.tag.chars().all(|c| c.is_ascii_alphanumeric())
    {
        s.receive(&headers, &form.tag, intent, form.price, false);
        return kite_error(
            StatusCode::BAD_REQUEST,
            "InputException",
            "Invalid quantity or tag (a tag is at most 20 alphanumeric characters).",
        );
    }
    let order_id = format!("2026{:011}", s.order_seq.fetch_add(1, Ordering::SeqCst) + 1);
    s.book
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(BookOrder {
            order_id: order_id.clone(),
            tag: form.tag.clone(),
            tradingsymbol: form.tradingsymbol,
            exchange: form.exchange,
            transaction_type: form.transaction_type,
            quantity: form.quantity,
            price: form.price.unwrap_or(0.0),
            status: "COMPLETE".to_string(),
        });
    s.receive(&headers, &form.tag, intent, form.price, true);
    if let Some(ServerFault::OrderTimedOut(p)) = s.fault() {
        if s.rng.lock().map(|mut r| r.f64() < p).unwrap_or(false) {
            return kite_error(
                StatusCode::BAD_REQUEST,
                "GeneralException",
                "Order request timed out. Please check the order book and confirm before placing again.",
            );
        }
    }
    success(json!({ "order_id": order_id }))
}

/// A GTT (good-till-triggered) protective stop: a broker-side exit that
/// fires at `trigger_price` even if the engine is gone. The loopback broker
/// keeps what the ledger needs; Kite's other fields (symbol, side) pass.
#[derive(Debug, Deserialize)]
struct GttForm {
    quantity: u32,
    trigger_price: f64,
    #[serde(default)]
    tag: String,
}

async fn gtt(
    State(s): State<Arc<Server>>,
    headers: HeaderMap,
    Form(form): Form<GttForm>,
) -> Response {
    if let Some(refused) = s.admit(&headers, "orders", 10).await {
        s.record(
            &headers,
            &form.tag,
            OrderIntent::Exit,
            Some(form.trigger_price),
            false,
            true,
        );
        return refused;
    }
    if form.quantity == 0 || !(form.trigger_price.is_finite() && form.trigger_price > 0.0) {
        s.record(
            &headers,
            &form.tag,
            OrderIntent::Exit,
            Some(form.trigger_price),
            false,
            true,
        );
        return kite_error(
            StatusCode::BAD_REQUEST,
            "InputException",
            "Invalid quantity or trigger price.",
        );
    }
    let id = s.order_seq.fetch_add(1, Ordering::SeqCst) + 1;
    s.record(
        &headers,
        &form.tag,
        OrderIntent::Exit,
        Some(form.trigger_price),
        true,
        true,
    );
    success(json!({ "trigger_id": id }))
}

async fn modify(
    State(s): State<Arc<Server>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(refused) = s.admit(&headers, "orders", 10).await {
        s.receive(&headers, &id, OrderIntent::Modify, None, false);
        return refused;
    }
    s.receive(&headers, &id, OrderIntent::Modify, None, true);
    success(json!({ "order_id": id }))
}

async fn cancel(
    State(s): State<Arc<Server>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(refused) = s.admit(&headers, "orders", 10).await {
        s.receive(&headers, &id, OrderIntent::Cancel, None, false);
        return refused;
    }
    let mut book = s.book.lock().unwrap_or_else(|p| p.into_inner());
    let found = book.iter_mut().find(|o| o.order_id == id);
    let Some(order) = found else {
        drop(book);
        s.receive(&headers, &id, OrderIntent::Cancel, None, false);
        return kite_error(StatusCode::BAD_REQUEST, "OrderException", "Order not found");
    };
    order.status = "CANCELLED".to_string();
    drop(book);
    s.receive(&headers, &id, OrderIntent::Cancel, None, true);
    success(json!({ "order_id": id }))
}
