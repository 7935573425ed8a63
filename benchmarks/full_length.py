r"""The Macformer authors' ListOps harness at full length, resumable.

Trains `preset=macformer` (docs/METHOD.md §8.3) on generated ListOps (LRA's
generator, seed 0) per attention for `--budget_s` seconds per call, then
SIGTERM (the trainer checkpoints the step in flight); the next call resumes.
Writes the progress to `<out>/<prefix><attention>.json`, the run's text files
to `<out>/<prefix>logs/<attention>/` and, until it finishes, its resume file
(macformer_jax/training/resume_file.py, ~2.6 MB, committed) to
`<state_dir>/<prefix><attention>.msgpack.xz`: from both, an empty workdir
continues bit-exactly. `--nice N`: the trainer under `nice -n N`;
`--data_sizes num_train=64,...`: smaller ListOps; `--flag`: a run_lra.py flag.

  python -m benchmarks.full_length run --budget_s 600 --attentions softmax
  python -m benchmarks.full_length collect                  # progress JSON
  python -m benchmarks.full_length data                     # generate only
"""

import functools
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
from lra_tasks import listops

ATTENTIONS = ("softmax", "macformer_exp", "performer")
PRESET_STEPS = 10000  # preset=macformer (docs/METHOD.md §8.3)
GRACE_S = 600.0  # after the budget, to checkpoint the step in flight
# LRA's generator settings (configs/listops.py `data.offline`), seed 0.
DATA = dict(num_train=96000, num_val=2000, num_test=2000, min_length=500)
DATA |= dict(max_length=2000, max_depth=10, max_args=10)
CARRIED_FILES = ("config.json", "metrics.jsonl", "results.json")
RESULTS = ("test_accuracy", "test_accuracy_best_eval", "best_eval_step")
RESULTS += ("best_eval_accuracy", "majority_class_accuracy", "num_params")


def _resume_file():  # jax and orbax only to export or restore a checkpoint
  from macformer_jax.training import resume_file

  return resume_file


def _latest_checkpoint(workdir: str) -> int | None:
  latest = os.path.join(workdir, "checkpoints", "latest")
  names = os.listdir(latest) if os.path.isdir(latest) else []
  return max((int(d) for d in names if d.isdigit()), default=None)


def ensure_data(data_dir: str, sizes: dict[str, int]) -> float:
  """Generates the ListOps data once; returns the seconds it took."""
  if os.path.exists(os.path.join(data_dir, "DONE")):
    return 0.0
  start, args, tmp = time.time(), dict(DATA, **sizes), data_dir + ".tmp"
  listops.generate(tmp, seed=0, **args)
  with open(os.path.join(tmp, "DONE"), "w") as f:
    json.dump(args, f)
  os.replace(tmp, data_dir)
  return time.time() - start


def run_command(attention, workdir, data_dir, args) -> list[str]:
  """The run_lra.py command line of one attention (under `nice`)."""
  config = os.path.join(common.REPO, "configs", "listops.py")
  cmd = [sys.executable, os.path.join(common.REPO, "run_lra.py")]
  cmd += [f"--config={config}:{attention},preset=macformer"]
  cmd += [f"--workdir={workdir}", f"--config.data.data_dir={data_dir}"]
  if args.steps:
    cmd.append(f"--config.train.num_train_steps={args.steps}")
  if args.checkpoint_every:
    cmd.append(f"--config.train.checkpoint_every={args.checkpoint_every}")
  return (["nice", "-n", str(args.nice)] if args.nice else []) + cmd + args.flag


def run_bounded(cmd, log_path: str, budget_s: float) -> dict:
  """Runs `cmd` for `budget_s` seconds, then SIGTERM (run_lra.py finishes
  and checkpoints the step in flight), then SIGKILL after GRACE_S."""
  start, cut = time.time(), False
  with open(log_path, "a") as log:
    print(f"\n=== {_now()} {' '.join(cmd)}", file=log, flush=True)
    opts = dict(stdout=log, stderr=subprocess.STDOUT, cwd=common.REPO)
    proc = subprocess.Popen(cmd, start_new_session=True, **opts)
    try:
      rc = proc.wait(timeout=budget_s)
    except subprocess.TimeoutExpired:
      cut = True
      os.killpg(proc.pid, signal.SIGTERM)
      try:
        rc = proc.wait(timeout=GRACE_S)
      except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        rc = proc.wait()
  return {"rc": rc, "cut_by_budget": cut, "wall_s": time.time() - start}


_now = lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _copy(src: str, dst: str) -> None:
  os.makedirs(dst, exist_ok=True)
  for name in CARRIED_FILES:
    if os.path.exists(os.path.join(src, name)):
      shutil.copy2(os.path.join(src, name), os.path.join(dst, name))


def save_carry(workdir: str, carry: str, state_file: str) -> int | None:
  """Copies the text files and exports the resume file (deleted once the
  run has results.json); its size in bytes, or None."""
  _copy(workdir, carry)
  if os.path.exists(os.path.join(workdir, "results.json")):
    if os.path.exists(state_file):
      os.remove(state_file)
    return None
  step = _resume_file().export(workdir, state_file)
  return None if step is None else os.path.getsize(state_file)


def restore_carry(carry: str, state_file: str, workdir: str) -> int | None:
  """Restores a carried run into an empty `workdir`: the step restored (0:
  a finished run's text files only, not retrained), or None."""
  has_results = lambda d: os.path.exists(os.path.join(d, "results.json"))
  if _latest_checkpoint(workdir) is not None or has_results(workdir):
    return None
  if not os.path.exists(state_file) and not has_results(carry):
    return None
  _copy(carry, workdir)
  if has_results(carry):
    return 0
  return _resume_file().restore(state_file, workdir)


def collect(attention, workdir, out_path, session=None) -> dict:
  """Writes and returns the progress JSON of a run, its sessions so far and
  `session` (from step 0 after others: a restart, moves those to
  `earlier_runs`)."""
  progress = common.load_json(out_path)[0] or {}
  if session and session["from_step"] == 0 and progress.get("sessions"):
    note = "restarted from step 0 (no resume file)"
    earlier = dict(note=note, steps_done=progress.get("steps_done"))
    earlier["sessions"] = progress.pop("sessions")
    progress.setdefault("earlier_runs", []).append(earlier)
  config = common.load_json(os.path.join(workdir, "config.json"))[0] or {}
  evals, trains, speeds = [], [], []
  path = os.path.join(workdir, "metrics.jsonl")
  with open(path if os.path.exists(path) else os.devnull) as f:
    for line in f:
      try:
        row = json.loads(line)
      except ValueError:
        continue  # a line cut short by the budget
      if row.get("split") == "eval":
        evals.append([row["step"], row["accuracy"]])
      elif row.get("split") == "train":
        trains.append([row["step"], row.get("loss"), row.get("accuracy")])
        speeds += [row["steps_per_sec"]] if "steps_per_sec" in row else []
  results = common.load_json(os.path.join(workdir, "results.json"))[0]
  checkpoint, data = _latest_checkpoint(workdir), config.get("data", {})
  steps = config.get("train", {}).get("num_train_steps", PRESET_STEPS)
  progress |= dict(task="listops", attention=attention, preset="macformer")
  progress |= dict(data="generated (LRA generator, seed 0)")
  progress["max_len"] = data.get("max_len")
  progress["tokenizer"] = data.get("options", {}).get("tokenizer")
  progress |= dict(preset_steps=PRESET_STEPS, num_train_steps=steps)
  progress["steps_done"] = max([s for s, *_ in trains] + [checkpoint or 0])
  progress |= dict(checkpoint_step=checkpoint, finished=results is not None)
  progress |= dict(eval_curve=evals, train_curve=trains)
  speed = statistics.median(speeds) if speeds else None
  progress["median_train_steps_per_sec"] = speed
  resume = f"python -m benchmarks.full_length run --attentions {attention}"
  progress["resume"] = resume
  progress |= {k: results[k] for k in RESULTS if k in (results or {})}
  if session is not None:
    progress.setdefault("sessions", []).append(session)
  common.write(out_path, json.dumps(progress, indent=1))
  return progress


def _run(attention, workdir, data_dir, carry, state_file, args, device):
  """Restores, trains and saves a run: its session (None: finished)."""
  restored = restore_carry(carry, state_file, workdir)
  if restored:
    print(f"{attention}: resuming from {state_file} at step {restored}")
    sys.stdout.flush()
  session = None
  if os.path.exists(os.path.join(workdir, "results.json")):
    print(f"{attention}: finished earlier", flush=True)
  else:
    os.makedirs(workdir, exist_ok=True)
    cmd = run_command(attention, workdir, data_dir, args)
    session = dict(date=_now(), device=device, machine=platform.machine())
    session |= dict(cpus=os.cpu_count(), budget_s=args.budget_s)
    session["from_step"] = _latest_checkpoint(workdir) or 0
    session |= run_bounded(cmd, os.path.join(workdir, "log.txt"), args.budget_s)
  if os.path.isdir(workdir):
    size = save_carry(workdir, carry, state_file)
    if session is not None:
      session["state_file_bytes"] = size
  return session


def _parse(argv):
  at = functools.partial(os.path.join, common.REPO)
  parser = common.flags(
    __doc__,
    **dict(attentions=",".join(ATTENTIONS), prefix="full_length_listops_"),
    **dict(workdir=at("runs", "full_length"), out=at("docs", "results")),
    **dict(state_dir=at("results", "state"), data_sizes=""),
    **dict(budget_s=3600.0, steps=0, checkpoint_every=100, nice=0),
  )
  parser.add_argument("command", choices=("run", "collect", "data"))
  parser.add_argument("--flag", action="append", default=[])
  args = parser.parse_args(argv)
  items = [i.partition("=") for i in filter(None, args.data_sizes.split(","))]
  args.sizes = {key: int(value) for key, _, value in items}
  if unknown := set(args.sizes) - set(DATA):
    parser.error(f"--data_sizes: {sorted(unknown)} not in {list(DATA)}")
  return args


def main(argv: list[str] | None = None) -> int:
  args = _parse(argv)
  data_dir = os.path.join(args.workdir, "data")
  if args.command in ("run", "data"):
    os.makedirs(args.workdir, exist_ok=True)
    seconds = ensure_data(data_dir, args.sizes)
    if seconds:
      print(f"generated ListOps in {data_dir} ({seconds:.0f} s)", flush=True)
  if args.command == "data":
    return 0
  device = common.machine()["device"] if args.command == "run" else None
  failed = []
  for attention in filter(None, args.attentions.split(",")):
    workdir = os.path.join(args.workdir, attention)
    carry = os.path.join(args.out, f"{args.prefix}logs", attention)
    state = os.path.join(args.state_dir, f"{args.prefix}{attention}.msgpack.xz")
    session = None
    if args.command == "run":
      session = _run(attention, workdir, data_dir, carry, state, args, device)
    if session and session["rc"] != 0 and not session["cut_by_budget"]:
      failed.append(attention)
      log = os.path.join(workdir, "log.txt")
      print(f"{attention}: run_lra.py failed (rc={session['rc']}); see {log}")
    if not os.path.isdir(workdir):
      print(f"{attention}: no run in {workdir}", flush=True)
      continue
    path = os.path.join(args.out, f"{args.prefix}{attention}.json")
    p = collect(attention, workdir, path, session)
    last = p["eval_curve"][-1] if p["eval_curve"] else "-"
    done = f"{p['steps_done']}/{p['num_train_steps']} steps, last eval {last}"
    end = ", finished" if p["finished"] else ""
    print(f"{attention}: {done}{end} -> {path}", flush=True)
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
