//! A load generator for new connections: every request opens its own TCP connection and, over
//! HTTPS, makes its own TLS handshake (rustls on aws-lc-rs), either a full one (no session cache)
//! or one that resumes the session of an earlier connection (rustls' default client cache) —
//! what wrk cannot choose: it resumes whenever it can. `benches/tls.sh` runs it beside wrk.
//!
//! ```text
//! AUTH="Basic …" BODY="grant_type=client_credentials" \
//!   cargo run --release -p tessera-server --example tls_load -- \
//!   127.0.0.1:8443 ca.pem full|resumed|plain SECONDS CONNECTIONS
//! ```
//!
//! Sends `POST /oauth/token` with `Connection: close` on `CONNECTIONS` concurrent loops for
//! `SECONDS`, and prints one line in the shape of the wrk scripts' (`benches/post.lua`):
//! `RESULT req_per_s=… p50_ms=… p99_ms=… errors=…`, plus how many handshakes resumed. A latency
//! is the whole exchange: connect, handshake, request, answer. Anything but a 200 is an error.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, ca, mode, secs, conns] = &args[..] else {
        anyhow::bail!("usage: tls_load ADDR CA.pem full|resumed|plain SECONDS CONNECTIONS");
    };
    let secs: u64 = secs.parse().context("SECONDS")?;
    let conns: usize = conns.parse().context("CONNECTIONS")?;
    let auth = std::env::var("AUTH").unwrap_or_default();
    let body = std::env::var("BODY").unwrap_or_else(|_| "grant_type=client_credentials".into());
    let request = Arc::new(format!(
        "POST /oauth/token HTTP/1.1\r\nhost: {addr}\r\nauthorization: {auth}\r\n\
         content-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    ));
    let tls = match mode.as_str() {
        "plain" => None,
        "full" | "resumed" => Some(connector(ca, mode == "resumed")?),
        other => anyhow::bail!("mode {other}: full, resumed or plain"),
    };
    let addr: std::net::SocketAddr = addr.parse().context("ADDR")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let errors = Arc::new(AtomicU64::new(0));
        let resumed = Arc::new(AtomicU64::new(0));
        let end = Instant::now() + Duration::from_secs(secs);
        let mut tasks = Vec::new();
        for _ in 0..conns {
            let (tls, request) = (tls.clone(), request.clone());
            let (errors, resumed) = (errors.clone(), resumed.clone());
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < end {
                    let start = Instant::now();
                    match exchange(addr, tls.as_ref(), &request).await {
                        Ok(was_resumed) => {
                            latencies.push(start.elapsed());
                            if was_resumed {
                                resumed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                latencies
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await?);
        }
        all.sort();
        let pct = |p: usize| {
            all.get((all.len() * p / 100).min(all.len().saturating_sub(1)))
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        println!(
            "RESULT req_per_s={:.0} p50_ms={:.2} p99_ms={:.2} errors={} resumed={}",
            all.len() as f64 / secs as f64,
            pct(50),
            pct(99),
            errors.load(Ordering::Relaxed),
            resumed.load(Ordering::Relaxed)
        );
        anyhow::Ok(())
    })
}

/// A TLS client that trusts only the CA in `ca`, offers HTTP/1.1, and resumes sessions or not.
fn connector(ca: &str, resume: bool) -> anyhow::Result<TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).context("reading the CA")? {
        roots.add(cert.context("reading the CA")?)?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    if !resume {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Ok(TlsConnector::from(Arc::new(config)))
}

/// One request on a new connection; whether its TLS handshake resumed a session.
async fn exchange(
    addr: std::net::SocketAddr,
    tls: Option<&TlsConnector>,
    request: &str,
) -> anyhow::Result<bool> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let Some(tls) = tls else {
        return send(tcp, request).await.map(|()| false);
    };
    let stream = tls
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await?;
    let resumed = stream.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    send(stream, request).await?;
    Ok(resumed)
}

async fn send<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, request: &str) -> anyhow::Result<()> {
    s.write_all(request.as_bytes()).await?;
    let mut answer = Vec::with_capacity(1024);
    s.read_to_end(&mut answer).await?;
    anyhow::ensure!(answer.starts_with(b"HTTP/1.1 200 "), "not a 200");
    Ok(())
}
