"""Learning-rate schedules and the optax optimizer of a run config.

Two schedules:

* `create_learning_rate_schedule`: LRA's product of named factors
  (utils/train_utils.py `create_learning_rate_scheduler`, docs/METHOD.md §8.4),
  e.g. 'constant * linear_warmup * rsqrt_decay' =
  base_lr * min(1, step / warmup) / sqrt(max(step, warmup)), not normalised,
  0 at step 0.
* `one_cycle_schedule`: PyTorch's `OneCycleLR(anneal_strategy='linear',
  three_phase=False)` as the Macformer authors ran it (docs/METHOD.md §8.3),
  with beta1 cycled in the opposite direction (`one_cycle_b1_schedule`).

`create_optimizer(config.optimizer, num_train_steps)` returns the optax
transformation and the learning-rate function (for logging). The schedule is
evaluated at the optimizer's step count *before* the update, as in LRA's flax
optimizer and PyTorch's scheduler.
"""

from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import optax

Schedule = Callable[[Any], Any]

FACTORS = (
  "constant",
  "linear_warmup",
  "rsqrt_decay",
  "rsqrt_normalized_decay",
  "decay_every",
  "cosine_decay",
)
SCHEDULES = ("lra", "one_cycle")


def create_learning_rate_schedule(
  factors: str,
  base_learning_rate: float,
  warmup_steps: int = 1000,
  decay_factor: float = 0.5,
  steps_per_decay: int = 20000,
  steps_per_cycle: int = 100000,
) -> Schedule:
  """LRA's factor schedule: the product of the named factors.

  Args:
    factors: '*'-separated names: constant (base_learning_rate),
      linear_warmup (min(1, step / warmup)), rsqrt_decay
      (1 / sqrt(max(step, warmup))), rsqrt_normalized_decay
      (sqrt(warmup) / sqrt(max(step, warmup))), decay_every
      (decay_factor ** (step // steps_per_decay)), cosine_decay
      (max(0, 0.5 (1 + cos(pi ((max(0, step - warmup) / cycle) mod 1))))).
    base_learning_rate: the constant factor.
    warmup_steps: warmup length.
    decay_factor, steps_per_decay: of 'decay_every'.
    steps_per_cycle: of 'cosine_decay'.

  Returns:
    step -> learning rate (float32 scalar; jit-compatible).

  Raises:
    ValueError: an unknown factor name.
  """
  names = [n.strip() for n in factors.split("*") if n.strip()]
  unknown = [n for n in names if n not in FACTORS]
  if unknown:
    raise ValueError(
      f"unknown learning-rate factor(s) {unknown}; known: {', '.join(FACTORS)}"
    )

  def schedule(step):
    step = jnp.asarray(step, jnp.float32)
    ret = jnp.asarray(1.0, jnp.float32)
    for name in names:
      if name == "constant":
        ret *= base_learning_rate
      elif name == "linear_warmup":
        ret *= jnp.minimum(1.0, step / warmup_steps)
      elif name == "rsqrt_decay":
        ret /= jnp.sqrt(jnp.maximum(step, warmup_steps))
      elif name == "rsqrt_normalized_decay":
        ret *= jnp.sqrt(warmup_steps) / jnp.sqrt(
          jnp.maximum(step, warmup_steps)
        )
      elif name == "decay_every":
        ret *= decay_factor ** (step // steps_per_decay)
      elif name == "cosine_decay":
        progress = jnp.maximum(0.0, (step - warmup_steps) / steps_per_cycle)
        ret *= jnp.maximum(
          0.0, 0.5 * (1.0 + jnp.cos(jnp.pi * (progress % 1.0)))
        )
    return ret

  return schedule


def _one_cycle(
  total_steps: int, warmup_steps: int, start: float, peak: float, end: float
) -> Schedule:
  """Two linear phases as in torch OneCycleLR: start -> peak -> end.

  The phase boundary is at step `warmup_steps - 1` (PyTorch:
  pct_start * total_steps - 1 with pct_start = warmup / total), the end at
  `total_steps - 1`.
  """
  if total_steps < 2:
    raise ValueError(f"one_cycle needs at least 2 steps, got {total_steps}")
  mid = float(warmup_steps) - 1.0
  last = float(total_steps) - 1.0
  if not 0.0 < mid < last:
    raise ValueError(
      f"one_cycle needs 1 < warmup_steps < num_train_steps, "
      f"got warmup_steps={warmup_steps}, "
      f"num_train_steps={total_steps}"
    )

  def schedule(step):
    step = jnp.asarray(step, jnp.float32)
    # a (1 - t) + b t rather than a + (b - a) t: exact at both ends in float32
    rise = step / mid
    fall = (step - mid) / (last - mid)
    return jnp.where(
      step <= mid,
      start * (1.0 - rise) + peak * rise,
      peak * (1.0 - fall) + end * fall,
    )

  return schedule


def one_cycle_schedule(
  num_train_steps: int,
  warmup_steps: int,
  peak_learning_rate: float,
  div_factor: float = 25.0,
  final_div_factor: float = 1e4,
) -> Schedule:
  """PyTorch OneCycleLR (linear annealing, two phases) learning rate.

  Starts at peak / div_factor, rises linearly to the peak at step
  warmup_steps - 1, then falls linearly to peak / div_factor /
  final_div_factor at step num_train_steps - 1.

  Args:
    num_train_steps: total optimizer steps.
    warmup_steps: length of the rising phase (pct_start * total in PyTorch).
    peak_learning_rate: max_lr.
    div_factor, final_div_factor: as in PyTorch.

  Returns:
    step -> learning rate.
  """
  initial = peak_learning_rate / div_factor
  return _one_cycle(
    num_train_steps,
    warmup_steps,
    initial,
    peak_learning_rate,
    initial / final_div_factor,
  )


def one_cycle_b1_schedule(
  num_train_steps: int,
  warmup_steps: int,
  b1_max: float = 0.95,
  b1_min: float = 0.85,
) -> Schedule:
  """PyTorch OneCycleLR's momentum cycling, applied to Adam's beta1.

  b1_max -> b1_min while the learning rate rises, then back to b1_max.
  """
  return _one_cycle(num_train_steps, warmup_steps, b1_max, b1_min, b1_max)


def create_optimizer(
  optimizer_config: Any, num_train_steps: int
) -> tuple[optax.GradientTransformation, Schedule]:
  """The optax optimizer and learning-rate schedule of `config.optimizer`.

  AdamW with the decay scaled by the learning rate and applied to every
  parameter: LRA's flax `Adam(weight_decay=wd)` (docs/METHOD.md §8.4) and the
  authors' torch AdamW. Gradient clipping (by value, the authors' 1.0; by
  global norm, LRA's Pathfinder-128) comes first.

  Args:
    optimizer_config: `config.optimizer`.
    num_train_steps: total steps (the one-cycle schedule depends on it).

  Returns:
    (transformation, learning_rate_fn).

  Raises:
    ValueError: an unknown schedule.
  """
  o = optimizer_config
  if o.schedule == "lra":
    lr_fn = create_learning_rate_schedule(
      o.factors,
      o.learning_rate,
      warmup_steps=o.warmup_steps,
      decay_factor=o.decay_factor,
      steps_per_decay=o.steps_per_decay,
      steps_per_cycle=o.steps_per_cycle,
    )
    b1 = o.b1
  elif o.schedule == "one_cycle":
    lr_fn = one_cycle_schedule(
      num_train_steps,
      o.warmup_steps,
      o.learning_rate,
      o.div_factor,
      o.final_div_factor,
    )
    b1 = one_cycle_b1_schedule(num_train_steps, o.warmup_steps, o.b1, o.b1_min)
  else:
    raise ValueError(
      f"unknown optimizer.schedule {o.schedule!r}; known: "
      f"{', '.join(SCHEDULES)}"
    )
  chain = []
  if o.grad_clip_value:
    chain.append(optax.clip(o.grad_clip_value))
  if o.grad_clip_norm:
    chain.append(optax.clip_by_global_norm(o.grad_clip_norm))
  chain.append(
    optax.inject_hyperparams(optax.adamw)(
      learning_rate=lr_fn,
      b1=b1,
      b2=o.b2,
      eps=o.eps,
      weight_decay=o.weight_decay,
    )
  )
  return optax.chain(*chain), lr_fn
