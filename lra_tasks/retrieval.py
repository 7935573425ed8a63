"""Retrieval: AAN document pairs from the LRA release, byte level
(docs/METHOD.md §8.1).

Files: `new_aan_pairs.{train,eval,test}.tsv` (note `.eval` for our 'val'), in
`lra_release/lra_release/tsv_data/` of the LRA tarball. Tab-separated, **no
header**, 5 columns: `label, id1, id2, text1, text2`; the label is parsed as a
float ('1' or '1.0') and must be 0 or 1. Each text is cut to its first 10,000
bytes, encoded byte by byte as id = byte + 1 (pad 0, vocab 257) and cut to
max_len = 4000 per document. Examples carry 'inputs' (text1) and 'inputs2'
(text2) for the shared-weight dual encoder, 2 classes.

Differences from the original LRA, and why:

* LRA batches every split with `drop_remainder=True`, dropping up to 31 eval and
  test pairs; `eval_batches` covers the whole split.
* Rows are read as plain tab-separated bytes (LRA: `make_csv_dataset` with
  `use_quote_delim=False`, i.e. no quote processing either), and line ends may
  be LF or CRLF.
* Each distinct (truncated) text is stored once: AAN pairs reuse papers, so
  this keeps memory at the size of the distinct documents.
"""

import logging
import os
import time

import numpy as np

from lra_tasks import base

logger = logging.getLogger("lra_tasks")

SPEC = base.TaskSpec(
  name="retrieval", num_classes=2, vocab_size=257, max_len=4000, dual_input=True
)
FILE_SPLITS = {"train": "train", "val": "eval", "test": "test"}
PRE_CUT_BYTES = 10000  # LRA cuts each text to 10,000 bytes before encoding
_CANDIDATES = (
  "",
  "tsv_data",
  "aan",
  "matching",
  "lra_release/tsv_data",
  "lra_release/lra_release/tsv_data",
)


def file_name(split: str) -> str:
  return f"new_aan_pairs.{FILE_SPLITS[split]}.tsv"


def read_tsv(path: str, max_len: int = SPEC.max_len):
  """Reads one AAN pairs file.

  Args:
    path: a `new_aan_pairs.*.tsv` file.
    max_len: ids kept per document.

  Returns:
    (docs: RaggedArray of uint8 bytes (ids - 1) of the distinct documents,
     pairs: int64[N, 2] document indices, targets: int32[N],
     num_truncated: documents, over all pairs, longer than they are cut to).

  Raises:
    ValueError: a row without 5 tab-separated fields, or a label that is not
      0 or 1; the message names the file and the 1-based line number of the
      first bad line, and how many more there are.
  """
  keep = min(PRE_CUT_BYTES, max_len)
  index: dict[bytes, int] = {}
  docs = []
  pairs = []
  targets = []
  num_truncated = 0
  errors = []
  with open(path, "rb") as f:
    for line_no, line in enumerate(f, start=1):
      line = line.rstrip(b"\r\n")
      if not line:
        continue
      fields = line.split(b"\t")
      if len(fields) != 5:
        errors.append(
          f"{path}:{line_no}: malformed row: expected 5 tab-separated fields "
          f"(label, id1, id2, text1, text2), got {len(fields)}: "
          f"{line[:80]!r}"
        )
        continue
      try:
        label = float(fields[0])
      except ValueError:
        errors.append(
          f"{path}:{line_no}: malformed row: label "
          f"{fields[0][:20]!r} is not a number"
        )
        continue
      if label not in (0.0, 1.0):
        errors.append(
          f"{path}:{line_no}: label {fields[0].decode(errors='replace')} is "
          f"outside the class range [0, {SPEC.num_classes})"
        )
        continue
      if errors:
        continue  # only the bad lines matter now
      pair = []
      for text in (fields[3], fields[4]):
        num_truncated += len(text) > keep
        text = text[:keep]
        j = index.get(text)
        if j is None:
          j = index[text] = len(docs)
          docs.append(np.frombuffer(text, np.uint8))
        pair.append(j)
      pairs.append(pair)
      targets.append(int(label))
  base.raise_bad_lines(errors)
  return (
    base.RaggedArray.from_rows(docs),
    np.asarray(pairs, np.int64).reshape(-1, 2),
    np.asarray(targets, np.int32),
    num_truncated,
  )


class RetrievalTask:
  """AAN byte-level document matching (2 classes, 4000 per doc, vocab 257)."""

  spec = SPEC
  offline_data = base.DataInfo(
    "synthetic",
    "made-up paper pairs, related iff the papers share a "
    "topic (lra_tasks.testing), in the AAN TSV format: no AAN number",
  )

  def generate(
    self,
    output_dir: str,
    *,
    seed: int,
    num_train: int,
    num_val: int,
    num_test: int,
    mean_bytes: int = 3000,
  ) -> dict[str, str]:
    """Writes synthetic `new_aan_pairs.{train,eval,test}.tsv` in output_dir.

    Args:
      output_dir: created if missing.
      seed: makes the content reproducible.
      num_train, num_val, num_test: pairs per split.
      mean_bytes: mean text length per paper.

    Returns:
      {'train': path, 'val': path, 'test': path}.
    """
    from lra_tasks import testing  # pylint: disable=g-import-not-at-top

    paths = testing.write_fake_aan(
      output_dir,
      {"train": num_train, "eval": num_val, "test": num_test},
      seed=seed,
      mean_bytes=mean_bytes,
    )
    return {split: paths[FILE_SPLITS[split]] for split in base.SPLITS}

  def load(
    self, data_dir: str | None, split: str, *, max_len: int | None = None
  ) -> base.TokenSource:
    """Reads `new_aan_pairs.{train,eval,test}.tsv`.

    Args:
      data_dir: the release's `tsv_data/` folder, or a parent of it
        (`lra_release/`, `lra_release/lra_release/`).
      split: 'train', 'val' (the `.eval` file) or 'test'.
      max_len: L per document (default 4000).

    Returns:
      A source of {'inputs': int32[L], 'inputs2': int32[L], 'targets':
      int32[]}, ids byte + 1, padded with 0.
    """
    base.check_split(split, "retrieval")
    max_len = base.check_max_len(max_len, SPEC.max_len, "retrieval")
    fname = file_name(split)
    found, tried = base.find_dir(data_dir, _CANDIDATES, [fname])
    if found is None:
      expected = ", ".join(file_name(s) for s in base.SPLITS)
      raise FileNotFoundError(
        f"retrieval: {fname} not found; looked in: {', '.join(tried)}. "
        f"Expected {expected} (tab-separated, no header: label, id1, id2, "
        "text1, text2) from the LRA release, folder "
        f"lra_release/lra_release/tsv_data/ of {base.LRA_RELEASE_URL}"
      )
    path = os.path.join(found, fname)
    t0 = time.time()
    docs, pairs, targets, num_truncated = read_tsv(path, max_len)
    logger.info(
      "retrieval: read %s (%d pairs, %d distinct texts) in %.1fs",
      path,
      len(targets),
      len(docs),
      time.time() - t0,
    )
    base.log_truncation(
      "retrieval", split, num_truncated, 2 * len(targets), max_len, "documents"
    )
    return base.TokenSource(targets, max_len, docs, doc_index=pairs, offset=1)


TASK = RetrievalTask()
