"""Tests for lra_tasks/retrieval.py (AAN pairs, byte level, dual input)."""

import logging

import numpy as np
import pytest

import lra_tasks
from lra_tasks import testing


@pytest.fixture(scope="module")
def aan_dir(tmp_path_factory):
  d = tmp_path_factory.mktemp("tsv_data")
  testing.write_fake_aan(str(d), {"train": 20, "eval": 7, "test": 5}, seed=2)
  return d


def _ids(raw, max_len):
  ids = np.zeros(max_len, np.int32)
  raw = raw[:max_len]
  ids[: len(raw)] = np.frombuffer(raw, np.uint8) + 1
  return ids


def _rows(path):
  with open(path, "rb") as f:
    return [line.rstrip(b"\n").split(b"\t") for line in f]


@pytest.mark.parametrize(
  "split, file_split, n",
  [("train", "train", 20), ("val", "eval", 7), ("test", "test", 5)],
)
def test_pairs_are_byte_ids_plus_one(aan_dir, split, file_split, n):
  src = lra_tasks.get_task("retrieval").load(str(aan_dir), split)
  rows = _rows(aan_dir / f"new_aan_pairs.{file_split}.tsv")
  assert len(src) == len(rows) == n
  for i, row in enumerate(rows):
    ex = src[i]
    assert sorted(ex) == ["inputs", "inputs2", "targets"]
    assert ex["inputs"].shape == ex["inputs2"].shape == (4000,)
    assert ex["inputs"].dtype == np.int32
    np.testing.assert_array_equal(ex["inputs"], _ids(row[3], 4000))
    np.testing.assert_array_equal(ex["inputs2"], _ids(row[4], 4000))
    assert ex["targets"] == int(float(row[0]))


def test_truncation_is_counted_and_texts_are_shared(aan_dir, caplog):
  caplog.set_level(logging.INFO, logger="lra_tasks")
  src = lra_tasks.get_task("retrieval").load(str(aan_dir), "train", max_len=300)
  rows = _rows(aan_dir / "new_aan_pairs.train.tsv")
  n_long = sum(len(t) > 300 for r in rows for t in r[3:])
  assert n_long > 0
  assert (
    f"retrieval/train: {n_long} of 40 documents truncated to max_len=300"
    in caplog.text
  )
  assert len(src.docs) < 40  # repeated papers are stored once
  np.testing.assert_array_equal(src[0]["inputs"], _ids(rows[0][3], 300))
  batch = next(lra_tasks.train_batches(src, 4, seed=0))
  assert batch["inputs2"].shape == (4, 300)


def test_release_layout_crlf_and_integer_labels(tmp_path):
  d = tmp_path / "lra_release" / "lra_release" / "tsv_data"
  d.mkdir(parents=True)
  (d / "new_aan_pairs.test.tsv").write_bytes(
    b'1\tA\tB\tabc\tde\r\n0.0\tA\tC\tabc\t"q"\r\n'
  )
  src = lra_tasks.get_task("retrieval").load(str(tmp_path), "test", max_len=4)
  assert src[0]["inputs"].tolist() == [98, 99, 100, 0]
  assert src[0]["inputs2"].tolist() == [101, 102, 0, 0]
  assert src[1]["inputs2"].tolist() == [35, 114, 35, 0]  # quotes are bytes
  assert [src[i]["targets"] for i in range(2)] == [1, 0]


def test_missing_directory_names_files_and_release(tmp_path):
  with pytest.raises(FileNotFoundError) as e:
    lra_tasks.get_task("retrieval").load(str(tmp_path), "val")
  msg = str(e.value)
  for expected in (
    "new_aan_pairs.eval.tsv",
    "new_aan_pairs.train.tsv",
    "new_aan_pairs.test.tsv",
    "tsv_data",
    "https://storage.googleapis.com/long-range-arena/lra_release.gz",
  ):
    assert expected in msg


@pytest.mark.parametrize(
  "body, match",
  [
    (
      b"1\ta\tb\tx\ty\n0\ta\tb\tx\n",
      r"new_aan_pairs.train.tsv:2: malformed row: expected 5 tab-separated "
      r"fields \(label, id1, id2, text1, text2\), got 4",
    ),
    (
      b"yes\ta\tb\tx\ty\n",
      r"new_aan_pairs.train.tsv:1: malformed row: label b'yes' is not a number",
    ),
    (
      b"1\ta\tb\tx\ty\n\n2\ta\tb\tx\ty\n",
      r"new_aan_pairs.train.tsv:3: label 2 is outside the class range \[0, 2\)",
    ),
    (
      b"0.5\ta\tb\tx\ty\n",
      r"new_aan_pairs.train.tsv:1: label 0.5 is outside the class range",
    ),
    # The first bad line is reported, and how many more there are.
    (
      b"1\ta\tb\tx\ty\n" * 6
      + b"7\ta\tb\tx\ty\n"
      + b"1\ta\tb\tx\ty\n" * 4
      + b"1\ta\tb\tx\n"
      + b"seven\ta\tb\tx\ty\n",
      r"new_aan_pairs.train.tsv:7: label 7 is outside the class range "
      r"\[0, 2\) \(and 2 more bad lines in this file\)$",
    ),
  ],
)
def test_malformed_rows_name_file_and_line(tmp_path, body, match):
  (tmp_path / "new_aan_pairs.train.tsv").write_bytes(body)
  with pytest.raises(ValueError, match=match):
    lra_tasks.get_task("retrieval").load(str(tmp_path), "train")
