"""One process of the two-process training test (tests/multihost_test.py).

  python tests/multihost_worker.py PROCESS_ID NUM_PROCESSES PORT WORKDIR OUT \
    [NUM_TRAIN_STEPS]

Joins a `jax.distributed` job on 127.0.0.1:PORT with one CPU device, trains
the tiny ListOps config in WORKDIR (shared by the processes), and writes its
results and its own copy of the final parameters to OUT (.npz). A run
stopped by a preemption notice (SIGTERM to any process) writes only
{"preempted_step": step} to OUT.json and exits 0.
"""

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ["JAX_PLATFORMS"] = "cpu"
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=1"

# After the environment above, which jax reads at import.
import jax  # noqa: E402
import numpy as np  # noqa: E402
from tiny_config import tiny_config  # noqa: E402

from macformer_jax import training  # noqa: E402


def main(process_id, num_processes, port, workdir, out, num_train_steps=4):
  # Cross-process collectives on CPU need an implementation (none by default).
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.config.update("jax_disable_most_optimizations", True)  # as conftest
  jax.distributed.initialize(
    f"127.0.0.1:{port}",
    num_processes=num_processes,
    process_id=process_id,
    initialization_timeout=60,
  )
  config = tiny_config(
    "macformer_exp",
    num_train_steps=num_train_steps,
    log_every=1,
    eval_frequency=4,
    checkpoint_every=2,
    num_devices=0,
  )
  try:
    results, state = training.run(config, workdir)
  except training.Preempted as e:
    with open(out + ".json", "w") as f:
      json.dump({"preempted_step": e.step}, f)
    jax.distributed.shutdown()
    return
  params = {
    jax.tree_util.keystr(path): np.asarray(x.addressable_data(0))
    for path, x in jax.tree_util.tree_leaves_with_path(state.params)
  }
  np.savez(out, **params)
  with open(out + ".json", "w") as f:
    json.dump(
      {
        "process_index": jax.process_index(),
        "process_count": jax.process_count(),
        "devices": len(jax.devices()),
        "results": results,
      },
      f,
    )
  jax.distributed.shutdown()


if __name__ == "__main__":
  main(
    int(sys.argv[1]),
    int(sys.argv[2]),
    int(sys.argv[3]),
    sys.argv[4],
    sys.argv[5],
    *map(int, sys.argv[6:]),
  )
