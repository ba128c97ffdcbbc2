{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "fastagentic.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: the release name, plus the chart name unless it already contains it. */}}
{{- define "fastagentic.fullname" -}}
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

{{- define "fastagentic.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fastagentic.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "fastagentic.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "fastagentic.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "fastagentic.gatewayImage" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The worker's image: its own when set, else the gateway image (which holds the example worker). */}}
{{- define "fastagentic.workerImage" -}}
{{- if .Values.worker.image.repository }}
{{- printf "%s:%s" .Values.worker.image.repository (required "worker.image.tag is required with worker.image.repository" .Values.worker.image.tag) }}
{{- else }}
{{- include "fastagentic.gatewayImage" . }}
{{- end }}
{{- end }}

{{/* Whether the replicas share a run store (PostgreSQL) and a bus (NATS). */}}
{{- define "fastagentic.storeSet" -}}
{{- if or .Values.store.url .Values.store.existingSecret }}true{{ end }}
{{- end }}

{{- define "fastagentic.busSet" -}}
{{- if or .Values.bus.url .Values.bus.existingSecret }}true{{ end }}
{{- end }}

{{/*
Refuse configurations the gateway would refuse at start, or that would split one release into
gateways that do not see each other's runs. Included by the Deployment (always rendered), so
`helm template` and `helm install` fail before anything is applied.
*/}}
{{- define "fastagentic.validate" -}}
{{- $store := include "fastagentic.storeSet" . }}
{{- $bus := include "fastagentic.busSet" . }}
{{- if and .Values.store.url .Values.store.existingSecret }}
{{- fail "store.url and store.existingSecret are both set: give the PostgreSQL URL one way" }}
{{- end }}
{{- if and .Values.bus.url .Values.bus.existingSecret }}
{{- fail "bus.url and bus.existingSecret are both set: give the NATS URL one way" }}
{{- end }}
{{- if and .Values.store.url (not (or (hasPrefix "postgresql://" .Values.store.url) (hasPrefix "postgres://" .Values.store.url))) }}
{{- fail (printf "store.url must be a postgresql:// (or postgres://) URL, not %q" .Values.store.url) }}
{{- end }}
{{- if and .Values.bus.url (not (or (hasPrefix "nats://" .Values.bus.url) (hasPrefix "tls://" .Values.bus.url))) }}
{{- fail (printf "bus.url must be a nats:// (or tls://) URL, not %q" .Values.bus.url) }}
{{- end }}
{{- if and .Values.bus.prefix (not (regexMatch "^[A-Za-z0-9_-]{1,64}$" .Values.bus.prefix)) }}
{{- fail (printf "bus.prefix must be 1 to 64 letters, digits, '_' or '-', not %q" .Values.bus.prefix) }}
{{- end }}
{{- if gt (int .Values.replicaCount) 1 }}
{{- if not (and $store $bus) }}
{{- fail (printf "replicaCount is %v: several gateway replicas need a shared PostgreSQL run store (store.url or store.existingSecret) and a shared NATS JetStream bus (bus.url or bus.existingSecret). Set both, or keep replicaCount=1 (SQLite in the pod)." .Values.replicaCount) }}
{{- end }}
{{- end }}
{{- if and $bus (not $store) }}
{{- fail "bus is set without store: replicas on a NATS bus must share a PostgreSQL run store (store.url or store.existingSecret)" }}
{{- end }}
{{- if and .Values.store.migrateJob.enabled (not $store) }}
{{- fail "store.migrateJob.enabled needs a PostgreSQL store (store.url or store.existingSecret); SQLite is migrated when the gateway opens it" }}
{{- end }}
{{- include "fastagentic.validateAuth" . }}
{{- include "fastagentic.validateMetrics" . }}
{{- end }}

{{/* The metrics, ServiceMonitor, PrometheusRule and autoscaling values. */}}
{{- define "fastagentic.validateMetrics" -}}
{{- $metrics := .Values.metrics }}
{{- if and $metrics.serviceMonitor.enabled (not $metrics.enabled) }}
{{- fail "metrics.serviceMonitor.enabled needs metrics.enabled (the gateway's metrics port and its Service)" }}
{{- end }}
{{- $scale := .Values.autoscaling }}
{{- if $scale.enabled }}
{{- if not $metrics.enabled }}
{{- fail "autoscaling.enabled needs metrics.enabled: the autoscaler reads fastagentic_queue_depth" }}
{{- end }}
{{- if not (has (toString $scale.kind) (list "keda" "hpa")) }}
{{- fail (printf "autoscaling.kind must be \"keda\" (a KEDA ScaledObject) or \"hpa\" (an HPA on an external metric), not %q" (toString $scale.kind)) }}
{{- end }}
{{- if or (lt (int $scale.minReplicas) 1) (lt (int $scale.maxReplicas) (int $scale.minReplicas)) }}
{{- fail (printf "autoscaling needs 1 <= minReplicas <= maxReplicas, not %v and %v" $scale.minReplicas $scale.maxReplicas) }}
{{- end }}
{{- if and (gt (int $scale.maxReplicas) 1) (not (and (include "fastagentic.storeSet" .) (include "fastagentic.busSet" .))) }}
{{- fail (printf "autoscaling up to maxReplicas %v: %s (store.url or store.existingSecret) and a shared NATS JetStream bus (bus.url or bus.existingSecret)" $scale.maxReplicas "several gateway replicas need a shared PostgreSQL run store") }}
{{- end }}
{{- if le (float64 $scale.queueDepthPerReplica) 0.0 }}
{{- fail "autoscaling.queueDepthPerReplica must be above 0" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The authentication values: what the gateway's settings loader would refuse, refused at render. */}}
{{- define "fastagentic.validateAuth" -}}
{{- $auth := .Values.auth }}
{{- if not (has (toString $auth.mode) (list "required" "none")) }}
{{- fail (printf "auth.mode must be \"required\" or \"none\", not %q" (toString $auth.mode)) }}
{{- end }}
{{- if not (kindIs "slice" $auth.oidcIssuers) }}
{{- fail "auth.oidcIssuers must be a list of issuers (each with issuer and audiences)" }}
{{- end }}
{{- range $index, $issuer := $auth.oidcIssuers }}
{{- if not (and (kindIs "map" $issuer) $issuer.issuer $issuer.audiences) }}
{{- fail (printf "auth.oidcIssuers[%d] needs issuer and audiences (a list)" $index) }}
{{- end }}
{{- end }}
{{- if not (kindIs "map" $auth.roles) }}
{{- fail "auth.roles must be a map of role name to a list of scopes" }}
{{- end }}
{{- if not $auth.workerToken.key }}
{{- fail "auth.workerToken.key must name the key of the worker token in its Secret" }}
{{- end }}
{{- $managed := list "FASTAGENTIC_AUTH" "FASTAGENTIC_OIDC_ISSUERS" "FASTAGENTIC_AUTH_ROLES" "FASTAGENTIC_WORKER_TOKEN" }}
{{- $given := concat (keys .Values.gateway.env) (keys .Values.worker.env) }}
{{- range (concat .Values.gateway.extraEnv .Values.worker.extraEnv) }}
{{- $given = append $given .name }}
{{- end }}
{{- range $given }}
{{- if has . $managed }}
{{- fail (printf "%s is set by the chart from auth.* (auth.mode, auth.oidcIssuers, auth.roles, auth.workerToken): do not set it in gateway.env, worker.env or their extraEnv" .) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The Secret holding the worker token: the user's, or the one the chart creates. */}}
{{- define "fastagentic.workerTokenSecretName" -}}
{{- if .Values.auth.workerToken.existingSecret }}
{{- .Values.auth.workerToken.existingSecret }}
{{- else }}
{{- printf "%s-worker-token" (include "fastagentic.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
The generated worker token, base64-encoded as in a Secret's data: the one already in the cluster
(`lookup`, so upgrades keep it) or a new random one. Called with the root context; computed once per
render and remembered on it (not in .Values, which Helm may store), so the Secret and the pod's
checksum annotation agree.
*/}}
{{- define "fastagentic.generatedWorkerToken" -}}
{{- if not (hasKey . "fastagenticWorkerToken") }}
{{- $token := "" }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "fastagentic.workerTokenSecretName" .) }}
{{- if and $existing (hasKey $existing "data") }}
{{- $token = index $existing.data .Values.auth.workerToken.key | default "" }}
{{- end }}
{{- if not $token }}
{{- $token = randAlphaNum 48 | b64enc }}
{{- end }}
{{- $_ := set . "fastagenticWorkerToken" $token }}
{{- end }}
{{- get . "fastagenticWorkerToken" }}
{{- end }}

{{/* The authentication settings of the gateway, as EnvVar objects. */}}
{{- define "fastagentic.authEnv" -}}
- name: FASTAGENTIC_AUTH
  value: {{ .Values.auth.mode | quote }}
{{- with .Values.auth.oidcIssuers }}
- name: FASTAGENTIC_OIDC_ISSUERS
  value: {{ toJson . | quote }}
{{- end }}
{{- with .Values.auth.roles }}
- name: FASTAGENTIC_AUTH_ROLES
  value: {{ toJson . | quote }}
{{- end }}
{{ include "fastagentic.workerTokenEnv" . }}
{{- end }}

{{/* FASTAGENTIC_WORKER_TOKEN from the Secret: the same in the gateway and in the worker. */}}
{{- define "fastagentic.workerTokenEnv" -}}
- name: FASTAGENTIC_WORKER_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "fastagentic.workerTokenSecretName" . }}
      key: {{ .Values.auth.workerToken.key }}
{{- end }}

{{/*
The run store and bus settings, as EnvVar objects: PostgreSQL URL and password, NATS URL and prefix.
Shared by the gateway and the migration Job so both reach the same database.
*/}}
{{- define "fastagentic.storeEnv" -}}
{{- if .Values.store.existingSecret }}
- name: FASTAGENTIC_STORE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.store.existingSecret }}
      key: {{ .Values.store.existingSecretKey }}
{{- else if .Values.store.url }}
- name: FASTAGENTIC_STORE_URL
  value: {{ .Values.store.url | quote }}
{{- end }}
{{- if .Values.store.passwordSecret.name }}
# libpq reads the password from the environment: the URL can stay password-free.
- name: PGPASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.store.passwordSecret.name }}
      key: {{ .Values.store.passwordSecret.key }}
{{- end }}
{{- end }}

{{- define "fastagentic.busEnv" -}}
{{- if .Values.bus.existingSecret }}
- name: FASTAGENTIC_BUS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.bus.existingSecret }}
      key: {{ .Values.bus.existingSecretKey }}
{{- else if .Values.bus.url }}
- name: FASTAGENTIC_BUS_URL
  value: {{ .Values.bus.url | quote }}
{{- end }}
{{- if .Values.bus.prefix }}
- name: FASTAGENTIC_BUS_PREFIX
  value: {{ .Values.bus.prefix | quote }}
{{- end }}
{{- end }}
