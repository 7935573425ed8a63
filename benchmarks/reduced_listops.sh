#!/usr/bin/env bash
# The reduced ListOps comparison of docs/RESULTS.md: softmax vs macformer_exp
# on the same generated data (seed 0), same model size, budget and schedule.
# Reduced scale: L = 512 (trees of 100-500 tokens, LRA depth/arity), 20k/1k/1k
# examples, emb 64, 2 layers, 2 heads, MLP 128, 128 random features,
# batch 32, 1200 steps (LRA schedule, warmup 120). Usage: bash benchmarks/reduced_listops.sh [attention...]
set -euo pipefail
cd "$(dirname "$0")/.."
for attention in "${@:-macformer_exp softmax}"; do
  for a in $attention; do
    extra=()
    if [ "$a" != softmax ] && [ "$a" != linear ]; then
      extra+=(--config.attention.options.num_features=128)
    fi
    python run_lra.py --config="configs/listops.py:$a,smoke" \
      --workdir="runs/reduced_listops_$a" \
      --config.data.max_len=512 \
      --config.data.offline.min_length=100 \
      --config.data.offline.max_length=500 \
      --config.data.offline.max_depth=10 \
      --config.data.offline.num_train=20000 \
      --config.data.offline.num_val=1000 \
      --config.data.offline.num_test=1000 \
      --config.train.num_train_steps=1200 \
      --config.train.eval_frequency=300 \
      --config.train.checkpoint_every=300 \
      --config.optimizer.warmup_steps=120 \
      "${extra[@]}"
  done
done
