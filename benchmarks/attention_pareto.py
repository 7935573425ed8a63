r"""Time against error of every estimator of exp(q . k) attention -> JSON.

Per length L, method and M: fwd+bwd time (jit, all interleaved), temp bytes,
and |out - exact|_F / |exact|_F against float64 exp-kernel attention on
`--rows` query rows, mean over `--draws` draws; q, k [B, L, H, Dh] PreSBN'd,
scaled by each of `--scales` (auto = Dh^-1/4). Methods: `RMFA`
(`attention.macformer_attention`), favor (`features.favor_positive`), rfa
(`features.fourier_features`), spectra_<component>_<weights>
(`spectral.feature_pair`), performer_peer (Performer's own code from
`--peer_src`, its projection redrawn per draw).

  python -m benchmarks.attention_pareto --lengths 1024 --num_features 64,128 \
      --methods rmfa,favor --repeats 2 --out /tmp/p.json        # seconds
"""

import statistics
import sys

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
  "rmfa,rmfa_h01,rmfa_sampled,rmfa_indep,rmfa_unblocked,favor,performer_peer,rfa,"
  "spectra_posrf_orf,spectra_oprf_orf,spectra_saderf_orf,spectra_trigrf_orf"
)
# name: (allocation, projection, block_size, exact_linear): "sampled" is the
# paper's, "independent" Kar & Karnick (2012), exact_linear docs/METHOD.md §3.3.
RMFA = {
  "rmfa": ("stratified", "chained", "auto", False),
  "rmfa_sampled": ("sampled", "chained", "auto", False),
  "rmfa_indep": ("stratified", "independent", "auto", False),
  "rmfa_unblocked": ("stratified", "chained", None, False),
  "rmfa_h01": ("stratified", "chained", "auto", True),
  "rmfa_h01_sampled": ("sampled", "chained", "auto", True),
}
MEASURE = (
  "fwd+bwd of sum(out^2) w.r.t. q, k, v, jit, median of repeats interleaved; "
  "error vs float64 exact exp-kernel attention on sampled rows, mean over draws"
)
SIGNED = dict(eps=attention.RMFA_DENOMINATOR_EPS, eps_per_key=True)


def _rmfa(name, dim, m):
  allocation, projection, block, exact_linear = RMFA[name]
  seed = lambda key: int(jax.random.randint(key, (), 0, 2**31 - 1))
  options = dict(projection=projection, exact_linear=exact_linear)
  draw = lambda key: features.sample_rmf(
    key, dim, m, "exp", allocation, allocation_seed=seed(key), **options
  )
  # pre_sbn=False, scale 1: q, k arrive PreSBN'd and scaled.
  return draw, lambda p, q, k, v: attention.macformer_attention(
    p, q, k, v, qk_scale=1.0, pre_sbn=False, block_size=block
  )


def _peer(dim, m, peer_src):
  peer = attention_speed.load_peer(peer_src, dim, m)
  owner = peer.__self__  # the peer's FastAttention object

  def fn(w, q, k, v):  # the peer divides q, k by Dh^1/4 itself: undo it
    owner.projection_matrix = w
    return peer(q * dim**0.25, k * dim**0.25, v)

  return owner.draw_weights, fn


def make_method(name, dim, m, peer_src):
  """(draw(key) -> params, fn(params, q, k, v) -> out [B, L, H, Dv])."""
  if name in RMFA:
    return _rmfa(name, dim, m)
  if name == "performer_peer":
    return _peer(dim, m, peer_src)
  if name == "favor":
    draw = lambda key: features.sample_orthogonal_gaussian(key, dim, m)
    phi = lambda w, x, query: features.favor_positive(w, x, is_query=query)
    pair, options = lambda w, q, k: (phi(w, q, True), phi(w, k, False)), {}
  elif name == "rfa":
    draw = lambda key: features.sample_gaussian(key, dim, m // 2)
    fourier = features.fourier_features
    pair, options = lambda w, q, k: (fourier(w, q), fourier(w, k)), SIGNED
  elif name.startswith("spectra_"):
    component, weights = name[len("spectra_") :].split("_", 1)
    spectral.check_cell(component, weights)
    width = spectral.projection_width(component, m)
    draw = lambda key: spectral.sample_weights(key, weights, dim, width)
    pair = lambda *wqk: spectral.feature_pair(component, *wqk, num_features=m)
    options = SIGNED if component in spectral.SIGNED else dict(eps=1e-6)
    options = {**options, "constant": 1.0 if component == "rmf" else 0.0}
  else:
    raise ValueError(f"unknown method {name!r}")

  def fn(w, q, k, v):  # linear attention of heads-first features
    qk = pair(w, *(jnp.swapaxes(x, 1, 2) for x in (q, k)))
    return attention.linear_attention(*qk, v, heads_first=True, **options)

  return draw, fn


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
  loss = lambda p, q, k, v: jnp.sum(fn(p, q, k, v) ** 2)
  call_args = (params, q * s0, k * s0, v)
  grad = jax.jit(jax.grad(loss, argnums=(1, 2, 3))).lower(*call_args).compile()
  errors = {}
  for s in args.scales:
    draws = (draw(jax.random.key(i)) for i in range(args.draws))
    outs = (np.asarray(fwd(p, q * s, k * s, v), np.float64) for p in draws)
    diffs = [np.linalg.norm(out[:, rows] - exact[s]) for out in outs]
    errors[f"{s:g}"] = float(np.mean(diffs / np.linalg.norm(exact[s])))
  jax.block_until_ready(grad(*call_args))  # warm-up
  temp = grad.memory_analysis().temp_size_in_bytes
  cell = dict(method=name, num_features=m, length=length, errors=errors)
  return cell | dict(temp_bytes=temp, times=[]), (grad, call_args)


def main(argv=None):
  args = common.flags(
    __doc__,
    **dict(lengths="1024,4096,16384", num_features="32,64,128,256,512"),
    **dict(methods=DEFAULT_METHODS, scales="auto,0.7", rows=128),
    **dict(batch=2, heads=2, head_dim=32, draws=3, repeats=5, peer_src=""),
    out="docs/attention_pareto.json",
  ).parse_args(argv)
  sys.stdout.reconfigure(line_buffering=True)  # progress lines in a log
  methods, scales = args.methods.split(","), args.scales.split(",")
  b, h, d = args.batch, args.heads, args.head_dim
  args.scales = [d**-0.25 if s == "auto" else float(s) for s in scales]
  if "performer_peer" in methods and not args.peer_src:
    print("no --peer_src: skipping performer_peer")
    methods.remove("performer_peer")
  mach = common.machine()
  out = dict(device=mach["device"], host=mach["host"], cpus=mach["cpu_count"])
  out |= dict(jax=mach["jax"], command=common.command("attention_pareto", argv))
  out |= dict(shapes=dict(batch=b, heads=h, head_dim=d), scales=args.scales)
  out |= dict(rows=args.rows, draws=args.draws, measure=MEASURE)
  out |= dict(matmul_gflops=common.matmul_gflops(), results=[])
  print(f"{mach['device']}: matmul {out['matmul_gflops']:.0f} GFLOP/s")
  for length in map(int, args.lengths.split(",")):
    keys = jax.random.split(jax.random.key(length), 3)
    q, k, v = (jax.random.normal(kk, (b, length, h, d)) for kk in keys)
    q, k = (normalization.pre_sbn(x) for x in (q, k))
    rng = np.random.default_rng(length)
    rows = rng.choice(length, min(args.rows, length), replace=False)
    exact = {s: exact_rows(q * s, k * s, v, rows) for s in args.scales}
    cells = [
      _cell(name, int(m), length, q, k, v, rows, exact, args)
      for name in methods
      for m in args.num_features.split(",")
    ]
    calls = dict(enumerate(call for _, call in cells))
    times = common.interleaved(calls, args.repeats)
    for i, (cell, _) in enumerate(cells):
      cell["times"] = [1e3 * t for t in times[i]]
      cell["ms"] = 1e3 * statistics.median(times[i])
      m = cell["num_features"]
      if cell["method"] == "rmfa":
        flops = attention_speed.rmfa_flops(b, length, h, d, m, m - 1)
        share = flops / cell["ms"] / 1e6 / out["matmul_gflops"]
        cell["fraction_of_matmul"] = share
      out["results"].append(cell)
      errors = [f"err@{s}={e:.4f}" for s, e in cell["errors"].items()]
      print(f"L={length} {cell['method']} M={m}: {cell['ms']:.1f} ms", *errors)
    common.write(args.out, common.dumps(out))
  return out


if __name__ == "__main__":
  main()
