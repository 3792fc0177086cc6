#!/usr/bin/env bash
# Installs what the test suite needs beyond Rust, idempotently: a Python virtualenv with the
# independent validators (check-jsonschema, kubernetes-validate, openapi-spec-validator) under
# .tools/venv, and helm under .tools/bin.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.tools/venv"
if [ ! -x "$venv/bin/check-jsonschema" ]; then
  if ! python3 -m venv "$venv" 2>/dev/null; then
    # Debian's python3 needs the venv module from its own package.
    apt-get update -qq && apt-get install -y -qq python3-venv
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check check-jsonschema ruamel.yaml
fi
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check kubernetes-validate
fi
if [ ! -x "$venv/bin/openapi-spec-validator" ]; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check openapi-spec-validator
fi
bash "$root/scripts/install-helm.sh" "$root/.tools/bin"
# The shells the quoting property test runs through, the process tools the fault tests use,
# git (its daemon and http-backend serve the GitOps tests), perl and make (OpenSSL is
# built from source for git2), curl and openssl (the admission webhook is called over TLS
# with a certificate made for the test), and Chromium (the web pages are loaded in a headless browser).
missing=()
for tool in dash:dash bash:bash curl:curl openssl:openssl pkill:procps kill:procps mount:mount git:git perl:perl make:make chromium:chromium; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool##*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if ! command -v cargo-nextest >/dev/null 2>&1 && ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi
for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
    rustup component add "$component"
  fi
done
