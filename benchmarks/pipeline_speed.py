"""Speed of the LRA data pipelines: ListOps generation, load time, batches/s.

Times `lra_tasks.listops.generate` at LRA settings (96k/2k/2k rows, lengths
500..2000) and, for each task, the load time of a split and the batches per
second of `train_batches` and `eval_batches`. Everything runs offline on
generated data in the real formats (ListOps and Pathfinder generators, fake
AAN TSVs, real TFDS ArrayRecord files with made-up content), so batches/s
reflect the real per-example work. About 2-3 minutes on 2 CPU cores:

  python -m benchmarks.pipeline_speed --work_dir /tmp/lra_bench
"""

import argparse
import logging
import os
import platform
import tempfile
import time

import numpy as np

from benchmarks import common
import lra_tasks
from lra_tasks import listops
from lra_tasks import pathfinder
from lra_tasks import testing


def batches_per_second(make_iterator, min_batches: int, min_seconds: float):
  """(batches/s, batches timed) of `make_iterator()`, restarted when a
  finite one runs out, over at least `min_batches` and `min_seconds`."""
  iterator = make_iterator()
  next(iterator)  # warm-up (first epoch permutation, caches)
  count, t0 = 0, time.perf_counter()
  while count < min_batches or time.perf_counter() - t0 < min_seconds:
    try:
      next(iterator)
      count += 1
    except StopIteration:
      iterator = make_iterator()
  return count / (time.perf_counter() - t0), count


def measure(name, load, batch_size, min_batches, min_seconds):
  t0 = time.perf_counter()
  src = load()
  load_s = time.perf_counter() - t0
  (train_bps, n_train), (eval_bps, n_eval) = (
    batches_per_second(make, min_batches, min_seconds)
    for make in (
      lambda: lra_tasks.train_batches(src, batch_size, seed=0),
      lambda: lra_tasks.eval_batches(src, batch_size),
    )
  )
  row = {
    "task": name,
    "examples": len(src),
    "load_s": round(load_s, 3),
    "train_batches_per_s": round(train_bps, 1),
    "eval_batches_per_s": round(eval_bps, 1),
    "train_batches_timed": n_train,
    "eval_batches_timed": n_eval,
    "seq_len": int(src[0]["inputs"].shape[0]),
  }
  print(
    f"{name:>14}: {len(src):6d} examples, load {load_s:6.2f} s, "
    f"train {train_bps:8.1f} batches/s, eval {eval_bps:8.1f} batches/s "
    f"(B={batch_size}, L={row['seq_len']})",
    flush=True,
  )
  return row


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument(
    "--work_dir",
    default=None,
    help="where generated data goes (default: a new tmp)",
  )
  parser.add_argument(
    "--json_out", default=None, help="default: <work_dir>/pipeline_speed.json"
  )
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument(
    "--listops_sizes",
    default="96000,2000,2000",
    help="train,val,test rows for the timed generation",
  )
  parser.add_argument("--pathfinder_images", type=int, default=1000)
  parser.add_argument("--min_batches", type=int, default=50)
  parser.add_argument("--min_seconds", type=float, default=2.0)
  args = parser.parse_args(argv)
  logging.basicConfig(level=logging.WARNING)
  work = args.work_dir or tempfile.mkdtemp(prefix="lra_bench_")
  n_train, n_val, n_test = (int(x) for x in args.listops_sizes.split(","))
  listops_dir = os.path.join(work, "listops-1000")
  t0 = time.perf_counter()
  listops.generate(listops_dir, n_train, n_val, n_test, seed=0)
  gen_s = time.perf_counter() - t0
  size_mb = (
    sum(
      os.path.getsize(os.path.join(listops_dir, f))
      for f in listops.expected_files()
    )
    / 2**20
  )
  print(
    f"listops generate {n_train}/{n_val}/{n_test} (LRA settings): "
    f"{gen_s:.1f} s, {size_mb:.0f} MiB",
    flush=True,
  )
  tfds_dir, aan_dir = os.path.join(work, "tfds"), os.path.join(work, "tsv_data")
  for name in ("imdb_reviews", "cifar10"):
    testing.prepare_fake_tfds(tfds_dir, name, 2000, 500, seed=0)
  testing.write_fake_aan(
    aan_dir, {"train": 2000, "eval": 200, "test": 200}, seed=0, mean_bytes=6000
  )
  pathfinder.generate(
    work, args.pathfinder_images, seed=0, resolution=32, difficulties=("hard",)
  )
  pathfinder.generate(
    work,
    max(50, args.pathfinder_images // 4),
    seed=0,
    resolution=128,
    difficulties=("hard",),
  )
  loads = (
    ("listops", "listops", listops_dir, {}),
    ("text", "text", tfds_dir, {}),
    ("text (L=4000)", "text", tfds_dir, {"max_len": 4000}),
    ("retrieval", "retrieval", aan_dir, {}),
    ("image", "image", tfds_dir, {}),
    ("pathfinder32", "pathfinder", work, {}),
    ("path-x (128)", "pathfinder", work, {"resolution": 128}),
  )
  rows = [
    measure(
      name,
      lambda t=task, d=data, o=options: lra_tasks.get_task(t).load(
        d, "train", **o
      ),
      args.batch_size,
      args.min_batches,
      args.min_seconds,
    )
    for name, task, data, options in loads
  ]
  results = {
    "machine": dict(
      common.host(), python=platform.python_version(), numpy=np.__version__
    ),
    "batch_size": args.batch_size,
    "listops_generation": {
      "num_train": n_train,
      "num_val": n_val,
      "num_test": n_test,
      "min_length": 500,
      "max_length": 2000,
      "max_depth": 10,
      "max_args": 10,
      "seconds": round(gen_s, 2),
      "mib_written": round(size_mb, 1),
    },
    "pipelines": rows,
  }
  common.write(
    args.json_out or os.path.join(work, "pipeline_speed.json"),
    common.dumps(results),
  )


if __name__ == "__main__":
  main()
