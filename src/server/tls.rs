//! TLS on the HTTP ingestion listener (`--tls-cert-file`, `--tls-key-file`):
//! a PEM certificate chain and private key, checked every
//! [`RELOAD_PERIOD`] and used for new connections once they changed and
//! stayed the same for one more check (a pair being written is not taken
//! half-way). A new pair that does not load (unreadable, not PEM, the key
//! not the certificate's) changes nothing: the previous one stays and the
//! error is logged once, naming the flag and the file, never their contents.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::{error, info};

/// How often the certificate and key files are checked for a change.
pub const RELOAD_PERIOD: Duration = Duration::from_secs(5);

/// The files of `--tls-cert-file` and `--tls-key-file`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificates, the server's first, then the intermediates.
    pub cert: PathBuf,
    /// The PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// How many reloads were taken and refused so far (tests await them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reloads {
    pub loaded: u64,
    pub refused: u64,
}

/// The server side of TLS, its certificate reloaded from its files.
#[derive(Clone)]
pub struct ServerTls {
    inner: Arc<Inner>,
}

struct Inner {
    files: TlsFiles,
    period: Duration,
    provider: Arc<CryptoProvider>,
    current: Arc<Current>,
    acceptor: TlsAcceptor,
    /// The digest of the files in use, and of the last change seen.
    seen: Mutex<Seen>,
    reloads: watch::Sender<Reloads>,
}

#[derive(Default)]
struct Seen {
    applied: Option<[u8; 32]>,
    /// A change seen at the last check, applied when it is still the same at this one.
    settling: Option<Option<[u8; 32]>>,
}

/// The certificate handshakes get: the one loaded last.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap().clone())
    }
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").field("files", &self.inner.files).finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Load `files` (an error names the flag and the file), to be checked
    /// for changes every `period` by [`ServerTls::keep_reloaded`].
    pub fn load(files: TlsFiles, period: Duration) -> Result<ServerTls, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (key, digest) = load_pair(&files, &provider)?;
        let current = Arc::new(Current(RwLock::new(Arc::new(key))));
        let mut config = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ServerTls {
            inner: Arc::new(Inner {
                files,
                period,
                provider,
                current,
                acceptor: TlsAcceptor::from(Arc::new(config)),
                seen: Mutex::new(Seen { applied: Some(digest), settling: None }),
                reloads: watch::Sender::new(Reloads::default()),
            }),
        })
    }

    /// What new connections are handshaken with.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.inner.acceptor.clone()
    }

    /// The files' reloads so far.
    pub fn reloads(&self) -> watch::Receiver<Reloads> {
        self.inner.reloads.subscribe()
    }

    /// Check the files every period and take a changed pair; never ends.
    pub async fn keep_reloaded(&self) {
        let mut every = tokio::time::interval(self.inner.period.max(Duration::from_millis(10)));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            every.tick().await;
            self.check();
        }
    }

    /// One check of the files.
    fn check(&self) {
        let inner = &self.inner;
        let now = digest(&inner.files).ok();
        let mut seen = inner.seen.lock().unwrap();
        if now.is_some() && now == seen.applied {
            seen.settling = None;
            return;
        }
        if seen.settling != Some(now) {
            // Changed (or unreadable): wait one more period for it to settle.
            seen.settling = Some(now);
            return;
        }
        seen.settling = None;
        // Taken as seen whatever happens: a broken pair is reported once.
        let previous = seen.applied;
        seen.applied = now;
        match load_pair(&inner.files, &inner.provider) {
            Ok((key, digest)) => {
                seen.applied = Some(digest);
                *inner.current.0.write().unwrap() = Arc::new(key);
                inner.reloads.send_modify(|r| r.loaded += 1);
                info!(cert = %inner.files.cert.display(), "TLS certificate reloaded: new connections use it");
            }
            Err(e) => {
                if previous.is_none() && now.is_none() {
                    return;
                }
                inner.reloads.send_modify(|r| r.refused += 1);
                error!("TLS certificate not reloaded, the previous one stays in use: {e}");
            }
        }
    }
}

/// The SHA-256 of both files' contents.
fn digest(files: &TlsFiles) -> std::io::Result<[u8; 32]> {
    let mut h = Sha256::new();
    h.update(std::fs::read(&files.cert)?);
    h.update([0]);
    h.update(std::fs::read(&files.key)?);
    Ok(h.finalize().into())
}

/// The certified key of `files`, and the digest of what was read.
fn load_pair(files: &TlsFiles, provider: &CryptoProvider) -> Result<(CertifiedKey, [u8; 32]), String> {
    let read = |flag: &str, path: &Path| {
        std::fs::read(path).map_err(|e| format!("{flag} {}: cannot read it: {e}", path.display()))
    };
    let cert_pem = read("--tls-cert-file", &files.cert)?;
    let key_pem = read("--tls-key-file", &files.key)?;
    let mut h = Sha256::new();
    h.update(&cert_pem);
    h.update([0]);
    h.update(&key_pem);
    let digest: [u8; 32] = h.finalize().into();

    let cert_file = files.cert.display();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("--tls-cert-file {cert_file}: not a PEM certificate chain ({e})"))?;
    if chain.is_empty() {
        return Err(format!("--tls-cert-file {cert_file}: no certificate in it (PEM `BEGIN CERTIFICATE`)"));
    }
    // The key's parse error is not shown: it could quote the key's text.
    let key_file = files.key.display();
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
        format!(
            "--tls-key-file {key_file}: no PEM private key in it (`BEGIN PRIVATE KEY`, `BEGIN RSA PRIVATE KEY` \
             or `BEGIN EC PRIVATE KEY`)"
        )
    })?;
    let certified = CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        format!("--tls-key-file {key_file} does not go with --tls-cert-file {cert_file}, or is not usable: {e}")
    })?;
    Ok((certified, digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn write(files: &TlsFiles, (cert, key): &(String, String)) {
        std::fs::write(&files.cert, cert).unwrap();
        std::fs::write(&files.key, key).unwrap();
    }

    fn served(tls: &ServerTls) -> Vec<u8> {
        tls.inner.current.0.read().unwrap().cert[0].to_vec()
    }

    fn der(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap().to_vec()
    }

    #[test]
    fn a_change_is_taken_once_settled_and_a_broken_pair_is_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles { cert: dir.path().join("tls.crt"), key: dir.path().join("tls.key") };
        let first = pair();
        write(&files, &first);
        let tls = ServerTls::load(files.clone(), RELOAD_PERIOD).unwrap();
        tls.check();
        assert_eq!(served(&tls), der(&first.0));

        // Changed: taken at the next check that sees the same files.
        let second = pair();
        write(&files, &second);
        tls.check();
        assert_eq!(served(&tls), der(&first.0), "not before it settled");
        tls.check();
        assert_eq!(served(&tls), der(&second.0));
        assert_eq!(*tls.reloads().borrow(), Reloads { loaded: 1, refused: 0 });

        // A key of another certificate: refused once, the last good pair stays.
        std::fs::write(&files.key, pair().1).unwrap();
        for _ in 0..5 {
            tls.check();
        }
        assert_eq!(served(&tls), der(&second.0));
        assert_eq!(*tls.reloads().borrow(), Reloads { loaded: 1, refused: 1 });

        // Gone, then back: reported once, then taken.
        std::fs::remove_file(&files.key).unwrap();
        for _ in 0..5 {
            tls.check();
        }
        assert_eq!(*tls.reloads().borrow(), Reloads { loaded: 1, refused: 2 });
        let third = pair();
        write(&files, &third);
        tls.check();
        tls.check();
        assert_eq!(served(&tls), der(&third.0));
        assert_eq!(*tls.reloads().borrow(), Reloads { loaded: 2, refused: 2 });
    }
}
