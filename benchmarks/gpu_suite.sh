#!/usr/bin/env bash
# GPU suite: everything this repository wants from one NVIDIA GPU, in about
# 12 minutes (SUITE_TOTAL_S), writing JSON into docs/ (SUITE_OUT).
#
#   1. Attention speed and memory at L = 1K..32K, float32 and bfloat16:
#      softmax (einsum), jax.nn.dot_product_attention (xla and cudnn), RMFA,
#      Performer, linear (benchmarks.attention_speed), each dtype within
#      SUITE_SPEED_BUDGET_S -> $SUITE_OUT/gpu_attention_speed_<dtype>.json.
#   2. The Macformer authors' ListOps harness at full length (preset
#      macformer: L = 2000, legacy tokenisation, 10000 steps) on generated
#      data, for softmax and macformer_exp, sharing what is left of
#      SUITE_TOTAL_S (benchmarks.full_length: a run cut by its budget
#      resumes from its checkpoint on the next call)
#      -> $SUITE_OUT/results/gpu_listops_<attention>.json (curves so far).
#   3. $SUITE_OUT/gpu_suite.json: what ran, exit codes, timings.
#
#   bash benchmarks/gpu_suite.sh                # on the GPU machine
#   SUITE_REQUIRE_GPU=0 SUITE_LENGTHS=128 ... bash benchmarks/gpu_suite.sh
#                                               # tiny CPU check (tests)
#
# Knobs (environment): SUITE_OUT (docs), SUITE_WORKDIR (runs/gpu_suite),
# SUITE_LENGTHS (1024,...,32768), SUITE_DTYPES (float32,bfloat16),
# SUITE_VARIANTS, SUITE_REPEATS (5), SUITE_SPEED_BUDGET_S (150 per dtype),
# SUITE_ATTENTIONS (softmax,macformer_exp), SUITE_STEPS (0 = the preset's),
# SUITE_TOTAL_S (690), SUITE_MIN_TRAIN_S (20: skip training with less left),
# SUITE_DATA_SIZES (full_length.py --data_sizes, for tiny data), SUITE_FLAGS
# (extra run_lra.py flags, space separated), SUITE_REQUIRE_GPU (1), PYTHON.
# Exit status: 0 when every stage ran (a training run cut by its time budget
# counts as ran), 1 when a stage failed, 2 when something is missing.
set -uo pipefail
cd "$(dirname "$0")/.."

OUT=${SUITE_OUT:-docs}
WORKDIR=${SUITE_WORKDIR:-runs/gpu_suite}
LENGTHS=${SUITE_LENGTHS:-1024,2048,4096,8192,16384,32768}
DTYPES=${SUITE_DTYPES:-float32,bfloat16}
VARIANTS=${SUITE_VARIANTS:-softmax,dpa_xla,dpa_cudnn,rmfa,performer,linear}
REPEATS=${SUITE_REPEATS:-5}
SPEED_BUDGET_S=${SUITE_SPEED_BUDGET_S:-150}
ATTENTIONS=${SUITE_ATTENTIONS:-softmax,macformer_exp}
STEPS=${SUITE_STEPS:-0}
TOTAL_S=${SUITE_TOTAL_S:-690}
MIN_TRAIN_S=${SUITE_MIN_TRAIN_S:-20}
DATA_SIZES=${SUITE_DATA_SIZES:-}
REQUIRE_GPU=${SUITE_REQUIRE_GPU:-1}
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

die() { echo "gpu_suite: $*" >&2; exit 2; }

# --- 0. What must be there. ---------------------------------------------------
for f in run_lra.py benchmarks/attention_speed.py benchmarks/full_length.py \
         configs/listops.py; do
  [ -f "$f" ] || die "missing $f (run from a checkout of macformer-jax)"
done
command -v timeout >/dev/null || die "missing the 'timeout' command (coreutils)"
command -v "$PYTHON" >/dev/null || die "no python at '$PYTHON' (set PYTHON=)"
backend=$("$PYTHON" -c 'import jax; print(jax.default_backend())' 2>/tmp/gpu_suite_jax.$$) \
  || die "jax does not import with $PYTHON: $(tail -1 /tmp/gpu_suite_jax.$$)"
rm -f /tmp/gpu_suite_jax.$$
device=$("$PYTHON" -c 'import jax; d = jax.devices()[0]; print(f"{d.platform}:{d.device_kind}")')
if [ "$REQUIRE_GPU" = 1 ] && [ "$backend" != gpu ]; then
  hint="install jax[cuda12] (pip install -U 'jax[cuda12]')"
  command -v nvidia-smi >/dev/null || hint="no nvidia-smi either: is this a GPU machine?"
  die "JAX sees no GPU (backend '$backend', device $device); $hint. SUITE_REQUIRE_GPU=0 runs it anyway (tiny CPU checks)."
fi
mkdir -p "$OUT/results" "$WORKDIR" || die "cannot write $OUT or $WORKDIR"
echo "gpu_suite: device $device, python $PYTHON, out $OUT, budget ${TOTAL_S}s"

start=$SECONDS
status=0
stages=()  # JSON objects, one per stage
stage() {  # name rc seconds extra-json
  stages+=("{\"stage\": \"$1\", \"rc\": $2, \"seconds\": $3${4:+, $4}}")
}

# --- 1. Attention speed and memory. -------------------------------------------
for dtype in ${DTYPES//,/ }; do
  t0=$SECONDS
  json="$OUT/gpu_attention_speed_$dtype.json"
  timeout --kill-after=20 "$SPEED_BUDGET_S" "$PYTHON" -m benchmarks.attention_speed \
    --lengths "$LENGTHS" --variants "$VARIANTS" --dtype "$dtype" \
    --repeats "$REPEATS" --out "$json" 2>&1 | tail -n 20
  rc=${PIPESTATUS[0]}
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    echo "gpu_suite: attention speed ($dtype) cut at ${SPEED_BUDGET_S}s; $json has the lengths done"
  elif [ "$rc" != 0 ]; then
    echo "gpu_suite: attention speed ($dtype) FAILED (rc $rc)" >&2
    status=1
  fi
  stage "attention_speed_$dtype" "$rc" $((SECONDS - t0)) "\"json\": \"$json\""
done

# --- 2. Full-length ListOps, preset macformer. --------------------------------
t0=$SECONDS
data_args=(data --workdir "$WORKDIR")
[ -n "$DATA_SIZES" ] && data_args+=(--data_sizes "$DATA_SIZES")
"$PYTHON" -m benchmarks.full_length "${data_args[@]}"
rc=$?
[ "$rc" != 0 ] && { echo "gpu_suite: ListOps data generation FAILED (rc $rc)" >&2; status=1; }
stage listops_data "$rc" $((SECONDS - t0))
n=$(echo "${ATTENTIONS//,/ }" | wc -w)
for attention in ${ATTENTIONS//,/ }; do
  left=$((TOTAL_S - (SECONDS - start)))
  budget=$((left / n))
  n=$((n - 1))
  if [ "$budget" -lt "$MIN_TRAIN_S" ]; then
    echo "gpu_suite: $attention not trained: ${left}s left of ${TOTAL_S}s"
    stage "listops_$attention" -1 0 "\"skipped\": \"no time left\""
    continue
  fi
  t0=$SECONDS
  args=(run --attentions "$attention" --workdir "$WORKDIR"
        --out "$OUT/results" --prefix gpu_listops_ --budget_s "$budget"
        --checkpoint_every 500 --steps "$STEPS")
  [ -n "$DATA_SIZES" ] && args+=(--data_sizes "$DATA_SIZES")
  for flag in ${SUITE_FLAGS:-}; do args+=(--flag="$flag"); done
  "$PYTHON" -m benchmarks.full_length "${args[@]}"
  rc=$?
  [ "$rc" != 0 ] && { echo "gpu_suite: listops $attention FAILED (rc $rc)" >&2; status=1; }
  stage "listops_$attention" "$rc" $((SECONDS - t0)) \
    "\"budget_s\": $budget, \"json\": \"$OUT/results/gpu_listops_$attention.json\""
done

# --- 3. Summary. ---------------------------------------------------------------
summary="$OUT/gpu_suite.json"
{
  echo "{\"device\": \"$device\", \"date\": \"$(date -u +%FT%TZ)\","
  echo " \"commit\": \"$(git rev-parse --short HEAD 2>/dev/null || echo unknown)\","
  echo " \"total_s\": $((SECONDS - start)), \"budget_s\": $TOTAL_S, \"status\": $status,"
  echo " \"stages\": ["
  sep=""
  for s in "${stages[@]}"; do echo "  $sep$s"; sep=","; done
  echo " ]}"
} > "$summary"
echo "gpu_suite: wrote $summary ($((SECONDS - start))s, status $status)"
exit $status
