"""Speed and memory of every attention core vs sequence length -> JSON.

Forward, and forward+backward of sum(out^2) w.r.t. q, k, v, through each
registered core (the Flax module: RMFA includes PreSBN and PostSBN) or
attention preset of configs/common.py, jit, all variants alternating within
each repeat in one process; median and min over repeats, ratios to softmax
and Performer. Memory: XLA's scratch bytes of the compiled function and, on
a GPU, the device's peak. A variant out of memory is recorded as "OOM" and
skipped at longer lengths. `dpa_xla` / `dpa_cudnn`: jax.nn.dot_product_
attention itself (cuDNN needs an SM80+ GPU; elsewhere its error goes to the
row's `errors`). `--peer_src PATH` adds `performer_peer`: google-research
Performer's own `make_fast_softmax_attention` (never vendored) at equal M.
`python -m benchmarks.make_report` renders the JSON.

  python -m benchmarks.attention_speed                    # docs/...json
  python -m benchmarks.attention_speed --lengths 1024,2048 --out x.json
  python -m benchmarks.attention_speed --peer_src=/path/fast_attention.py
"""

import argparse
import functools
import importlib.util
import statistics

import jax
import jax.numpy as jnp

from benchmarks import common
from configs import common as configs
from macformer_jax import layers

DPA_VARIANTS = {"dpa_xla": "xla", "dpa_cudnn": "cudnn"}
# Variants of a registered core with fixed options: rmfa_h01 is RMFA with the
# constant and linear terms exact (docs/METHOD.md §3.3).
OPTION_VARIANTS = {"rmfa_h01": ("rmfa", {"exact_linear": True})}
BASES = ("softmax", "performer", "performer_peer")


@functools.cache  # gin registers its names once
def _peer_module(path):
  spec = importlib.util.spec_from_file_location("performer_peer", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def load_peer(path, head_dim, num_features):
  """Performer's own FAVOR+ attention function, imported from a file path."""
  return _peer_module(path).make_fast_softmax_attention(
    head_dim, nb_features=num_features, redraw_features=False
  )


def make_fns(name, options, q, k, v, mask, peer=None):
  """(forward, forward+backward) jitted functions of (q, k, v)."""
  if name == "performer_peer":
    forward = peer
  elif name in DPA_VARIANTS:
    forward = functools.partial(
      jax.nn.dot_product_attention, implementation=DPA_VARIANTS[name]
    )
  else:
    if name in OPTION_VARIANTS:
      name, preset = OPTION_VARIANTS[name]
      options = {**preset, **options}
    elif name not in layers.ATTENTIONS:  # a config preset: spectra_oprf_orf
      name, preset = configs.ATTENTION_PRESETS[name]
      options = {**preset, **options}
    core = layers.attention_class(name, **options)()
    variables = core.init(
      {"params": jax.random.key(1), "features": jax.random.key(2)},
      q,
      k,
      v,
      mask=mask,
    )
    forward = lambda q, k, v: core.apply(variables, q, k, v, mask=mask)
  loss = lambda q, k, v: jnp.sum(forward(q, k, v) ** 2)
  return jax.jit(forward), jax.jit(jax.grad(loss, argnums=(0, 1, 2)))


def rmfa_flops(batch, length, heads, head_dim, num_features, width):
  """Matmul FLOPs of RMFA fwd+bwd (gradients for q, k, v; no weight grads):
  feature projections of q and k, 2 N Dh W forward and again backward each;
  the linear attention, 2 N M (Dh+1) for phi(K)^T V' and for phi(Q) S, three
  times that with the backward; N = B H L rows."""
  rows = batch * heads * length
  return 8 * rows * head_dim * width + 12 * rows * num_features * (head_dim + 1)


def _measure(name, options, q, k, v, mask, peer):
  """(fns, memory) of one variant; raises on failure."""
  fns = make_fns(name, options, q, k, v, mask, peer)
  memory = {
    f"{kind}_temp_bytes": getattr(
      fn.lower(q, k, v).compile().memory_analysis(), "temp_size_in_bytes", None
    )
    for kind, fn in zip(("fwd", "fwd_bwd"), fns, strict=True)
  }
  for fn in fns[::-1]:  # warm-up
    jax.block_until_ready(fn(q, k, v))
  memory["device_peak_bytes"] = (jax.devices()[0].memory_stats() or {}).get(
    "peak_bytes_in_use"
  )
  return fns, memory


def parse_args(argv=None) -> argparse.Namespace:
  """The command line, with the CPU's softmax length limit filled in."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument(
    "--lengths", default="128,256,512,1024,2048,4096,8192,16384"
  )
  for flag, default in (
    ("batch", 2),
    ("heads", 2),
    ("head_dim", 32),
    ("num_features", 128),
    ("repeats", 5),
  ):
    parser.add_argument(f"--{flag}", type=int, default=default)
  parser.add_argument(
    "--variants",
    default=",".join(layers.ATTENTIONS.names()),
    help="registry names or attention presets of "
    "configs/common.py (e.g. spectra_oprf_fastfoodl), rmfa_h01 (RMFA, "
    "exact linear term), or dpa_xla, dpa_cudnn; comma separated",
  )
  parser.add_argument(
    "--dtype",
    default="float32",
    choices=("float32", "bfloat16"),
    help="of q, k, v",
  )
  parser.add_argument(
    "--softmax_max_len",
    type=int,
    default=None,
    help="skip softmax above this length (default: 8192 on "
    "CPU, where 16K needs > 16 GiB; no limit elsewhere)",
  )
  parser.add_argument(
    "--peer_src",
    default=None,
    help="Performer's fast_attention.py (adds the variant performer_peer)",
  )
  parser.add_argument("--out", default="docs/attention_speed.json")
  args = parser.parse_args(argv)
  if args.softmax_max_len is None:
    args.softmax_max_len = 8192 if jax.default_backend() == "cpu" else 1 << 40
  return args


def _feature_options(variants, num_features: int) -> dict:
  """{variant: {"num_features": M}} for the variants that take M."""
  takes_m = lambda name: (
    name in ("rmfa", "performer", "rfa", *OPTION_VARIANTS)
    or ("num_features" in configs.ATTENTION_PRESETS.get(name, ("", {}))[1])
  )
  return {n: {"num_features": num_features} for n in variants if takes_m(n)}


def _record_failure(row: dict, name: str, e: Exception) -> None:
  """An OOM or cuDNN's refusal goes into the row; anything else raises."""
  if name == "dpa_cudnn" and "RESOURCE_EXHAUSTED" not in str(e):
    row.setdefault("errors", {})[name] = f"{type(e).__name__}: {str(e)[:300]}"
  elif "RESOURCE_EXHAUSTED" in str(e) or "memory" in str(e):
    row["oom"].append(name)
  else:
    raise e


def main(argv=None):
  args = parse_args(argv)
  variants, peer = args.variants.split(","), None
  if args.peer_src:
    peer = load_peer(args.peer_src, args.head_dim, args.num_features)
    variants += [] if "performer_peer" in variants else ["performer_peer"]
  options = _feature_options(variants, args.num_features)
  shapes = {
    "batch": args.batch,
    "heads": args.heads,
    "head_dim": args.head_dim,
    "num_features": args.num_features,
    "dtype": args.dtype,
  }
  m = common.machine()
  results = {
    "device": m["device"],
    "host": m["host"],
    "jax": m["jax"],
    "cpu_count": m["cpu_count"],
    "command": common.command("attention_speed", argv),
    "shapes": shapes,
    "rows": [],
    "measure": "fwd+bwd of sum(out^2), jit, median of repeats",
    "matmul_gflops": common.matmul_gflops(),
  }
  print(
    f"{m['device']} {shapes} matmul {results['matmul_gflops']:.0f} "
    "GFLOP/s\n" + f"{'L':>6} " + " ".join(f"{v:>12}" for v in variants)
  )
  skipped = set()
  for length in [int(x) for x in args.lengths.split(",")]:
    shape = (args.batch, length, args.heads, args.head_dim)
    q, k, v = (
      jax.random.normal(key, shape, args.dtype)
      for key in jax.random.split(jax.random.key(length), 3)
    )
    mask = jnp.ones((args.batch, length), bool)
    row, fns, memory = {"length": length, "oom": []}, {}, {}
    for name in variants:
      if name in skipped or (
        name == "softmax" and length > args.softmax_max_len
      ):
        continue
      try:
        fns[name], memory[name] = _measure(
          name, options.get(name, {}), q, k, v, mask, peer
        )
      except Exception as e:  # pylint: disable=broad-except
        skipped.add(name)
        _record_failure(row, name, e)
    times = {(name, kind): [] for name in fns for kind in (0, 1)}
    for _ in range(args.repeats):  # alternate variants within each repeat
      for (name, kind), ts in times.items():
        # An untimed call first: the variant before may have freed GBs
        # (softmax), and the next allocation's page faults are not its cost.
        jax.block_until_ready(fns[name][kind](q, k, v))
        ts += common.time_call(fns[name][kind], (q, k, v))
    for name in fns:
      row[name] = {
        "median_ms": 1e3 * statistics.median(times[name, 1]),
        "min_ms": 1e3 * min(times[name, 1]),
        "fwd_median_ms": 1e3 * statistics.median(times[name, 0]),
        **memory[name],
      }
    for base in (b for b in BASES if b in fns):
      for name in fns:
        for pre in ("", "fwd_"):
          row[name][f"{pre}speedup_vs_{base}"] = (
            row[base][f"{pre}median_ms"] / row[name][f"{pre}median_ms"]
          )
    if "rmfa" in row:
      flops = rmfa_flops(
        args.batch,
        length,
        args.heads,
        args.head_dim,
        args.num_features,
        args.num_features - 1,
      )
      row["rmfa"]["gflops"] = flops / row["rmfa"]["min_ms"] / 1e6
      row["rmfa"]["fraction_of_matmul"] = (
        row["rmfa"]["gflops"] / results["matmul_gflops"]
      )
    results["rows"].append(row)
    print(
      f"{length:>6} "
      + " ".join(
        f"{row[n]['median_ms']:>10.1f}ms"
        if n in row
        else f"{'OOM' if n in row['oom'] else '-':>12}"
        for n in variants
      )
      + "".join(
        f"  {b}/rmfa={row['rmfa'][f'speedup_vs_{b}']:.2f}x"
        for b in BASES
        if "rmfa" in row and b in row
      ),
      flush=True,
    )
    if args.out:  # after every length, so a run cut by a timeout keeps them
      common.write(args.out, common.dumps(results))
  return results


if __name__ == "__main__":
  main()
