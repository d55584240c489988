//! TLS for a listener: rustls on the aws-lc-rs provider, TLS 1.2 and 1.3 only with rustls'
//! default (AEAD, forward-secret) cipher suites, ALPN `http/1.1`.
//!
//! The certificate chain and private key come from two PEM files that are re-read while the
//! server runs, because certificates are renewed under it (cert-manager rewrites the mounted
//! secret, certbot the live files): [`Tls::spawn_reloader`] looks at both files every second and,
//! when their content changed, parses the pair and swaps it in. A handshake asks for the current
//! pair ([`CurrentCert`]), so new connections get the new certificate at once while connections
//! already open keep theirs: nothing is dropped. A pair that does not parse, or whose key does not
//! belong to its certificate, is refused with a warning and the previous pair keeps serving; a
//! half-written renewal (a new certificate beside the old key) is therefore harmless and picked up
//! on the next look, once both files are in place.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{self, PemObject as _};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsFiles;

/// TLS for one or more listeners, with the certificate pair it currently serves.
///
/// Shared (`Arc`) by the listeners that serve HTTPS and by its reloader task; the reloader holds
/// only a weak reference, so it ends once the last listener lets go.
pub struct Tls {
    /// The rustls configuration every handshake uses; its certificate comes from `current`.
    acceptor: TlsAcceptor,
    /// The pair handshakes get now; swapped by [`Tls::reload`].
    current: Arc<CurrentCert>,
    /// Where the pair is read from.
    files: TlsFiles,
    /// The content of the files at the last look, so a change is acted on (and a bad pair
    /// warned about) once, not at every look.
    seen: Mutex<Seen>,
    /// Crypto provider used to parse private keys (aws-lc-rs).
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls").field("files", &self.files).finish()
    }
}

/// A certificate pair that cannot be used, or a file that cannot be read. Never carries key
/// material: a key file's parse error is described, not quoted.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The certificate file holds no usable certificate chain.
    #[error("{}: {reason}", path.display())]
    Certificate {
        /// The certificate file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The key file holds no usable private key.
    #[error("{}: {reason}", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The private key does not belong to the certificate (the first one in its file).
    #[error(
        "the private key in {} does not belong to the certificate in {}",
        key.display(),
        cert.display()
    )]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused the configuration.
    #[error("setting up TLS: {0}")]
    Config(rustls::Error),
}

/// What one look at the files found ([`Tls::reload`]).
#[derive(Debug)]
pub enum Reload {
    /// The files hold what they held at the last look.
    Unchanged,
    /// A new pair was read and new handshakes use it.
    Replaced {
        /// SHA-256 of the new end-entity certificate (DER), in hex.
        sha256: String,
    },
    /// The files changed but the new content cannot be used; the previous pair keeps serving.
    Refused(TlsError),
}

/// What the files held at a look: a digest of their content, or why they could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Content([u8; 32]),
    Unreadable(String),
}

impl Tls {
    /// How often [`Tls::spawn_reloader`] looks at the files by default.
    pub const RELOAD_EVERY: Duration = Duration::from_secs(1);

    /// Read the pair from `files` and build the TLS configuration. Fails on a missing or
    /// unreadable file, a file without a certificate or key, or a key that does not belong to
    /// the certificate, so a bad pair stops the server at start.
    pub fn load(files: &TlsFiles) -> Result<Arc<Tls>, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let cert_pem = read(&files.cert)?;
        let key_pem = read(&files.key)?;
        let pair = certified_key(&cert_pem, &key_pem, files, &provider)?;
        let current = Arc::new(CurrentCert(RwLock::new(pair)));
        let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        // HTTP/1.1 is all the server speaks; saying so lets clients that offer h2 settle at once.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            current,
            files: files.clone(),
            seen: Mutex::new(Seen::Content(fingerprint(&cert_pem, &key_pem))),
            provider,
        }))
    }

    /// The files the pair is read from.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// SHA-256 of the end-entity certificate new handshakes get, in hex.
    pub fn certificate_sha256(&self) -> String {
        leaf_sha256(&self.current.get())
    }

    pub(super) fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    /// Look at the files once: when their content changed since the last look, use the new
    /// pair if it is good, else keep the current one.
    pub async fn reload(&self) -> Reload {
        let read_both = async {
            let cert = tokio::fs::read(&self.files.cert).await;
            let key = tokio::fs::read(&self.files.key).await;
            (cert, key)
        };
        let (seen, pair) = match read_both.await {
            (Ok(cert), Ok(key)) => (Seen::Content(fingerprint(&cert, &key)), Ok((cert, key))),
            (Err(source), _) => {
                let e = TlsError::Read {
                    path: self.files.cert.clone(),
                    source,
                };
                (Seen::Unreadable(e.to_string()), Err(e))
            }
            (_, Err(source)) => {
                let e = TlsError::Read {
                    path: self.files.key.clone(),
                    source,
                };
                (Seen::Unreadable(e.to_string()), Err(e))
            }
        };
        {
            // Only `reload` takes this lock and nothing in it panics; a poisoned one still holds
            // a whole value.
            let mut last = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            if *last == seen {
                return Reload::Unchanged;
            }
            *last = seen;
        }
        let parsed =
            pair.and_then(|(cert, key)| certified_key(&cert, &key, &self.files, &self.provider));
        match parsed {
            Ok(pair) => {
                let sha256 = leaf_sha256(&pair);
                self.current.set(pair);
                Reload::Replaced { sha256 }
            }
            Err(e) => Reload::Refused(e),
        }
    }

    /// Look at the files every `every` (see [`Tls::reload`]) and log what changed, until the last
    /// [`Arc`] of this `Tls` is dropped.
    pub fn spawn_reloader(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let tls: Weak<Tls> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(tls) = tls.upgrade() else { return };
                match tls.reload().await {
                    Reload::Unchanged => {}
                    Reload::Replaced { sha256 } => tracing::info!(
                        cert = %tls.files.cert.display(),
                        %sha256,
                        "TLS certificate reloaded; new connections get it"
                    ),
                    Reload::Refused(e) => tracing::warn!(
                        error = %e,
                        "TLS certificate files changed but cannot be used; still serving the previous certificate"
                    ),
                }
            }
        })
    }
}

/// The certificate pair handshakes get now. Open connections keep the pair they were made with;
/// swapping affects only handshakes that start later.
#[derive(Debug)]
struct CurrentCert(RwLock<Arc<CertifiedKey>>);

impl CurrentCert {
    // A poisoned lock still holds a whole `Arc`: the writer only assigns one.
    fn get(&self) -> Arc<CertifiedKey> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, pair: Arc<CertifiedKey>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = pair;
    }
}

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Parse a PEM certificate chain (end-entity first) and a PEM private key (PKCS#8, PKCS#1 or
/// SEC1), and check that the key belongs to the certificate.
fn certified_key(
    cert_pem: &[u8],
    key_pem: &[u8],
    files: &TlsFiles,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let bad_cert = |reason: String| TlsError::Certificate {
        path: files.cert.clone(),
        reason,
    };
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_cert(format!("not a PEM certificate chain ({e})")))?;
    if chain.is_empty() {
        return Err(bad_cert("holds no PEM CERTIFICATE block".to_owned()));
    }
    // The parse error of a key file is not quoted: it could carry a piece of the key.
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Key {
        path: files.key.clone(),
        reason: match e {
            pem::Error::NoItemsFound => {
                "holds no unencrypted PEM private key (PKCS#8, PKCS#1 or SEC1)"
            }
            _ => "is not a readable PEM private key",
        },
    })?;
    match CertifiedKey::from_der(chain, key, provider) {
        Ok(pair) => Ok(Arc::new(pair)),
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::KeyMismatch {
            cert: files.cert.clone(),
            key: files.key.clone(),
        }),
        Err(rustls::Error::InvalidCertificate(e)) => Err(bad_cert(format!(
            "the first certificate cannot be parsed ({e})"
        ))),
        // rustls says only which key types it tried, never the key itself.
        Err(_) => Err(TlsError::Key {
            path: files.key.clone(),
            reason:
                "holds a private key of a type TLS cannot use (RSA, ECDSA P-256/P-384 or Ed25519)",
        }),
    }
}

/// A digest of both files' content, to tell a change from the last look.
fn fingerprint(cert_pem: &[u8], key_pem: &[u8]) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(&(cert_pem.len() as u64).to_be_bytes());
    ctx.update(cert_pem);
    ctx.update(key_pem);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

fn leaf_sha256(pair: &CertifiedKey) -> String {
    let der = pair.cert.first().map_or(&[][..], |c| c.as_ref());
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Certificates made with the `openssl` command line, for tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::path::Path;
    use std::process::Command;

    /// Write a CA (`<name>-ca.pem`) and a certificate for `IP:127.0.0.1` signed by it
    /// (`<name>-cert.pem`, its key `<name>-key.pem`) into `dir`; returns the CA's PEM.
    pub(crate) fn make_pair(dir: &Path, name: &str) -> Vec<u8> {
        let p = |f: &str| dir.join(format!("{name}-{f}")).display().to_string();
        let (ca, ca_key, cert, key, csr, ext) = (
            p("ca.pem"),
            p("ca-key.pem"),
            p("cert.pem"),
            p("key.pem"),
            p("csr.pem"),
            p("ext.cnf"),
        );
        let ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
        run(&format!(
            "req -x509 {ec} -days 2 -subj /CN=test-CA -keyout {ca_key} -out {ca}"
        ));
        run(&format!(
            "req {ec} -subj /CN=127.0.0.1 -keyout {key} -out {csr}"
        ));
        std::fs::write(&ext, "subjectAltName=IP:127.0.0.1\n").unwrap();
        run(&format!(
            "x509 -req -in {csr} -CA {ca} -CAkey {ca_key} -CAcreateserial -days 2 -extfile {ext} -out {cert}"
        ));
        std::fs::read(ca).unwrap()
    }

    /// `openssl` with `args`, split at spaces (the temporary paths have none).
    fn run(args: &str) {
        let out = Command::new("openssl")
            .args(args.split_whitespace())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> TlsFiles {
        TlsFiles {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
        }
    }

    fn install(dir: &Path, name: &str) {
        std::fs::copy(dir.join(format!("{name}-cert.pem")), dir.join("tls.crt")).unwrap();
        std::fs::copy(dir.join(format!("{name}-key.pem")), dir.join("tls.key")).unwrap();
    }

    #[test]
    fn load_refuses_missing_empty_and_mismatched_pairs_without_quoting_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let f = files(dir.path());
        let e = Tls::load(&f).unwrap_err();
        assert!(
            matches!(e, TlsError::Read { ref path, .. } if *path == f.cert),
            "{e}"
        );

        testing::make_pair(dir.path(), "a");
        testing::make_pair(dir.path(), "b");
        install(dir.path(), "a");
        assert!(Tls::load(&f).is_ok());

        // A's certificate with B's key.
        std::fs::copy(dir.path().join("b-key.pem"), &f.key).unwrap();
        let e = Tls::load(&f).unwrap_err();
        assert!(matches!(e, TlsError::KeyMismatch { .. }), "{e}");
        assert!(e.to_string().contains("does not belong"), "{e}");

        // The key where the certificate should be, and the other way round.
        std::fs::copy(dir.path().join("a-key.pem"), &f.cert).unwrap();
        std::fs::copy(dir.path().join("a-cert.pem"), &f.key).unwrap();
        let e = Tls::load(&f).unwrap_err();
        assert!(matches!(e, TlsError::Certificate { .. }), "{e}");
        install(dir.path(), "a");
        std::fs::copy(dir.path().join("a-cert.pem"), &f.key).unwrap();
        let e = Tls::load(&f).unwrap_err();
        assert!(matches!(e, TlsError::Key { .. }), "{e}");

        // A corrupted key: the message names the file, never the key's text.
        let key = std::fs::read_to_string(dir.path().join("a-key.pem")).unwrap();
        let body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
        let corrupted = key.replacen(&body[..8], "!!!!!!!!", 1);
        std::fs::write(&f.key, &corrupted).unwrap();
        let e = Tls::load(&f).unwrap_err().to_string();
        assert!(e.contains("tls.key"), "{e}");
        for chunk in body.as_bytes().chunks(6) {
            let chunk = std::str::from_utf8(chunk).unwrap();
            assert!(!e.contains(chunk), "the error quotes the key: {e}");
        }
    }

    #[tokio::test]
    async fn reload_swaps_a_good_pair_and_keeps_the_old_one_over_a_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let f = files(dir.path());
        testing::make_pair(dir.path(), "a");
        testing::make_pair(dir.path(), "b");
        install(dir.path(), "a");
        let tls = Tls::load(&f).unwrap();
        let a = tls.certificate_sha256();
        assert!(matches!(tls.reload().await, Reload::Unchanged));

        install(dir.path(), "b");
        let Reload::Replaced { sha256 } = tls.reload().await else {
            panic!("a new pair is picked up");
        };
        let b = tls.certificate_sha256();
        assert_eq!(sha256, b);
        assert_ne!(a, b);
        assert!(matches!(tls.reload().await, Reload::Unchanged));

        // Half a renewal: A's certificate beside B's key. Refused once, B keeps serving.
        std::fs::copy(dir.path().join("a-cert.pem"), &f.cert).unwrap();
        assert!(matches!(
            tls.reload().await,
            Reload::Refused(TlsError::KeyMismatch { .. })
        ));
        assert!(
            matches!(tls.reload().await, Reload::Unchanged),
            "warned once"
        );
        assert_eq!(tls.certificate_sha256(), b);

        // A file gone for a moment, then the rest of the renewal lands.
        std::fs::remove_file(&f.key).unwrap();
        assert!(matches!(
            tls.reload().await,
            Reload::Refused(TlsError::Read { .. })
        ));
        assert_eq!(tls.certificate_sha256(), b);
        install(dir.path(), "a");
        assert!(matches!(tls.reload().await, Reload::Replaced { .. }));
        assert_eq!(tls.certificate_sha256(), a);
    }

    #[tokio::test]
    async fn the_reloader_stops_when_the_last_listener_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        testing::make_pair(dir.path(), "a");
        install(dir.path(), "a");
        let tls = Tls::load(&files(dir.path())).unwrap();
        let task = tls.spawn_reloader(Duration::from_millis(10));
        drop(tls);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the reloader ends")
            .unwrap();
    }
}
