r"""Training-step speed of attention variants, and how far from the limit.

Times the real `Engine.train` step (forward, backward, optimizer update) of
the model a config builds, on random tokens (no data needed), per
attention, and prints and writes JSON (docs/train_step_speed.json):

  python benchmarks/train_step_speed.py --preset=macformer --max_len=2000 \
    --batch_size=32 \
    --attentions=macformer_exp,macformer_exp_tuned,performer,linear,softmax

Per attention: XLA's flops and bytes accessed per step
(`compiled.cost_analysis()`), compile time, the first execution, s/step and
steps/s (median of `--steps` >= 5 steps after it), achieved GFLOP/s and its
share of the throughput of a float32 2048^3 matmul timed in the same
process, and peak memory (XLA's buffer assignment and the process's peak
RSS). Each attention runs in its own process.

`--profile=DIR` writes a `jax.profiler` trace of one step per attention
under DIR and prints the ten most expensive XLA ops (fusions) of that step,
each with the model op it comes from (HLO `op_name` metadata), plus the time
per model part; the JSON keeps them.

Before/after: `--baseline=PATH` (another checkout of this repository, e.g.
`git worktree add --detach /tmp/old <commit>`) times the same step with
that checkout's library too, interleaved: each of `--rounds` rounds runs
the baseline and this checkout back to back, one process each, alternating
which goes first, and the ratio is taken within a round, so a machine whose
load drifts still compares like with like. The script itself (this file)
does the timing for both; only the imported library differs.

`--first_step` also measures what a new run pays before its first step:
two fresh processes in a row with the library's persistent compilation
cache (`training.compilation_cache`) in one temporary directory, so the
first compiles and the second reads the cache; the baseline (without the
cache) compiles both times.
"""

import collections
import glob
import gzip
import importlib
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_TASK = flags.DEFINE_string("task", "listops", "LRA task config to use.")
_PRESET = flags.DEFINE_enum("preset", "macformer", ["lra", "macformer"],
                            "Size preset.")
_ATTENTIONS = flags.DEFINE_list(
    "attentions", ["macformer_exp", "macformer_exp_tuned", "performer",
                   "linear", "softmax"],
    "Attention variants (configs/common.py).")
_MAX_LEN = flags.DEFINE_integer("max_len", 2000, "Sequence length L.")
_BATCH = flags.DEFINE_integer("batch_size", 32,
                              "Global batch; 0 = the config's.")
_STEPS = flags.DEFINE_integer("steps", 5,
                              "Timed steps after the first (median).")
_DEVICES = flags.DEFINE_integer("num_devices", 1,
                                "train.num_devices (0 = all local devices).")
_PARALLELISM = flags.DEFINE_enum("parallelism", "sharding",
                                 ["sharding", "pmap"], "train.parallelism.")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"],
                           "model.dtype.")
_PROFILE = flags.DEFINE_string(
    "profile", "", "Write a jax.profiler trace of one step per attention "
    "under this directory and print its top-10 XLA ops.")
_BASELINE = flags.DEFINE_string(
    "baseline", "", "Another checkout of the repository: time its library "
    "too, interleaved with this one (before/after).")
_ROUNDS = flags.DEFINE_integer("rounds", 2,
                               "Interleaved rounds with --baseline.")
_FIRST_STEP = flags.DEFINE_bool(
    "first_step", False, "Also time the first step of two fresh processes "
    "sharing a persistent compilation cache.")
_OUTPUT = flags.DEFINE_string(
    "output", "docs/train_step_speed.json", "JSON output path.")
# Internal: the worker process that times one attention with one library.
_CODE_DIR = flags.DEFINE_string("code_dir", "", "Import the library from "
                                "this checkout (worker processes).")
_WORKER = flags.DEFINE_string("worker", "", "Worker mode: the attention.")
_WORKER_OUT = flags.DEFINE_string("worker_out", "", "Worker JSON output.")
_WORKER_FIRST = flags.DEFINE_string(
    "worker_first_step", "", "Worker mode: time only the first step with "
    "the persistent cache in this directory.")

_MATMUL_N = 2048
_TOP_OPS = 10
# Model parts for the per-part profile, matched in this order against the
# HLO op_name of each op ('bwd' when it is under a transpose(jvp(...))).
_PARTS = ("Dropout", "bernoulli", "attention/attention", "attention/query",
          "attention/key", "attention/value", "attention/qkv",
          "attention/out", "attention_norm", "mlp_norm", "encoder_norm",
          "mlp/hidden", "mlp/output", "pos_embed", "embed", "head", "adam",
          "clip")


def _import_library(code_dir: str):
  """(jax, numpy, lra_tasks, encoder, optim, training) from `code_dir`."""
  sys.path.insert(0, code_dir)
  # pylint: disable=g-import-not-at-top
  import jax
  import numpy as np
  modules = [importlib.import_module(name) for name in (
      "lra_tasks", "macformer_jax.encoder", "macformer_jax.optim",
      "macformer_jax.training")]
  for module in modules[1:]:
    if not os.path.abspath(module.__file__).startswith(
        os.path.abspath(code_dir) + os.sep):
      raise RuntimeError(f"{module.__name__} came from {module.__file__}, "
                         f"not from {code_dir}")
  return (jax, np, *modules)


def _setup(variant: str, code_dir: str):
  """The engine, state and one random batch of `variant`'s config."""
  jax, np, lra_tasks, encoder, optim, training = _import_library(code_dir)
  config = importlib.import_module(f"configs.{_TASK.value}").get_config(
      f"{variant},preset={_PRESET.value}")
  config.data.max_len = _MAX_LEN.value
  config.model.dtype = _DTYPE.value
  if _BATCH.value:
    config.data.batch_size = _BATCH.value
  spec = lra_tasks.get_task(config.task).spec
  model = encoder.build_model(config, spec)
  tx, lr_fn = optim.create_optimizer(config.optimizer,
                                     config.train.num_train_steps)
  engine = training.Engine(_PARALLELISM.value, _DEVICES.value,
                           config.data.batch_size, lr_fn, spec.dual_input)
  state = training.create_train_state(config, model, spec.dual_input, tx,
                                      training.named_keys(config.seed),
                                      sharding=engine.replicated)
  rng = np.random.default_rng(0)
  shape = (config.data.batch_size, config.data.max_len)
  batch = {"inputs": rng.integers(1, spec.vocab_size, shape, np.int32),
           "targets": rng.integers(0, spec.num_classes, shape[:1], np.int32),
           "weights": np.ones(shape[:1], np.float32)}
  if spec.dual_input:
    batch["inputs2"] = rng.integers(1, spec.vocab_size, shape, np.int32)
  return jax, training, config, engine, state, engine.put_batch(batch)


def _matmul_gflops(jax) -> float:
  """Median float32 throughput of an N^3 matmul in this process."""
  a = jax.numpy.ones((_MATMUL_N, _MATMUL_N), jax.numpy.float32)
  matmul = jax.jit(lambda a: a @ a)
  jax.block_until_ready(matmul(a))
  times = []
  for _ in range(5):
    start = time.perf_counter()
    jax.block_until_ready(matmul(a))
    times.append(time.perf_counter() - start)
  return 2 * _MATMUL_N**3 / statistics.median(times) / 1e9


def _hlo_op_names(hlo_text: str) -> dict:
  """HLO instruction name -> the op_name metadata (the model op it is)."""
  names = {}
  for m in re.finditer(r"^\s*(?:ROOT )?%?([\w.\-]+) = ([^\n]*)$", hlo_text,
                       re.MULTILINE):
    meta = re.search(r'op_name="([^"]*)"', m.group(2))
    if meta:
      names.setdefault(m.group(1), meta.group(1))
  return names


def _part(op_name: str) -> str:
  """'fwd part' or 'bwd part' of an op_name (see _PARTS)."""
  direction = "bwd" if "transpose(" in op_name else "fwd"
  for part in _PARTS:
    if part in op_name:
      return f"{direction} {part}"
  return f"{direction} other"


def _profile_step(jax, step, state, batch, hlo_text: str, trace_dir: str
                  ) -> dict:
  """Traces one step; the top ops and the time per model part."""
  jax.profiler.start_trace(trace_dir, create_perfetto_trace=True)
  state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  jax.profiler.stop_trace()
  files = glob.glob(os.path.join(trace_dir, "**", "*.json.gz"),
                    recursive=True)
  with gzip.open(max(files, key=os.path.getmtime)) as f:
    trace = json.load(f)
  events = trace["traceEvents"] if isinstance(trace, dict) else trace
  names = _hlo_op_names(hlo_text)
  op_us = collections.Counter()
  for e in events:  # XLA ops are the events named after HLO instructions
    if e.get("ph") == "X" and e.get("name") in names:
      op_us[e["name"]] += e.get("dur", 0)
  total = sum(op_us.values())
  parts = collections.Counter()
  for name, us in op_us.items():
    parts[_part(names[name])] += us
  top = [{"op": name, "ms": us / 1e3, "share": us / max(total, 1),
          "op_name": names[name].replace("jit(train_step)/", "")}
         for name, us in op_us.most_common(_TOP_OPS)]
  return {"trace_dir": trace_dir, "ops_ms": total / 1e3, "top_ops": top,
          "parts_ms": {k: v / 1e3 for k, v in parts.most_common()}}


def time_attention(variant: str, code_dir: str) -> dict:
  """Compiles and times `variant`'s train step with `code_dir`'s library."""
  jax, _, config, engine, state, batch = _setup(variant, code_dir)
  jitted = engine._train  # pylint: disable=protected-access
  start = time.perf_counter()
  compiled = jitted.lower(state, batch).compile()
  compile_s = time.perf_counter() - start
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  memory = compiled.memory_analysis()
  start = time.perf_counter()
  state, metrics = compiled(state, batch)
  jax.block_until_ready(metrics)
  first_s = time.perf_counter() - start
  times = []
  for _ in range(_STEPS.value):
    start = time.perf_counter()
    state, metrics = compiled(state, batch)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - start)
  s_per_step = statistics.median(times)
  matmul = _matmul_gflops(jax)
  flops = float(cost.get("flops", 0.0))
  row = {
      "attention": variant,
      "core": config.attention.name,
      "code_dir": code_dir,
      "num_params": int(sum(x.size for x in jax.tree.leaves(state.params))),
      "batch_size": config.data.batch_size,
      "max_len": config.data.max_len,
      "compile_s": compile_s,
      "first_execution_s": first_s,
      "steps": _STEPS.value,
      "step_times_s": times,
      "s_per_step": s_per_step,
      "steps_per_sec": 1.0 / s_per_step,
      "gflop_per_step": flops / 1e9,
      "gb_accessed_per_step": float(cost.get("bytes accessed", 0.0)) / 1e9,
      "gflops": flops / 1e9 / s_per_step,
      "matmul_gflops": matmul,
      "matmul_share": flops / 1e9 / s_per_step / matmul,
      "xla_temp_gib": memory.temp_size_in_bytes / 2**30 if memory else None,
      "peak_rss_gib": resource.getrusage(
          resource.RUSAGE_SELF).ru_maxrss / 2**20,
      "loss_finite": bool(jax.numpy.isfinite(metrics["loss"])),
  }
  if _PROFILE.value:
    tag = "baseline" if code_dir != _REPO else "this"
    trace_dir = os.path.join(os.path.abspath(_PROFILE.value),
                             f"{variant}_{tag}")
    row["profile"] = _profile_step(jax, compiled, state, batch,
                                   compiled.as_text(), trace_dir)
  return row


def first_step(variant: str, code_dir: str, cache_dir: str) -> dict:
  """Seconds from a new Engine to the end of its first step (compile
  included), with the library's persistent cache in `cache_dir` if it has
  one (`training.compilation_cache.enable`)."""
  start = time.perf_counter()
  jax, training, _, engine, state, batch = _setup(variant, code_dir)
  cache = getattr(training, "compilation_cache", None)
  if cache is not None:
    cache.enable(cache_dir)
  setup_s = time.perf_counter() - start
  start = time.perf_counter()
  _, metrics = engine.train(state, batch)
  jax.block_until_ready(metrics)
  return {"setup_s": setup_s, "first_step_s": time.perf_counter() - start,
          "cache": cache is not None}


def _worker(code_dir: str, variant: str, **extra) -> dict:
  """Runs this script in a fresh process on one attention and library."""
  with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "row.json")
    keep = ("--task", "--preset", "--max_len", "--batch_size", "--steps",
            "--num_devices", "--parallelism", "--dtype", "--profile")
    argv = [a for a in sys.argv[1:] if a.startswith(keep)]
    argv += [f"--{k}={v}" for k, v in extra.items()]
    done = subprocess.run([sys.executable, os.path.abspath(__file__), *argv,
                           f"--code_dir={code_dir}", f"--worker={variant}",
                           f"--worker_out={out}"], check=False,
                          capture_output=True, text=True)
    if done.returncode:
      raise RuntimeError(f"worker {variant} ({code_dir}) failed with exit "
                         f"status {done.returncode}:\n{done.stderr[-3000:]}")
    with open(out) as f:
      return json.load(f)


def _print_row(label: str, row: dict) -> None:
  print(f"{row['attention']:>20} {label:>8}: {row['s_per_step']:7.3f} s/step"
        f" {row['steps_per_sec']:6.3f} steps/s {row['gflops']:6.1f} GFLOP/s"
        f" = {100 * row['matmul_share']:4.1f}% of matmul "
        f"({row['matmul_gflops']:.0f}); {row['gflop_per_step']:.1f} GFLOP "
        f"{row['gb_accessed_per_step']:.1f} GB/step; compile "
        f"{row['compile_s']:.1f} s; peak RSS {row['peak_rss_gib']:.1f} GiB",
        flush=True)
  for op in row.get("profile", {}).get("top_ops", []):
    print(f"{'':>24}{op['ms']:8.1f} ms {100 * op['share']:4.1f}% "
          f"{op['op']:<32} {op['op_name'][-90:]}")


def _median_row(rows: list) -> dict:
  """The row of median s/step (its profile included)."""
  rows = sorted(rows, key=lambda r: r["s_per_step"])
  return rows[(len(rows) - 1) // 2]


def _compare(variant: str) -> dict:
  """Interleaved rounds of baseline and this checkout for one attention."""
  old_rows, new_rows, ratios = [], [], []
  for r in range(_ROUNDS.value):
    order = [("baseline", _BASELINE.value), ("this", _REPO)]
    if r % 2:
      order.reverse()
    got = {label: _worker(path, variant) for label, path in order}
    old_rows.append(got["baseline"])
    new_rows.append(got["this"])
    ratios.append(got["baseline"]["s_per_step"] / got["this"]["s_per_step"])
    print(f"{variant:>20}   round {r}: baseline "
          f"{got['baseline']['s_per_step']:.3f} s/step, this "
          f"{got['this']['s_per_step']:.3f} s/step: {ratios[-1]:.2f}x",
          flush=True)
  old, new = _median_row(old_rows), _median_row(new_rows)
  _print_row("baseline", old)
  _print_row("this", new)
  return {"attention": variant, "speedup": statistics.median(ratios),
          "round_speedups": ratios, "baseline": old, "this": new,
          "baseline_rounds": [r["s_per_step"] for r in old_rows],
          "this_rounds": [r["s_per_step"] for r in new_rows]}


def _first_steps(variant: str) -> dict:
  """Two fresh processes sharing one cache directory, per checkout."""
  result = {}
  checkouts = [("this", _REPO)]
  if _BASELINE.value:
    checkouts.insert(0, ("baseline", _BASELINE.value))
  for label, path in checkouts:
    with tempfile.TemporaryDirectory() as cache_dir:
      runs = [_worker(path, variant, worker_first_step=cache_dir)
              for _ in range(2)]
    result[label] = {"cold_s": runs[0]["first_step_s"],
                     "warm_s": runs[1]["first_step_s"],
                     "cache": runs[1]["cache"]}
    print(f"{variant:>20} {label:>8}: first step {runs[0]['first_step_s']:.1f}"
          f" s in a new process, {runs[1]['first_step_s']:.1f} s in the next "
          f"one ({'with' if runs[1]['cache'] else 'no'} persistent cache)",
          flush=True)
  return result


def _host() -> dict:
  load = os.getloadavg() if hasattr(os, "getloadavg") else None
  return {"cpus": os.cpu_count(), "machine": platform.machine(),
          "processor": platform.processor(), "load_average_at_end": load}


def main(argv):
  del argv
  if _WORKER.value:  # one attention, one library, one process
    code_dir = _CODE_DIR.value or _REPO
    if _WORKER_FIRST.value:
      row = first_step(_WORKER.value, code_dir, _WORKER_FIRST.value)
    else:
      row = time_attention(_WORKER.value, code_dir)
    with open(_WORKER_OUT.value, "w") as f:
      json.dump(row, f)
    return
  results, first_steps = [], {}
  for variant in _ATTENTIONS.value:
    if _BASELINE.value:
      results.append(_compare(variant))
    else:
      row = _worker(_REPO, variant)
      _print_row("this", row)
      results.append(row)
    if _FIRST_STEP.value:
      first_steps[variant] = _first_steps(variant)
  jax = _import_library(_REPO)[0]
  device = jax.devices()[0]
  git = subprocess.run(["git", "-C", _REPO, "rev-parse", "--short", "HEAD"],
                       capture_output=True, text=True, check=False)
  report = {
      "benchmark": "train_step_speed",
      "task": _TASK.value, "preset": _PRESET.value, "dtype": _DTYPE.value,
      "device": f"{device.platform}: {device.device_kind}",
      "num_devices": _DEVICES.value or jax.local_device_count(),
      "parallelism": _PARALLELISM.value,
      "host": _host(),
      "jax": jax.__version__,
      "commit": git.stdout.strip(),
      "baseline": _BASELINE.value or None,
      "rounds": _ROUNDS.value if _BASELINE.value else 1,
      "steps": _STEPS.value,
      "command": "python benchmarks/train_step_speed.py " + " ".join(
          a for a in sys.argv[1:] if not a.startswith("--output")),
      "results": results,
  }
  if first_steps:
    report["first_step"] = first_steps
  os.makedirs(os.path.dirname(os.path.abspath(_OUTPUT.value)), exist_ok=True)
  with open(_OUTPUT.value, "w") as f:
    json.dump(report, f, indent=2)
  print(f"wrote {_OUTPUT.value}")


if __name__ == "__main__":
  app.run(main)
