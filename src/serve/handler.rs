//! One request to one response: refuse bodies, rate-limit, authenticate, route, and serve the shared metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::auth::{Users, Verdict};
use super::coalesce::Coalescer;
use super::conns::Conn;
use super::rate::TokenBucket;
use super::web_config::WebConfig;

/// A collection rendered as metrics text, or why there is none.
pub type Collected = Arc<Result<Bytes, String>>;

/// What every request shares.
pub struct Site {
    pub metrics: Coalescer<Collected>,
    /// How long a scrape waits for a collection before it is answered 503.
    pub timeout: Duration,
    /// Scrapes answered 503, shared with the collection that renders the count.
    pub errors: Arc<AtomicU64>,
    /// What the web config file asks for; replaced whole when it is reloaded.
    pub web: RwLock<Arc<Web>>,
}

/// The web config in force: TLS, users, headers, rate limit.
pub struct Web {
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub users: Users,
    /// Added to every response (the web config's `http_server_config.headers`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub rate: Option<Mutex<TokenBucket>>,
}

impl Web {
    pub fn new(config: WebConfig) -> Web {
        Web {
            tls: config.tls.map(tokio_rustls::TlsAcceptor::from),
            users: Users::new(config.users),
            headers: config.headers,
            rate: config
                .rate_limit
                .map(|r| Mutex::new(TokenBucket::new(r.interval, r.burst, Instant::now()))),
        }
    }
}

impl Site {
    /// The web config in force now.
    pub fn web(&self) -> Arc<Web> {
        Arc::clone(&self.web.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts a new web config in force for the requests and connections that follow.
    pub fn set_web(&self, web: Web) {
        *self.web.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(web);
    }
}

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Metrics,
    Index,
    MethodNotAllowed,
    NotFound,
}

/// Routes on method and path (the query string is ignored).
pub fn route(method: &Method, url: &str) -> Route {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let readable = method == Method::GET || method == Method::HEAD;
    match (path, readable) {
        ("/metrics", true) => Route::Metrics,
        ("/", true) => Route::Index,
        ("/metrics" | "/", false) => Route::MethodNotAllowed,
        _ => Route::NotFound,
    }
}

/// The page at `/`.
pub const INDEX_HTML: &str = "<!DOCTYPE html>\n<html><head><title>kwatch</title></head><body>\n\
<h1>kwatch</h1>\n<p>TCP sockets, timers and stuck connections of this host.</p>\n\
<p><a href=\"/metrics\">/metrics</a></p>\n</body></html>\n";

const PLAIN: &str = "text/plain; charset=utf-8";

/// Whether the request announces a body: kwatch serves none that take one, and never reads one.
pub fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get_all(header::CONTENT_LENGTH)
            .iter()
            .any(|v| v.as_bytes().iter().any(|&b| b != b'0'))
}

/// Answers one request of connection `conn`.
pub async fn respond<B>(site: &Site, conn: &Conn, req: Request<B>) -> Response<Full<Bytes>> {
    let web = site.web();
    let mut response = answer(site, &web, conn, &req).await;
    let headers = response.headers_mut();
    for (name, value) in &web.headers {
        headers.insert(name.clone(), value.clone());
    }
    response
}

async fn answer<B>(site: &Site, web: &Web, conn: &Conn, req: &Request<B>) -> Response<Full<Bytes>> {
    if has_body(req.headers()) {
        // The body stays unread and the connection closes after this answer.
        let mut r = text(
            StatusCode::PAYLOAD_TOO_LARGE,
            PLAIN,
            "kwatch takes no request bodies\n",
        );
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return r;
    }
    if let Some(rate) = &web.rate {
        let allowed = rate
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take(Instant::now());
        if !allowed {
            return text(StatusCode::TOO_MANY_REQUESTS, PLAIN, "too many requests\n");
        }
    }
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    match web.users.check(authorization).await {
        Verdict::Allowed => {}
        Verdict::Denied => {
            let mut r = text(StatusCode::UNAUTHORIZED, PLAIN, "unauthorized\n");
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"kwatch\""),
            );
            return r;
        }
        Verdict::Busy => {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                PLAIN,
                "too many password checks at once: try again\n",
            );
        }
    }
    let _busy = conn.busy();
    let target = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    match route(req.method(), &target) {
        Route::Metrics => scrape(site, scrape_timeout(site.timeout, req.headers())).await,
        Route::Index => text(StatusCode::OK, "text/html; charset=utf-8", INDEX_HTML),
        Route::MethodNotAllowed => {
            let mut r = text(
                StatusCode::METHOD_NOT_ALLOWED,
                PLAIN,
                "only GET and HEAD are served\n",
            );
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            r
        }
        Route::NotFound => text(StatusCode::NOT_FOUND, PLAIN, "not found: see /metrics\n"),
    }
}

/// The header Prometheus sends with every scrape: its `scrape_timeout`, in seconds.
pub const SCRAPER_TIMEOUT: &str = "x-prometheus-scrape-timeout-seconds";
/// Taken off the scraper's own timeout, so that an answer (a 503 with its reason included) arrives before the
/// scraper hangs up; the blackbox exporter's `--timeout-offset` default.
const TIMEOUT_OFFSET: Duration = Duration::from_millis(500);
/// However soon the scraper says it gives up, a scrape waits this long for a collection in progress.
const SHORTEST_WAIT: Duration = Duration::from_millis(100);

/// How long a scrape waits for a collection: `configured` (`--scrape-timeout`), or less when the scraper says
/// (X-Prometheus-Scrape-Timeout-Seconds) that it gives up sooner: its timeout less 0.5 s, or half of it when that
/// is shorter, and at least 0.1 s. A header that is not a positive number of seconds is ignored.
pub fn scrape_timeout(configured: Duration, headers: &HeaderMap) -> Duration {
    let Some(secs) = headers
        .get(SCRAPER_TIMEOUT)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 32)
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
    else {
        return configured;
    };
    if secs >= configured.as_secs_f64() + TIMEOUT_OFFSET.as_secs_f64() {
        return configured;
    }
    let theirs = Duration::from_secs_f64(secs);
    theirs
        .saturating_sub(TIMEOUT_OFFSET)
        .max(theirs / 2)
        .max(SHORTEST_WAIT)
        .min(configured)
}

async fn scrape(site: &Site, timeout: Duration) -> Response<Full<Bytes>> {
    let failure = match site.metrics.get(timeout).await {
        Ok(collected) => match &*collected {
            Ok(body) => return text(StatusCode::OK, super::metrics::CONTENT_TYPE, body.clone()),
            Err(e) => e.clone(),
        },
        Err(e) => e.to_string(),
    };
    site.errors.fetch_add(1, Ordering::SeqCst);
    log!("kwatch: warning: scrape failed: {failure}");
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        PLAIN,
        format!("kwatch: {failure}\n"),
    )
}

fn text(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let cases = [
            (Method::GET, "/metrics", Route::Metrics),
            (Method::HEAD, "/metrics", Route::Metrics),
            (Method::GET, "/metrics?x=1", Route::Metrics),
            (Method::GET, "/", Route::Index),
            (Method::POST, "/metrics", Route::MethodNotAllowed),
            (Method::GET, "/metricsx", Route::NotFound),
            (Method::GET, "/favicon.ico", Route::NotFound),
            (Method::POST, "/other", Route::NotFound),
        ];
        for (method, url, want) in cases {
            assert_eq!(route(&method, url), want, "{method} {url}");
        }
    }

    #[test]
    fn a_scraper_that_gives_up_sooner_is_answered_before_it_does() {
        let configured = Duration::from_secs(8);
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(SCRAPER_TIMEOUT, HeaderValue::from_static(v));
            scrape_timeout(configured, &h)
        };
        assert_eq!(scrape_timeout(configured, &HeaderMap::new()), configured);
        assert_eq!(with("10"), configured);
        assert_eq!(with("8.5"), configured);
        assert_eq!(with("5"), Duration::from_millis(4500));
        assert_eq!(with(" 2.5 "), Duration::from_secs(2));
        assert_eq!(with("0.6"), Duration::from_millis(300));
        for bad in ["0", "-3", "NaN", "inf", "1e999", "soon", "", "1s"] {
            assert_eq!(with(bad), configured, "{bad:?}");
        }
        assert_eq!(with("0.1"), Duration::from_millis(100));
        assert_eq!(with("1e-300"), Duration::from_millis(100));
    }

    #[test]
    fn a_body_is_announced_by_a_nonzero_length_or_a_transfer_encoding() {
        let with = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.append(*k, HeaderValue::from_static(v));
            }
            has_body(&h)
        };
        assert!(!with(&[]));
        assert!(!with(&[("content-length", "0")]));
        assert!(!with(&[("content-length", "000")]));
        assert!(with(&[("content-length", "100000000000000")]));
        assert!(with(&[("content-length", "0"), ("content-length", "5")]));
        assert!(with(&[("transfer-encoding", "chunked")]));
    }
}
