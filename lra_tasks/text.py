"""Text: IMDB reviews from TFDS (`imdb_reviews`), bytes (docs/METHOD.md §8.1).

Splits as in LRA: train = TFDS `train` (25k); val = test = TFDS `test` (25k;
"IMDb doesn't have val set"). Each review's UTF-8 bytes map to ids byte + 1
(1..256), pad 0, vocab_size 257 (TFDS `ByteTextEncoder`), cut to max_len: 1000
in LRA's repo config (the default here), 4000 as in the paper (`max_len=4000`,
docs/METHOD.md §8.1 on the 1K/4K confusion).

Differences from the original LRA, and why:

* Data access: LRA reads IMDB with `tfds.load` (tf.data, needs TensorFlow).
  Here it is read through `as_data_source` from ArrayRecord files, so TensorFlow
  is not needed, but the dataset must be prepared in the `array_record` format
  (see `lra_tasks.tfds_source`). Nothing is downloaded unless `download=True`.
* The split is read into memory once (uint8 bytes, at most max_len per review)
  so that truncation can be counted and labels checked up front.
"""

import logging
import time

import numpy as np

from lra_tasks import base
from lra_tasks import tfds_source

logger = logging.getLogger("lra_tasks")

SPEC = base.TaskSpec(
  name="text", num_classes=2, vocab_size=257, max_len=1000, dual_input=False
)
TFDS_NAME = "imdb_reviews"
TFDS_SPLITS = {"train": "train", "val": "test", "test": "test"}


def utf8_bytes(text) -> bytes:
  """The UTF-8 bytes of a TFDS Text value (str, bytes or a 0-d numpy array)."""
  if isinstance(text, np.ndarray):
    text = text.item()
  if isinstance(text, str):
    return text.encode("utf-8")
  return bytes(text)


class TextTask:
  """IMDB byte-level classification (2 classes, max_len 1000, vocab 257)."""

  spec = SPEC
  offline_data = base.DataInfo(
    "synthetic",
    "made-up reviews whose sentiment words follow the label "
    "(lra_tasks.testing), in TFDS imdb_reviews format: no IMDB number",
  )

  def generate(
    self,
    output_dir: str,
    *,
    seed: int,
    num_train: int,
    num_test: int,
    review_words: int = 230,
  ) -> dict[str, str]:
    """Writes a synthetic `imdb_reviews` (array_record) into the TFDS data
    dir `output_dir`; `load(output_dir, ...)` reads it. Needs
    tensorflow_datasets, not TensorFlow or the network.

    Args:
      output_dir: the TFDS data dir to write into.
      seed: makes the content reproducible.
      num_train, num_test: reviews in TFDS `train` and `test` (our val and
        test splits both read `test`, as LRA's do).
      review_words: mean words per review.

    Returns:
      {'imdb_reviews': the dataset's directory}.
    """
    from lra_tasks import testing  # pylint: disable=g-import-not-at-top

    return {
      TFDS_NAME: testing.prepare_fake_tfds(
        output_dir,
        TFDS_NAME,
        num_train,
        num_test,
        seed=seed,
        review_words=review_words,
      )
    }

  def load(
    self,
    data_dir: str | None,
    split: str,
    *,
    max_len: int | None = None,
    tfds_data_dir: str | None = None,
    download: bool = False,
  ) -> base.TokenSource:
    """Reads one split of `imdb_reviews`.

    Args:
      data_dir: the TFDS data dir holding `imdb_reviews/` (prepared as
        array_record); None means TFDS's default. `tfds_data_dir` overrides it.
      split: 'train', 'val' or 'test' (val and test are both TFDS `test`).
      max_len: L, 1000 by default (LRA's config); 4000 is the paper's.
      tfds_data_dir: an explicit TFDS data dir (wins over `data_dir`).
      download: prepare the dataset first (needs the network).

    Returns:
      A source of {'inputs': int32[L] (byte + 1, 0 = pad), 'targets': int32[]}.
    """
    base.check_split(split, "text")
    max_len = base.check_max_len(max_len, SPEC.max_len, "text")
    ds = tfds_source.open_split(
      TFDS_NAME, TFDS_SPLITS[split], tfds_data_dir or data_dir or None, download
    )
    t0 = time.time()
    rows, labels, num_truncated = [], [], 0
    for ex in tfds_source.iterate(ds):
      raw = utf8_bytes(ex["text"])
      num_truncated += len(raw) > max_len
      rows.append(np.frombuffer(raw[:max_len], np.uint8))
      labels.append(int(ex["label"]))
    labels = np.asarray(labels, np.int64)
    base.check_labels(
      labels,
      SPEC.num_classes,
      f"text: TFDS {TFDS_NAME} split {TFDS_SPLITS[split]!r}",
    )
    logger.info("text: read %d reviews in %.1fs", len(rows), time.time() - t0)
    base.log_truncation(
      "text", split, num_truncated, len(rows), max_len, "reviews"
    )
    return base.TokenSource(
      labels.astype(np.int32),
      max_len,
      base.RaggedArray.from_rows(rows),
      offset=1,
    )


TASK = TextTask()
