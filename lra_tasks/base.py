"""What every LRA task pipeline shares: `TaskSpec`, the `Task` protocol,
batching.

A task turns the files of the LRA release (or TFDS for IMDB and CIFAR-10) into a
*source*: a random-access sequence of examples, each a dict of numpy arrays for
ONE example,

  {'inputs': int32[L], 'targets': int32[]}      (+ 'inputs2': int32[L])

padded with id 0 to exactly L = max_len. `train_batches` and `eval_batches`
turn a source into batches of B examples,

  {'inputs': int32[B, L], 'targets': int32[B], 'weights': float32[B]}
  (+ 'inputs2': int32[B, L] for Retrieval)

which the trainer shards over devices. On several hosts each process loads only
its rows of every global batch (`rows=`), and the batch at a step is the same
whatever the number of hosts. Everything here is numpy: no TensorFlow, JAX or
Flax is imported by `lra_tasks`.

Differences from the original LRA input pipelines (docs/METHOD.md §8.5), and
why:

* LRA shuffles with unseeded `tf.data` buffers (ListOps 1024 examples, Text 256,
  Retrieval 2048, Image 256 *batches*). Here the train stream is a full
  permutation per epoch drawn from `np.random.default_rng([seed, epoch])`, so
  the batch at step s depends only on (seed, s) and a resumed run sees exactly
  the stream it would have seen without the interruption.
* LRA drops the last partial eval batch for Retrieval and Image
  (`drop_remainder=True`, docs/METHOD.md §8.5). `eval_batches` never drops: the
  last batch is padded with weight-0 rows, so accuracies are
  over the whole split.
"""

from collections.abc import Iterator, Sequence
import dataclasses
import logging
import os
from typing import Any, Protocol

import numpy as np

logger = logging.getLogger("lra_tasks")

SPLITS = ("train", "val", "test")
LRA_RELEASE_URL = (
  "https://storage.googleapis.com/long-range-arena/lra_release.gz"
)

Example = dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class TaskSpec:
  """Static facts about a task that the model and trainer need.

  Attributes:
    name: registry name, e.g. 'listops'.
    num_classes: C, the number of target classes; targets lie in [0, C).
    vocab_size: size of the embedding table needed (max id + 1), pad id 0
      included.
    max_len: L, the LRA default sequence length (per document for Retrieval).
    dual_input: True when examples carry 'inputs2' (Retrieval only).
  """

  name: str
  num_classes: int
  vocab_size: int
  max_len: int
  dual_input: bool


class Source(Protocol):
  """Random-access examples of one split: `len(src)` and `src[i]`.

  `src[i]` is {'inputs': int32[L], 'targets': int32[]} (+ 'inputs2': int32[L]),
  with `inputs` padded with 0 to exactly L.
  """

  def __len__(self) -> int: ...

  def __getitem__(self, index: int) -> Example: ...


@dataclasses.dataclass(frozen=True)
class DataInfo:
  """What a task's offline data (`Task.generate`) is, for logs and results.

  Attributes:
    kind: 'generated' (the task's own distribution, e.g. LRA's ListOps
      generator) or 'synthetic' (the task's shapes, vocabulary and classes,
      but made-up content: no benchmark number).
    description: one line saying what the data is.
  """

  kind: str
  description: str


class Task(Protocol):
  """A task: its `spec`, a `load` that opens one split as a `Source`, and a
  `generate` that writes offline data in the task's real file format."""

  spec: TaskSpec
  offline_data: DataInfo

  def load(
    self,
    data_dir: str | None,
    split: str,
    *,
    max_len: int | None = None,
    **options: Any,
  ) -> Source:
    """Opens `split` ('train', 'val' or 'test') of the task under `data_dir`.

    Args:
      data_dir: where the task's files are (task specific, see each module).
      split: 'train', 'val' or 'test'.
      max_len: L, the padded length; None means `spec.max_len`.
      **options: task-specific options; an unknown one raises TypeError.

    Returns:
      A `Source` of {'inputs': int32[L], 'targets': int32[]} examples.
    """
    ...

  def generate(
    self, output_dir: str, *, seed: int, **options: Any
  ) -> dict[str, str]:
    """Writes offline data under `output_dir` that `load(output_dir, ...)`
    reads with the real loader (see `offline_data` for what it is).

    Args:
      output_dir: created if missing.
      seed: a non-negative int; the files are a function of the arguments.
      **options: task-specific sizes; an unknown one raises TypeError.

    Returns:
      {name: path} of what was written.
    """
    ...


# ---------------------------------------------------------------------------
# Argument checks shared by the task modules.


def check_split(split: str, task: str) -> str:
  """Returns `split` if it is one of SPLITS, else raises ValueError."""
  if split not in SPLITS:
    raise ValueError(
      f"{task}: unknown split {split!r}; expected one of {', '.join(SPLITS)}"
    )
  return split


def check_max_len(max_len: int | None, default: int, task: str) -> int:
  """Returns `max_len` (or `default` when None), checked to be positive."""
  if max_len is None:
    return default
  if isinstance(max_len, bool) or not isinstance(max_len, (int, np.integer)):
    raise ValueError(f"{task}: max_len must be a positive int, got {max_len!r}")
  if max_len <= 0:
    raise ValueError(f"{task}: max_len must be positive, got {max_len}")
  return int(max_len)


def find_dir(
  data_dir: str | None, candidates: Sequence[str], required: Sequence[str]
) -> tuple[str | None, list]:
  """Finds the first `data_dir/candidate` that holds every file in `required`.

  The LRA tarball unpacks to `lra_release/lra_release/<task dir>`
  (docs/METHOD.md §8.1), and users also move the task folders out of it, so each
  loader accepts `data_dir` pointing at the task folder itself or at any parent
  on that path.

  Args:
    data_dir: the user's directory (None or '' means the current directory).
    candidates: relative sub-directories to try, in order ('' = data_dir).
    required: relative file names that must all exist in the directory.

  Returns:
    (the directory found or None, the list of directories tried).
  """
  root = os.path.expanduser(data_dir or ".")
  tried = []
  for cand in candidates:
    d = os.path.normpath(os.path.join(root, cand))
    tried.append(d)
    if all(os.path.isfile(os.path.join(d, f)) for f in required):
      return d, tried
  return None, tried


def log_truncation(
  task: str,
  split: str,
  num_truncated: int,
  num_total: int,
  max_len: int,
  what: str = "sequences",
) -> None:
  """Logs how many sequences were cut to `max_len` (LRA truncates silently)."""
  logger.info(
    "%s/%s: %d of %d %s truncated to max_len=%d (%.1f%%)",
    task,
    split,
    num_truncated,
    num_total,
    what,
    max_len,
    100.0 * num_truncated / max(num_total, 1),
  )


# ---------------------------------------------------------------------------
# Compact storage of variable-length token sequences.


class RaggedArray:
  """N variable-length id sequences stored in one flat array.

  Row i is `flat[offsets[i]:offsets[i + 1]]`. The flat array keeps a compact
  dtype (uint8 for ListOps, bytes and pixels; uint16 if ever needed), so 96k
  ListOps rows of up to 2000 ids take under 200 MB.
  """

  def __init__(self, flat: np.ndarray, offsets: np.ndarray):
    if offsets.ndim != 1 or offsets.size == 0 or offsets[0] != 0:
      raise ValueError("offsets must be 1-D and start at 0")
    if offsets[-1] != flat.size:
      raise ValueError(
        f"offsets end at {offsets[-1]} but flat has {flat.size} ids"
      )
    self.flat = flat
    self.offsets = offsets.astype(np.int64, copy=False)

  @classmethod
  def from_rows(cls, rows: Sequence[np.ndarray], dtype=np.uint8):
    lengths = np.fromiter((len(r) for r in rows), np.int64, len(rows))
    offsets = np.zeros(len(rows) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = (
      np.concatenate([np.asarray(r, dtype) for r in rows])
      if len(rows)
      else np.zeros(0, dtype)
    )
    return cls(flat.astype(dtype, copy=False), offsets)

  def __len__(self) -> int:
    return self.offsets.size - 1

  def lengths(self) -> np.ndarray:
    return np.diff(self.offsets)

  def row(self, i: int) -> np.ndarray:
    return self.flat[self.offsets[i] : self.offsets[i + 1]]

  def padded(self, i: int, max_len: int) -> np.ndarray:
    """Row i as int32[max_len]: truncated to max_len, then padded with 0."""
    r = self.row(i)[:max_len]
    out = np.zeros(max_len, np.int32)
    out[: r.size] = r
    return out


class TokenSource:
  """A `Source` over pre-tokenized rows held in `RaggedArray`s.

  Args:
    targets: int32[N] class ids.
    max_len: L, every 'inputs' is padded with 0 (or cut) to exactly L.
    docs: the stored id sequences.
    doc_index: None (example i is docs row i), or int[N] (example i is row
      doc_index[i]), or int[N, 2] for two inputs ('inputs', 'inputs2'); lets
      Retrieval store each AAN paper once however many pairs use it.
    offset: added to every stored id (e.g. +1 to turn bytes 0..255 into ids
      1..256 while storing uint8).
  """

  def __init__(
    self,
    targets: np.ndarray,
    max_len: int,
    docs: RaggedArray,
    doc_index: np.ndarray | None = None,
    offset: int = 0,
  ):
    self.targets = np.asarray(targets, np.int32)
    self.max_len = int(max_len)
    self.docs = docs
    self.offset = int(offset)
    if doc_index is None:
      if len(docs) != len(self.targets):
        raise ValueError(f"{len(docs)} rows but {len(self.targets)} targets")
    elif doc_index.shape[0] != len(self.targets):
      raise ValueError(
        f"{doc_index.shape[0]} index rows but {len(self.targets)} targets"
      )
    self.doc_index = doc_index

  def __len__(self) -> int:
    return int(self.targets.size)

  def _doc(self, j: int) -> np.ndarray:
    r = self.docs.row(int(j))[: self.max_len]
    out = np.zeros(self.max_len, np.int32)
    out[: r.size] = r
    if self.offset:
      out[: r.size] += self.offset
    return out

  def __getitem__(self, index: int) -> Example:
    n = len(self)
    if not -n <= index < n:
      raise IndexError(f"index {index} out of range for {n} examples")
    index = int(index) % n
    ex = {"targets": self.targets[index]}
    if self.doc_index is None:
      ex["inputs"] = self._doc(index)
    elif self.doc_index.ndim == 1:
      ex["inputs"] = self._doc(self.doc_index[index])
    else:
      ex["inputs"] = self._doc(self.doc_index[index, 0])
      ex["inputs2"] = self._doc(self.doc_index[index, 1])
    return ex


def raise_bad_lines(errors: Sequence[str]) -> None:
  """Raises ValueError for the first bad line of a file, if there is one.

  Args:
    errors: one 'file:line: ...' message per bad line, in file order; the
      first one is reported, with how many more there are.
  """
  if errors:
    more = len(errors) - 1
    raise ValueError(
      errors[0]
      + (
        f" (and {more} more bad line{'s' if more > 1 else ''} in this file)"
        if more
        else ""
      )
    )


def check_labels(labels: np.ndarray, num_classes: int, where: str) -> None:
  """Raises ValueError naming the first label outside [0, num_classes)."""
  labels = np.asarray(labels)
  bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
  if bad.size:
    i = int(bad[0])
    raise ValueError(
      f"{where}: label {labels[i]} of example {i} is outside the class range "
      f"[0, {num_classes}) ({bad.size} bad labels in all)"
    )


# ---------------------------------------------------------------------------
# Batching.


def _collate(source: Source, indices: np.ndarray) -> dict[str, np.ndarray]:
  examples = [source[int(i)] for i in indices]
  batch = {
    k: np.stack([np.asarray(ex[k]) for ex in examples]) for k in examples[0]
  }
  batch["targets"] = batch["targets"].astype(np.int32, copy=False)
  for k in ("inputs", "inputs2"):
    if k in batch:
      batch[k] = batch[k].astype(np.int32, copy=False)
  return batch


def _check_batch_args(source: Source, batch_size: int) -> int:
  if isinstance(batch_size, bool) or not isinstance(
    batch_size, (int, np.integer)
  ):
    raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
  if batch_size <= 0:
    raise ValueError(f"batch_size must be positive, got {batch_size}")
  n = len(source)
  if n == 0:
    raise ValueError("the source is empty: there is nothing to batch")
  return n


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
  """The order of the n examples in `epoch`: int64[n], a function of
  (seed, epoch)."""
  return np.random.default_rng([seed, epoch]).permutation(n)


def _check_rows(rows: np.ndarray | None, batch_size: int) -> np.ndarray:
  if rows is None:
    return np.arange(batch_size)
  rows = np.asarray(rows, np.int64).reshape(-1)
  if rows.size == 0 or rows.min() < 0 or rows.max() >= batch_size:
    raise ValueError(
      f"rows must index the global batch of {batch_size}, got "
      f"{rows.size} rows in [{rows.min(initial=0)}, "
      f"{rows.max(initial=0)}]"
    )
  return rows


def train_batches(
  source: Source,
  batch_size: int,
  *,
  seed: int,
  start_step: int = 0,
  rows: np.ndarray | None = None,
) -> Iterator[dict[str, np.ndarray]]:
  """Infinite shuffled batches; the batch at step s depends only on (seed, s).

  The stream is the concatenation of epochs, each a permutation of the N
  examples drawn from `np.random.default_rng([seed, epoch])`. Step s takes the
  examples at stream positions [s*B, (s+1)*B), so a batch may straddle two
  epochs and no example is ever dropped. Resuming with `start_step=s` yields
  exactly the batches s, s+1, ... of an uninterrupted run.

  Args:
    source: the examples.
    batch_size: B.
    seed: a non-negative int.
    start_step: the step of the first batch yielded.
    rows: int[b] positions in the global batch that this process loads (a
      host's share on several hosts); None = all B.

  Yields:
    {'inputs': int32[b, L], 'targets': int32[b], 'weights': float32[b] (ones)}
    (+ 'inputs2': int32[b, L]): rows `rows` of the global batch (b = B when
    `rows` is None).
  """
  n = _check_batch_args(source, batch_size)
  if (
    isinstance(seed, bool)
    or not isinstance(seed, (int, np.integer))
    or (seed < 0)
  ):
    raise ValueError(f"seed must be a non-negative int, got {seed!r}")
  if start_step < 0:
    raise ValueError(f"start_step must be >= 0, got {start_step}")
  perms: dict[int, np.ndarray] = {}
  step = int(start_step)
  offsets = _check_rows(rows, batch_size)
  while True:
    pos = step * batch_size + offsets
    epochs = pos // n
    within = pos % n
    indices = np.empty(offsets.size, np.int64)
    for e in np.unique(epochs):
      e = int(e)
      if e not in perms:
        perms[e] = epoch_permutation(int(seed), e, n)
        for old in [k for k in perms if k < e - 1]:
          del perms[old]
      sel = epochs == e
      indices[sel] = perms[e][within[sel]]
    batch = _collate(source, indices)
    batch["weights"] = np.ones(offsets.size, np.float32)
    yield batch
    step += 1


def eval_batches(
  source: Source, batch_size: int, *, rows: np.ndarray | None = None
) -> Iterator[dict[str, np.ndarray]]:
  """Finite batches over the whole split, in order.

  The last batch is padded to `batch_size` with rows of zero inputs, target 0
  and weight 0; no example is dropped (unlike LRA's drop_remainder, see the
  module docstring).

  Args:
    source: the examples.
    batch_size: B.
    rows: int[b] positions in the global batch that this process loads;
      None = all B. Every process gets the same number of batches.

  Yields:
    {'inputs': int32[b, L], 'targets': int32[b], 'weights': float32[b]}
    (+ 'inputs2': int32[b, L]); weights are 1 for real rows, 0 for padding.
  """
  n = _check_batch_args(source, batch_size)
  rows = _check_rows(rows, batch_size)
  for start in range(0, n, batch_size):
    positions = start + rows
    real = positions < n
    batch = _collate(source, np.where(real, positions, 0))
    for v in batch.values():
      v[~real] = 0  # padding rows: zero inputs, target 0
    batch["weights"] = real.astype(np.float32)
    yield batch
