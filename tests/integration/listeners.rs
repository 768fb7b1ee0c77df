//! The network-facing surface against strangers: every listener (HTTP
//! ingestion on both stores, the admin endpoints) bounds what a client can
//! hold — metric series, header time, idle time, body time, connections —
//! and HTTP ingestion serves TLS with certificates reloaded from disk. The
//! sidecar's share of it is in ingest.rs; the real binary's figures are
//! `bench_strangers` in bench.rs.

use std::time::Duration;

use futures::StreamExt;
use kube_notify::server::listen::Limits;
use kube_notify::server::tls::{ServerTls, TlsFiles};
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::support::apiserver::TokenReviewAnswer;
use crate::support::operator::{Launch, NS, Place, Replica, WAIT, World, captured_logs};

/// Limits short enough to be measured in a test.
fn quick(limits: Limits) -> Limits {
    Limits {
        header_read_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(900),
        body_read_timeout: Duration::from_millis(400),
        ..limits
    }
}

/// A replica of `w` with `limits` (and `tls`).
fn launch(w: &World, limits: Limits, tls: Option<ServerTls>) -> Replica {
    w.launch(Launch { limits, tls, ..w.launch_config() })
}

/// `host:port` of an `http(s)://host:port` URL.
fn addr_of(url: &str) -> &str {
    url.split_once("://").map(|(_, rest)| rest).unwrap_or(url)
}

async fn connect(url: &str) -> TcpStream {
    TcpStream::connect(addr_of(url)).await.unwrap()
}

/// Read until the peer closes; how long that took from `since`. Fails after [`WAIT`].
async fn until_closed(stream: &mut TcpStream, since: Instant) -> Duration {
    let mut buf = [0u8; 4096];
    let closed = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(WAIT, closed).await.expect("the server never closed the connection");
    since.elapsed()
}

/// One HTTP/1.1 response read off `stream`: (status, head, body).
async fn read_response(stream: &mut TcpStream) -> (u16, String, String) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
                let body = String::from_utf8_lossy(&data[end + 4..end + 4 + length]).to_string();
                return (status, head, body);
            }
        }
        let n = tokio::time::timeout(WAIT, stream.read(&mut buf)).await.expect("no response").unwrap();
        assert!(n > 0, "closed before a whole response: {:?}", String::from_utf8_lossy(&data));
        data.extend_from_slice(&buf[..n]);
    }
}

/// A method of `len` random capital letters (an HTTP token).
fn random_method(len: usize) -> reqwest::Method {
    let mut rng = rand::rng();
    let name: String = (0..len).map(|_| char::from(rng.random_range(b'A'..=b'Z'))).collect();
    reqwest::Method::from_bytes(name.as_bytes()).unwrap()
}

/// The `kube_notify_ingest_requests_total` series of a scrape.
fn ingest_series(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with("kube_notify_ingest_requests_total")).collect()
}

on_both_stores! { async fn random_methods_leave_the_metric_series_bounded(w) {
    let r = w.replica();
    let scrape = || async { reqwest::get(format!("{}/metrics", r.admin_url)).await.unwrap().text().await.unwrap() };
    let before = scrape().await;
    let http = reqwest::Client::new();
    let paths = [
        "/nope".to_string(),
        format!("/v1/namespaces/{NS}/events"),
        format!("/v1/namespaces/{NS}/integrations/hook/send"),
        "/v1/integrations".to_string(),
    ];
    let answered: Vec<u16> = futures::stream::iter(0..5000usize)
        .map(|i| {
            let len = rand::rng().random_range(1..=8 * 1024);
            // One in ten with a method that exists (unauthenticated where that matters).
            let method = if i % 10 == 0 { reqwest::Method::POST } else { random_method(len) };
            let path = if i % 10 == 0 { format!("{}/{i}", paths[0]) } else { paths[i % paths.len()].clone() };
            let request = http.request(method, format!("{}{path}", r.http_url));
            async move { request.send().await.unwrap().status().as_u16() }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(answered.iter().all(|s| [400, 401, 404, 405].contains(s)), "{:?}", answered.iter().collect::<std::collections::BTreeSet<_>>());

    let after = scrape().await;
    let series = ingest_series(&after);
    assert!(series.len() <= 8, "{} series: {series:#?}", series.len());
    assert!(series.iter().any(|s| s.contains(r#"method="other",route="unmatched",code="404""#)), "{series:#?}");
    assert!(
        series.iter().any(|s| s.contains(r#"method="other",route="/v1/namespaces/{ns}/events",code="405""#)),
        "{series:#?}"
    );
    let total: f64 = series.iter().filter_map(|s| s.rsplit(' ').next()?.parse::<f64>().ok()).sum();
    assert_eq!(total, 5000.0, "{series:#?}");
    assert!(after.len() < before.len() + 4096, "/metrics grew from {} to {} bytes", before.len(), after.len());
}}

/// A connection that sends half a request head, or nothing, is closed
/// after the header timeout, on HTTP ingestion and the admin endpoints.
#[tokio::test]
async fn a_half_sent_header_is_closed_after_the_header_timeout() {
    let w = World::without_operator_on(Place::Standalone).await;
    let limits = quick(Limits::default());
    let r = launch(&w, limits.clone(), None);
    for url in [&r.http_url, &r.admin_url] {
        for sent in [&b"GET / HTTP/1.1\r\nX: "[..], b""] {
            let mut stream = connect(url).await;
            let since = Instant::now();
            stream.write_all(sent).await.unwrap();
            let held = until_closed(&mut stream, since).await;
            assert!(
                held >= limits.header_read_timeout && held < limits.header_read_timeout + Duration::from_secs(1),
                "{url} {:?}: held {held:?}",
                String::from_utf8_lossy(sent)
            );
        }
    }
    // A head bigger than the cap: 431, closed.
    let mut stream = connect(&r.http_url).await;
    let big = format!("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX: {}\r\n\r\n", "a".repeat(limits.max_header_bytes));
    let _ = stream.write_all(big.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await.expect("closed");
    let answer = String::from_utf8_lossy(&answer);
    // (The 431 may be lost to a reset when the server closes with the rest unread.)
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 431"), "served: {answer}");
    // The listener still serves.
    assert_eq!(reqwest::get(format!("{}/v1/integrations", r.http_url)).await.unwrap().status(), 200);
}

/// A kept-alive connection is closed after the idle timeout, which is not
/// the header timeout; one that starts a request late has the header
/// timeout from its first byte.
#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed() {
    let w = World::without_operator_on(Place::Standalone).await;
    let limits = quick(Limits::default());
    let r = launch(&w, limits.clone(), None);
    let request = b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    let mut stream = connect(&r.admin_url).await;
    for _ in 0..2 {
        stream.write_all(request).await.unwrap();
        let (status, head, body) = read_response(&mut stream).await;
        assert_eq!((status, body.as_str()), (200, "ok"), "{head}");
    }
    let since = Instant::now();
    let held = until_closed(&mut stream, since).await;
    assert!(held >= limits.idle_timeout && held < limits.idle_timeout + Duration::from_secs(2), "held {held:?}");

    // Half a head after a response: closed at the header timeout from its first byte.
    let mut stream = connect(&r.admin_url).await;
    stream.write_all(request).await.unwrap();
    read_response(&mut stream).await;
    stream.write_all(b"GET /livez HTTP/1.1\r\n").await.unwrap();
    let since = Instant::now();
    let held = until_closed(&mut stream, since).await;
    assert!(
        held >= limits.header_read_timeout - Duration::from_millis(50) && held < limits.idle_timeout,
        "held {held:?}"
    );
}

on_both_stores! { async fn a_stalled_body_gets_408_and_the_connection_closes(w) {
    let token = "body-token";
    if w.place == Place::Kubernetes {
        w.api.set_token_review(token, TokenReviewAnswer::user("alice", &["system:authenticated"]).for_audiences(&["kube-notify"]));
        w.api.set_access_review(|_| (true, "allowed".into()));
    }
    let limits = quick(Limits::default());
    let r = launch(&w, limits.clone(), None);
    let mut stream = connect(&r.http_url).await;
    let head = format!(
        "POST /v1/namespaces/{NS}/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"message\": "
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let since = Instant::now();
    let (status, head, body) = read_response(&mut stream).await;
    let waited = since.elapsed();
    assert_eq!(status, 408, "{head}\n{body}");
    assert!(body.contains("body_timeout"), "{body}");
    assert!(head.to_ascii_lowercase().contains("connection: close"), "{head}");
    assert!(waited >= limits.body_read_timeout, "answered after {waited:?}");
    until_closed(&mut stream, since).await;
    // Nothing was created, and the listener still serves.
    if w.place == Place::Kubernetes {
        assert!(w.api.objects("kube-notify.io", "v1alpha1", "notificationevents").is_empty());
    }
    let mut stream = connect(&r.http_url).await;
    stream.write_all(b"GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
    assert_eq!(read_response(&mut stream).await.0, 404);
}}

/// Beyond the cap, connections wait to be accepted; once the others go,
/// they are served.
#[tokio::test]
async fn connections_beyond_the_cap_wait_until_others_close() {
    let w = World::without_operator_on(Place::Standalone).await;
    let limits = Limits { max_connections: 4, header_read_timeout: Duration::from_secs(30), ..Limits::default() };
    let r = launch(&w, limits, None);
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect(&r.http_url).await);
    }
    let url = format!("{}/v1/integrations", r.http_url);
    let waiting = tokio::spawn(async move { reqwest::get(url).await.map(|r| r.status().as_u16()) });
    // Held: not answered while the four connections stay (they send nothing).
    let mut waiting = std::pin::pin!(waiting);
    assert!(tokio::time::timeout(Duration::from_millis(500), &mut waiting).await.is_err(), "answered beyond the cap");
    drop(held);
    let status = tokio::time::timeout(WAIT, waiting).await.expect("never answered").unwrap().unwrap();
    assert_eq!(status, 200);
}

/// A test CA and a certificate it signed for 127.0.0.1 and localhost: (CA PEM, cert PEM, key PEM).
pub(crate) fn test_certificate(ca_name: &str) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, ca_name);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

/// A client trusting only `ca`, on a connection of its own.
pub(crate) fn trusting(ca: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

on_both_stores! { async fn ingestion_over_tls_with_certificates_reloaded(w) {
    let dir = tempfile::tempdir().unwrap();
    let files = TlsFiles { cert: dir.path().join("tls.crt"), key: dir.path().join("tls.key") };
    let (ca, cert, key) = test_certificate("first CA");
    std::fs::write(&files.cert, &cert).unwrap();
    std::fs::write(&files.key, &key).unwrap();
    let tls = ServerTls::load(files.clone(), Duration::from_millis(100)).unwrap();
    let mut reloads = tls.reloads();
    let r = launch(&w, Limits::default(), Some(tls));
    assert!(r.http_url.starts_with("https://"));
    let url = format!("{}/v1/integrations", r.http_url);
    // Standalone serves loopback callers; on a cluster, no token is 401: an answer over TLS either way.
    let expected = if w.place == Place::Standalone { 200 } else { 401 };
    assert_eq!(trusting(&ca).get(&url).send().await.unwrap().status(), expected);
    // Plain HTTP to the TLS port gets no answer.
    let plain = reqwest::get(url.replacen("https://", "http://", 1)).await;
    assert!(plain.is_err(), "{plain:?}");

    // Replaced on disk: the next connection gets the new certificate.
    let (new_ca, new_cert, new_key) = test_certificate("second CA");
    std::fs::write(&files.key, &new_key).unwrap();
    std::fs::write(&files.cert, &new_cert).unwrap();
    tokio::time::timeout(WAIT, reloads.wait_for(|r| r.loaded == 1)).await.expect("never reloaded").unwrap();
    assert_eq!(trusting(&new_ca).get(&url).send().await.unwrap().status(), expected);
    assert!(trusting(&ca).get(&url).send().await.is_err(), "the old certificate is still served");

    // A broken pair (a key that is not the certificate's): the last good one stays.
    let (_, _, other_key) = test_certificate("third CA");
    std::fs::write(&files.key, &other_key).unwrap();
    tokio::time::timeout(WAIT, reloads.wait_for(|r| r.refused == 1)).await.expect("never checked").unwrap();
    assert_eq!(trusting(&new_ca).get(&url).send().await.unwrap().status(), expected);
    let logs = captured_logs();
    assert!(logs.contains("TLS certificate not reloaded"), "no error logged");
    let key_body: &str = other_key.lines().nth(1).unwrap();
    assert!(!logs.contains(key_body), "the key's text was logged");
}}

#[test]
fn tls_errors_name_the_flag_and_never_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let files = TlsFiles { cert: dir.path().join("tls.crt"), key: dir.path().join("tls.key") };
    let e = ServerTls::load(files.clone(), Duration::from_secs(1)).unwrap_err();
    assert!(e.contains("--tls-cert-file") && e.contains("tls.crt"), "{e}");
    let (_, cert, key) = test_certificate("a CA");
    std::fs::write(&files.cert, &cert).unwrap();
    let secret = "MC4CAQAwBQYDK2VwBCIEIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    std::fs::write(&files.key, format!("-----BEGIN PRIVATE KEY-----\n{secret}!\n")).unwrap();
    let e = ServerTls::load(files.clone(), Duration::from_secs(1)).unwrap_err();
    assert!(e.contains("--tls-key-file") && !e.contains(secret), "{e}");
    std::fs::write(&files.cert, "not a certificate").unwrap();
    std::fs::write(&files.key, &key).unwrap();
    let e = ServerTls::load(files.clone(), Duration::from_secs(1)).unwrap_err();
    assert!(e.contains("--tls-cert-file") && e.contains("no certificate"), "{e}");
    let (_, other_cert, _) = test_certificate("another CA");
    std::fs::write(&files.cert, &other_cert).unwrap();
    let e = ServerTls::load(files, Duration::from_secs(1)).unwrap_err();
    assert!(e.contains("does not go with"), "{e}");
}
