"""Tests for lra_tasks/pathfinder.py: reader on generated PNG files,
generator."""

import logging
import os

import numpy as np
from PIL import Image
import pytest

import lra_tasks
from lra_tasks import pathfinder


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
  """20 'hard' and 10 'easy' 32x32 images, 8 per imgs/<k> folder (k = 0..2)."""
  out = tmp_path_factory.mktemp("pf")
  pathfinder.generate(
    str(out), 20, seed=5, difficulties=("hard",), images_per_dir=8
  )
  pathfinder.generate(
    str(out), 10, seed=5, difficulties=("easy",), images_per_dir=8
  )
  return out


def _metadata_rows(root):
  rows = []
  for k in range(100):
    path = root / "metadata" / f"{k}.npy"
    if not path.exists():
      break
    rows += [line.split() for line in path.read_text().splitlines()]
  return rows


def test_generated_layout_matches_the_release(generated):
  root = generated / "pathfinder32" / "curv_contour_length_14"
  assert sorted(os.listdir(root / "metadata")) == ["0.npy", "1.npy", "2.npy"]
  rows = _metadata_rows(root)
  assert len(rows) == 20
  assert rows[9][:4] == ["imgs/1", "sample_1.png", "1", rows[9][3]]
  labels = [int(r[3]) for r in rows]
  assert set(labels) == {0, 1}
  with Image.open(root / "imgs" / "1" / "sample_1.png") as im:
    assert im.mode == "L" and im.size == (32, 32)
    pixels = np.asarray(im)
  assert pixels.max() > 200 and (pixels == 0).mean() > 0.5  # ink on black


@pytest.mark.parametrize(
  "split, start, end", [("train", 0, 16), ("val", 16, 18), ("test", 18, 20)]
)
def test_splits_pixels_and_labels(generated, split, start, end):
  src = lra_tasks.get_task("pathfinder").load(str(generated), split)
  root = generated / "pathfinder32" / "curv_contour_length_14"
  rows = _metadata_rows(root)[start:end]
  assert len(src) == len(rows)
  for i, row in enumerate(rows):
    ex = src[i]
    assert ex["inputs"].shape == (1024,) and ex["inputs"].dtype == np.int32
    with Image.open(root / row[0] / row[1]) as im:
      expected = np.asarray(im, np.int32).reshape(-1) + 1
    np.testing.assert_array_equal(ex["inputs"], expected)
    assert ex["targets"] == int(row[3])


def test_difficulty_lra_ids_and_max_len(generated):
  task = lra_tasks.get_task("pathfinder")
  easy = task.load(str(generated), "train", difficulty="easy")
  assert len(easy) == 8
  same = task.load(str(generated), "train", difficulty="curv_baseline")
  np.testing.assert_array_equal(easy[0]["inputs"], same[0]["inputs"])
  lra = task.load(str(generated), "train", difficulty="easy", shift_ids=False)
  np.testing.assert_array_equal(lra[0]["inputs"], easy[0]["inputs"] - 1)
  short = task.load(str(generated), "train", difficulty="easy", max_len=100)
  np.testing.assert_array_equal(short[0]["inputs"], easy[0]["inputs"][:100])


def test_generator_is_deterministic(tmp_path, generated):
  pathfinder.generate(
    str(tmp_path), 4, seed=5, difficulties=("hard",), images_per_dir=8
  )
  for n in range(4):
    rel = os.path.join(
      "pathfinder32", "curv_contour_length_14", "imgs", "0", f"sample_{n}.png"
    )
    a = np.asarray(Image.open(tmp_path / rel))
    b = np.asarray(Image.open(generated / rel))
    np.testing.assert_array_equal(a, b)


def test_path_x_resolution(tmp_path):
  pathfinder.generate(
    str(tmp_path), 10, seed=0, resolution=128, difficulties=("hard",)
  )
  src = lra_tasks.get_task("pathfinder").load(
    str(tmp_path), "test", resolution=128
  )
  assert len(src) == 1 and src[0]["inputs"].shape == (128 * 128,)


def _copy_tree(src_root, dst_root):
  for dirpath, _, files in os.walk(src_root):
    rel = os.path.relpath(dirpath, src_root)
    os.makedirs(os.path.join(dst_root, rel), exist_ok=True)
    for f in files:
      with (
        open(os.path.join(dirpath, f), "rb") as a,
        open(os.path.join(dst_root, rel, f), "wb") as b,
      ):
        b.write(a.read())


def test_release_layout_numeric_order_and_empty_files(
  tmp_path, generated, caplog
):
  caplog.set_level(logging.INFO, logger="lra_tasks")
  root = (
    tmp_path
    / "lra_release"
    / "lra_release"
    / "pathfinder32"
    / "curv_contour_length_14"
  )
  _copy_tree(generated / "pathfinder32" / "curv_contour_length_14", root)
  # metadata/10.npy must sort after 2.npy; its one image is empty (as
  # pathfinder32/curv_baseline/imgs/0/sample_172.png in the release).
  (root / "imgs" / "10").mkdir()
  (root / "imgs" / "10" / "sample_0.png").write_bytes(b"")
  (root / "metadata" / "10.npy").write_text("imgs/10 sample_0.png 0 1\n")
  task = lra_tasks.get_task("pathfinder")
  test = task.load(str(tmp_path), "test")  # rows 19, 20 of 21; 20 is empty
  assert len(test) == 1
  assert "1 empty files skipped" in caplog.text
  train = task.load(str(tmp_path / "lra_release"), "train")
  assert len(train) == 17  # round(0.8 * 21)


def test_missing_directory_names_layout_release_and_generator(tmp_path):
  with pytest.raises(FileNotFoundError) as e:
    lra_tasks.get_task("pathfinder").load(str(tmp_path), "train", resolution=64)
  msg = str(e.value)
  for expected in (
    "pathfinder64/curv_contour_length_14/metadata",
    "imgs/<k>/sample_<n>.png",
    "https://storage.googleapis.com/long-range-arena/lra_release.gz",
    "python -m lra_tasks.pathfinder",
    "--resolution 64",
  ):
    assert expected in msg


def _one_dir(tmp_path, metadata, make_png=True):
  root = tmp_path / "pathfinder32" / "curv_contour_length_14"
  (root / "metadata").mkdir(parents=True)
  (root / "imgs" / "0").mkdir(parents=True)
  if make_png:
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(
      root / "imgs" / "0" / "sample_0.png"
    )
  (root / "metadata" / "0.npy").write_text(metadata)
  return root


@pytest.mark.parametrize(
  "metadata, match",
  [
    (
      "imgs/0 sample_0.png 0 1\nimgs/0 sample_0.png 1\n",
      r"0.npy:2: malformed metadata line: expected at least 4",
    ),
    (
      "imgs/0 sample_0.png 0 2\n",
      r"0.npy:1: label 2 is outside the class "
      r"range \[0, 2\)",
    ),
    (
      "imgs/0 sample_0.png 0 x\n",
      r"0.npy:1: malformed metadata line: label "
      r"'x' is not an integer",
    ),
    (
      "imgs/0 sample_0.png 0 1\nimgs/0 sample_0.png 0 3\nimgs/0 x.png\n",
      r"0.npy:2: label 3 is outside the class range \[0, 2\) \(and 1 more bad "
      r"line in this file\)$",
    ),
  ],
)
def test_malformed_metadata_names_file_and_line(tmp_path, metadata, match):
  _one_dir(tmp_path, metadata)
  with pytest.raises(ValueError, match=match):
    lra_tasks.get_task("pathfinder").load(str(tmp_path), "train")


def test_missing_image_names_the_metadata_line(tmp_path):
  _one_dir(tmp_path, "imgs/0 sample_0.png 0 1\nimgs/0 sample_9.png 1 0\n")
  with pytest.raises(
    FileNotFoundError,
    match=r"sample_9.png, listed at .*"
    r"0.npy:2, does not exist",
  ):
    lra_tasks.get_task("pathfinder").load(str(tmp_path), "train")


def test_wrong_size_image_is_an_error(tmp_path):
  root = _one_dir(tmp_path, "imgs/0 sample_0.png 0 1\n", make_png=False)
  Image.fromarray(np.zeros((16, 16), np.uint8)).save(
    root / "imgs" / "0" / "sample_0.png"
  )
  src = lra_tasks.get_task("pathfinder").load(str(tmp_path), "train")
  with pytest.raises(ValueError, match="is 16x16, expected 32x32"):
    src[0]


def test_bad_resolution_and_difficulty(tmp_path):
  task = lra_tasks.get_task("pathfinder")
  with pytest.raises(ValueError, match="resolution must be one of 32, 64"):
    task.load(str(tmp_path), "train", resolution=48)
  with pytest.raises(ValueError, match="unknown difficulty 'medium'"):
    task.load(str(tmp_path), "train", difficulty="medium")
