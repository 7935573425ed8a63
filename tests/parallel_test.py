"""The same run on 1 and on 2 devices, for both engines (dropout on).

conftest.py gives this process 2 simulated CPU devices. Dropout masks are
functions of (seed, step, example) and never of the device (steps.py), so
the train losses, the final parameters and the test metrics agree up to the
order of float summation: each loss is a sum of 8 float32 per-example terms
(relative rounding ~1e-7 each), hence rtol 1e-5 on losses; parameters after
4 Adam updates of size <= lr ~ 1e-3, hence atol 1e-6 (rtol 1e-4).
"""

import json
import os

import jax
import numpy as np
import pytest
from tiny_config import tiny_config

from macformer_jax import training

pytestmark = pytest.mark.usefixtures("compile_fast")


def _run(tmp_path, parallelism, num_devices):
  config = tiny_config(
    "macformer_exp",
    num_train_steps=4,
    log_every=1,
    eval_frequency=4,
    checkpoint_every=4,
    num_devices=num_devices,
    parallelism=parallelism,
  )
  assert config.model.dropout_rate > 0
  workdir = str(tmp_path / f"{parallelism}{num_devices}")
  results, state = training.run(config, workdir)
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    losses = [r["loss"] for r in map(json.loads, f) if r["split"] == "train"]
  return results, losses, jax.device_get(state.params)


@pytest.mark.parametrize("parallelism", ["sharding", "pmap"])
def test_one_and_two_devices_give_the_same_run(tmp_path, parallelism):
  assert jax.local_device_count() == 2
  r1, losses1, params1 = _run(tmp_path, parallelism, 1)
  r2, losses2, params2 = _run(tmp_path, parallelism, 2)
  assert (r1["num_devices"], r2["num_devices"]) == (1, 2)
  assert r2["parallelism"] == parallelism
  assert len(losses1) == 4
  np.testing.assert_allclose(losses2, losses1, rtol=1e-5)
  jax.tree.map(
    lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
    params2,
    params1,
  )
  assert r2["test_loss"] == pytest.approx(r1["test_loss"], rel=1e-5)
  assert r2["test_accuracy"] == r1["test_accuracy"]
  assert r2["best_eval_accuracy"] == r1["best_eval_accuracy"]


def test_cpu_ynnpack_setting_picks_the_compile_options():
  """'auto' turns XLA:CPU's YNNPACK fusions off for the linear-time cores
  and keeps XLA's default for the quadratic ones; 'on'/'off' force it; the
  options compile (this jaxlib knows them) and give the same step."""
  options = training.cpu_compiler_options
  off = {"xla_cpu_experimental_ynn_fusion_type": ""}
  assert options("auto", "rmfa") == off
  assert options("auto", "performer") == off
  assert options("auto", "softmax") == {}
  assert options("auto", "exact_kernel") == {}
  assert options("on", "rmfa") == {}
  assert options("off", "softmax") == off
  x = np.random.default_rng(0).normal(size=(64, 48)).astype(np.float32)
  f = lambda a: jax.nn.gelu(a @ a.T) @ a
  np.testing.assert_allclose(
    jax.jit(f, compiler_options=off)(x), jax.jit(f)(x), rtol=1e-5, atol=1e-5
  )


def test_unknown_cpu_ynnpack_setting_is_a_clear_error(tmp_path):
  config = tiny_config()
  config.train.cpu_ynnpack = "yes"
  with pytest.raises(ValueError, match=r"train.cpu_ynnpack.*auto, on, off"):
    training.run(config, str(tmp_path))
