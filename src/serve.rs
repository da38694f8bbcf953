//! `kwatch serve`: Prometheus metrics of fresh snapshots over HTTP.
//!
//! Each scrape of `/metrics` takes a new snapshot, one at a time (see [`coalesce`]), and renders it
//! ([`metrics::render`]). A few threads answer requests so that a slow collection does not hold up `/` or a
//! 404; SIGTERM and SIGINT stop the server between requests.

pub mod coalesce;
pub mod deaths;
pub mod metrics;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tiny_http::{Header, Method, Request, Response, Server};

use crate::cli::Args;
use crate::collect::Collector;
use crate::duration::parse_duration;
use crate::model::Snapshot;
use coalesce::Coalescer;
use deaths::DeathWatch;
use metrics::{DeathCounts, MetricsOptions, SelfStats};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (loopback by default; port 0 picks a free port, printed on stderr).
    #[arg(long, default_value = "127.0.0.1:9813", value_name = "ADDR")]
    pub listen: SocketAddr,

    /// Label per-process series with the pid as well as the comm: one series per process instead of per
    /// program name (many more series on a busy host).
    #[arg(long)]
    pub pid_label: bool,

    /// Answer 503 when a scrape's snapshot is not ready within this time; the collection goes on and the next
    /// scrape gets its result. Keep it below Prometheus's scrape_timeout.
    #[arg(long, default_value = "8s", value_parser = parse_timeout, value_name = "DURATION")]
    pub scrape_timeout: Duration,
}

/// Threads answering requests: enough that `/` and concurrent scrapes do not queue behind one slow scrape.
const WORKERS: usize = 4;

/// One collection: the snapshot, how long it took, and the deaths counted so far.
struct Collection {
    snapshot: Snapshot,
    took: Duration,
    deaths: Option<DeathCounts>,
}

/// A collection, or why there is none.
type Collected = Arc<Result<Collection, String>>;

/// What every request handler shares.
struct Handler {
    coalescer: Coalescer<Collected>,
    options: MetricsOptions,
    timeout: Duration,
    /// Scrapes answered without metrics.
    errors: AtomicU64,
}

/// Binds the address, then serves until SIGTERM or SIGINT.
pub fn run(serve: &ServeArgs, args: &Args) -> anyhow::Result<()> {
    let filter = args.filter();
    let options = crate::run::collect_options(args, &filter);
    let listener = TcpListener::bind(serve.listen)
        .with_context(|| format!("cannot listen on '{}'", serve.listen))?;
    let addr = listener
        .local_addr()
        .with_context(|| format!("cannot listen on '{}'", serve.listen))?;
    let server = Arc::new(
        Server::from_listener(listener, None)
            .map_err(|e| anyhow::anyhow!("cannot serve on '{addr}': {e}"))?,
    );

    let state = Mutex::new((Collector::new(options), DeathWatch::open()));
    let coalescer = Coalescer::new(move || -> Collected {
        let started = Instant::now();
        let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
        let (collector, deaths) = &mut *state;
        deaths.drain();
        let result = collector.collect().map_err(|e| crate::run::error_line(&e));
        Arc::new(result.map(|mut snapshot| {
            let deaths = deaths.step(&snapshot, &filter);
            if !filter.is_empty() {
                let keep: Vec<bool> = snapshot
                    .connections
                    .iter()
                    .map(|c| filter.matches_in(c, &snapshot))
                    .collect();
                let mut keep = keep.into_iter();
                snapshot
                    .connections
                    .retain(|_| keep.next().unwrap_or(false));
            }
            Collection {
                snapshot,
                took: started.elapsed(),
                deaths,
            }
        }))
    });
    let ctx = Arc::new(Handler {
        coalescer,
        options: MetricsOptions {
            pid_label: serve.pid_label,
        },
        timeout: serve.scrape_timeout,
        errors: AtomicU64::new(0),
    });

    let stop = Arc::new(AtomicBool::new(false));
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .context("cannot install signal handlers")?;
    let signals_handle = signals.handle();
    let stopper = {
        let (stop, server) = (Arc::clone(&stop), Arc::clone(&server));
        std::thread::spawn(move || {
            if signals.forever().next().is_some() {
                stop.store(true, Ordering::SeqCst);
                // Each unblock releases one worker from recv().
                for _ in 0..WORKERS {
                    server.unblock();
                }
            }
        })
    };

    eprintln!("kwatch: serving metrics on http://{addr}/metrics");
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (ctx, server, stop) = (Arc::clone(&ctx), Arc::clone(&server), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    // An error is an unblock (stop is set then) or a failed accept: try again.
                    if let Ok(request) = server.recv() {
                        respond(request, &ctx);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        if w.join().is_err() {
            eprintln!("kwatch: warning: a request thread panicked");
        }
    }
    signals_handle.close();
    let _ = stopper.join();
    eprintln!("kwatch: stopped");
    Ok(())
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
    let readable = matches!(method, Method::Get | Method::Head);
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

fn respond(request: Request, ctx: &Handler) {
    let response = match route(request.method(), request.url()) {
        Route::Metrics => scrape(ctx),
        Route::Index => text(200, "text/html; charset=utf-8", INDEX_HTML.to_string()),
        Route::MethodNotAllowed => text(405, PLAIN, "only GET and HEAD are served\n".to_string()),
        Route::NotFound => text(404, PLAIN, "not found: see /metrics\n".to_string()),
    };
    // The client may have gone away: nothing left to tell it.
    let _ = request.respond(response);
}

const PLAIN: &str = "text/plain; charset=utf-8";

fn scrape(ctx: &Handler) -> Response<std::io::Cursor<Vec<u8>>> {
    let collected = ctx.coalescer.get(ctx.timeout).map_err(|e| e.to_string());
    let failure = match collected.as_deref() {
        Ok(Ok(c)) => {
            let stats = SelfStats {
                scrape_duration: c.took,
                scrape_errors: ctx.errors.load(Ordering::SeqCst),
                deaths: c.deaths.clone(),
            };
            match metrics::render(&c.snapshot, &ctx.options, &stats) {
                Ok(body) => return text(200, metrics::CONTENT_TYPE, body),
                Err(e) => format!("cannot render metrics: {e}"),
            }
        }
        Ok(Err(e)) => format!("cannot take a snapshot: {e}"),
        Err(e) => e.clone(),
    };
    ctx.errors.fetch_add(1, Ordering::SeqCst);
    eprintln!("kwatch: warning: scrape failed: {failure}");
    text(503, PLAIN, format!("kwatch: {failure}\n"))
}

fn text(status: u16, content_type: &str, body: String) -> Response<std::io::Cursor<Vec<u8>>> {
    let response = Response::from_string(body).with_status_code(status);
    match Header::from_bytes("Content-Type", content_type) {
        Ok(h) => response.with_header(h),
        Err(()) => response,
    }
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        0 => Err(format!("invalid timeout '{s}': must be more than 0")),
        ms => Ok(Duration::from_millis(ms)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let cases = [
            (Method::Get, "/metrics", Route::Metrics),
            (Method::Head, "/metrics", Route::Metrics),
            (Method::Get, "/metrics?x=1", Route::Metrics),
            (Method::Get, "/", Route::Index),
            (Method::Post, "/metrics", Route::MethodNotAllowed),
            (Method::Get, "/metricsx", Route::NotFound),
            (Method::Get, "/favicon.ico", Route::NotFound),
            (Method::Post, "/other", Route::NotFound),
        ];
        for (method, url, want) in cases {
            assert_eq!(route(&method, url), want, "{method} {url}");
        }
    }

    #[test]
    fn timeout_must_be_positive() {
        assert_eq!(parse_timeout("2s"), Ok(Duration::from_secs(2)));
        assert!(
            parse_timeout("0s")
                .unwrap_err()
                .contains("invalid timeout '0s'")
        );
        assert!(parse_timeout("x").is_err());
    }
}
