"""Tests for lra_tasks/__init__.py and lra_tasks/base.py (registry, batching,
offline data)."""

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

import lra_tasks
from lra_tasks import base

# Every registered task and its spec (docs/METHOD.md §8.1; ids shifted for
# pixels).
EXPECTED_SPECS = {
  "listops": (10, 17, 2000, False),
  "text": (2, 257, 1000, False),
  "retrieval": (2, 257, 4000, True),
  "image": (10, 257, 1024, False),
  "pathfinder": (2, 257, 1024, False),
}


class ToySource:
  """N examples; inputs[0] = index + 1 so batches show which rows they hold."""

  def __init__(self, n, length=5, dual=False):
    self.n, self.length, self.dual = n, length, dual

  def __len__(self):
    return self.n

  def __getitem__(self, i):
    x = np.zeros(self.length, np.int32)
    x[0] = i + 1
    ex = {"inputs": x, "targets": np.int32(i % 3)}
    if self.dual:
      ex["inputs2"] = x * 2
    return ex


def test_registry_has_every_task_with_its_spec():
  assert sorted(lra_tasks.TASKS) == sorted(EXPECTED_SPECS)
  for name, (classes, vocab, max_len, dual) in EXPECTED_SPECS.items():
    spec = lra_tasks.get_task(name).spec
    assert spec == lra_tasks.TaskSpec(name, classes, vocab, max_len, dual)


def test_unknown_task_lists_known_names():
  with pytest.raises(ValueError) as e:
    lra_tasks.get_task("lisops")
  msg = str(e.value)
  assert "lisops" in msg
  for name in EXPECTED_SPECS:
    assert name in msg


def test_taskspec_is_frozen():
  spec = lra_tasks.get_task("listops").spec
  with pytest.raises(dataclasses.FrozenInstanceError):
    spec.max_len = 3


def test_import_pulls_in_no_tensorflow_jax_flax_or_macformer():
  code = (
    "import sys, lra_tasks\n"
    "for n in lra_tasks.TASKS: lra_tasks.get_task(n).spec\n"
    "bad = [m for m in ('tensorflow', 'jax', 'flax', "
    "'tensorflow_datasets', 'macformer_jax') if m in sys.modules]\n"
    "print(bad)"
  )
  out = subprocess.run(
    [sys.executable, "-c", code], capture_output=True, text=True, check=True
  )
  assert out.stdout.strip() == "[]"


def test_unknown_split_and_option_are_rejected(tmp_path):
  task = lra_tasks.get_task("listops")
  with pytest.raises(ValueError, match="unknown split 'dev'"):
    task.load(str(tmp_path), "dev")
  with pytest.raises(TypeError, match="resolution"):
    task.load(str(tmp_path), "train", resolution=32)
  with pytest.raises(ValueError, match="max_len"):
    task.load(str(tmp_path), "train", max_len=0)


def test_train_batches_shapes_dtypes_and_weights():
  batch = next(base.train_batches(ToySource(10, dual=True), 4, seed=0))
  assert sorted(batch) == ["inputs", "inputs2", "targets", "weights"]
  assert batch["inputs"].shape == (4, 5) and batch["inputs"].dtype == np.int32
  assert batch["inputs2"].shape == (4, 5)
  assert batch["targets"].shape == (4,) and batch["targets"].dtype == np.int32
  assert batch["weights"].dtype == np.float32
  np.testing.assert_array_equal(batch["weights"], np.ones(4))


def _rows(batch):
  return (batch["inputs"][:, 0] - 1).tolist()


def test_train_batches_each_epoch_is_a_permutation_from_seed_and_epoch():
  n, bsz = 10, 4  # 10 is not a multiple of 4: batches straddle epochs
  it = base.train_batches(ToySource(n), bsz, seed=7)
  stream = sum((_rows(next(it)) for _ in range(10)), [])  # 40 = 4 epochs
  for e in range(4):
    expected = np.random.default_rng([7, e]).permutation(n).tolist()
    assert stream[e * n : (e + 1) * n] == expected


def test_train_batches_resume_reproduces_the_stream():
  src = ToySource(13)
  it = base.train_batches(src, 5, seed=3)
  full = [next(it) for _ in range(9)]
  resumed = base.train_batches(src, 5, seed=3, start_step=6)
  for step in range(6, 9):
    got = next(resumed)
    for k in full[step]:
      np.testing.assert_array_equal(got[k], full[step][k])
  other = next(base.train_batches(src, 5, seed=4))
  assert _rows(other) != _rows(full[0])


def test_eval_batches_cover_the_split_in_order_and_pad_the_last():
  batches = list(base.eval_batches(ToySource(10, dual=True), 4))
  assert len(batches) == 3
  rows = [
    r for b in batches for r, w in zip(_rows(b), b["weights"], strict=True) if w
  ]
  assert rows == list(range(10))
  last = batches[-1]
  np.testing.assert_array_equal(last["weights"], [1, 1, 0, 0])
  assert not last["inputs"][2:].any() and not last["inputs2"][2:].any()
  assert last["inputs"].shape == (4, 5) and last["targets"].shape == (4,)
  assert last["targets"].dtype == np.int32
  full = list(base.eval_batches(ToySource(8), 4))
  assert len(full) == 2 and all(b["weights"].all() for b in full)


@pytest.mark.parametrize(
  "kwargs, msg",
  [
    ({"batch_size": 0, "seed": 0}, "batch_size must be positive"),
    ({"batch_size": 2, "seed": -1}, "seed must be a non-negative int"),
  ],
)
def test_train_batches_bad_arguments(kwargs, msg):
  with pytest.raises(ValueError, match=msg):
    next(base.train_batches(ToySource(3), **kwargs))


def test_empty_source_is_an_error():
  with pytest.raises(ValueError, match="empty"):
    next(base.eval_batches(ToySource(0), 2))


def test_token_source_pads_truncates_and_offsets():
  rows = base.RaggedArray.from_rows(
    [
      np.array([1, 2, 3], np.uint8),
      np.array([], np.uint8),
      np.arange(10, dtype=np.uint8),
    ]
  )
  src = base.TokenSource(np.array([0, 1, 2]), 4, rows, offset=1)
  assert len(src) == 3
  np.testing.assert_array_equal(src[0]["inputs"], [2, 3, 4, 0])
  np.testing.assert_array_equal(src[1]["inputs"], [0, 0, 0, 0])
  np.testing.assert_array_equal(src[2]["inputs"], [1, 2, 3, 4])
  assert src[-1]["targets"] == 2
  with pytest.raises(IndexError):
    src[3]
  pairs = base.TokenSource(np.array([1]), 4, rows, doc_index=np.array([[2, 0]]))
  ex = pairs[0]
  np.testing.assert_array_equal(ex["inputs"], [0, 1, 2, 3])
  np.testing.assert_array_equal(ex["inputs2"], [1, 2, 3, 0])


def test_check_labels_names_the_bad_label():
  with pytest.raises(ValueError, match=r"label 10 of example 2 .*\[0, 10\)"):
    base.check_labels(np.array([0, 9, 10, -1]), 10, "somewhere")


def test_host_rows_split_the_global_batches():
  """Two hosts loading rows [0, 3) and [3, 6) of every batch see exactly the
  global batches of one host, the padded last eval batch included."""
  src = ToySource(14, dual=True)
  halves = (np.arange(3), np.arange(3, 6))
  full = base.train_batches(src, 6, seed=1, start_step=2)
  parts = [
    base.train_batches(src, 6, seed=1, start_step=2, rows=r) for r in halves
  ]
  for _ in range(4):
    whole = next(full)
    pieces = [next(p) for p in parts]
    for k in whole:
      np.testing.assert_array_equal(
        np.concatenate([p[k] for p in pieces]), whole[k]
      )
  evals = [list(base.eval_batches(src, 6, rows=r)) for r in halves]
  for whole, *pieces in zip(base.eval_batches(src, 6), *evals, strict=True):
    for k in whole:
      np.testing.assert_array_equal(
        np.concatenate([p[k] for p in pieces]), whole[k]
      )
  assert len(evals[0]) == len(evals[1]) == 3
  with pytest.raises(ValueError, match="rows must index"):
    next(base.train_batches(src, 6, seed=1, rows=np.array([6])))


# Small offline data per task, in `generate` arguments (configs use larger).
OFFLINE = {
  "listops": {
    "num_train": 20,
    "num_val": 5,
    "num_test": 5,
    "min_length": 4,
    "max_length": 30,
    "max_depth": 3,
  },
  "text": {"num_train": 20, "num_test": 10, "review_words": 20},
  "retrieval": {
    "num_train": 20,
    "num_val": 5,
    "num_test": 5,
    "mean_bytes": 200,
  },
  "image": {"num_train": 20, "num_test": 10},
  "pathfinder": {"num_images": 20, "resolution": 32, "difficulties": "hard"},
}


@pytest.mark.parametrize("name", sorted(OFFLINE))
def test_generate_then_load_through_the_registry(name, tmp_path):
  """Every task writes offline data that its own loader reads, with the
  task's shapes, vocabulary and classes."""
  if name in ("text", "image"):
    pytest.importorskip("tensorflow_datasets")
  assert sorted(OFFLINE) == sorted(lra_tasks.TASKS)
  task = lra_tasks.get_task(name)
  kind = "generated" if name == "listops" else "synthetic"
  assert task.offline_data.kind == kind and task.offline_data.description
  task.generate(str(tmp_path), seed=0, **OFFLINE[name])
  spec = task.spec
  for split in base.SPLITS:
    src = task.load(str(tmp_path), split, max_len=64)
    assert len(src) > 0
    batch = next(lra_tasks.eval_batches(src, 4))
    keys = ["inputs", "targets", "weights"]
    assert sorted(batch) == sorted(keys + ["inputs2"] * spec.dual_input)
    for k in ("inputs", "inputs2")[: 1 + spec.dual_input]:
      assert batch[k].shape == (4, 64) and batch[k].dtype == np.int32
      assert batch[k].min() >= 0 and batch[k].max() < spec.vocab_size
      assert batch[k][batch["weights"] > 0].any(axis=1).all()  # not padding
    assert (
      (batch["targets"] >= 0) & (batch["targets"] < spec.num_classes)
    ).all()
  with pytest.raises(TypeError):
    task.generate(
      str(tmp_path / "x"), seed=0, no_such_option=1, **OFFLINE[name]
    )
