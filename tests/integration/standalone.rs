//! Standalone mode only: the real binary (`kube-notify standalone` and
//! `kube-notify get`) against loopback emulators, killed with SIGKILL and
//! restarted; token access; manifest reloads. The behaviour both modes share
//! runs on both stores in the other modules (`on_both_stores!`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kube_notify::crd::EventPhase;
use serde_json::{Value, json};

use crate::support::operator::{NS, Place, WAIT, World, captured_logs};
use crate::support::services::{ScriptedResponse, WebhookEmulator};

const BIN: &str = env!("CARGO_BIN_EXE_kube-notify");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A webhook integration `name` in `default`, to `url`.
fn webhook_manifest(name: &str, url: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\nstringData:\n  webhookUrl: {url}\n---\n\
         apiVersion: kube-notify.io/v1alpha1\nkind: NotificationIntegration\nmetadata:\n  name: {name}\n\
         spec:\n  service: webhook\n  secretRef:\n    name: {name}\n"
    )
}

/// A `kube-notify standalone` process.
struct Standalone {
    child: Child,
    http: String,
    admin: String,
    state: PathBuf,
    log: PathBuf,
}

impl Standalone {
    /// Start on `state` with the manifests at `manifests`, allowing `allow`;
    /// returns once it is ready.
    async fn start(dir: &Path, manifests: &Path, allow: &str, extra: &[&str]) -> Standalone {
        let (http_port, admin_port) = (free_port(), free_port());
        let state = dir.join("state");
        let log = dir.join(format!("standalone-{http_port}.log"));
        let child = Command::new(BIN)
            .args(["standalone", "-f"])
            .arg(manifests)
            .arg("--state-dir")
            .arg(&state)
            .args(["--http-addr", &format!("127.0.0.1:{http_port}")])
            .args(["--admin-addr", &format!("127.0.0.1:{admin_port}")])
            .args(["--allow-endpoint", allow, "--reload-period", "100ms", "--log", "info"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let s = Standalone {
            child,
            http: format!("http://127.0.0.1:{http_port}"),
            admin: format!("http://127.0.0.1:{admin_port}"),
            state,
            log,
        };
        s.wait_ready().await;
        s
    }

    async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Ok(r) = client.get(format!("{}/readyz", self.admin)).send().await
                && r.status() == 200
            {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "not ready; log:\n{}", self.logs());
            // Another process: its readiness can only be polled.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// POST an event to `integration`; its name.
    async fn post(&self, integration: &str, message: &str, token: Option<&str>) -> reqwest::Response {
        let mut req = reqwest::Client::new()
            .post(format!("{}/v1/namespaces/default/events", self.http))
            .json(&json!({"integration": integration, "title": "t", "message": message}));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap()
    }

    async fn post_ok(&self, integration: &str, message: &str) -> String {
        let r = self.post(integration, message, None).await;
        assert_eq!(r.status(), 202);
        r.json::<Value>().await.unwrap()["name"].as_str().unwrap().to_string()
    }

    /// `kube-notify get ARGS` on this state folder: (exit code, stdout, stderr).
    fn get(&self, args: &[&str]) -> (i32, String, String) {
        get(&self.state, args)
    }

    /// Every event's phase, from `get nev -o json`.
    fn phases(&self) -> Vec<(String, Option<String>)> {
        let (code, out, err) = self.get(&["nev", "-o", "json"]);
        assert_eq!(code, 0, "{err}");
        let list: Value = serde_json::from_str(&out).unwrap();
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let name = e["metadata"]["name"].as_str().unwrap().to_string();
                (name, e["status"]["phase"].as_str().map(str::to_string))
            })
            .collect()
    }

    /// SIGKILL: no drain, no last write.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(state: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).arg("get").args(args).arg("--state-dir").arg(state).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[tokio::test]
async fn the_first_run_delivers_and_get_shows_it() {
    let webhook = WebhookEmulator::start().await;
    let url = webhook.add_endpoint("/hook");
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    std::fs::write(manifests.join("hook.yaml"), webhook_manifest("local-webhook", &url)).unwrap();
    let s = Standalone::start(dir.path(), &manifests, &format!("{}/", webhook.url()), &[]).await;

    // Without a token, a web page cannot send through the loopback port.
    let from_a_page = reqwest::Client::new()
        .post(format!("{}/v1/namespaces/default/events", s.http))
        .header("origin", "https://evil.example")
        .json(&json!({"integration": "local-webhook", "message": "from a web page"}))
        .send()
        .await
        .unwrap();
    assert_eq!(from_a_page.status(), 403);
    let name = s.post_ok("local-webhook", "hello from standalone").await;
    webhook.wait_for_messages(1, WAIT).await;
    // The event's final status is written right after the delivery.
    let deadline = tokio::time::Instant::now() + WAIT;
    while s.phases() != [(name.clone(), Some("Delivered".to_string()))] {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", s.phases());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let (code, out, _) = s.get(&["nev"]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0].split_whitespace().collect::<Vec<_>>(), ["NAME", "PHASE", "TARGET", "AGE"]);
    assert!(lines[1].starts_with(&name) && lines[1].contains("Delivered") && lines[1].contains("local-webhook"));

    let (code, out, _) = s.get(&["ni"]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["NAME", "SERVICE", "READY", "DISABLED", "ERRORS", "AGE"]
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(&row[..5], ["local-webhook", "webhook", "True", "False", "0"]);

    // Counters are flushed every few seconds.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (code, out, _) = s.get(&["ni", "local-webhook", "-o", "yaml"]);
        assert_eq!(code, 0);
        let ni: Value = serde_yaml::from_str(&out).unwrap();
        assert_eq!(ni["kind"], "NotificationIntegration");
        if ni["status"]["totalDelivered"] == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the counters were never flushed: {out}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The list route shows the same.
    let list: Value =
        reqwest::get(format!("{}/v1/namespaces/default/integrations", s.http)).await.unwrap().json().await.unwrap();
    assert_eq!(list["items"][0]["name"], "local-webhook");
    assert_eq!(list["items"][0]["ready"], true);

    // kubectl's answers for nothing and for a missing name.
    let (code, _, err) = s.get(&["nev", "-n", "elsewhere"]);
    assert_eq!((code, err.trim()), (0, "No resources found in elsewhere namespace."));
    let (code, _, err) = s.get(&["ni", "missing"]);
    assert_ne!(code, 0);
    assert!(err.contains("\"missing\" not found"), "{err}");
    // The state database never holds a credential.
    let db = std::fs::read(s.state.join("kube-notify.db")).unwrap();
    let wal = std::fs::read(s.state.join("kube-notify.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(!String::from_utf8_lossy(&bytes).contains(&url), "the webhook URL is in the state database");
    }
}

#[tokio::test]
async fn a_kill_9_loses_nothing_and_sends_nothing_delivered_again() {
    let webhook = WebhookEmulator::start().await;
    let url = webhook.add_endpoint("/slow");
    // Every delivery takes a while, so that the kill finds some done, one in
    // flight and the rest queued.
    webhook.push_responses("/slow", ScriptedResponse::delayed_passthrough(Duration::from_millis(150)), 1000);
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("hook.yaml");
    std::fs::write(&manifests, webhook_manifest("slow", &url)).unwrap();
    let allow = format!("{}/", webhook.url());
    let s = Standalone::start(dir.path(), &manifests, &allow, &[]).await;
    let mut names = Vec::new();
    for i in 0..20 {
        names.push(s.post_ok("slow", &format!("message {i}")).await);
    }
    webhook.wait_for_requests(5, WAIT).await;
    s.kill();
    // What the state says was delivered before the kill.
    let (code, out, err) = get(&dir.path().join("state"), &["nev", "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let before: Value = serde_json::from_str(&out).unwrap();
    let delivered_before: Vec<String> = before["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["status"]["phase"] == "Delivered")
        .map(|e| e["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(before["items"].as_array().unwrap().len(), 20, "every accepted event survived the kill");

    let s = Standalone::start(dir.path(), &manifests, &allow, &[]).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !s.phases().iter().all(|(_, p)| p.as_deref() == Some("Delivered")) {
        assert!(tokio::time::Instant::now() < deadline, "{:?}\n{}", s.phases(), s.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let received: Vec<(String, String)> = webhook
        .requests()
        .iter()
        .filter_map(|r| {
            let body = r.json()?;
            Some((body["data"]["source"].as_str()?.to_string(), body["data"]["id"].as_str()?.to_string()))
        })
        .collect();
    let mut twice = 0;
    for name in &names {
        let copies: Vec<&String> =
            received.iter().filter(|(s, _)| *s == format!("default/{name}")).map(|(_, id)| id).collect();
        assert!(!copies.is_empty(), "{name} was never delivered; received: {received:?}");
        if delivered_before.contains(name) {
            assert_eq!(copies.len(), 1, "{name} was on record as delivered, and sent again after the restart");
        }
        if copies.len() > 1 {
            twice += 1;
            assert!(copies.iter().all(|id| *id == copies[0]), "a resend carries the same message id: {copies:?}");
        }
    }
    // README's window: only deliveries not on record at the kill can arrive
    // twice: the one in flight, and one the service answered whose status
    // write had not happened yet (one queue per integration, one at a time).
    assert!(twice <= 2, "{twice} events arrived twice");
}

#[tokio::test]
async fn without_a_token_only_loopback_and_with_one_only_its_holder() {
    let webhook = WebhookEmulator::start().await;
    let url = webhook.add_endpoint("/hook");
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("hook.yaml");
    std::fs::write(&manifests, webhook_manifest("hook", &url)).unwrap();
    let allow = format!("{}/", webhook.url());

    // Beyond loopback without a token: refused at start, naming the flag.
    let out = Command::new(BIN)
        .args(["standalone", "-f"])
        .arg(&manifests)
        .arg("--state-dir")
        .arg(dir.path().join("refused"))
        .args(["--http-addr", &format!("0.0.0.0:{}", free_port()), "--allow-endpoint", &allow])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token-file"));

    let token = "s3cr3t-token-for-the-test-0123";
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let s = Standalone::start(dir.path(), &manifests, &allow, &["--token-file", token_file.to_str().unwrap()]).await;
    assert_eq!(s.post("hook", "x", None).await.status(), 401);
    let wrong = s.post("hook", "x", Some("not-the-token-but-long")).await;
    assert_eq!(wrong.status(), 401);
    assert!(!wrong.text().await.unwrap().contains(token));
    assert_eq!(s.post("hook", "x", Some(token)).await.status(), 202);
    webhook.wait_for_messages(1, WAIT).await;
    assert!(!s.logs().contains(token), "the token was logged");
    assert!(!s.logs().contains(&url), "the webhook URL was logged");

    // A second process on the same state folder is refused.
    let out = Command::new(BIN)
        .args(["standalone", "-f"])
        .arg(&manifests)
        .arg("--state-dir")
        .arg(&s.state)
        .args(["--http-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--admin-addr", &format!("127.0.0.1:{}", free_port())])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use by another kube-notify process"));
}

/// `--tls-cert-file` and `--tls-key-file`: HTTPS on the routes, with the
/// token; one without the other is refused at start, naming the flag.
#[tokio::test]
async fn https_with_the_tls_flags() {
    use crate::listeners::{test_certificate, trusting};
    let webhook = WebhookEmulator::start().await;
    let url = webhook.add_endpoint("/hook");
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("hook.yaml");
    std::fs::write(&manifests, webhook_manifest("hook", &url)).unwrap();
    let allow = format!("{}/", webhook.url());
    let (ca, cert, key) = test_certificate("standalone CA");
    let (cert_file, key_file) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_file, &cert).unwrap();
    std::fs::write(&key_file, &key).unwrap();

    let out = Command::new(BIN)
        .args(["standalone", "-f"])
        .arg(&manifests)
        .arg("--state-dir")
        .arg(dir.path().join("refused"))
        .arg("--tls-cert-file")
        .arg(&cert_file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--tls-key-file"), "{stderr}");

    let token = "s3cr3t-token-for-the-tls-test-01";
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, token).unwrap();
    let flags = ["--token-file", token_file.to_str().unwrap(), "--tls-cert-file", cert_file.to_str().unwrap()];
    let s = Standalone::start(
        dir.path(),
        &manifests,
        &allow,
        &[&flags[..], &["--tls-key-file", key_file.to_str().unwrap()]].concat(),
    )
    .await;
    let events = format!("{}/v1/namespaces/default/events", s.http.replacen("http://", "https://", 1));
    let body = json!({"integration": "hook", "message": "over TLS"});
    let r = trusting(&ca).post(&events).bearer_auth(token).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 202);
    webhook.wait_for_messages(1, WAIT).await;
    assert!(reqwest::Client::new().post(&events).json(&body).send().await.is_err(), "no answer without TLS' CA");
    assert!(s.logs().contains("https"), "{}", s.logs());
    assert!(!s.logs().contains(key.lines().nth(1).unwrap()), "the key was logged");
}

#[tokio::test]
async fn invalid_manifests_at_start_name_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("bad.yaml");
    std::fs::write(
        &manifests,
        "apiVersion: kube-notify.io/v1alpha1\nkind: NotificationIntegration\nmetadata:\n  name: Bad_Name\n\
         spec:\n  service: fax\n  secretRef:\n    name: s\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["standalone", "-f"])
        .arg(&manifests)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .args(["--http-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--admin-addr", &format!("127.0.0.1:{}", free_port())])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("metadata.name") && err.contains("spec.service"), "{err}");
    assert!(!dir.path().join("state").exists(), "nothing is created for invalid manifests");
}

#[tokio::test]
async fn manifest_edits_are_applied_and_invalid_ones_change_nothing() {
    let w = World::start_on(Place::Standalone, |_| {}).await;
    let s = w.standalone.clone().unwrap();
    let url = w.webhook.add_endpoint("/edit");
    w.put_secret("edit", &[("webhookUrl", &url)]).await;
    w.create_integration("edit", json!({"service": "webhook", "secretRef": {"name": "edit"}})).await;
    w.wait_condition("edit", "Ready", "True", None).await;
    let path = s.manifests_path();
    let reload = tokio::spawn(kube_notify::standalone::reload(
        s.store.clone(),
        path.clone(),
        NS.to_string(),
        Duration::from_millis(50),
        kube_notify::standalone::fingerprint(&path),
    ));

    // Switched off by editing the file.
    let text = s.text().replace("secretRef:", "disabled: true\n  secretRef:");
    std::fs::write(&path, &text).unwrap();
    let ni = w.wait_condition("edit", "Disabled", "True", Some("Manual")).await;
    let generation = ni.metadata.generation;

    // A broken file: nothing changes, the problem is logged.
    std::fs::write(&path, text.replace("service: webhook", "service: fax")).unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !captured_logs().contains("the changed manifests were not applied") {
        assert!(tokio::time::Instant::now() < deadline, "the broken manifests were not reported");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(w.integration("edit").await.unwrap().metadata.generation, generation);

    // Fixed and switched on again; then removed from the file: deleted.
    std::fs::write(&path, text.replace("disabled: true", "disabled: false")).unwrap();
    w.wait_condition("edit", "Ready", "True", None).await;
    w.create_event("after-edit", json!({"integrationRef": {"name": "edit"}, "message": "on again"})).await;
    w.wait_event_phase("after-edit", EventPhase::Delivered).await;
    let secret_only: String = text.split("---\n").find(|doc| doc.contains("kind: Secret")).unwrap().to_string();
    std::fs::write(&path, secret_only).unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while w.integration("edit").await.is_some() {
        assert!(tokio::time::Instant::now() < deadline, "the integration removed from the file stays");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    reload.abort();
}
