{{/*
One Deployment of one track. Call with (dict "root" $ "track" "stable"|"canary").
The stable and the canary Deployment differ only in name, replicas, image, model
version, artifact, digest and fetch settings; everything else comes from the same values.
*/}}
{{- define "model-service.deployment" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $canary := eq .track "canary" }}
{{- $name := ternary (include "model-service.canaryFullname" $root) (include "model-service.fullname" $root) $canary }}
{{- $image := dict "repository" $v.image.repository "tag" (include "model-service.imageTag" $root) "digest" $v.image.digest }}
{{- $artifact := $v.model.artifact }}
{{- $uri := $v.model.uri }}
{{- $sha256 := $v.model.sha256 }}
{{- $version := include "model-service.stableVersion" $root }}
{{- if $canary }}
{{- $image = dict "repository" (default $v.image.repository $v.canary.image.repository) "tag" (default (include "model-service.imageTag" $root) $v.canary.image.tag) "digest" $v.canary.image.digest }}
{{- $artifact = default $v.model.artifact $v.canary.artifact }}
{{- /* the canary's own uri, else its own artifact dir, else the model's uri */}}
{{- $uri = ternary $v.canary.uri (ternary "" $v.model.uri (not (empty $v.canary.artifact))) (not (empty $v.canary.uri)) }}
{{- $sha256 = $v.canary.sha256 }}
{{- /* a remote uri it inherits is the model's artifact, checked against the model's digest */}}
{{- if and (empty $v.canary.uri) (empty $v.canary.artifact) $v.model.uri (not (hasPrefix "/" $v.model.uri)) }}
{{- $sha256 = default $v.model.sha256 $v.canary.sha256 }}
{{- end }}
{{- $version = include "model-service.canaryVersion" $root }}
{{- end }}
{{- /* a uri that is a directory is the in-image artifact; any other is fetched */}}
{{- $remote := and $uri (not (hasPrefix "/" $uri)) }}
{{- if and $uri (not $remote) }}
{{- $artifact = $uri }}
{{- end }}
{{- /* each track fetches with its own release's settings: the canary's keys over model.fetch */}}
{{- $fetch := deepCopy $v.model.fetch }}
{{- if $canary }}
{{- range $key, $value := $v.canary.fetch }}
{{- $_ := set $fetch $key $value }}
{{- end }}
{{- end }}
{{- $imageRef := include "model-service.imageRef" $image }}
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
    {{- if eq (toString .type) "Recreate" }}
    {{- /* Helm merges the user's type into the default rollingUpdate, which Recreate forbids */}}
    type: Recreate
    {{- else }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
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
      {{- if $remote }}
      initContainers:
        {{- /* the same image fetches and verifies the artifact before the service starts;
        its one JSON error line becomes the termination message the operator quotes */}}
        - name: model-fetch
          image: {{ $imageRef | quote }}
          imagePullPolicy: {{ $v.image.pullPolicy }}
          terminationMessagePolicy: FallbackToLogsOnError
          args: ["fetch"]
          env:
            - name: MODELOPS_FETCH_URI
              value: {{ $uri | quote }}
            - name: MODELOPS_FETCH_SHA256
              value: {{ $sha256 | quote }}
            - name: MODELOPS_FETCH_DEST
              value: /model
            - name: MODELOPS_FETCH_MAX_BYTES
              value: {{ $fetch.maxBytes | int64 | quote }}
            - name: MODELOPS_FETCH_TIMEOUT_SECONDS
              value: {{ $fetch.timeoutSeconds | quote }}
            - name: MODELOPS_FETCH_REGION
              value: {{ $fetch.region | quote }}
            {{- with $fetch.endpoint }}
            - name: MODELOPS_FETCH_ENDPOINT
              value: {{ . | quote }}
            {{- end }}
            {{- if $fetch.caConfigMap }}
            - name: MODELOPS_FETCH_CA_FILE
              value: /etc/modelops.io/fetch-ca/ca.crt
            {{- end }}
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          securityContext:
            {{- toYaml $v.securityContext | nindent 12 }}
          volumeMounts:
            - name: model
              mountPath: /model
            {{- if $fetch.credentialsSecret }}
            - name: fetch-credentials
              mountPath: /var/run/secrets/modelops.io/fetch
              readOnly: true
            {{- end }}
            {{- if $fetch.caConfigMap }}
            - name: fetch-ca
              mountPath: /etc/modelops.io/fetch-ca
              readOnly: true
            {{- end }}
            {{- if hasPrefix "pvc://" $uri }}
            - name: model-source
              mountPath: /mnt/model-source
              readOnly: true
            {{- end }}
      {{- end }}
      containers:
        - name: model-service
          image: {{ $imageRef | quote }}
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
            {{- /* the labels its metrics carry: the service refuses an artifact that is not this model */}}
            - name: MODELOPS_MODEL_NAME
              value: {{ include "model-service.modelName" $root | quote }}
            - name: MODELOPS_MODEL_VERSION
              value: {{ $version | quote }}
            {{- if $remote }}
            - name: MODELOPS_MODEL_DIR
              value: /model
            {{- else if $artifact }}
            - name: MODELOPS_MODEL_DIR
              value: {{ $artifact | quote }}
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
            {{- if $remote }}
            - name: model
              mountPath: /model
              readOnly: true
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: {{ $v.tmpSizeLimit }}
        {{- if $remote }}
        - name: model
          emptyDir:
            sizeLimit: {{ $fetch.sizeLimit }}
        {{- if $fetch.credentialsSecret }}
        {{- /* mounted into model-fetch only: the service never sees the keys */}}
        - name: fetch-credentials
          secret:
            secretName: {{ $fetch.credentialsSecret }}
        {{- end }}
        {{- if $fetch.caConfigMap }}
        - name: fetch-ca
          configMap:
            name: {{ $fetch.caConfigMap }}
        {{- end }}
        {{- if hasPrefix "pvc://" $uri }}
        - name: model-source
          persistentVolumeClaim:
            claimName: {{ regexReplaceAll "^pvc://([^/]+).*$" $uri "${1}" }}
            readOnly: true
        {{- end }}
        {{- end }}
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
