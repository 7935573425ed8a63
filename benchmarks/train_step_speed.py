r"""Training-step speed of attention variants on an LRA config.

Times the real `training.train_step` (forward, backward, AdamW update) of the
model a config builds, on random tokens (no data needed), for each
attention, and prints and writes JSON:

  python benchmarks/train_step_speed.py --task=listops --preset=lra \
    --attentions=softmax,macformer_exp --max_len=2000 --steps=3

`--batch_size=0` keeps the config's batch size (ListOps lra: 32). One
process, one device (`train.num_devices=1`) unless `--num_devices` says
otherwise. The first step (compilation) is timed separately; steps/s is
measured over the following `--steps` steps. On a CPU, pass a small batch:
softmax at L=2000, batch 32 needs tens of GiB.
"""

import importlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
import lra_tasks
from macformer_jax import encoder
from macformer_jax import optim
from macformer_jax import training

_TASK = flags.DEFINE_string("task", "listops", "LRA task config to use.")
_PRESET = flags.DEFINE_enum("preset", "lra", ["lra", "macformer"],
                            "Size preset.")
_ATTENTIONS = flags.DEFINE_list("attentions", ["softmax", "macformer_exp"],
                                "Attention variants (configs/common.py).")
_MAX_LEN = flags.DEFINE_integer("max_len", 2000, "Sequence length L.")
_BATCH = flags.DEFINE_integer("batch_size", 0,
                              "Global batch; 0 = the config's.")
_STEPS = flags.DEFINE_integer("steps", 3, "Timed steps after the first.")
_DEVICES = flags.DEFINE_integer("num_devices", 1,
                                "train.num_devices (0 = all local devices).")
_PARALLELISM = flags.DEFINE_enum("parallelism", "sharding",
                                 ["sharding", "pmap"], "train.parallelism.")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"],
                           "model.dtype.")
_ISOLATE = flags.DEFINE_bool(
    "isolate", True, "Time each attention in its own process.")
_OUTPUT = flags.DEFINE_string(
    "output", "docs/train_step_speed.json", "JSON output path.")


def time_attention(variant: str) -> dict:
  """Builds the config's model with `variant` and times its train step."""
  config = importlib.import_module(f"configs.{_TASK.value}").get_config(
      f"{variant},preset={_PRESET.value}")
  config.data.max_len = _MAX_LEN.value
  config.model.dtype = _DTYPE.value
  if _BATCH.value:
    config.data.batch_size = _BATCH.value
  spec = lra_tasks.get_task(config.task).spec
  model = encoder.build_model(config, spec)
  tx, lr_fn = optim.create_optimizer(config.optimizer,
                                     config.train.num_train_steps)
  engine = training.Engine(_PARALLELISM.value, _DEVICES.value,
                           config.data.batch_size, lr_fn, spec.dual_input)
  state = training.create_train_state(config, model, spec.dual_input, tx,
                                      training.named_keys(config.seed),
                                      sharding=engine.replicated)
  rng = np.random.default_rng(0)
  shape = (config.data.batch_size, config.data.max_len)
  batch = {"inputs": rng.integers(1, spec.vocab_size, shape, np.int32),
           "targets": rng.integers(0, spec.num_classes, shape[:1], np.int32),
           "weights": np.ones(shape[:1], np.float32)}
  if spec.dual_input:
    batch["inputs2"] = rng.integers(1, spec.vocab_size, shape, np.int32)
  batch = engine.put_batch(batch)
  start = time.perf_counter()
  state, metrics = engine.train(state, batch)
  jax.block_until_ready(metrics)
  first = time.perf_counter() - start
  start = time.perf_counter()
  for _ in range(_STEPS.value):
    state, metrics = engine.train(state, batch)
  jax.block_until_ready(metrics)
  elapsed = time.perf_counter() - start
  return {
      "attention": variant,
      "core": config.attention.name,
      "num_params": int(sum(x.size for x in jax.tree.leaves(state.params))),
      "batch_size": config.data.batch_size,
      "max_len": config.data.max_len,
      "first_step_s": first,
      "steps": _STEPS.value,
      "s_per_step": elapsed / _STEPS.value,
      "steps_per_sec": _STEPS.value / elapsed,
      "loss_finite": bool(jnp.isfinite(metrics["loss"])),
  }


def _time_in_subprocess(variant: str) -> dict:
  """Times one variant in a fresh process: no memory or thread-pool state
  carried over from the variant before (one in-process run of several
  variants hung once in XLA's CPU runtime)."""
  with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "row.json")
    argv = [a for a in sys.argv[1:]
            if not a.startswith(("--attentions", "--output", "--isolate"))]
    subprocess.run([sys.executable, os.path.abspath(__file__), *argv,
                    f"--attentions={variant}", f"--output={out}",
                    "--noisolate"], check=True, stdout=subprocess.DEVNULL)
    with open(out) as f:
      return json.load(f)["results"][0]


def main(argv):
  del argv
  results = []
  for variant in _ATTENTIONS.value:
    if _ISOLATE.value and len(_ATTENTIONS.value) > 1:
      row = _time_in_subprocess(variant)
    else:
      row = time_attention(variant)
    results.append(row)
    print(f"{row['attention']:>18}: {row['steps_per_sec']:.4f} steps/s "
          f"({row['s_per_step']:.2f} s/step, first step "
          f"{row['first_step_s']:.1f} s), batch {row['batch_size']}, "
          f"L {row['max_len']}", flush=True)
  device = jax.devices()[0]
  report = {
      "benchmark": "train_step_speed",
      "task": _TASK.value, "preset": _PRESET.value, "dtype": _DTYPE.value,
      "device": f"{device.platform}: {device.device_kind}",
      "num_devices": _DEVICES.value or jax.local_device_count(),
      "parallelism": _PARALLELISM.value,
      "host": {"cpus": os.cpu_count(), "machine": platform.machine()},
      "jax": jax.__version__,
      "command": "python benchmarks/train_step_speed.py " + " ".join(
          a for a in sys.argv[1:] if not a.startswith("--output")),
      "results": results,
  }
  os.makedirs(os.path.dirname(os.path.abspath(_OUTPUT.value)), exist_ok=True)
  with open(_OUTPUT.value, "w") as f:
    json.dump(report, f, indent=2)
  print(f"wrote {_OUTPUT.value}")


if __name__ == "__main__":
  app.run(main)
