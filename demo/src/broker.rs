//! The demo's broker client: Kite Connect v3 over real HTTP (reqwest), with
//! Kite's error types and the reference classification.

use seawall::degradation::OrderIntent;
use seawall::{Evidence, FailureKind, Outcome, Service};
use seawall::{Lifecycle, Policy};
use serde::Deserialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Buy or sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Buy.
    Buy,
    /// Sell.
    Sell,
}

/// An order.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    /// "NSE:INFY".
    pub symbol: String,
    /// Buy or sell.
    pub side: Side,
    /// Quantity.
    pub quantity: u32,
    /// The limit price: the price the strategy decided on.
    pub price: f64,
    /// Kite's reconciliation tag (≤ 20 alphanumerics).
    pub tag: String,
}

/// What the engine asks the broker.
#[derive(Debug, Clone, PartialEq)]
pub enum BrokerRequest {
    /// A quote (a read; idempotent).
    Quote(String),
    /// The order book (a read; idempotent): how orders are reconciled by tag.
    OrderBook,
    /// A new order that adds risk.
    Place(Order),
    /// An order that reduces a position.
    Exit(Order),
    /// Cancel a resting order by id.
    Cancel(String),
    /// A broker-side protective stop (Kite's GTT) for an open position: an
    /// exit that fires at `order.price` even if the engine is gone.
    Protect(Order),
}

impl BrokerRequest {
    /// What the request does to exposure, if it is an order.
    pub fn order_intent(&self) -> Option<OrderIntent> {
        match self {
            BrokerRequest::Quote(_) | BrokerRequest::OrderBook => None,
            BrokerRequest::Place(_) => Some(OrderIntent::Open),
            BrokerRequest::Exit(_) | BrokerRequest::Protect(_) => Some(OrderIntent::Exit),
            BrokerRequest::Cancel(_) => Some(OrderIntent::Cancel),
        }
    }
}

/// One order in the broker's order book.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BookEntry {
    /// The broker's id.
    pub order_id: String,
    /// The engine's tag.
    pub tag: String,
    /// COMPLETE, CANCELLED, …
    pub status: String,
}

/// What the broker answers.
#[derive(Debug, Clone, PartialEq)]
pub enum BrokerResponse {
    /// Last price.
    Quote(f64),
    /// The order id.
    Accepted(String),
    /// The order book.
    OrderBook(Vec<BookEntry>),
}

/// Kite's `error_type`s, HTTP 429, and transport failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KiteErrorType {
    /// 403: expired or invalid token.
    TokenException,
    /// 400: bad parameters.
    InputException,
    /// 400/500: order rejected (a business reject).
    OrderException,
    /// 503: network trouble.
    NetworkException,
    /// 502: bad data from the exchange side.
    DataException,
    /// 500: anything else.
    GeneralException,
    /// 429: rate limited.
    TooManyRequests,
    /// The connection could not be made: the request was never sent.
    ConnectionRefused,
    /// The connection failed after the request may have been sent.
    Transport,
}

/// A Kite error body: `{"status":"error","message":…,"error_type":…}`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{error_type:?}: {message}")]
pub struct KiteError {
    /// The type.
    pub error_type: KiteErrorType,
    /// The message.
    pub message: String,
    /// The broker's `Retry-After`, with a 429.
    pub retry_after: Option<Duration>,
}

impl KiteError {
    fn new(error_type: KiteErrorType, message: impl Into<String>) -> Self {
        Self {
            error_type,
            message: message.into(),
            retry_after: None,
        }
    }

    fn from_body(status: u16, error_type: &str, message: String) -> Self {
        let t = match (status, error_type) {
            (429, _) => KiteErrorType::TooManyRequests,
            (_, "TokenException") => KiteErrorType::TokenException,
            (_, "InputException") => KiteErrorType::InputException,
            (_, "OrderException" | "MarginException" | "HoldingException") => {
                KiteErrorType::OrderException
            }
            (_, "DataException") => KiteErrorType::DataException,
            (_, "NetworkException") => KiteErrorType::NetworkException,
            _ => KiteErrorType::GeneralException,
        };
        Self::new(t, message)
    }
}

/// The session shared by every connection to one account: an access token
/// obtained by logging in, dropped when the broker refuses it.
#[derive(Debug, Default)]
pub struct Session {
    token: Mutex<Option<String>>,
}

/// Crashes the demo injects in the client after an order was sent: the
/// order reached the broker, and the service actor died before answering.
#[derive(Debug, Default)]
pub struct ClientFaults {
    started: Mutex<Option<Instant>>,
    /// (from, until, probability) after the start.
    crash_after_order: Mutex<Vec<(Duration, Duration, f64)>>,
    rng: Mutex<fastrand::Rng>,
}

impl ClientFaults {
    /// Crashes after an order with `probability` between `from` and `until`.
    pub fn crash_after_order(&self, from: Duration, until: Duration, probability: f64) {
        let mut started = self.started.lock().unwrap_or_else(|p| p.into_inner());
        started.get_or_insert_with(Instant::now);
        self.crash_after_order
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((from, until, probability));
    }

    fn crash_now(&self) -> bool {
        let Some(started) = *self.started.lock().unwrap_or_else(|p| p.into_inner()) else {
            return false;
        };
        let elapsed = started.elapsed();
        let p = self
            .crash_after_order
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|(from, until, _)| *from <= elapsed && elapsed < *until)
            .map(|(_, _, p)| *p);
        p.is_some_and(|p| self.rng.lock().map(|mut r| r.f64() < p).unwrap_or(false))
    }
}

/// A Kite Connect client over HTTP: one per service actor, like a pool.
pub struct KiteHttp {
    base: String,
    api_key: String,
    client: reqwest::Client,
    session: Arc<Session>,
    faults: Arc<ClientFaults>,
}

#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: serde_json::Value,
    #[serde(default)]
    message: String,
    #[serde(default)]
    error_type: String,
}

impl KiteHttp {
    /// A client of the broker at `base` ("http://127.0.0.1:PORT").
    pub fn new(
        base: String,
        api_key: String,
        session: Arc<Session>,
        faults: Arc<ClientFaults>,
    ) -> Self {
        // A fresh connection per request: an outage is seen at once, never
        // hidden by a pooled connection.
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap_or_default();
        Self {
            base,
            api_key,
            client,
            session,
            faults,
        }
    }

    fn transport(error: &reqwest::Error) -> KiteError {
        if error.is_connect() {
            KiteError::new(KiteErrorType::ConnectionRefused, error.to_string())
        } else {
            KiteError::new(KiteErrorType::Transport, error.to_string())
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<serde_json::Value, KiteError> {
        let response = request.send().await.map_err(|e| Self::transport(&e))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body: Envelope = response.json().await.map_err(|e| Self::transport(&e))?;
        if status == 200 && body.status == "success" {
            Ok(body.data)
        } else {
            let mut error = KiteError::from_body(status, &body.error_type, body.message);
            error.retry_after = retry_after;
            if error.error_type == KiteErrorType::TokenException {
                *self.session.token.lock().unwrap_or_else(|p| p.into_inner()) = None;
            }
            Err(error)
        }
    }

    async fn login(&self) -> Result<String, KiteError> {
        let form = [
            ("api_key", self.api_key.as_str()),
            ("request_token", "demo"),
            ("checksum", "demo"),
        ];
        let data = self
            .send(
                self.client
                    .post(format!("{}/session/token", self.base))
                    .form(&form),
            )
            .await?;
        let token = data["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        *self.session.token.lock().unwrap_or_else(|p| p.into_inner()) = Some(token.clone());
        Ok(token)
    }

    /// The session's token, logging in first when there is none.
    async fn token(&self) -> Result<String, KiteError> {
        let current = self
            .session
            .token
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match current {
            Some(token) => Ok(token),
            None => self.login().await,
        }
    }

    fn authorized(&self, builder: reqwest::RequestBuilder, token: &str) -> reqwest::RequestBuilder {
        // When the runtime's order gate released it (or, for anything else,
        // when it left).
        let release = seawall::modes::order_release();
        let sent_at = release
            .map_or_else(std::time::SystemTime::now, |r| r.at)
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let builder = builder
            .header("X-Kite-Version", "3")
            .header("Authorization", format!("token {}:{token}", self.api_key))
            .header("X-Seawall-Sent-At", sent_at.to_string());
        // Which published modes the gate enforced when it let the order go:
        // the broker's ledger judges the order by them exactly.
        match release {
            Some(release) => {
                builder.header("X-Seawall-Modes-Epoch", release.modes_epoch.to_string())
            }
            None => builder,
        }
    }

    async fn order(&self, order: &Order, intent: &str) -> Result<BrokerResponse, KiteError> {
        let token = self.token().await?;
        let (exchange, symbol) = order
            .symbol
            .split_once(':')
            .unwrap_or(("NSE", &order.symbol));
        let side = match order.side {
            Side::Buy => "BUY",
            Side::Sell => "SELL",
        };
        let form = [
            ("tradingsymbol", symbol.to_string()),
            ("exchange", exchange.to_string()),
            ("transaction_type", side.to_string()),
            ("order_type", "LIMIT".to_string()),
            ("product", "MIS".to_string()),
            ("quantity", order.quantity.to_string()),
            ("price", order.price.to_string()),
            ("tag", order.tag.clone()),
            ("intent", intent.to_string()),
        ];
        let url = format!("{}/orders/regular", self.base);
        let sent = self
            .send(self.authorized(self.client.post(url), &token).form(&form))
            .await;
        if self.faults.crash_now() {
            panic!(
                "demo: the broker client crashed after order {} was sent",
                order.tag
            );
        }
        let data = sent?;
        Ok(BrokerResponse::Accepted(
            data["order_id"].as_str().unwrap_or_default().to_string(),
        ))
    }
}

impl Service for KiteHttp {
    type Request = BrokerRequest;
    type Response = BrokerResponse;
    type Error = KiteError;
    type Policy = KiteHttpPolicy;

    async fn call(&mut self, request: BrokerRequest) -> Result<BrokerResponse, KiteError> {
        match &request {
            BrokerRequest::Quote(symbol) => self.quote(symbol).await,
            BrokerRequest::OrderBook => self.order_book().await,
            BrokerRequest::Place(order) => self.order(order, "open").await,
            BrokerRequest::Exit(order) => self.order(order, "exit").await,
            BrokerRequest::Protect(order) => self.protect(order).await,
            BrokerRequest::Cancel(id) => {
                let token = self.token().await?;
                let url = format!("{}/orders/regular/{id}", self.base);
                self.send(self.authorized(self.client.delete(url), &token))
                    .await?;
                Ok(BrokerResponse::Accepted(id.clone()))
            }
        }
    }
}

impl KiteHttp {
    async fn quote(&mut self, symbol: &str) -> Result<BrokerResponse, KiteError> {
        let token = self.token().await?;
        let url = format!("{}/quote/ltp", self.base);
        let data = self
            .send(
                self.authorized(self.client.get(url), &token)
                    .query(&[("i", symbol)]),
            )
            .await?;
        data[symbol]["last_price"]
            .as_f64()
            .map(BrokerResponse::Quote)
            .ok_or_else(|| KiteError::new(KiteErrorType::DataException, "quote without last_price"))
    }

    async fn order_book(&mut self) -> Result<BrokerResponse, KiteError> {
        let token = self.token().await?;
        let url = format!("{}/orders", self.base);
        let data = self
            .send(self.authorized(self.client.get(url), &token))
            .await?;
        serde_json::from_value(data)
            .map(BrokerResponse::OrderBook)
            .map_err(|e| KiteError::new(KiteErrorType::DataException, e.to_string()))
    }

    /// A stop-loss as a GTT trigger (Kite's `/gtt/triggers`).
    async fn protect(&mut self, order: &Order) -> Result<BrokerResponse, KiteError> {
        let token = self.token().await?;
        let side = match order.side {
            Side::Buy => "BUY",
            Side::Sell => "SELL",
        };
        let (_, symbol) = order
            .symbol
            .split_once(':')
            .unwrap_or(("NSE", &order.symbol));
        let form = [
            ("tradingsymbol", symbol.to_string()),
            ("transaction_type", side.to_string()),
            ("quantity", order.quantity.to_string()),
            ("trigger_price", order.price.to_string()),
            ("tag", order.tag.clone()),
        ];
        let url = format!("{}/gtt/triggers", self.base);
        let data = self
            .send(self.authorized(self.client.post(url), &token).form(&form))
            .await?;
        Ok(BrokerResponse::Accepted(data["trigger_id"].to_string()))
    }
}

/// How the breaker reads `KiteHttp`.
pub struct KiteHttpPolicy;

impl Policy<BrokerRequest, BrokerResponse, KiteError> for KiteHttpPolicy {
    /// Kite's error types, per the reference table: business rejects, input
    /// errors, throttling and an expired token do not trip the breaker;
    /// network, data and general errors do. An order that "timed out" at the
    /// broker, or whose connection failed after it was sent, is ambiguous.
    fn classify(error: &KiteError) -> Outcome {
        match error.error_type {
            _ if error.message.contains("timed out") => Outcome::Failure(FailureKind::Ambiguous),
            KiteErrorType::TokenException
            | KiteErrorType::InputException
            | KiteErrorType::OrderException
            | KiteErrorType::TooManyRequests => Outcome::Ignored,
            KiteErrorType::NetworkException | KiteErrorType::ConnectionRefused => {
                Outcome::Failure(FailureKind::Connection)
            }
            KiteErrorType::Transport => Outcome::Failure(FailureKind::Ambiguous),
            KiteErrorType::DataException | KiteErrorType::GeneralException => {
                Outcome::Failure(FailureKind::Server)
            }
        }
    }

    fn is_idempotent(request: &BrokerRequest) -> bool {
        matches!(request, BrokerRequest::Quote(_) | BrokerRequest::OrderBook)
    }

    fn order_intent(request: &BrokerRequest) -> Option<OrderIntent> {
        request.order_intent()
    }
    /// Kite's rate-limit classes (`[services.kite_api.rate_limit.classes]`).
    fn request_class(request: &BrokerRequest) -> &'static str {
        match request {
            BrokerRequest::Quote(_) => "quote",
            BrokerRequest::Place(_)
            | BrokerRequest::Exit(_)
            | BrokerRequest::Cancel(_)
            | BrokerRequest::Protect(_) => "orders",
            BrokerRequest::OrderBook => "default",
        }
    }
    /// A 429's `Retry-After` pauses that class for exactly that long.
    fn retry_after(error: &KiteError) -> Option<Duration> {
        (error.error_type == KiteErrorType::TooManyRequests)
            .then_some(error.retry_after)
            .flatten()
    }

    fn is_auth_failure(error: &KiteError) -> bool {
        error.error_type == KiteErrorType::TokenException
    }
}

impl Lifecycle for KiteHttp {
    /// Logs in again: proof the broker answers.
    async fn reconnect(&mut self) -> Result<Evidence, KiteError> {
        self.login().await?;
        Ok(Evidence::Observed)
    }
    /// The user profile: a cheap authenticated read.
    async fn health_check(&mut self) -> Result<Evidence, KiteError> {
        let token = self.token().await?;
        let url = format!("{}/user/profile", self.base);
        self.send(self.authorized(self.client.get(url), &token))
            .await?;
        Ok(Evidence::Observed)
    }
}
