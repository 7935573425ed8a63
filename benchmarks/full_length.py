r"""The Macformer authors' ListOps harness at full length, resumable.

Trains `preset=macformer` (2 layers, 2 x 32 heads, emb 64, MLP 128, 128
features, L = 2000, batch 32, AdamW one-cycle to 1e-4, 10000 steps; the
legacy bracket-dropping tokenisation that preset sets) on generated ListOps
(the LRA generator's distribution: 96k/2k/2k trees of 500-2000 tokens, seed
0) for each attention, each for `--budget_s` seconds of wall clock per call.
At the budget the trainer gets SIGTERM, checkpoints the step in flight and
exits (SIGKILL only after `--grace_s`), so no step is lost; the next call
resumes from that checkpoint (`run_lra.py` resumes from
`<workdir>/<attention>`), so the preset's step count can be reached over
several sessions or machines.

  python benchmarks/full_length.py run                      # 1 h per attention
  python benchmarks/full_length.py run --budget_s 600 --attentions softmax
  python benchmarks/full_length.py collect                  # progress JSON only
  python benchmarks/full_length.py data                     # generate only

After every run, the progress so far (steps done of the preset's, eval and
train curves, steps/s, test accuracy once finished, one entry per session)
goes to `<out>/full_length_listops_<attention>.json` (default
docs/results/), small enough to commit. The training runs under `--workdir`
(default runs/full_length, not committed). So that a new checkout (another
session, another machine) resumes where the last one stopped, each
unfinished run leaves one compressed resume file,
`--state_dir`/<prefix><attention>.msgpack.xz (default results/state/, outside
docs/; macformer_jax/training/resume_file.py: the latest TrainState with its
step = data position, the best-eval params and record; about 2.6 MB at
L = 2000, meant to be committed), and its text record, config.json,
metrics.jsonl and results.json, goes to `--carry` (default
`<out>/<prefix>logs/<attention>`). An empty workdir is restored from the two
before the next run; the run then continues bit-exactly (the trainer's
batches, dropout keys and redraws are functions of (seed, step)). When a run
finishes, its resume file is deleted; the text stays. The generated data are
not carried: `ensure_data` regenerates the same files from seed 0. A run
whose orbax checkpoints exist only elsewhere (an old checkout) resumes from
them once copied into `<workdir>/<attention>/checkpoints/`: the next `run`
exports its resume file.
benchmarks/lra_table.py puts these curves beside the published
Skyformer-family numbers, marked by scale.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

ATTENTIONS = ("softmax", "macformer_exp", "performer")
PRESET_STEPS = 10000  # preset=macformer (docs/METHOD.md §8.3)
# LRA's generator settings (configs/listops.py `data.offline`), seed 0.
DATA = {"num_train": 96000, "num_val": 2000, "num_test": 2000,
        "min_length": 500, "max_length": 2000, "max_depth": 10,
        "max_args": 10}


def ensure_data(data_dir: str, sizes: Dict[str, int]) -> float:
  """Generates the ListOps data once; returns the seconds it took."""
  if os.path.exists(os.path.join(data_dir, "DONE")):
    return 0.0
  from lra_tasks import listops  # pylint: disable=g-import-not-at-top
  start = time.time()
  args = dict(DATA, **sizes)
  tmp = data_dir + ".tmp"
  listops.generate(tmp, seed=0, **args)
  with open(os.path.join(tmp, "DONE"), "w") as f:
    json.dump(args, f)
  os.replace(tmp, data_dir)
  return time.time() - start


def run_command(attention: str, workdir: str, data_dir: str,
                args: argparse.Namespace) -> List[str]:
  """The run_lra.py command line of one attention."""
  cmd = [sys.executable, os.path.join(ROOT, "run_lra.py"),
         f"--config={os.path.join(ROOT, 'configs', 'listops.py')}:"
         f"{attention},preset=macformer",
         f"--workdir={workdir}",
         f"--config.data.data_dir={data_dir}"]
  if args.steps:
    cmd.append(f"--config.train.num_train_steps={args.steps}")
  if args.checkpoint_every:
    cmd.append(f"--config.train.checkpoint_every={args.checkpoint_every}")
  return cmd + list(args.flag)


def run_bounded(cmd: List[str], log_path: str, budget_s: float,
                grace_s: float = 600.0) -> dict:
  """Runs `cmd` for `budget_s` seconds, then SIGTERM, then SIGKILL.

  On SIGTERM run_lra.py finishes the step in flight (and an eval if one is
  due), checkpoints it and exits; SIGKILL follows only if that takes longer
  than `grace_s` seconds.
  """
  start = time.time()
  with open(log_path, "a") as log:
    log.write(f"\n=== {_now()} {' '.join(cmd)}\n")
    log.flush()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                            cwd=ROOT, start_new_session=True)
    try:
      rc = proc.wait(timeout=budget_s)
      cut = False
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
  return datetime.datetime.now(datetime.timezone.utc).strftime(
      "%Y-%m-%dT%H:%M:%SZ")


def _device() -> str:
  try:
    import jax  # pylint: disable=g-import-not-at-top
    d = jax.devices()[0]
    return f"{d.platform}:{d.device_kind}"
  except Exception as e:  # pylint: disable=broad-except
    return f"unknown ({type(e).__name__})"


def _latest_checkpoint(workdir: str) -> Optional[int]:
  steps = _steps(os.path.join(workdir, "checkpoints", "latest"))
  return steps[-1] if steps else None


CARRIED_FILES = ("config.json", "metrics.jsonl", "results.json")


def _steps(directory: str) -> List[int]:
  if not os.path.isdir(directory):
    return []
  return sorted(int(d) for d in os.listdir(directory) if d.isdigit())


def state_path(state_dir: str, prefix: str, attention: str) -> str:
  """The resume file of one attention's run."""
  return os.path.join(state_dir, f"{prefix}{attention}.msgpack.xz")


def save_carry(workdir: str, carry: Optional[str],
               state_file: Optional[str]) -> Optional[int]:
  """Saves what the next checkout needs to resume or report the run.

  The text files (config.json, metrics.jsonl, results.json) are copied to
  `carry`; the resume file is written from the latest checkpoint, or deleted
  once the run has finished (results.json). Returns the size in bytes of the
  resume file written, or None.
  """
  if carry:
    os.makedirs(carry, exist_ok=True)
    for name in CARRIED_FILES:
      if os.path.exists(os.path.join(workdir, name)):
        shutil.copy2(os.path.join(workdir, name), os.path.join(carry, name))
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


def restore_carry(carry: Optional[str], state_file: Optional[str],
                  workdir: str) -> Optional[int]:
  """Restores a carried run into `workdir` if that holds no checkpoint yet.

  With a resume file, its checkpoints and the carried text files go into the
  workdir; without one, only a finished run's text files (so that it is
  reported, not retrained). Returns the step restored (0 for a finished run
  restored from text), or None (nothing carried, or the workdir already has
  its own checkpoints or results, which are newer or equal).
  """
  if _latest_checkpoint(workdir) is not None or os.path.exists(
      os.path.join(workdir, "results.json")):
    return None
  has_state = bool(state_file) and os.path.exists(state_file)
  finished = bool(carry) and os.path.exists(
      os.path.join(carry, "results.json"))
  if not has_state and not finished:
    return None
  os.makedirs(workdir, exist_ok=True)
  if carry:
    for name in CARRIED_FILES:
      if os.path.exists(os.path.join(carry, name)):
        shutil.copy2(os.path.join(carry, name), os.path.join(workdir, name))
  if finished:
    return 0
  from macformer_jax.training import resume_file  # pylint: disable=g-import-not-at-top
  return resume_file.restore(state_file, workdir)


def collect(attention: str, workdir: str, out_path: str,
            session: Optional[dict] = None) -> dict:
  """Writes the progress JSON of one attention's run; returns it.

  Keeps the sessions of an earlier JSON at `out_path` and appends `session`.
  A session that started from step 0 after earlier sessions (no resume file:
  the run was restarted) moves those to `earlier_runs`.
  """
  progress = {}
  if os.path.exists(out_path):
    with open(out_path) as f:
      progress = json.load(f)
  if (session is not None and session.get("from_step") == 0
      and progress.get("sessions")):
    progress.setdefault("earlier_runs", []).append({
        "note": "restarted from step 0 (no resume file)",
        "steps_done": progress.get("steps_done"),
        "sessions": progress.pop("sessions")})
  config = {}
  if os.path.exists(os.path.join(workdir, "config.json")):
    with open(os.path.join(workdir, "config.json")) as f:
      config = json.load(f)
  eval_curve, train_curve, speeds = [], [], []
  metrics = os.path.join(workdir, "metrics.jsonl")
  if os.path.exists(metrics):
    with open(metrics) as f:
      for line in f:
        try:
          row = json.loads(line)
        except ValueError:
          continue  # a line cut short by the budget
        if row.get("split") == "eval":
          eval_curve.append([row["step"], row["accuracy"]])
        elif row.get("split") == "train":
          train_curve.append([row["step"], row.get("loss"),
                              row.get("accuracy")])
          if "steps_per_sec" in row:
            speeds.append(row["steps_per_sec"])
  results = None
  if os.path.exists(os.path.join(workdir, "results.json")):
    with open(os.path.join(workdir, "results.json")) as f:
      results = json.load(f)
  preset_steps = config.get("train", {}).get("num_train_steps", PRESET_STEPS)
  checkpoint = _latest_checkpoint(workdir)
  progress.update({
      "task": "listops", "attention": attention, "preset": "macformer",
      "data": "generated (LRA generator, seed 0)",
      "max_len": config.get("data", {}).get("max_len"),
      "tokenizer": config.get("data", {}).get("options", {}).get("tokenizer"),
      "preset_steps": PRESET_STEPS,
      "num_train_steps": preset_steps,
      "steps_done": max([s for s, *_ in train_curve] + [checkpoint or 0]),
      "checkpoint_step": checkpoint,
      "finished": results is not None,
      "eval_curve": eval_curve,
      "train_curve": train_curve,
      "median_train_steps_per_sec": (statistics.median(speeds) if speeds
                                     else None),
      "resume": (f"python benchmarks/full_length.py run --attentions "
                 f"{attention}"),
  })
  if results is not None:
    progress.update({k: results[k] for k in (
        "test_accuracy", "test_accuracy_best_eval", "best_eval_step",
        "best_eval_accuracy", "majority_class_accuracy", "num_params")
                     if k in results})
  if session is not None:
    progress.setdefault("sessions", []).append(session)
  os.makedirs(os.path.dirname(out_path) or ".", exist_ok=True)
  with open(out_path, "w") as f:
    json.dump(progress, f, indent=1)
  return progress


def out_path(out_dir: str, prefix: str, attention: str) -> str:
  return os.path.join(out_dir, f"{prefix}{attention}.json")


def main(argv: Optional[List[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("command", choices=("run", "collect", "data"),
                      help="run: train (resuming) and write the progress "
                      "JSON; collect: the JSON only; data: generate only")
  parser.add_argument("--attentions", default=",".join(ATTENTIONS))
  parser.add_argument("--workdir",
                      default=os.path.join(ROOT, "runs", "full_length"))
  parser.add_argument("--out", default=os.path.join(ROOT, "docs", "results"))
  parser.add_argument("--prefix", default="full_length_listops_",
                      help="progress files are <out>/<prefix><attention>.json")
  parser.add_argument("--carry", default=None,
                      help="where each run's config, metrics and results "
                      "(text) are copied for the next checkout (default "
                      "<out>/<prefix>logs; 'none': not copied)")
  parser.add_argument("--state_dir",
                      default=os.path.join(ROOT, "results", "state"),
                      help="where each unfinished run's resume file "
                      "<prefix><attention>.msgpack.xz goes ('none': none)")
  parser.add_argument("--budget_s", type=float, default=3600.0,
                      help="wall-clock seconds per attention and call")
  parser.add_argument("--grace_s", type=float, default=600.0,
                      help="after the budget, seconds the trainer has to "
                      "checkpoint the step in flight before SIGKILL")
  parser.add_argument("--steps", type=int, default=0,
                      help="num_train_steps (0: the preset's 10000)")
  parser.add_argument("--checkpoint_every", type=int, default=100,
                      help="steps between checkpoints (the preset: 500; "
                      "smaller loses less work when the budget cuts a run)")
  parser.add_argument("--nice", type=int, default=0,
                      help="run the trainer under `nice -n N` (0: not)")
  parser.add_argument("--data_sizes", default="",
                      help="override generated split sizes/lengths, e.g. "
                      "num_train=64,min_length=20,max_length=60 (tests)")
  parser.add_argument("--flag", action="append", default=[],
                      help="extra run_lra.py flag (repeatable)")
  args = parser.parse_args(argv)

  attentions = [a for a in args.attentions.split(",") if a]
  data_dir = os.path.join(args.workdir, "data")
  sizes = {}
  for item in filter(None, args.data_sizes.split(",")):
    key, _, value = item.partition("=")
    if key not in DATA:
      parser.error(f"--data_sizes: unknown key {key!r}; known: "
                   f"{', '.join(DATA)}")
    sizes[key] = int(value)
  failed = []
  if args.command in ("run", "data"):
    os.makedirs(args.workdir, exist_ok=True)
    seconds = ensure_data(data_dir, sizes)
    if seconds:
      print(f"generated ListOps in {data_dir} ({seconds:.0f} s)", flush=True)
  if args.command == "data":
    return 0
  device = _device() if args.command == "run" else None
  carry_root = args.carry or os.path.join(args.out, f"{args.prefix}logs")
  for attention in attentions:
    workdir = os.path.join(args.workdir, attention)
    carry = (None if carry_root == "none"
             else os.path.join(carry_root, attention))
    state_file = (None if args.state_dir == "none" else
                  state_path(args.state_dir, args.prefix, attention))
    path = out_path(args.out, args.prefix, attention)
    session = None
    if args.command == "run":
      restored = restore_carry(carry, state_file, workdir)
      if restored:
        print(f"{attention}: resuming from {state_file} at step {restored}",
              flush=True)
      if os.path.exists(os.path.join(workdir, "results.json")):
        print(f"{attention}: finished earlier", flush=True)
      else:
        os.makedirs(workdir, exist_ok=True)
        cmd = run_command(attention, workdir, data_dir, args)
        if args.nice:
          cmd = ["nice", "-n", str(args.nice)] + cmd
        start_step = _latest_checkpoint(workdir) or 0
        outcome = run_bounded(cmd, os.path.join(workdir, "log.txt"),
                              args.budget_s, args.grace_s)
        session = {"date": _now(), "device": device,
                   "machine": platform.machine(),
                   "cpus": os.cpu_count(), "budget_s": args.budget_s,
                   "from_step": start_step, **outcome}
        if outcome["rc"] != 0 and not outcome["cut_by_budget"]:
          failed.append(attention)
          print(f"{attention}: run_lra.py failed (rc={outcome['rc']}); see "
                f"{os.path.join(workdir, 'log.txt')}", flush=True)
    if not os.path.isdir(workdir):
      print(f"{attention}: no run in {workdir}", flush=True)
      continue
    if args.command == "run":
      size = save_carry(workdir, carry, state_file)
      if session is not None:
        session["state_file_bytes"] = size
    progress = collect(attention, workdir, path, session)
    print(f"{attention}: {progress['steps_done']}/"
          f"{progress['num_train_steps']} steps (checkpoint "
          f"{progress['checkpoint_step']}), last eval "
          f"{progress['eval_curve'][-1] if progress['eval_curve'] else '-'}"
          f"{', finished' if progress['finished'] else ''} -> {path}",
          flush=True)
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
