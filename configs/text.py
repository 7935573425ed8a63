"""Text: IMDB byte-level classification (docs/METHOD.md §8.1), 2 classes.

Offline smoke run (synthetic reviews in TFDS imdb_reviews format, no download):
  python run_lra.py --config=configs/text.py:macformer_exp,smoke
LRA run (preset `lra`, compare with the LRA paper's Table 1, Transformer 64.27):
  python run_lra.py --config=configs/text.py:softmax \
    --config.data.data_dir=$HOME/tensorflow_datasets
Authors' model (preset `macformer`, L = 4000):
  python run_lra.py --config=configs/text.py:macformer_exp,preset=macformer \
    --config.data.data_dir=$HOME/tensorflow_datasets

`data.data_dir` is the TFDS data dir holding `imdb_reviews` prepared in the
array_record format (unset: TFDS's default dir); `data.options.download=True`
prepares it first (network). IMDB has no validation split: LRA and
lra_tasks evaluate on the test split during training too.

Preset `lra` is the LRA repo's base config (text_classification/configs/
base_tc_config.py): emb 256, 4 heads, 4 layers, qkv 256, MLP 1024, L 1000,
CLS, sinusoidal positions, dropout 0.1/0.1, batch 32, lr 0.05 *
linear_warmup * rsqrt_decay with warmup 8000, weight decay 0.1, 20000 steps,
eval every 100 steps. The paper's appendix says 512 hidden, 6 layers, FFN
2048, and lengths {1K, 2K, 3K, 4K} with the best reported (docs/METHOD.md §8.3);
override `model.*` and `data.max_len` to run that.

Differences from the original: padding masked in every attention; checkpoints
every 1000 steps (LRA: 10000); test accuracy of both the best-eval and the
last checkpoint (`test_accuracy` is the last, as LRA reported).

Preset `macformer` (docs/METHOD.md §8.3): L 4000, batch 32, peak lr 1e-4, warmup
80, 10000 steps, eval every 500 steps on 200 batches.
"""

from ml_collections import config_dict

try:  # imported as a package: configs (a checkout) or the installed copy
  from . import common  # macformer_jax.training.configs
except ImportError:  # loaded by path (--config=configs/<task>.py)
  from configs import common


def get_config(arg: str = None) -> config_dict.ConfigDict:
  """Text config; `arg` is '<attention>[,preset=lra|macformer][,smoke]'."""
  args = common.parse_task_arg(arg)
  config = common.get_base_config()
  config.task = "text"
  config.data.max_len = 1000
  with config.data.unlocked():
    config.data.options = config_dict.ConfigDict(
      {  # lra_tasks.text.load
        "download": False,  # prepare imdb_reviews with TFDS first (network)
      }
    )
  common.with_attention(config, args.attention)
  m = config.model
  m.emb_dim, m.num_heads, m.num_layers = 256, 4, 4
  m.qkv_dim, m.mlp_dim = 256, 1024
  m.dropout_rate = m.attention_dropout_rate = 0.1
  m.pos_emb, m.pooling = "sinusoidal", "CLS"
  config.data.batch_size = 32
  o = config.optimizer
  o.schedule, o.learning_rate = "lra", 0.05
  o.factors, o.warmup_steps = "constant * linear_warmup * rsqrt_decay", 8000
  o.weight_decay = 0.1
  t = config.train
  t.num_train_steps, t.eval_frequency, t.checkpoint_every = 20000, 100, 1000
  if args.preset == "macformer":
    common.apply_macformer_preset(
      config,
      max_len=4000,
      batch_size=32,
      learning_rate=1e-4,
      warmup_steps=80,
      num_train_steps=10000,
      eval_frequency=500,
      num_eval_batches=200,
    )
  if args.smoke:
    common.apply_smoke(config, max_len=256)
    with config.data.unlocked():
      config.data.offline = config_dict.ConfigDict(
        {  # text.generate args
          "num_train": 2000,
          "num_test": 500,  # synthetic reviews (TFDS)
          "review_words": 50,  # mean words per review (~300 bytes)
        }
      )
  return config.lock()
