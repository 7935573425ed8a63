"""ListOps: the LRA release's TSV files, LRA's tokenization, a fast generator.

Files (docs/METHOD.md §8.1): `{task_name}_{train,val,test}.tsv` (LRA: `basic_*`
in `listops-1000/`), tab-separated with the header `Source<TAB>Target`; Source
is a fully parenthesised binary tree written by LRA's `to_string`, e.g. the list
`[MAX 4 [MIN 2 3 ] 1 ]` is written

  ( ( ( ( [MAX 4 ) ( ( ( [MIN 2 ) 3 ) ] ) ) 1 ) ] )

and Target is its value, an int in 0..9.

Tokenization (`tokenizer='lra'`, docs/METHOD.md §8.1): delete '(' and ')', then
split on whitespace; ']' is one close token. The ids come from a FIXED, sorted
vocabulary with LRA's id layout (pad 0, tokens 1..V, one OOV id last):

  pad 0 | '0'..'9' -> 1..10 | '[MAX' 11 | '[MED' 12 | '[MIN' 13 | '[SM' 14 |
  ']' 15 | anything else (OOV) 16 | vocab_size 17

so the example above is [11, 5, 13, 3, 4, 15, 2, 15]. Sequences are cut to
max_len (2000) and padded with 0.

`tokenizer='legacy_alnum'` reproduces the pre-2021-03 LRA pipeline that the
Nystromformer/Skyformer/Macformer pickles were made with (docs/METHOD.md §8.1):
keep only alphanumeric runs (`re.split(r'\\W+')`), which drops every bracket:
the example becomes [11, 5, 13, 3, 4, 2] with the same ids ('MAX' = 11, ...; 15
unused).

Differences from the original LRA, and why:

* Vocabulary: LRA builds it from a Python `set` of tokens of ~1000 val rows, so
  the ids depend on the hash seed and change between processes (docs/METHOD.md
  §8.1: a restored checkpoint then scores near chance). Ours is fixed and
  sorted; vocab_size 17 is the same as LRA's.
* Whitespace: LRA uses tensorflow_text's ICU whitespace tokenizer; we split like
  Python's `str.split()` (identical on the ASCII files LRA ships).
* The CSV reader does no quote processing (LRA's files contain no quotes).
* Generator (`generate`, LRA's `data/listops.py`): the same tree distribution
  (operators MIN, MAX, MED, SM; P(leaf) = 0.75 below max_depth; 2..max_args
  arguments; keep a tree iff min_length < length < max_length, length counting
  operators, digits and ']' but no parentheses; dedupe), the same `to_string`
  format, labels (MED = int(np.median), SM = sum % 10) and file format (csv
  `excel-tab` dialect, so CRLF line ends). But LRA's `random` is unseeded and
  its split is the iteration order of a Python `set`; ours is seeded
  (`np.random.default_rng(seed)`) and the splits are taken in generation order,
  so the files are reproducible. Trees are drawn breadth-first in numpy batches
  (with early rejection once a tree reaches max_length), which gives the same
  distribution as LRA's recursion; 96k/2k/2k rows take about half a minute on
  2 CPU cores.

CLI: python -m lra_tasks.listops --output_dir DIR --num_train 96000
  --num_val 2000 --num_test 2000 --seed 0
"""

import argparse
from collections.abc import Sequence
import hashlib
import logging
import os
import re
import sys
import time

import numpy as np

from lra_tasks import base

logger = logging.getLogger("lra_tasks")

SPEC = base.TaskSpec(
  name="listops", num_classes=10, vocab_size=17, max_len=2000, dual_input=False
)

# Fixed sorted vocabulary (see the module docstring); id = position + 1.
VOCAB: tuple[str, ...] = tuple(str(d) for d in range(10)) + (
  "[MAX",
  "[MED",
  "[MIN",
  "[SM",
  "]",
)
OOV_ID = len(VOCAB) + 1  # 16
TOKENIZERS = ("lra", "legacy_alnum")

_LRA_IDS = {tok: i + 1 for i, tok in enumerate(VOCAB)}
_LEGACY_IDS = {tok.lstrip("["): i for tok, i in _LRA_IDS.items() if tok != "]"}
_TABLES = {"lra": _LRA_IDS, "legacy_alnum": _LEGACY_IDS}

# LRA's generator constants (data/listops.py).
# LRA's order: MIN, MAX, MED, SUM_MOD.
OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
END = "]"
# A node is an operator iff random() <= VALUE_P (LRA: r > 0.25 -> leaf).
VALUE_P = 0.25

_WORD_RE = re.compile(r"\W+")


def tokenize(source: str, tokenizer: str = "lra") -> list[int]:
  """Token ids of one Source string (the reference, one row at a time).

  Args:
    source: a ListOps expression, e.g. '( ( [MAX 4 ) ] )'.
    tokenizer: 'lra' (parentheses removed, ']' kept) or 'legacy_alnum'
      (alphanumeric runs only, all brackets dropped).

  Returns:
    The ids, unpadded and untruncated.
  """
  if tokenizer == "lra":
    tokens = source.replace("(", "").replace(")", "").split()
  elif tokenizer == "legacy_alnum":
    tokens = [t for t in _WORD_RE.split(source) if t]
  else:
    raise ValueError(
      f"unknown ListOps tokenizer {tokenizer!r}; known: {', '.join(TOKENIZERS)}"
    )
  table = _TABLES[tokenizer]
  return [table.get(t, OOV_ID) for t in tokens]


def _fast_tables(tokenizer: str):
  """What the vectorised reader needs for ASCII rows.

  Returns:
    (translation table, bytes to delete, {whole-word token: one-byte code},
    byte -> id table): after translation every separator is a space, and
    every multi-byte vocabulary token, replaced by its code (a byte >= 128,
    which never occurs in an ASCII row), is one byte long.
  """
  if tokenizer == "lra":  # '(' and ')' deleted; str.split()'s whitespace
    separators, delete = b"\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f", b"()"
  else:  # runs of \w (ASCII: [0-9A-Za-z_]) are the tokens
    word = set(
      b"0123456789_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    )
    separators, delete = bytes(b for b in range(128) if b not in word), b""
  table = bytes(32 if b in separators else b for b in range(256))
  ids = np.full(256, OOV_ID, np.uint8)
  codes = {}
  for tok, i in _TABLES[tokenizer].items():
    if len(tok) == 1:
      ids[ord(tok)] = i
    else:
      codes[tok.encode()] = bytes([128 + len(codes)])
      ids[128 + len(codes) - 1] = i
  return table, delete, codes, ids


_FAST = {name: _fast_tables(name) for name in TOKENIZERS}


def _tokenize_rows(
  sources: list[bytes], tokenizer: str
) -> tuple[np.ndarray, np.ndarray]:
  """`tokenize` of many Source fields: (ids uint8[T], ids per row int64[N])."""
  if not all(s.isascii() for s in sources):  # rare: the exact per-row path
    rows = [
      tokenize(s.decode("utf-8", errors="replace"), tokenizer) for s in sources
    ]
    return (
      np.asarray([t for r in rows for t in r], np.uint8),
      np.asarray([len(r) for r in rows], np.int64),
    )
  table, delete, codes, ids = _FAST[tokenizer]
  rows = [s.translate(table, delete) for s in sources]
  text = b" " + b" ".join(rows) + b" "
  for tok, code in codes.items():  # whole words only; twice for neighbours
    for _ in range(2):
      text = text.replace(b" " + tok + b" ", b" " + code + b" " * len(tok))
  chars = np.frombuffer(text, np.uint8)
  edge = np.diff((chars != 32).view(np.int8))
  tok_start = np.flatnonzero(edge == 1) + 1
  tok_len = np.flatnonzero(edge == -1) + 1 - tok_start
  tok_ids = np.where(tok_len == 1, ids[chars[tok_start]], np.uint8(OOV_ID))
  row_start = np.cumsum([1] + [len(r) + 1 for r in rows[:-1]])
  first = np.searchsorted(tok_start, row_start)
  return tok_ids, np.diff(first, append=tok_start.size).astype(np.int64)


def _parse_rows(
  path: str, lines: list[bytes], num_classes: int
) -> tuple[list[bytes], list[int]]:
  """Source fields and targets of the data lines (from line 2 on).

  Raises:
    ValueError: the first malformed line (file:line), and how many more
      there are.
  """
  sources, targets, errors = [], [], []
  for line_no, line in enumerate(lines[1:], start=2):
    if not line:
      continue  # blank lines are skipped, as by Python's csv
    fields = line.split(b"\t")
    if len(fields) != 2:
      errors.append(
        f"{path}:{line_no}: malformed row: expected 2 "
        "tab-separated fields (Source, Target), got "
        f"{len(fields)}: {line[:80]!r}"
      )
      continue
    try:
      target = int(fields[1])
    except ValueError:
      errors.append(
        f"{path}:{line_no}: malformed row: Target "
        f"{fields[1][:20]!r} is not an integer"
      )
      continue
    if not 0 <= target < num_classes:
      errors.append(
        f"{path}:{line_no}: Target {target} is outside the "
        f"class range [0, {num_classes})"
      )
      continue
    sources.append(fields[0])
    targets.append(target)
  base.raise_bad_lines(errors)
  return sources, targets


def read_tsv(
  path: str,
  tokenizer: str = "lra",
  max_len: int = SPEC.max_len,
  num_classes: int = SPEC.num_classes,
  chunk_bytes: int = 16 << 20,
) -> tuple[base.RaggedArray, np.ndarray, int]:
  """Reads and tokenizes one ListOps TSV file.

  Args:
    path: a `{task}_{split}.tsv` file with the header `Source<TAB>Target`.
    tokenizer: 'lra' or 'legacy_alnum'.
    max_len: rows longer than this are cut to their first max_len ids (LRA).
    num_classes: targets must lie in [0, num_classes).
    chunk_bytes: rows are tokenized in chunks of about this many bytes.

  Returns:
    (rows: RaggedArray of uint8 ids, each at most max_len long;
     targets: int32[N]; num_truncated: rows that were longer than max_len).

  Raises:
    ValueError: on a bad header, a row without exactly two tab-separated
      fields, a non-integer Target, or a Target outside [0, num_classes); the
      message names the file and the 1-based line number of the first bad
      line, and how many more bad lines there are.
  """
  if tokenizer not in TOKENIZERS:
    raise ValueError(
      f"unknown ListOps tokenizer {tokenizer!r}; known: {', '.join(TOKENIZERS)}"
    )
  with open(path, "rb") as f:
    lines = f.read().split(b"\n")
  if lines == [b""]:
    raise ValueError(
      f"{path}: the file is empty; expected the header 'Source<TAB>Target'"
    )
  # Strip the '\r' of CRLF line ends (csv.writer writes them).
  lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
  if lines[0].split(b"\t") != [b"Source", b"Target"]:
    raise ValueError(
      f"{path}:1: expected the header 'Source<TAB>Target', "
      f"got {lines[0][:80]!r}"
    )
  sources, targets = _parse_rows(path, lines, num_classes)
  del lines
  all_ids, all_counts, i = [], [], 0
  while i < len(sources):  # in chunks, to bound the memory of the arrays
    j, size = i, 0
    while j < len(sources) and (j == i or size < chunk_bytes):
      size += len(sources[j])
      j += 1
    ids, counts = _tokenize_rows(sources[i:j], tokenizer)
    if counts.size and counts.max() > max_len:  # keep the first max_len ids
      rank = np.arange(ids.size) - np.repeat(np.cumsum(counts) - counts, counts)
      ids = ids[rank < max_len]
    all_ids.append(ids)
    all_counts.append(counts)
    i = j
  counts = np.concatenate(all_counts) if all_counts else np.zeros(0, np.int64)
  offsets = np.zeros(counts.size + 1, np.int64)
  np.cumsum(np.minimum(counts, max_len), out=offsets[1:])
  flat = np.concatenate(all_ids) if all_ids else np.zeros(0, np.uint8)
  return (
    base.RaggedArray(flat, offsets),
    np.asarray(targets, np.int32),
    int((counts > max_len).sum()),
  )


def expected_files(task_name: str = "basic") -> list[str]:
  return [f"{task_name}_{s}.tsv" for s in base.SPLITS]


_CANDIDATES = (
  "",
  "listops-1000",
  "listops",
  "lra_release/listops-1000",
  "lra_release/lra_release/listops-1000",
)


class ListOpsTask:
  """The ListOps task (10 classes, max_len 2000, vocab 17)."""

  spec = SPEC
  offline_data = base.DataInfo(
    "generated",
    "ListOps trees from LRA's generator distribution (seeded "
    "lra_tasks.listops.generate), not the LRA release's files",
  )

  def generate(
    self,
    output_dir: str,
    *,
    seed: int,
    num_train: int,
    num_val: int,
    num_test: int,
    task_name: str = "basic",
    min_length: int = 500,
    max_length: int = 2000,
    max_depth: int = 10,
    max_args: int = 10,
  ) -> dict[str, str]:
    """`generate` (below): `{task_name}_{train,val,test}.tsv` in output_dir."""
    return generate(
      output_dir,
      num_train,
      num_val,
      num_test,
      seed,
      task_name=task_name,
      min_length=min_length,
      max_length=max_length,
      max_depth=max_depth,
      max_args=max_args,
    )

  def load(
    self,
    data_dir: str | None,
    split: str,
    *,
    max_len: int | None = None,
    task_name: str = "basic",
    tokenizer: str = "lra",
  ) -> base.TokenSource:
    """Opens `{task_name}_{split}.tsv`.

    Args:
      data_dir: the `listops-1000/` folder of the LRA release, or a parent of it
        (`lra_release/` or `lra_release/lra_release/`), or a `generate` output.
      split: 'train', 'val' or 'test'.
      max_len: L (default 2000); longer rows are truncated, as in LRA.
      task_name: the file prefix ('basic' in the LRA release).
      tokenizer: 'lra' (default) or 'legacy_alnum' (see the module docstring).

    Returns:
      A source of {'inputs': int32[L], 'targets': int32[]}.

    Raises:
      FileNotFoundError: the files are not there (the message says where to get
        them and how to generate them).
      ValueError: a malformed file (the message names file and line).
    """
    base.check_split(split, "listops")
    max_len = base.check_max_len(max_len, SPEC.max_len, "listops")
    if tokenizer not in TOKENIZERS:
      raise ValueError(
        f"listops: unknown tokenizer {tokenizer!r}; known: "
        f"{', '.join(TOKENIZERS)}"
      )
    fname = f"{task_name}_{split}.tsv"
    found, tried = base.find_dir(data_dir, _CANDIDATES, [fname])
    if found is None:
      raise FileNotFoundError(
        f"listops: {fname} not found; looked in: {', '.join(tried)}. "
        f"Expected {', '.join(expected_files(task_name))} (tab-separated, "
        "header 'Source<TAB>Target'), as in the LRA release's listops-1000/ "
        f"folder ({base.LRA_RELEASE_URL}), or generate them offline with: "
        f"python -m lra_tasks.listops --output_dir {data_dir or 'DIR'} "
        "--num_train 96000 --num_val 2000 --num_test 2000 --seed 0"
      )
    path = os.path.join(found, fname)
    t0 = time.time()
    rows, targets, num_truncated = read_tsv(path, tokenizer, max_len)
    logger.info(
      "listops: read %s (%d rows) in %.1fs",
      path,
      len(targets),
      time.time() - t0,
    )
    base.log_truncation("listops", split, num_truncated, len(targets), max_len)
    return base.TokenSource(targets, max_len, rows)


# ---------------------------------------------------------------------------
# Generator.

# Token codes of the paren-wrapped output format.
_OPEN, _CLOSE, _END, _OP0, _DIGIT0 = 0, 1, 2, 3, 7
_LABEL0 = 17  # a label digit followed by the line end
_PIECES = (
  [b"( ", b") ", b"] "]
  + [op.encode() + b" " for op in OPERATORS]
  + [str(d).encode() + b" " for d in range(10)]
  + [str(d).encode() + b"\r\n" for d in range(10)]
)
_PIECE_LEN = np.array([len(p) for p in _PIECES], np.int64)
_PIECE_TABLE = np.zeros((len(_PIECES), int(_PIECE_LEN.max())), np.uint8)
for _i, _p in enumerate(_PIECES):
  _PIECE_TABLE[_i, : len(_p)] = np.frombuffer(_p, np.uint8)


def max_tree_length(max_depth: int, max_args: int) -> int:
  """The longest tree (LRA length: operators, digits and ']') that can occur."""
  m = 1
  for _ in range(max_depth - 1):
    m = 2 + max_args * m
  return m


def _excl_cumsum(x: np.ndarray) -> np.ndarray:
  out = np.zeros(x.size, np.int64)
  if x.size > 1:
    np.cumsum(x[:-1], out=out[1:])
  return out


def _segment_ranks(counts: np.ndarray) -> np.ndarray:
  """[0..counts[0]-1, 0..counts[1]-1, ...]."""
  total = int(counts.sum())
  return np.arange(total, dtype=np.int64) - np.repeat(
    _excl_cumsum(counts), counts
  )


def _draw_trees(
  rng: np.random.Generator,
  num_roots: int,
  max_depth: int,
  max_args: int,
  max_length: int,
):
  """Draws `num_roots` LRA trees breadth-first.

  Returns:
    (levels, lengths, alive): levels[d] holds arrays for the nodes at depth
    d + 1 in (tree, parent, sibling) order: 'tree', 'parent' (index into the
    previous level), 'k' (number of children, 0 for a leaf), 'op' (0..3),
    'val' (0..9); lengths[t] is tree t's LRA length (exact when alive[t]);
    alive[t] is False when the tree reached max_length and stopped growing.
  """
  levels = []
  tree = np.arange(num_roots, dtype=np.int64)
  parent = np.full(num_roots, -1, np.int64)
  lengths = np.zeros(num_roots, np.int64)
  alive = np.ones(num_roots, bool)
  for depth in range(1, max_depth + 1):
    n = tree.size
    is_op = rng.random(n) <= VALUE_P if depth < max_depth else np.zeros(n, bool)
    n_op = int(is_op.sum())
    k = np.zeros(n, np.int64)
    k[is_op] = rng.integers(2, max_args + 1, n_op)
    op = np.zeros(n, np.int8)
    op[is_op] = rng.integers(0, len(OPERATORS), n_op)
    val = np.zeros(n, np.int8)
    val[~is_op] = rng.integers(0, 10, n - n_op)
    # LRA length: a leaf counts 1, an operator 2 (itself and its ']').
    lengths += np.bincount(tree, weights=1 + is_op, minlength=num_roots).astype(
      np.int64
    )
    alive &= lengths < max_length
    levels.append(
      {"tree": tree, "parent": parent, "k": k, "op": op, "val": val}
    )
    grow = np.flatnonzero(is_op & alive[tree])
    if grow.size == 0:
      break
    parent = np.repeat(grow, k[grow])
    tree = tree[parent]
  return levels, lengths, alive


def _render(levels, accepted: np.ndarray):
  """Paren-format lines and labels of the accepted trees of one batch.

  Returns:
    (lines, labels): lines[i] is b'<Source>\\t<Target>\\r\\n' of the i-th
    accepted tree (in tree order), labels int64[n].
  """
  # Keep only the nodes of accepted trees, remapping parent indices.
  kept = []
  prev_new_index = None
  for lv in levels:
    keep = accepted[lv["tree"]]
    if not keep.any():
      break
    new = {key: v[keep] for key, v in lv.items()}
    if prev_new_index is not None:
      new["parent"] = prev_new_index[new["parent"]]
    prev_new_index = np.cumsum(keep) - 1
    kept.append(new)
  depth = len(kept)
  # Bottom-up: values and sizes (tokens of the paren format).
  values = [None] * depth
  sizes = [None] * depth
  for d in range(depth - 1, -1, -1):
    lv = kept[d]
    k = lv["k"]
    value = lv["val"].astype(np.int64)
    size = np.ones(k.size, np.int64)
    ops = np.flatnonzero(k > 0)
    if ops.size:
      cv, cs = values[d + 1], sizes[d + 1]
      kk = k[ops]
      seg = _excl_cumsum(kk)
      seg_id = np.repeat(np.arange(ops.size), kk)
      mn = np.minimum.reduceat(cv, seg)
      mx = np.maximum.reduceat(cv, seg)
      sm = np.add.reduceat(cv, seg) % 10
      sv = cv[np.lexsort((cv, seg_id))]
      med = (sv[seg + (kk - 1) // 2] + sv[seg + kk // 2]) // 2  # int(np.median)
      opc = lv["op"][ops]
      value[ops] = np.choose(opc, [mn, mx, med, sm])
      size[ops] = 2 * kk + 4 + np.add.reduceat(cs, seg)
    values[d], sizes[d] = value, size
  # Top-down: start positions. Each tree gets size + 1 slots (+1: the label).
  root_size = sizes[0]
  root_pos = _excl_cumsum(root_size + 1)
  total = int((root_size + 1).sum())
  codes = np.empty(total, np.int8)
  codes[root_pos + root_size] = _LABEL0 + values[0]
  pos = root_pos
  for d in range(depth):
    lv, size = kept[d], sizes[d]
    k = lv["k"]
    leaves = k == 0
    codes[pos[leaves]] = _DIGIT0 + lv["val"][leaves]
    ops = np.flatnonzero(~leaves)
    if ops.size == 0:
      break
    p, kk, sz = pos[ops], k[ops], size[ops]
    codes[np.repeat(p, kk + 1) + _segment_ranks(kk + 1)] = _OPEN
    codes[p + kk + 1] = _OP0 + lv["op"][ops]
    codes[p + sz - 2] = _END
    codes[p + sz - 1] = _CLOSE
    # Children: child i of an op at p starts at p + k + 2 + sum_{j<i}(size_j+1).
    csz = sizes[d + 1]
    excl = _excl_cumsum(csz + 1)
    within = excl - np.repeat(excl[_excl_cumsum(kk)], kk)
    child_pos = np.repeat(p + kk + 2, kk) + within
    codes[child_pos + csz] = _CLOSE
    pos = child_pos
  # Codes -> bytes.
  piece_len = _PIECE_LEN[codes]
  mask = np.arange(_PIECE_TABLE.shape[1]) < piece_len[:, None]
  flat = _PIECE_TABLE[codes][mask]
  char_start = _excl_cumsum(piece_len)
  label_char = char_start[root_pos + root_size]
  flat[label_char - 1] = ord("\t")  # the space after the last Source token
  line_end = np.append(char_start[root_pos[1:]], flat.size)
  line_start = char_start[root_pos]
  raw = flat.tobytes()
  lines = [
    raw[a:b]
    for a, b in zip(line_start.tolist(), line_end.tolist(), strict=True)
  ]
  return lines, values[0]


def generate(
  output_dir: str,
  num_train: int,
  num_val: int,
  num_test: int,
  seed: int,
  *,
  task_name: str = "basic",
  min_length: int = 500,
  max_length: int = 2000,
  max_depth: int = 10,
  max_args: int = 10,
) -> dict[str, str]:
  """Writes `{task_name}_{train,val,test}.tsv` like LRA's data/listops.py.

  The output is a function of (seed, min_length, max_length, max_depth,
  max_args) and the split sizes: the same arguments give byte-identical files.

  Args:
    output_dir: created if missing.
    num_train, num_val, num_test: rows per split (LRA: 96000, 2000, 2000).
    seed: a non-negative int.
    task_name: the file prefix (LRA: 'basic').
    min_length, max_length: keep trees with min_length < length < max_length
      (strict, as LRA; length counts operators, digits and ']').
    max_depth: the root is depth 1; nodes at max_depth are digits.
    max_args: an operator has 2..max_args arguments.

  Returns:
    {'train': path, 'val': path, 'test': path}.

  Raises:
    ValueError: on impossible settings (e.g. min_length >= the longest tree).
  """
  counts = {"train": num_train, "val": num_val, "test": num_test}
  for name, n in counts.items():
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
      raise ValueError(f"num_{name} must be a non-negative int, got {n!r}")
  if max_depth < 1 or max_args < 2:
    raise ValueError(
      f"need max_depth >= 1 and max_args >= 2, got {max_depth} and {max_args}"
    )
  longest = max_tree_length(max_depth, max_args)
  if min_length + 1 >= max_length or min_length + 1 > longest:
    raise ValueError(
      f"no tree can satisfy {min_length} < length < {max_length} (the "
      f"longest possible with max_depth={max_depth}, max_args={max_args} is "
      f"{longest})"
    )
  rng = np.random.default_rng(seed)
  os.makedirs(output_dir, exist_ok=True)
  paths = {
    s: os.path.join(output_dir, f"{task_name}_{s}.tsv") for s in base.SPLITS
  }
  files = {s: open(paths[s], "wb") for s in base.SPLITS}  # noqa: SIM115 (closed below)
  try:
    for f in files.values():
      f.write(b"Source\tTarget\r\n")
    remaining = [(s, counts[s]) for s in base.SPLITS]
    seen = set()
    total = sum(counts.values())
    written = 0
    batches_without_progress = 0
    t0 = last_log = time.time()
    while written < total:
      levels, lengths, alive = _draw_trees(
        rng, 4096, max_depth, max_args, max_length
      )
      accepted = alive & (lengths > min_length) & (lengths < max_length)
      if not accepted.any():
        batches_without_progress += 1
        if batches_without_progress > 10000:
          raise RuntimeError(
            "listops.generate: no tree accepted in 10000 batches; widen "
            f"({min_length}, {max_length}) or raise max_depth/max_args"
          )
        continue
      batches_without_progress = 0
      lines, _ = _render(levels, accepted)
      for line in lines:
        digest = hashlib.blake2b(
          line[: line.rindex(b"\t")], digest_size=16
        ).digest()
        if digest in seen:
          continue
        seen.add(digest)
        while remaining and remaining[0][1] == 0:
          remaining.pop(0)
        split, left = remaining[0]
        files[split].write(line)
        remaining[0] = (split, left - 1)
        written += 1
        if written == total:
          break
      if time.time() - last_log > 10 or written == total:
        last_log = time.time()
        logger.info(
          "listops.generate: %d / %d rows (%.0fs)",
          written,
          total,
          last_log - t0,
        )
  finally:
    for f in files.values():
      f.close()
  return paths


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
    prog="python -m lra_tasks.listops",
    description="Writes ListOps TSV files in the LRA release format.",
  )
  parser.add_argument("--output_dir", required=True)
  parser.add_argument("--num_train", type=int, default=96000)
  parser.add_argument("--num_val", type=int, default=2000)
  parser.add_argument("--num_test", type=int, default=2000)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--task_name", default="basic")
  parser.add_argument("--min_length", type=int, default=500)
  parser.add_argument("--max_length", type=int, default=2000)
  parser.add_argument("--max_depth", type=int, default=10)
  parser.add_argument("--max_args", type=int, default=10)
  args = parser.parse_args(argv)
  logging.basicConfig(level=logging.INFO, format="%(message)s")
  t0 = time.time()
  paths = generate(
    args.output_dir,
    args.num_train,
    args.num_val,
    args.num_test,
    args.seed,
    task_name=args.task_name,
    min_length=args.min_length,
    max_length=args.max_length,
    max_depth=args.max_depth,
    max_args=args.max_args,
  )
  print(f"wrote {', '.join(paths.values())} in {time.time() - t0:.1f}s")
  return 0


TASK = ListOpsTask()

if __name__ == "__main__":
  sys.exit(main())
