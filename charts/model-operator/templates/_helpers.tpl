{{/*
Names, labels and the RBAC rules. Every define is prefixed with the chart name.
*/}}

{{- define "model-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: <release>-<chart>, or the release name alone when it already contains the chart
name. Truncated to 55 characters so that the Service "<fullname>-metrics" fits 63. */}}
{{- define "model-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 55 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 55 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 55 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* A value of `config` as an environment string: whole numbers as integers (Helm reads a
values file's numbers as float64, and toString writes 10485760 as 1.048576e+07). */}}
{{- define "model-operator.envValue" -}}
{{- if and (kindIs "float64" .) (eq . (floor .)) }}{{ int64 . }}{{ else }}{{ toString . }}{{ end }}
{{- end }}

{{- define "model-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "model-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "model-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "model-operator.labels" -}}
{{ include "model-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ default .Chart.AppVersion .Values.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: {{ .Values.partOf }}
app.kubernetes.io/component: operator
helm.sh/chart: {{ include "model-operator.chart" . }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "model-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "model-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "model-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* True (non-empty) when the operator watches every namespace (ClusterRole mode). */}}
{{- define "model-operator.clusterWide" -}}
{{- if not .Values.watchNamespaces -}}
true
{{- end }}
{{- end }}

{{/*
The namespaced rules: everything the operator does inside a namespace that holds
ModelDeployments. The same list serves the ClusterRole and each Role. Every verb is one a
request of the operator (operator/modelops_operator/kube.py) or of kopf makes; nothing else.
*/}}
{{- define "model-operator.namespacedRules" -}}
# the ModelDeployments: kopf lists, watches and patches them (annotations, finalizer, status);
# the operator reads them, writes status with a conditional PUT and removes the request
# annotation of `kubectl modelops` once consumed (a JSON patch). /finalizers: owner
# references with blockOwnerDeletion on what it applies.
- apiGroups: [modelops.io]
  resources: [modeldeployments]
  verbs: [get, list, watch, patch]
- apiGroups: [modelops.io]
  resources: [modeldeployments/status]
  verbs: [patch, update]
- apiGroups: [modelops.io]
  resources: [modeldeployments/finalizers]
  verbs: [update]
# what the model-service chart renders: server-side applied (patch, and create when new),
# read back, listed by the owner label and pruned; the Deployments also watched (kopf), so a
# change of a track's readiness wakes its ModelDeployment at once
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [services, serviceaccounts, configmaps]
  verbs: [get, list, create, patch, delete]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, create, patch, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, create, patch, delete]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, create, patch, delete]
- apiGroups: [monitoring.coreos.com]
  resources: [servicemonitors, prometheusrules]
  verbs: [get, list, create, patch, delete]
# KEDA's ScaledObject for spec.autoscaling (when KEDA is installed)
- apiGroups: [keda.sh]
  resources: [scaledobjects]
  verbs: [get, list, create, patch, delete]
# the HTTPRoute a Gateway API rollout weighs: read, and its rules server-side applied
# (never created: the route is the user's)
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes]
  verbs: [get, patch]
# rollout progress of the stable and canary tracks (the pods of a Deployment not yet ready)
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
# Events on the ModelDeployments (core v1, posted by the operator and by kopf)
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end }}

{{/*
Read what decides whether our monitoring objects are picked up: the Prometheus objects
(their ServiceMonitor and rule selectors) and Deployments (the Grafana sidecar's label).
*/}}
{{- define "model-operator.monitoringReadRules" -}}
- apiGroups: [monitoring.coreos.com]
  resources: [prometheuses]
  verbs: [list]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [list]
{{- end }}
