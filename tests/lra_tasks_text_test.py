"""Tests for lra_tasks/text.py (IMDB bytes) and lra_tasks/tfds_source.py.

Offline only: `tfds.testing.mock_data` (which patches
`DatasetBuilder.as_data_source`, the method the loader uses), and a real
ArrayRecord data set with fake reviews written by `lra_tasks.testing`.
"""

import logging
import sys

import numpy as np
import pytest

import lra_tasks
from lra_tasks import testing
from lra_tasks import text

tfds = pytest.importorskip("tensorflow_datasets")


@pytest.fixture(scope="module")
def fake_imdb(tmp_path_factory):
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  testing.prepare_fake_tfds(
    data_dir, "imdb_reviews", num_train=30, num_test=12, seed=0
  )
  return data_dir


def _expected_ids(review, max_len):
  raw = review.encode("utf-8") if isinstance(review, str) else bytes(review)
  ids = np.zeros(max_len, np.int32)
  ids[: min(len(raw), max_len)] = np.frombuffer(raw[:max_len], np.uint8) + 1
  return ids


def test_mock_data_goes_through_as_data_source():
  task = lra_tasks.get_task("text")
  with tfds.testing.mock_data(num_examples=9):
    src = task.load("/nonexistent/tfds", "train")
    raw = tfds.data_source("imdb_reviews", split="train")
    assert len(src) == 9
    for i in range(9):
      ex = src[i]
      assert ex["inputs"].shape == (1000,) and ex["inputs"].dtype == np.int32
      np.testing.assert_array_equal(
        ex["inputs"], _expected_ids(raw[i]["text"], 1000)
      )
      assert ex["targets"] == raw[i]["label"]
  assert "tensorflow" not in sys.modules


def test_real_array_record_files(fake_imdb, caplog):
  caplog.set_level(logging.INFO, logger="lra_tasks")
  task = lra_tasks.get_task("text")
  raw = {
    s: tfds.data_source(
      "imdb_reviews", split=s, data_dir=fake_imdb, download=False
    )
    for s in ("train", "test")
  }
  train = task.load(fake_imdb, "train")
  val = task.load(None, "val", tfds_data_dir=fake_imdb)
  test = task.load(fake_imdb, "test", max_len=4000)
  assert (len(train), len(val), len(test)) == (30, 12, 12)
  for i in range(12):
    assert isinstance(raw["test"][i]["text"], bytes)  # real sources give bytes
    np.testing.assert_array_equal(
      val[i]["inputs"], _expected_ids(raw["test"][i]["text"], 1000)
    )
    np.testing.assert_array_equal(
      test[i]["inputs"], _expected_ids(raw["test"][i]["text"], 4000)
    )
    assert val[i]["targets"] == test[i]["targets"] == raw["test"][i]["label"]
  # 'caf\u00e9' in the fake words: UTF-8 bytes, not code points.
  assert any((train[i]["inputs"] == 0xC3 + 1).any() for i in range(30))
  lengths = [len(raw["train"][i]["text"]) for i in range(30)]
  n_long = sum(n > 1000 for n in lengths)
  assert 0 < n_long < 30
  assert (
    f"text/train: {n_long} of 30 reviews truncated to max_len=1000"
    in caplog.text
  )
  batch = next(lra_tasks.train_batches(train, 8, seed=0))
  assert batch["inputs"].shape == (8, 1000) and batch["targets"].shape == (8,)


def test_unprepared_dataset_fails_fast_with_instructions(tmp_path):
  with pytest.raises(FileNotFoundError) as e:
    lra_tasks.get_task("text").load(str(tmp_path), "train")
  msg = str(e.value)
  assert "imdb_reviews" in msg and str(tmp_path) in msg
  assert (
    "tfds.builder('imdb_reviews', data_dir='"
    + str(tmp_path)
    + "').download_and_prepare(file_format='array_record')"
  ) in msg
  assert "download=True" in msg


def test_label_outside_the_class_range_is_an_error():
  def as_data_source(self, split, decoders=None, deserialize_method=None):
    del self, split, decoders, deserialize_method
    return [
      {"text": b"good", "label": np.int64(1)},
      {"text": b"odd", "label": np.int64(2)},
    ]

  with (
    tfds.testing.mock_data(as_data_source_fn=as_data_source),
    pytest.raises(
      ValueError,
      match=r"label 2 of example 1 is outside "
      r"the class range \[0, 2\)",
    ),
  ):
    lra_tasks.get_task("text").load(None, "train")


def test_unknown_option_is_named():
  with pytest.raises(TypeError, match="tokenizer"):
    lra_tasks.get_task("text").load(None, "train", tokenizer="char")


def test_utf8_bytes_accepts_str_bytes_and_numpy():
  assert text.utf8_bytes("caf\u00e9") == b"caf\xc3\xa9"
  assert text.utf8_bytes(b"abc") == b"abc"
  assert text.utf8_bytes(np.array(b"xy", dtype=object)) == b"xy"
