"""Speed (and XLA scratch memory) of every attention core vs sequence length.

Forward+backward of sum(out^2) w.r.t. q, k, v through each registered core
(the Flax module, so RMFA includes PreSBN and PostSBN), jit-compiled, measured
in one process, alternating the variants within each repeat; reports the
median (and min) over repeats and the ratio to softmax and to Performer.

  python benchmarks/attention_speed.py                       # issue-2 shapes
  python benchmarks/attention_speed.py --lengths 1024,2048 --out x.json

Prints a table and writes JSON (the device is named in it).
"""

import argparse
import json
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, __file__.rsplit("/benchmarks/", 1)[0])
from macformer_jax import layers  # pylint: disable=g-import-not-at-top

DEFAULT_VARIANTS = ("rmfa", "performer", "softmax")


def make_loss(name, options, q, k, v, mask):
  core = layers.attention_class(name, **options)()
  variables = core.init({"params": jax.random.key(1),
                         "features": jax.random.key(2)}, q, k, v, mask=mask)

  def loss(q, k, v):
    out = core.apply(variables, q, k, v, mask=mask)
    return jnp.sum(out * out)

  return jax.jit(jax.grad(loss, argnums=(0, 1, 2)))


def time_call(fn, args, repeats):
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return times


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--lengths", default="1024,2048,4096,8192")
  parser.add_argument("--batch", type=int, default=2)
  parser.add_argument("--heads", type=int, default=2)
  parser.add_argument("--head_dim", type=int, default=32)
  parser.add_argument("--num_features", type=int, default=128)
  parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                      help="registry names, comma separated")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--softmax_max_len", type=int, default=1 << 30,
                      help="skip softmax above this length (memory)")
  parser.add_argument("--out", default="docs/attention_speed.json")
  args = parser.parse_args(argv)

  lengths = [int(x) for x in args.lengths.split(",")]
  variants = args.variants.split(",")
  feature_options = {"rmfa": {"num_features": args.num_features},
                     "performer": {"num_features": args.num_features},
                     "rfa": {"num_features": args.num_features}}
  device = jax.devices()[0]
  results = {"device": f"{device.platform}:{device.device_kind}",
             "host": platform.processor() or platform.machine(),
             "jax": jax.__version__,
             "shapes": {"batch": args.batch, "heads": args.heads,
                        "head_dim": args.head_dim,
                        "num_features": args.num_features},
             "measure": "fwd+bwd of sum(out^2), jit, median of repeats",
             "rows": []}
  print(f"device {results['device']}  B={args.batch} H={args.heads} "
        f"Dh={args.head_dim} M={args.num_features}")
  header = f"{'L':>6} " + " ".join(f"{v:>12}" for v in variants)
  print(header + "   ratios")
  for length in lengths:
    key = jax.random.key(length)
    shape = (args.batch, length, args.heads, args.head_dim)
    q, k, v = (jax.random.normal(kk, shape) for kk in jax.random.split(key, 3))
    mask = jnp.ones((args.batch, length), bool)
    fns, memory = {}, {}
    for name in variants:
      if name == "softmax" and length > args.softmax_max_len:
        continue
      fn = make_loss(name, feature_options.get(name, {}), q, k, v, mask)
      compiled = fn.lower(q, k, v).compile()
      analysis = compiled.memory_analysis()
      memory[name] = getattr(analysis, "temp_size_in_bytes", None)
      jax.block_until_ready(fn(q, k, v))  # warm-up
      fns[name] = fn
    times = {name: [] for name in fns}
    for _ in range(args.repeats):  # alternate variants within each repeat
      for name, fn in fns.items():
        # An untimed call first: the variant before may have freed GBs
        # (softmax), and the next allocation's page faults are not its cost.
        jax.block_until_ready(fn(q, k, v))
        times[name] += time_call(fn, (q, k, v), 1)
    row = {"length": length}
    for name, ts in times.items():
      row[name] = {"median_ms": 1e3 * statistics.median(ts),
                   "min_ms": 1e3 * min(ts),
                   "temp_bytes": memory[name]}
    for base in ("softmax", "performer"):
      if base in times:
        for name in times:
          row[name][f"speedup_vs_{base}"] = (
              row[base]["median_ms"] / row[name]["median_ms"])
    results["rows"].append(row)
    cells = " ".join(
        f"{row[n]['median_ms']:>10.1f}ms" if n in row else f"{'-':>12}"
        for n in variants)
    ratios = []
    if "rmfa" in row and "softmax" in row:
      ratios.append(f"softmax/rmfa={row['rmfa']['speedup_vs_softmax']:.1f}x")
    if "rmfa" in row and "performer" in row:
      ratios.append(
          f"performer/rmfa={row['rmfa']['speedup_vs_performer']:.2f}x")
    print(f"{length:>6} {cells}   {' '.join(ratios)}", flush=True)
  if args.out:
    with open(args.out, "w") as f:
      json.dump(results, f, indent=1)
    print(f"wrote {args.out}")
  return results


if __name__ == "__main__":
  main()
