"""Speed and memory of every attention core vs sequence length.

Forward, and forward+backward of sum(out^2) w.r.t. q, k, v, through each
registered core (the Flax module, so RMFA includes PreSBN and PostSBN),
jit-compiled, measured in one process, alternating the variants within each
repeat; reports the median (and min) over repeats and the ratios to softmax
and to Performer. Memory: XLA's scratch bytes of the compiled function
(`memory_analysis().temp_size_in_bytes`, works on CPU) and, on a GPU, the
device's peak bytes in use. A variant that runs out of memory is recorded as
"OOM" and skipped at longer lengths.

  python benchmarks/attention_speed.py                       # issue-2 shapes
  python benchmarks/attention_speed.py --lengths 1024,2048 --out x.json
  python benchmarks/attention_speed.py --peer_src=/path/to/fast_attention.py

`--variants` also takes `dpa_xla` and `dpa_cudnn`:
`jax.nn.dot_product_attention` itself (implementation 'xla' / 'cudnn', no
mask: every token is real) on q, k, v in `--dtype`; cuDNN needs an SM80+
GPU and bfloat16, so elsewhere its error is recorded in the row's `errors`
and it is skipped. `--dtype bfloat16` feeds q, k, v in bfloat16 to every
variant (the RMFA core computes its features in float32 whatever the
input).

`--peer_src` races the google-research Performer FAVOR+ JAX code itself
(performer/fast_attention/jax/fast_attention.py, never vendored here) as the
variant `performer_peer`: `make_fast_softmax_attention(Dh, nb_features=M,
redraw_features=False)` on the same q, k, v (it cannot mask; all tokens are
real here).

Prints a table and writes JSON (the device is named in it).
"""

import argparse
import functools
import importlib.util
import json
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, __file__.rsplit("/benchmarks/", 1)[0])
from macformer_jax import layers  # pylint: disable=g-import-not-at-top
from configs import common  # pylint: disable=g-import-not-at-top

DEFAULT_VARIANTS = tuple(layers.ATTENTIONS.names())
# jax.nn.dot_product_attention itself, by implementation (not registered).
DPA_VARIANTS = {"dpa_xla": "xla", "dpa_cudnn": "cudnn"}


@functools.lru_cache(maxsize=None)  # gin registers its names once
def _peer_module(path):
  spec = importlib.util.spec_from_file_location("performer_peer", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def load_peer(path, head_dim, num_features):
  """Performer's own FAVOR+ attention function, imported from a file path."""
  return _peer_module(path).make_fast_softmax_attention(
      head_dim, nb_features=num_features, redraw_features=False)


def make_fns(name, options, q, k, v, mask, peer=None):
  """(forward, forward+backward) jitted functions of (q, k, v)."""
  if name == "performer_peer":
    forward = peer
  elif name in DPA_VARIANTS:
    forward = functools.partial(jax.nn.dot_product_attention,
                                implementation=DPA_VARIANTS[name])
  else:
    core_name = name
    if name not in layers.ATTENTIONS:  # a config preset: spectra_oprf_orf
      core_name, preset = common.ATTENTION_PRESETS[name]
      options = {**preset, **options}
    core = layers.attention_class(core_name, **options)()
    variables = core.init({"params": jax.random.key(1),
                           "features": jax.random.key(2)}, q, k, v, mask=mask)
    forward = lambda q, k, v: core.apply(variables, q, k, v, mask=mask)
  loss = lambda q, k, v: jnp.sum(forward(q, k, v)**2)
  return jax.jit(forward), jax.jit(jax.grad(loss, argnums=(0, 1, 2)))


def _temp_bytes(fn, *args):
  analysis = fn.lower(*args).compile().memory_analysis()
  return getattr(analysis, "temp_size_in_bytes", None)


def _peak_bytes():
  stats = jax.devices()[0].memory_stats() or {}
  return stats.get("peak_bytes_in_use")


def matmul_gflops(size=2048, repeats=5):
  """This machine's float32 matmul throughput (GFLOP/s), the roofline."""
  a = jax.random.normal(jax.random.key(0), (size, size))
  fn = jax.jit(lambda a: a @ a)
  jax.block_until_ready(fn(a))
  return 2 * size**3 / min(time_call(fn, (a,), repeats)) / 1e9


def rmfa_flops(batch, length, heads, head_dim, num_features, width):
  """Matmul FLOPs of RMFA fwd+bwd (gradients for q, k, v; no weight grads).

  Feature projections of q and k: 2 N Dh W forward, the same backward, each;
  the linear attention: 2 N M (Dh+1) for phi(K)^T V' and for phi(Q) S,
  three times that with the backward; N = B H L rows.
  """
  rows = batch * heads * length
  return (8 * rows * head_dim * width
          + 12 * rows * num_features * (head_dim + 1))


def time_call(fn, args, repeats):
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return times


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--lengths",
                      default="128,256,512,1024,2048,4096,8192,16384")
  parser.add_argument("--batch", type=int, default=2)
  parser.add_argument("--heads", type=int, default=2)
  parser.add_argument("--head_dim", type=int, default=32)
  parser.add_argument("--num_features", type=int, default=128)
  parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                      help="registry names or attention presets of "
                      "configs/common.py (e.g. spectra_oprf_fastfoodl), "
                      "comma separated")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--dtype", default="float32",
                      choices=("float32", "bfloat16"),
                      help="dtype of q, k, v")
  parser.add_argument("--softmax_max_len", type=int, default=None,
                      help="skip softmax above this length (default: 8192 on "
                      "CPU, where 16K needs > 16 GiB of host memory; no limit "
                      "on accelerators, where running out is recorded)")
  parser.add_argument("--peer_src", default=None,
                      help="path of Performer's fast_attention.py (adds "
                      "the variant performer_peer)")
  parser.add_argument("--out", default="docs/attention_speed.json")
  args = parser.parse_args(argv)

  lengths = [int(x) for x in args.lengths.split(",")]
  if args.softmax_max_len is None:
    args.softmax_max_len = 8192 if jax.default_backend() == "cpu" else 1 << 40
  variants = args.variants.split(",")
  peer = None
  if args.peer_src:
    peer = load_peer(args.peer_src, args.head_dim, args.num_features)
    if "performer_peer" not in variants:
      variants.append("performer_peer")
  feature_options = {"rmfa": {"num_features": args.num_features},
                     "performer": {"num_features": args.num_features},
                     "rfa": {"num_features": args.num_features}}
  for name in variants:  # presets with random features, e.g. spectra_*
    if "num_features" in common.ATTENTION_PRESETS.get(name, ("", {}))[1]:
      feature_options[name] = {"num_features": args.num_features}
  device = jax.devices()[0]
  results = {"device": f"{device.platform}:{device.device_kind}",
             "host": platform.processor() or platform.machine(),
             "jax": jax.__version__,
             "command": " ".join(["python benchmarks/attention_speed.py"]
                                 + list(sys.argv[1:] if argv is None
                                        else argv)),
             "shapes": {"batch": args.batch, "heads": args.heads,
                        "head_dim": args.head_dim,
                        "num_features": args.num_features,
                        "dtype": args.dtype},
             "measure": "fwd+bwd of sum(out^2), jit, median of repeats",
             "rows": []}
  results["matmul_gflops"] = matmul_gflops()
  print(f"device {results['device']}  B={args.batch} H={args.heads} "
        f"Dh={args.head_dim} M={args.num_features}  "
        f"matmul {results['matmul_gflops']:.0f} GFLOP/s")
  skipped = set()
  header = f"{'L':>6} " + " ".join(f"{v:>12}" for v in variants)
  print(header + "   ratios")
  for length in lengths:
    key = jax.random.key(length)
    shape = (args.batch, length, args.heads, args.head_dim)
    q, k, v = (jax.random.normal(kk, shape, args.dtype)
               for kk in jax.random.split(key, 3))
    mask = jnp.ones((args.batch, length), bool)
    fns, memory, oom, errors = {}, {}, [], {}
    for name in variants:
      if name in skipped or (name == "softmax"
                             and length > args.softmax_max_len):
        continue
      try:
        forward, backward = make_fns(name, feature_options.get(name, {}), q,
                                     k, v, mask, peer)
        memory[name] = {"fwd_temp_bytes": _temp_bytes(forward, q, k, v),
                        "fwd_bwd_temp_bytes": _temp_bytes(backward, q, k, v)}
        jax.block_until_ready(backward(q, k, v))  # warm-up
        jax.block_until_ready(forward(q, k, v))
        memory[name]["device_peak_bytes"] = _peak_bytes()
      except Exception as e:  # pylint: disable=broad-except
        if name == "dpa_cudnn" and "RESOURCE_EXHAUSTED" not in str(e):
          errors[name] = f"{type(e).__name__}: {str(e)[:300]}"
          skipped.add(name)
          continue
        if "RESOURCE_EXHAUSTED" not in str(e) and "memory" not in str(e):
          raise
        oom.append(name)
        skipped.add(name)
        continue
      fns[name] = (forward, backward)
    times = {name: {"fwd": [], "fwd_bwd": []} for name in fns}
    for _ in range(args.repeats):  # alternate variants within each repeat
      for name, (forward, backward) in fns.items():
        for kind, fn in (("fwd", forward), ("fwd_bwd", backward)):
          # An untimed call first: the variant before may have freed GBs
          # (softmax), and the next allocation's page faults are not its
          # cost.
          jax.block_until_ready(fn(q, k, v))
          times[name][kind] += time_call(fn, (q, k, v), 1)
    row = {"length": length, "oom": oom}
    if errors:
      row["errors"] = errors
    for name, ts in times.items():
      row[name] = {"median_ms": 1e3 * statistics.median(ts["fwd_bwd"]),
                   "min_ms": 1e3 * min(ts["fwd_bwd"]),
                   "fwd_median_ms": 1e3 * statistics.median(ts["fwd"]),
                   **memory[name]}
    for base in ("softmax", "performer", "performer_peer"):
      if base in times:
        for name in times:
          row[name][f"speedup_vs_{base}"] = (
              row[base]["median_ms"] / row[name]["median_ms"])
          row[name][f"fwd_speedup_vs_{base}"] = (
              row[base]["fwd_median_ms"] / row[name]["fwd_median_ms"])
    if "rmfa" in row:
      flops = rmfa_flops(args.batch, length, args.heads, args.head_dim,
                         args.num_features, args.num_features - 1)
      row["rmfa"]["gflops"] = flops / row["rmfa"]["min_ms"] / 1e6
      row["rmfa"]["fraction_of_matmul"] = (row["rmfa"]["gflops"]
                                           / results["matmul_gflops"])
    results["rows"].append(row)
    cells = " ".join(
        f"{row[n]['median_ms']:>10.1f}ms" if n in row else
        f"{'OOM' if n in oom else '-':>12}" for n in variants)
    ratios = []
    if "rmfa" in row and "softmax" in row:
      ratios.append(f"softmax/rmfa={row['rmfa']['speedup_vs_softmax']:.1f}x")
    for base in ("performer", "performer_peer"):
      if "rmfa" in row and base in row:
        ratios.append(
            f"{base}/rmfa={row['rmfa'][f'speedup_vs_{base}']:.2f}x")
    if "rmfa" in row:
      ratios.append(f"rmfa at {100 * row['rmfa']['fraction_of_matmul']:.0f}% "
                    "of matmul throughput")
    print(f"{length:>6} {cells}   {' '.join(ratios)}", flush=True)
    if args.out:  # after every length, so a run cut by a timeout keeps them
      with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
  if args.out:
    print(f"wrote {args.out}")
  return results


if __name__ == "__main__":
  main()
