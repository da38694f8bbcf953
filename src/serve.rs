//! `kwatch serve`: Prometheus metrics of fresh snapshots over HTTP or HTTPS.
//!
//! A scrape of `/metrics` gets the snapshot of the last collection if it ended less than `--min-interval` ago,
//! else of a new one; one collection runs at a time on its own thread (see [`coalesce`]) and is rendered once
//! ([`metrics::render`]). Connections are served by [`server`] on one thread, with the limits it lists;
//! [`web_config`] reads TLS and users. SIGTERM and SIGINT stop the server.

pub mod accept;
pub mod auth;
pub mod coalesce;
pub mod conns;
pub mod deadline_io;
pub mod deaths;
pub mod handler;
pub mod metrics;
pub mod rate;
pub mod server;
pub mod web_config;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use tokio::signal::unix::{SignalKind, signal};

use crate::cli::Args;
use crate::collect::Collector;
use crate::duration::parse_duration;
use coalesce::Coalescer;
use deaths::DeathWatch;
use handler::{Collected, Site, Web};
use metrics::{MetricsOptions, SelfStats};
use server::Limits;
use web_config::WebConfig;

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

    /// Scrapes arriving within this time of the last collection's end get its result instead of a new
    /// collection: at most one collection per interval, however many scrapers (0: collect for every scrape).
    #[arg(long, default_value = "1s", value_parser = parse_interval, value_name = "DURATION")]
    pub min_interval: Duration,

    /// TLS and basic authentication, in the web configuration format of Prometheus exporters
    /// (exporter-toolkit: tls_server_config, basic_auth_users, http_server_config.headers, rate_limit). Read
    /// again on SIGHUP.
    #[arg(long, value_name = "FILE")]
    pub web_config_file: Option<PathBuf>,

    /// Also record every collection into DIR, as `kwatch record DIR` does (docs/recording.md); collections
    /// are taken at --record-interval when scrapes do not take them more often.
    #[arg(long, value_name = "DIR")]
    pub record: Option<PathBuf>,

    /// With --record: time between recorded refreshes when no scrape comes sooner (at least 100ms). Without it:
    /// the live view's pace, every second or less often where a refresh costs more than a quarter of a core.
    #[arg(long, value_parser = crate::cli::parse_interval, value_name = "DURATION", requires = "record")]
    pub record_interval: Option<Duration>,

    /// With --record: remove recorded hours older than this.
    #[arg(long, default_value = "7d", value_parser = crate::cli::parse_threshold, value_name = "DURATION", requires = "record")]
    pub retain: Duration,

    /// With --record: remove the oldest recorded hours while the recording is larger than this (K, M, G, T:
    /// powers of 1024).
    #[arg(long, default_value = "1G", value_parser = crate::cli::parse_size, value_name = "SIZE", requires = "record")]
    pub max_size: u64,
}

/// Why serving stopped early: recording failed (a full disk). Set once by the collection, which wakes the server.
#[derive(Default)]
struct Failure {
    error: Mutex<Option<anyhow::Error>>,
    wake: tokio::sync::Notify,
}

impl Failure {
    fn set(&self, e: anyhow::Error) {
        let mut error = self.error.lock().unwrap_or_else(PoisonError::into_inner);
        if error.is_none() {
            *error = Some(e);
            self.wake.notify_one();
        }
    }

    fn take(&self) -> Option<anyhow::Error> {
        self.error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// Binds the address, then serves until SIGTERM or SIGINT.
pub fn run(serve: &ServeArgs, args: &Args) -> anyhow::Result<()> {
    let web = match &serve.web_config_file {
        Some(path) => web_config::load(path)?,
        None => WebConfig::default(),
    };
    let listener = TcpListener::bind(serve.listen)
        .with_context(|| format!("cannot listen on '{}'", serve.listen))?;
    let addr = listener
        .local_addr()
        .with_context(|| format!("cannot listen on '{}'", serve.listen))?;
    let limits = Limits::for_nofile(crate::rlimit::raise_nofile());

    let errors = Arc::new(AtomicU64::new(0));
    let failure = Arc::new(Failure::default());
    let recorder = match &serve.record {
        Some(dir) => Some(crate::record::Recorder::open(
            dir,
            crate::record::store::Retention {
                max_age_ms: serve.retain.as_millis() as u64,
                max_bytes: serve.max_size,
            },
        )?),
        None => None,
    };
    let metrics = Coalescer::new(
        serve.min_interval,
        collection(
            args,
            MetricsOptions {
                pid_label: serve.pid_label,
            },
            Arc::clone(&errors),
            recorder.map(|r| (r, Arc::clone(&failure))),
        ),
    );
    let exposed = web.tls.is_none() && web.users.is_empty() && !addr.ip().is_loopback();
    let tls = web.tls.is_some();
    web_config::install_crypto_provider();
    let site = Arc::new(Site {
        metrics,
        timeout: serve.scrape_timeout,
        errors,
        web: RwLock::new(Arc::new(Web::new(web))),
    });

    // One thread answers every connection; password checks get a thread of their own (see auth).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(2)
        .thread_name("kwatch-serve")
        .build()
        .context("cannot start the server runtime")?;
    runtime.block_on(async {
        let mut term = signal(SignalKind::terminate()).context("cannot install signal handlers")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot install signal handlers")?;
        if let Some(path) = serve.web_config_file.clone() {
            let mut hup =
                signal(SignalKind::hangup()).context("cannot install signal handlers")?;
            let site = Arc::clone(&site);
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    reload(&site, &path);
                }
            });
        }
        let scheme = if tls { "https" } else { "http" };
        eprintln!("kwatch: serving metrics on {scheme}://{addr}/metrics");
        if exposed {
            eprintln!(
                "kwatch: warning: '{addr}' is reachable beyond this host and serves without TLS or a \
                 password: give --web-config-file to require them"
            );
        }
        if serve.record.is_some() {
            // Collections for the recording when scrapes do not take them often enough.
            let site = Arc::clone(&site);
            let mut pace = crate::pace::Pace::from_flags(serve.record_interval, None);
            tokio::spawn(async move {
                loop {
                    let (started, cpu) = (Instant::now(), crate::pace::process_cpu());
                    let _ = site.metrics.get(site.timeout).await;
                    pace.record(crate::pace::process_cpu().saturating_sub(cpu));
                    tokio::time::sleep_until((started + pace.period()).into()).await;
                }
            });
        }
        let stop = async {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
                _ = failure.wake.notified() => {}
            }
        };
        server::serve(listener, site, limits, stop).await
    })?;
    // The collection thread may still run: leaving main ends it.
    runtime.shutdown_background();
    if let Some(e) = failure.take() {
        return Err(e);
    }
    eprintln!("kwatch: stopped");
    Ok(())
}

/// Reads the web config file again (SIGHUP); a bad one leaves the one in force, with a warning.
fn reload(site: &Site, path: &std::path::Path) {
    match web_config::load(path) {
        Ok(config) => {
            site.set_web(Web::new(config));
            eprintln!("kwatch: reloaded web config '{}'", path.display());
        }
        Err(e) => eprintln!(
            "kwatch: warning: web config not reloaded, the previous one stays: {}",
            crate::run::error_line(&e)
        ),
    }
}

/// The work of one collection: snapshot, deaths, filter, rendered once for every scrape that shares it.
fn collection(
    args: &Args,
    options: MetricsOptions,
    errors: Arc<AtomicU64>,
    recording: Option<(crate::record::Recorder, Arc<Failure>)>,
) -> impl Fn() -> Collected + Send + Sync + 'static {
    let filter = args.filter();
    let collect_options = crate::run::collect_options(args, &filter);
    let mut deaths = DeathWatch::open();
    if recording.is_some() {
        deaths.keep_evidence();
    }
    let state = Mutex::new((Collector::new(collect_options), deaths, 0u64));
    let recording = Mutex::new(recording);
    move || -> Collected {
        let started = Instant::now();
        let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
        let (collector, deaths, collections) = &mut *state;
        *collections += 1;
        deaths.drain();
        let mut snapshot = match collector.collect() {
            Ok(s) => s,
            Err(e) => {
                return Arc::new(Err(format!(
                    "cannot take a snapshot: {}",
                    crate::run::error_line(&e)
                )));
            }
        };
        let counts = deaths.step(&snapshot, &filter);
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
        let stats = SelfStats {
            scrape_duration: started.elapsed(),
            scrape_errors: errors.load(Ordering::SeqCst),
            collections: *collections,
            deaths: counts,
        };
        let rendered = metrics::render(&snapshot, &options, &stats)
            .map(Bytes::from)
            .map_err(|e| format!("cannot render metrics: {e}"));
        let mut recording = recording.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((recorder, failure)) = recording.as_mut() {
            let evidence = deaths.take_evidence();
            if let Err(e) = recorder.append(snapshot, &evidence, deaths.is_listening()) {
                // Recording stops here; the server stops with the error.
                failure.set(e);
                *recording = None;
            }
        }
        Arc::new(rendered)
    }
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        0 => Err(format!("invalid timeout '{s}': must be more than 0")),
        ms => Ok(Duration::from_millis(ms)),
    }
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    parse_duration(s).map(Duration::from_millis)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn timeout_must_be_positive() {
        assert_eq!(parse_timeout("2s"), Ok(Duration::from_secs(2)));
        assert!(
            parse_timeout("0s")
                .unwrap_err()
                .contains("invalid timeout '0s'")
        );
        assert!(parse_timeout("x").is_err());
        assert_eq!(parse_interval("0"), Ok(Duration::ZERO));
        assert_eq!(parse_interval("1s"), Ok(Duration::from_secs(1)));
    }
}
