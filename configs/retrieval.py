"""Retrieval: AAN pairs, byte level, dual encoder (docs/METHOD.md §8.1).

Offline smoke run (synthetic AAN-format paper pairs, no download):
  python run_lra.py --config=configs/retrieval.py:macformer_exp,smoke
LRA run (preset `lra`, compare with the LRA paper's Table 1, Transformer 57.46):
  python run_lra.py --config=configs/retrieval.py:softmax \
    --config.data.data_dir=$HOME/lra_release/lra_release/tsv_data
Authors' model (preset `macformer`):
  python run_lra.py \
    --config=configs/retrieval.py:macformer_exp,preset=macformer \
    --config.data.data_dir=...

Both documents go through one shared encoder; the pooled vectors u, v are
combined as [u, v, u*v, u-v] and classified (encoder.DualClassifier).

Preset `lra` is the LRA repo's base config (matching/configs/
base_match_config.py): emb 128, 4 heads, 4 layers, qkv 128, MLP 512, 4000
bytes per document, CLS pooling, sinusoidal positions, dropout 0.1/0.1,
batch 32, lr 0.05 * linear_warmup * rsqrt_decay with warmup 8000 (never
reached in 5000 steps, as in LRA), weight decay 0.1, 5000 steps, eval every
100 steps; head Dense(512) -> ReLU -> Dense(256) -> ReLU -> Dense(2). The
paper's appendix says lr 0.5 (docs/METHOD.md §8.3).

Differences from the original LRA code (docs/METHOD.md §8.5), all deliberate:
  * The dual encoder is really built (LRA's `get_model` returned the single
    encoder at HEAD).
  * [u, v, u*v, u-v] as in the paper (LRA's code: [u, v] unless
    interaction='NLI').
  * CLS pooling reads a learned CLS token (LRA's dual encoder pooled the
    first byte of each document).
  * Eval and test cover every pair (LRA dropped the last partial batch).
  * Padding masked in every attention; checkpoints every 1000 steps; test
    accuracy of the best-eval and the last checkpoint (`test_accuracy` = last).

Preset `macformer` (docs/METHOD.md §8.3): L 4000 per document, batch 16, peak lr
2e-4, warmup 800, 10000 steps, eval every 1000 steps on 300 batches; head
Dense(128) -> ReLU -> Dense(2) on [u, v, u*v, u-v].
"""

from ml_collections import config_dict

try:  # imported as a package: configs (a checkout) or the installed copy
  from . import common  # macformer_jax.training.configs
except ImportError:  # loaded by path (--config=configs/<task>.py)
  from configs import common


def get_config(arg: str = None) -> config_dict.ConfigDict:
  """Retrieval config; `arg` is '<attention>[,preset=lra|macformer][,smoke]'."""
  args = common.parse_task_arg(arg)
  config = common.get_base_config()
  config.task = "retrieval"
  config.data.max_len = 4000
  common.with_attention(config, args.attention)
  m = config.model
  m.emb_dim, m.num_heads, m.num_layers = 128, 4, 4
  m.qkv_dim, m.mlp_dim = 128, 512
  m.dropout_rate = m.attention_dropout_rate = 0.1
  m.pos_emb, m.pooling = "sinusoidal", "CLS"
  m.head_hidden_layers = 2  # Dense(mlp) -> ReLU -> Dense(mlp // 2) -> ReLU
  config.data.batch_size = 32
  o = config.optimizer
  o.schedule, o.learning_rate = "lra", 0.05
  o.factors, o.warmup_steps = "constant * linear_warmup * rsqrt_decay", 8000
  o.weight_decay = 0.1
  t = config.train
  t.num_train_steps, t.eval_frequency, t.checkpoint_every = 5000, 100, 1000
  if args.preset == "macformer":
    common.apply_macformer_preset(
      config,
      max_len=4000,
      batch_size=16,
      learning_rate=2e-4,
      warmup_steps=800,
      num_train_steps=10000,
      eval_frequency=1000,
      num_eval_batches=300,
    )
  if args.smoke:
    common.apply_smoke(config, max_len=256)
    with config.data.unlocked():
      config.data.offline = config_dict.ConfigDict(
        {  # retrieval.generate
          "num_train": 2000,
          "num_val": 200,
          "num_test": 200,  # pairs
          "mean_bytes": 400,  # mean synthetic paper length
        }
      )
  return config.lock()
