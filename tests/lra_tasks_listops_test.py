"""Tests for lra_tasks/listops.py: golden tokenization, reader, generator,
errors."""

import csv
import logging
import os
import pathlib

import numpy as np
import pytest

import lra_tasks
from lra_tasks import listops

# docs/METHOD.md §8.1: `[MAX 4 [MIN 2 3 ] 1 ]` as written by LRA's to_string.
GOLDEN_SOURCE = "( ( ( ( [MAX 4 ) ( ( ( [MIN 2 ) 3 ) ] ) ) 1 ) ] )"
# The issue's spelling of the same list (one outer pair fewer).
ISSUE_SOURCE = "( ( ( [MAX 4 ) ( ( ( [MIN 2 ) 3 ) ] ) ) 1 ) ]"
# [MAX=11, 4->5, [MIN=13, 2->3, 3->4, ]=15, 1->2, ]=15]
GOLDEN_IDS = [11, 5, 13, 3, 4, 15, 2, 15]
GOLDEN_LEGACY_IDS = [11, 5, 13, 3, 4, 2]


# --- An independent evaluator: parse the parentheses, then LRA's to_value. ---

OPS = ("[MIN", "[MAX", "[MED", "[SM")


def parse(source):
  """Paren string -> LRA's nested 2-tuples (uses the parentheses, not ids)."""
  stack = [[]]
  for tok in source.split():
    if tok == "(":
      stack.append([])
    elif tok == ")":
      pair = stack.pop()
      assert len(pair) == 2, pair
      stack[-1].append(tuple(pair))
    elif tok in OPS or tok == "]":
      stack[-1].append(tok)
    else:
      stack[-1].append(int(tok))
  assert len(stack) == 1 and len(stack[0]) == 1
  return stack[0][0]


def lra_to_value(t):
  """LRA data/listops.py `to_value`, re-implemented from its description."""
  if not isinstance(t, tuple):
    return t
  left, right = lra_to_value(t[0]), lra_to_value(t[1])
  if left in OPS:
    return (left, [right])
  if right == "]":
    op, args = left
    return {
      "[MIN": min,
      "[MAX": max,
      "[MED": lambda a: int(np.median(a)),
      "[SM": lambda a: int(np.sum(a)) % 10,
    }[op](args)
  return (left[0], left[1] + [right])


def lra_to_string(t):
  if isinstance(t, str):
    return t
  if isinstance(t, int):
    return str(t)
  return "( " + lra_to_string(t[0]) + " " + lra_to_string(t[1]) + " )"


def read_rows(path):
  with open(path, newline="") as f:
    rows = list(csv.reader(f, delimiter="\t"))
  assert rows[0] == ["Source", "Target"]
  return rows[1:]


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
  """A small data set at LRA lengths (500 < length < 2000)."""
  out = tmp_path_factory.mktemp("listops")
  listops.generate(str(out), 40, 8, 8, seed=11)
  return str(out)


# --- Tokenization. ---


def test_fixed_vocabulary_layout():
  assert listops.VOCAB == (
    "0",
    "1",
    "2",
    "3",
    "4",
    "5",
    "6",
    "7",
    "8",
    "9",
    "[MAX",
    "[MED",
    "[MIN",
    "[SM",
    "]",
  )
  assert listops.OOV_ID == 16
  assert listops.SPEC.vocab_size == 17 == len(listops.VOCAB) + 2


@pytest.mark.parametrize("source", [GOLDEN_SOURCE, ISSUE_SOURCE])
def test_golden_tokenization(source):
  assert listops.tokenize(source) == GOLDEN_IDS
  assert listops.tokenize(source, "legacy_alnum") == GOLDEN_LEGACY_IDS


def test_golden_file_round_trip(tmp_path):
  path = tmp_path / "basic_train.tsv"
  path.write_bytes(
    b"Source\tTarget\r\n" + GOLDEN_SOURCE.encode() + b"\t4\r\n"
    b"( ( [SM 7 ) ] )\t7\r\n"
  )
  for name in ("basic_val.tsv", "basic_test.tsv"):
    (tmp_path / name).write_bytes(path.read_bytes())
  src = lra_tasks.get_task("listops").load(str(tmp_path), "train")
  assert len(src) == 2
  ex = src[0]
  assert ex["inputs"].shape == (2000,) and ex["inputs"].dtype == np.int32
  assert ex["inputs"][:8].tolist() == GOLDEN_IDS and not ex["inputs"][8:].any()
  assert ex["targets"] == 4 and ex["targets"].dtype == np.int32
  assert src[1]["inputs"][:3].tolist() == [14, 8, 15]
  legacy = lra_tasks.get_task("listops").load(
    str(tmp_path), "train", tokenizer="legacy_alnum"
  )
  assert legacy[0]["inputs"][:7].tolist() == GOLDEN_LEGACY_IDS + [0]


TRICKY_ROWS = [
  "( ( [MAX 4 ) ] )",
  "  [MIN   3\x0b 4 ]  ",  # extra and odd whitespace
  "4)5 [FOO 12 ]] X",  # deleted parens join '45'; OOV tokens
  "(( [SM_ 9 ) ]",  # '[SM_' is OOV for lra, 'SM_' for legacy
  "[MED,2,3]",  # legacy splits on punctuation
  "",  # empty Source
  "[MAX 1 caf\u00e9 \u00a02 ]",  # non-ASCII row: per-row fallback
]


@pytest.mark.parametrize("tokenizer", listops.TOKENIZERS)
def test_vectorized_reader_matches_reference(tmp_path, generated, tokenizer):
  path = tmp_path / "basic_val.tsv"
  body = "".join(f"{r}\t{i % 10}\n" for i, r in enumerate(TRICKY_ROWS))
  path.write_text("Source\tTarget\n" + body, encoding="utf-8")
  for file in (str(path), os.path.join(generated, "basic_train.tsv")):
    rows, targets, truncated = listops.read_tsv(file, tokenizer)
    expected = read_rows(file)
    assert len(rows) == len(expected) and truncated == 0
    for i, (source, target) in enumerate(expected):
      assert rows.row(i).tolist() == listops.tokenize(source, tokenizer)
      assert targets[i] == int(target)


def test_truncation_keeps_the_first_ids_and_is_logged(generated, caplog):
  caplog.set_level(logging.INFO, logger="lra_tasks")
  src = lra_tasks.get_task("listops").load(generated, "val", max_len=10)
  rows = read_rows(os.path.join(generated, "basic_val.tsv"))
  assert src[0]["inputs"].tolist() == listops.tokenize(rows[0][0])[:10]
  assert (
    f"listops/val: {len(rows)} of {len(rows)} sequences truncated to "
    "max_len=10" in caplog.text
  )


def test_finds_files_in_the_release_layout(tmp_path, generated):
  nested = tmp_path / "lra_release" / "lra_release" / "listops-1000"
  nested.mkdir(parents=True)
  for name in listops.expected_files():
    with open(os.path.join(generated, name), "rb") as f:
      (nested / name).write_bytes(f.read())
  assert len(lra_tasks.get_task("listops").load(str(tmp_path), "test")) == 8


# --- Generator. ---


def test_generator_labels_format_and_lengths(generated):
  seen = set()
  counts = {"train": 40, "val": 8, "test": 8}
  for split, n in counts.items():
    path = os.path.join(generated, f"basic_{split}.tsv")
    with open(path, "rb") as f:
      data = f.read()
    assert data.startswith(b"Source\tTarget\r\n") and data.endswith(b"\r\n")
    rows = read_rows(path)
    assert len(rows) == n
    for source, target in rows:
      tree = parse(source)
      assert lra_to_string(tree) == source  # exactly LRA's to_string format
      assert int(lra_to_value(tree)) == int(target)
      assert 500 < len(listops.tokenize(source)) < 2000
      assert source not in seen  # deduplicated across splits
      seen.add(source)


def test_generator_small_settings_and_operator_mix(tmp_path):
  listops.generate(
    str(tmp_path),
    300,
    10,
    10,
    seed=0,
    task_name="mini",
    min_length=10,
    max_length=60,
    max_depth=5,
    max_args=4,
  )
  rows = read_rows(str(tmp_path / "mini_train.tsv"))
  ops = {op: 0 for op in OPS}
  for source, target in rows:
    tree = parse(source)
    assert int(lra_to_value(tree)) == int(target)
    assert 10 < len(listops.tokenize(source)) < 60
    for op in OPS:
      ops[op] += source.count(op + " ")
  assert min(ops.values()) > 0.15 * sum(ops.values())  # all four, ~uniform
  src = lra_tasks.get_task("listops").load(
    str(tmp_path), "train", task_name="mini", max_len=64
  )
  assert len(src) == 300 and src[0]["inputs"].shape == (64,)


def lra_tree_length(rng, depth, max_depth, max_args):
  """LRA's recursive generate_tree, keeping only the length it returns."""
  r = rng.random() if depth < max_depth else 1.0
  if r > 0.25:
    return 1
  k = int(rng.integers(2, max_args + 1))
  return 2 + sum(
    lra_tree_length(rng, depth + 1, max_depth, max_args) for _ in range(k)
  )


def test_breadth_first_draws_match_lra_recursion_in_distribution():
  """Tree lengths drawn breadth-first vs by LRA's recursion (no rejection).

  Bound: the two sample means differ by less than 5 standard errors of the
  difference (a fixed-seed check, false alarm probability < 1e-6); the same
  for the leaf-only fraction, whose exact value is 1 - VALUE_P = 0.75.
  """
  n, depth, args = 20000, 6, 5
  _, bfs, _ = listops._draw_trees(
    np.random.default_rng(0), n, depth, args, max_length=10**9
  )
  rng = np.random.default_rng(1)
  rec = np.array([lra_tree_length(rng, 1, depth, args) for _ in range(n)])
  se = np.sqrt(bfs.var() / n + rec.var() / n)
  assert abs(bfs.mean() - rec.mean()) < 5 * se
  for sample in (bfs, rec):
    p = (sample == 1).mean()
    assert abs(p - 0.75) < 5 * np.sqrt(0.75 * 0.25 / n)


def test_generator_is_deterministic(tmp_path, generated):
  listops.generate(str(tmp_path / "a"), 40, 8, 8, seed=11)
  listops.generate(str(tmp_path / "b"), 40, 8, 8, seed=12)
  for name in listops.expected_files():
    a = (tmp_path / "a" / name).read_bytes()
    assert a == pathlib.Path(generated, name).read_bytes()
    assert a != (tmp_path / "b" / name).read_bytes()


def test_max_tree_length_and_impossible_settings(tmp_path):
  assert listops.max_tree_length(1, 10) == 1
  assert listops.max_tree_length(2, 10) == 12
  assert listops.max_tree_length(3, 2) == 10  # 2 + 2 * (2 + 2 * 1)
  with pytest.raises(ValueError, match="no tree can satisfy"):
    listops.generate(
      str(tmp_path),
      1,
      1,
      1,
      seed=0,
      min_length=20,
      max_length=100,
      max_depth=3,
      max_args=3,
    )
  with pytest.raises(ValueError, match="num_val"):
    listops.generate(str(tmp_path), 1, -1, 1, seed=0)


def test_cli(tmp_path):
  assert (
    listops.main(
      [
        "--output_dir",
        str(tmp_path),
        "--num_train",
        "3",
        "--num_val",
        "2",
        "--num_test",
        "1",
        "--seed",
        "5",
        "--min_length",
        "20",
        "--max_length",
        "80",
      ]
    )
    == 0
  )
  assert len(read_rows(str(tmp_path / "basic_test.tsv"))) == 1


# --- Bad input. ---


def test_missing_directory_names_files_release_and_generator(tmp_path):
  with pytest.raises(FileNotFoundError) as e:
    lra_tasks.get_task("listops").load(str(tmp_path / "nope"), "train")
  msg = str(e.value)
  for expected in (
    "basic_train.tsv",
    "basic_val.tsv",
    "basic_test.tsv",
    "https://storage.googleapis.com/long-range-arena/lra_release.gz",
    "python -m lra_tasks.listops",
    str(tmp_path / "nope"),
  ):
    assert expected in msg


def _write_split(tmp_path, body, name="basic_train.tsv"):
  path = tmp_path / name
  path.write_bytes(body)
  return str(path)


@pytest.mark.parametrize(
  "body, match",
  [
    (
      b"Source\tTarget\n( [MAX 1 ] )\t1\n[MIN 2 ]\t2\textra\n",
      r"basic_train.tsv:3: malformed row: expected 2 tab-separated fields",
    ),
    (
      b"Source\tTarget\n( [MAX 1 ] )\n",
      r"basic_train.tsv:2: malformed row: expected 2 tab-separated fields",
    ),
    (
      b"Source\tTarget\n[MAX 1 ]\tone\n",
      r"basic_train.tsv:2: malformed row: Target b'one' is not an integer",
    ),
    (
      b"Source\tTarget\n[MAX 1 ]\t1\n\n[SM 9 9 ]\t10\n",
      r"basic_train.tsv:4: Target 10 is outside the class range \[0, 10\)",
    ),
    (
      b"Source\tTarget\n[MAX 1 ]\t-1\n",
      r"basic_train.tsv:2: Target -1 is outside the class range",
    ),
    (
      b"src\tlabel\n[MAX 1 ]\t1\n",
      r"basic_train.tsv:1: expected the header 'Source<TAB>Target'",
    ),
    (b"", r"basic_train.tsv: the file is empty"),
  ],
)
def test_malformed_files_name_file_and_line(tmp_path, body, match):
  _write_split(tmp_path, body)
  with pytest.raises(ValueError, match=match):
    lra_tasks.get_task("listops").load(str(tmp_path), "train")


def test_the_first_bad_line_is_reported_with_the_count_of_more(tmp_path):
  """A bad Target on line 7 and a missing tab on line 12: line 7 is named
  (not the later one), and the one more bad line is counted."""
  rows = [b"[MAX 1 ]\t1\n"] * 10
  rows[5] = b"[MAX 1 ]\tseven\n"  # line 7
  rows[10:] = [b"[MIN 2 ]\n"]  # line 12
  _write_split(tmp_path, b"Source\tTarget\n" + b"".join(rows))
  with pytest.raises(ValueError) as error:
    lra_tasks.get_task("listops").load(str(tmp_path), "train")
  message = str(error.value)
  assert message.startswith(
    f"{tmp_path / 'basic_train.tsv'}:7: malformed "
    "row: Target b'seven' is not an integer"
  ), message
  assert message.endswith("(and 1 more bad line in this file)"), message


def test_unknown_tokenizer(tmp_path):
  _write_split(tmp_path, b"Source\tTarget\n[MAX 1 ]\t1\n")
  with pytest.raises(ValueError, match="unknown tokenizer 'bpe'.*legacy_alnum"):
    lra_tasks.get_task("listops").load(str(tmp_path), "train", tokenizer="bpe")
