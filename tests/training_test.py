"""End-to-end tests of macformer_jax.training on tiny generated ListOps.

conftest.py gives this process 2 CPU devices; `tiny_config` runs on one
(`train.num_devices=1`) unless a test asks for more. Device-count invariance
is tested in parallel_test.py, several processes in multihost_test.py.
"""

import importlib
import json
import os
import signal
import subprocess
import sys
import time

from batch_hooks import on_batch
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from tiny_config import tiny_config

from configs import retrieval
import lra_tasks
from lra_tasks import testing
from macformer_jax import training

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# Fewer XLA passes: these tests compile many small programs (conftest.py).
pytestmark = pytest.mark.usefixtures("compile_fast")


def _metrics(workdir, split="train"):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    lines = [json.loads(line) for line in f]
  return [line for line in lines if line["split"] == split]


def _checkpoint(workdir, step, kind="latest"):
  path = os.path.join(workdir, "checkpoints", kind, str(step), "state")
  return ocp.StandardCheckpointer().restore(os.path.abspath(path))


def test_training_lowers_loss_and_writes_results(tmp_path):
  workdir = str(tmp_path)
  results = training.train_and_evaluate(tiny_config(), workdir)
  train = _metrics(workdir)
  assert [m["step"] for m in train] == [10, 20, 30, 40]
  assert train[-1]["loss"] < train[0]["loss"] - 0.05, train
  with open(os.path.join(workdir, "results.json")) as f:
    saved = json.load(f)
  assert saved["test_accuracy"] == results["test_accuracy"]
  for key in (
    "task",
    "attention",
    "preset",
    "steps",
    "test_accuracy",
    "test_accuracy_best_eval",
    "best_eval_step",
    "majority_class_accuracy",
    "config",
  ):
    assert key in saved
  assert (saved["task"], saved["attention"], saved["steps"]) == (
    "listops",
    "softmax",
    40,
  )
  # The whole test split: 36 examples in batches of 8 (the last one padded).
  assert saved["num_test_examples"] == 36
  assert saved["config"]["train"]["num_train_steps"] == 40
  assert saved["data"]["kind"] == "generated"  # LRA's ListOps generator
  assert saved["parallelism"] == "sharding" and saved["num_devices"] == 1
  assert [m["step"] for m in _metrics(workdir, "eval")] == [20, 40]
  assert os.listdir(os.path.join(workdir, "tensorboard"))
  assert os.path.exists(os.path.join(workdir, "config.json"))
  line = training.summary_line(results)
  assert line.startswith(
    "task=listops attention=softmax preset=lra,smoke steps=40 test_accuracy="
  )


class _Killed(Exception):
  pass


def _kill_at(monkeypatch, kill_step):
  """Makes the data iterator raise when batch `kill_step` is requested."""

  def kill():
    raise _Killed(f"killed before step {kill_step}")

  on_batch(monkeypatch, kill_step, kill)


def test_kill_and_resume_reaches_the_same_parameters(tmp_path, monkeypatch):
  """Interrupted after the step-4 checkpoint (and after the step-5 best-eval
  checkpoint), restarted: the same final state and results as one run.
  Dropout and random-feature redraws (every 3 steps) are on."""

  def config():
    c = tiny_config(
      "macformer_exp",
      num_train_steps=10,
      eval_frequency=5,
      checkpoint_every=4,
      log_every=2,
    )
    with c.attention.unlocked():
      c.attention.redraw_every = 3
    return c

  straight = str(tmp_path / "straight")
  expected = training.train_and_evaluate(config(), straight)

  resumed = str(tmp_path / "resumed")
  with monkeypatch.context() as patch:
    _kill_at(patch, 7)
    with pytest.raises(_Killed):
      training.train_and_evaluate(config(), resumed)
  assert sorted(os.listdir(os.path.join(resumed, "checkpoints", "latest"))) == [
    "4"
  ]
  results = training.train_and_evaluate(config(), resumed)

  a, b = _checkpoint(straight, 10), _checkpoint(resumed, 10)
  jax.tree.map(np.testing.assert_array_equal, a, b)
  assert not np.array_equal(  # the features were redrawn during training
    jax.tree.leaves(a["random_features"])[0],
    jax.tree.leaves(_checkpoint(straight, 8)["random_features"])[0],
  )
  for key in (
    "test_accuracy",
    "test_accuracy_best_eval",
    "best_eval_step",
    "test_loss",
  ):
    assert results[key] == expected[key], key
  strip = lambda ms: [
    {k: v for k, v in m.items() if k != "steps_per_sec"} for m in ms
  ]
  assert strip(_metrics(resumed)) == strip(_metrics(straight))


def test_sigterm_checkpoints_the_step_in_flight_and_resume_matches(
  tmp_path, monkeypatch
):
  """SIGTERM while step 6 trains: step 6 is checkpointed (off the every-4
  schedule), `Preempted` names it, the handler is restored, and the resumed
  run ends with the parameters of an uninterrupted one."""
  config = lambda: tiny_config(
    "macformer_exp",
    num_train_steps=8,
    eval_frequency=4,
    checkpoint_every=4,
    log_every=2,
  )
  straight = str(tmp_path / "straight")
  training.train_and_evaluate(config(), straight)

  before = signal.getsignal(signal.SIGTERM)
  preempted = str(tmp_path / "preempted")
  with monkeypatch.context() as patch:
    on_batch(patch, 5, lambda: os.kill(os.getpid(), signal.SIGTERM))
    with pytest.raises(training.Preempted, match="after step 6") as info:
      training.train_and_evaluate(config(), preempted)
  assert info.value.step == 6
  assert signal.getsignal(signal.SIGTERM) is before
  assert sorted(
    os.listdir(os.path.join(preempted, "checkpoints", "latest")), key=int
  ) == ["4", "6"]
  assert not os.path.exists(os.path.join(preempted, "results.json"))

  training.train_and_evaluate(config(), preempted)
  jax.tree.map(
    np.testing.assert_array_equal,
    _checkpoint(straight, 8),
    _checkpoint(preempted, 8),
  )


def test_non_finite_loss_stops_with_the_step_and_keeps_good_checkpoint(
  tmp_path, monkeypatch
):
  real = lra_tasks.train_batches

  def batches(*args, start_step=0, **kwargs):
    for i, batch in enumerate(real(*args, start_step=start_step, **kwargs)):
      if start_step + i == 6:  # the update that makes step 7
        batch = dict(batch, weights=np.full_like(batch["weights"], np.nan))
      yield batch

  monkeypatch.setattr(lra_tasks, "train_batches", batches)
  workdir = str(tmp_path)
  config = tiny_config(
    num_train_steps=12, checkpoint_every=4, log_every=4, eval_frequency=12
  )
  with pytest.raises(
    FloatingPointError,
    match=r"non-finite training loss .* at step 7; last good "
    r"checkpoint: step 4",
  ):
    training.train_and_evaluate(config, workdir)
  assert os.listdir(os.path.join(workdir, "checkpoints", "latest")) == ["4"]
  assert not os.path.exists(os.path.join(workdir, "results.json"))
  state = _checkpoint(workdir, 4)
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(state["params"]))


def test_bfloat16_compute_trains(tmp_path):
  config = tiny_config(
    "macformer_exp",
    num_train_steps=3,
    eval_frequency=3,
    log_every=1,
    checkpoint_every=3,
  )
  config.model.dtype = "bfloat16"
  results = training.train_and_evaluate(config, str(tmp_path))
  losses = [m["loss"] for m in _metrics(str(tmp_path))]
  assert len(losses) == 3 and np.all(np.isfinite(losses))
  assert np.isfinite(results["test_loss"])
  state = _checkpoint(str(tmp_path), 3)
  assert all(x.dtype == np.float32 for x in jax.tree.leaves(state["params"]))


def test_retrieval_dual_encoder_trains_on_two_devices_with_pmap(tmp_path):
  """The dual-input path (Retrieval) through the same trainer, under pmap
  (per-example dropout keys), on made-up AAN pairs (lra_tasks.testing)."""
  data_dir = str(tmp_path / "aan")
  testing.write_fake_aan(
    data_dir, {"train": 32, "eval": 10, "test": 6}, mean_bytes=200
  )
  config = retrieval.get_config("macformer_exp,smoke")
  m = config.model
  m.emb_dim, m.qkv_dim, m.mlp_dim, m.num_heads, m.num_layers = 16, 16, 32, 2, 1
  config.attention.options.num_features = 16
  config.data.data_dir = data_dir
  config.data.max_len, config.data.batch_size = 64, 4
  t = config.train
  t.num_train_steps, t.eval_frequency, t.log_every = 3, 3, 1
  t.checkpoint_every, t.num_devices, t.parallelism = 3, 2, "pmap"
  results = training.train_and_evaluate(config, str(tmp_path / "run"))
  assert results["task"] == "retrieval"
  assert results["data"]["kind"] == "files"
  assert (results["parallelism"], results["num_devices"]) == ("pmap", 2)
  assert results["num_test_examples"] == 6
  assert all(np.isfinite(m["loss"]) for m in _metrics(str(tmp_path / "run")))
  params = _checkpoint(str(tmp_path / "run"), 3)["params"]
  assert params["head"]["hidden_0"]["kernel"].shape[0] == 4 * 16


# Offline data sizes for the smoke test of each task (configs use larger).
SMOKE_DATA = {
  "text": ({"num_train": 40, "num_test": 12, "review_words": 20}, 12),
  "retrieval": (
    {"num_train": 40, "num_val": 8, "num_test": 8, "mean_bytes": 200},
    8,
  ),
  "image": ({"num_train": 40, "num_test": 12}, 12),
  "pathfinder": ({"num_images": 40}, 4),  # 80/10/10 split
}


@pytest.mark.parametrize("task", sorted(SMOKE_DATA))
def test_smoke_runs_offline_for_every_task(task, tmp_path):
  """`configs/<task>.py:...,smoke` needs no data: it generates synthetic
  data in the task's real format, and results.json says so. (ListOps, with
  generated data, is every other test here.)"""
  if task in ("text", "image"):
    pytest.importorskip("tensorflow_datasets")
  config = importlib.import_module(f"configs.{task}").get_config("linear,smoke")
  assert config.data.data_dir is None
  sizes, num_test = SMOKE_DATA[task]
  config.data.offline.update(sizes)
  m = config.model
  m.emb_dim, m.qkv_dim, m.mlp_dim, m.num_heads, m.num_layers = 16, 16, 32, 2, 1
  config.data.max_len, config.data.batch_size = 64, 4
  t = config.train
  t.num_train_steps, t.eval_frequency, t.log_every = 2, 2, 1
  t.checkpoint_every, t.num_devices = 2, 1
  results = training.train_and_evaluate(config, str(tmp_path))
  assert results["data"]["kind"] == "synthetic"
  assert "no " in results["data"]["description"]  # "no <task> number"
  assert results["data"]["dir"].startswith(str(tmp_path / "data"))
  assert results["num_test_examples"] == num_test
  assert np.isfinite(results["test_loss"])
  assert training.summary_line(results).endswith(" data=synthetic")


def test_engine_checks_devices_batch_and_parallelism():
  engine = lambda *args: training.Engine(*args, lambda step: 0.0, False)
  with pytest.raises(ValueError, match="cannot be split evenly over 2"):
    engine("sharding", 2, 7)
  with pytest.raises(ValueError, match="has 2 devices"):
    engine("pmap", 3, 6)
  with pytest.raises(ValueError, match="train.parallelism='gspmd'"):
    engine("gspmd", 0, 8)
  for parallelism in ("sharding", "pmap"):  # one host loads every row
    assert engine(parallelism, 0, 8).host_rows.tolist() == list(range(8))


def test_library_imports_pull_in_no_trainer_dependencies():
  """The attention library needs neither the trainer's dependencies nor the
  task pipelines (lra_tasks_base_test: lra_tasks imports no JAX)."""
  code = (
    "import sys\n"
    "import macformer_jax.encoder, macformer_jax.layers\n"
    "heavy = ('orbax', 'tensorboardX', 'tqdm', 'lra_tasks', "
    "'macformer_jax.training', 'tensorflow')\n"
    "print(sorted(m for m in heavy if m in sys.modules))"
  )
  out = subprocess.run(
    [sys.executable, "-c", code],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=120,
    env=dict(os.environ, JAX_PLATFORMS="cpu"),
  )
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.strip() == "[]", out.stdout


def _cli_command(workdir, num_train_steps, log_every=2):
  return [
    sys.executable,
    "run_lra.py",
    "--config=configs/listops.py:linear,smoke",
    f"--workdir={workdir}",
    f"--config.train.num_train_steps={num_train_steps}",
    "--config.train.eval_frequency=2",
    f"--config.train.log_every={log_every}",
    "--config.model.num_layers=1",
    "--config.model.emb_dim=16",
    "--config.model.qkv_dim=16",
    "--config.model.mlp_dim=16",
    "--config.data.max_len=32",
    "--config.data.batch_size=4",
    "--config.data.offline.num_train=40",
    "--config.data.offline.num_val=8",
    "--config.data.offline.num_test=6",
    "--config.data.offline.min_length=4",
    "--config.data.offline.max_length=30",
  ]


_CLI_ENV = dict(
  os.environ,
  JAX_PLATFORMS="cpu",
  XLA_FLAGS="--xla_force_host_platform_device_count=1",
)


def test_run_lra_command_line(tmp_path):
  """The CLI: config string + overrides, the summary line, results.json."""
  workdir = str(tmp_path / "run")
  out = subprocess.run(
    _cli_command(workdir, 4),
    cwd=ROOT,
    env=_CLI_ENV,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert out.returncode == 0, out.stderr[-3000:]
  last = out.stdout.strip().splitlines()[-1]
  assert last.startswith(
    "task=listops attention=linear preset=lra,smoke steps=4 test_accuracy="
  ), out.stdout
  with open(os.path.join(workdir, "results.json")) as f:
    assert json.load(f)["num_test_examples"] == 6


def test_run_lra_sigterm_checkpoints_and_exits_143(tmp_path):
  """A scheduler's SIGTERM mid-run: exit status 143, one line saying how to
  resume, and a checkpoint at (or after) the last step logged."""
  workdir = str(tmp_path / "run")
  log = tmp_path / "stderr.txt"
  with open(log, "w") as err:
    proc = subprocess.Popen(
      _cli_command(workdir, 100000, log_every=1),
      cwd=ROOT,
      env=_CLI_ENV,
      stdout=subprocess.DEVNULL,
      stderr=err,
    )
  metrics = os.path.join(workdir, "metrics.jsonl")
  deadline = time.time() + 240
  while not (os.path.exists(metrics) and os.path.getsize(metrics)):
    assert proc.poll() is None and time.time() < deadline, log.read_text()
    time.sleep(0.2)
  logged = _metrics(workdir)[0]["step"]
  proc.send_signal(signal.SIGTERM)
  proc.wait(timeout=240)
  stderr = log.read_text()
  assert proc.returncode == 143, stderr[-3000:]
  assert "run the same command again to resume" in stderr.splitlines()[-1]
  saved = [
    int(d) for d in os.listdir(os.path.join(workdir, "checkpoints", "latest"))
  ]
  assert max(saved) >= logged > 0
