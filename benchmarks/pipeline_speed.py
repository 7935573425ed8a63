"""Speed of the LRA data pipelines: ListOps generation, load time, batches/s.

Generates every task's data offline in its real format (ListOps at LRA's
sizes, Pathfinder, fake AAN TSVs and TFDS files) and times a split's load and
`train_batches`/`eval_batches`. About 2-3 minutes on 2 CPU cores:

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

BATCH_SIZE, MIN_BATCHES, MIN_SECONDS = 32, 50, 2.0
LISTOPS_SIZES = (96000, 2000, 2000)  # LRA's train/val/test rows
LISTOPS = dict(min_length=500, max_length=2000, max_depth=10, max_args=10)


def batches_per_second(make_iterator):
  """(batches/s, batches timed) of `make_iterator()`, restarted when a
  finite one runs out, over at least MIN_BATCHES and MIN_SECONDS."""
  iterator = make_iterator()
  next(iterator)  # warm-up (first epoch permutation, caches)
  count, t0 = 0, time.perf_counter()
  while count < MIN_BATCHES or time.perf_counter() - t0 < MIN_SECONDS:
    try:
      next(iterator)
      count += 1
    except StopIteration:
      iterator = make_iterator()
  return count / (time.perf_counter() - t0), count


def measure(name, task, data_dir, options) -> dict:
  """One pipeline's load time and train/eval batches per second."""
  t0 = time.perf_counter()
  src = lra_tasks.get_task(task).load(data_dir, "train", **options)
  load_s = time.perf_counter() - t0
  train = lambda: lra_tasks.train_batches(src, BATCH_SIZE, seed=0)
  evals = lambda: lra_tasks.eval_batches(src, BATCH_SIZE)
  (train_bps, n_train), (eval_bps, n_eval) = map(
    batches_per_second, (train, evals)
  )
  row = {"task": name, "examples": len(src), "load_s": round(load_s, 3)}
  row["train_batches_per_s"] = round(train_bps, 1)
  row["eval_batches_per_s"] = round(eval_bps, 1)
  row.update(train_batches_timed=n_train, eval_batches_timed=n_eval)
  row["seq_len"] = int(src[0]["inputs"].shape[0])
  print(f"{name:>14}: {row}", flush=True)
  return row


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--work_dir", help="for the data (default: a new tmp)")
  help_ = "default: <work_dir>/pipeline_speed.json"
  parser.add_argument("--json_out", help=help_)
  args = parser.parse_args(argv)
  logging.basicConfig(level=logging.WARNING)
  work = args.work_dir or tempfile.mkdtemp(prefix="lra_bench_")
  listops_dir = os.path.join(work, "listops-1000")
  t0 = time.perf_counter()
  listops.generate(listops_dir, *LISTOPS_SIZES, seed=0, **LISTOPS)
  gen_s = time.perf_counter() - t0
  files = [os.path.join(listops_dir, f) for f in listops.expected_files()]
  size_mb = sum(map(os.path.getsize, files)) / 2**20
  print(f"listops generate: {gen_s:.1f} s, {size_mb:.0f} MiB", flush=True)
  tfds, aan = os.path.join(work, "tfds"), os.path.join(work, "tsv_data")
  for name in ("imdb_reviews", "cifar10"):
    testing.prepare_fake_tfds(tfds, name, 2000, 500, seed=0)
  sizes = {"train": 2000, "eval": 200, "test": 200}
  testing.write_fake_aan(aan, sizes, seed=0, mean_bytes=6000)
  for images, resolution in ((1000, 32), (250, 128)):
    hard = dict(resolution=resolution, difficulties=("hard",))
    pathfinder.generate(work, images, seed=0, **hard)
  rows = [
    measure("listops", "listops", listops_dir, {}),
    measure("text", "text", tfds, {}),
    measure("text (L=4000)", "text", tfds, {"max_len": 4000}),
    measure("retrieval", "retrieval", aan, {}),
    measure("image", "image", tfds, {}),
    measure("pathfinder32", "pathfinder", work, {}),
    measure("path-x (128)", "pathfinder", work, {"resolution": 128}),
  ]
  names = ("num_train", "num_val", "num_test")
  generation = dict(zip(names, LISTOPS_SIZES, strict=True), **LISTOPS)
  generation.update(seconds=round(gen_s, 2), mib_written=round(size_mb, 1))
  machine = dict(common.host(), python=platform.python_version())
  results = {"machine": dict(machine, numpy=np.__version__)}
  results.update(batch_size=BATCH_SIZE, listops_generation=generation)
  results["pipelines"] = rows
  out = args.json_out or os.path.join(work, "pipeline_speed.json")
  common.write(out, common.dumps(results))


if __name__ == "__main__":
  main()
