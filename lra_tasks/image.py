"""Image: CIFAR-10 from TFDS as 1024 gray pixels, one token each
(docs/METHOD.md §8.1).

Splits as in LRA: train = TFDS `train[:90%]` (45k), val = `train[90%:]` (5k),
test = `test` (10k). Each 32x32x3 image becomes gray exactly as
`tf.image.rgb_to_grayscale` does it (float32: rgb/255 . [0.2989, 0.5870,
0.1140], then * 255.5 and truncated to uint8), flattened row-major to 1024
pixels, 10 classes.

Token ids: **id = gray value + 1** (1..256), vocab_size 257, and id 0 is only
padding (no CIFAR image is ever padded: L = 1024 exactly).

Differences from the original LRA, and why:

* Ids are shifted by one. LRA uses id = pixel value with vocab 256, and its
  encoder masks `inputs > 0`, so every black pixel (value 0) is treated as
  padding and masked out of attention (docs/METHOD.md §8.5). Shifting keeps
  pixel values distinct from padding. `shift_ids=False` restores LRA's ids
  (and its masking of black pixels) for like-for-like comparisons.
* Data access: through ArrayRecord + `as_data_source` instead of `tfds.load`,
  so reading needs no TensorFlow; but TFDS's one-time preparation of cifar10
  encodes the images with TensorFlow (see `lra_tasks.tfds_source`). The split
  is converted to uint8 in memory once (45k x 1024 bytes for train).
* LRA's train pipeline shuffles *batches* (`batch -> shuffle(256)`); the
  common `train_batches` shuffles examples.
* Grayscale: numpy float32 arithmetic in a fixed order; a pixel exactly on a
  rounding boundary could differ by one gray level from TF's tensordot.
"""

import logging
import time

import numpy as np

from lra_tasks import base
from lra_tasks import tfds_source

logger = logging.getLogger("lra_tasks")

SPEC = base.TaskSpec(
  name="image", num_classes=10, vocab_size=257, max_len=1024, dual_input=False
)
TFDS_NAME = "cifar10"
TFDS_SPLITS = {"train": "train[:90%]", "val": "train[90%:]", "test": "test"}

_RGB_WEIGHTS = np.array([0.2989, 0.5870, 0.1140], np.float32)


def rgb_to_grayscale(images: np.ndarray) -> np.ndarray:
  """`tf.image.rgb_to_grayscale` for uint8 images, in numpy.

  Args:
    images: uint8[..., 3].

  Returns:
    uint8[...] gray values 0..255.
  """
  images = np.asarray(images)
  if images.shape[-1] != 3:
    raise ValueError(f"expected RGB images [..., 3], got shape {images.shape}")
  flt = images.astype(np.float32) * np.float32(1.0 / 255)  # convert_image_dtype
  gray = (
    flt[..., 0] * _RGB_WEIGHTS[0]
    + flt[..., 1] * _RGB_WEIGHTS[1]
    + flt[..., 2] * _RGB_WEIGHTS[2]
  )
  return (gray * np.float32(255.5)).astype(np.uint8)  # cast truncates


class ImageSource:
  """Gray pixels uint8[N, P] + labels; example i is its pixels + offset,
  padded to L."""

  def __init__(
    self, pixels: np.ndarray, targets: np.ndarray, max_len: int, offset: int
  ):
    self.pixels = pixels
    self.targets = np.asarray(targets, np.int32)
    self.max_len = max_len
    self.offset = offset

  def __len__(self) -> int:
    return int(self.targets.size)

  def __getitem__(self, index: int) -> base.Example:
    n = len(self)
    if not -n <= index < n:
      raise IndexError(f"index {index} out of range for {n} examples")
    row = self.pixels[index, : self.max_len]
    inputs = np.zeros(self.max_len, np.int32)
    inputs[: row.size] = row
    inputs[: row.size] += self.offset
    return {"inputs": inputs, "targets": self.targets[index]}


class ImageTask:
  """CIFAR-10 as sequences of 1024 gray pixels (10 classes, vocab 257)."""

  spec = SPEC
  offline_data = base.DataInfo(
    "synthetic",
    "noise images whose brightness grows with the class "
    "(lra_tasks.testing), in TFDS cifar10 format: no CIFAR-10 number",
  )

  def generate(
    self, output_dir: str, *, seed: int, num_train: int, num_test: int
  ) -> dict[str, str]:
    """Writes a synthetic `cifar10` (array_record) into the TFDS data dir
    `output_dir`; `load(output_dir, ...)` reads it (train[:90%] is our
    train split, train[90%:] val). Needs tensorflow_datasets and Pillow,
    not TensorFlow or the network.

    Args:
      output_dir: the TFDS data dir to write into.
      seed: makes the content reproducible.
      num_train, num_test: images in TFDS `train` and `test`.

    Returns:
      {'cifar10': the dataset's directory}.
    """
    from lra_tasks import testing  # pylint: disable=g-import-not-at-top

    return {
      TFDS_NAME: testing.prepare_fake_tfds(
        output_dir, TFDS_NAME, num_train, num_test, seed=seed
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
    shift_ids: bool = True,
  ) -> ImageSource:
    """Reads one split of `cifar10`.

    Args:
      data_dir: the TFDS data dir holding `cifar10/` (prepared as
        array_record); None means TFDS's default. `tfds_data_dir` overrides it.
      split: 'train' (train[:90%]), 'val' (train[90%:]) or 'test'.
      max_len: L, 1024 by default; a smaller L truncates (and is logged).
      tfds_data_dir: an explicit TFDS data dir (wins over `data_dir`).
      download: prepare the dataset first (needs the network).
      shift_ids: True (default): id = gray + 1; False: LRA's id = gray.

    Returns:
      A source of {'inputs': int32[L], 'targets': int32[]}.
    """
    base.check_split(split, "image")
    max_len = base.check_max_len(max_len, SPEC.max_len, "image")
    ds = tfds_source.open_split(
      TFDS_NAME, TFDS_SPLITS[split], tfds_data_dir or data_dir or None, download
    )
    t0 = time.time()
    n = len(ds)
    pixels = np.zeros((n, 32 * 32), np.uint8)
    labels = np.zeros(n, np.int64)
    for i, ex in enumerate(tfds_source.iterate(ds)):
      image = np.asarray(ex["image"])
      if image.shape != (32, 32, 3):
        raise ValueError(
          f"image: TFDS {TFDS_NAME} {TFDS_SPLITS[split]!r} "
          f"example {i} has shape {image.shape}, not "
          "(32, 32, 3)"
        )
      pixels[i] = rgb_to_grayscale(image).reshape(-1)
      labels[i] = int(ex["label"])
    base.check_labels(
      labels,
      SPEC.num_classes,
      f"image: TFDS {TFDS_NAME} split {TFDS_SPLITS[split]!r}",
    )
    logger.info("image: read %d images in %.1fs", n, time.time() - t0)
    base.log_truncation(
      "image", split, n if max_len < 1024 else 0, n, max_len, "images"
    )
    return ImageSource(pixels, labels, max_len, 1 if shift_ids else 0)


TASK = ImageTask()
