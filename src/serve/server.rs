//! The listener and its connections: accept, TLS handshake, HTTP/1.1 through hyper, every limit in one place.
//!
//! One task per connection on a single-threaded runtime, never a thread each. At most
//! [`Limits::max_connections`] are open: a new one past that closes the connection idle the longest, so idle
//! or slow clients cannot lock Prometheus out. An `accept` failure never closes the listener.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::accept::{AcceptFailure, EXHAUSTED_PAUSE, FailureLog, classify};
use super::conns::{Conn, Conns};
use super::deadline_io::WriteDeadline;
use super::handler::{Site, respond};

/// The numbers that bound what a client can make kwatch hold or do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open connections at most.
    pub max_connections: usize,
    /// A request's head (request line and headers) must arrive within this time of kwatch starting to wait
    /// for it, which also closes connections idle between requests.
    pub header_read_timeout: Duration,
    /// Bytes of a request head at most; also the read buffer, which bounds pipelined requests.
    pub max_header_bytes: usize,
    /// Header fields of a request at most.
    pub max_headers: usize,
    /// A response write, flush or TLS handshake write that makes no progress this long closes the connection.
    pub write_timeout: Duration,
    /// The TLS handshake must finish within this time.
    pub handshake_timeout: Duration,
}

/// Connections at most, whatever the open-file limit allows.
pub const MAX_CONNECTIONS: usize = 256;
/// Fds kept for everything but connections: the collection's /proc scan, netlink sockets, namespaces.
const RESERVED_FDS: u64 = 64;

impl Limits {
    /// The limits for a process allowed `nofile` open files (`None`: unlimited): connections take at most half
    /// of what is left after the reserve.
    pub fn for_nofile(nofile: Option<u64>) -> Limits {
        let by_fds = nofile.map_or(MAX_CONNECTIONS as u64, |n| {
            n.saturating_sub(RESERVED_FDS) / 2
        });
        Limits {
            max_connections: (by_fds.min(MAX_CONNECTIONS as u64) as usize).max(1),
            header_read_timeout: Duration::from_secs(30),
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            write_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// Serves until `stop` completes. Returns an error when serving became impossible (the listener broke) or a
/// connection task panicked: the process must then exit non-zero for a supervisor to restart it.
pub async fn serve(
    listener: std::net::TcpListener,
    site: Arc<Site>,
    limits: Limits,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    let conns = Arc::new(Conns::default());
    let mut tasks = JoinSet::new();
    let mut failures = FailureLog::new(Duration::from_secs(10));
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            () = &mut stop => break,
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(e) = done {
                    if e.is_panic() {
                        return Err(anyhow!("internal error: a connection task panicked"));
                    }
                }
                continue;
            }
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                if let Some(line) = failures.note(Instant::now(), &e) {
                    log!("{line}");
                }
                match classify(&e) {
                    AcceptFailure::Retry => {}
                    AcceptFailure::Exhausted => {
                        conns.evict_idlest();
                        tokio::time::sleep(EXHAUSTED_PAUSE).await;
                    }
                    AcceptFailure::Fatal => {
                        return Err(anyhow!(
                            "cannot accept connections any more: {e}; the listener is unusable"
                        ));
                    }
                }
                continue;
            }
        };
        if conns.len() >= limits.max_connections && !conns.evict_idlest() {
            // Every connection is busy answering: refuse this one.
            drop(stream);
            continue;
        }
        let conn = conns.open(Instant::now());
        // The TLS settings in force when the connection arrived (SIGHUP may change them).
        let tls = site.web().tls.clone();
        let site = Arc::clone(&site);
        tasks.spawn(async move {
            let evict = Arc::clone(&conn.evict);
            tokio::select! {
                () = connection(stream, site, tls, limits, conn) => {}
                () = evict.notified() => {}
            }
        });
    }
    tasks.abort_all();
    Ok(())
}

/// One connection, from the TLS handshake to its close.
async fn connection(
    stream: TcpStream,
    site: Arc<Site>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
    conn: Conn,
) {
    // Small responses go out at once rather than waiting for an ACK (Nagle).
    let _ = stream.set_nodelay(true);
    let stream = WriteDeadline::new(stream, limits.write_timeout);
    match tls {
        None => http(stream, site, limits, conn).await,
        Some(acceptor) => {
            // A failed or slow handshake just closes the connection: nothing to tell a client that cannot
            // speak TLS to us.
            let handshake = tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream));
            if let Ok(Ok(stream)) = handshake.await {
                http(stream, site, limits, conn).await;
            }
        }
    }
}

async fn http<S>(stream: S, site: Arc<Site>, limits: Limits, conn: Conn)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = Arc::new(conn);
    let service = service_fn(move |req| {
        let (site, conn) = (Arc::clone(&site), Arc::clone(&conn));
        async move { Ok::<_, Infallible>(respond(&site, &conn, req).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes)
        .max_header_size(limits.max_header_bytes)
        .max_headers(limits.max_headers)
        .keep_alive(true)
        .half_close(false);
    // Errors are the client's doing (malformed request, timeout, reset): the connection just ends.
    let _ = builder
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_fit_in_the_open_file_limit() {
        assert_eq!(Limits::for_nofile(Some(20_000)).max_connections, 256);
        assert_eq!(Limits::for_nofile(None).max_connections, 256);
        assert_eq!(Limits::for_nofile(Some(1024)).max_connections, 256);
        assert_eq!(Limits::for_nofile(Some(256)).max_connections, 96);
        assert_eq!(Limits::for_nofile(Some(10)).max_connections, 1);
    }
}
