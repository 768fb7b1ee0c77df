//! The Helm chart, charts/kube-notify.
//!
//! The tests without `#[ignore]` read the chart's own files. The `#[ignore]`d
//! ones read what Helm's engine rendered (scripts/chart-render writes
//! target/chart-render/) and, for the RBAC coverage, the Kubernetes API calls
//! the operator made in the integration tests (KUBE_NOTIFY_API_USAGE_DIR,
//! written by tests/support/apiserver). Run them after those:
//!
//!   scripts/chart-render && cargo test --test chart -- --ignored

mod packaging;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use clap::{CommandFactory, Parser};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, Subject};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube_notify::cli::{Cli, Command, LogFormat, RunArgs, SecretAccessMode, ServiceAccountRef};
use packaging::{describe, read, root, roundtrip_exact, selects, yaml_docs};
use serde_json::Value;

const CHART: &str = "charts/kube-notify";
/// The cases scripts/chart_render.py renders.
const CASES: [&str; 8] = [
    "default",
    "clustersecrets",
    "namespaced",
    "minimal",
    "getsecrets",
    "labelledsecrets",
    "tlssecret",
    "tlscertmanager",
];
/// The release scripts/chart_render.py renders into.
const RELEASE_NAMESPACE: &str = "kube-notify";
/// The pod name the downward API would give `KUBE_NOTIFY_INSTANCE`.
const POD_NAME: &str = "kube-notify-5d8f7c9b4-x2x7q";

fn chart_dir() -> PathBuf {
    root().join(CHART)
}

fn chart_yaml(file: &str) -> Value {
    let path = chart_dir().join(file);
    yaml_docs(&read(&path), file).into_iter().next().unwrap_or_else(|| panic!("{file} is empty"))
}

// ---------------------------------------------------------------------------
// The chart's files.

#[test]
fn app_version_is_the_crate_version() {
    let chart = chart_yaml("Chart.yaml");
    assert_eq!(chart["name"], "kube-notify");
    assert_eq!(
        chart["appVersion"].as_str(),
        Some(env!("CARGO_PKG_VERSION")),
        "Chart.yaml appVersion must be the crate version in Cargo.toml (bump both)"
    );
    assert!(chart["version"].as_str().is_some_and(|v| !v.is_empty()), "Chart.yaml needs a version");
}

#[test]
fn chart_crds_are_the_checked_in_crds() {
    let names = |dir: PathBuf| -> BTreeSet<String> {
        std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    let top = names(root().join("crds"));
    let chart = names(chart_dir().join("crds"));
    assert_eq!(chart, top, "charts/kube-notify/crds/ must hold exactly the files of crds/");
    for file in &top {
        assert!(
            read(&root().join("crds").join(file)) == read(&chart_dir().join("crds").join(file)),
            "charts/kube-notify/crds/{file} differs from crds/{file}; copy it (cp crds/*.yaml charts/kube-notify/crds/)"
        );
    }
}

fn default_run_args() -> RunArgs {
    let Command::Run(args) = Cli::try_parse_from(["kube-notify", "run"]).unwrap().command else {
        panic!("`kube-notify run` did not parse as run")
    };
    *args
}

#[test]
fn values_defaults_are_the_binary_defaults() {
    let values = chart_yaml("values.yaml");
    let config = &values["config"];
    let defaults = default_run_args();
    let duration = |key: &str| {
        humantime::parse_duration(config[key].as_str().unwrap_or_else(|| panic!("config.{key} is not a string")))
            .unwrap_or_else(|e| panic!("config.{key}: {e}"))
    };
    let log_format = match defaults.engine.log.log_format {
        LogFormat::Text => "text",
        LogFormat::Json => "json",
    };
    assert_eq!(config["logFormat"], log_format);
    assert_eq!(config["logFilter"], defaults.engine.log.log.as_str());
    assert_eq!(config["allowEndpoints"], serde_json::json!([]));
    assert_eq!(config["slackApiUrl"], defaults.engine.slack_api_url.as_str());
    assert_eq!(config["chatworkApiUrl"], defaults.engine.chatwork_api_url.as_str());
    assert_eq!(duration("revalidatePeriod"), defaults.engine.revalidate_period);
    assert_eq!(duration("httpTimeout"), defaults.engine.http_timeout);
    assert_eq!(config["validationRate"], defaults.engine.validation_rate.get());
    // Passed only when set: the binary's own defaults apply otherwise.
    for key in ["eventDeadline", "eventTtl", "retryMaxDelay"] {
        assert_eq!(config[key], "", "config.{key} is unset by default");
    }
    assert!(config["deliveryAttempts"].is_null(), "config.deliveryAttempts is unset by default");
    for (key, value) in config["ingestion"].as_object().expect("config.ingestion") {
        assert!(value.is_null() || value == "", "config.ingestion.{key} is unset by default");
    }
    assert_eq!(values["ports"]["http"], defaults.http_addr.port());
    assert_eq!(values["ports"]["admin"], defaults.admin_addr.port());
    assert_eq!(values["watchNamespace"], "");
    // Secrets per namespace by default: the chart then runs the operator with
    // secretAccess get, the one mode that needs no list or watch (checked on
    // the rendered default in deployment_settings_parse_with_the_cli). Empty
    // secretAccess is "follow secretReadScope": with secretReadScope cluster,
    // the binary's own default, watch (the clustersecrets case).
    assert_eq!(values["secretReadScope"], "namespaces");
    assert_eq!(values["secretAccess"], "", "secretAccess follows secretReadScope unless set");
    assert_eq!(defaults.secret_access, SecretAccessMode::Watch, "empty secretAccess with secretReadScope cluster");
    assert_eq!(values["serviceAccount"]["name"], "", "the ServiceAccount is named after the release");
    assert_eq!(defaults.secret_reader_role, kube_notify::status::integration::DEFAULT_SECRET_READER_ROLE);
    let reread = humantime::parse_duration(values["secretRereadPeriod"].as_str().expect("secretRereadPeriod"));
    assert_eq!(reread.unwrap(), defaults.secret_reread_period);
    assert_eq!(values["replicaCount"], 1, "one replica by default (more are followers, Ready too)");
    assert_eq!(values["tls"]["mode"], "off", "plain HTTP by default, as the binary without --tls-cert-file");
    assert!(defaults.tls.files().unwrap().is_none());
}

/// One line of rbac-reserved.txt.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Grant {
    group: String,
    /// `resource` or `resource/subresource`.
    resource: String,
    verb: String,
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = if self.group.is_empty() { "core" } else { &self.group };
        write!(f, "{group} {} {}", self.resource, self.verb)
    }
}

fn reserved_grants() -> BTreeMap<Grant, String> {
    let text = read(&chart_dir().join("rbac-reserved.txt"));
    let mut reserved = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (rule, why) = line.split_once('#').unwrap_or((line, ""));
        let words: Vec<&str> = rule.split_whitespace().collect();
        assert!(
            words.len() == 3 && !why.trim().is_empty(),
            "rbac-reserved.txt line {}: expected `group resource verb  # why`, got {line:?}",
            n + 1
        );
        let group = if words[0] == "core" { String::new() } else { words[0].to_string() };
        let grant = Grant { group, resource: words[1].into(), verb: words[2].into() };
        assert!(
            reserved.insert(grant.clone(), why.trim().to_string()).is_none(),
            "rbac-reserved.txt lists {grant} twice"
        );
    }
    reserved
}

#[test]
fn reserved_rbac_list_is_well_formed() {
    let reserved = reserved_grants();
    for grant in reserved.keys() {
        assert!(grant.resource != "*" && grant.verb != "*" && grant.group != "*", "no wildcards: {grant}");
    }
}

// ---------------------------------------------------------------------------
// What Helm rendered (scripts/chart-render).

const RENDER_HINT: &str = "run scripts/chart-render first; these tests are #[ignore]d so that a plain \
                           `cargo test` does not need Helm: cargo test --test chart -- --ignored";

fn render_dir() -> PathBuf {
    root().join("target/chart-render")
}

/// The objects of one rendered case.
fn rendered(case: &str) -> Vec<Value> {
    let path = render_dir().join(format!("{case}.yaml"));
    if !path.exists() {
        panic!("{} is missing: {RENDER_HINT}", path.display());
    }
    let docs = yaml_docs(&read(&path), &format!("{case}.yaml"));
    assert!(!docs.is_empty(), "{}: nothing rendered", path.display());
    docs
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn one<T: serde::de::DeserializeOwned>(docs: &[Value], kind: &str, case: &str) -> T {
    let found = of_kind(docs, kind);
    assert_eq!(found.len(), 1, "{case}: expected one {kind}, found {}", found.len());
    serde_json::from_value(found[0].clone()).unwrap()
}

fn operator_container(deployment: &Deployment) -> Container {
    let spec = deployment.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    assert_eq!(spec.containers.len(), 1, "the operator pod has one container");
    spec.containers[0].clone()
}

#[test]
#[ignore = "needs target/chart-render from scripts/chart-render"]
fn rendered_objects_parse_as_their_kinds() {
    for case in CASES {
        let docs = rendered(case);
        let origin = format!("{case}.yaml");
        for obj in &docs {
            assert!(obj["metadata"]["name"].is_string(), "{origin}: an object without a name: {obj}");
            match obj["kind"].as_str().unwrap_or_default() {
                "Deployment" => drop(roundtrip_exact::<Deployment>(obj, &origin)),
                "Service" => drop(roundtrip_exact::<Service>(obj, &origin)),
                "ServiceAccount" => drop(roundtrip_exact::<ServiceAccount>(obj, &origin)),
                "ClusterRole" => drop(roundtrip_exact::<ClusterRole>(obj, &origin)),
                "ClusterRoleBinding" => drop(roundtrip_exact::<ClusterRoleBinding>(obj, &origin)),
                "Role" => drop(roundtrip_exact::<Role>(obj, &origin)),
                "RoleBinding" => drop(roundtrip_exact::<RoleBinding>(obj, &origin)),
                "PodDisruptionBudget" => drop(roundtrip_exact::<PodDisruptionBudget>(obj, &origin)),
                "NetworkPolicy" => drop(roundtrip_exact::<NetworkPolicy>(obj, &origin)),
                "ServiceMonitor" => check_service_monitor_shape(obj, &origin),
                "ConfigMap" => drop(roundtrip_exact::<ConfigMap>(obj, &origin)),
                "PrometheusRule" => check_prometheus_rule_shape(obj, &origin),
                "Certificate" => check_certificate_shape(obj, &origin),
                other => panic!("{origin}: unexpected kind {other:?} ({})", describe(obj)),
            }
            let namespaced = !matches!(obj["kind"].as_str(), Some("ClusterRole" | "ClusterRoleBinding"));
            assert_eq!(
                obj["metadata"]["namespace"].is_string(),
                namespaced,
                "{origin}: {} must {}have metadata.namespace",
                describe(obj),
                if namespaced { "" } else { "not " }
            );
            assert_eq!(
                obj["metadata"]["labels"]["app.kubernetes.io/name"],
                "kube-notify",
                "{origin}: {} lacks the chart's labels",
                describe(obj)
            );
        }
        assert_eq!(of_kind(&docs, "Deployment").len(), 1, "{case}: one Deployment");
    }
}

/// A ServiceMonitor has no Rust type here: check its shape by hand.
fn check_service_monitor_shape(obj: &Value, origin: &str) {
    assert_eq!(obj["apiVersion"], "monitoring.coreos.com/v1", "{origin}");
    let allowed = |v: &Value, keys: &[&str], what: &str| {
        for k in v.as_object().unwrap_or_else(|| panic!("{origin}: {what} is not an object")).keys() {
            assert!(keys.contains(&k.as_str()), "{origin}: ServiceMonitor {what} has unknown field {k:?}");
        }
    };
    allowed(obj, &["apiVersion", "kind", "metadata", "spec"], "object");
    allowed(&obj["spec"], &["namespaceSelector", "selector", "endpoints", "jobLabel"], "spec");
    let endpoints = obj["spec"]["endpoints"].as_array().expect("spec.endpoints");
    assert!(!endpoints.is_empty(), "{origin}: a ServiceMonitor without endpoints");
    for e in endpoints {
        allowed(e, &["port", "path", "scheme", "interval", "scrapeTimeout", "honorLabels"], "endpoint");
        assert!(e["port"].is_string(), "{origin}: ServiceMonitor endpoints name the Service port");
    }
}

/// A cert-manager Certificate has no Rust type here: check its shape by hand
/// (cert-manager.io/v1 fields only).
fn check_certificate_shape(obj: &Value, origin: &str) {
    assert_eq!(obj["apiVersion"], "cert-manager.io/v1", "{origin}");
    let spec = obj["spec"].as_object().unwrap_or_else(|| panic!("{origin}: a Certificate without spec"));
    for k in spec.keys() {
        assert!(
            ["secretName", "dnsNames", "issuerRef", "duration", "renewBefore", "privateKey", "usages"]
                .contains(&k.as_str()),
            "{origin}: Certificate spec field {k:?}"
        );
    }
    assert!(spec["secretName"].as_str().is_some_and(|s| !s.is_empty()), "{origin}: secretName");
    assert!(spec["dnsNames"].as_array().is_some_and(|d| d.iter().all(Value::is_string)), "{origin}: dnsNames");
    for k in ["name", "kind", "group"] {
        assert!(spec["issuerRef"][k].as_str().is_some_and(|s| !s.is_empty()), "{origin}: issuerRef.{k}");
    }
    for k in ["duration", "renewBefore"] {
        if let Some(d) = spec.get(k) {
            humantime::parse_duration(d.as_str().unwrap()).unwrap_or_else(|e| panic!("{origin}: {k}: {e}"));
        }
    }
}

/// A PrometheusRule has no Rust type here: check its shape by hand.
fn check_prometheus_rule_shape(obj: &Value, origin: &str) {
    assert_eq!(obj["apiVersion"], "monitoring.coreos.com/v1", "{origin}");
    let groups = obj["spec"]["groups"].as_array().expect("spec.groups");
    assert!(!groups.is_empty(), "{origin}: a PrometheusRule without groups");
    for g in groups {
        assert!(g["name"].is_string(), "{origin}: a rule group without a name");
        for rule in g["rules"].as_array().expect("rules") {
            for k in rule.as_object().unwrap().keys() {
                assert!(
                    ["alert", "expr", "for", "labels", "annotations"].contains(&k.as_str()),
                    "{origin}: rule field {k:?}"
                );
            }
            assert!(rule["alert"].is_string() && rule["expr"].is_string(), "{origin}: {rule}");
            assert!(rule["labels"]["severity"].is_string(), "{origin}: every alert has a severity: {rule}");
        }
    }
}

#[test]
#[ignore = "needs target/chart-render from scripts/chart-render"]
fn deployment_is_hardened() {
    for case in CASES {
        let docs = rendered(case);
        let deployment: Deployment = one(&docs, "Deployment", case);
        let pod = deployment.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        let psc = pod.security_context.as_ref().unwrap_or_else(|| panic!("{case}: no pod securityContext"));
        assert_eq!(psc.run_as_non_root, Some(true), "{case}: pod runAsNonRoot");
        assert_ne!(psc.run_as_user, Some(0), "{case}: pod runs as root");
        assert_eq!(psc.seccomp_profile.as_ref().map(|s| s.type_.as_str()), Some("RuntimeDefault"), "{case}: seccomp");
        assert_ne!(pod.host_network, Some(true), "{case}: hostNetwork");
        assert_ne!(pod.host_pid, Some(true), "{case}: hostPID");
        assert_ne!(pod.automount_service_account_token, Some(false), "{case}: the operator needs its token");

        let c = operator_container(&deployment);
        let sc = c.security_context.as_ref().unwrap_or_else(|| panic!("{case}: no container securityContext"));
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{case}: allowPrivilegeEscalation");
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{case}: readOnlyRootFilesystem");
        assert_eq!(sc.run_as_non_root, Some(true), "{case}: container runAsNonRoot");
        assert_ne!(sc.privileged, Some(true), "{case}: privileged");
        assert_ne!(sc.run_as_user, Some(0), "{case}: container runs as root");
        let caps = sc.capabilities.as_ref().unwrap_or_else(|| panic!("{case}: no capabilities"));
        assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_string()][..]), "{case}: drop ALL capabilities");
        assert!(caps.add.as_ref().is_none_or(|a| a.is_empty()), "{case}: adds capabilities");
        assert_eq!(sc.seccomp_profile.as_ref().map(|s| s.type_.as_str()), Some("RuntimeDefault"), "{case}");

        let resources = c.resources.as_ref().unwrap_or_else(|| panic!("{case}: no resources"));
        let requests = resources.requests.as_ref().unwrap_or_else(|| panic!("{case}: no requests"));
        assert!(requests.contains_key("cpu") && requests.contains_key("memory"), "{case}: cpu and memory requests");
        assert!(resources.limits.as_ref().is_some_and(|l| l.contains_key("memory")), "{case}: memory limit");

        // Probes on the admin port, which is where the binary serves them.
        let args = run_args(&c, case);
        let port_named =
            |name: &str| c.ports.iter().flatten().find(|p| p.name.as_deref() == Some(name)).map(|p| p.container_port);
        assert_eq!(port_named("admin"), Some(i32::from(args.admin_addr.port())), "{case}: admin containerPort");
        assert_eq!(port_named("http"), Some(i32::from(args.http_addr.port())), "{case}: http containerPort");
        for (probe, path) in [(&c.liveness_probe, "/livez"), (&c.readiness_probe, "/readyz")] {
            let get = probe.as_ref().and_then(|p| p.http_get.as_ref()).unwrap_or_else(|| panic!("{case}: {path}"));
            assert_eq!(get.path.as_deref(), Some(path), "{case}");
            let port = match &get.port {
                IntOrString::String(name) => port_named(name),
                IntOrString::Int(n) => Some(*n),
            };
            assert_eq!(port, Some(i32::from(args.admin_addr.port())), "{case}: {path} must be on the admin port");
        }

        let image = c.image.as_deref().unwrap_or_default();
        if case == "default" {
            assert!(
                image.ends_with(&format!(":{}", env!("CARGO_PKG_VERSION"))),
                "{case}: the image tag defaults to the appVersion: {image}"
            );
        }
    }
}

/// The operator's settings as `kube-notify run` would see them in the pod:
/// the container's args, and its `KUBE_NOTIFY_*` variables for every flag
/// not given as an argument (clap's rule).
fn run_args(c: &Container, case: &str) -> RunArgs {
    let cli = Cli::command();
    let run = cli.find_subcommand("run").expect("a run subcommand");
    let flag_of_env: BTreeMap<String, String> = run
        .get_arguments()
        .filter_map(|a| Some((a.get_env()?.to_str()?.to_string(), a.get_long()?.to_string())))
        .collect();
    let args = c.args.clone().unwrap_or_default();
    assert_eq!(args.first().map(String::as_str), Some("run"), "{case}: the container runs `kube-notify run`");
    assert!(c.command.is_none(), "{case}: keep the image's ENTRYPOINT (the binary)");
    let explicit = &args[1..];
    let given = |flag: &str| explicit.iter().any(|a| a == &format!("--{flag}") || a.starts_with(&format!("--{flag}=")));

    let mut argv = vec!["kube-notify".to_string(), "run".to_string()];
    let mut seen = BTreeSet::new();
    for var in c.env.iter().flatten() {
        assert!(seen.insert(var.name.clone()), "{case}: {} is set twice", var.name);
        let value = match (&var.value, &var.value_from) {
            (Some(v), None) => v.clone(),
            (None, Some(from)) => match from.field_ref.as_ref().map(|f| f.field_path.as_str()) {
                Some("metadata.name") => POD_NAME.to_string(),
                Some("metadata.namespace") => RELEASE_NAMESPACE.to_string(),
                other => panic!("{case}: {} comes from an unexpected source {other:?}", var.name),
            },
            _ => panic!("{case}: {} has no value", var.name),
        };
        if let Some(flag) = flag_of_env.get(&var.name) {
            if !given(flag) {
                argv.push(format!("--{flag}={value}"));
            }
        } else {
            assert!(
                !var.name.starts_with("KUBE_NOTIFY_"),
                "{case}: {} is no `kube-notify run` setting (flags take {:?})",
                var.name,
                flag_of_env.keys().collect::<Vec<_>>()
            );
        }
    }
    argv.extend(explicit.iter().cloned());
    let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{case}: the pod's settings do not parse: {e}"));
    let Command::Run(run_args) = cli.command else { panic!("{case}: not `run`") };
    *run_args
}

#[test]
#[ignore = "needs target/chart-render from scripts/chart-render"]
fn deployment_settings_parse_with_the_cli() {
    for case in CASES {
        let docs = rendered(case);
        let deployment: Deployment = one(&docs, "Deployment", case);
        let args = run_args(&operator_container(&deployment), case);
        assert_eq!(args.instance.as_deref(), Some(POD_NAME), "{case}: KUBE_NOTIFY_INSTANCE is the pod's name");
        assert!(args.leader_election, "{case}: leader election is on (replicas may be more than one)");
        match case {
            "default" | "clustersecrets" | "minimal" | "getsecrets" | "labelledsecrets" => {
                let mut expected = default_run_args();
                expected.instance = Some(POD_NAME.into());
                // The Lease lives in the release namespace (downward API).
                expected.leader_election_namespace = Some(RELEASE_NAMESPACE.into());
                // The reader ClusterRole is the binary's default name for
                // this release; the ServiceAccount is always given.
                let sa = if case == "minimal" { "existing-operator" } else { "kube-notify" };
                expected.service_account =
                    Some(ServiceAccountRef { namespace: RELEASE_NAMESPACE.into(), name: sa.into() });
                if case == "minimal" {
                    // A large number, to catch Helm's float rendering (1e+06).
                    expected.review_cache_size = 1_000_000;
                }
                match case {
                    // secretReadScope namespaces: get, whatever the binary's default.
                    "default" | "minimal" => expected.secret_access = SecretAccessMode::Get,
                    "getsecrets" => {
                        expected.secret_access = SecretAccessMode::Get;
                        expected.secret_reread_period = std::time::Duration::from_secs(120);
                    }
                    "labelledsecrets" => expected.secret_access = SecretAccessMode::Labelled,
                    _ => {}
                }
                assert_eq!(
                    format!("{args:?}"),
                    format!("{expected:?}"),
                    "{case}: the chart's defaults are the binary's"
                );
            }
            "tlssecret" | "tlscertmanager" => {
                let mut expected = default_run_args();
                expected.instance = Some(POD_NAME.into());
                expected.leader_election_namespace = Some(RELEASE_NAMESPACE.into());
                expected.tls.tls_cert_file = Some("/etc/kube-notify/tls/tls.crt".into());
                expected.tls.tls_key_file = Some("/etc/kube-notify/tls/tls.key".into());
                // The default Secret scope (namespaces): get, and the ServiceAccount for its message.
                expected.secret_access = SecretAccessMode::Get;
                expected.service_account =
                    Some(ServiceAccountRef { namespace: RELEASE_NAMESPACE.into(), name: "kube-notify".into() });
                assert_eq!(format!("{args:?}"), format!("{expected:?}"), "{case}: TLS from the mounted Secret");
                assert!(args.tls.files().unwrap().is_some(), "{case}");
            }
            "namespaced" => {
                assert_eq!(args.namespace.as_deref(), Some("team-a"));
                // The Role in team-a grants list and watch: secretAccess follows.
                assert_eq!(args.secret_access, SecretAccessMode::Watch);
                assert_eq!(args.engine.log.log_format, LogFormat::Json);
                assert_eq!(
                    args.engine.allow_endpoint,
                    ["http://alerts.team-a.svc:9000/hooks/", "https://hooks.internal.example/"]
                );
                assert_eq!(args.engine.revalidate_period, std::time::Duration::from_secs(30 * 60));
                assert_eq!(args.engine.http_timeout, std::time::Duration::from_secs(5));
                assert_eq!(args.engine.validation_rate.get(), 2, "extraArgs win over the values' environment");
                assert_eq!(args.engine.event_deadline, std::time::Duration::from_secs(2 * 3600));
                assert_eq!(args.engine.event_ttl, std::time::Duration::from_secs(72 * 3600));
                assert_eq!(args.engine.delivery_attempts, 3);
                assert_eq!(args.engine.retry_max_delay, std::time::Duration::from_secs(120));
                assert_eq!(args.engine.max_body_bytes, 4 * 1024 * 1024, "large numbers are not rendered as floats");
                assert_eq!(args.engine.ingest_rate.get(), 10);
                assert_eq!(args.engine.send_timeout, std::time::Duration::from_secs(10));
                assert_eq!(args.review_cache_ttl, std::time::Duration::ZERO);
                assert_eq!(args.token_audience, "notify.team-a.example");
                kube_notify::notifier::endpoint::EndpointPolicy::new(&args.engine.allow_endpoint)
                    .expect("the allowed endpoints are valid prefixes");
            }
            _ => unreachable!(),
        }
    }
}

#[test]
#[ignore = "needs target/chart-render from scripts/chart-render"]
fn services_budget_policy_and_monitor_select_the_operator_pods() {
    for case in CASES {
        let docs = rendered(case);
        let deployment = of_kind(&docs, "Deployment")[0];
        let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
        assert!(selects(&deployment["spec"]["selector"]["matchLabels"], pod_labels), "{case}: Deployment selector");
        let container_ports: BTreeSet<&str> = deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        for svc in of_kind(&docs, "Service") {
            assert!(selects(&svc["spec"]["selector"], pod_labels), "{case}: {} selects no operator pod", describe(svc));
            for p in svc["spec"]["ports"].as_array().unwrap() {
                let target = p["targetPort"].as_str().unwrap_or_default();
                assert!(container_ports.contains(target), "{case}: {} targets unknown port {target:?}", describe(svc));
            }
        }
        for pdb in of_kind(&docs, "PodDisruptionBudget") {
            assert!(selects(&pdb["spec"]["selector"]["matchLabels"], pod_labels), "{case}: {}", describe(pdb));
        }
        for np in of_kind(&docs, "NetworkPolicy") {
            assert!(selects(&np["spec"]["podSelector"]["matchLabels"], pod_labels), "{case}: {}", describe(np));
            for rule in np["spec"]["ingress"].as_array().unwrap() {
                for p in rule["ports"].as_array().unwrap() {
                    let port = p["port"].as_str().unwrap_or_default();
                    assert!(container_ports.contains(port), "{case}: NetworkPolicy names unknown port {port:?}");
                }
            }
        }
        for sm in of_kind(&docs, "ServiceMonitor") {
            let services: Vec<&Value> = of_kind(&docs, "Service")
                .into_iter()
                .filter(|s| selects(&sm["spec"]["selector"]["matchLabels"], &s["metadata"]["labels"]))
                .collect();
            assert_eq!(services.len(), 1, "{case}: the ServiceMonitor must select exactly the metrics Service");
            let names: Vec<&str> =
                services[0]["spec"]["ports"].as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
            for e in sm["spec"]["endpoints"].as_array().unwrap() {
                assert!(names.contains(&e["port"].as_str().unwrap()), "{case}: ServiceMonitor port {}", e["port"]);
                assert_eq!(e["path"], "/metrics");
            }
            assert_eq!(sm["spec"]["namespaceSelector"]["matchNames"][0], services[0]["metadata"]["namespace"]);
        }
    }
    let namespaced = rendered("namespaced");
    assert_eq!(of_kind(&namespaced, "ServiceMonitor").len(), 1, "namespaced: serviceMonitor.enabled");
    assert_eq!(of_kind(&namespaced, "NetworkPolicy").len(), 1, "namespaced: networkPolicy.enabled");
    let default = rendered("default");
    assert!(of_kind(&default, "ServiceMonitor").is_empty() && of_kind(&default, "NetworkPolicy").is_empty());
    assert_eq!(of_kind(&default, "Service").len(), 2, "default: the ingestion and metrics Services");
    assert_eq!(of_kind(&default, "PodDisruptionBudget").len(), 1, "default: a PodDisruptionBudget");
}

/// TLS on the ingestion port: the flags name the files of the mounted
/// kubernetes.io/tls Secret (tls.crt, tls.key; not a subPath, so that the
/// kubelet refreshes them), either the existing one or the one cert-manager
/// writes for the Service's DNS names; off by default.
#[test]
#[ignore = "needs target/chart-render from scripts/chart-render"]
fn tls_mounts_the_secret_and_passes_the_flags() {
    for case in CASES {
        let docs = rendered(case);
        let deployment: Deployment = one(&docs, "Deployment", case);
        let c = operator_container(&deployment);
        let args = run_args(&c, case);
        let pod = deployment.spec.as_ref().unwrap().template.spec.clone().unwrap();
        let certificates = of_kind(&docs, "Certificate");
        let secret = match case {
            "tlssecret" => "kube-notify-ingest-tls",
            "tlscertmanager" => "kube-notify-tls",
            _ => {
                assert!(args.tls.files().unwrap().is_none(), "{case}: TLS is off by default");
                assert!(certificates.is_empty() && pod.volumes.is_none(), "{case}");
                let notes = read(&render_dir().join(format!("{case}.NOTES.txt")));
                // (minimal renders no ingestion Service, so its notes say nothing of it.)
                assert!(case == "minimal" || notes.contains("plain HTTP"), "{case}: {notes}");
                continue;
            }
        };
        let files = args.tls.files().unwrap().unwrap_or_else(|| panic!("{case}: no TLS flags"));
        let volumes = pod.volumes.unwrap_or_default();
        let volume = volumes.iter().find(|v| v.name == "tls").unwrap_or_else(|| panic!("{case}: no tls volume"));
        assert_eq!(volume.secret.as_ref().and_then(|s| s.secret_name.as_deref()), Some(secret), "{case}");
        let mount = c.volume_mounts.iter().flatten().find(|m| m.name == "tls").expect("the tls volume mounted");
        assert_eq!(mount.read_only, Some(true), "{case}");
        assert!(mount.sub_path.is_none(), "{case}: a subPath mount is never refreshed");
        let dir = std::path::Path::new(&mount.mount_path);
        assert_eq!((files.cert, files.key), (dir.join("tls.crt"), dir.join("tls.key")), "{case}");
        let notes = read(&render_dir().join(format!("{case}.NOTES.txt")));
        assert!(notes.contains("https://"), "{case}: {notes}");

        if case == "tlssecret" {
            assert!(certificates.is_empty(), "{case}: no Certificate for an existing Secret");
            continue;
        }
        assert_eq!(certificates.len(), 1, "{case}");
        let spec = &certificates[0]["spec"];
        assert_eq!(spec["secretName"], secret, "{case}: the Certificate writes the mounted Secret");
        assert_eq!(spec["issuerRef"]["name"], "cluster-ca");
        assert_eq!(spec["issuerRef"]["kind"], "ClusterIssuer");
        assert_eq!(spec["duration"], "2160h");
        let names: Vec<&str> = spec["dnsNames"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        let service = of_kind(&docs, "Service")
            .into_iter()
            .find(|s| s["spec"]["ports"].as_array().unwrap().iter().any(|p| p["name"] == "http"))
            .expect("the ingestion Service");
        let svc = service["metadata"]["name"].as_str().unwrap().to_string();
        let ns = service["metadata"]["namespace"].as_str().unwrap().to_string();
        for name in [
            svc.clone(),
            format!("{svc}.{ns}"),
            format!("{svc}.{ns}.svc"),
            format!("{svc}.{ns}.svc.cluster.local"),
            "notify.example.com".to_string(),
        ] {
            assert!(names.contains(&name.as_str()), "{case}: {name} not in {names:?}");
        }
    }
}

/// How many pods a PodDisruptionBudget lets be evicted when all `replicas` are Ready.
fn allowed_disruptions(pdb: &PodDisruptionBudget, replicas: i32) -> i32 {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let spec = pdb.spec.as_ref().unwrap();
    let count = |v: &IntOrString, round_up: bool| match v {
        IntOrString::Int(n) => *n,
        IntOrString::String(p) => {
            let pct: i32 = p.trim_end_matches('%').parse().unwrap();
            let x = replicas * pct;
            if round_up { (x + 99) / 100 } else { x / 100 }
        }
    };
    match (&spec.min_available, &spec.max_unavailable) {
        (Some(min), _) => (replicas - count(min, true)).max(0),
        (None, Some(max)) => count(max, true).min(replicas),
        (None, None) => 0,
    }
}

/// With the defaults a rolling update completes (the new pod becomes Ready
/// as a follower, so the old one is removed), and a node drain can evict a
/// pod with one replica and with two.
#[test]
#[ignore = "needs target/chart-render from scripts/chart-render"]
fn rollouts_and_drains_complete_with_the_defaults() {
    let docs = rendered("default");
    let deployment: Deployment = one(&docs, "Deployment", "default");
    let spec = deployment.spec.clone().unwrap();
    let strategy = spec.strategy.unwrap();
    assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
    let rolling = strategy.rolling_update.unwrap();
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    assert_eq!(rolling.max_unavailable, Some(IntOrString::Int(0)), "the old pod stays until the new one is Ready");
    assert_eq!(rolling.max_surge, Some(IntOrString::Int(1)), "one new pod starts next to the old one");
    let probe = operator_container(&deployment).readiness_probe.unwrap();
    assert_eq!(probe.http_get.unwrap().path.as_deref(), Some("/readyz"), "Ready once the caches synced, leader or not");
    let pdb: PodDisruptionBudget = one(&docs, "PodDisruptionBudget", "default");
    for replicas in [1, 2] {
        assert!(allowed_disruptions(&pdb, replicas) >= 1, "{replicas} replica(s): a drain can evict a pod");
    }
    assert!(allowed_disruptions(&pdb, 2) < 2, "2 replicas: one pod keeps serving during a drain");
}

#[test]
#[ignore = "needs target/chart-render from scripts/chart-render"]
fn notes_tell_what_to_do_next() {
    for case in CASES {
        let path = render_dir().join(format!("{case}.NOTES.txt"));
        let notes = read(&path);
        for needle in ["create secret", "kind: NotificationIntegration", "get ni", "rollout status"] {
            assert!(notes.contains(needle), "{case}.NOTES.txt does not mention {needle:?}:\n{notes}");
        }
    }
    assert!(read(&render_dir().join("namespaced.NOTES.txt")).contains("-n team-a get ni"));
    // How a team opts in, when Secrets are granted per namespace: the very
    // line the operator's SecretForbidden condition gives, from the
    // settings the chart passes it.
    let deployment: Deployment = one(&rendered("default"), "Deployment", "default");
    let reader = run_args(&operator_container(&deployment), "default").secret_reader(None);
    let line = reader.rolebinding_command("my-team");
    assert_eq!(
        line,
        "kubectl create rolebinding kube-notify-secret-reader -n my-team --clusterrole=kube-notify-secret-reader \
         --serviceaccount=kube-notify:kube-notify"
    );
    let notes = read(&render_dir().join("default.NOTES.txt"));
    assert!(notes.contains(&format!("\n   {line}\n")), "{notes}");
    assert!(notes.contains("--set secretReadScope=cluster"), "{notes}");
    for case in ["clustersecrets", "namespaced", "getsecrets", "labelledsecrets"] {
        let notes = read(&render_dir().join(format!("{case}.NOTES.txt")));
        assert!(!notes.contains("create rolebinding"), "{case}: nothing to opt in to:\n{notes}");
    }
}

// ---------------------------------------------------------------------------
// RBAC: what the rendered roles grant the operator, against what it used.

/// Resources without a namespace: only a ClusterRole bound cluster-wide grants them.
const CLUSTER_SCOPED: [&str; 9] = [
    "tokenreviews",
    "subjectaccessreviews",
    "selfsubjectaccessreviews",
    "selfsubjectrulesreviews",
    "namespaces",
    "nodes",
    "customresourcedefinitions",
    "clusterroles",
    "clusterrolebindings",
];

fn is_cluster_scoped(resource: &str) -> bool {
    CLUSTER_SCOPED.contains(&resource.split('/').next().unwrap_or_default())
}

/// Where a grant applies.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Scope {
    Cluster,
    Namespace(String),
}

/// Every (grant, scope) the rendered roles give the operator's ServiceAccount.
fn granted(docs: &[Value], case: &str) -> Vec<(Grant, Scope)> {
    let deployment: Deployment = one(docs, "Deployment", case);
    let sa_name = deployment.spec.unwrap().template.spec.unwrap().service_account_name.expect("serviceAccountName");
    let sa_namespace = deployment.metadata.namespace.expect("the Deployment's namespace");
    let is_operator = |s: &Subject| {
        s.kind == "ServiceAccount" && s.name == sa_name && s.namespace.as_deref() == Some(sa_namespace.as_str())
    };
    let mut roles: BTreeMap<(String, String, String), Vec<PolicyRule>> = BTreeMap::new();
    for r in of_kind(docs, "ClusterRole") {
        let r: ClusterRole = serde_json::from_value(r.clone()).unwrap();
        assert!(r.aggregation_rule.is_none(), "{case}: no aggregated roles");
        roles.insert(("ClusterRole".into(), String::new(), r.metadata.name.unwrap()), r.rules.unwrap_or_default());
    }
    for r in of_kind(docs, "Role") {
        let r: Role = serde_json::from_value(r.clone()).unwrap();
        roles.insert(
            ("Role".into(), r.metadata.namespace.unwrap(), r.metadata.name.unwrap()),
            r.rules.unwrap_or_default(),
        );
    }
    let mut bound: Vec<(Vec<PolicyRule>, Scope, String)> = Vec::new();
    let mut lookup = |kind: &str, namespace: &str, name: &str, scope: Scope| {
        let key =
            (kind.to_string(), if kind == "Role" { namespace.to_string() } else { String::new() }, name.to_string());
        let rules = roles
            .get(&key)
            .unwrap_or_else(|| panic!("{case}: a binding refers to {kind} {name}, which the chart does not render"));
        bound.push((rules.clone(), scope, format!("{kind} {name}")));
    };
    for b in of_kind(docs, "ClusterRoleBinding") {
        let b: ClusterRoleBinding = serde_json::from_value(b.clone()).unwrap();
        if b.subjects.iter().flatten().any(is_operator) {
            assert_eq!(b.role_ref.kind, "ClusterRole");
            lookup("ClusterRole", "", &b.role_ref.name, Scope::Cluster);
        }
    }
    for b in of_kind(docs, "RoleBinding") {
        let b: RoleBinding = serde_json::from_value(b.clone()).unwrap();
        let namespace = b.metadata.namespace.clone().unwrap();
        if b.subjects.iter().flatten().any(is_operator) {
            lookup(&b.role_ref.kind, &namespace, &b.role_ref.name, Scope::Namespace(namespace.clone()));
        }
    }
    let mut grants = Vec::new();
    for (rules, scope, role) in bound {
        for rule in rules {
            assert!(rule.non_resource_urls.is_none(), "{case}: {role} grants non-resource URLs");
            let groups = rule.api_groups.unwrap_or_default();
            let resources = rule.resources.unwrap_or_default();
            for word in groups.iter().chain(&resources).chain(&rule.verbs) {
                assert!(!word.contains('*'), "{case}: {role} has a wildcard: {word}");
            }
            for group in &groups {
                for resource in &resources {
                    for verb in &rule.verbs {
                        let grant = Grant { group: group.clone(), resource: resource.clone(), verb: verb.clone() };
                        grants.push((grant, scope.clone()));
                    }
                }
            }
        }
    }
    grants
}

/// One Kubernetes API call the operator made in the integration tests, as
/// tests/support/apiserver records it.
#[derive(Debug)]
struct Use {
    user: String,
    grant: Grant,
    /// Made across all namespaces (a list or watch without a namespace).
    all_namespaces: bool,
}

fn recorded_usage() -> Vec<Use> {
    let dir = std::env::var_os("KUBE_NOTIFY_API_USAGE_DIR").unwrap_or_else(|| {
        panic!(
            "KUBE_NOTIFY_API_USAGE_DIR is not set: run the integration tests with it set (the API emulation \
             writes every call of the operator there), then this test with the same value"
        )
    });
    let dir = PathBuf::from(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("KUBE_NOTIFY_API_USAGE_DIR={}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut uses = Vec::new();
    for file in files {
        for (n, line) in read(&file).lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}:{}: not a JSON line: {e}: {line}", file.display(), n + 1));
            let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
            let (verb, resource) = (text("verb"), text("resource"));
            assert!(
                !verb.is_empty() && !resource.is_empty(),
                "{}:{}: a record without verb or resource: {line}",
                file.display(),
                n + 1
            );
            let sub = text("subresource");
            let resource = if sub.is_empty() { resource } else { format!("{resource}/{sub}") };
            let all_namespaces = text("namespace").is_empty();
            uses.push(Use {
                user: text("user"),
                grant: Grant { group: text("group"), resource, verb },
                all_namespaces,
            });
        }
    }
    assert!(
        !uses.is_empty(),
        "KUBE_NOTIFY_API_USAGE_DIR={} holds no API calls: run the integration tests with it set first",
        dir.display()
    );
    uses
}

/// The rules of the ClusterRole the Deployment names as the Secret reader
/// (`KUBE_NOTIFY_SECRET_READER_ROLE`), as grants.
fn secret_reader_rules(docs: &[Value]) -> BTreeSet<Grant> {
    let deployment: Deployment = one(docs, "Deployment", "the reader's case");
    let name = run_args(&operator_container(&deployment), "the reader's case").secret_reader_role;
    let role = of_kind(docs, "ClusterRole")
        .into_iter()
        .find(|r| r["metadata"]["name"] == name.as_str())
        .unwrap_or_else(|| panic!("no ClusterRole {name}, which the Deployment names as the Secret reader"));
    let role: ClusterRole = serde_json::from_value(role.clone()).unwrap();
    let mut grants = BTreeSet::new();
    for rule in role.rules.unwrap_or_default() {
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    grants.insert(Grant { group: group.clone(), resource: resource.clone(), verb: verb.clone() });
                }
            }
        }
    }
    grants
}

/// The verbs granted on Secrets in `case`, and where.
fn secret_verbs(case: &str) -> BTreeSet<(String, Scope)> {
    granted(&rendered(case), case)
        .into_iter()
        .filter(|(g, _)| g.group.is_empty() && g.resource == "secrets")
        .map(|(g, scope)| (g.verb, scope))
        .collect()
}

/// secretReadScope namespaces (the default): no Secret verb is granted,
/// cluster-wide or anywhere; the reader ClusterRole grants `get` on Secrets
/// and nothing else, and nothing the chart renders binds it. secretReadScope
/// cluster keeps what the chart granted before it (secretAccess watch).
#[test]
#[ignore = "needs target/chart-render from scripts/chart-render"]
fn default_grants_no_secret_verb_cluster_wide() {
    let docs = rendered("default");
    assert_eq!(secret_verbs("default"), BTreeSet::new(), "default: Secrets are granted per namespace only");
    let reader = secret_reader_rules(&docs);
    let get = Grant { group: String::new(), resource: "secrets".into(), verb: "get".into() };
    assert_eq!(reader, BTreeSet::from([get]), "the reader ClusterRole grants get on Secrets only");
    for kind in ["ClusterRoleBinding", "RoleBinding"] {
        for b in of_kind(&docs, kind) {
            assert_ne!(b["roleRef"]["name"], "kube-notify-secret-reader", "default: the chart binds the reader: {b}");
        }
    }
    let everywhere = ["get", "list", "watch"].map(|v| (v.to_string(), Scope::Cluster));
    assert_eq!(secret_verbs("clustersecrets"), BTreeSet::from(everywhere), "clustersecrets: as before");
    for case in ["clustersecrets", "namespaced", "getsecrets", "labelledsecrets", "minimal"] {
        let docs = rendered(case);
        let names: Vec<&Value> = of_kind(&docs, "ClusterRole")
            .into_iter()
            .map(|r| &r["metadata"]["name"])
            .filter(|n| n.as_str().is_some_and(|n| n.ends_with("-secret-reader")))
            .collect();
        assert!(names.is_empty(), "{case}: a reader ClusterRole without secretReadScope namespaces: {names:?}");
    }
}

/// secretAccess get grants `get` on Secrets and nothing that lists or
/// watches them; watch and labelled grant list and watch (RBAC cannot
/// restrict them to a label).
#[test]
#[ignore = "needs target/chart-render from scripts/chart-render"]
fn secret_access_get_grants_no_list_or_watch_of_secrets() {
    let get_only = secret_verbs("getsecrets");
    assert_eq!(get_only, BTreeSet::from([("get".to_string(), Scope::Cluster)]), "getsecrets: {get_only:?}");
    for case in ["clustersecrets", "labelledsecrets"] {
        let verbs: BTreeSet<String> = secret_verbs(case).into_iter().map(|(v, _)| v).collect();
        assert_eq!(verbs, BTreeSet::from(["get".into(), "list".into(), "watch".into()]), "{case}");
    }
    let notes = read(&render_dir().join("labelledsecrets.NOTES.txt"));
    assert!(notes.contains("label secret slack-alerts kube-notify.io/secret=true"), "{notes}");
    assert!(!read(&render_dir().join("default.NOTES.txt")).contains("kube-notify.io/secret"));
}

/// The user the chart's ServiceAccount authenticates as.
fn operator_user(docs: &[Value]) -> String {
    let deployment: Deployment = one(docs, "Deployment", "default");
    let sa = deployment.spec.unwrap().template.spec.unwrap().service_account_name.unwrap();
    format!("system:serviceaccount:{}:{sa}", deployment.metadata.namespace.unwrap())
}

#[test]
#[ignore = "needs target/chart-render (scripts/chart-render) and KUBE_NOTIFY_API_USAGE_DIR from the integration tests"]
fn rbac_allows_every_recorded_api_call_and_grants_nothing_unused() {
    // The integration tests run the operator as the user the chart's
    // ServiceAccount would be (tests/support/operator.rs); other users' calls
    // (tests of the emulation itself) say nothing about the operator.
    let all = recorded_usage();
    let user = operator_user(&rendered("default"));
    let uses: Vec<&Use> = all.iter().filter(|u| u.user == user).collect();
    let users: BTreeSet<&str> = all.iter().map(|u| u.user.as_str()).collect();
    assert!(!uses.is_empty(), "no recorded API call of {user} (the chart's ServiceAccount); users seen: {users:?}");
    let reserved = reserved_grants();
    let used: BTreeSet<&Grant> = uses.iter().map(|u| &u.grant).collect();
    // What needs a cluster-wide grant: cluster-scoped resources, and calls
    // across all namespaces in cluster mode (the integration tests run the
    // operator in cluster mode; in namespaced mode it calls within one).
    let needs_cluster: BTreeSet<(&Grant, bool)> =
        uses.iter().map(|u| (&u.grant, u.all_namespaces || is_cluster_scoped(&u.grant.resource))).collect();
    let mut problems = Vec::new();
    // Most integration tests run in watch mode across all namespaces: what
    // secretReadScope cluster grants. The default (Secrets per namespace) is
    // checked against the same calls below.
    for case in ["clustersecrets", "namespaced"] {
        let grants = granted(&rendered(case), case);
        let allowed = |g: &Grant, cluster_wide: bool| {
            let cluster_wide = if case == "clustersecrets" { cluster_wide } else { is_cluster_scoped(&g.resource) };
            grants.iter().any(|(have, scope)| have == g && (!cluster_wide || *scope == Scope::Cluster))
        };
        for (grant, cluster_wide) in &needs_cluster {
            if !allowed(grant, *cluster_wide) {
                let grant = format!("{grant}{}", if *cluster_wide { " (cluster-wide)" } else { "" });
                problems.push(format!(
                    "{case}: the operator used `{grant}` but the chart does not grant it: add it to the rules in \
                     charts/kube-notify/templates/_helpers.tpl"
                ));
            }
        }
        let distinct: BTreeSet<&Grant> = grants.iter().map(|(g, _)| g).collect();
        for grant in &distinct {
            if !used.contains(*grant) && !reserved.contains_key(*grant) {
                problems.push(format!(
                    "{case}: the chart grants `{grant}`, which nothing used: remove it, or list it in \
                     charts/kube-notify/rbac-reserved.txt with the reason"
                ));
            }
        }
        for grant in reserved.keys() {
            if !distinct.contains(grant) {
                problems.push(format!("{case}: rbac-reserved.txt lists `{grant}`, which the chart does not grant"));
            }
        }
        if case == "namespaced" {
            for (grant, scope) in &grants {
                match scope {
                    Scope::Cluster => assert!(
                        is_cluster_scoped(&grant.resource),
                        "namespaced: `{grant}` is granted cluster-wide; only a Role in team-a may grant it"
                    ),
                    Scope::Namespace(ns) => assert!(
                        ns == "team-a" || (ns == RELEASE_NAMESPACE && grant.resource == "leases"),
                        "namespaced: `{grant}` is granted in namespace {ns}"
                    ),
                }
            }
        }
    }
    // The default: the same grants but none on Secrets, which each
    // namespace grants by binding the reader ClusterRole. That is enough
    // for every Secret call but the watch modes' list and watch (which the
    // chart refuses with secretReadScope namespaces): each Secret `get`
    // named a namespace.
    let default = granted(&rendered("default"), "default");
    let cluster: Vec<(Grant, Scope)> = granted(&rendered("clustersecrets"), "clustersecrets")
        .into_iter()
        .filter(|(g, _)| !(g.group.is_empty() && g.resource == "secrets"))
        .collect();
    assert_eq!(
        default.iter().collect::<BTreeSet<_>>(),
        cluster.iter().collect::<BTreeSet<_>>(),
        "default: the grants of secretReadScope cluster, less those on Secrets"
    );
    let reader = secret_reader_rules(&rendered("default"));
    for u in uses.iter().filter(|u| u.grant.group.is_empty() && u.grant.resource == "secrets") {
        match u.grant.verb.as_str() {
            "get" => {
                assert!(!u.all_namespaces, "default: a Secret `get` without a namespace: {u:?}");
                assert!(reader.contains(&u.grant), "default: the reader ClusterRole does not grant {}", u.grant);
            }
            "list" | "watch" => {} // watch and labelled modes only: secretReadScope cluster
            other => problems.push(format!("default: the operator used `{other}` on Secrets: {u:?}")),
        }
    }
    for grant in reserved.keys().filter(|g| used.contains(g)) {
        eprintln!("note: `{grant}` is listed in rbac-reserved.txt and was used: the line can go");
    }
    eprintln!("{user}: {} recorded kinds of API call, {} distinct grants", uses.len(), used.len());
    assert!(problems.is_empty(), "RBAC does not match what the operator does:\n{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------
// The dashboard and the alerts name metrics the operator exports.

/// The dashboard file the chart puts in its ConfigMap.
const DASHBOARD: &str = "dashboards/kube-notify.json";

/// Every series name a real [`kube_notify::metrics::Metrics`] exports, with
/// one sample of each metric (a family without samples is not rendered):
/// each declared family's samples (`_total` of a counter; `_bucket`, `_sum`
/// and `_count` of a histogram; a gauge's own name) and the sample lines
/// themselves. Also the families, by their declared names.
fn exported_metrics() -> (BTreeSet<String>, BTreeSet<String>) {
    use kube_notify::crd::{IntegrationKey, Service};
    use kube_notify::status::outcome::{Outcome, Report};
    let metrics = kube_notify::metrics::Metrics::default();
    // One sample of each, so the sample lines show the encoded names too.
    metrics.reconciled("NotificationEvent");
    metrics.reconcile_error("NotificationEvent");
    metrics.status_write("NotificationEvent");
    metrics.credential_check(Service::Slack, &kube_notify::notifier::classify::Verdict::Success);
    let report = Report { outcome: Outcome::Delivered, attempts: 1 };
    metrics.delivery(&IntegrationKey::new("n", "a"), Service::Webhook, &report, std::time::Duration::from_secs(1));
    metrics.mentions(Service::Slack, "resolved", 1);
    metrics.ingest_request(&http::Method::POST, Some("/v1/namespaces/{ns}/events"), 201);
    metrics.api_request("get", "secrets", "200".into());
    metrics.api_error("Secret", "500".into());
    let text = metrics.render();
    let mut families = BTreeSet::new();
    let mut series = BTreeSet::new();
    for line in text.lines() {
        if let Some(declared) = line.strip_prefix("# TYPE ") {
            let (name, kind) = declared.split_once(' ').unwrap();
            families.insert(name.to_string());
            match kind {
                "counter" => drop(series.insert(format!("{name}_total"))),
                "histogram" => series.extend(["_bucket", "_sum", "_count"].map(|s| format!("{name}{s}"))),
                "gauge" => drop(series.insert(name.to_string())),
                other => panic!("unexpected metric type {other} of {name}"),
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let name = line.split(['{', ' ']).next().unwrap();
            series.insert(name.to_string());
        }
    }
    assert!(series.contains("kube_notify_deliveries_total"), "{text}");
    assert!(series.contains("kube_notify_integration_state"), "{text}");
    (families, series)
}

/// The metric names a PromQL expression selects: identifiers used as series
/// selectors (alone or before `{`), not functions, aggregations, keywords,
/// label names, durations or Grafana variables. Grafana's
/// `label_values(metric, label)` names its metric.
fn promql_metric_names(expr: &str) -> BTreeSet<String> {
    let re = |r: &str| regex::Regex::new(r).unwrap();
    let expr =
        re(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?\s*,\s*\w+\s*\)").replace_all(expr, "$1$2");
    let expr = re(r#""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`"#).replace_all(&expr, "\"\"");
    let expr = re(r"\{[^}]*\}").replace_all(&expr, "{}");
    let expr = re(r"\[[^\]]*\]").replace_all(&expr, "[]");
    // Grouping lists go, with their keyword: `sum by (a) (x)` reads as `sum (x)`.
    let expr = re(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)").replace_all(&expr, " ");
    let expr = re(r"\$\{[^}]*\}|\$\w+").replace_all(&expr, "0");
    const KEYWORDS: [&str; 12] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "atan2",
    ];
    let mut names = BTreeSet::new();
    for m in re(r"[a-zA-Z_:][a-zA-Z0-9_:]*").find_iter(&expr) {
        let before = expr[..m.start()].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_digit() || c == '.') {
            continue; // a duration or a number (5m, 1e3)
        }
        let number = ["inf", "nan"].contains(&m.as_str().to_ascii_lowercase().as_str());
        if expr[m.end()..].trim_start().starts_with('(') || KEYWORDS.contains(&m.as_str()) || number {
            continue;
        }
        names.insert(m.as_str().to_string());
    }
    names
}

/// Every PromQL expression of a Grafana dashboard: its panels' (and rows'
/// panels') targets and its query variables.
fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    fn panels(list: &Value, out: &mut Vec<String>) {
        for p in list.as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                out.extend(t["expr"].as_str().map(String::from));
            }
            panels(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    panels(&dashboard["panels"], &mut out);
    for v in dashboard["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] == "query" {
            let q = v["query"]["query"].as_str().or(v["query"].as_str()).expect("a query variable's query");
            out.push(q.to_string());
        }
    }
    out
}

/// Each expression names at least one metric, and only metrics the operator exports.
fn check_queries(queries: &[String], origin: &str) -> BTreeSet<String> {
    let (_, exported) = exported_metrics();
    let mut used = BTreeSet::new();
    assert!(!queries.is_empty(), "{origin}: no queries");
    for q in queries {
        let names = promql_metric_names(q);
        assert!(!names.is_empty(), "{origin}: {q:?} names no metric");
        for name in names {
            assert!(
                exported.contains(&name),
                "{origin}: {q:?} names {name}, which the operator does not export (it exports {exported:?})"
            );
            used.insert(name);
        }
    }
    used
}

#[test]
fn promql_metric_names_are_the_selected_series() {
    let names = |e: &str| promql_metric_names(e).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(
            r#"sum by (namespace, le) (rate(a_total{outcome=~"dead|x", name!="b"}[$__rate_interval] offset 5m)) > 0 unless on (name) b"#
        ),
        ["a_total", "b"]
    );
    assert_eq!(
        names(r#"histogram_quantile(0.99, sum by (le) (rate(c_bucket[5m]))) / ignoring(x) group_left d"#),
        ["c_bucket", "d"]
    );
    assert_eq!(names("label_values(kube_notify_x, namespace)"), ["kube_notify_x"]);
    assert_eq!(names("count(max by (namespace) (e{state=\"ready\"}) == 1) or vector(0)"), ["e"]);
    assert_eq!(names("absent(f)"), ["f"]);
}

#[test]
fn dashboard_queries_name_exported_metrics() {
    let path = chart_dir().join(DASHBOARD);
    let dashboard: Value = serde_json::from_str(&read(&path)).expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "kube-notify");
    let used = check_queries(&dashboard_queries(&dashboard), DASHBOARD);
    // The dashboard shows every metric family.
    let (families, _) = exported_metrics();
    for family in families {
        assert!(
            used.iter().any(|u| u
                .strip_prefix(&family)
                .is_some_and(|s| ["", "_total", "_bucket", "_sum", "_count"].contains(&s))),
            "{DASHBOARD} shows nothing of {family}"
        );
    }
    // A renamed metric is caught.
    let renamed = vec!["sum(rate(kube_notify_delivery_total[5m]))".to_string()];
    assert!(std::panic::catch_unwind(|| check_queries(&renamed, "renamed")).is_err());
}

#[test]
#[ignore = "needs target/chart-render from scripts/chart-render"]
fn alerts_and_dashboard_name_exported_metrics() {
    for case in CASES {
        let docs = rendered(case);
        if case != "namespaced" {
            // Off by default.
            assert!(of_kind(&docs, "PrometheusRule").is_empty() && of_kind(&docs, "ConfigMap").is_empty(), "{case}");
            continue;
        }
        let rules = of_kind(&docs, "PrometheusRule");
        assert_eq!(rules.len(), 1, "{case}: prometheusRule.enabled");
        assert_eq!(rules[0]["metadata"]["labels"]["release"], "prometheus", "{case}: prometheusRule.labels");
        let mut alerts = BTreeSet::new();
        let mut exprs = Vec::new();
        for g in rules[0]["spec"]["groups"].as_array().unwrap() {
            for rule in g["rules"].as_array().unwrap() {
                alerts.insert(rule["alert"].as_str().unwrap().to_string());
                assert_eq!(rule["labels"]["team"], "platform", "{case}: prometheusRule.alertLabels");
                exprs.push(rule["expr"].as_str().unwrap().to_string());
            }
        }
        for alert in [
            "KubeNotifyIntegrationAutoDisabled",
            "KubeNotifyIntegrationFailing",
            "KubeNotifyIntegrationNotReady",
            "KubeNotifyNoLeader",
            "KubeNotifyMetricsAbsent",
        ] {
            assert!(alerts.contains(alert), "{case}: no {alert} in {alerts:?}");
        }
        let used = check_queries(&exprs, &format!("{case}: PrometheusRule"));
        assert!(
            used.contains("kube_notify_integration_state")
                && used.contains("kube_notify_integration_consecutive_errors")
        );

        let maps = of_kind(&docs, "ConfigMap");
        assert_eq!(maps.len(), 1, "{case}: grafanaDashboard.enabled");
        let map = maps[0];
        assert_eq!(map["metadata"]["labels"]["grafana_dashboard"], "1", "{case}: the sidecar's label by default");
        assert_eq!(map["metadata"]["namespace"], "monitoring", "{case}: grafanaDashboard.namespace");
        assert_eq!(map["metadata"]["annotations"]["grafana_folder"], "kube-notify");
        let json = map["data"]["kube-notify.json"].as_str().expect("the dashboard in the ConfigMap");
        let in_map: Value = serde_json::from_str(json).expect("the ConfigMap's dashboard is JSON");
        let file: Value = serde_json::from_str(&read(&chart_dir().join(DASHBOARD))).unwrap();
        assert_eq!(in_map, file, "{case}: the ConfigMap holds {DASHBOARD}");
        check_queries(&dashboard_queries(&in_map), &format!("{case}: ConfigMap"));
    }
}

#[test]
fn readme_lists_every_metric() {
    let readme = read(&root().join("README.md"));
    let (families, _) = exported_metrics();
    for family in families {
        assert!(readme.contains(&format!("`{family}")), "README.md does not list {family}");
    }
}
