"""Synthetic data sets in the real on-disk formats, for tests, benchmarks and
smoke runs.

* `prepare_fake_tfds(data_dir, 'imdb_reviews' | 'cifar10', ...)` writes a real
  TFDS ArrayRecord data set under the real name, version and features, with
  made-up examples: `tfds.data_source(name, data_dir=...)` then reads it
  exactly as it would read the prepared real one, with no TensorFlow and no
  network. It subclasses the catalog builder (not registered) and replaces only
  `_split_generators`; images are handed over as PNG bytes because encoding a
  numpy image would need TensorFlow.
* `write_fake_aan(directory, ...)` writes `new_aan_pairs.{train,eval,test}.tsv`
  in the LRA release format (docs/METHOD.md §8.1).

The content is made up but learnable, so a smoke run can beat the majority
class: reviews of label 1 use more positive words (label 0: negative ones),
image brightness grows with the class, and an AAN pair is labelled 1 when both
papers share a topic (their words come from the same topic list). The text,
image and retrieval tasks' `generate` call these. ListOps and Pathfinder have
real generators: `lra_tasks.listops.generate`, `lra_tasks.pathfinder.generate`.
"""

import io
import os

import numpy as np

_NEUTRAL = [
  "the",
  "movie",
  "was",
  "plot",
  "acting",
  "scene",
  "film",
  "story",
  "and",
  "but",
  "not",
  "very",
  "I",
  "it",
  "its",
  "a",
  "of",
  "to",
  "café",
  "—",
  "<br",
  "/>",
  "!",
]
_SENTIMENT = (
  ("terrible", "bad", "hated", "boring"),  # label 0
  ("great", "good", "loved", "superb"),
)  # label 1
_WORDS = _NEUTRAL + list(_SENTIMENT[0] + _SENTIMENT[1])
# AAN topics: a pair is related (label 1) when both papers share one.
_TOPICS = (
  ("parser", "grammar", "syntax", "treebank"),
  ("speech", "acoustic", "phoneme", "prosody"),
  ("translation", "bilingual", "alignment", "decoder"),
  ("sentiment", "opinion", "polarity", "lexicon"),
  ("dialogue", "agent", "utterance", "response"),
  ("summary", "extractive", "sentence", "rouge"),
  ("entity", "relation", "extraction", "knowledge"),
  ("morphology", "lemma", "inflection", "stem"),
)


def fake_review(
  rng: np.random.Generator,
  num_words: int,
  label: int | None = None,
  signal: float = 0.15,
) -> str:
  """Random words; with a label, a `signal` share are its sentiment words."""
  pool = _NEUTRAL if label is not None else _WORDS
  words = rng.choice(np.array(pool, dtype=object), size=num_words)
  if label is not None:
    hits = rng.random(num_words) < signal
    words[hits] = rng.choice(_SENTIMENT[label], size=int(hits.sum()))
  return " ".join(words)


def _fake_paper(rng: np.random.Generator, num_words: int, topic: int) -> str:
  """Half neutral words, half words of the topic's list."""
  words = rng.choice(np.array(_NEUTRAL, dtype=object), size=num_words)
  hits = rng.random(num_words) < 0.5
  words[hits] = rng.choice(_TOPICS[topic], size=int(hits.sum()))
  return " ".join(words)


def prepare_fake_tfds(
  data_dir: str,
  name: str,
  num_train: int,
  num_test: int,
  seed: int = 0,
  review_words: int = 230,
) -> str:
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
  from PIL import Image  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  tfds.disable_progress_bar()
  rng = np.random.default_rng(seed)

  if name == "imdb_reviews":
    # pylint: disable-next=g-import-not-at-top
    from tensorflow_datasets.datasets.imdb_reviews import (
      imdb_reviews_dataset_builder as mod,
    )

    parent = mod.Builder

    def examples(n, start):
      for i in range(n):
        words = int(rng.integers(review_words // 4, review_words * 2))
        label = int(rng.integers(2))
        yield (
          start + i,
          {"text": fake_review(rng, words, label), "label": label},
        )

    splits = {
      "train": (num_train, 0),
      "test": (num_test, 10**6),
      "unsupervised": (1, 2 * 10**6),
    }
    kwargs = {"config": "plain_text"}
  elif name == "cifar10":
    from tensorflow_datasets.image_classification import cifar as mod  # pylint: disable=g-import-not-at-top

    parent = mod.Cifar10

    def examples(n, start):
      for i in range(n):
        label = int(rng.integers(10))
        # Brightness grows with the class: uniform noise in [20c, 20c + 64).
        pixels = (rng.integers(0, 64, (32, 32, 3)) + 20 * label).astype(
          np.uint8
        )
        pixels[:4, :4] = 0  # some black pixels (id 1 after the shift)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="PNG")
        buf.seek(0)
        yield (
          start + i,
          {"id": f"fake_{start + i}", "image": buf, "label": label},
        )

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

    # Nothing is downloaded: keep TFDS's "Downloading and preparing dataset"
    # and "downloaded and prepared" lines out of the output.
    def _log_download_bytes(self):
      pass

    def _log_download_done(self):
      pass

  builder = Fake(data_dir=data_dir, **kwargs)
  builder.download_and_prepare(file_format="array_record")
  return str(builder.data_dir)


def write_fake_aan(
  directory: str,
  num_pairs: dict[str, int] | None = None,
  seed: int = 0,
  mean_bytes: int = 3000,
) -> dict[str, str]:
  """Writes `new_aan_pairs.{train,eval,test}.tsv` with made-up papers.

  Each paper has a topic (`_TOPICS`); half the pairs (drawn at random) join
  two papers of one topic and are labelled 1, the others 0.

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
  num_topics = len(_TOPICS)
  papers = []
  for i in range(max(2 * num_topics, sum(num_pairs.values()) // 2)):
    words = int(rng.integers(mean_bytes // 12, mean_bytes // 3))
    papers.append(
      (f"P{i:02d}-{i:04d}", _fake_paper(rng, words, i % num_topics))
    )
  topics = np.arange(len(papers)) % num_topics
  out = {}
  for split, n in num_pairs.items():
    path = os.path.join(directory, f"new_aan_pairs.{split}.tsv")
    with open(path, "w", encoding="utf-8", newline="") as f:
      for _ in range(n):
        a = int(rng.integers(len(papers)))
        label = int(rng.integers(2))
        same = topics == topics[a]
        b = int(rng.choice(np.flatnonzero(same if label else ~same)))
        f.write(
          f"{label}.0\t{papers[a][0]}\t{papers[b][0]}\t{papers[a][1]}\t"
          f"{papers[b][1]}\n"
        )
    out[split] = path
  return out
