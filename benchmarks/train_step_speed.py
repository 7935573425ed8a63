r"""Training-step speed per attention, and how far from the limit -> JSON.

The real `Engine.train` step on random tokens [batch_size, max_len], each
attention in its own process: XLA's flops and bytes per step, compile time,
first execution, s/step (median of `--steps`), GFLOP/s and its share of a
float32 matmul timed in the same process, XLA's temp memory, peak RSS.
`--profile=DIR`: a trace of one step and its top ten XLA ops (and model op).
`--baseline=PATH` (another checkout): its library too, `--rounds` rounds
interleaved; speed-up = median of the per-round ratios. `--first_step`: the
first step of two new processes sharing the persistent compilation cache.

  python -m benchmarks.train_step_speed --preset=macformer --max_len=2000 \
    --batch_size=32 --attentions=macformer_exp,performer,linear,softmax
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

from benchmarks import common

ATTENTIONS = "macformer_exp,macformer_exp_tuned,performer,linear,softmax"
# The flags a worker process gets from the command line.
WORKER_FLAGS = ("task", "preset", "max_len", "batch_size", "steps", "dtype")
LIBRARY = ("encoder", "optim", "training")  # macformer_jax's, checked


def _setup(args, variant: str, code_dir: str):
  """jax, training, config, engine, state and a random batch of `variant`
  with the library of `code_dir` (first on the path: a baseline)."""
  sys.path.insert(0, code_dir)
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  lra_tasks = importlib.import_module("lra_tasks")
  library = [importlib.import_module(f"macformer_jax.{n}") for n in LIBRARY]
  for module in library:
    where = os.path.abspath(module.__file__)
    if not where.startswith(os.path.abspath(code_dir) + os.sep):
      raise RuntimeError(f"{module.__file__} is not from {code_dir}")
  encoder, optim, training = library
  configs = importlib.import_module(f"configs.{args.task}")
  config = configs.get_config(f"{variant},preset={args.preset}")
  config.data.max_len, config.model.dtype = args.max_len, args.dtype
  config.data.batch_size = args.batch_size or config.data.batch_size
  spec, size = lra_tasks.get_task(config.task).spec, config.data.batch_size
  steps = config.train.num_train_steps
  tx, lr_fn = optim.create_optimizer(config.optimizer, steps)
  options = {}  # the trainer's compile options (older checkouts: none)
  if hasattr(training, "cpu_compiler_options"):
    ynn = config.train.cpu_ynnpack
    options = training.cpu_compiler_options(ynn, config.attention.name)
  engine = training.Engine(
    "sharding",
    1,
    size,
    lr_fn,
    spec.dual_input,
    **({"compiler_options": options} if options else {}),
  )
  model = encoder.build_model(config, spec)
  keys = training.named_keys(config.seed)
  state = training.create_train_state(
    config, model, spec.dual_input, tx, keys, sharding=engine.replicated
  )
  rng, shape = np.random.default_rng(0), (size, config.data.max_len)
  tokens = lambda: rng.integers(1, spec.vocab_size, shape, np.int32)
  batch = {"inputs": tokens()}
  batch["targets"] = rng.integers(0, spec.num_classes, (size,), np.int32)
  batch["weights"] = np.ones((size,), np.float32)
  if spec.dual_input:
    batch["inputs2"] = tokens()
  return jax, training, config, engine, state, engine.put_batch(batch)


def _profile_step(jax, compiled, state, batch, trace_dir: str) -> dict:
  """Traces one step: the time of its ops and the ten most expensive."""
  jax.profiler.start_trace(trace_dir, create_perfetto_trace=True)
  jax.block_until_ready(compiled(state, batch)[1])
  jax.profiler.stop_trace()
  traces = glob.glob(os.path.join(trace_dir, "**", "*.json.gz"), recursive=True)
  with gzip.open(max(traces, key=os.path.getmtime)) as f:
    trace = json.load(f)
  names = {}  # HLO instruction -> the first op_name on its line (model op)
  line = r'^\s*(?:ROOT )?%?([\w.\-]+) = [^\n]*?op_name="([^"]*)"'
  for instruction, op_name in re.findall(line, compiled.as_text(), re.M):
    names.setdefault(instruction, op_name)
  op_us = collections.Counter()
  for e in trace["traceEvents"] if isinstance(trace, dict) else trace:
    if e.get("ph") == "X" and e.get("name") in names:  # an XLA op
      op_us[e["name"]] += e.get("dur", 0)
  total = sum(op_us.values())
  top = [
    {"op": name, "ms": us / 1e3, "share": us / max(total, 1)}
    | {"op_name": names[name].replace("jit(train_step)/", "")}
    for name, us in op_us.most_common(10)
  ]
  return {"trace_dir": trace_dir, "ops_ms": total / 1e3, "top_ops": top}


def time_attention(args, variant: str, code_dir: str) -> dict:
  """Compiles and times `variant`'s train step with `code_dir`'s library."""
  jax, _, config, engine, state, batch = _setup(args, variant, code_dir)
  start = time.perf_counter()
  compiled = engine._train.lower(state, batch).compile()  # pylint: disable=protected-access
  compile_s, times = time.perf_counter() - start, []
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  memory = compiled.memory_analysis()
  for _ in range(args.steps + 1):  # the first execution, then timed steps
    start = time.perf_counter()
    state, metrics = jax.block_until_ready(compiled(state, batch))
    times.append(time.perf_counter() - start)
  first_s, times = times[0], times[1:]
  s_per_step, flops = statistics.median(times), float(cost.get("flops", 0))
  matmul = common.matmul_gflops(reduce=statistics.median)
  num_params = sum(x.size for x in jax.tree.leaves(state.params))
  row = dict(attention=variant, core=config.attention.name, code_dir=code_dir)
  row |= dict(num_params=int(num_params), batch_size=config.data.batch_size)
  row |= dict(max_len=config.data.max_len, compile_s=compile_s)
  row |= dict(first_execution_s=first_s, steps=args.steps, step_times_s=times)
  row |= dict(s_per_step=s_per_step, steps_per_sec=1.0 / s_per_step)
  row["gflop_per_step"] = flops / 1e9
  row["gb_accessed_per_step"] = float(cost.get("bytes accessed", 0.0)) / 1e9
  row |= dict(gflops=flops / 1e9 / s_per_step, matmul_gflops=matmul)
  row["matmul_share"] = flops / 1e9 / s_per_step / matmul
  row["xla_temp_gib"] = memory.temp_size_in_bytes / 2**30 if memory else None
  rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
  row |= dict(peak_rss_gib=rss)
  row["loss_finite"] = bool(jax.numpy.isfinite(metrics["loss"]))
  if args.profile:
    tag = "this" if code_dir == common.REPO else "baseline"
    trace_dir = os.path.join(args.profile, f"{variant}_{tag}")
    row["profile"] = _profile_step(jax, compiled, state, batch, trace_dir)
  return row


def first_step(args, variant: str, code_dir: str, cache_dir: str) -> dict:
  """Seconds to a new Engine's first step, the cache (if any) in `cache_dir`."""
  start = time.perf_counter()
  jax, training, _, engine, state, batch = _setup(args, variant, code_dir)
  cache = getattr(training, "compilation_cache", None)
  if cache is not None:
    cache.enable(cache_dir)
  setup_s, start = time.perf_counter() - start, time.perf_counter()
  jax.block_until_ready(engine.train(state, batch)[1])
  step_s = time.perf_counter() - start
  return dict(setup_s=setup_s, first_step_s=step_s, cache=cache is not None)


def _worker(args, code_dir: str, variant: str, cache_dir: str = "") -> dict:
  """Runs this module in a fresh process on one attention and library."""
  job = dict(attention=variant, code_dir=code_dir, cache_dir=cache_dir)
  flags = [f"--{k}={getattr(args, k)}" for k in WORKER_FLAGS + ("profile",)]
  cmd = [sys.executable, "-m", "benchmarks.train_step_speed", *flags]
  cmd.append(f"--worker={json.dumps(job)}")
  done = subprocess.run(cmd, cwd=common.REPO, capture_output=True, text=True)
  if done.returncode:
    why = f"exit status {done.returncode}:\n{done.stderr[-3000:]}"
    raise RuntimeError(f"worker {variant} ({code_dir}) failed with {why}")
  return json.loads(done.stdout.splitlines()[-1])  # its last line


def _same_work(baseline: dict, this: dict) -> None:
  """Rates both rows by the larger FLOP count (XLA's counts a loop's body
  once: a blocked path reports a fraction of the same maths unblocked)."""
  flops = max(baseline["gflop_per_step"], this["gflop_per_step"])
  for row in (baseline, this):
    row["xla_gflop_per_step"] = row["gflop_per_step"]
    row["gflop_per_step"] = flops
    row["gflops"] = flops / row["s_per_step"]
    row["matmul_share"] = row["gflops"] / row["matmul_gflops"]


def _compare(args, variant: str) -> dict:
  """Interleaved rounds of baseline and this checkout for one attention."""
  rows, ratios = {"baseline": [], "this": []}, []
  for r in range(args.rounds):
    order = [("baseline", args.baseline), ("this", common.REPO)]
    order = order[::-1] if r % 2 else order
    got = {label: _worker(args, path, variant) for label, path in order}
    for label in rows:
      rows[label].append(got[label])
    ratios.append(got["baseline"]["s_per_step"] / got["this"]["s_per_step"])
    print(f"{variant:>20}   round {r}: {ratios[-1]:.2f}x", flush=True)
  result = dict(attention=variant, speedup=statistics.median(ratios))
  result["round_speedups"] = ratios
  for label, runs in rows.items():  # the row of median s/step
    runs = sorted(runs, key=lambda r: r["s_per_step"])
    result[label] = runs[(len(runs) - 1) // 2]
  _same_work(result["baseline"], result["this"])
  for label, runs in rows.items():
    result[f"{label}_rounds"] = [r["s_per_step"] for r in runs]
  return result


def _first_steps(args, variant: str) -> dict:
  """Two fresh processes sharing one cache directory, per checkout."""
  result = {}
  checkouts = [("baseline", args.baseline)] if args.baseline else []
  for label, path in checkouts + [("this", common.REPO)]:
    with tempfile.TemporaryDirectory() as cache:
      cold, warm = (_worker(args, path, variant, cache) for _ in range(2))
    times = dict(cold_s=cold["first_step_s"], warm_s=warm["first_step_s"])
    result[label] = dict(times, cache=warm["cache"])
  return result


def main(argv=None):
  parser = common.flags(
    __doc__,
    **dict(task="listops", preset="macformer", attentions=ATTENTIONS),
    **dict(max_len=2000, batch_size=32, steps=5, dtype="float32"),
    **dict(profile="", baseline="", rounds=2, worker=""),
    output="docs/train_step_speed.json",
  )
  parser.add_argument("--first_step", action="store_true")
  argv = sys.argv[1:] if argv is None else argv
  args = parser.parse_args(argv)
  args.profile = args.profile and os.path.abspath(args.profile)
  if args.worker:  # one attention, one library, one process
    job = json.loads(args.worker)
    run = (args, job["attention"], job["code_dir"])
    cache = job["cache_dir"]
    row = first_step(*run, cache) if cache else time_attention(*run)
    print(json.dumps(row))
    return
  results, first_steps = [], {}
  for variant in args.attentions.split(","):
    if args.baseline:
      results.append(_compare(args, variant))
    else:
      results.append(_worker(args, common.REPO, variant))
    row = results[-1].get("this", results[-1])
    share = f"{100 * row['matmul_share']:.1f}% of matmul"
    print(f"{variant}: {row['s_per_step']:.3f} s/step, {share}", flush=True)
    if args.first_step:
      first_steps[variant] = _first_steps(args, variant)
  import jax  # pylint: disable=g-import-not-at-top

  device = jax.devices()[0]
  git = ["git", "-C", common.REPO, "rev-parse", "--short", "HEAD"]
  git = subprocess.run(git, capture_output=True, text=True, check=False)
  report = dict(benchmark="train_step_speed", task=args.task)
  report |= dict(preset=args.preset, dtype=args.dtype)
  report["device"] = f"{device.platform}: {device.device_kind}"
  report |= dict(num_devices=1, parallelism="sharding")
  report["host"] = {"cpus": os.cpu_count(), "machine": platform.machine()}
  report["host"]["processor"] = platform.processor()
  report["host"]["load_average_at_end"] = os.getloadavg()
  report |= dict(jax=jax.__version__, commit=git.stdout.strip())
  report["baseline"] = args.baseline or None
  report |= dict(rounds=args.rounds if args.baseline else 1, steps=args.steps)
  kept = [a for a in argv if not a.startswith("--output")]
  report["command"] = common.command("train_step_speed", kept)
  report["results"] = results
  if first_steps:
    report["first_step"] = first_steps
  common.write(args.output, json.dumps(report, indent=2))


if __name__ == "__main__":
  main()
