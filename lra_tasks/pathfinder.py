"""Pathfinder and Path-X: the LRA release's PNG files, and an offline generator.

Layout (docs/METHOD.md §8.1), as in the LRA tarball (made with
github.com/drewlinsley/pathfinder):

  pathfinder{R}/{D}/               D: curv_baseline, curv_contour_length_9 or
                                   curv_contour_length_14
      imgs/<k>/sample_<n>.png      R x R gray PNGs
      metadata/<k>.npy             TEXT, despite the name: one line per image,
                                   space-separated; field 0 the image subdir
                                   ('imgs/<k>'), field 1 the file name, field 3
                                   the label (1 = the two markers are connected)

for R in 32, 64, 128, 256. Difficulties: 'easy' = curv_baseline,
'intermediate' = curv_contour_length_9, 'hard' = curv_contour_length_14. LRA's
Pathfinder is `resolution=32, difficulty='hard'` (the defaults); Path-X is
`resolution=128, difficulty='hard'` (L = 16384).

Splits, as LRA's `{split}[:80%]`, `[80%:90%]`, `[90%:]`: the rows of all
metadata files, files in numeric order of <k> and lines in file order, are cut
80/10/10 (160k/20k/20k of 200k); empty image files are skipped, as LRA's
`filter(len(image) > 0)` does (the release has one:
pathfinder32/curv_baseline/imgs/0/sample_172.png). Pixels are flattened
row-major; 2 classes.

Token ids: **id = pixel value + 1** (1..256), vocab_size 257, pad 0.

Differences from the original LRA, and why:

* Ids are shifted by one. LRA uses id = pixel value (vocab 256) and masks
  `inputs > 0`, so the black background, most of every image, is masked out of
  attention as if it were padding (docs/METHOD.md §8.5). `shift_ids=False`
  restores LRA's ids.
* Order within the split: LRA's TFDS builder stores examples in TFDS's
  key-hash order before slicing 80/10/10; we slice the metadata order. Both are
  fixed splits of i.i.d. samples; they are not the same examples.
* The generator (`generate`) draws *Pathfinder-style* images: two marker discs,
  dashed curves made of short paddles, distractor curves, label 1 iff both
  markers sit on the same curve. It follows the LRA parameters where the notes
  give them (contour length 6/9/14 paddles, distractor length contour//3, their
  number 20/22/35/30 // distractor length for R = 32/64/128/256, marker radius
  1.5/2.5/3/5) but it is not drewlinsley's generator (no Gabor-like paddle
  rendering, no exact spacing rules): use it to test the reader and for smoke
  runs, not to report Pathfinder accuracy.

CLI: python -m lra_tasks.pathfinder --output_dir DIR --resolution 32
  --num_images 2000 --seed 0 [--difficulty hard]
"""

import argparse
from collections.abc import Sequence
import glob
import logging
import math
import os
import sys
import time

import numpy as np

from lra_tasks import base

logger = logging.getLogger("lra_tasks")

SPEC = base.TaskSpec(
  name="pathfinder",
  num_classes=2,
  vocab_size=257,
  max_len=1024,
  dual_input=False,
)
RESOLUTIONS = (32, 64, 128, 256)
DIFFICULTIES = {
  "easy": "curv_baseline",
  "intermediate": "curv_contour_length_9",
  "hard": "curv_contour_length_14",
}
_ALIASES = {"inter": "intermediate", "baseline": "easy"}
_ALIASES.update({d: k for k, d in DIFFICULTIES.items()})
CONTOUR_LENGTH = {"easy": 6, "intermediate": 9, "hard": 14}
_CANDIDATES = ("", "pathfinder", "lra_release", "lra_release/lra_release")


def difficulty_dir(difficulty: str) -> str:
  """'hard' (or 'curv_contour_length_14') -> 'curv_contour_length_14'."""
  key = _ALIASES.get(difficulty, difficulty)
  if key not in DIFFICULTIES:
    raise ValueError(
      f"pathfinder: unknown difficulty {difficulty!r}; known: "
      f"{', '.join(DIFFICULTIES)} (or {', '.join(DIFFICULTIES.values())})"
    )
  return DIFFICULTIES[key]


def _check_resolution(resolution: int) -> int:
  if resolution not in RESOLUTIONS:
    raise ValueError(
      f"pathfinder: resolution must be one of "
      f"{', '.join(map(str, RESOLUTIONS))}, got {resolution!r}"
    )
  return int(resolution)


def _metadata_files(root: str) -> list[str]:
  """metadata/*.npy of `root`, numeric names in numeric order, then the rest."""
  files = glob.glob(os.path.join(root, "metadata", "*.npy"))

  def key(path):
    stem = os.path.splitext(os.path.basename(path))[0]
    return (0, int(stem), "") if stem.isdigit() else (1, 0, stem)

  return sorted(files, key=key)


def read_metadata(root: str) -> tuple[list[str], np.ndarray, list[str]]:
  """All (image path, label) rows of one difficulty directory.

  Args:
    root: e.g. '.../pathfinder32/curv_contour_length_14'.

  Returns:
    (paths, labels int64[N], where) with where[i] = 'metadata file:line' of
    row i (for error messages).

  Raises:
    FileNotFoundError: no metadata/*.npy files.
    ValueError: a line with fewer than 4 fields, or a label that is not 0 or 1
      (the message names the file and the first bad line, and how many more
      bad lines it has).
  """
  files = _metadata_files(root)
  if not files:
    raise FileNotFoundError(f"pathfinder: no metadata/*.npy files in {root}")
  paths, labels, where = [], [], []
  for mfile in files:
    errors = []
    with open(mfile, encoding="utf-8", errors="replace") as f:
      for line_no, line in enumerate(f, start=1):
        fields = line.split()
        if not fields:
          continue
        if len(fields) < 4:
          errors.append(
            f"{mfile}:{line_no}: malformed metadata line: expected at least 4"
            f" space-separated fields (subdir, file, index, label), got "
            f"{len(fields)}: {line.strip()[:80]!r}"
          )
          continue
        try:
          label = int(fields[3])
        except ValueError:
          errors.append(
            f"{mfile}:{line_no}: malformed metadata line: label "
            f"{fields[3]!r} is not an integer"
          )
          continue
        if label not in (0, 1):
          errors.append(
            f"{mfile}:{line_no}: label {label} is outside the "
            f"class range [0, {SPEC.num_classes})"
          )
          continue
        paths.append(os.path.join(root, fields[0], fields[1]))
        labels.append(label)
        where.append(f"{mfile}:{line_no}")
    base.raise_bad_lines(errors)
  return paths, np.asarray(labels, np.int64), where


def split_bounds(n: int, split: str) -> tuple[int, int]:
  """[start, end) of `split` among n rows: 80/10/10 like TFDS percent slices."""
  a, b = round(0.8 * n), round(0.9 * n)
  return {"train": (0, a), "val": (a, b), "test": (b, n)}[split]


def read_png(path: str, resolution: int) -> np.ndarray:
  """A gray PNG as uint8[R, R]; RGB(A) images are converted to gray ('L')."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  try:
    with Image.open(path) as im:
      if im.mode != "L":
        im = im.convert("L")
      arr = np.asarray(im, np.uint8)
  except FileNotFoundError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f"pathfinder: cannot decode {path}: {e}") from e
  if arr.shape != (resolution, resolution):
    raise ValueError(
      f"pathfinder: {path} is {arr.shape[1]}x{arr.shape[0]}, "
      f"expected {resolution}x{resolution}"
    )
  return arr


class PathfinderSource:
  """Lazily decoded PNGs: example i is the flattened image + offset, padded
  to L."""

  def __init__(
    self,
    paths: Sequence[str],
    targets: np.ndarray,
    resolution: int,
    max_len: int,
    offset: int,
  ):
    self.paths = list(paths)
    self.targets = np.asarray(targets, np.int32)
    self.resolution = resolution
    self.max_len = max_len
    self.offset = offset

  def __len__(self) -> int:
    return len(self.paths)

  def __getitem__(self, index: int) -> base.Example:
    n = len(self)
    if not -n <= index < n:
      raise IndexError(f"index {index} out of range for {n} examples")
    pixels = read_png(self.paths[index], self.resolution).reshape(-1)
    pixels = pixels[: self.max_len]
    inputs = np.zeros(self.max_len, np.int32)
    inputs[: pixels.size] = pixels
    inputs[: pixels.size] += self.offset
    return {"inputs": inputs, "targets": self.targets[index]}


class PathfinderTask:
  """Pathfinder (default 32x32, hard) and Path-X (128x128, hard); 2 classes."""

  spec = SPEC
  offline_data = base.DataInfo(
    "synthetic",
    "Pathfinder-style images from lra_tasks.pathfinder."
    "generate (not drewlinsley's generator): no Pathfinder benchmark number",
  )

  def generate(
    self,
    output_dir: str,
    *,
    seed: int,
    num_images: int,
    resolution: int = 32,
    difficulties: str | Sequence[str] = ("easy", "intermediate", "hard"),
    images_per_dir: int = 1000,
  ) -> dict[str, str]:
    """`generate` (below): `pathfinder{R}/<difficulty dir>/` in output_dir;
    `difficulties` may be one name."""
    if isinstance(difficulties, str):
      difficulties = (difficulties,)
    return generate(
      output_dir,
      num_images,
      seed,
      resolution=resolution,
      difficulties=tuple(difficulties),
      images_per_dir=images_per_dir,
    )

  def load(
    self,
    data_dir: str | None,
    split: str,
    *,
    max_len: int | None = None,
    resolution: int = 32,
    difficulty: str = "hard",
    shift_ids: bool = True,
  ) -> PathfinderSource:
    """Indexes one split of `pathfinder{resolution}/{difficulty dir}`.

    Args:
      data_dir: the folder holding `pathfinder{R}/` (the release's
        `lra_release/lra_release/`, or a parent of it), or a `generate` output.
      split: 'train' (first 80%), 'val' (next 10%) or 'test' (last 10%).
      max_len: L, R*R by default (1024 for 32, 16384 for Path-X).
      resolution: R, one of 32, 64, 128, 256.
      difficulty: 'easy', 'intermediate' or 'hard' (LRA uses 'hard'), or the
        directory name.
      shift_ids: True (default): id = pixel + 1; False: LRA's id = pixel.

    Returns:
      A source of {'inputs': int32[L], 'targets': int32[]}; images are decoded
      when an example is read.
    """
    base.check_split(split, "pathfinder")
    resolution = _check_resolution(resolution)
    max_len = base.check_max_len(max_len, resolution * resolution, "pathfinder")
    sub = os.path.join(f"pathfinder{resolution}", difficulty_dir(difficulty))
    found = None
    tried = []
    for cand in _CANDIDATES:
      d = os.path.normpath(
        os.path.join(os.path.expanduser(data_dir or "."), cand, sub)
      )
      tried.append(d)
      if _metadata_files(d):
        found = d
        break
    if found is None:
      raise FileNotFoundError(
        f"pathfinder: no {sub}/metadata/*.npy found; looked in: "
        f"{', '.join(tried)}. Expected {sub}/imgs/<k>/sample_<n>.png and "
        f"{sub}/metadata/<k>.npy (text lines: subdir file index label ...) "
        "as "
        f"in the LRA release ({base.LRA_RELEASE_URL}, folder "
        "lra_release/lra_release/pathfinder*/), or generate Pathfinder-style "
        "images offline with: python -m lra_tasks.pathfinder --output_dir "
        f"{data_dir or 'DIR'} --resolution {resolution} --num_images 2000 "
        f"--seed 0 --difficulty {difficulty}"
      )
    t0 = time.time()
    paths, labels, where = read_metadata(found)
    start, end = split_bounds(len(paths), split)
    keep_paths, keep_labels, empty = [], [], 0
    for i in range(start, end):
      try:
        size = os.stat(paths[i]).st_size
      except FileNotFoundError:
        raise FileNotFoundError(
          f"pathfinder: {paths[i]}, listed at {where[i]}, does not exist"
        ) from None
      if size == 0:
        empty += 1
        continue
      keep_paths.append(paths[i])
      keep_labels.append(labels[i])
    logger.info(
      "pathfinder: %s/%s: %d images (rows %d:%d of %d), %d empty "
      "files skipped, indexed in %.1fs",
      found,
      split,
      len(keep_paths),
      start,
      end,
      len(paths),
      empty,
      time.time() - t0,
    )
    n = len(keep_paths)
    base.log_truncation(
      "pathfinder",
      split,
      n if max_len < resolution * resolution else 0,
      n,
      max_len,
      "images",
    )
    return PathfinderSource(
      keep_paths,
      np.asarray(keep_labels, np.int64),
      resolution,
      max_len,
      1 if shift_ids else 0,
    )


# ---------------------------------------------------------------------------
# Generator of Pathfinder-style images.

_AA = 2  # supersampling factor
# Per resolution: paddle length, gap between paddles, line thickness, marker
# radius (final pixels), distractor budget (LRA's data/pathfinder.py:
# num_distractor_snakes = budget // distractor_length), max turn between
# paddles (radians).
_PARAMS = {
  32: dict(
    paddle=2.0, gap=1.0, thickness=1.0, marker=1.5, budget=20, turn=math.pi / 3
  ),
  64: dict(
    paddle=3.5, gap=1.5, thickness=1.0, marker=2.5, budget=22, turn=math.pi / 4
  ),
  128: dict(
    paddle=6.0, gap=2.5, thickness=1.5, marker=3.0, budget=35, turn=math.pi / 4
  ),
  256: dict(
    paddle=10.0, gap=3.0, thickness=2.0, marker=5.0, budget=30, turn=math.pi / 4
  ),
}


def _disc_offsets(radius: float) -> np.ndarray:
  r = int(math.ceil(radius))
  yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
  sel = yy * yy + xx * xx <= radius * radius + 1e-9
  return np.stack([yy[sel], xx[sel]], axis=1)


class _Canvas:
  """Supersampled drawing: snakes as sampled points, stamped at the end.

  `forbidden` marks the cells within the clearance of everything drawn so far,
  so testing a candidate snake is one lookup per sample point.
  """

  def __init__(self, resolution: int, p: dict[str, float]):
    self.size = resolution * _AA
    self.p = {k: v * _AA for k, v in p.items() if k not in ("budget", "turn")}
    self.turn = p["turn"]
    self.clearance = self.p["thickness"] + self.p["gap"]
    self.forbidden = np.zeros((self.size, self.size), bool)
    self.strokes = []
    self.markers = []

  def _stamp(self, grid: np.ndarray, pts: np.ndarray, radius: float) -> None:
    idx = np.round(pts).astype(np.int64)[:, None, :] + _disc_offsets(radius)
    idx = np.clip(idx.reshape(-1, 2), 0, self.size - 1)
    grid[idx[:, 0], idx[:, 1]] = True

  def snake_points(
    self, rng: np.random.Generator, num_paddles: int, count: int
  ):
    """`count` candidate snakes, vectorized.

    Returns:
      (points [T, M, 2], paddle index [M], ends [T, 2, 2], (lo, hi) bounds).
    """
    p = self.p
    step = p["paddle"] + p["gap"]
    lo = p["marker"] + 1.0
    hi = self.size - 1 - lo
    start = rng.uniform(lo, hi, size=(count, 1, 2))
    turns = rng.uniform(-self.turn, self.turn, size=(count, num_paddles))
    turns[:, 0] = rng.uniform(0, 2 * math.pi, size=count)
    theta = np.cumsum(turns, axis=1)
    direction = np.stack([np.sin(theta), np.cos(theta)], axis=-1)  # [T, P, 2]
    heads = np.cumsum(direction * step, axis=1) - direction * step + start
    samples = max(2, int(math.ceil(p["paddle"] / 0.5)) + 1)
    t = np.linspace(0.0, p["paddle"], samples)
    pts = heads[:, :, None, :] + t[None, None, :, None] * direction[:, :, None]
    paddle = np.repeat(np.arange(num_paddles), samples)
    last = heads[:, -1] + direction[:, -1] * p["paddle"]
    ends = np.stack([heads[:, 0], last], axis=1)
    return pts.reshape(count, -1, 2), paddle, ends, (lo, hi)

  def try_add(
    self, rng: np.random.Generator, num_paddles: int, tries: int = 512
  ) -> np.ndarray | None:
    """Adds a snake that stays inside and clear of the others; returns its ends.

    Candidates are drawn 64 at a time and tested in order, so the result is a
    deterministic function of the generator state.
    """
    far = None
    for _ in range(max(1, tries // 64)):
      pts, paddle, ends, (lo, hi) = self.snake_points(rng, num_paddles, 64)
      inside = (pts.min(axis=(1, 2)) >= lo) & (pts.max(axis=(1, 2)) <= hi)
      for c in np.flatnonzero(inside):
        cand = pts[c]
        cells = np.round(cand).astype(np.int64)
        if self.forbidden[cells[:, 0], cells[:, 1]].any():
          continue
        # No self-crossing: paddles two or more apart keep their distance.
        if far is None:
          far = np.abs(paddle[:, None] - paddle[None, :]) >= 2
        d = np.linalg.norm(cand[:, None, :] - cand[None, :, :], axis=-1)
        if (d[far] < self.clearance).any():
          continue
        self._stamp(self.forbidden, cand, self.clearance)
        self.strokes.append(cand)
        return ends[c]
    return None

  def add_markers(self, centers: Sequence[np.ndarray]) -> None:
    self.markers = list(centers)
    self._stamp(
      self.forbidden,
      np.asarray(self.markers),
      self.p["marker"] + self.clearance,
    )

  def render(self) -> np.ndarray:
    """uint8[R, R]: strokes and markers at 255 on black, box-downsampled."""
    ink = np.zeros((self.size, self.size), bool)
    for pts in self.strokes:
      self._stamp(ink, pts, max(0.5, self.p["thickness"] / 2))
    if self.markers:
      self._stamp(ink, np.asarray(self.markers), self.p["marker"])
    r = self.size // _AA
    small = ink.reshape(r, _AA, r, _AA).mean(axis=(1, 3))
    return np.round(small * 255).astype(np.uint8)


def draw_image(
  rng: np.random.Generator, resolution: int, contour_length: int, label: int
) -> np.ndarray:
  """One Pathfinder-style image, uint8[R, R].

  Two snakes of `contour_length` paddles are drawn; with label 1 both markers
  sit at the two ends of the first snake, with label 0 one marker sits at an end
  of each snake. Distractor snakes of contour_length // 3 paddles carry no
  marker.
  """
  p = _PARAMS[resolution]
  dist_len = max(1, contour_length // 3)
  num_dist = p["budget"] // dist_len
  for _ in range(100):
    canvas = _Canvas(resolution, p)
    a = canvas.try_add(rng, contour_length)
    b = canvas.try_add(rng, contour_length) if a is not None else None
    if a is None or b is None:
      continue
    if label == 1:
      canvas.add_markers([a[0], a[1]])
    else:
      canvas.add_markers([a[rng.integers(2)], b[rng.integers(2)]])
    for _ in range(num_dist):
      canvas.try_add(rng, dist_len, tries=64)  # best effort, as the original
    return canvas.render()
  raise RuntimeError(
    f"pathfinder: could not place two snakes of "
    f"{contour_length} paddles in {resolution}x{resolution}"
  )


def generate(
  output_dir: str,
  num_images: int,
  seed: int,
  *,
  resolution: int = 32,
  difficulties: Sequence[str] = ("easy", "intermediate", "hard"),
  images_per_dir: int = 1000,
) -> dict[str, str]:
  """Writes Pathfinder-style PNGs + metadata in the LRA release layout.

  For each difficulty: `output_dir/pathfinder{R}/{dir}/imgs/<k>/sample_<n>.png`
  and `metadata/<k>.npy` (text lines `imgs/<k> sample_<n>.png <n> <label>
  <contour_length> <num_distractors>`), images_per_dir images per <k>. Labels
  are drawn 0/1 with equal probability. The output is a function of the
  arguments (seeded `np.random.default_rng`).

  Args:
    output_dir: the folder that will hold `pathfinder{R}/`.
    num_images: images per difficulty.
    seed: a non-negative int.
    resolution: R, one of 32, 64, 128, 256.
    difficulties: any of 'easy', 'intermediate', 'hard' (or dir names).
    images_per_dir: images per imgs/<k> folder (and per metadata file).

  Returns:
    {difficulty dir name: its path}.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top

  resolution = _check_resolution(resolution)
  if num_images < 0 or images_per_dir <= 0:
    raise ValueError(
      f"need num_images >= 0 and images_per_dir > 0, got "
      f"{num_images} and {images_per_dir}"
    )
  out = {}
  for d_index, difficulty in enumerate(difficulties):
    dname = difficulty_dir(difficulty)
    contour = CONTOUR_LENGTH[_ALIASES.get(difficulty, difficulty)]
    num_dist = _PARAMS[resolution]["budget"] // max(1, contour // 3)
    root = os.path.join(output_dir, f"pathfinder{resolution}", dname)
    os.makedirs(os.path.join(root, "metadata"), exist_ok=True)
    rng = np.random.default_rng([seed, resolution, d_index])
    t0 = time.time()
    lines: list[str] = []
    for i in range(num_images):
      k, n = divmod(i, images_per_dir)
      sub = f"imgs/{k}"
      os.makedirs(os.path.join(root, sub), exist_ok=True)
      label = int(rng.integers(2))
      image = draw_image(rng, resolution, contour, label)
      Image.fromarray(image, mode="L").save(
        os.path.join(root, sub, f"sample_{n}.png")
      )
      lines.append(f"{sub} sample_{n}.png {n} {label} {contour} {num_dist}\n")
      if n == images_per_dir - 1 or i == num_images - 1:
        with open(os.path.join(root, "metadata", f"{k}.npy"), "w") as f:
          f.writelines(lines)
        lines = []
    logger.info(
      "pathfinder.generate: %d images in %s (%.1fs)",
      num_images,
      root,
      time.time() - t0,
    )
    out[dname] = root
  return out


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
    prog="python -m lra_tasks.pathfinder",
    description="Writes Pathfinder-style PNGs in the LRA release layout.",
  )
  parser.add_argument("--output_dir", required=True)
  parser.add_argument(
    "--num_images", type=int, default=2000, help="images per difficulty"
  )
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--resolution", type=int, default=32, choices=RESOLUTIONS)
  parser.add_argument(
    "--difficulty",
    action="append",
    help="easy, intermediate or hard; repeatable; default all",
  )
  parser.add_argument("--images_per_dir", type=int, default=1000)
  args = parser.parse_args(argv)
  logging.basicConfig(level=logging.INFO, format="%(message)s")
  t0 = time.time()
  out = generate(
    args.output_dir,
    args.num_images,
    args.seed,
    resolution=args.resolution,
    difficulties=args.difficulty or ("easy", "intermediate", "hard"),
    images_per_dir=args.images_per_dir,
  )
  print(f"wrote {', '.join(out.values())} in {time.time() - t0:.1f}s")
  return 0


TASK = PathfinderTask()

if __name__ == "__main__":
  sys.exit(main())
