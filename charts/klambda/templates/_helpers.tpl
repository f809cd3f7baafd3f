{{- define "klambda.fullname" -}}
{{- if contains "klambda" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-klambda" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "klambda.labels" -}}
app.kubernetes.io/part-of: klambda
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "klambda.selector" -}}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/name: {{ .component }}
{{- end -}}

{{- define "klambda.image" -}}
{{- printf "%s/%s:%s" .root.Values.image.registry .image (default .root.Chart.AppVersion .root.Values.image.tag) -}}
{{- end -}}

{{- define "klambda.gatewayGrpc" -}}
{{- printf "%s-gateway.%s.svc:%v" (include "klambda.fullname" .) .Release.Namespace .Values.gateway.service.grpcPort -}}
{{- end -}}

{{- define "klambda.gatewayLane" -}}
{{- if .Values.gateway.lane.enabled -}}
{{- printf "%s-gateway.%s.svc:%v" (include "klambda.fullname" .) .Release.Namespace .Values.gateway.service.lanePort -}}
{{- end -}}
{{- end -}}

{{- define "klambda.podSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  fsGroup: 10001
  seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{- define "klambda.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities: {drop: [ALL]}
{{- end -}}
