"""Opens a TFDS split as a random-access data source, without TensorFlow.

TFDS without TensorFlow: `as_dataset` needs TensorFlow; only
ArrayRecord files read through `builder.as_data_source` work without it. So the
IMDB and CIFAR-10 tasks need the dataset prepared in the `array_record` format,
once, with the network:

  python -c "import tensorflow_datasets as tfds; [tfds.builder(n,
    data_dir='DIR').download_and_prepare(file_format='array_record')
    for n in ('imdb_reviews', 'cifar10')]"

(or `load(..., download=True)`, which does the same). The `tfds build` CLI
imports TensorFlow, and preparing `cifar10` encodes its images as PNG with
TensorFlow, so that one preparation needs `pip install tensorflow-cpu` (in a
throwaway environment is fine); reading the prepared files never does. Nothing
here downloads unless asked: a TFDS download without network hangs for minutes
(DNS retries), so the default is to fail fast with this advice.

Tests use `tfds.testing.mock_data`, which patches
`DatasetBuilder.as_data_source` and `download_and_prepare` (tensorflow_datasets
4.9 `testing/mocking.py`), the two builder methods used here.
"""

from collections.abc import Iterator, Sequence
from typing import Any


def prepare_hint(name: str, data_dir: str) -> str:
  """How to prepare `name` as array_record under `data_dir` (for messages)."""
  hint = (
    'prepare it once (needs the network) with: python -c "import '
    f"tensorflow_datasets as tfds; tfds.builder('{name}', data_dir="
    f"'{data_dir}').download_and_prepare(file_format='array_record')\""
    ", or pass download=True to load()"
  )
  if name == "cifar10":
    hint += (
      "; preparing cifar10 encodes its images with TensorFlow, so that "
      "one run needs `pip install tensorflow-cpu` (reading does not)"
    )
  return hint


def open_split(
  name: str, tfds_split: str, data_dir: str | None, download: bool
) -> Sequence[Any]:
  """`builder.as_data_source(tfds_split)` with clear errors.

  Args:
    name: the TFDS name, e.g. 'imdb_reviews'.
    tfds_split: a TFDS split string, e.g. 'train[:90%]'.
    data_dir: the TFDS data dir; None means TFDS's default ($TFDS_DATA_DIR or
      ~/tensorflow_datasets).
    download: run `download_and_prepare(file_format='array_record')` first.

  Returns:
    A random-access sequence of example dicts of numpy arrays / str / bytes.

  Raises:
    FileNotFoundError: the dataset is not prepared under data_dir.
    RuntimeError: it is prepared, but not in a format readable without TF; or
      `download=True` and the preparation needs a missing module (TensorFlow
      for cifar10).
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  builder = tfds.builder(name, data_dir=data_dir)
  shown_dir = data_dir or "~/tensorflow_datasets"
  hint = prepare_hint(name, shown_dir)
  if download:
    try:
      builder.download_and_prepare(file_format="array_record")
    except ModuleNotFoundError as e:
      raise RuntimeError(
        f"preparing TFDS dataset {name!r} failed: {e}. {hint}"
      ) from e
  try:
    return builder.as_data_source(split=tfds_split)
  except Exception as e:  # pylint: disable=broad-except
    if not builder.is_prepared():
      raise FileNotFoundError(
        f"TFDS dataset {name!r} is not prepared under {builder.data_dir} "
        f"(TFDS data_dir {shown_dir}); {hint}"
      ) from e
    raise RuntimeError(
      f"TFDS dataset {name!r} at {builder.data_dir} cannot be read without "
      f"TensorFlow ({type(e).__name__}: {e}). It is probably prepared as "
      "TFRecord; prepare an array_record copy in another data dir and pass "
      f"that dir: {prepare_hint(name, 'OTHER_DIR')}"
    ) from e


def iterate(source: Sequence[Any], chunk: int = 1024) -> Iterator[Any]:
  """Yields every example of `source` in order, reading `chunk` at a time."""
  n = len(source)
  getitems = getattr(source, "__getitems__", None)
  for start in range(0, n, chunk):
    keys = list(range(start, min(start + chunk, n)))
    records = None
    if getitems is not None:
      try:
        records = getitems(keys)
      except TypeError:
        # tfds.testing.mock_data (4.9.10) sets the mock's `__getitems__` to an
        # unbound partial, so batched reads fail under the mock; read one by
        # one instead (real ArrayRecord sources take the batched path).
        getitems = None
    if records is None:
      records = [source[k] for k in keys]
    yield from records
