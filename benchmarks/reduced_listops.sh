#!/usr/bin/env bash
# The reduced ListOps comparison of docs/RESULTS.md: softmax vs macformer_exp
# on the same generated data (seed 0), same model size, budget and schedule.
# Reduced scale: the `smoke` ListOps distribution (trees of 20-250 tokens,
# depth <= 6, L = 256) with 20k/1k/1k examples; emb 64, 2 layers, 2 heads,
# MLP 128, 128 random features; batch 32, 3000 steps of LRA's schedule
# (0.05 * linear warmup 300 * rsqrt decay).
# Usage: bash benchmarks/reduced_listops.sh [attention ...]
set -euo pipefail
cd "$(dirname "$0")/.."
for a in "${@:-macformer_exp softmax}"; do
  for attention in $a; do
    extra=()
    if [ "$attention" != softmax ] && [ "$attention" != linear ]; then
      extra+=(--config.attention.options.num_features=128)
    fi
    python run_lra.py --config="configs/listops.py:$attention,smoke" \
      --workdir="runs/reduced_listops_$attention" \
      --config.data.offline.num_train=20000 \
      --config.data.offline.num_val=1000 \
      --config.data.offline.num_test=1000 \
      --config.train.num_train_steps=3000 \
      --config.train.eval_frequency=500 \
      --config.train.checkpoint_every=500 \
      --config.optimizer.warmup_steps=300 \
      "${extra[@]}"
  done
done
