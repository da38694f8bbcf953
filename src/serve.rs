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

use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Instant;

use anyhow::Context as _;
use bytes::Bytes;
use tokio::signal::unix::{SignalKind, signal};

use crate::cli::ServeArgs;
use crate::collect::Collector;
use crate::config::Config;
use crate::exit::error_line;
use crate::recording::Recorder;
use crate::recording::store::Retention;
use coalesce::Coalescer;
use deaths::DeathWatch;
use handler::{Collected, Site, Web};
use metrics::{MetricsOptions, SelfStats};
use server::Limits;
use web_config::WebConfig;

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
pub fn run(serve: &ServeArgs, config: &Config) -> anyhow::Result<()> {
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
        Some(dir) => {
            let retention = Retention {
                max_age_ms: serve.retain.as_millis() as u64,
                max_bytes: serve.max_size,
            };
            let (recorder, warnings) = Recorder::open(dir, retention)?;
            for w in warnings {
                log!("kwatch: warning: {w}");
            }
            Some(recorder)
        }
        None => None,
    };
    let metrics = Coalescer::new(
        serve.min_interval,
        collection(
            config,
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

    // The first collection starts now, not with the first scrape: it is the slowest (cold /proc scan and socket
    // options; seconds at a million sockets), and a scrape arriving later gets a warm one or joins this one.
    if let Err(e) = site.metrics.start_now() {
        log!("kwatch: warning: {e}; the first scrape collects instead");
    }

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
        log!("kwatch: serving metrics on {scheme}://{addr}/metrics");
        if exposed {
            log!(
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
                () = failure.wake.notified() => {}
            }
        };
        server::serve(listener, site, limits, stop).await
    })?;
    // The collection thread may still run: leaving main ends it.
    runtime.shutdown_background();
    if let Some(e) = failure.take() {
        return Err(e);
    }
    log!("kwatch: stopped");
    Ok(())
}

/// Reads the web config file again (SIGHUP); a bad one leaves the one in force, with a warning.
fn reload(site: &Site, path: &std::path::Path) {
    match web_config::load(path) {
        Ok(config) => {
            site.set_web(Web::new(config));
            log!("kwatch: reloaded web config '{}'", path.display());
        }
        Err(e) => log!(
            "kwatch: warning: web config not reloaded, the previous one stays: {}",
            error_line(&e)
        ),
    }
}

/// The work of one collection: snapshot, deaths, filter, rendered once for every scrape that shares it.
fn collection(
    config: &Config,
    options: MetricsOptions,
    errors: Arc<AtomicU64>,
    recording: Option<(Recorder, Arc<Failure>)>,
) -> impl Fn() -> Collected + Send + Sync + 'static {
    let filter = config.filter.clone();
    let collect_options = config.collect_options(&filter);
    // With a filter the recorder keeps the filtered copy, not the snapshot the watch would share.
    let deaths = DeathWatch::open(
        recording.is_some(),
        recording.is_some() && filter.is_empty(),
    );
    let state = Mutex::new((Collector::new(collect_options), deaths, 0u64));
    let recording = Mutex::new(recording);
    move || -> Collected {
        let started = Instant::now();
        let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
        let (collector, deaths, collections) = &mut *state;
        *collections += 1;
        deaths.drain();
        let snapshot = match collector.collect() {
            Ok(s) => Arc::new(s),
            Err(e) => {
                return Arc::new(Err(format!("cannot take a snapshot: {}", error_line(&e))));
            }
        };
        // Until the next collection the death watch keeps what deaths read of each socket, or when it records
        // without a filter the snapshot itself, shared with the recorder (see `DeathWatch::open`).
        let counts = deaths.step(&snapshot, &filter);
        let filtered = (!filter.is_empty()).then(|| filter.matching_copy(&snapshot));
        let shown = filtered.as_ref().unwrap_or(&snapshot);
        let stats = SelfStats {
            scrape_duration: started.elapsed(),
            scrape_errors: errors.load(Ordering::SeqCst),
            collections: *collections,
            deaths: counts,
        };
        let rendered = metrics::render(shown, &options, &stats)
            .map(Bytes::from)
            .map_err(|e| format!("cannot render metrics: {e}"));
        let mut recording = recording.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((recorder, failure)) = recording.as_mut() {
            let evidence = deaths.take_evidence();
            // Without a filter, shared with the death watch, which keeps the same snapshot: no copy (the filtered
            // one is the recorder's alone).
            let recorded = filtered.map_or_else(|| Arc::clone(&snapshot), Arc::new);
            if let Err(e) = recorder.append(recorded, &evidence, deaths.is_listening()) {
                // Recording stops here; the server stops with the error.
                failure.set(e);
                *recording = None;
            }
        }
        Arc::new(rendered)
    }
}
