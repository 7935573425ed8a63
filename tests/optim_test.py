"""Tests of macformer_jax.optim against hand-computed values."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import common
from macformer_jax import optim


def _lr(schedule, step):
  return float(schedule(step))


def test_lra_listops_schedule_step0_and_end_of_warmup():
  """const * linear_warmup * rsqrt_decay, base 0.05, warmup 1000 (docs/METHOD.md
  §8.4): 0 at step 0, 0.05 / sqrt(1000) = 1.581e-3 at the end of warmup,
  7.07e-4 at step 5000."""
  lr = optim.create_learning_rate_schedule(
    "constant * linear_warmup * rsqrt_decay", 0.05, warmup_steps=1000
  )
  assert _lr(lr, 0) == 0.0
  np.testing.assert_allclose(_lr(lr, 1000), 0.05 / math.sqrt(1000), rtol=1e-6)
  np.testing.assert_allclose(
    _lr(lr, 500), 0.05 * 0.5 / math.sqrt(1000), rtol=1e-6
  )
  np.testing.assert_allclose(_lr(lr, 5000), 0.05 / math.sqrt(5000), rtol=1e-6)


def test_lra_retrieval_never_finishes_warmup():
  """docs/METHOD.md §8.4: 0.05 * (5000/8000) / sqrt(8000) = 3.49e-4 at 5000."""
  lr = optim.create_learning_rate_schedule(
    "constant * linear_warmup * rsqrt_decay", 0.05, warmup_steps=8000
  )
  np.testing.assert_allclose(_lr(lr, 5000), 3.494e-4, rtol=1e-3)


def test_lra_cosine_and_other_factors():
  lr = optim.create_learning_rate_schedule(
    "constant * linear_warmup * cosine_decay",
    5e-4,
    warmup_steps=175,
    steps_per_cycle=35000,
  )
  assert _lr(lr, 0) == 0.0
  np.testing.assert_allclose(_lr(lr, 175), 5e-4, rtol=1e-6)
  np.testing.assert_allclose(_lr(lr, 175 + 17500), 2.5e-4, rtol=1e-5)
  norm = optim.create_learning_rate_schedule(
    "constant * rsqrt_normalized_decay * decay_every",
    1.0,
    warmup_steps=100,
    decay_factor=0.5,
    steps_per_decay=300,
  )
  np.testing.assert_allclose(_lr(norm, 50), 1.0, rtol=1e-6)
  np.testing.assert_allclose(
    _lr(norm, 400), math.sqrt(100 / 400) * 0.5, rtol=1e-6
  )


def test_unknown_factor_raises():
  with pytest.raises(ValueError, match="unknown learning-rate factor.*known"):
    optim.create_learning_rate_schedule("constant * rsqrt", 1.0)


def _torch_one_cycle(step, total, pct_start, max_lr, div, final_div):
  """PyTorch OneCycleLR(anneal_strategy='linear', three_phase=False), as in
  torch/optim/lr_scheduler.py, written out for a reference."""
  initial = max_lr / div
  phases = [
    (float(pct_start * total) - 1, initial, max_lr),
    (total - 1, max_lr, initial / final_div),
  ]
  start = 0
  for i, (end, lo, hi) in enumerate(phases):
    if step <= end or i == len(phases) - 1:
      pct = (step - start) / (end - start)
      return (hi - lo) * pct + lo
    start = end


@pytest.mark.parametrize("step", [0, 1, 500, 998, 999, 1000, 5000, 9999])
def test_one_cycle_matches_pytorch(step):
  total, warmup, peak = 10000, 1000, 1e-4
  lr = optim.one_cycle_schedule(total, warmup, peak)
  expected = _torch_one_cycle(step, total, warmup / total, peak, 25.0, 1e4)
  np.testing.assert_allclose(_lr(lr, step), expected, rtol=1e-5)


def test_one_cycle_endpoints_and_b1():
  lr = optim.one_cycle_schedule(100, 10, 1e-3)
  np.testing.assert_allclose(_lr(lr, 0), 1e-3 / 25, rtol=1e-6)
  np.testing.assert_allclose(_lr(lr, 9), 1e-3, rtol=1e-6)
  np.testing.assert_allclose(_lr(lr, 99), 1e-3 / 25 / 1e4, rtol=1e-5)
  b1 = optim.one_cycle_b1_schedule(100, 10, 0.95, 0.85)
  np.testing.assert_allclose(
    [_lr(b1, s) for s in (0, 9, 99)], [0.95, 0.85, 0.95], rtol=1e-6
  )
  with pytest.raises(ValueError, match="warmup_steps"):
    optim.one_cycle_schedule(10, 10, 1e-3)


def _config(preset):
  config = common.get_base_config()
  common.with_attention(config, "softmax")
  if preset == "macformer":
    common.apply_macformer_preset(
      config,
      max_len=8,
      batch_size=2,
      learning_rate=1e-3,
      warmup_steps=3,
      num_train_steps=10,
      eval_frequency=5,
      num_eval_batches=-1,
    )
  return config


def test_lra_optimizer_is_adam_with_decoupled_decay():
  """Flax Adam(0.9, 0.98, 1e-9, weight_decay=wd): p -= lr (m^ / (sqrt(v^) +
  eps) + wd p), bias correction at t = step + 1 (docs/METHOD.md §8.4)."""
  config = _config("lra")
  config.optimizer.warmup_steps = 2
  tx, lr_fn = optim.create_optimizer(config.optimizer, 10)
  params = {"w": jnp.array([1.0, -2.0])}
  grads = [jnp.array([0.5, 0.1]), jnp.array([-0.3, 0.2])]
  state = tx.init(params)
  p = np.array([1.0, -2.0])
  m = v = np.zeros(2)
  for t, grad in enumerate(grads):
    updates, state = tx.update({"w": grad}, state, params)
    params = jax.tree.map(lambda a, u: a + u, params, updates)
    g = np.asarray(grad)
    m = 0.9 * m + 0.1 * g
    v = 0.98 * v + 0.02 * g * g
    mhat, vhat = m / (1 - 0.9 ** (t + 1)), v / (1 - 0.98 ** (t + 1))
    lr = 0.05 * min(1, t / 2) / math.sqrt(max(t, 2))
    p = p - lr * (mhat / (np.sqrt(vhat) + 1e-9) + 0.1 * p)
    np.testing.assert_allclose(params["w"], p, rtol=1e-5)
  assert float(lr_fn(0)) == 0.0


def test_macformer_optimizer_clips_values_and_cycles_b1():
  config = _config("macformer")
  tx, lr_fn = optim.create_optimizer(config.optimizer, 10)
  params = {"w": jnp.zeros(3)}
  state = tx.init(params)
  updates, state = tx.update({"w": jnp.array([5.0, -0.5, -7.0])}, state, params)
  # Step 0: b1 = 0.95, clipped g = [1, -0.5, -1]; Adam's first step is
  # -lr * g / (|g| + eps) = -lr * sign(g) (no decay: weight_decay 0).
  lr0 = 1e-3 / 25
  np.testing.assert_allclose(updates["w"], [-lr0, lr0, lr0], rtol=1e-4)
  hyper = state[-1].hyperparams
  np.testing.assert_allclose(hyper["b1"], 0.95, rtol=1e-6)
  updates, state = tx.update({"w": jnp.ones(3)}, state, params)
  np.testing.assert_allclose(
    state[-1].hyperparams["b1"], 0.95 - 0.1 / 2, rtol=1e-6
  )
  np.testing.assert_allclose(float(lr_fn(2)), 1e-3, rtol=1e-6)


def test_unknown_schedule_raises():
  config = _config("lra")
  config.optimizer.schedule = "cosine"
  with pytest.raises(ValueError, match="unknown optimizer.schedule"):
    optim.create_optimizer(config.optimizer, 10)
