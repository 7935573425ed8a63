"""Checks a run config once, before any data is generated or read.

`check_config(config)` raises `ConfigError` (a ValueError whose message is
one line naming the config key, e.g. `train.num_train_steps=-5: must be
>= 1`) for values the run cannot use, and shortens a one-cycle warmup that
does not fit the steps (with a warning), so that a short try-out of any
preset runs.
"""

from collections.abc import Callable
import math
from typing import Any

from absl import logging

import lra_tasks
from macformer_jax import attention
from macformer_jax import kernels


class ConfigError(ValueError):
  """A config value the run cannot use; the message is one line.

  `key` is the config key (e.g. 'train.num_train_steps'), or None.
  """

  def __init__(self, message: str, key: str | None = None):
    super().__init__(message)
    self.key = key


def _positive(v):
  return v >= 1, "must be >= 1"


def _non_negative(v):
  return v >= 0, "must be >= 0"


def _probability(v):
  return 0.0 <= v < 1.0, "must be in [0, 1)"


def _one_of(*values):
  return lambda v: (v in values, f"must be one of {', '.join(values)}")


# key -> its test: (ok, what it must be).
_RANGES: dict[str, Callable[[Any], tuple[bool, str]]] = {
  "train.num_train_steps": _positive,
  "train.eval_frequency": _positive,
  "train.log_every": _positive,
  "train.checkpoint_every": _non_negative,
  "train.keep_checkpoints": _positive,
  "train.num_eval_batches": lambda v: (v >= -1, "must be >= -1 (-1 = all)"),
  "train.num_devices": _non_negative,
  "train.parallelism": _one_of("sharding", "pmap"),
  "train.cpu_ynnpack": _one_of("auto", "on", "off"),
  "data.batch_size": _positive,
  "data.max_len": _positive,
  "model.emb_dim": _positive,
  "model.num_heads": _positive,
  "model.num_layers": _positive,
  "model.qkv_dim": _positive,
  "model.mlp_dim": _positive,
  "model.head_hidden_layers": _non_negative,
  "model.dropout_rate": _probability,
  "model.attention_dropout_rate": _probability,
  "model.embed_init_std": lambda v: (v > 0, "must be > 0"),
  "model.pos_emb": _one_of("sinusoidal", "learned", "none"),
  "model.pooling": _one_of("CLS", "MEAN"),
  "model.dtype": _one_of("float32", "bfloat16"),
  "attention.redraw_every": _non_negative,
  "attention.options.num_features": _positive,
  "optimizer.schedule": _one_of("lra", "one_cycle"),
  "optimizer.learning_rate": lambda v: (v > 0, "must be > 0"),
  "optimizer.warmup_steps": _non_negative,
  "optimizer.b1": _probability,
  "optimizer.b2": _probability,
  "optimizer.eps": lambda v: (v > 0, "must be > 0"),
  "optimizer.weight_decay": _non_negative,
  "optimizer.grad_clip_value": _non_negative,
  "optimizer.grad_clip_norm": _non_negative,
}


def _get(config: Any, key: str) -> Any | None:
  node = config
  for part in key.split("."):
    if part not in node:
      return None
    node = node[part]
  return node


def _fail(key: str, value: Any, message: str) -> None:
  raise ConfigError(f"{key}={value!r}: {message}", key)


def _check_qk_scale(config: Any) -> None:
  """A fixed q/k scale inside the kernel's radius of convergence."""
  options = config.attention.options
  kernel = options.get("kernel")
  scale = options.get("qk_scale")
  if kernel is None or scale is None or options.get("learn_qk_scale"):
    return
  if not math.isfinite(scale) or scale <= 0:
    _fail("attention.options.qk_scale", scale, "must be finite and > 0")
  radius = kernels.get(kernel).radius
  if math.isfinite(radius) and scale * scale >= radius:
    _fail(
      "attention.options.qk_scale",
      scale,
      f"|q.k| reaches qk_scale^2 = {scale * scale:.3g}, outside the "
      f"radius of convergence {radius:g} of the {kernel!r} kernel; use "
      f"a value below {math.sqrt(radius):g} (well-behaved up to "
      f"{attention.max_qk_scale(kernel):.3g}), the preset "
      f"macformer_{kernel}_tuned, or "
      "--config.attention.options.learn_qk_scale=true",
    )


def _fit_warmup(config: Any) -> None:
  """Shortens a one-cycle warmup that does not fit the steps (warns)."""
  o, steps = config.optimizer, config.train.num_train_steps
  if o.schedule != "one_cycle" or 1 < o.warmup_steps < steps:
    return
  if steps < 3:
    _fail(
      "train.num_train_steps", steps, "the one_cycle schedule needs >= 3 steps"
    )
  warmup = max(2, steps // 10)
  logging.warning(
    "optimizer.warmup_steps=%d does not fit "
    "train.num_train_steps=%d: shortened to %d (one_cycle "
    "needs 1 < warmup_steps < num_train_steps)",
    o.warmup_steps,
    steps,
    warmup,
  )
  o.warmup_steps = warmup


def check_config(config: Any) -> None:
  """Checks the values of a run config; shortens a warmup that does not fit.

  Raises:
    ConfigError: an unset or unknown task, or a value out of its range (one
      line naming the key).
  """
  if config.task is None:
    raise ConfigError("task is unset; use a configs/<task>.py file")
  if config.task not in lra_tasks.TASKS:
    _fail("task", config.task, f"unknown; known: {', '.join(lra_tasks.TASKS)}")
  for key, test in _RANGES.items():
    value = _get(config, key)
    if value is None:
      continue
    ok, requirement = test(value)
    if not ok:
      _fail(key, value, requirement)
  m = config.model
  if m.qkv_dim % m.num_heads:
    _fail(
      "model.qkv_dim",
      m.qkv_dim,
      f"must be a multiple of model.num_heads={m.num_heads}",
    )
  _check_qk_scale(config)
  _fit_warmup(config)
