{{/*
Values that pass the schema one field at a time but can never work together, refused at
render time (helm template/install, and the operator's render) with the values named.
values.schema.json stays the home of single fields, their types and ranges (a rule
parameter's range follows its type in alerts/params.yaml); this is the home of bounds that
depend on each other. Called once, from deployment.yaml.
*/}}
{{- define "model-service.validate" -}}
{{- $a := .Values.autoscaling }}
{{- if $a.enabled }}
{{- if gt (int $a.minReplicas) (int $a.maxReplicas) }}
{{- fail (printf "autoscaling.minReplicas (%v) is above autoscaling.maxReplicas (%v): the API server refuses such a HorizontalPodAutoscaler" $a.minReplicas $a.maxReplicas) }}
{{- end }}
{{- range $resource, $key := dict "cpu" "targetCPUUtilizationPercentage" "memory" "targetMemoryUtilizationPercentage" }}
{{- if and (not (kindIs "invalid" (index $a $key))) (not (hasKey ($.Values.resources.requests | default dict) $resource)) }}
{{- fail (printf "autoscaling.%s needs resources.requests.%s: utilization is measured against the request" $key $resource) }}
{{- end }}
{{- end }}
{{- end }}
{{- $s := .Values.scaledObject }}
{{- if $s.enabled }}
{{- if gt (int $s.minReplicas) (int $s.maxReplicas) }}
{{- fail (printf "scaledObject.minReplicas (%v) is above scaledObject.maxReplicas (%v)" $s.minReplicas $s.maxReplicas) }}
{{- end }}
{{- if and $a.enabled (not $s.scaleTargetRef) }}
{{- fail "autoscaling.enabled and scaledObject.enabled both scale the stable Deployment: two HorizontalPodAutoscalers would fight over its replicas; enable one" }}
{{- end }}
{{- if and (not (kindIs "invalid" $s.targetCPUUtilizationPercentage)) (not (hasKey (.Values.resources.requests | default dict) "cpu")) }}
{{- fail "scaledObject.targetCPUUtilizationPercentage needs resources.requests.cpu: utilization is measured against the request" }}
{{- end }}
{{- end }}
{{- include "model-service.validateResources" .Values.resources }}
{{- if and .Values.shutdownDelaySeconds (ge (int .Values.shutdownDelaySeconds) (int .Values.terminationGracePeriodSeconds)) }}
{{- fail (printf "shutdownDelaySeconds (%v) is not below terminationGracePeriodSeconds (%v): the pod would be killed in its preStop sleep, before it shuts down cleanly" .Values.shutdownDelaySeconds .Values.terminationGracePeriodSeconds) }}
{{- end }}
{{- $sm := .Values.monitoring.serviceMonitor }}
{{- if $sm.enabled }}
{{- if gt (include "model-service.seconds" $sm.scrapeTimeout | float64) (include "model-service.seconds" $sm.interval | float64) }}
{{- fail (printf "monitoring.serviceMonitor.scrapeTimeout (%s) is longer than monitoring.serviceMonitor.interval (%s): Prometheus refuses such a scrape" $sm.scrapeTimeout $sm.interval) }}
{{- end }}
{{- end }}
{{- end }}

{{/* Container resources: a request above its limit is refused by the API server. */}}
{{- define "model-service.validateResources" -}}
{{- $requests := .requests | default dict }}
{{- $limits := .limits | default dict }}
{{- range $resource, $request := $requests }}
{{- if hasKey $limits $resource }}
{{- $req := include "model-service.quantity" $request }}
{{- $lim := include "model-service.quantity" (index $limits $resource) }}
{{- if and $req $lim (gt (float64 $req) (float64 $lim)) }}
{{- fail (printf "resources.requests.%s (%v) is above resources.limits.%s (%v): the API server refuses such a pod" $resource $request $resource (index $limits $resource)) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* A Kubernetes quantity (100m, 1.5, 512Mi, 1G) as a plain number; empty when not parsed. */}}
{{- define "model-service.quantity" -}}
{{- $q := toString . }}
{{- if regexMatch "^[0-9]+(\\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$" $q }}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" $q }}
{{- $suffix := trimPrefix $number $q }}
{{- $factor := get (dict "" 1.0 "m" 0.001 "k" 1e3 "M" 1e6 "G" 1e9 "T" 1e12 "P" 1e15 "E" 1e18 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 "Pi" 1125899906842624.0 "Ei" 1152921504606846976.0) $suffix }}
{{- mulf (float64 $number) $factor }}
{{- end }}
{{- end }}

{{/* A Prometheus duration (1m30s, 500ms) in seconds. */}}
{{- define "model-service.seconds" -}}
{{- $total := 0.0 }}
{{- range $part := regexFindAll "[0-9]+(ms|s|m|h|d|w|y)" (toString .) -1 }}
{{- $unit := regexFind "(ms|s|m|h|d|w|y)$" $part }}
{{- $n := trimSuffix $unit $part | float64 }}
{{- $total = addf $total (mulf $n (get (dict "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 "d" 86400.0 "w" 604800.0 "y" 31536000.0) $unit)) }}
{{- end }}
{{- $total }}
{{- end }}
