"""Pathfinder-32 (docs/METHOD.md §8.1), 2 classes, 1024 pixels.

Path-X: `--config.data.options.resolution=128` (max_len follows: 16384).

Offline smoke run (synthetic Pathfinder-style images, no download):
  python run_lra.py --config=configs/pathfinder.py:macformer_exp,smoke
LRA run (preset `lra`, compare with the LRA paper's Table 1, Transformer 71.40):
  python run_lra.py --config=configs/pathfinder.py:softmax \
    --config.data.data_dir=$HOME/lra_release/lra_release
Authors' model (preset `macformer`):
  python run_lra.py \
    --config=configs/pathfinder.py:macformer_exp,preset=macformer \
    --config.data.data_dir=...

Pixel ids are shifted by +1 in lra_tasks, so black pixels are not padding
(in LRA they were masked, docs/METHOD.md §8.5).

Preset `lra` is the LRA repo's pathfinder32 transformer_base config: emb 32,
4 heads, 4 layers, qkv 16, MLP 32, MEAN pooling, sinusoidal positions,
dropout 0.2, attention dropout 0.1, batch 512, lr 1e-3 * linear_warmup *
cosine_decay with warmup 312 and one cycle over the run, no weight decay,
62400 steps (200 epochs), eval every 312 steps. The paper's appendix says
4 layers, 8 heads, FFN 128, qkv 128, lr 0.01.

Differences from the original: no pixel is treated as padding; MEAN pooling
averages real tokens (here: all pixels, as none is padding); the whole val/
test split is evaluated; checkpoints every 3120 steps; test accuracy of the
best-eval and the last checkpoint (`test_accuracy` = last).

Preset `macformer`: the authors' code has no Pathfinder config (docs/METHOD.md
§8.3); this uses Skyformer's settings with the authors' model: batch 128, peak
lr 2e-4, warmup 312, 50000 steps, eval every 500 steps on the whole val split.
"""

from ml_collections import config_dict

try:  # imported as a package: configs (a checkout) or the installed copy
  from . import common  # macformer_jax.training.configs
except ImportError:  # loaded by path (--config=configs/<task>.py)
  from configs import common


def get_config(arg: str = None) -> config_dict.ConfigDict:
  """Pathfinder config; `arg`: '<attention>[,preset=lra|macformer][,smoke]'."""
  args = common.parse_task_arg(arg)
  config = common.get_base_config()
  config.task = "pathfinder"
  with config.data.unlocked():
    config.data.options = config_dict.ConfigDict(
      {  # pathfinder.load
        "resolution": 32,  # 32 (LRA Pathfinder); 128 = Path-X (max_len 16384)
        "difficulty": "hard",  # LRA uses 'hard' (curv_contour_length_14)
        "shift_ids": True,  # id = pixel + 1, so black is not padding
      }
    )
  # One pixel per position: resolution 32 -> 1024, 128 (Path-X) -> 16384,
  # whatever the resolution is set to (an explicit data.max_len wins).
  resolution = config.data.options.get_ref("resolution")
  config.data.max_len = resolution * resolution
  common.with_attention(config, args.attention)
  m = config.model
  m.emb_dim, m.num_heads, m.num_layers = 32, 4, 4
  m.qkv_dim, m.mlp_dim = 16, 32
  m.dropout_rate, m.attention_dropout_rate = 0.2, 0.1
  m.pos_emb, m.pooling = "sinusoidal", "MEAN"
  config.data.batch_size = 512
  o = config.optimizer
  o.schedule, o.learning_rate = "lra", 1e-3
  o.factors, o.warmup_steps = "constant * linear_warmup * cosine_decay", 312
  o.steps_per_cycle = config.train.get_ref("num_train_steps")
  o.weight_decay = 0.0
  t = config.train
  t.num_train_steps, t.eval_frequency, t.checkpoint_every = 62400, 312, 3120
  if args.preset == "macformer":
    common.apply_macformer_preset(
      config,
      max_len=resolution * resolution,
      batch_size=128,
      learning_rate=2e-4,
      warmup_steps=312,
      num_train_steps=50000,
      eval_frequency=500,
      num_eval_batches=-1,
    )
  if args.smoke:
    common.apply_smoke(config)
    with config.data.unlocked():
      config.data.offline = config_dict.ConfigDict(
        {  # pathfinder.generate
          "num_images": 640,  # split 80/10/10; about 20 ms per image
          "resolution": config.data.options.get_ref("resolution"),
          # only the difficulty that data.options.difficulty reads
          "difficulties": config.data.options.get_ref("difficulty"),
        }
      )
  return config.lock()
