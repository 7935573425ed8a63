"""The tiny ListOps run config shared by the trainer tests (and the
multi-host worker): a 1-layer emb-16 model on trees of 5-60 tokens, L = 64."""

from configs import listops


def tiny_config(attention="softmax", **train):
  """`configs/listops.py:<attention>,smoke`, shrunk; `train` overrides
  `config.train` keys (default: 40 steps on one device)."""
  config = listops.get_config(f"{attention},smoke")
  m = config.model
  m.emb_dim, m.qkv_dim, m.mlp_dim, m.num_heads, m.num_layers = 16, 16, 32, 2, 1
  if "num_features" in config.attention.options:
    config.attention.options.num_features = 16
  config.data.max_len = 64
  config.data.batch_size = 8
  config.data.offline.update(
    {
      "num_train": 400,
      "num_val": 40,
      "num_test": 36,
      "min_length": 4,
      "max_length": 60,
      "max_depth": 4,
    }
  )
  config.optimizer.warmup_steps = 10
  config.optimizer.learning_rate = 0.02
  t = config.train
  t.num_train_steps, t.eval_frequency, t.log_every = 40, 20, 10
  t.checkpoint_every, t.num_devices = 20, 1
  for key, value in train.items():
    t[key] = value
  return config
