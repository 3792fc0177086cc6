#!/usr/bin/env bash
# Cascade against its peers, side by side (see reconciler/benches/peers.rs), after installing
# the peers idempotently: check-jsonschema and Snakemake into .tools/venv (PyPI), GNU parallel
# from Debian. Then the benchmarks of Cascade alone. Prints figures; asserts no timing.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash scripts/install-test-tools.sh
if [ ! -x .tools/venv/bin/snakemake ]; then
  .tools/venv/bin/pip install --quiet --disable-pip-version-check snakemake
fi
if ! command -v parallel >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq parallel
fi
echo "== $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores, $(uname -sr)"
cargo bench -p cascade --bench peers -- "$@"
for bench in validate plan catalog runtime serve; do
  cargo bench -p cascade --bench "$bench"
done
