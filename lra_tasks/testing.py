"""Small fake data sets in the real on-disk formats, for offline tests and benchmarks.

* `prepare_fake_tfds(data_dir, 'imdb_reviews' | 'cifar10', ...)` writes a real
  TFDS ArrayRecord data set under the real name, version and features, with
  made-up examples: `tfds.data_source(name, data_dir=...)` then reads it
  exactly as it would read the prepared real one, with no TensorFlow and no
  network. It subclasses the catalog builder (not registered) and replaces only
  `_split_generators`; images are handed over as PNG bytes because encoding a
  numpy image would need TensorFlow.
* `write_fake_aan(directory, ...)` writes `new_aan_pairs.{train,eval,test}.tsv`
  in the LRA release format (LRA_NOTES §2.3).

ListOps and Pathfinder have real generators: `lra_tasks.listops.generate`,
`lra_tasks.pathfinder.generate`.
"""

import io
import os
from typing import Dict, Optional

import numpy as np

_WORDS = ("the movie was great terrible plot acting scene film story and but "
          "not very good bad I loved hated it its a of to caf\u00e9 \u2014 "
          "<br /> !").split()


def fake_review(rng: np.random.Generator, num_words: int) -> str:
  return " ".join(rng.choice(_WORDS, size=num_words))


def prepare_fake_tfds(data_dir: str, name: str, num_train: int, num_test: int,
                      seed: int = 0, review_words: int = 230) -> str:
  """Prepares a fake `imdb_reviews` or `cifar10` in ArrayRecord format.

  Args:
    data_dir: the TFDS data dir to write into.
    name: 'imdb_reviews' or 'cifar10'.
    num_train, num_test: examples in the 'train' and 'test' splits.
    seed: makes the content reproducible.
    review_words: mean words per fake review (IMDB reviews average ~230).

  Returns:
    The dataset's directory.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top

  tfds.disable_progress_bar()
  rng = np.random.default_rng(seed)

  if name == "imdb_reviews":
    from tensorflow_datasets.datasets.imdb_reviews import imdb_reviews_dataset_builder as mod  # pylint: disable=g-import-not-at-top,line-too-long
    parent = mod.Builder

    def examples(n, start):
      for i in range(n):
        words = int(rng.integers(review_words // 4, review_words * 2))
        yield start + i, {"text": fake_review(rng, words),
                          "label": int(rng.integers(2))}

    splits = {"train": (num_train, 0), "test": (num_test, 10**6),
              "unsupervised": (1, 2 * 10**6)}
    kwargs = {"config": "plain_text"}
  elif name == "cifar10":
    from tensorflow_datasets.image_classification import cifar as mod  # pylint: disable=g-import-not-at-top
    parent = mod.Cifar10

    def examples(n, start):
      for i in range(n):
        pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        pixels[:4, :4] = 0  # some black pixels (id 1 after the shift)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="PNG")
        buf.seek(0)
        yield start + i, {"id": f"fake_{start + i}", "image": buf,
                          "label": int(rng.integers(10))}

    splits = {"train": (num_train, 0), "test": (num_test, 10**6)}
    kwargs = {}
  else:
    raise ValueError(f"no fake for {name!r}; known: imdb_reviews, cifar10")

  dataset_name = name

  class Fake(parent, skip_registration=True):
    """The catalog builder with generated examples instead of a download."""
    name = dataset_name

    @classmethod
    def _get_pkg_dir_path(cls):
      return parent._get_pkg_dir_path()  # pylint: disable=protected-access

    def _split_generators(self, dl_manager):
      del dl_manager
      return {s: examples(n, start) for s, (n, start) in splits.items()}

  builder = Fake(data_dir=data_dir, **kwargs)
  builder.download_and_prepare(file_format="array_record")
  return str(builder.data_dir)


def write_fake_aan(directory: str, num_pairs: Optional[Dict[str, int]] = None,
                   seed: int = 0, mean_bytes: int = 3000) -> Dict[str, str]:
  """Writes `new_aan_pairs.{train,eval,test}.tsv` with made-up papers.

  Args:
    directory: created if missing.
    num_pairs: pairs per file split name ('train', 'eval', 'test').
    seed: makes the content reproducible.
    mean_bytes: mean text length (AAN papers are often longer than 4000).

  Returns:
    {'train': path, 'eval': path, 'test': path}.
  """
  num_pairs = num_pairs or {"train": 64, "eval": 16, "test": 16}
  rng = np.random.default_rng(seed)
  os.makedirs(directory, exist_ok=True)
  papers = []
  for i in range(max(4, sum(num_pairs.values()) // 2)):
    words = int(rng.integers(mean_bytes // 12, mean_bytes // 3))
    papers.append((f"P{i:02d}-{i:04d}", fake_review(rng, words)))
  out = {}
  for split, n in num_pairs.items():
    path = os.path.join(directory, f"new_aan_pairs.{split}.tsv")
    with open(path, "w", encoding="utf-8", newline="") as f:
      for _ in range(n):
        a, b = rng.integers(len(papers), size=2)
        label = f"{int(rng.integers(2))}.0"
        f.write(f"{label}\t{papers[a][0]}\t{papers[b][0]}\t{papers[a][1]}\t"
                f"{papers[b][1]}\n")
    out[split] = path
  return out
