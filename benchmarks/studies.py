"""What the training studies share (temperature_study, exact_kernel_diagnostic):
the reduced ListOps setting, a resumable grid of run_lra.py runs, and the
`run` / `report [--from_docs]` command line.

A run recorded in the study's docs/<name>.json counts as done: `run` skips
it and `report` merges it with the runs finished under `--runs`.
"""

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import time

from benchmarks import common

HEAD_DIM, NUM_FEATURES = 32, 128  # the reduced model: qkv 64 over 2 heads
DEFAULT_SCALE = HEAD_DIM**-0.25
SEEDS = (0, 1, 2)
NUM_STEPS, EVAL_EVERY, WARMUP = 500, 100, 300  # reduced_listops.sh's start
# The data of benchmarks/reduced_listops.sh: seed 0, smoke distribution.
SIZES = {"num_train": 20000, "num_val": 1000, "num_test": 1000}
DATA = dict(SIZES, min_length=20, max_length=250, max_depth=6, max_args=10)


def lra_command(preset, seed, workdir, data_dir, num_steps) -> list[str]:
  """run_lra.py on the studies' data, model and schedule with `preset`."""
  config = os.path.join(common.REPO, "configs", "listops.py")
  flags = dict(seed=seed, **{"data.data_dir": data_dir})
  flags.update({"train.num_train_steps": num_steps})
  flags.update({"train.eval_frequency": EVAL_EVERY})
  flags.update({"train.checkpoint_every": num_steps})
  flags.update({"optimizer.warmup_steps": WARMUP})
  flags.update({f"data.offline.{k}": v for k, v in SIZES.items()})
  run_lra = [sys.executable, os.path.join(common.REPO, "run_lra.py")]
  run_lra += [f"--config={config}:{preset},smoke", f"--workdir={workdir}"]
  return run_lra + [f"--config.{k}={v}" for k, v in flags.items()]


def ensure_data(data_dir: str) -> None:
  """Generates the reduced ListOps data (seed 0) once."""
  if not os.path.exists(os.path.join(data_dir, "DONE")):
    from lra_tasks import listops  # pylint: disable=g-import-not-at-top

    listops.generate(data_dir + ".tmp", seed=0, **DATA)
    common.write(os.path.join(data_dir + ".tmp", "DONE"), json.dumps(DATA))
    os.replace(data_dir + ".tmp", data_dir)


def train(jobs: list[tuple[str, list[str]]], args) -> None:
  """Runs (workdir, command) jobs `args.parallel` at a time at `args.nice`,
  skipping finished ones (a results.json); wall.json records each."""

  def one(job):
    workdir, cmd = job
    if os.path.exists(os.path.join(workdir, "results.json")):
      return
    os.makedirs(workdir, exist_ok=True)
    t0, nice = time.time(), ["nice", "-n", str(args.nice)]
    with open(os.path.join(workdir, "log.txt"), "a") as log:
      rc = subprocess.call(nice + cmd, stdout=log, stderr=log, cwd=common.REPO)
    wall = dict(rc=rc, wall_s=time.time() - t0, date=common.now())
    wall.update(parallel=args.parallel, nice=args.nice)
    common.write(os.path.join(workdir, "wall.json"), json.dumps(wall))

  with concurrent.futures.ThreadPoolExecutor(args.parallel) as pool:
    list(pool.map(one, jobs))


def recorded(docs: str, name: str) -> list[dict]:
  """The run records in <docs>/<name>.json (done, even on a new checkout)."""
  data, _ = common.load_json(os.path.join(docs, name + ".json"))
  return (data or {}).get("runs", [])


def merged(records: list[dict], fresh: list[dict]) -> list[dict]:
  """`records` with those of the same run replaced by `fresh`, then the
  rest of `fresh`."""
  names = {r["run"] for r in fresh}
  return [r for r in records if r["run"] not in names] + fresh


def main(argv, doc: str, name: str, commands, measure, write, flags: dict):
  """`run`: trains the runs of commands(args) {run: fn(workdir, data_dir)
  -> argv} not recorded yet; `report`: data = measure(args, recorded
  records) (`--from_docs`: docs/<name>.json as it is), then write(args,
  data). `flags`: the study's flags and their defaults."""
  parser = argparse.ArgumentParser(description=doc.splitlines()[0])
  parser.add_argument("command", choices=("run", "report"))
  parser.add_argument("--from_docs", action="store_true")
  flags = dict(flags, steps=NUM_STEPS, docs=os.path.join(common.REPO, "docs"))
  flags["runs"] = os.path.join(common.REPO, "runs", name)
  for flag, default in flags.items():
    parser.add_argument(f"--{flag}", type=type(default), default=default)
  args = parser.parse_args(argv)
  json_path = os.path.join(args.docs, name + ".json")
  if args.command == "run":
    done = {r["run"] for r in recorded(args.docs, name)}
    todo = {k: v for k, v in commands(args).items() if k not in done}
    print(f"{len(done)} runs recorded in {json_path}, {len(todo)} to train")
    data_dir = os.path.join(args.runs, "data")
    os.makedirs(args.runs, exist_ok=True)
    ensure_data(data_dir)
    jobs = [(os.path.join(args.runs, k), v) for k, v in todo.items()]
    return train([(w, make(w, data_dir)) for w, make in jobs], args)
  if args.from_docs:
    data, why = common.load_json(json_path)
    if data is None:
      raise SystemExit(f"{json_path} is {why}")
  else:
    data = measure(args, recorded(args.docs, name))
  common.write(json_path, json.dumps(data, indent=1))
  write(args, data)
