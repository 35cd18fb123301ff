{{/*
One Deployment of one track. Call with (dict "root" $ "track" "stable"|"canary").
The stable and the canary Deployment differ only in name, replicas, image, model
version, artifact and digest; everything else comes from the same values.
*/}}
{{- define "model-service.deployment" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $canary := eq .track "canary" }}
{{- $name := ternary (include "model-service.canaryFullname" $root) (include "model-service.fullname" $root) $canary }}
{{- $image := dict "repository" $v.image.repository "tag" (include "model-service.imageTag" $root) "digest" $v.image.digest }}
{{- $artifact := $v.model.artifact }}
{{- $sha256 := $v.model.sha256 }}
{{- $version := include "model-service.stableVersion" $root }}
{{- if $canary }}
{{- $image = dict "repository" (default $v.image.repository $v.canary.image.repository) "tag" (default (include "model-service.imageTag" $root) $v.canary.image.tag) "digest" $v.canary.image.digest }}
{{- $artifact = default $v.model.artifact $v.canary.artifact }}
{{- $sha256 = $v.canary.sha256 }}
{{- $version = include "model-service.canaryVersion" $root }}
{{- end }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "model-service.trackLabels" . | nindent 4 }}
spec:
  {{- if $canary }}
  replicas: {{ $v.canary.replicaCount }}
  {{- else if not (or $v.autoscaling.enabled (and $v.scaledObject.enabled (not $v.scaledObject.scaleTargetRef))) }}
  replicas: {{ $v.replicaCount }}
  {{- end }}
  revisionHistoryLimit: {{ $v.revisionHistoryLimit }}
  {{- with $v.strategy }}
  strategy:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "model-service.trackSelectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "model-service.trackLabels" . | nindent 8 }}
        {{- with $v.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        {{- /* the settings only, so a new model version does not restart the other track */}}
        checksum/config: {{ toJson $v.config | sha256sum }}
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "model-service.serviceAccountName" $root }}
      automountServiceAccountToken: {{ $v.serviceAccount.automountServiceAccountToken }}
      {{- with $v.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      securityContext:
        {{- toYaml $v.podSecurityContext | nindent 8 }}
      terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
      containers:
        - name: model-service
          image: {{ include "model-service.imageRef" $image | quote }}
          imagePullPolicy: {{ $v.image.pullPolicy }}
          {{- /* a refused artifact exits with one JSON error line on stdout: with this
          policy the kubelet makes it the termination message the operator reports */}}
          terminationMessagePolicy: FallbackToLogsOnError
          {{- with $v.command }}
          command:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with $v.args }}
          args:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          ports:
            - name: http
              containerPort: {{ $v.port }}
              protocol: TCP
          env:
            - name: MODELOPS_PORT
              value: {{ $v.port | quote }}
            {{- with $artifact }}
            - name: MODELOPS_MODEL_DIR
              value: {{ . | quote }}
            {{- end }}
            {{- with $sha256 }}
            - name: MODELOPS_MODEL_SHA256
              value: {{ . | quote }}
            {{- end }}
            {{- $workers := include "model-service.workers" $root | int }}
            {{- if gt $workers 1 }}
            - name: MODELOPS_WORKERS
              value: {{ $workers | quote }}
            {{- /* On the /tmp emptyDir: the entry point empties it when the container starts */}}
            - name: PROMETHEUS_MULTIPROC_DIR
              value: /tmp/metrics
            {{- end }}
            {{- with $v.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          envFrom:
            - configMapRef:
                name: {{ include "model-service.fullname" $root }}
          {{- with $v.livenessProbe }}
          livenessProbe:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with $v.readinessProbe }}
          readinessProbe:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with $v.startupProbe }}
          startupProbe:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with $v.shutdownDelaySeconds }}
          {{- /* SIGTERM closes the listener at once, while kube-proxy may still send new
          connections here for a moment (seen on the rig's real node): keep serving first */}}
          lifecycle:
            preStop:
              exec:
                command: ["sleep", {{ . | quote }}]
          {{- end }}
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          securityContext:
            {{- toYaml $v.securityContext | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: {{ $v.tmpSizeLimit }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- range . }}
        - {{- toYaml (ternary . (merge (dict "labelSelector" (dict "matchLabels" (include "model-service.selectorLabels" $root | fromYaml))) .) (hasKey . "labelSelector")) | nindent 10 }}
        {{- end }}
      {{- end }}
{{- end }}
