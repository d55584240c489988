//! The listener: hyper HTTP/1.1 with a request-head size limit, a header read timeout
//! (slowloris), and graceful draining on shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

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
    /// Time allowed to send the request head.
    pub header_read_timeout: Duration,
    /// How long to wait for in-flight requests on shutdown.
    pub shutdown_grace: Duration,
}

/// Serve `router` on `listener` until `shutdown` resolves, then stop accepting and wait for
/// in-flight requests to finish (at most `limits.shutdown_grace`).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let open = Arc::new(OpenConnections::default());
    let mut http = hyper::server::conn::http1::Builder::new();
    http.max_buf_size(limits.max_header_bytes.max(8192))
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
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
                // Every request carries its connection's peer address (for audit events).
                let router = router.clone();
                let svc = tower::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(super::Peer(peer));
                    tower::ServiceExt::oneshot(router.clone(), req)
                });
                let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc));
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _slot = slot;
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
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
}
