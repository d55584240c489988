//! The listener: hyper HTTP/1.1, over TLS when given one, with a request-head size limit, a
//! header read timeout (slowloris), and graceful draining on shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use super::tls::Tls;

/// Connection-level limits.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// Connections open at once; one more is closed at once, unread.
    pub max_connections: usize,
    /// Connections open at once from one IP address (0: no per-address limit, e.g. behind a
    /// proxy whose address every connection has); one more is closed at once, unread.
    pub max_connections_per_ip: usize,
    /// Largest request head in bytes; hyper answers 431 beyond it.
    pub max_header_bytes: usize,
    /// Time allowed to send the request head; over TLS, also the time allowed for the
    /// handshake.
    pub header_read_timeout: Duration,
    /// How long to wait for in-flight requests on shutdown.
    pub shutdown_grace: Duration,
}

/// Serve `router` on `listener` until `shutdown` resolves, then stop accepting and wait for
/// in-flight requests to finish (at most `limits.shutdown_grace`). With `tls`, every connection
/// is HTTPS: the handshake runs in the connection's own task, bounded by
/// `limits.header_read_timeout`, so a client that never finishes it holds its place no longer
/// than one that never sends a request head.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    tls: Option<Arc<Tls>>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let open = Arc::new(OpenConnections::default());
    let mut http = hyper::server::conn::http1::Builder::new();
    http.max_buf_size(limits.max_header_bytes.max(8192))
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let http = Arc::new(http);
    let acceptor = tls.map(|t| t.acceptor());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        // EMFILE and friends: back off briefly instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Over a limit: closed at once, before a byte is read, so a flood of held
                // connections can neither exhaust file descriptors nor crowd out other addresses.
                let Some(slot) = open.admit(peer.ip(), &limits) else {
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                // Watched from now on, handshake included, so a drain waits for it too.
                let watcher = graceful.watcher();
                let (http, router, acceptor) = (http.clone(), router.clone(), acceptor.clone());
                let handshake_timeout = limits.header_read_timeout;
                tokio::spawn(async move {
                    let _slot = slot;
                    let Some(acceptor) = acceptor else {
                        return connection(&http, stream, router, peer, watcher).await;
                    };
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => connection(&http, stream, router, peer, watcher).await,
                        // Scanners and plain-HTTP clients: not worth more than a debug line.
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: draining in-flight requests");
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period over; closing remaining connections");
    }
}

/// Serve HTTP/1.1 on one connection (plain TCP or TLS) until it closes or the drain ends it.
async fn connection<S>(
    http: &hyper::server::conn::http1::Builder,
    stream: S,
    router: Router,
    peer: SocketAddr,
    watcher: Watcher,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Every request carries its connection's peer address (for audit events).
    let svc = tower::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(super::Peer(peer));
        tower::ServiceExt::oneshot(router.clone(), req)
    });
    let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc));
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// The connections open now, in all and per address.
#[derive(Default)]
struct OpenConnections {
    by_ip: Mutex<HashMap<IpAddr, usize>>,
    total: std::sync::atomic::AtomicUsize,
}

/// One admitted connection; gives its place back when dropped.
struct Slot {
    open: Arc<OpenConnections>,
    ip: IpAddr,
}

impl OpenConnections {
    fn admit(self: &Arc<Self>, ip: IpAddr, limits: &ServeLimits) -> Option<Slot> {
        use std::sync::atomic::Ordering;
        let mut by_ip = self.by_ip.lock().ok()?;
        if self.total.load(Ordering::Relaxed) >= limits.max_connections {
            return None;
        }
        let n = by_ip.entry(ip).or_insert(0);
        if limits.max_connections_per_ip > 0 && *n >= limits.max_connections_per_ip {
            return None;
        }
        *n += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        Some(Slot {
            open: self.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering;
        if let Ok(mut by_ip) = self.open.by_ip.lock() {
            if let Some(n) = by_ip.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    by_ip.remove(&self.ip);
                }
            }
            self.open.total.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The default total connection limit: what the process's open-file limit leaves after a margin
/// for the database, the listener and logs (Linux: `/proc/self/limits`), at most 4096; 1000
/// where the limit cannot be read.
pub fn default_max_connections() -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse::<usize>().ok())
        });
    match soft {
        Some(n) => n.saturating_sub(64).clamp(16, 4096),
        None => 1000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_ip: usize) -> ServeLimits {
        ServeLimits {
            max_connections: total,
            max_connections_per_ip: per_ip,
            max_header_bytes: 8192,
            header_read_timeout: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(1),
        }
    }

    #[test]
    fn admits_up_to_each_limit_and_gives_places_back() {
        let open = Arc::new(OpenConnections::default());
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.2".parse().unwrap(), "127.0.0.1".parse().unwrap());
        let l = limits(3, 2);
        let s1 = open.admit(a, &l).unwrap();
        let _s2 = open.admit(a, &l).unwrap();
        assert!(open.admit(a, &l).is_none(), "per-address limit");
        let _s3 = open.admit(b, &l).unwrap();
        assert!(open.admit(b, &l).is_none(), "total limit");
        drop(s1);
        assert!(open.admit(b, &l).is_some(), "a place given back");
        let unlimited = limits(10, 0);
        let open = Arc::new(OpenConnections::default());
        let held: Vec<_> = (0..10)
            .map(|_| open.admit(a, &unlimited).unwrap())
            .collect();
        assert_eq!(held.len(), 10);
        assert!(open.by_ip.lock().unwrap()[&a] == 10);
        drop(held);
        assert!(open.by_ip.lock().unwrap().is_empty());
    }

    /// A TLS client that trusts only `ca_pem` and offers h2 and HTTP/1.1.
    fn tls_client(ca_pem: &[u8]) -> tokio_rustls::TlsConnector {
        use rustls_pki_types::pem::PemObject as _;
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem) {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }

    #[tokio::test]
    async fn a_stalled_tls_handshake_gives_its_place_back_after_the_header_timeout() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let dir = tempfile::tempdir().unwrap();
        let ca = super::super::tls::testing::make_pair(dir.path(), "a");
        let files = crate::config::TlsFiles {
            cert: dir.path().join("a-cert.pem"),
            key: dir.path().join("a-key.pem"),
        };
        let tls = Tls::load(&files).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let mut l = limits(1, 0);
        l.header_read_timeout = Duration::from_millis(300);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, router, l, Some(tls), async {
            let _ = stopped.await;
        }));

        // Opens TCP and says nothing: it holds the only place...
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut refused = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(2), refused.read(&mut buf))
            .await
            .expect("closed at once");
        assert!(matches!(n, Ok(0) | Err(_)), "over the limit: closed unread");
        // ...until the handshake timeout closes it.
        let n = tokio::time::timeout(Duration::from_secs(2), silent.read(&mut buf))
            .await
            .expect("the stalled handshake is cut off");
        assert!(matches!(n, Ok(0) | Err(_)));
        tokio::time::sleep(Duration::from_millis(50)).await;

        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls_pki_types::ServerName::IpAddress(addr.ip().into());
        let mut conn = tls_client(&ca).connect(name, tcp).await.unwrap();
        let alpn = conn.get_ref().1.alpn_protocol();
        assert_eq!(alpn, Some(&b"http/1.1"[..]), "h2 offered, HTTP/1.1 chosen");
        conn.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("ok"), "{answer}");

        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .unwrap()
            .unwrap();
    }
}
