"""Render, lint and schema-check charts/kube-notify with Helm's engine.

Run through scripts/chart-render, which provides the virtualenv with the
pinned helm-python-sdk (Helm's Go SDK behind a C ABI). Nothing here talks to
a cluster or the network.

For every case below it writes, under target/chart-render/:
  <case>.yaml         every rendered manifest, as `helm template` prints them
  <case>.NOTES.txt    the rendered NOTES.txt
  <case>.values.json  the values the case set (tests/chart.rs compares them)
Then it lints the chart (strict: warnings fail) with each case's values, and
checks that values.schema.json rejects wrong values with the right path.
Exits non-zero on any failure.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import helm_python as helm

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "kube-notify"
OUT = ROOT / "target" / "chart-render"
RELEASE = "kube-notify"
NAMESPACE = "kube-notify"

# name -> values. tests/chart.rs knows these names and what they set.
CASES: dict[str, dict] = {
    # Everything at its default: cluster mode, ClusterRole; Secrets per
    # namespace (secretReadScope: namespaces, so secretAccess get).
    "default": {},
    # Cluster-wide Secret access, as before secretReadScope (secretAccess watch).
    "clustersecrets": {"secretReadScope": "cluster"},
    # Namespaced mode with the optional objects switched on.
    "namespaced": {
        "watchNamespace": "team-a",
        "config": {
            "logFormat": "json",
            "allowEndpoints": ["http://alerts.team-a.svc:9000/hooks/", "https://hooks.internal.example/"],
            "revalidatePeriod": "30m",
            "httpTimeout": "5s",
            "eventDeadline": "2h",
            "eventTtl": "72h",
            "deliveryAttempts": 3,
            "retryMaxDelay": "2m",
            "ingestion": {
                "maxBodyBytes": 4194304,
                "rate": 10,
                "sendTimeout": "10s",
                "reviewCacheTtl": "0s",
                "tokenAudience": "notify.team-a.example",
            },
        },
        "image": {"digest": "sha256:" + "0123456789abcdef" * 4},
        "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
        "grafanaDashboard": {"enabled": True, "namespace": "monitoring", "annotations": {"grafana_folder": "kube-notify"}},
        "prometheusRule": {"enabled": True, "labels": {"release": "prometheus"}, "alertLabels": {"team": "platform"}},
        "networkPolicy": {
            "enabled": True,
            "httpFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "team-a"}}}],
            "metricsFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
            "egress": [{"ports": [{"port": 443, "protocol": "TCP"}]}],
        },
        "podDisruptionBudget": {"minAvailable": 1},
        "extraArgs": ["--validation-rate=2"],
    },
    # Cluster-wide Secret access without any list or watch of Secrets.
    "getsecrets": {"secretReadScope": "cluster", "secretAccess": "get", "secretRereadPeriod": "2m"},
    # Only labelled Secrets watched (the same RBAC as watch).
    "labelledsecrets": {"secretReadScope": "cluster", "secretAccess": "labelled"},
    # HTTPS on the ingestion port with an existing kubernetes.io/tls Secret.
    "tlssecret": {"tls": {"mode": "secret", "secretName": "kube-notify-ingest-tls"}},
    # HTTPS with a cert-manager Certificate for the Service's DNS names.
    "tlscertmanager": {
        "tls": {
            "mode": "certManager",
            "certManager": {
                "issuerRef": {"name": "cluster-ca", "kind": "ClusterIssuer"},
                "duration": "2160h",
                "extraDnsNames": ["notify.example.com"],
            },
        },
    },
    # Every optional object off; the ServiceAccount and RBAC managed elsewhere.
    "minimal": {
        "serviceAccount": {"create": False, "name": "existing-operator"},
        "rbac": {"create": False},
        "service": {"enabled": False},
        "metricsService": {"enabled": False},
        "podDisruptionBudget": {"enabled": False},
        "podSecurityContext": {"runAsUser": None, "runAsGroup": None},
        "config": {"ingestion": {"reviewCacheSize": 1000000}},
    },
}

# Wrong values the schema must reject: (values, the path Helm must name).
WRONG_VALUES: list[tuple[dict, str]] = [
    ({"replicaCount": "2"}, "/replicaCount"),
    ({"replicas": 2}, "replicas"),  # a misspelled key
    ({"config": {"logFormat": "xml"}}, "/config/logFormat"),
    ({"config": {"allowEndpoints": "https://hooks.internal.example/"}}, "/config/allowEndpoints"),
    ({"config": {"allowEndpoints": ["hooks.internal.example"]}}, "/config/allowEndpoints/0"),
    ({"config": {"revalidatePeriod": 3600}}, "/config/revalidatePeriod"),
    ({"config": {"eventTtl": "one day"}}, "/config/eventTtl"),
    ({"watchNamespace": "Team_A"}, "/watchNamespace"),
    ({"secretAccess": "list"}, "/secretAccess"),
    ({"secretReadScope": "everywhere"}, "/secretReadScope"),
    ({"secretRereadPeriod": 60}, "/secretRereadPeriod"),
    ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    ({"podSecurityContext": {"runAsUser": 0}}, "/podSecurityContext/runAsUser"),
    ({"ports": {"http": 70000}}, "/ports/http"),
    ({"config": {"ingestion": {"maxBodyBytes": "1Mi"}}}, "/config/ingestion/maxBodyBytes"),
    ({"prometheusRule": {"failingAfter": 0}}, "/prometheusRule/failingAfter"),
    ({"grafanaDashboard": {"labels": {"grafana_dashboard": 1}}}, "/grafanaDashboard/labels/grafana_dashboard"),
    ({"tls": {"mode": "on"}}, "/tls/mode"),
    ({"tls": {"mode": "secret"}}, "/tls/secretName"),
    ({"tls": {"mode": "certManager"}}, "/tls/certManager/issuerRef/name"),
    ({"tls": {"secretName": "Not_A_Name"}}, "/tls/secretName"),
    ({"tls": {"certManager": {"duration": 90}}}, "/tls/certManager/duration"),
]

# Values the schema accepts but the templates refuse: (values, what the
# error must say).
FAILING_VALUES: list[tuple[dict, str]] = [
    # list and watch of Secrets cannot be granted per namespace.
    ({"secretAccess": "watch"}, "secretAccess watch watches Secrets in every namespace"),
    ({"secretAccess": "labelled", "rbac": {"create": False}}, "set secretAccess get (or leave it empty), or secretReadScope cluster"),
]


def fail(message: str) -> None:
    print(f"chart-render: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def render_case(chart: helm.Chart, name: str, values: dict) -> None:
    try:
        manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    except helm.HelmError as e:
        fail(f"case {name}: rendering failed: {e}")
    docs = []
    notes = ""
    for path in sorted(manifests):
        text = manifests[path]
        if path.endswith("/NOTES.txt"):
            notes = text
            continue
        if not text.strip():
            continue  # a template switched off by its values
        docs.append(f"---\n# Source: {path}\n{text.rstrip()}\n")
    if not docs:
        fail(f"case {name}: nothing rendered")
    (OUT / f"{name}.yaml").write_text("".join(docs))
    (OUT / f"{name}.NOTES.txt").write_text(notes)
    (OUT / f"{name}.values.json").write_text(json.dumps(values, indent=2) + "\n")
    print(f"chart-render: {name}: {len(docs)} manifests -> {(OUT / f'{name}.yaml').relative_to(ROOT)}")


def lint_case(name: str, values: dict) -> None:
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE)
    problems = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
    for m in report.get("messages", []):
        if m.get("severity", 0) < 2:
            print(f"chart-render: lint {name}: note: {m.get('path')}: {m.get('error')}")
    if problems or report.get("errors"):
        lines = [f"{m.get('path')}: {m.get('error')}" for m in problems] or report.get("errors", [])
        fail(f"lint {name}:\n  " + "\n  ".join(lines))


def check_rejections(chart: helm.Chart) -> None:
    for values, path in WRONG_VALUES:
        try:
            chart.render(values, name=RELEASE, namespace=NAMESPACE)
        except helm.HelmValuesError as e:
            if path not in str(e):
                fail(f"values {json.dumps(values)} were rejected, but the error does not name {path}: {e}")
            continue
        except helm.HelmError as e:
            fail(f"values {json.dumps(values)} failed to render, but not by the schema: {e}")
        fail(f"values.schema.json accepted wrong values {json.dumps(values)}")
    print(f"chart-render: values.schema.json rejects all {len(WRONG_VALUES)} wrong values")
    for values, needle in FAILING_VALUES:
        try:
            chart.render(values, name=RELEASE, namespace=NAMESPACE)
        except helm.HelmValuesError as e:
            fail(f"values {json.dumps(values)} were rejected by the schema, not by the templates: {e}")
        except helm.HelmError as e:
            if needle not in str(e):
                fail(f"values {json.dumps(values)} failed to render, but the error does not say {needle!r}: {e}")
            continue
        fail(f"the chart rendered values it must refuse: {json.dumps(values)}")
    print(f"chart-render: the templates refuse all {len(FAILING_VALUES)} conflicting values")


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    print(f"chart-render: Helm SDK {helm.helm_sdk_version()} (helm-c {helm.helm_c_version()})")
    with helm.Chart.load(CHART) as chart:
        for name, values in CASES.items():
            render_case(chart, name, values)
        check_rejections(chart)
    for name, values in CASES.items():
        lint_case(name, values)
    print("chart-render: ok")


if __name__ == "__main__":
    main()
