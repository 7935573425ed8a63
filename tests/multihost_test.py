"""Two processes on localhost train as one job (jax.distributed, CPU, gloo).

Each process has one CPU device; together they hold the global batch of 8
(4 rows each, `make_array_from_process_local_data`). They must end with
identical parameters, and with the metrics and parameters of a run of the
same global batch in this single process on 2 devices (conftest.py). The
workers are killed after a deadline, so a hung collective fails the test
instead of hanging CI.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from tiny_config import tiny_config

from macformer_jax import training

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "multihost_worker.py")
DEADLINE_S = 240  # both workers together; a normal run takes well under it

pytestmark = pytest.mark.usefixtures("compile_fast")


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _start_workers(tmp_path, num_processes, stdouts, *extra):
  """Starts the workers of one job in <tmp_path>/multihost; returns them."""
  port = _free_port()
  env = {
    k: v
    for k, v in os.environ.items()
    if not k.startswith(("JAX_COORDINATOR", "SLURM", "OMPI_"))
  }
  return [
    subprocess.Popen(
      [
        sys.executable,
        WORKER,
        str(i),
        str(num_processes),
        str(port),
        str(tmp_path / "multihost"),
        str(tmp_path / f"process{i}.npz"),
        *extra,
      ],
      cwd=ROOT,
      env=env,
      stdout=stdouts[i],
      stderr=subprocess.STDOUT,
      text=True,
    )
    for i in range(num_processes)
  ]


def _run_workers(tmp_path, num_processes=2):
  workdir = str(tmp_path / "multihost")
  procs = _start_workers(
    tmp_path, num_processes, [subprocess.PIPE] * num_processes
  )
  logs = [""] * num_processes
  end = time.time() + DEADLINE_S
  try:
    for i, p in enumerate(procs):
      logs[i], _ = p.communicate(timeout=max(end - time.time(), 1))
  except subprocess.TimeoutExpired:
    for p in procs:
      p.kill()
    for i, p in enumerate(procs):
      logs[i] = p.communicate()[0] or ""
    pytest.fail(
      f"workers did not finish in {DEADLINE_S} s:\n"
      + "\n".join(log[-2000:] for log in logs)
    )
  for i, p in enumerate(procs):
    assert p.returncode == 0, f"process {i} failed:\n{logs[i][-4000:]}"
  return workdir


def _train_losses(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [r["loss"] for r in map(json.loads, f) if r["split"] == "train"]


def test_two_processes_train_like_one(tmp_path):
  workdir = _run_workers(tmp_path)
  outputs = []
  for i in range(2):
    with open(tmp_path / f"process{i}.npz.json") as f:
      info = json.load(f)
    assert (info["process_index"], info["process_count"], info["devices"]) == (
      i,
      2,
      2,
    )
    outputs.append(
      (info["results"], dict(np.load(tmp_path / f"process{i}.npz")))
    )
  (r0, p0), (r1, p1) = outputs
  # The replicas of one job hold the same parameters, bit for bit.
  assert sorted(p0) == sorted(p1)
  for name in p0:
    np.testing.assert_array_equal(p0[name], p1[name], err_msg=name)
  assert r0["test_loss"] == r1["test_loss"]
  assert (r0["num_hosts"], r0["num_devices"]) == (2, 2)

  # One process, 2 devices, the same global batch: the same run up to float
  # summation order (float32 rounding of a few sums, hence 1e-5 / 1e-6).
  assert jax.local_device_count() == 2
  config = tiny_config(
    "macformer_exp",
    num_train_steps=4,
    log_every=1,
    eval_frequency=4,
    checkpoint_every=2,
    num_devices=0,
  )
  reference, state = training.run(config, str(tmp_path / "single"))
  np.testing.assert_allclose(
    _train_losses(workdir), _train_losses(str(tmp_path / "single")), rtol=1e-5
  )
  params = {
    jax.tree_util.keystr(path): np.asarray(x)
    for path, x in jax.tree_util.tree_leaves_with_path(state.params)
  }
  for name, value in params.items():
    np.testing.assert_allclose(
      p0[name], value, rtol=1e-5, atol=1e-6, err_msg=name
    )
  assert r0["test_loss"] == pytest.approx(reference["test_loss"], rel=1e-5)
  assert r0["test_accuracy"] == reference["test_accuracy"]
  assert r0["num_test_examples"] == reference["num_test_examples"] == 36


def test_sigterm_to_one_process_checkpoints_every_process_at_one_step(tmp_path):
  """A preemption notice reaches one host: JAX's sync service agrees on the
  next step, every process checkpoints it and raises `Preempted` together."""
  workdir = str(tmp_path / "multihost")
  logs = [open(tmp_path / f"log{i}.txt", "w") for i in range(2)]  # noqa: SIM115
  procs = _start_workers(tmp_path, 2, logs, "100000")
  text = lambda: "\n".join(
    (tmp_path / f"log{i}.txt").read_text()[-2000:] for i in range(2)
  )
  metrics = os.path.join(workdir, "metrics.jsonl")
  end = time.time() + DEADLINE_S
  try:
    while not (os.path.exists(metrics) and os.path.getsize(metrics)):
      assert time.time() < end and all(p.poll() is None for p in procs), text()
      time.sleep(0.2)
    procs[1].send_signal(signal.SIGTERM)
    for p in procs:
      assert p.wait(timeout=max(end - time.time(), 1)) == 0, text()
  finally:
    for p in procs:
      p.kill()
    for log in logs:
      log.close()
  steps = []
  for i in range(2):
    with open(tmp_path / f"process{i}.npz.json") as f:
      steps.append(json.load(f)["preempted_step"])
  assert steps[0] == steps[1] > 0
  saved = os.listdir(os.path.join(workdir, "checkpoints", "latest"))
  assert str(steps[0]) in saved, saved
