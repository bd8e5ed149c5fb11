{{/* The chart's labels. */}}
{{- define "resticpilot.labels" -}}
app.kubernetes.io/name: resticpilot
app.kubernetes.io/part-of: resticpilot
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "resticpilot.secretName" -}}
{{- default "resticpilot-secrets" .Values.secrets.existingSecret -}}
{{- end -}}

{{/*
The job template of one CronJob. Called with (dict "root" $ "name" NAME "hostname" HOST
"args" ARGS "volumes" VOLUMES "affinity" AFFINITY "deadline" SECONDS).
*/}}
{{- define "resticpilot.jobTemplate" -}}
{{- $root := .root -}}
activeDeadlineSeconds: {{ .deadline }}
backoffLimit: {{ $root.Values.backoffLimit }}
podFailurePolicy:
  rules:
    - action: FailJob
      onExitCodes:
        containerName: resticpilot
        operator: In
        values: [2]
    - action: Ignore
      onPodConditions:
        - type: DisruptionTarget
          status: "True"
template:
  metadata:
    labels:
      {{- include "resticpilot.labels" $root | nindent 6 }}
      app.kubernetes.io/component: {{ .name }}
    annotations:
      checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
  spec:
    restartPolicy: Never
    hostname: {{ .hostname }}
    terminationGracePeriodSeconds: {{ $root.Values.terminationGracePeriodSeconds }}
    automountServiceAccountToken: false
    enableServiceLinks: false
    securityContext:
      {{- toYaml $root.Values.podSecurityContext | nindent 6 }}
    {{- with .affinity }}
    affinity:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    containers:
      - name: resticpilot
        image: "{{ $root.Values.image.repository }}:{{ default $root.Chart.AppVersion $root.Values.image.tag }}"
        imagePullPolicy: {{ $root.Values.image.pullPolicy }}
        args:
          {{- toYaml .args | nindent 10 }}
        env:
          {{- range $root.Values.secrets.env }}
          - name: {{ . }}
            valueFrom:
              secretKeyRef:
                name: {{ include "resticpilot.secretName" $root }}
                key: {{ . }}
          {{- end }}
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities:
            drop: [ALL]
        resources:
          {{- toYaml $root.Values.resources | nindent 10 }}
        volumeMounts:
          - { name: config, mountPath: /etc/resticpilot, readOnly: true }
          - { name: secrets, mountPath: /run/secrets/resticpilot, readOnly: true }
          - { name: state, mountPath: /var/lib/resticpilot }
          - { name: tmp, mountPath: /tmp }
          {{- range .volumes }}
          - { name: {{ .name }}, mountPath: {{ .mountPath }}, readOnly: true }
          {{- end }}
    volumes:
      - name: config
        configMap:
          name: {{ $root.Release.Name }}-config
      - name: secrets
        secret:
          secretName: {{ include "resticpilot.secretName" $root }}
          defaultMode: 0400
      - name: state
        emptyDir: {}
      - name: tmp
        emptyDir: {}
      {{- range .volumes }}
      - name: {{ .name }}
        persistentVolumeClaim:
          claimName: {{ .claimName }}
          readOnly: true
      {{- end }}
{{- end -}}
