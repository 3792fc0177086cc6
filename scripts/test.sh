#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit, property and end-to-end tests, and the
# examples checked by an independent JSON Schema validator. Installs what it needs.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export INSTA_UPDATE=no

bash scripts/install-test-tools.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "== cargo build (the end-to-end tests drive the built binary)"
cargo build --workspace --bins --quiet

echo "== a single-node Slurm on loopback (the Slurm tests and example run on it)"
bash scripts/slurm-up.sh

echo "== cargo nextest"
cargo nextest run --workspace --no-fail-fast

echo "== check-jsonschema over the examples"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mapfile -t example_files < <(find examples -name '*.yaml' | sort)
.tools/venv/bin/python scripts/split-yaml-docs.py "$tmp/docs" "${example_files[@]}"
.tools/venv/bin/check-jsonschema --schemafile schemas/resource.json "$tmp"/docs/*.json

echo "== the HTTP API's OpenAPI description (generated; the tests check answers against it)"
.tools/venv/bin/openapi-spec-validator schemas/openapi.json

echo "== the CI templates against GitHub's and GitLab's schemas"
.tools/venv/bin/check-jsonschema --builtin-schema vendor.github-workflows examples/ci/.github/workflows/cascade.yml
.tools/venv/bin/check-jsonschema --builtin-schema vendor.gitlab-ci examples/ci/.gitlab-ci.yml

echo "== the Helm chart: helm lint --strict, helm template, kubernetes-validate --strict"
.tools/bin/helm lint --strict charts/cascade
.tools/bin/helm template cascade charts/cascade --include-crds > "$tmp/chart.yaml"
.tools/venv/bin/kubernetes-validate --strict "$tmp/chart.yaml"
# The controller runs as non-root on a read-only root file system, with the probes it serves.
for want in "runAsNonRoot: true" "readOnlyRootFilesystem: true" "path: /readyz" "- --leader-election" "path: /validate" "- --admission-listen=0.0.0.0:8443"; do
  grep -qF -- "$want" "$tmp/chart.yaml" || { echo "error: the rendered chart lacks \`$want\`" >&2; exit 1; }
done
# The webhook's certificate, made at install, is signed by the caBundle the API server is
# given, for the Service's DNS name; with cert-manager, cert-manager makes and injects them.
python3 - "$tmp/chart.yaml" "$tmp" <<'PY'
import base64, subprocess, sys
docs = open(sys.argv[1]).read().split("\n---")
def field(doc, key):
    line = next(l for l in doc.splitlines() if l.strip().startswith(key + ":"))
    return base64.b64decode(line.split(":", 1)[1].strip())
secret = next(d for d in docs if "kind: Secret" in d and "webhook-tls" in d)
hook = next(d for d in docs if "kind: ValidatingWebhookConfiguration" in d)
open(sys.argv[2] + "/ca.pem", "wb").write(field(hook, "caBundle"))
open(sys.argv[2] + "/tls.pem", "wb").write(field(secret, "tls.crt"))
host = "cascade-controller-webhook.default.svc"
subprocess.run(["openssl", "verify", "-CAfile", sys.argv[2] + "/ca.pem", "-verify_hostname", host,
                sys.argv[2] + "/tls.pem"], check=True)
PY
certmanager=$(.tools/bin/helm template cascade charts/cascade --set controller.webhook.certManager.enabled=true)
for want in "kind: Certificate" "cert-manager.io/inject-ca-from: default/cascade-controller-webhook"; do
  grep -qF -- "$want" <<<"$certmanager" || { echo "error: with cert-manager the chart lacks \`$want\`" >&2; exit 1; }
done
if grep -q "caBundle:" <<<"$certmanager"; then
  echo "error: with cert-manager the chart still writes its own caBundle" >&2
  exit 1
fi
if .tools/bin/helm template cascade charts/cascade --set controller.enabled=false | grep -q "kind: Deployment"; then
  echo "error: controller.enabled=false still renders the Deployment" >&2
  exit 1
fi
# values.schema.json refuses values that are not the chart's.
if .tools/bin/helm template cascade charts/cascade --set rbac.namePrefix=Not_A_Name >/dev/null 2>&1; then
  echo "error: the chart accepted an invalid rbac.namePrefix" >&2
  exit 1
fi
