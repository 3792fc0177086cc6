#!/bin/sh
# The EVE example experiment's job: a stand-in for a real simulation or reconstruction
# executable, run by Cascade's local batch system. It reads its input files from
# $CASCADE_INPUT_FILES (one path per line), writes its outputs into $CASCADE_OUTPUT_DIR, and
# Cascade declares those matching the job type's outputFilePatterns, with the inputs as parents.
#
#   --stage=gen      create --events events from nothing: one <submission>_<job>.gen.root
#   --stage=process  one output per input: <input base>.<step>.root
#   --stage=ana      one ntuple over all inputs: <submission>_<job>.ana.root
# --fail-one-in=N makes every N-th job (job 0, N, 2N, ...) of a submission fail as if it ran out of
# memory, unless --memory= gives it more (what the recovery round with overrides does).
set -eu

stage=process step=proc events=10 release=unknown fail_one_in=0 memory= particle= noise=
for arg in "$@"; do
  case "$arg" in
    --stage=*) stage=${arg#*=} ;;
    --step=*) step=${arg#*=} ;;
    --events=*) events=${arg#*=} ;;
    --release=*) release=${arg#*=} ;;
    --fail-one-in=*) fail_one_in=${arg#*=} ;;
    --memory=*) memory=${arg#*=} ;;
    --particle=*) particle=${arg#*=} ;;
    --noise-level=*) noise=${arg#*=} ;;
    --input=*) ;;
    *) echo "eve.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done

out=${CASCADE_OUTPUT_DIR:?not run by cascade}
job=${CASCADE_JOB_INDEX:-0}
sub=${CASCADE_SUBMISSION_ID:-manual}
echo "eve.sh: stage=$stage step=$step release=$release job=$job of $sub"
# Tests slow jobs down to stretch a campaign over many controller restarts.
sleep "${EVE_JOB_SECONDS:-0}"

if [ "$fail_one_in" -gt 0 ] && [ $((job % fail_one_in)) -eq 0 ] && [ -z "$memory" ]; then
  echo "eve.sh: out of memory (simulated): rerun with --memory=" >&2
  exit 137
fi

case "$stage" in
  gen)
    file="$out/${sub}_${job}.gen.root"
    i=0
    while [ "$i" -lt "$events" ]; do
      echo "event $i particle=${particle:-mixed} release=$release"
      i=$((i + 1))
    done > "$file"
    ;;
  process)
    printf '%s\n' "${CASCADE_INPUT_FILES:-}" | while IFS= read -r input; do
      [ -n "$input" ] || continue
      base=$(basename "$input")
      base=${base%.root}
      base=${base%.*}
      { echo "# $step of $base, release $release${noise:+, noise $noise}"; cat "$input"; } > "$out/$base.$step.root"
    done
    ;;
  ana)
    printf '%s\n' "${CASCADE_INPUT_FILES:-}" | while IFS= read -r input; do
      [ -n "$input" ] && echo "$(basename "$input"): $(wc -l < "$input") lines"
    done > "$out/${sub}_${job}.ana.root"
    ;;
  *) echo "eve.sh: unknown stage $stage" >&2; exit 2 ;;
esac
echo "eve.sh: done"
