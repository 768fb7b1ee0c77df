//! `kube-notify send` and `kube-notify test`: the real binary against the API emulation with the
//! operator running (a kubeconfig file pointing at the emulation, as a CI
//! job has one), and with `--url` against the operator's HTTP ingestion:
//! each outcome's exit code and its one line.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use kube_notify::crd::conditions;
use serde_json::json;
use tokio::io::AsyncWriteExt as _;

use crate::support::apiserver::{RequestMatcher as ApiMatcher, TokenReviewAnswer};
use kube_notify::server::ingest::IngestConfig;

use crate::support::operator::{Launch, NS, World};
use crate::support::services::{RequestMatcher, ScriptedResponse};

const BIN: &str = env!("CARGO_BIN_EXE_kube-notify");
const CI_TOKEN: &str = "ci-bot-token";
const CI_USER: &str = "system:serviceaccount:team-a:ci-bot";

/// A kubeconfig for the emulation (context namespace `team-a`) in a temporary folder.
struct Kubeconfig {
    dir: tempfile::TempDir,
}

impl Kubeconfig {
    fn new(w: &World, token: &str) -> Kubeconfig {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: emulation\n  cluster:\n    server: {}\n\
             users:\n- name: ci-bot\n  user:\n    token: {token}\ncontexts:\n- name: ci\n  context:\n    \
             cluster: emulation\n    user: ci-bot\n    namespace: {NS}\ncurrent-context: ci\n",
            w.api.url()
        );
        std::fs::write(dir.path().join("config"), text).unwrap();
        Kubeconfig { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("config")
    }
}

/// What one run printed.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The one line on stdout.
    fn line(&self) -> &str {
        let lines: Vec<&str> = self.stdout.lines().collect();
        assert_eq!(lines.len(), 1, "one line: {self:?}");
        lines[0]
    }
}

/// `kube-notify send ARGS` with `kubeconfig` (a child process: the test's
/// runtime keeps serving the emulation and the operator meanwhile).
async fn send(kubeconfig: Option<&Kubeconfig>, env: &[(&str, &str)], args: &[&str], stdin: Option<&str>) -> Run {
    command("send", kubeconfig, env, args, stdin).await
}

/// `kube-notify SUBCOMMAND ARGS` (see [`send`]).
async fn command(
    subcommand: &str,
    kubeconfig: Option<&Kubeconfig>,
    env: &[(&str, &str)],
    args: &[&str],
    stdin: Option<&str>,
) -> Run {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.arg(subcommand).args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("KUBE_NOTIFY_") || k.starts_with("KUBERNETES_") || k == "KUBECONFIG" {
            cmd.env_remove(k);
        }
    }
    match kubeconfig {
        Some(k) => cmd.env("KUBECONFIG", k.path()),
        None => cmd.env("KUBECONFIG", "/nonexistent/kubeconfig"),
    };
    cmd.envs(env.iter().copied());
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(text.as_bytes()).await.unwrap();
    }
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("kube-notify did not finish")
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// A ready webhook integration `name` (labelled), its path on the emulator.
async fn ready_webhook(w: &World, name: &str, labels: serde_json::Value, threshold: i32) -> String {
    let path = format!("/hooks/{name}");
    let url = w.webhook.add_endpoint(&path);
    w.put_secret(name, &[("webhookUrl", &url)]).await;
    w.create_integration_labeled(
        name,
        labels,
        json!({"service": "webhook", "secretRef": {"name": name}, "errorThreshold": threshold}),
    )
    .await;
    w.wait_condition(name, "Ready", "True", None).await;
    path
}

fn events_in_the_api(w: &World) -> usize {
    w.api.objects("kube-notify.io", "v1alpha1", "notificationevents").len()
}

/// `delivered: team-a/cli-xxxxx to NAME (1 attempt)`: the event's name.
fn delivered_name(line: &str, to: &str) -> String {
    let rest = line.strip_prefix(&format!("delivered: {NS}/")).unwrap_or_else(|| panic!("{line}"));
    let (name, tail) = rest.split_once(' ').unwrap();
    assert!(name.starts_with("cli-"), "{line}");
    assert_eq!(tail, format!("to {to} (1 attempt)"), "{line}");
    name.to_string()
}

#[tokio::test]
async fn send_delivers_with_the_kubeconfig_and_exits_0() {
    let w = World::start().await;
    w.api.add_user(CI_TOKEN, CI_USER, &["system:serviceaccounts"]);
    let hook = ready_webhook(&w, "hook", json!({}), 5).await;
    let k = Kubeconfig::new(&w, CI_TOKEN);

    // The namespace comes from the kubeconfig's context.
    let args = [
        "--integration=hook",
        "--title=Deploy",
        "--message=v2 is out",
        "--severity=success",
        "--field=Version=v2",
        "--link=Logs=https://logs.example/run/1",
        "--mention=jane@example.com=Jane",
        "--wait=20s",
    ];
    let run = send(Some(&k), &[], &args, None).await;
    assert_eq!(run.code, 0, "{run:?}");
    let name = delivered_name(run.line(), "hook");
    let got = w.webhook.wait_for_messages(1, Duration::from_secs(20)).await;
    assert_eq!(got[0].path, hook);
    let data = got[0].json().unwrap()["data"].clone();
    assert_eq!((data["title"].as_str(), data["message"].as_str()), (Some("Deploy"), Some("v2 is out")));
    assert_eq!(data["mentions"][0]["name"], "Jane");
    // Created as the caller, marked as coming from the command line.
    let stored = w.api.object("kube-notify.io", "v1alpha1", "notificationevents", NS, &name).unwrap();
    assert_eq!(stored["metadata"]["annotations"]["kube-notify.io/requested-via"], "cli");
    assert_eq!(stored["spec"]["severity"], "success");
    assert!(w.api.requests().iter().any(|r| r.user == CI_USER && r.verb == "create" && r.name == name));
    assert!(!run.stdout.contains(CI_TOKEN) && !run.stderr.contains(CI_TOKEN));

    // The message from stdin, `-n` on the command line.
    let run = send(Some(&k), &[], &["-n", NS, "-i", "hook", "--wait", "20s"], Some("from stdin\n")).await;
    assert_eq!(run.code, 0, "{run:?}");
    delivered_name(run.line(), "hook");
    let got = w.webhook.wait_for_messages(2, Duration::from_secs(20)).await;
    assert_eq!(got[1].json().unwrap()["data"]["message"], "from stdin");

    // --wait 0: created, not waited for.
    let run = send(Some(&k), &[], &["-i", "hook", "-m", "later", "--wait", "0"], None).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.line().starts_with(&format!("created: {NS}/cli-")), "{run:?}");
}

#[tokio::test]
async fn refusals_before_anything_is_created() {
    let w = World::start().await;
    w.api.add_user(CI_TOKEN, CI_USER, &[]);
    ready_webhook(&w, "hook", json!({"team": "a"}), 5).await;
    let k = Kubeconfig::new(&w, CI_TOKEN);

    let run = send(Some(&k), &[], &["-i", "nope", "-m", "x"], None).await;
    assert_eq!((run.code, run.line()), (3, "not found: no NotificationIntegration \"nope\" in namespace \"team-a\""));

    let run = send(Some(&k), &[], &["-l", "team in (b, c)", "-m", "x"], None).await;
    assert_eq!(
        (run.code, run.line()),
        (3, "not found: no NotificationIntegration in namespace \"team-a\" matches \"team in (b,c)\"")
    );

    let run = send(Some(&k), &[], &["-i", "hook", "-m", "x", "--link", "Logs=ftp://logs"], None).await;
    assert_eq!((run.code, run.line()), (2, "invalid: links[0].url (--link): must be an http:// or https:// URL"));
    let run = send(Some(&k), &[], &["-i", "hook", "-m", "x", "--mention", "not-an-email"], None).await;
    assert_eq!(
        (run.code, run.line()),
        (2, "invalid: mentions[0].email (--mention): must be an email address (name@domain.tld)")
    );
    let run = send(Some(&k), &[], &["-i", "hook"], Some("")).await;
    assert_eq!((run.code, run.line()), (2, "invalid: message (--message): must not be empty"));
    let run = send(Some(&k), &[], &["-n", "Team_A", "-i", "hook", "-m", "x"], None).await;
    assert_eq!((run.code, run.line()), (2, "invalid: --namespace: \"Team_A\" is not a namespace name"));
    // clap's own usage errors: 2 as well.
    let run = send(Some(&k), &[], &["-m", "x"], None).await;
    assert_eq!(run.code, 2, "{run:?}");

    // Credentials the API does not accept.
    let stranger = Kubeconfig::new(&w, "not-a-token");
    let run = send(Some(&stranger), &[], &["-i", "hook", "-m", "x"], None).await;
    assert_eq!(run.code, 11, "{run:?}");
    assert!(
        run.line().starts_with("unauthorized: reading the integration: the Kubernetes API answered 401"),
        "{run:?}"
    );
    assert!(!run.stdout.contains("not-a-token"));

    // No API at all.
    let run = send(None, &[], &["-i", "hook", "-m", "x"], None).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.line().starts_with("error: no Kubernetes configuration"), "{run:?}");

    assert_eq!(events_in_the_api(&w), 0, "nothing refused was created");
    assert!(w.webhook.requests().is_empty());
}

#[tokio::test]
async fn each_failure_has_its_exit_code() {
    let w = World::start().await;
    w.api.add_user(CI_TOKEN, CI_USER, &[]);
    let k = Kubeconfig::new(&w, CI_TOKEN);

    // Disabled: skipped without a call.
    ready_webhook(&w, "off", json!({}), 5).await;
    w.patch_integration("off", json!({"spec": {"disabled": true}})).await;
    w.wait_condition("off", "Disabled", "True", Some("Manual")).await;
    let run = send(Some(&k), &[], &["-i", "off", "-m", "x", "--wait", "20s"], None).await;
    assert_eq!(run.code, 4, "{run:?}");
    assert!(run.line().starts_with(&format!("disabled: {NS}/cli-")), "{run:?}");
    assert!(run.line().contains("not delivered to off: integration \"off\" is disabled (Manual)"), "{run:?}");

    // Rejected: this message.
    let bad = ready_webhook(&w, "picky", json!({}), 5).await;
    w.webhook.push_response(RequestMatcher::path(&bad), ScriptedResponse::text(400, "bad payload"));
    let run = send(Some(&k), &[], &["-i", "picky", "-m", "x", "--wait", "20s"], None).await;
    assert_eq!(run.code, 6, "{run:?}");
    assert!(run.line().contains("not delivered to picky (MessageRejected after 1 attempt)"), "{run:?}");

    // Dead: the endpoint is gone; never a credential (the URL) in the line.
    let gone = ready_webhook(&w, "gone", json!({}), 5).await;
    w.webhook.set_gone(&gone);
    let run = send(Some(&k), &[], &["-i", "gone", "-m", "x", "--wait", "20s"], None).await;
    assert_eq!(run.code, 7, "{run:?}");
    assert!(run.line().starts_with("dead: "), "{run:?}");
    assert!(run.line().contains("not delivered to gone (DestinationNotFound after 1 attempt)"), "{run:?}");
    assert!(!run.stdout.contains(&w.webhook.url()), "{run:?}");

    // Failed after retries (3 attempts in the tests).
    let flaky = ready_webhook(&w, "flaky", json!({}), 10).await;
    w.webhook.push_responses(RequestMatcher::path(&flaky), ScriptedResponse::status(503), 3);
    let run = send(Some(&k), &[], &["-i", "flaky", "-m", "x", "--wait", "20s"], None).await;
    assert_eq!(run.code, 9, "{run:?}");
    assert!(run.line().contains("(ServiceUnavailable after 3 attempts)"), "{run:?}");

    // Not ready: the Secret is missing; the event waits for it.
    w.create_integration("orphan", json!({"service": "webhook", "secretRef": {"name": "missing"}})).await;
    w.wait_condition("orphan", "Ready", "False", Some("SecretNotFound")).await;
    let run = send(Some(&k), &[], &["-i", "orphan", "-m", "x", "--wait", "3s"], None).await;
    assert_eq!(run.code, 5, "{run:?}");
    assert!(run.line().starts_with("not ready: "), "{run:?}");
    assert!(run.line().contains("waits for orphan (SecretNotFound)"), "{run:?}");
    assert!(run.line().ends_with(&format!("kubectl get nev -n {NS} {}", event_of(run.line()))), "{run:?}");

    // Timed out: the service is slower than --wait.
    let slow = ready_webhook(&w, "slow", json!({}), 5).await;
    w.webhook.push_response(RequestMatcher::path(&slow), ScriptedResponse::delayed_passthrough(Duration::from_secs(5)));
    let run = send(Some(&k), &[], &["-i", "slow", "-m", "x", "--wait", "1s"], None).await;
    assert_eq!(run.code, 8, "{run:?}");
    assert!(run.line().starts_with("timed out: "), "{run:?}");
    assert!(run.line().contains("it may still be delivered: kubectl get nev"), "{run:?}");

    // Not allowed to follow it: created, and the line says how to follow it.
    let watch = ApiMatcher::any().user(CI_USER).verb("list").resource("notificationevents");
    w.api.fail_next(watch, 403, "Forbidden");
    let run = send(Some(&k), &[], &["-i", "off", "-m", "x", "--wait", "20s"], None).await;
    assert_eq!(run.code, 11, "{run:?}");
    assert!(run.line().starts_with(&format!("unauthorized: watching {NS}/cli-")), "{run:?}");
    assert!(run.line().contains("(it was created: kubectl get nev -n team-a cli-"), "{run:?}");
}

/// `team-a/cli-xxxxx` in a line: the name.
fn event_of(line: &str) -> String {
    let at = line.find(&format!("{NS}/cli-")).unwrap_or_else(|| panic!("no event in {line}"));
    line[at + NS.len() + 1..].split([' ', ':', ';']).next().unwrap().to_string()
}

#[tokio::test]
async fn a_selector_reports_each_target() {
    let w = World::start().await;
    w.api.add_user(CI_TOKEN, CI_USER, &[]);
    let k = Kubeconfig::new(&w, CI_TOKEN);
    ready_webhook(&w, "a", json!({"team": "payroll"}), 5).await;
    let b = ready_webhook(&w, "b", json!({"team": "payroll"}), 5).await;

    let run = send(Some(&k), &[], &["-l", "team=payroll", "-m", "x", "--wait", "20s"], None).await;
    assert_eq!(run.code, 0, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("delivered: ") && lines[0].ends_with(" to 2 integrations"), "{run:?}");
    assert_eq!(lines[1..], ["  a: delivered (1 attempt)", "  b: delivered (1 attempt)"]);

    w.webhook.set_gone(&b);
    let run = send(Some(&k), &[], &["-l", "team=payroll", "-m", "x", "--wait", "20s"], None).await;
    assert_eq!(run.code, 10, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[0].starts_with("partially delivered: ")
            && lines[0].ends_with("delivered to 1 of 2 integrations (1 failed, 0 skipped)"),
        "{run:?}"
    );
    assert_eq!(lines[1], "  a: delivered (1 attempt)");
    assert!(lines[2].starts_with("  b: dead (DestinationNotFound after 1 attempt)"), "{run:?}");
}

/// `--url`: the operator's HTTP ingestion, with a token from the environment or a file.
#[tokio::test]
async fn send_over_http() {
    let w = World::without_operator().await;
    // `kubectl create token ci-bot --audience kube-notify`
    w.api.set_token_review(
        CI_TOKEN,
        TokenReviewAnswer::user("ci-bot", &["system:authenticated"])
            .for_audiences(&[kube_notify::server::ingest::auth::DEFAULT_TOKEN_AUDIENCE]),
    );
    w.api.set_access_review(|spec| (spec.user.as_deref() == Some("ci-bot"), "RBAC".to_string()));
    // A server whose --send-timeout (3s) is shorter than the 30s `?wait=`
    // send asks for at most: longer waits are followed with GET.
    let ingest = IngestConfig { send_timeout: Duration::from_secs(3), ..IngestConfig::default() };
    let operator = w.launch(Launch { ingest, ..w.launch_config() });
    let hook = ready_webhook(&w, "hook", json!({}), 5).await;
    // The operator's own cache has it Ready before a send is asked for.
    let key = kube::runtime::reflector::ObjectRef::new("hook").within(NS);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !operator
        .ctx
        .caches
        .integrations
        .get(&key)
        .is_some_and(|ni| ni.status.as_ref().is_some_and(|s| conditions::is_true(&s.conditions, "Ready")))
    {
        assert!(tokio::time::Instant::now() < deadline, "the operator never saw hook ready");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let url = operator.http_url.clone();

    let env = [("KUBE_NOTIFY_URL", url.as_str()), ("KUBE_NOTIFY_TOKEN", CI_TOKEN)];
    // Within the server's wait: its 200 answer has the final status.
    let run = send(None, &env, &["-n", NS, "-i", "hook", "-m", "over http", "--wait", "3s"], None).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.line().starts_with(&format!("delivered: {NS}/http-")), "{run:?}");
    assert!(run.line().ends_with(" to hook (1 attempt)"), "{run:?}");
    let got = w.webhook.wait_for_messages(1, Duration::from_secs(20)).await;
    assert_eq!(
        (got[0].path.as_str(), got[0].json().unwrap()["data"]["message"].as_str()),
        (hook.as_str(), Some("over http"))
    );
    assert!(!run.stdout.contains(CI_TOKEN) && !run.stderr.contains(CI_TOKEN));

    // Longer than the server's wait: created without it (the server refused
    // the longer wait before creating anything), then followed with GET.
    let run = send(None, &env, &["-n", NS, "-i", "hook", "-m", "followed", "--wait", "20s"], None).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.line().ends_with(" to hook (1 attempt)"), "{run:?}");
    assert_eq!(w.api.objects("kube-notify.io", "v1alpha1", "notificationevents").len(), 2, "one event per send");

    // The wait runs out while the service is slow.
    let slow = ready_webhook(&w, "slow", json!({}), 5).await;
    w.webhook.push_response(RequestMatcher::path(&slow), ScriptedResponse::delayed_passthrough(Duration::from_secs(5)));
    let run = send(None, &env, &["-n", NS, "-i", "slow", "-m", "too slow", "--wait", "1s"], None).await;
    assert_eq!(run.code, 8, "{run:?}");
    assert!(run.line().starts_with(&format!("timed out: {NS}/http-")), "{run:?}");
    let follow = format!("it may still be delivered: GET {url}/v1/namespaces/{NS}/events/http-");
    assert!(run.line().contains(&follow), "{run:?}");

    // The token from a file; an unknown integration is 404 at once.
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{CI_TOKEN}\n")).unwrap();
    let args = ["--url", &url, "--token-file", token_file.to_str().unwrap(), "-n", NS, "-i", "nope", "-m", "x"];
    let run = send(None, &[], &args, None).await;
    assert_eq!(run.code, 3, "{run:?}");
    assert_eq!(
        run.line(),
        "not found: no NotificationIntegration \"nope\" in namespace \"team-a\" (HTTP 404 integration_not_found)"
    );

    // An invalid field, as the route names it.
    let run = send(None, &env, &["-n", NS, "-i", "hook", "-m", "x", "--field", "=v"], None).await;
    assert_eq!((run.code, run.line()), (2, "invalid: fields[0].name (--field): must not be empty"));

    // No token: 401.
    let run = send(None, &[("KUBE_NOTIFY_URL", url.as_str())], &["-n", NS, "-i", "hook", "-m", "x"], None).await;
    assert_eq!(run.code, 11, "{run:?}");
    assert!(run.line().starts_with("unauthorized: "), "{run:?}");

    // A token minted for the API server (`kubectl create token ci-bot`): 11, saying how to mint one.
    w.api.set_token_review("ci-bot-api-token", TokenReviewAnswer::user("ci-bot", &["system:authenticated"]));
    let env = [("KUBE_NOTIFY_URL", url.as_str()), ("KUBE_NOTIFY_TOKEN", "ci-bot-api-token")];
    let run = send(None, &env, &["-n", NS, "-i", "hook", "-m", "x"], None).await;
    assert_eq!(run.code, 11, "{run:?}");
    assert!(run.line().starts_with("unauthorized: "), "{run:?}");
    assert!(run.line().contains("kubectl create token NAME --audience kube-notify"), "{run:?}");
    assert!(!run.stdout.contains("ci-bot-api-token") && !run.stderr.contains("ci-bot-api-token"));

    // Nothing listening: 1.
    let closed = format!("http://{}", std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap());
    let run = send(None, &[("KUBE_NOTIFY_TOKEN", CI_TOKEN)], &["--url", &closed, "-i", "hook", "-m", "x"], None).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.line().starts_with(&format!("error: could not reach {closed}")), "{run:?}");
    assert!(
        w.webhook.messages().iter().all(|m| m.json().unwrap()["data"]["message"] != "x"),
        "nothing refused was sent"
    );
}

#[tokio::test]
async fn test_sends_one_test_message_and_says_how_it_went() {
    let mut w = World::start().await;
    w.api.add_user(CI_TOKEN, CI_USER, &[]);
    let k = Kubeconfig::new(&w, CI_TOKEN);
    let path = ready_webhook(&w, "hook", json!({}), 1).await;
    let posts = || w.webhook.requests().iter().filter(|r| r.path == path).count();

    let r = command("test", Some(&k), &[], &["hook"], None).await;
    assert_eq!((r.code, r.line()), (0, "delivered: test message to team-a/hook (1 attempt)"), "{r:?}");
    assert_eq!(posts(), 1);
    let ni = w.integration("hook").await.unwrap();
    let test = ni.status.unwrap().test_message.unwrap();
    assert_eq!(ni.metadata.annotations.unwrap()[kube_notify::crd::SEND_TEST_ANNOTATION], test.request);

    let r = command("test", Some(&k), &[], &["nope"], None).await;
    assert_eq!((r.code, r.line()), (3, "not found: no NotificationIntegration \"nope\" in namespace \"team-a\""));

    // A dead destination: 7, and (threshold 1) the integration is disabled: 4.
    w.webhook.set_gone(&path);
    let r = command("test", Some(&k), &[], &["hook", "-n", NS], None).await;
    assert_eq!(r.code, 7, "{r:?}");
    assert!(r.line().starts_with("dead: test message to team-a/hook (DestinationNotFound after 1 attempt): "), "{r:?}");
    w.wait_condition("hook", "Disabled", "True", Some("ErrorThreshold")).await;
    let r = command("test", Some(&k), &[], &["hook"], None).await;
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.line().starts_with("disabled: test message to team-a/hook not sent (ErrorThreshold): "), "{r:?}");
    assert_eq!(posts(), 2, "nothing sent to a disabled integration");

    // --wait 0 only asks; a short wait with no answer is timed out (8).
    let r = command("test", Some(&k), &[], &["hook", "--wait", "0"], None).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.line().starts_with("requested: test message "), "{r:?}");
    w.stop_operator();
    let r = command("test", Some(&k), &[], &["hook", "--wait", "300ms"], None).await;
    assert_eq!(r.code, 8, "{r:?}");
    assert!(r.line().starts_with("timed out: test message "), "{r:?}");
    assert!(!r.stdout.contains(CI_TOKEN) && !r.stderr.contains(CI_TOKEN), "no token printed");
}
