"""Tests for lra_tasks/image.py (CIFAR-10 as gray pixels), offline.

Uses `tfds.testing.mock_data` and a real ArrayRecord `cifar10` with random
images written by `lra_tasks.testing`.
"""

import numpy as np
import pytest

import lra_tasks
from lra_tasks import image
from lra_tasks import testing

tfds = pytest.importorskip("tensorflow_datasets")


@pytest.fixture(scope="module")
def fake_cifar(tmp_path_factory):
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  testing.prepare_fake_tfds(
    data_dir, "cifar10", num_train=40, num_test=6, seed=1
  )
  return data_dir


def test_grayscale_matches_tf_formula_on_known_pixels():
  # tf.image.rgb_to_grayscale: uint8(float32(rgb/255 . w) * 255.5), truncated.
  rgb = np.array(
    [
      [0, 0, 0],
      [255, 255, 255],
      [255, 0, 0],
      [0, 255, 0],
      [0, 0, 255],
      [10, 20, 30],
    ],
    np.uint8,
  )
  expected = [
    0,
    255,
    76,
    149,
    29,
    int((10 * 0.2989 + 20 * 0.5870 + 30 * 0.1140) / 255 * 255.5),
  ]
  assert image.rgb_to_grayscale(rgb).tolist() == expected
  with pytest.raises(ValueError, match="expected RGB"):
    image.rgb_to_grayscale(np.zeros((2, 2), np.uint8))


def _gray_ids(rgb, shift):
  return image.rgb_to_grayscale(rgb).reshape(-1).astype(np.int32) + shift


def test_mock_data_shifted_ids_and_lra_ids():
  task = lra_tasks.get_task("image")
  with tfds.testing.mock_data(num_examples=5):
    raw = tfds.data_source("cifar10", split="test")
    src = task.load(None, "test")
    lra = task.load(None, "test", shift_ids=False)
    assert len(src) == 5
    for i in range(5):
      ex = src[i]
      assert ex["inputs"].shape == (1024,) and ex["inputs"].dtype == np.int32
      np.testing.assert_array_equal(ex["inputs"], _gray_ids(raw[i]["image"], 1))
      np.testing.assert_array_equal(
        lra[i]["inputs"], _gray_ids(raw[i]["image"], 0)
      )
      assert ex["targets"] == raw[i]["label"]


def test_real_array_record_splits_and_black_pixels(fake_cifar):
  task = lra_tasks.get_task("image")
  sizes = {s: len(task.load(fake_cifar, s)) for s in ("train", "val", "test")}
  assert sizes == {"train": 36, "val": 4, "test": 6}  # train[:90%], [90%:]
  raw = tfds.data_source(
    "cifar10", split="train[90%:]", data_dir=fake_cifar, download=False
  )
  val = task.load(fake_cifar, "val")
  for i in range(4):
    np.testing.assert_array_equal(
      val[i]["inputs"], _gray_ids(raw[i]["image"], 1)
    )
    # The fake images have a black 4x4 corner: id 1, never the pad id 0.
    assert (val[i]["inputs"].reshape(32, 32)[:4, :4] == 1).all()
    assert val[i]["inputs"].min() >= 1
  batches = list(lra_tasks.eval_batches(val, 3))
  assert len(batches) == 2 and batches[1]["weights"].tolist() == [1, 0, 0]


def test_unprepared_dataset_fails_fast_with_instructions(tmp_path):
  with pytest.raises(FileNotFoundError) as e:
    lra_tasks.get_task("image").load(str(tmp_path), "val")
  msg = str(e.value)
  assert "tfds.builder('cifar10'" in msg
  assert "download_and_prepare(file_format='array_record')" in msg
  assert "pip install tensorflow-cpu" in msg  # cifar10's PNG encoding needs TF


def test_bad_label_and_bad_shape_are_errors():
  def source_of(examples):
    def as_data_source(self, split, decoders=None, deserialize_method=None):
      del self, split, decoders, deserialize_method
      return examples

    return as_data_source

  ok = np.zeros((32, 32, 3), np.uint8)
  bad_label = source_of([{"image": ok, "label": 3}, {"image": ok, "label": 10}])
  with (
    tfds.testing.mock_data(as_data_source_fn=bad_label),
    pytest.raises(
      ValueError,
      match=r"label 10 of example 1 is outside "
      r"the class range \[0, 10\)",
    ),
  ):
    lra_tasks.get_task("image").load(None, "train")
  bad_shape = source_of(
    [{"image": np.zeros((28, 28, 1), np.uint8), "label": 3}]
  )
  with (
    tfds.testing.mock_data(as_data_source_fn=bad_shape),
    pytest.raises(ValueError, match=r"example 0 has shape \(28, 28, 1\)"),
  ):
    lra_tasks.get_task("image").load(None, "train")
