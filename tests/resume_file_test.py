"""The one-file resume state (training/resume_file.py) on the tiny config."""

import json
import os
import shutil

from batch_hooks import on_batch
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from tiny_config import tiny_config

import lra_tasks
from macformer_jax import training
from macformer_jax.training import resume_file

pytestmark = pytest.mark.usefixtures("compile_fast")


class _Stop(Exception):
  pass


def _config():
  c = tiny_config(
    "macformer_exp",
    num_train_steps=10,
    eval_frequency=5,
    checkpoint_every=4,
    log_every=2,
  )
  with c.attention.unlocked():
    c.attention.redraw_every = 3  # random features change during the run
  return c


def _stop_before(monkeypatch, step):
  """The train iterator raises when asked for batch `step` (0-based)."""

  def stop():
    raise _Stop(f"stopped before step {step + 1}")

  on_batch(monkeypatch, step, stop)


def _final(workdir, step=10):
  path = os.path.join(workdir, "checkpoints", "latest", str(step), "state")
  return ocp.StandardCheckpointer().restore(os.path.abspath(path))


def _metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [
      {k: v for k, v in json.loads(line).items() if k != "steps_per_sec"}
      for line in f
    ]


def test_resume_from_the_file_in_an_empty_workdir_is_the_same_run(
  tmp_path, monkeypatch
):
  straight = str(tmp_path / "straight")
  expected = training.train_and_evaluate(_config(), straight)

  # Session 1 stops after the step-8 checkpoint; its best-eval checkpoint
  # (step 5) is older than the latest, so the file carries both.
  first = str(tmp_path / "first")
  with monkeypatch.context() as patch:
    _stop_before(patch, 9)
    with pytest.raises(_Stop):
      training.train_and_evaluate(_config(), first)
  path = str(tmp_path / "state" / "run.msgpack.xz")
  assert resume_file.export(first, path) == 8
  payload = resume_file.load(path)
  assert payload["step"] == 8 and payload["best_step"] == 5
  assert set(payload["best"]) == {"params", "random_features"}
  assert int(payload["latest"]["step"]) == 8  # also the data position

  # Session 2: a new checkout holds only the file (and the metrics text).
  second = str(tmp_path / "second")
  assert resume_file.restore(path, second) == 8
  shutil.copy(os.path.join(first, "metrics.jsonl"), second)
  with pytest.raises(ValueError, match="already holds checkpoints"):
    resume_file.restore(path, second)
  starts = []
  real = lra_tasks.train_batches

  def recorded(*args, start_step=0, **kwargs):
    starts.append(start_step)
    return real(*args, start_step=start_step, **kwargs)

  with monkeypatch.context() as patch:
    patch.setattr(lra_tasks, "train_batches", recorded)
    results = training.train_and_evaluate(_config(), second)
  assert starts == [8]  # resumed from the file, not trained from step 0

  jax.tree.map(np.testing.assert_array_equal, _final(straight), _final(second))
  for key in (
    "test_accuracy",
    "test_accuracy_best_eval",
    "best_eval_step",
    "best_eval_accuracy",
    "test_loss",
  ):
    assert results[key] == expected[key], key
  assert _metrics(second) == _metrics(straight)


def test_export_without_a_checkpoint_and_a_foreign_file(tmp_path):
  assert resume_file.export(str(tmp_path / "empty"), str(tmp_path / "f")) is (
    None
  )
  assert not os.path.exists(tmp_path / "f")
  import lzma  # pylint: disable=g-import-not-at-top

  import msgpack  # pylint: disable=g-import-not-at-top

  (tmp_path / "g").write_bytes(lzma.compress(msgpack.packb({"format": "x"})))
  with pytest.raises(ValueError, match="not a resume file"):
    resume_file.load(str(tmp_path / "g"))


def test_arrays_round_trip_byte_shuffled():
  tree = {
    "a": np.arange(7, dtype=np.float32) / 3,
    "b": [np.array(3, np.int32), np.zeros((2, 0, 3), np.float32)],
    "c": np.array([1, 2], np.uint32),
    "d": None,
    "e": np.array(8, np.int32),
  }
  back = resume_file._decode(resume_file._encode(tree))  # pylint: disable=protected-access
  jax.tree.map(np.testing.assert_array_equal, back, tree)
  assert back["a"].dtype == np.float32 and back["b"][1].shape == (2, 0, 3)
  assert back["e"].shape == ()
