r"""Time against error of every estimator of exp(q . k) attention -> JSON.

For each length L, method and feature count M: the fwd+bwd time of sum(out^2)
w.r.t. q, k, v (jit, median over repeats, all (method, M) interleaved within
each repeat in one process), XLA's temp memory of that compiled function, and
the relative error |out - exact|_F / |exact|_F of the attention output
against exact exp-kernel attention in float64 on `--rows` sampled query rows
(all keys), mean over `--draws` feature draws. Every method gets the same
q, k: PreSBN'd (unit norm), then scaled by s in `--scales` (Dh^-1/4, the
authors'; 0.7, the tuned one), so all estimate exp(q . k), |q . k| <= s^2.

Methods: rmfa (`attention.macformer_attention`, the README's one call:
stratified, chained, block-wise), rmfa_sampled (the paper's sampled
degrees), rmfa_indep (independent projections, Kar & Karnick 2012),
rmfa_unblocked (materialised features), rmfa_h01 and rmfa_h01_sampled
(the constant and linear terms exact, `exact_linear=True`, docs/METHOD.md
§3.3; stratified or sampled over degrees >= 2), favor
(`features.favor_positive`, orthogonal), performer_peer (google-research
Performer's own JAX code from `--peer_src`, never vendored; its projection
redrawn per draw), rfa
(`features.fourier_features`), spectra_<component>_<weights> (a
Spectraformer cell, `spectral.feature_pair`). `python -m
benchmarks.make_report` draws the plot and the "time to reach error <= e"
table from the JSON.

  python -m benchmarks.attention_pareto --peer_src /path/fast_attention.py
  python -m benchmarks.attention_pareto --lengths 1024 --num_features 64,128 \
      --methods rmfa,favor --repeats 2 --out /tmp/p.json        # seconds
"""

import argparse
import statistics

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import attention_speed
from benchmarks import common
from macformer_jax import attention
from macformer_jax import features
from macformer_jax import normalization
from macformer_jax import spectral

DEFAULT_METHODS = (
  "rmfa,rmfa_sampled,rmfa_indep,rmfa_unblocked,favor,"
  "performer_peer,rfa,spectra_posrf_orf,spectra_oprf_orf,"
  "spectra_saderf_orf,spectra_trigrf_orf"
)
# name: (allocation, projection, block_size, exact_linear)
RMFA = {
  "rmfa": ("stratified", "chained", 512, False),
  "rmfa_sampled": ("sampled", "chained", 512, False),
  "rmfa_indep": ("stratified", "independent", 512, False),
  "rmfa_unblocked": ("stratified", "chained", None, False),
  "rmfa_h01": ("stratified", "chained", 512, True),
  "rmfa_h01_sampled": ("sampled", "chained", 512, True),
}


def _linear(phi, w, q, k, v, **kw):
  """Linear attention of heads-first features phi(w, x) of [B, L, H, D]."""
  qh, kh = (jnp.swapaxes(x, 1, 2) for x in (q, k))
  return attention.linear_attention(*phi(w, qh, kh), v, heads_first=True, **kw)


def make_method(name, dim, m, peer_src):
  """(draw(key) -> params, fn(params, q, k, v) -> out [B, L, H, Dv])."""
  if name in RMFA:
    allocation, projection, block, exact_linear = RMFA[name]
    draw = lambda key: features.sample_rmf(
      key,
      dim,
      m,
      "exp",
      allocation,
      projection=projection,
      allocation_seed=int(jax.random.randint(key, (), 0, 2**31 - 1)),
      exact_linear=exact_linear,
    )
    # pre_sbn=False, scale 1: q, k arrive PreSBN'd and scaled.
    return draw, lambda p, q, k, v: attention.macformer_attention(
      p, q, k, v, qk_scale=1.0, pre_sbn=False, block_size=block
    )
  if name == "performer_peer":
    peer = attention_speed.load_peer(peer_src, dim, m)
    owner = peer.__self__  # the peer's FastAttention object

    def fn(w, q, k, v):  # the peer divides q, k by Dh^1/4 itself: undo it
      owner.projection_matrix = w
      return peer(q * dim**0.25, k * dim**0.25, v)

    return owner.draw_weights, fn
  if name == "favor":
    return (
      lambda key: features.sample_orthogonal_gaussian(key, dim, m),
      lambda w, q, k, v: _linear(
        lambda w, q, k: (
          features.favor_positive(w, q, is_query=True),
          features.favor_positive(w, k, is_query=False),
        ),
        w,
        q,
        k,
        v,
      ),
    )
  if name == "rfa":
    return (
      lambda key: features.sample_gaussian(key, dim, m // 2),
      lambda w, q, k, v: _linear(
        lambda w, q, k: (
          features.fourier_features(w, q),
          features.fourier_features(w, k),
        ),
        w,
        q,
        k,
        v,
        eps=attention.RMFA_DENOMINATOR_EPS,
        eps_per_key=True,
      ),
    )
  if name.startswith("spectra_"):
    component, weights = name[len("spectra_") :].split("_", 1)
    spectral.check_cell(component, weights)
    width = spectral.projection_width(component, m)
    signed = component in spectral.SIGNED
    return (
      lambda key: spectral.sample_weights(key, weights, dim, width),
      lambda w, q, k, v: _linear(
        lambda w, q, k: spectral.feature_pair(
          component, w, q, k, num_features=m
        ),
        w,
        q,
        k,
        v,
        eps_per_key=signed,
        eps=attention.RMFA_DENOMINATOR_EPS if signed else 1e-6,
        constant=1.0 if component == "rmf" else 0.0,
      ),
    )
  raise ValueError(f"unknown method {name!r}")


def exact_rows(q, k, v, rows):
  """float64 exp-kernel attention of the query rows `rows`: [B, R, H, Dv]."""
  q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
  logits = np.einsum("brhd,blhd->bhrl", q[:, rows], k)
  weights = np.exp(logits - logits.max(-1, keepdims=True))
  weights /= weights.sum(-1, keepdims=True)
  return np.einsum("bhrl,blhd->brhd", weights, v)


def _cell(name, m, length, q, k, v, rows, exact, args):
  """Errors and the compiled fwd+bwd (not yet timed) of one (method, M)."""
  draw, fn = make_method(name, args.head_dim, m, args.peer_src)
  fwd, params, s0 = jax.jit(fn), draw(jax.random.key(10**6)), args.scales[0]
  grad = jax.jit(
    jax.grad(lambda p, q, k, v: jnp.sum(fn(p, q, k, v) ** 2), argnums=(1, 2, 3))
  )
  call = (
    grad.lower(params, q * s0, k * s0, v).compile(),
    (params, q * s0, k * s0, v),
  )
  errors = {}
  for s in args.scales:
    errs = [
      np.linalg.norm(
        np.asarray(fwd(draw(jax.random.key(i)), q * s, k * s, v), np.float64)[
          :, rows
        ]
        - exact[s]
      )
      / np.linalg.norm(exact[s])
      for i in range(args.draws)
    ]
    errors[f"{s:g}"] = float(np.mean(errs))
  jax.block_until_ready(call[0](*call[1]))  # warm-up
  return {
    "method": name,
    "num_features": m,
    "length": length,
    "errors": errors,
    "temp_bytes": call[0].memory_analysis().temp_size_in_bytes,
    "times": [],
    "_call": call,
  }


def run(args):
  """Measures every (L, method, M); writes the JSON after every L."""
  methods = args.methods.split(",")
  args.scales = [
    float(s) if s != "auto" else args.head_dim**-0.25
    for s in args.scales.split(",")
  ]
  if "performer_peer" in methods and not args.peer_src:
    print("no --peer_src: skipping performer_peer")
    methods.remove("performer_peer")
  b, h, d = args.batch, args.heads, args.head_dim
  mach = common.machine()
  out = {
    "device": mach["device"],
    "host": mach["host"],
    "cpus": mach["cpu_count"],
    "jax": mach["jax"],
    "command": args.cmd,
    "shapes": {"batch": b, "heads": h, "head_dim": d},
    "scales": args.scales,
    "rows": args.rows,
    "draws": args.draws,
    "measure": "fwd+bwd of sum(out^2) w.r.t. q, k, v, jit, median of "
    "repeats interleaved; error vs float64 exact exp-kernel "
    "attention on sampled rows, mean over draws",
    "matmul_gflops": common.matmul_gflops(),
    "results": [],
  }
  print(
    f"{mach['device']} B={b} H={h} Dh={d} matmul "
    f"{out['matmul_gflops']:.0f} GFLOP/s",
    flush=True,
  )
  for length in [int(x) for x in args.lengths.split(",")]:
    keys = jax.random.split(jax.random.key(length), 3)
    q, k, v = (jax.random.normal(kk, (b, length, h, d)) for kk in keys)
    q, k = (normalization.pre_sbn(x) for x in (q, k))
    rows = np.random.default_rng(length).choice(
      length, min(args.rows, length), replace=False
    )
    exact = {s: exact_rows(q * s, k * s, v, rows) for s in args.scales}
    cells = [
      _cell(name, m, length, q, k, v, rows, exact, args)
      for name in methods
      for m in [int(x) for x in args.num_features.split(",")]
    ]
    for _ in range(args.repeats):  # interleaved
      for cell in cells:
        fn, fargs = cell["_call"]
        jax.block_until_ready(fn(*fargs))  # untimed: page faults of the last
        cell["times"] += common.time_call(fn, fargs)
    for cell in cells:
      del cell["_call"]
      cell["ms"] = 1e3 * statistics.median(cell["times"])
      cell["times"] = [1e3 * t for t in cell["times"]]
      if cell["method"] == "rmfa":
        flops = attention_speed.rmfa_flops(
          b, length, h, d, cell["num_features"], cell["num_features"] - 1
        )
        cell["fraction_of_matmul"] = (
          flops / cell["ms"] / 1e6 / out["matmul_gflops"]
        )
      out["results"].append(cell)
      print(
        f"L={length:>6} {cell['method']:>20} M={cell['num_features']:>4}"
        f" {cell['ms']:8.1f} ms {cell['temp_bytes'] / 2**20:7.1f} MiB  "
        + " ".join(f"err@{s}={e:.4f}" for s, e in cell["errors"].items()),
        flush=True,
      )
    common.write(args.out, common.dumps(out))
  return out


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--lengths", default="1024,4096,16384")
  parser.add_argument("--num_features", default="32,64,128,256,512")
  parser.add_argument("--methods", default=DEFAULT_METHODS)
  parser.add_argument(
    "--scales",
    default="auto,0.7",
    help="q/k scales after PreSBN; auto = Dh^-1/4",
  )
  for flag, default in (
    ("batch", 2),
    ("heads", 2),
    ("head_dim", 32),
    ("draws", 3),
    ("repeats", 5),
  ):
    parser.add_argument(f"--{flag}", type=int, default=default)
  parser.add_argument(
    "--rows", type=int, default=128, help="query rows of the float64 error"
  )
  parser.add_argument(
    "--peer_src",
    default=None,
    help="Performer's fast_attention.py (performer_peer)",
  )
  parser.add_argument("--out", default="docs/attention_pareto.json")
  args = parser.parse_args(argv)
  args.cmd = common.command("attention_pareto", argv)
  return run(args)


if __name__ == "__main__":
  main()
