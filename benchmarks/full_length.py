r"""The Macformer authors' ListOps harness at full length, resumable.

Trains `preset=macformer` (L = 2000, batch 32, 10000 steps, the legacy
tokenisation; docs/METHOD.md §8.3) on generated ListOps (the LRA generator's
distribution, seed 0) per attention, for `--budget_s` seconds of wall clock
per call: then SIGTERM (the trainer checkpoints the step in flight; SIGKILL
only after `--grace_s`), and the next call resumes (`run_lra.py` resumes
from `<workdir>/<attention>`), over as many sessions as it takes.

  python -m benchmarks.full_length run                      # 1 h each
  python -m benchmarks.full_length run --budget_s 600 --attentions softmax
  python -m benchmarks.full_length collect                  # progress JSON
  python -m benchmarks.full_length data                     # generate only

After each run the progress (steps done, eval and train curves, steps/s,
test accuracy once finished, one entry per session) goes to
`<out>/<prefix><attention>.json` (docs/results/). So that a new checkout
resumes where the last stopped, an unfinished run leaves a compressed resume
file `<state_dir>/<prefix><attention>.msgpack.xz` (results/state/;
macformer_jax/training/resume_file.py: the latest TrainState, best-eval
params and record, ~2.6 MB, meant to be committed), and its config.json,
metrics.jsonl and results.json go to `--carry` (`<out>/<prefix>logs/`). An
empty workdir is restored from both and continues bit-exactly (batches,
dropout keys and redraws are functions of (seed, step)); a finished run's
resume file is deleted. Orbax checkpoints copied into
`<workdir>/<attention>/checkpoints/` are exported by the next `run`.
"""

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time

from benchmarks import common

ATTENTIONS = ("softmax", "macformer_exp", "performer")
PRESET_STEPS = 10000  # preset=macformer (docs/METHOD.md §8.3)
# LRA's generator settings (configs/listops.py `data.offline`), seed 0.
DATA = {
  "num_train": 96000,
  "num_val": 2000,
  "num_test": 2000,
  "min_length": 500,
  "max_length": 2000,
  "max_depth": 10,
  "max_args": 10,
}
CARRIED_FILES = ("config.json", "metrics.jsonl", "results.json")


def ensure_data(data_dir: str, sizes: dict[str, int]) -> float:
  """Generates the ListOps data once; returns the seconds it took."""
  if os.path.exists(os.path.join(data_dir, "DONE")):
    return 0.0
  from lra_tasks import listops  # pylint: disable=g-import-not-at-top

  start, args, tmp = time.time(), dict(DATA, **sizes), data_dir + ".tmp"
  listops.generate(tmp, seed=0, **args)
  with open(os.path.join(tmp, "DONE"), "w") as f:
    json.dump(args, f)
  os.replace(tmp, data_dir)
  return time.time() - start


def run_command(
  attention: str, workdir: str, data_dir: str, args: argparse.Namespace
) -> list[str]:
  """The run_lra.py command line of one attention."""
  root = common.REPO
  return (
    [
      sys.executable,
      os.path.join(root, "run_lra.py"),
      f"--config={os.path.join(root, 'configs', 'listops.py')}:"
      f"{attention},preset=macformer",
      f"--workdir={workdir}",
      f"--config.data.data_dir={data_dir}",
    ]
    + ([f"--config.train.num_train_steps={args.steps}"] if args.steps else [])
    + (
      [f"--config.train.checkpoint_every={args.checkpoint_every}"]
      if args.checkpoint_every
      else []
    )
    + list(args.flag)
  )


def run_bounded(
  cmd: list[str], log_path: str, budget_s: float, grace_s: float = 600.0
) -> dict:
  """Runs `cmd` for `budget_s` seconds, then SIGTERM (run_lra.py finishes
  and checkpoints the step in flight), then SIGKILL after `grace_s`."""
  start, cut = time.time(), False
  with open(log_path, "a") as log:
    log.write(f"\n=== {_now()} {' '.join(cmd)}\n")
    log.flush()
    proc = subprocess.Popen(
      cmd,
      stdout=log,
      stderr=subprocess.STDOUT,
      cwd=common.REPO,
      start_new_session=True,
    )
    try:
      rc = proc.wait(timeout=budget_s)
    except subprocess.TimeoutExpired:
      cut = True
      os.killpg(proc.pid, signal.SIGTERM)
      try:
        rc = proc.wait(timeout=grace_s)
      except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        rc = proc.wait()
  return {"rc": rc, "cut_by_budget": cut, "wall_s": time.time() - start}


def _now() -> str:
  return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _latest_checkpoint(workdir: str) -> int | None:
  latest = os.path.join(workdir, "checkpoints", "latest")
  steps = (
    sorted(int(d) for d in os.listdir(latest) if d.isdigit())
    if (os.path.isdir(latest))
    else []
  )
  return steps[-1] if steps else None


def _copy(names, src: str, dst: str) -> None:
  for name in names:
    if os.path.exists(os.path.join(src, name)):
      shutil.copy2(os.path.join(src, name), os.path.join(dst, name))


def save_carry(
  workdir: str, carry: str | None, state_file: str | None
) -> int | None:
  """Copies the text files to `carry` and writes the resume file from the
  latest checkpoint (deletes it once the run has results.json); returns the
  resume file's size in bytes, or None."""
  if carry:
    os.makedirs(carry, exist_ok=True)
    _copy(CARRIED_FILES, workdir, carry)
  if not state_file:
    return None
  if os.path.exists(os.path.join(workdir, "results.json")):
    if os.path.exists(state_file):
      os.remove(state_file)
    return None
  from macformer_jax.training import resume_file  # pylint: disable=g-import-not-at-top

  if resume_file.export(workdir, state_file) is None:
    return None
  return os.path.getsize(state_file)


def restore_carry(
  carry: str | None, state_file: str | None, workdir: str
) -> int | None:
  """Restores a carried run into `workdir` if that holds no checkpoint or
  results yet: the resume file's checkpoint and the text files, or a
  finished run's text files only (reported, not retrained). Returns the step
  restored (0 for a finished run), or None (nothing restored)."""
  if _latest_checkpoint(workdir) is not None or os.path.exists(
    os.path.join(workdir, "results.json")
  ):
    return None
  has_state = bool(state_file) and os.path.exists(state_file)
  finished = bool(carry) and os.path.exists(os.path.join(carry, "results.json"))
  if not has_state and not finished:
    return None
  os.makedirs(workdir, exist_ok=True)
  if carry:
    _copy(CARRIED_FILES, carry, workdir)
  if finished:
    return 0
  from macformer_jax.training import resume_file  # pylint: disable=g-import-not-at-top

  return resume_file.restore(state_file, workdir)


def _read(path: str, default=None):
  if not os.path.exists(path):
    return default
  with open(path) as f:
    return json.load(f)


def collect(
  attention: str, workdir: str, out_path: str, session: dict | None = None
) -> dict:
  """Writes the progress JSON of one attention's run and returns it; keeps
  the sessions of an earlier JSON at `out_path` and appends `session` (one
  from step 0 after earlier ones, a restart, moves those to
  `earlier_runs`)."""
  progress = _read(out_path, {})
  if (
    session is not None
    and session.get("from_step") == 0
    and progress.get("sessions")
  ):
    progress.setdefault("earlier_runs", []).append(
      {
        "note": "restarted from step 0 (no resume file)",
        "steps_done": progress.get("steps_done"),
        "sessions": progress.pop("sessions"),
      }
    )
  config = _read(os.path.join(workdir, "config.json"), {})
  eval_curve, train_curve, speeds = [], [], []
  metrics = os.path.join(workdir, "metrics.jsonl")
  with open(metrics if os.path.exists(metrics) else os.devnull) as f:
    for line in f:
      try:
        row = json.loads(line)
      except ValueError:
        continue  # a line cut short by the budget
      if row.get("split") == "eval":
        eval_curve.append([row["step"], row["accuracy"]])
      elif row.get("split") == "train":
        train_curve.append([row["step"], row.get("loss"), row.get("accuracy")])
        speeds += [row["steps_per_sec"]] if "steps_per_sec" in row else []
  results = _read(os.path.join(workdir, "results.json"))
  checkpoint, data = _latest_checkpoint(workdir), config.get("data", {})
  progress.update(
    {
      "task": "listops",
      "attention": attention,
      "preset": "macformer",
      "data": "generated (LRA generator, seed 0)",
      "max_len": data.get("max_len"),
      "tokenizer": data.get("options", {}).get("tokenizer"),
      "preset_steps": PRESET_STEPS,
      "num_train_steps": config.get("train", {}).get(
        "num_train_steps", PRESET_STEPS
      ),
      "steps_done": max([s for s, *_ in train_curve] + [checkpoint or 0]),
      "checkpoint_step": checkpoint,
      "finished": results is not None,
      "eval_curve": eval_curve,
      "train_curve": train_curve,
      "median_train_steps_per_sec": (
        statistics.median(speeds) if speeds else None
      ),
      "resume": f"python -m benchmarks.full_length run --attentions "
      f"{attention}",
    }
  )
  progress.update(
    {
      k: results[k]
      for k in (
        "test_accuracy",
        "test_accuracy_best_eval",
        "best_eval_step",
        "best_eval_accuracy",
        "majority_class_accuracy",
        "num_params",
      )
      if k in (results or {})
    }
  )
  if session is not None:
    progress.setdefault("sessions", []).append(session)
  os.makedirs(os.path.dirname(out_path) or ".", exist_ok=True)
  with open(out_path, "w") as f:
    json.dump(progress, f, indent=1)
  return progress


def _run(
  attention: str,
  workdir: str,
  data_dir: str,
  carry,
  state_file,
  args,
  device: str,
) -> dict | None:
  """Restores, trains for the budget and saves one attention's run; the
  session record (None if the run had finished), 'failed' in it if so."""
  restored = restore_carry(carry, state_file, workdir)
  if restored:
    print(
      f"{attention}: resuming from {state_file} at step {restored}", flush=True
    )
  session = None
  if os.path.exists(os.path.join(workdir, "results.json")):
    print(f"{attention}: finished earlier", flush=True)
  else:
    os.makedirs(workdir, exist_ok=True)
    cmd = run_command(attention, workdir, data_dir, args)
    cmd = (["nice", "-n", str(args.nice)] if args.nice else []) + cmd
    start_step = _latest_checkpoint(workdir) or 0
    outcome = run_bounded(
      cmd, os.path.join(workdir, "log.txt"), args.budget_s, args.grace_s
    )
    session = {
      "date": _now(),
      "device": device,
      "machine": platform.machine(),
      "cpus": os.cpu_count(),
      "budget_s": args.budget_s,
      "from_step": start_step,
      **outcome,
    }
  if os.path.isdir(workdir):
    size = save_carry(workdir, carry, state_file)
    if session is not None:
      session["state_file_bytes"] = size
  return session


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument(
    "command",
    choices=("run", "collect", "data"),
    help="run: train (resuming) and write the progress "
    "JSON; collect: the JSON only; data: generate only",
  )
  parser.add_argument("--attentions", default=",".join(ATTENTIONS))
  parser.add_argument(
    "--workdir", default=os.path.join(common.REPO, "runs", "full_length")
  )
  parser.add_argument(
    "--out", default=os.path.join(common.REPO, "docs", "results")
  )
  parser.add_argument(
    "--prefix",
    default="full_length_listops_",
    help="progress files are <out>/<prefix><attention>.json",
  )
  parser.add_argument(
    "--carry",
    default=None,
    help="where each run's text "
    "files go for the next checkout (default "
    "<out>/<prefix>logs; 'none': nowhere)",
  )
  parser.add_argument(
    "--state_dir",
    default=os.path.join(common.REPO, "results", "state"),
    help="where each unfinished run's resume file "
    "<prefix><attention>.msgpack.xz goes ('none': none)",
  )
  parser.add_argument(
    "--budget_s",
    type=float,
    default=3600.0,
    help="wall-clock seconds per attention and call",
  )
  parser.add_argument(
    "--grace_s",
    type=float,
    default=600.0,
    help="seconds after the budget to checkpoint the step "
    "in flight before SIGKILL",
  )
  parser.add_argument(
    "--steps",
    type=int,
    default=0,
    help="num_train_steps (0: the preset's 10000)",
  )
  parser.add_argument(
    "--checkpoint_every",
    type=int,
    default=100,
    help="steps between checkpoints (the preset: 500)",
  )
  parser.add_argument(
    "--nice",
    type=int,
    default=0,
    help="run the trainer under `nice -n N` (0: not)",
  )
  parser.add_argument(
    "--data_sizes",
    default="",
    help="override generated "
    "split sizes/lengths, e.g. num_train=64,max_length=60",
  )
  parser.add_argument(
    "--flag",
    action="append",
    default=[],
    help="extra run_lra.py flag (repeatable)",
  )
  args = parser.parse_args(argv)
  data_dir = os.path.join(args.workdir, "data")
  sizes = {}
  for key, _, value in (
    item.partition("=") for item in filter(None, args.data_sizes.split(","))
  ):
    if key not in DATA:
      parser.error(
        f"--data_sizes: unknown key {key!r}; known: {', '.join(DATA)}"
      )
    sizes[key] = int(value)
  if args.command in ("run", "data"):
    os.makedirs(args.workdir, exist_ok=True)
    seconds = ensure_data(data_dir, sizes)
    if seconds:
      print(f"generated ListOps in {data_dir} ({seconds:.0f} s)", flush=True)
  if args.command == "data":
    return 0
  device = common.machine()["device"] if args.command == "run" else None
  carry_root = args.carry or os.path.join(args.out, f"{args.prefix}logs")
  failed = []
  for attention in filter(None, args.attentions.split(",")):
    workdir = os.path.join(args.workdir, attention)
    carry = (
      None if carry_root == "none" else os.path.join(carry_root, attention)
    )
    state_file = (
      None
      if args.state_dir == "none"
      else os.path.join(args.state_dir, f"{args.prefix}{attention}.msgpack.xz")
    )
    session = (
      _run(attention, workdir, data_dir, carry, state_file, args, device)
      if args.command == "run"
      else None
    )
    if session and session["rc"] != 0 and not session["cut_by_budget"]:
      failed.append(attention)
      print(
        f"{attention}: run_lra.py failed (rc={session['rc']}); see "
        f"{os.path.join(workdir, 'log.txt')}",
        flush=True,
      )
    if not os.path.isdir(workdir):
      print(f"{attention}: no run in {workdir}", flush=True)
      continue
    path = os.path.join(args.out, f"{args.prefix}{attention}.json")
    progress = collect(attention, workdir, path, session)
    print(
      f"{attention}: {progress['steps_done']}/"
      f"{progress['num_train_steps']} steps (checkpoint "
      f"{progress['checkpoint_step']}), last eval "
      f"{progress['eval_curve'][-1] if progress['eval_curve'] else '-'}"
      f"{', finished' if progress['finished'] else ''} -> {path}",
      flush=True,
    )
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
