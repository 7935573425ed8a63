"""Speed and memory of every attention core vs sequence length -> JSON.

fwd and fwd+bwd of sum(out^2) w.r.t. q, k, v [B, L, H, Dh], jit, variants
interleaved: registered cores (the Flax module), presets of configs/common.py,
rmfa_h01 (exact_linear, docs/METHOD.md §3.3), dpa_xla and dpa_cudnn
(jax.nn.dot_product_attention), and with `--peer_src` Performer's own
`make_fast_softmax_attention` (never vendored) as performer_peer.

  python -m benchmarks.attention_speed --lengths 1024,2048 --out x.json
"""

import functools
import importlib.util
import os
import statistics

import jax
import jax.numpy as jnp

from benchmarks import common
from configs import common as configs
from macformer_jax import layers

DPA = {"dpa_xla": "xla", "dpa_cudnn": "cudnn"}
H01 = ("rmfa", {"exact_linear": True})  # docs/METHOD.md §3.3
PRESETS = dict(configs.ATTENTION_PRESETS, rmfa_h01=H01)
MEASURE = "fwd+bwd of sum(out^2), jit, median of repeats"
SOFTMAX_MAX_LEN_CPU = 8192  # 16K needs > 16 GiB


@functools.cache  # gin registers its names once
def _peer_module(path):
  """The peer's file as a module; SystemExit with the fix if it won't load."""
  if not os.path.isfile(path):
    raise SystemExit(
      f"error: --peer_src {path}: no such file (Performer's "
      "fast_attention.py from google-research)"
    )
  spec = importlib.util.spec_from_file_location("performer_peer", path)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except ModuleNotFoundError as e:
    raise SystemExit(
      f"error: --peer_src {path} needs the module {e.name!r}: install it "
      f"(gin: pip install gin-config) or put it on PYTHONPATH"
    ) from e
  return module


def load_peer(path, head_dim, num_features):
  """Performer's own FAVOR+ attention function, imported from a file path."""
  make = _peer_module(path).make_fast_softmax_attention
  return make(head_dim, nb_features=num_features, redraw_features=False)


def make_forward(name, num_features, q, k, v, mask, peer=None):
  """The attention of `name` as a function of (q, k, v) [B, L, H, Dh]."""
  if name == "performer_peer":
    return peer
  if name in DPA:
    dpa = jax.nn.dot_product_attention
    return functools.partial(dpa, implementation=DPA[name])
  core, options = (name, {}) if name in layers.ATTENTIONS else PRESETS[name]
  if core in ("rmfa", "performer", "rfa") or "num_features" in options:
    options = {**options, "num_features": num_features}
  module = layers.attention_class(core, **options)()
  keys = {"params": jax.random.key(1), "features": jax.random.key(2)}
  variables = module.init(keys, q, k, v, mask=mask)
  return lambda q, k, v: module.apply(variables, q, k, v, mask=mask)


def rmfa_flops(batch, length, heads, head_dim, num_features, width):
  """Matmul FLOPs of RMFA fwd+bwd (gradients for q, k, v) on N = B H L rows:
  the q and k projections (2 N Dh W each, again backward), phi(K)^T V' and
  phi(Q) S (2 N M (Dh+1) each, three times that with the backward)."""
  rows = batch * heads * length
  return 8 * rows * head_dim * width + 12 * rows * num_features * (head_dim + 1)


def _compile(forward, q, k, v):
  """(forward, forward+backward) jitted and warmed up, and their memory."""
  loss = lambda q, k, v: jnp.sum(forward(q, k, v) ** 2)
  fns = jax.jit(forward), jax.jit(jax.grad(loss, argnums=(0, 1, 2)))
  memory = {}
  for kind, fn in zip(("fwd", "fwd_bwd"), fns, strict=True):
    analysis = fn.lower(q, k, v).compile().memory_analysis()
    memory[f"{kind}_temp_bytes"] = getattr(analysis, "temp_size_in_bytes", None)
  for fn in fns[::-1]:
    jax.block_until_ready(fn(q, k, v))
  stats = jax.devices()[0].memory_stats() or {}
  return fns, {**memory, "device_peak_bytes": stats.get("peak_bytes_in_use")}


def _record_failure(row: dict, name: str, e: Exception) -> None:
  """An OOM or cuDNN's refusal goes into the row; anything else raises."""
  if name == "dpa_cudnn" and "RESOURCE_EXHAUSTED" not in str(e):
    row.setdefault("errors", {})[name] = f"{type(e).__name__}: {str(e)[:300]}"
  elif "RESOURCE_EXHAUSTED" in str(e) or "memory" in str(e):
    row["oom"].append(name)
  else:
    raise e


def main(argv=None):
  args = common.flags(
    __doc__,
    **dict(lengths="128,256,512,1024,2048,4096,8192,16384", repeats=5),
    **dict(batch=2, heads=2, head_dim=32, num_features=128, dtype="float32"),
    variants=",".join(layers.ATTENTIONS.names()),
    **dict(peer_src="", out="docs/attention_speed.json"),
  ).parse_args(argv)
  variants, peer = args.variants.split(","), None
  if args.peer_src:
    peer = load_peer(args.peer_src, args.head_dim, args.num_features)
    variants += [] if "performer_peer" in variants else ["performer_peer"]
  b, h, d, m = args.batch, args.heads, args.head_dim, args.num_features
  shapes = dict(batch=b, heads=h, head_dim=d, num_features=m, dtype=args.dtype)
  mach = common.machine()
  results = {k: mach[k] for k in ("device", "host", "jax", "cpu_count")}
  results |= dict(command=common.command("attention_speed", argv))
  results |= dict(shapes=shapes, rows=[], measure=MEASURE)
  results["matmul_gflops"] = common.matmul_gflops()
  print(f"{mach['device']} {shapes} {results['matmul_gflops']:.0f} GFLOP/s")
  on_cpu, skipped = jax.default_backend() == "cpu", set()
  for length in map(int, args.lengths.split(",")):
    keys = jax.random.split(jax.random.key(length), 3)
    shape = (b, length, h, d)
    q, k, v = (jax.random.normal(key, shape, args.dtype) for key in keys)
    mask = jnp.ones((b, length), bool)
    row, fns, memory = {"length": length, "oom": []}, {}, {}
    for name in variants:
      too_long = on_cpu and name == "softmax" and length > SOFTMAX_MAX_LEN_CPU
      if name in skipped or too_long:
        continue
      try:
        forward = make_forward(name, m, q, k, v, mask, peer)
        fns[name], memory[name] = _compile(forward, q, k, v)
      except Exception as e:  # pylint: disable=broad-except
        skipped.add(name)
        _record_failure(row, name, e)
    calls = {(n, i): (fns[n][i], (q, k, v)) for n in fns for i in (0, 1)}
    times = common.interleaved(calls, args.repeats)
    for n in fns:  # fwd+bwd median and min, forward median, memory
      both, fwd = times[n, 1], times[n, 0]
      ms = dict(median_ms=statistics.median(both), min_ms=min(both))
      ms["fwd_median_ms"] = statistics.median(fwd)
      row[n] = {k: 1e3 * t for k, t in ms.items()} | memory[n]
    if "rmfa" in row:
      flops = rmfa_flops(b, length, h, d, m, m - 1)
      row["rmfa"]["gflops"] = flops / row["rmfa"]["min_ms"] / 1e6
      share = row["rmfa"]["gflops"] / results["matmul_gflops"]
      row["rmfa"]["fraction_of_matmul"] = share
    results["rows"].append(row)
    ms = {n: round(row[n]["median_ms"], 1) for n in fns}
    print(f"L={length} fwd+bwd ms", ms, "OOM", row["oom"], flush=True)
    common.write(args.out, common.dumps(results))  # kept if a timeout cuts
  return results


if __name__ == "__main__":
  main()
