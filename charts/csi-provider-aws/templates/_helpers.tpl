{{/* Chart name, or nameOverride. */}}
{{- define "csi-provider-aws.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: fullnameOverride, else the release name (with the chart name unless it holds it). */}}
{{- define "csi-provider-aws.fullname" -}}
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

{{/* Labels that select the pods: stable across upgrades. */}}
{{- define "csi-provider-aws.selectorLabels" -}}
app.kubernetes.io/name: {{ include "csi-provider-aws.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "csi-provider-aws.labels" -}}
{{ include "csi-provider-aws.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: provider
app.kubernetes.io/part-of: secrets-store-csi-driver
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The ServiceAccount the pods run as: rbac.serviceAccountName (the Go chart's value) wins over
serviceAccount.name; default: the release's full name. */}}
{{- define "csi-provider-aws.serviceAccountName" -}}
{{- $rbac := .Values.rbac | default dict }}
{{- coalesce $rbac.serviceAccountName .Values.serviceAccount.name (include "csi-provider-aws.fullname" .) }}
{{- end }}

{{/* The image this chart publishes (the release pipeline pushes it; appVersion is its tag). */}}
{{- define "csi-provider-aws.ownRepository" -}}
ghcr.io/csi-provider-aws/csi-provider-aws
{{- end }}

{{/* The Go provider's public image: the Go chart pins it in its values.yaml. */}}
{{- define "csi-provider-aws.goRepository" -}}
public.ecr.aws/aws-secrets-manager/secrets-store-csi-driver-provider-aws
{{- end }}

{{/* "true" when image.repository is the Go provider's public image (replaced by ours). */}}
{{- define "csi-provider-aws.goImageReplaced" -}}
{{- if eq (toString .Values.image.repository) (include "csi-provider-aws.goRepository" .) }}true{{ end }}
{{- end }}

{{/* The image to run. The Go provider's public image is replaced by ours (its binary cannot run
with this chart's flags; NOTES says so); a copy of it under another registry is refused. */}}
{{- define "csi-provider-aws.image" -}}
{{- $repo := toString .Values.image.repository }}
{{- if include "csi-provider-aws.goImageReplaced" . }}
{{- printf "%s:%s" (include "csi-provider-aws.ownRepository" .) .Chart.AppVersion }}
{{- else if eq (base $repo) "secrets-store-csi-driver-provider-aws" }}
{{- fail (printf "image.repository %q is the Go provider's image, which cannot run with this chart's flags: drop `image` from your values (or name a csi-provider-aws image)." $repo) }}
{{- else }}
{{- printf "%s:%s" $repo (toString (default .Chart.AppVersion .Values.image.tag)) }}
{{- end }}
{{- end }}

{{/* "true" when the Go chart's bundled-driver switch is on (this chart installs no driver). */}}
{{- define "csi-provider-aws.goDriverInstall" -}}
{{- $driver := index .Values "secrets-store-csi-driver" | default dict }}
{{- if and (kindIs "map" $driver) (eq (toString (index $driver "install")) "true") }}true{{ end }}
{{- end }}

{{/* Bytes in a Kubernetes memory quantity (integer forms: 134217728, 128Mi, 1Gi, 500M); "" when
it has another form (a fraction, an exponent). */}}
{{- define "csi-provider-aws.quantityBytes" -}}
{{- $q := toString . }}
{{- $units := dict "" 1 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 }}
{{- if regexMatch "^[0-9]+(k|M|G|T|Ki|Mi|Gi|Ti)?$" $q }}
{{- $digits := regexFind "^[0-9]+" $q }}
{{- $unit := trimPrefix $digits $q }}
{{- mul (atoi $digits) (index $units $unit) }}
{{- end }}
{{- end }}

{{/* --cache-max-bytes: cache.maxBytes when set, else half of resources.limits.memory, else ""
(the binary's own default, 64Mi). */}}
{{- define "csi-provider-aws.cacheMaxBytes" -}}
{{- $raw := .Values.cache.maxBytes }}
{{- $set := ternary (printf "%.0f" $raw) (toString ($raw | default "")) (kindIs "float64" $raw) }}
{{- $limit := "" }}
{{- with .Values.resources }}{{ with .limits }}{{ $limit = toString (.memory | default "") }}{{ end }}{{ end }}
{{- if $set }}
{{- $set }}
{{- else if $limit }}
{{- $bytes := include "csi-provider-aws.quantityBytes" $limit }}
{{- if not $bytes }}
{{- fail (printf "resources.limits.memory %q: cache.maxBytes defaults to half of it, which needs an integer quantity such as 128Mi; set cache.maxBytes explicitly." $limit) }}
{{- end }}
{{- div (atoi $bytes) 2 }}
{{- end }}
{{- end }}

{{/* Is a metrics Service wanted? */}}
{{- define "csi-provider-aws.metricsService" -}}
{{- if and .Values.metrics.enabled (or .Values.metrics.service.enabled .Values.serviceMonitor.enabled) }}true{{ end }}
{{- end }}

{{/* Where a CA bundle from a ConfigMap or Secret is mounted. */}}
{{- define "csi-provider-aws.caBundleDir" -}}
/etc/csi-provider-aws/ca
{{- end }}

{{/* Fails on values the schema cannot express. */}}
{{- define "csi-provider-aws.validate" -}}
{{- if and .Values.caBundle.configMap .Values.caBundle.secret }}
{{- fail "caBundle: set configMap or secret, not both" }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled (not .Values.metrics.enabled) }}
{{- fail "serviceMonitor.enabled needs metrics.enabled" }}
{{- end }}
{{- end }}
