{{/*
Names, labels and small computed values. Every define is prefixed with the chart name.
*/}}

{{- define "model-service.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: <release>-<chart>, or the release name alone when it already contains the chart
name. Truncated to 56 characters so that "<fullname>-canary" still fits a 63-character label.
*/}}
{{- define "model-service.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 56 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 56 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 56 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "model-service.canaryFullname" -}}
{{- printf "%s-canary" (include "model-service.fullname" .) }}
{{- end }}

{{/*
A value of `config` as an environment string. Helm reads every number of a values file as
a float64, and toString writes 10485760 as 1.048576e+07, which the service cannot parse.
*/}}
{{- define "model-service.envValue" -}}
{{- if and (kindIs "float64" .) (eq . (floor .)) }}{{ int64 . }}{{ else }}{{ toString . }}{{ end }}
{{- end }}

{{- define "model-service.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Model name: the modelops.io/model label (the schema keeps it a label value). */}}
{{- define "model-service.modelName" -}}
{{- .Values.model.name }}
{{- end }}

{{/* Image tag of the stable track. */}}
{{- define "model-service.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{/* Model version of the stable track. */}}
{{- define "model-service.stableVersion" -}}
{{- .Values.model.version | toString }}
{{- end }}

{{/* Model version of the canary track. */}}
{{- define "model-service.canaryVersion" -}}
{{- if and .Values.canary.enabled (not .Values.canary.version) }}
{{- fail "canary.enabled=true needs canary.version (the model version the canary serves)" }}
{{- end }}
{{- .Values.canary.version | toString }}
{{- end }}

{{/* Image reference: repository[:tag][@digest]. Call with (dict "repository" r "tag" t "digest" d). */}}
{{- define "model-service.imageRef" -}}
{{- if .digest }}
{{- printf "%s@%s" .repository .digest }}
{{- else }}
{{- printf "%s:%s" .repository .tag }}
{{- end }}
{{- end }}

{{/*
Selector labels: what the Service, ServiceMonitor, PodDisruptionBudget and NetworkPolicy
select. Name and instance only, so stable and canary pods sit behind one Service.
*/}}
{{- define "model-service.selectorLabels" -}}
app.kubernetes.io/name: {{ include "model-service.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every object; the version is the stable model version. */}}
{{- define "model-service.labels" -}}
{{ include "model-service.selectorLabels" . }}
app.kubernetes.io/version: {{ include "model-service.stableVersion" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: {{ .Values.partOf }}
helm.sh/chart: {{ include "model-service.chart" . }}
modelops.io/model: {{ include "model-service.modelName" . }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Labels of one track's Deployment and pods. Call with (dict "root" $ "track" "stable"|"canary").
The version label follows the track's model version.
*/}}
{{- define "model-service.trackLabels" -}}
{{- $root := .root }}
{{- $version := ternary (include "model-service.canaryVersion" $root) (include "model-service.stableVersion" $root) (eq .track "canary") }}
{{- include "model-service.selectorLabels" $root }}
app.kubernetes.io/version: {{ $version | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
app.kubernetes.io/part-of: {{ $root.Values.partOf }}
helm.sh/chart: {{ include "model-service.chart" $root }}
modelops.io/model: {{ include "model-service.modelName" $root }}
modelops.io/version: {{ $version | quote }}
modelops.io/track: {{ .track }}
{{- with $root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Deployment selector of one track: immutable, so name, instance and track only. */}}
{{- define "model-service.trackSelectorLabels" -}}
{{ include "model-service.selectorLabels" .root }}
modelops.io/track: {{ .track }}
{{- end }}

{{- define "model-service.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "model-service.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* True (non-empty) when the cluster serves monitoring.coreos.com/v1 or the chart is told to render anyway. */}}
{{- define "model-service.monitoringApiAvailable" -}}
{{- if or (eq .Values.monitoring.missingCrds "render") (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1") (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1/ServiceMonitor") -}}
true
{{- end }}
{{- end }}

{{/*
Whether to render a monitoring.coreos.com object that is enabled. Fails with a clear message
when the API is missing and monitoring.missingCrds=fail. Call with (dict "root" $ "kind" "ServiceMonitor").
*/}}
{{- define "model-service.renderMonitoringObject" -}}
{{- if include "model-service.monitoringApiAvailable" .root -}}
true
{{- else if eq .root.Values.monitoring.missingCrds "fail" }}
{{- fail (printf "this cluster does not serve monitoring.coreos.com/v1, so the %s cannot be created. Install the prometheus-operator CRDs (kube-prometheus-stack), or set monitoring.missingCrds=skip to leave the monitoring objects out, or disable them (monitoring.serviceMonitor.enabled=false, monitoring.prometheusRule.enabled=false). With `helm template`, pass --api-versions monitoring.coreos.com/v1" .kind) }}
{{- end }}
{{- end }}

{{/*
The rule groups of every rule file in files/rules/ (written by `make generate` from alerts/),
in file name order, rendered with tpl in the chart's context (they read
.Values.monitoring.prometheusRule.params; Prometheus' own templates are escaped in them).
*/}}
{{- define "model-service.ruleGroups" -}}
{{- $groups := list }}
{{- range $path, $_ := .Files.Glob "files/rules/*.yaml" }}
{{- $groups = concat $groups (include "model-service.parseRuleFile" (dict "path" $path "text" (tpl ($.Files.Get $path) $)) | fromYamlArray) }}
{{- end }}
{{- toYaml $groups }}
{{- end }}

{{/* The groups of one rule file as a YAML list. Call with (dict "path" p "text" t). */}}
{{- define "model-service.parseRuleFile" -}}
{{- $doc := .text | fromYaml }}
{{- if hasKey $doc "Error" }}
{{- fail (printf "%s is not valid YAML after rendering: %s (run make generate)" .path $doc.Error) }}
{{- end }}
{{- toYaml ($doc.groups | default list) }}
{{- end }}

{{/*
Server processes per pod: .Values.workers, or with `auto` one per requested core
(resources.requests.cpu rounded up: 100m -> 1, 1500m -> 2, "2" -> 2), at least 1.
*/}}
{{- define "model-service.workers" -}}
{{- $workers := .Values.workers }}
{{- if eq (toString $workers) "auto" }}
{{- $cpu := toString (dig "requests" "cpu" "" (.Values.resources | default dict)) }}
{{- $cores := 1.0 }}
{{- if hasSuffix "m" $cpu }}
{{- $cores = divf (trimSuffix "m" $cpu | float64) 1000 }}
{{- else if $cpu }}
{{- $cores = float64 $cpu }}
{{- end }}
{{- max 1 (ceil $cores | int) }}
{{- else }}
{{- $workers | int }}
{{- end }}
{{- end }}
