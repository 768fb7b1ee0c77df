{{/* The chart name, or nameOverride. */}}
{{- define "kube-notify.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name of the release's resources (at most 63 characters). */}}
{{- define "kube-notify.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* chart-version, for the helm.sh/chart label. */}}
{{- define "kube-notify.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "kube-notify.labels" -}}
helm.sh/chart: {{ include "kube-notify.chart" . }}
{{ include "kube-notify.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kube-notify
{{- end }}

{{/* Labels that select the operator pods. */}}
{{- define "kube-notify.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kube-notify.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "kube-notify.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kube-notify.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference: repository@digest, or repository:tag (default appVersion). */}}
{{- define "kube-notify.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The name of cluster-scoped objects (ClusterRole, ClusterRoleBinding). In
     namespaced mode it names the watched namespace, so that one release per
     team namespace does not clash with another team's. */}}
{{- define "kube-notify.clusterName" -}}
{{- if .Values.watchNamespace }}
{{- printf "%s-%s" (include "kube-notify.fullname" .) .Values.watchNamespace | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- include "kube-notify.fullname" . }}
{{- end }}
{{- end }}

{{/* "true" when Secrets are granted per namespace, by RoleBindings the
     namespaces create to the reader ClusterRole (secretReadScope namespaces,
     cluster mode); empty otherwise. */}}
{{- define "kube-notify.secretsPerNamespace" -}}
{{- if and (not .Values.watchNamespace) (eq .Values.secretReadScope "namespaces") }}true{{ end }}
{{- end }}

{{/* The ClusterRole (get on Secrets) a namespace binds to let the operator
     read its Secrets (secretReadScope namespaces). */}}
{{- define "kube-notify.secretReaderName" -}}
{{- printf "%s-secret-reader" (include "kube-notify.clusterName" .) }}
{{- end }}

{{/* The secretAccess the operator runs with: the value, or when empty get
     with Secrets granted per namespace and watch otherwise. watch and
     labelled need list and watch on Secrets, which no RoleBinding can grant
     across namespaces: they fail with secretReadScope namespaces. */}}
{{- define "kube-notify.secretAccess" -}}
{{- $perNamespace := include "kube-notify.secretsPerNamespace" . }}
{{- $access := .Values.secretAccess }}
{{- if not $access }}
{{- $access = ternary "get" "watch" (eq $perNamespace "true") }}
{{- else if and $perNamespace (ne $access "get") }}
{{- fail (printf "secretAccess %s watches Secrets in every namespace (RBAC list and watch), which secretReadScope namespaces (the default) does not grant: set secretAccess get (or leave it empty), or secretReadScope cluster for cluster-wide Secret access" $access) }}
{{- end }}
{{- $access }}
{{- end }}

{{/* The RBAC rules on namespaced resources: a ClusterRole's rules, or a Role's
     in namespaced mode (watchNamespace). Exactly the verbs the operator uses;
     rules for upcoming features are marked so, and are listed in
     rbac-reserved.txt, which tests/chart.rs reads. */}}
{{- define "kube-notify.namespacedRules" -}}
# Integrations: watched (list + watch) by both controllers; read fresh (get)
# before the delivery counters are written to their status.
- apiGroups: ["kube-notify.io"]
  resources: ["notificationintegrations"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["kube-notify.io"]
  resources: ["notificationintegrations/status"]
  verbs: ["update"]
# Events: watched, read fresh before each delivery, their delivery record
# written to status, deleted after their TTL once finished; created and read
# for callers of the HTTP ingestion once their own RBAC allowed it.
- apiGroups: ["kube-notify.io"]
  resources: ["notificationevents"]
  verbs: ["get", "list", "watch", "create", "delete"]
- apiGroups: ["kube-notify.io"]
  resources: ["notificationevents/status"]
  verbs: ["update"]
# Contacts: watched (list + watch) on every replica; mentions are resolved
# from the watch cache.
- apiGroups: ["kube-notify.io"]
  resources: ["notificationcontacts"]
  verbs: ["list", "watch"]
{{- $secretAccess := include "kube-notify.secretAccess" . }}
{{- if include "kube-notify.secretsPerNamespace" . }}
# Secrets: none here (secretReadScope: namespaces). Each namespace that opts in
# binds the ClusterRole {{ include "kube-notify.secretReaderName" . }} (get).
{{- else if eq $secretAccess "get" }}
# Secrets: the Secret an integration names read, in the integration's own
# namespace, and read again every secretRereadPeriod (secretAccess: get).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
{{- else }}
# Secrets: their metadata watched (to notice changed credentials; only those
# labelled kube-notify.io/secret=true with secretAccess: labelled, which RBAC
# cannot express), and the Secret an integration names read, in the
# integration's own namespace.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
{{- end }}
# Kubernetes Events about integrations and events (kube-runtime's Recorder
# creates them, and patches one that repeats).
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/* Rules on cluster-scoped resources, which only a ClusterRole can grant. */}}
{{- define "kube-notify.clusterRules" -}}
# HTTP ingestion: authenticate callers' bearer tokens ...
- apiGroups: ["authentication.k8s.io"]
  resources: ["tokenreviews"]
  verbs: ["create"]
# ... and ask whether they may create (or read) notification events there.
- apiGroups: ["authorization.k8s.io"]
  resources: ["subjectaccessreviews"]
  verbs: ["create"]
{{- end }}

{{/*
The kubernetes.io/tls Secret mounted for TLS on the ingestion port: tls.secretName,
or <fullname>-tls for the one a cert-manager Certificate writes. Fails with the
value to set when TLS is on without what it needs.
*/}}
{{- define "kube-notify.tlsSecretName" -}}
{{- if eq .Values.tls.mode "secret" -}}
{{- required "tls.secretName: the kubernetes.io/tls Secret to mount with tls.mode secret" .Values.tls.secretName -}}
{{- else -}}
{{- default (printf "%s-tls" (include "kube-notify.fullname" .)) .Values.tls.secretName -}}
{{- end -}}
{{- end }}

{{/*
Where the TLS Secret is mounted in the operator's container.
*/}}
{{- define "kube-notify.tlsDir" -}}
/etc/kube-notify/tls
{{- end }}
