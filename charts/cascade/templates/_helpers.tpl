{{/* Labels every object of the chart carries. */}}
{{- define "cascade.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The four kinds, as RBAC names their resources. */}}
{{- define "cascade.allResources" -}}
- campaigns
- campaignstages
- jobtypes
- loginsetups
- notifiers
{{- end -}}
