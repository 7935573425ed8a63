r"""Training-step speed per attention, and how far from the limit -> JSON.

Times the real `Engine.train` step (forward, backward, optimizer update) of
the model a config builds, on random tokens, each attention in its own
process: XLA's flops and bytes per step (`compiled.cost_analysis()`),
compile time, the first execution, s/step and steps/s (median of `--steps`
after it), GFLOP/s and its share of a float32 2048^3 matmul timed in the
same process, peak memory (XLA's temp buffers, the process's peak RSS).

  python -m benchmarks.train_step_speed --preset=macformer --max_len=2000 \
    --batch_size=32 \
    --attentions=macformer_exp,macformer_exp_tuned,performer,linear,softmax

`--profile=DIR`: a `jax.profiler` trace of one step per attention under
DIR, its ten most expensive XLA ops with the model op each comes from (HLO
`op_name`) and the time per model part. `--baseline=PATH` (another
checkout, e.g. `git worktree add --detach /tmp/old <commit>`): the same
step with that checkout's library too, `--rounds` interleaved rounds of one
process each, alternating which goes first; the speed-up is the median of
the ratios within a round. `--first_step`: two fresh processes sharing the
library's persistent compilation cache in one temporary directory (the
baseline, without one, compiles twice). `python -m benchmarks.make_report`
renders docs/train_step_speed.json.
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

from benchmarks import common

_TASK = flags.DEFINE_string("task", "listops", "LRA task config.")
_PRESET = flags.DEFINE_enum(
  "preset", "macformer", ["lra", "macformer"], "Size preset."
)
_ATTENTIONS = flags.DEFINE_list(
  "attentions",
  ["macformer_exp", "macformer_exp_tuned", "performer", "linear", "softmax"],
  "Attentions (configs/common.py).",
)
_MAX_LEN = flags.DEFINE_integer("max_len", 2000, "Sequence length L.")
_BATCH = flags.DEFINE_integer("batch_size", 32, "Global batch; 0: config's.")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed steps after the first.")
_DEVICES = flags.DEFINE_integer("num_devices", 1, "train.num_devices (0: all).")
_PARALLELISM = flags.DEFINE_enum(
  "parallelism", "sharding", ["sharding", "pmap"], "train.parallelism."
)
_DTYPE = flags.DEFINE_enum(
  "dtype", "float32", ["float32", "bfloat16"], "model.dtype."
)
_PROFILE = flags.DEFINE_string(
  "profile",
  "",
  "Trace one step per attention under this directory; print its top-10 ops.",
)
_BASELINE = flags.DEFINE_string(
  "baseline",
  "",
  "Another checkout: time its library too, interleaved (before/after).",
)
_ROUNDS = flags.DEFINE_integer("rounds", 2, "Interleaved rounds (--baseline).")
_FIRST_STEP = flags.DEFINE_bool(
  "first_step",
  False,
  "Also time the first step of two processes sharing a compilation cache.",
)
_OUTPUT = flags.DEFINE_string("output", "docs/train_step_speed.json", "JSON.")
# Internal: the worker process that times one attention with one library.
_CODE_DIR = flags.DEFINE_string("code_dir", "", "Library checkout (worker).")
_WORKER = flags.DEFINE_string("worker", "", "Worker mode: the attention.")
_WORKER_OUT = flags.DEFINE_string("worker_out", "", "Worker JSON output.")
_WORKER_FIRST = flags.DEFINE_string(
  "worker_first_step",
  "",
  "Worker mode: first step only, cache in this directory.",
)

_TOP_OPS = 10
# Model parts of the per-part profile, matched in this order against the
# HLO op_name of each op ('bwd' when it is under a transpose(jvp(...))).
_PARTS = (
  "Dropout",
  "bernoulli",
  "attention/attention",
  "attention/query",
  "attention/key",
  "attention/value",
  "attention/qkv",
  "attention/out",
  "attention_norm",
  "mlp_norm",
  "encoder_norm",
  "mlp/hidden",
  "mlp/output",
  "pos_embed",
  "embed",
  "head",
  "adam",
  "clip",
)


def _setup(variant: str, code_dir: str):
  """jax, training, config, engine, state and a random batch of `variant`,
  with the library of `code_dir` (put first on the path: a baseline)."""
  sys.path.insert(0, code_dir)
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  lra_tasks, encoder, optim, training = (
    importlib.import_module(n)
    for n in (
      "lra_tasks",
      "macformer_jax.encoder",
      "macformer_jax.optim",
      "macformer_jax.training",
    )
  )
  for module in (encoder, optim, training):
    if not os.path.abspath(module.__file__).startswith(
      os.path.abspath(code_dir) + os.sep
    ):
      raise RuntimeError(
        f"{module.__name__} came from {module.__file__}, not from {code_dir}"
      )
  config = importlib.import_module(f"configs.{_TASK.value}").get_config(
    f"{variant},preset={_PRESET.value}"
  )
  config.data.max_len, config.model.dtype = _MAX_LEN.value, _DTYPE.value
  config.data.batch_size = _BATCH.value or config.data.batch_size
  spec = lra_tasks.get_task(config.task).spec
  tx, lr_fn = optim.create_optimizer(
    config.optimizer, config.train.num_train_steps
  )
  engine = training.Engine(
    _PARALLELISM.value,
    _DEVICES.value,
    config.data.batch_size,
    lr_fn,
    spec.dual_input,
  )
  state = training.create_train_state(
    config,
    encoder.build_model(config, spec),
    spec.dual_input,
    tx,
    training.named_keys(config.seed),
    sharding=engine.replicated,
  )
  rng, shape = (
    np.random.default_rng(0),
    (config.data.batch_size, config.data.max_len),
  )
  batch = {
    "inputs": rng.integers(1, spec.vocab_size, shape, np.int32),
    "targets": rng.integers(0, spec.num_classes, shape[:1], np.int32),
    "weights": np.ones(shape[:1], np.float32),
  }
  if spec.dual_input:
    batch["inputs2"] = rng.integers(1, spec.vocab_size, shape, np.int32)
  return jax, training, config, engine, state, engine.put_batch(batch)


def _part(op_name: str) -> str:
  """'fwd <part>' or 'bwd <part>' of an op_name (see _PARTS)."""
  part = next((p for p in _PARTS if p in op_name), "other")
  return f"{'bwd' if 'transpose(' in op_name else 'fwd'} {part}"


def _profile_step(jax, step, state, batch, hlo_text: str, trace_dir: str):
  """Traces one step: the top ops and the time per model part."""
  jax.profiler.start_trace(trace_dir, create_perfetto_trace=True)
  jax.block_until_ready(step(state, batch)[1])
  jax.profiler.stop_trace()
  with gzip.open(
    max(
      glob.glob(os.path.join(trace_dir, "**", "*.json.gz"), recursive=True),
      key=os.path.getmtime,
    )
  ) as f:
    trace = json.load(f)
  names = {}  # HLO instruction -> op_name metadata (the model op it is)
  for m in re.finditer(
    r"^\s*(?:ROOT )?%?([\w.\-]+) = ([^\n]*)$", hlo_text, re.MULTILINE
  ):
    meta = re.search(r'op_name="([^"]*)"', m.group(2))
    if meta:
      names.setdefault(m.group(1), meta.group(1))
  op_us, parts = collections.Counter(), collections.Counter()
  for e in trace["traceEvents"] if isinstance(trace, dict) else trace:
    if e.get("ph") == "X" and e.get("name") in names:  # an XLA op
      op_us[e["name"]] += e.get("dur", 0)
  for name, us in op_us.items():
    parts[_part(names[name])] += us
  total = sum(op_us.values())
  return {
    "trace_dir": trace_dir,
    "ops_ms": total / 1e3,
    "top_ops": [
      {
        "op": name,
        "ms": us / 1e3,
        "share": us / max(total, 1),
        "op_name": names[name].replace("jit(train_step)/", ""),
      }
      for name, us in op_us.most_common(_TOP_OPS)
    ],
    "parts_ms": {k: v / 1e3 for k, v in parts.most_common()},
  }


def time_attention(variant: str, code_dir: str) -> dict:
  """Compiles and times `variant`'s train step with `code_dir`'s library."""
  jax, _, config, engine, state, batch = _setup(variant, code_dir)
  start = time.perf_counter()
  compiled = engine._train.lower(state, batch).compile()  # pylint: disable=protected-access
  compile_s = time.perf_counter() - start
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  memory = compiled.memory_analysis()
  step = lambda s: compiled(s, batch)
  start = time.perf_counter()
  state, metrics = jax.block_until_ready(step(state))
  first_s = time.perf_counter() - start
  times = []
  for _ in range(_STEPS.value):
    start = time.perf_counter()
    state, metrics = jax.block_until_ready(step(state))
    times.append(time.perf_counter() - start)
  s_per_step = statistics.median(times)
  matmul = common.matmul_gflops(reduce=statistics.median)
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
    "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    "loss_finite": bool(jax.numpy.isfinite(metrics["loss"])),
  }
  if _PROFILE.value:
    tag = "this" if code_dir == common.REPO else "baseline"
    row["profile"] = _profile_step(
      jax,
      compiled,
      state,
      batch,
      compiled.as_text(),
      os.path.join(os.path.abspath(_PROFILE.value), f"{variant}_{tag}"),
    )
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
  setup_s, start = time.perf_counter() - start, time.perf_counter()
  jax.block_until_ready(engine.train(state, batch)[1])
  return {
    "setup_s": setup_s,
    "first_step_s": time.perf_counter() - start,
    "cache": cache is not None,
  }


def _worker(code_dir: str, variant: str, **extra) -> dict:
  """Runs this module in a fresh process on one attention and library."""
  keep = (
    "--task",
    "--preset",
    "--max_len",
    "--batch_size",
    "--steps",
    "--num_devices",
    "--parallelism",
    "--dtype",
  )
  if _PROFILE.value:
    extra["profile"] = os.path.abspath(_PROFILE.value)
  with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "row.json")
    done = subprocess.run(
      [
        sys.executable,
        "-m",
        "benchmarks.train_step_speed",
        *[a for a in sys.argv[1:] if a.startswith(keep)],
        *[f"--{k}={v}" for k, v in extra.items()],
        f"--code_dir={code_dir}",
        f"--worker={variant}",
        f"--worker_out={out}",
      ],
      cwd=common.REPO,
      check=False,
      capture_output=True,
      text=True,
    )
    if done.returncode:
      raise RuntimeError(
        f"worker {variant} ({code_dir}) failed with exit "
        f"status {done.returncode}:\n{done.stderr[-3000:]}"
      )
    with open(out) as f:
      return json.load(f)


def _print_row(label: str, row: dict) -> None:
  print(
    f"{row['attention']:>20} {label:>8}: {row['s_per_step']:7.3f} s/step"
    f" {row['steps_per_sec']:6.3f} steps/s {row['gflops']:6.1f} GFLOP/s"
    f" = {100 * row['matmul_share']:4.1f}% of matmul "
    f"({row['matmul_gflops']:.0f}); {row['gflop_per_step']:.1f} GFLOP "
    f"{row['gb_accessed_per_step']:.1f} GB/step; compile "
    f"{row['compile_s']:.1f} s; peak RSS {row['peak_rss_gib']:.1f} GiB",
    flush=True,
  )
  for op in row.get("profile", {}).get("top_ops", []):
    print(
      f"{'':>24}{op['ms']:8.1f} ms {100 * op['share']:4.1f}% "
      f"{op['op']:<32} {op['op_name'][-90:]}"
    )


def _same_work(baseline: dict, this: dict) -> None:
  """Rates both rows by the same FLOPs. XLA's cost analysis counts the body
  of a loop once, so a blocked path (a scan over blocks) reports a fraction
  of the FLOPs of the same maths unblocked; the larger count is the step's
  work (same model, same maths), and the row keeps XLA's own count."""
  flops = max(baseline["gflop_per_step"], this["gflop_per_step"])
  for row in (baseline, this):
    row["xla_gflop_per_step"] = row["gflop_per_step"]
    row["gflop_per_step"] = flops
    row["gflops"] = flops / row["s_per_step"]
    row["matmul_share"] = row["gflops"] / row["matmul_gflops"]


def _compare(variant: str) -> dict:
  """Interleaved rounds of baseline and this checkout for one attention."""
  rows, ratios = {"baseline": [], "this": []}, []
  for r in range(_ROUNDS.value):
    order = [("baseline", _BASELINE.value), ("this", common.REPO)]
    got = {
      label: _worker(path, variant)
      for label, path in order[:: -1 if r % 2 else 1]
    }
    for label in rows:
      rows[label].append(got[label])
    ratios.append(got["baseline"]["s_per_step"] / got["this"]["s_per_step"])
    print(
      f"{variant:>20}   round {r}: baseline "
      f"{got['baseline']['s_per_step']:.3f} s/step, this "
      f"{got['this']['s_per_step']:.3f} s/step: {ratios[-1]:.2f}x",
      flush=True,
    )
  result = {
    "attention": variant,
    "speedup": statistics.median(ratios),
    "round_speedups": ratios,
  }
  for label, runs in rows.items():  # the row of median s/step
    result[label] = sorted(runs, key=lambda r: r["s_per_step"])[
      (len(runs) - 1) // 2
    ]
  _same_work(result["baseline"], result["this"])
  for label in rows:
    _print_row(label, result[label])
  for label, runs in rows.items():
    result[f"{label}_rounds"] = [r["s_per_step"] for r in runs]
  return result


def _first_steps(variant: str) -> dict:
  """Two fresh processes sharing one cache directory, per checkout."""
  result = {}
  for label, path in (
    [("baseline", _BASELINE.value)] if _BASELINE.value else []
  ) + [("this", common.REPO)]:
    with tempfile.TemporaryDirectory() as cache_dir:
      cold, warm = (
        _worker(path, variant, worker_first_step=cache_dir) for _ in range(2)
      )
    result[label] = {
      "cold_s": cold["first_step_s"],
      "warm_s": warm["first_step_s"],
      "cache": warm["cache"],
    }
    print(
      f"{variant:>20} {label:>8}: first step {cold['first_step_s']:.1f}"
      f" s in a new process, {warm['first_step_s']:.1f} s in the next "
      f"one ({'with' if warm['cache'] else 'no'} persistent cache)",
      flush=True,
    )
  return result


def main(argv):
  del argv
  if _WORKER.value:  # one attention, one library, one process
    code_dir = _CODE_DIR.value or common.REPO
    row = (
      first_step(_WORKER.value, code_dir, _WORKER_FIRST.value)
      if _WORKER_FIRST.value
      else time_attention(_WORKER.value, code_dir)
    )
    with open(_WORKER_OUT.value, "w") as f:
      json.dump(row, f)
    return
  results, first_steps = [], {}
  for variant in _ATTENTIONS.value:
    if _BASELINE.value:
      results.append(_compare(variant))
    else:
      results.append(_worker(common.REPO, variant))
      _print_row("this", results[-1])
    if _FIRST_STEP.value:
      first_steps[variant] = _first_steps(variant)
  import jax  # pylint: disable=g-import-not-at-top

  device = jax.devices()[0]
  git = subprocess.run(
    ["git", "-C", common.REPO, "rev-parse", "--short", "HEAD"],
    capture_output=True,
    text=True,
    check=False,
  )
  report = {
    "benchmark": "train_step_speed",
    "task": _TASK.value,
    "preset": _PRESET.value,
    "dtype": _DTYPE.value,
    "device": f"{device.platform}: {device.device_kind}",
    "num_devices": _DEVICES.value or jax.local_device_count(),
    "parallelism": _PARALLELISM.value,
    "host": {
      "cpus": os.cpu_count(),
      "machine": platform.machine(),
      "processor": platform.processor(),
      "load_average_at_end": os.getloadavg(),
    },
    "jax": jax.__version__,
    "commit": git.stdout.strip(),
    "baseline": _BASELINE.value or None,
    "rounds": _ROUNDS.value if _BASELINE.value else 1,
    "steps": _STEPS.value,
    "command": common.command(
      "train_step_speed",
      [a for a in sys.argv[1:] if not a.startswith("--output")],
    ),
    "results": results,
  }
  if first_steps:
    report["first_step"] = first_steps
  common.write(_OUTPUT.value, json.dumps(report, indent=2))


if __name__ == "__main__":
  app.run(main)
