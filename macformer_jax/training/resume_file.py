"""One small compressed file that resumes a run: export and import.

A run that continues in another session or on another machine needs only
its latest checkpoint (the whole TrainState: params, optimizer state, random
features, dropout key, step; the step is also the data position, since
batches are a function of (seed, step)), the best-eval record, and the
best-eval parameters (the final test evaluates them). `export` packs those
from a workdir's orbax checkpoints (`checkpoints.Checkpoints`) into one file;
`restore` writes them back as orbax checkpoints into an empty workdir, from
which `loop.run` resumes as if it had never stopped (same batches, dropout
keys, redraws and best checkpoint: bit-equal final parameters and results).

Format: an xz (LZMA) stream of one msgpack map, {'format', 'step', 'meta',
'latest', 'best_step', 'best_meta', 'best'}. Trees are orbax's own restored
form (nested maps and lists); every array is stored byte-shuffled (byte k of
every element together), which lets LZMA compress float32 parameters about
a quarter better than their plain bytes. The best-eval checkpoint keeps only
`params` and `random_features` (what the test reads); restored, it borrows
the rest of the latest state.
"""

import lzma
import os
from typing import Any

import jax
import msgpack
import numpy as np
import orbax.checkpoint as ocp

from macformer_jax.training import checkpoints as checkpoints_lib

FORMAT = "macformer_jax.resume/1"
BEST_KEYS = ("params", "random_features")


def _steps(directory: str) -> list:
  if not os.path.isdir(directory):
    return []
  return sorted(int(d) for d in os.listdir(directory) if d.isdigit())


def _read(directory: str, step: int) -> tuple:
  """(state tree, meta) of one orbax checkpoint, without a target."""
  path = os.path.abspath(os.path.join(directory, str(step)))
  manager = ocp.CheckpointManager(
    path.rsplit(os.sep, 1)[0], item_names=("state", "meta")
  )
  try:
    restored = manager.restore(
      step,
      args=ocp.args.Composite(
        state=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore()
      ),
    )
  finally:
    manager.close()
  return restored["state"], dict(restored["meta"])


def _encode(tree: Any) -> Any:
  """Arrays -> {'dtype', 'shape', 'bytes'} (byte-shuffled); the rest as is."""
  if isinstance(tree, dict):
    return {str(k): _encode(v) for k, v in tree.items()}
  if isinstance(tree, (list, tuple)):
    return [_encode(v) for v in tree]
  if tree is None or isinstance(tree, (bool, int, float, str)):
    return tree
  x = np.asarray(tree)
  planes = (
    np.ascontiguousarray(x.reshape(-1))
    .view(np.uint8)
    .reshape(-1, x.dtype.itemsize)
    .T
  )
  return {
    "__array__": True,
    "dtype": x.dtype.str,
    "shape": list(x.shape),
    "bytes": np.ascontiguousarray(planes).tobytes(),
  }


def _decode(tree: Any) -> Any:
  if isinstance(tree, dict) and tree.get("__array__"):
    dtype = np.dtype(tree["dtype"])
    planes = np.frombuffer(tree["bytes"], np.uint8).reshape(dtype.itemsize, -1)
    return np.ascontiguousarray(planes.T).view(dtype).reshape(tree["shape"])
  if isinstance(tree, dict):
    return {k: _decode(v) for k, v in tree.items()}
  if isinstance(tree, list):
    return [_decode(v) for v in tree]
  return tree


def latest_step(workdir: str) -> int | None:
  """The workdir's latest checkpoint step, or None."""
  steps = _steps(os.path.join(workdir, "checkpoints", "latest"))
  return steps[-1] if steps else None


def export(workdir: str, path: str) -> int | None:
  """Writes the resume file of `workdir`'s latest checkpoint to `path`.

  Replaces `path` atomically. Returns the step written, or None when the
  workdir has no checkpoint (then `path` is left alone).
  """
  step = latest_step(workdir)
  if step is None:
    return None
  root = os.path.join(workdir, "checkpoints")
  state, meta = _read(os.path.join(root, "latest"), step)
  payload = {
    "format": FORMAT,
    "step": step,
    "meta": meta,
    "latest": _encode(state),
    "best_step": None,
    "best_meta": None,
    "best": None,
  }
  best_steps = [s for s in _steps(os.path.join(root, "best")) if s <= step]
  if best_steps:
    best, best_meta = _read(os.path.join(root, "best"), best_steps[-1])
    payload.update(
      best_step=best_steps[-1],
      best_meta=best_meta,
      best=_encode({k: best[k] for k in BEST_KEYS}),
    )
  data = lzma.compress(msgpack.packb(payload, use_bin_type=True), preset=9)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "wb") as f:
    f.write(data)
  os.replace(tmp, path)
  return step


def load(path: str) -> dict:
  """The resume file's content: trees of numpy arrays, steps and metas."""
  with open(path, "rb") as f:
    payload = msgpack.unpackb(lzma.decompress(f.read()), raw=False)
  if payload.get("format") != FORMAT:
    raise ValueError(
      f"{path}: not a resume file of format {FORMAT!r} "
      f"(found {payload.get('format')!r})"
    )
  for key in ("latest", "best"):
    payload[key] = _decode(payload[key])
  return payload


def restore(path: str, workdir: str, keep: int = 2) -> int:
  """Writes the resume file's checkpoints into `workdir` (orbax, as the
  trainer writes them); returns the step the run resumes from.

  Raises:
    ValueError: `workdir` already holds a checkpoint, or `path` is not a
      resume file.
  """
  if latest_step(workdir) is not None:
    raise ValueError(
      f"{workdir} already holds checkpoints; restore a resume "
      "file only into an empty workdir"
    )
  payload = load(path)
  manager = checkpoints_lib.Checkpoints(workdir, keep)
  try:
    latest = jax.tree.map(np.asarray, payload["latest"])
    if payload["best"] is not None:
      best = dict(latest, **payload["best"])
      best["step"] = np.asarray(
        payload["best_step"], np.asarray(latest["step"]).dtype
      )
      manager.save_best(payload["best_step"], best, payload["best_meta"])
    manager.save_latest(payload["step"], latest, payload["meta"])
  finally:
    manager.close()
  return payload["step"]
