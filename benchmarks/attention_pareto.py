r"""Time against error: every estimator of exp(q . k) attention on one plot.

For each length L, each method and each feature count M: the fwd+bwd time of
sum(out^2) w.r.t. q, k, v (jit, median over repeats, all (method, M) pairs
interleaved within each repeat in one process), XLA's temp memory of that
compiled function, and the relative error |out - exact|_F / |exact|_F of the
attention output against exact exp-kernel attention, computed in float64 on
`--rows` sampled query rows (all L keys), averaged over `--draws` feature
draws. Every method gets the same q, k: PreSBN'd (unit norm) then scaled by
s, s in `--scales` (Dh^-1/4, the authors'; 0.7, the tuned one), so they all
estimate exp(q . k) with |q . k| <= s^2.

Methods (`--methods`):
  rmfa            `attention.macformer_attention` (the README's one call, its
                  default block-wise path), exp kernel, stratified + chained
  rmfa_sampled    the paper's sampled degrees (chained)
  rmfa_indep      stratified, independent projections (Kar & Karnick)
  rmfa_unblocked  rmfa with materialised features (block_size=None)
  favor           our FAVOR+ (`features.favor_positive`, orthogonal)
  performer_peer  google-research Performer's own JAX code, loaded from
                  `--peer_src` (never vendored); the projection is redrawn
                  per draw through its `draw_weights`
  rfa             random Fourier features (`features.fourier_features`)
  spectra_<c>_<w> a Spectraformer cell (`spectral.feature_pair`)

  python benchmarks/attention_pareto.py --peer_src /path/fast_attention.py
  python benchmarks/attention_pareto.py --lengths 1024 --num_features 64,128 \
      --methods rmfa,favor --repeats 2 --out /tmp/p.json        # seconds

Writes the JSON (`--out`), the plot (same stem, .png: time on x, error on y,
one curve per method, a panel per L and scale) and a Markdown section (same
stem, .md) with the "time to reach error <= e" table, which
`benchmarks/make_report.py` puts into docs/BENCHMARKS.md.
"""

import argparse
import json
import math
import os
import platform
import statistics
import sys

import jax
import jax.numpy as jnp
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "benchmarks"))
# pylint: disable=g-import-not-at-top,wrong-import-position
import attention_speed  # load_peer, matmul_gflops, rmfa_flops, time_call
from macformer_jax import attention
from macformer_jax import features
from macformer_jax import normalization
from macformer_jax import spectral

DEFAULT_METHODS = ("rmfa,rmfa_sampled,rmfa_indep,rmfa_unblocked,favor,"
                   "performer_peer,rfa,spectra_posrf_orf,spectra_oprf_orf,"
                   "spectra_saderf_orf,spectra_trigrf_orf")
RMFA = {"rmfa": ("stratified", "chained", 512),
        "rmfa_sampled": ("sampled", "chained", 512),
        "rmfa_indep": ("stratified", "independent", 512),
        "rmfa_unblocked": ("stratified", "chained", None)}
LEVELS = (0.1, 0.07, 0.05, 0.03, 0.02, 0.015, 0.01, 0.007, 0.005, 0.003)


def heads_first(x):
  return jnp.swapaxes(x, 1, 2)


def make_method(name, dim, m, peer_src):
  """(draw(key) -> params, fn(params, q, k, v) -> out [B, L, H, Dv])."""
  if name in RMFA:
    allocation, projection, block = RMFA[name]
    draw = lambda key: features.sample_rmf(
        key, dim, m, "exp", allocation, projection=projection,
        allocation_seed=int(jax.random.randint(key, (), 0, 2**31 - 1)))
    # pre_sbn=False, scale 1: q, k arrive PreSBN'd and scaled.
    fn = lambda p, q, k, v: attention.macformer_attention(
        p, q, k, v, qk_scale=1.0, pre_sbn=False, block_size=block)
    return draw, fn
  if name == "performer_peer":
    peer = attention_speed.load_peer(peer_src, dim, m)
    owner = peer.__self__  # the peer's FastAttention object
    # The peer divides q, k by Dh^1/4 itself: undo it, so it sees our q, k.
    undo = dim**0.25

    def fn(w, q, k, v):
      owner.projection_matrix = w
      return peer(q * undo, k * undo, v)
    return owner.draw_weights, fn
  if name == "favor":
    draw = lambda key: features.sample_orthogonal_gaussian(key, dim, m)
    fn = lambda w, q, k, v: attention.linear_attention(
        features.favor_positive(w, heads_first(q), is_query=True),
        features.favor_positive(w, heads_first(k), is_query=False), v,
        heads_first=True)
    return draw, fn
  if name == "rfa":
    draw = lambda key: features.sample_gaussian(key, dim, m // 2)
    fn = lambda w, q, k, v: attention.linear_attention(
        features.fourier_features(w, heads_first(q)),
        features.fourier_features(w, heads_first(k)), v,
        eps=attention.RMFA_DENOMINATOR_EPS, eps_per_key=True,
        heads_first=True)
    return draw, fn
  if name.startswith("spectra_"):
    component, weights = name[len("spectra_"):].split("_", 1)
    spectral.check_cell(component, weights)
    width = spectral.projection_width(component, m)
    draw = lambda key: spectral.sample_weights(key, weights, dim, width)
    signed = component in spectral.SIGNED

    def fn(w, q, k, v):
      phi_q, phi_k = spectral.feature_pair(component, w, heads_first(q),
                                           heads_first(k), num_features=m)
      return attention.linear_attention(
          phi_q, phi_k, v, heads_first=True, eps_per_key=signed,
          eps=attention.RMFA_DENOMINATOR_EPS if signed else 1e-6,
          constant=1.0 if component == "rmf" else 0.0)
    return draw, fn
  raise ValueError(f"unknown method {name!r}")


def exact_rows(q, k, v, rows):
  """float64 exp-kernel attention of the query rows `rows`: [B, R, H, Dv]."""
  q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
  logits = np.einsum("brhd,blhd->bhrl", q[:, rows], k)
  weights = np.exp(logits - logits.max(-1, keepdims=True))
  weights /= weights.sum(-1, keepdims=True)
  return np.einsum("bhrl,blhd->brhd", weights, v)


def time_to_reach(points, level):
  """Least time at which a method's curve reaches error <= level.

  points: [(time, error)] of one method (one per M). Linear interpolation in
  log-log between consecutive points of the lower-left envelope; None if no
  point reaches the level.
  """
  points = sorted(points)
  best, front = math.inf, []
  for t, e in points:  # the Pareto front: error falls as time grows
    if e < best:
      best = e
      front.append((t, e))
  if not front or front[-1][1] > level:
    return None
  if front[0][1] <= level:
    return front[0][0]
  for (t0, e0), (t1, e1) in zip(front, front[1:]):
    if e1 <= level:
      f = math.log(e0 / level) / math.log(e0 / e1)
      return math.exp(math.log(t0) + f * math.log(t1 / t0))
  return None


def run(args):
  methods = args.methods.split(",")
  ms = [int(x) for x in args.num_features.split(",")]
  scales = [float(s) if s != "auto" else args.head_dim**-0.25
            for s in args.scales.split(",")]
  if "performer_peer" in methods and not args.peer_src:
    print("no --peer_src: skipping performer_peer")
    methods.remove("performer_peer")
  b, h, d = args.batch, args.heads, args.head_dim
  device = jax.devices()[0]
  out = {"device": f"{device.platform}:{device.device_kind}",
         "host": platform.processor() or platform.machine(),
         "cpus": os.cpu_count(), "jax": jax.__version__,
         "command": " ".join(["python benchmarks/attention_pareto.py"]
                             + sys.argv[1:]),
         "shapes": {"batch": b, "heads": h, "head_dim": d},
         "scales": scales, "rows": args.rows, "draws": args.draws,
         "measure": "fwd+bwd of sum(out^2) w.r.t. q, k, v, jit, median of "
                    "repeats interleaved; error vs float64 exact exp-kernel "
                    "attention on sampled rows, mean over draws",
         "matmul_gflops": attention_speed.matmul_gflops(), "results": []}
  print(f"{out['device']} B={b} H={h} Dh={d} matmul "
        f"{out['matmul_gflops']:.0f} GFLOP/s", flush=True)
  for length in [int(x) for x in args.lengths.split(",")]:
    keys = jax.random.split(jax.random.key(length), 3)
    q, k, v = (jax.random.normal(kk, (b, length, h, d)) for kk in keys)
    q, k = (normalization.pre_sbn(x) for x in (q, k))
    rows = np.random.default_rng(length).choice(
        length, min(args.rows, length), replace=False)
    exact = {s: exact_rows(q * s, k * s, v, rows) for s in scales}
    cells = {}
    for name in methods:
      for m in ms:
        draw, fn = make_method(name, d, m, args.peer_src)
        fwd = jax.jit(fn)
        params = draw(jax.random.key(10**6))
        grad = jax.jit(jax.grad(lambda p, q, k, v: jnp.sum(fn(p, q, k, v)**2),
                                argnums=(1, 2, 3)))
        qs, ks = q * scales[0], k * scales[0]
        grad = grad.lower(params, qs, ks, v).compile()  # one compile
        temp = grad.memory_analysis()
        errors = {}
        for s in scales:
          errs = []
          for i in range(args.draws):
            o = np.asarray(fwd(draw(jax.random.key(i)), q * s, k * s, v),
                           np.float64)[:, rows]
            errs.append(np.linalg.norm(o - exact[s])
                        / np.linalg.norm(exact[s]))
          errors[f"{s:g}"] = float(np.mean(errs))
        jax.block_until_ready(grad(params, qs, ks, v))  # warm-up
        cells[(name, m)] = {"method": name, "num_features": m,
                            "length": length, "errors": errors,
                            "temp_bytes": temp.temp_size_in_bytes,
                            "times": [], "_call": (grad, (params, qs, ks, v))}
    for _ in range(args.repeats):  # interleaved
      for cell in cells.values():
        fn, fargs = cell["_call"]
        jax.block_until_ready(fn(*fargs))  # untimed: page faults of the last
        cell["times"] += attention_speed.time_call(fn, fargs, 1)
    for cell in cells.values():
      del cell["_call"]
      cell["ms"] = 1e3 * statistics.median(cell["times"])
      cell["times"] = [1e3 * t for t in cell["times"]]
      if cell["method"] == "rmfa":
        flops = attention_speed.rmfa_flops(b, length, h, d, cell[
            "num_features"], cell["num_features"] - 1)
        cell["fraction_of_matmul"] = (flops / cell["ms"] / 1e6
                                      / out["matmul_gflops"])
      out["results"].append(cell)
      print(f"L={length:>6} {cell['method']:>20} M={cell['num_features']:>4}"
            f" {cell['ms']:8.1f} ms {cell['temp_bytes'] / 2**20:7.1f} MiB  "
            + " ".join(f"err@{s}={e:.4f}" for s, e in cell["errors"].items()),
            flush=True)
    with open(args.out, "w") as f:  # after every length
      json.dump(out, f, indent=1)
  return out


def summary(data):
  """Markdown section: the time-to-error table and the headline ratios."""
  res = data["results"]
  methods = list(dict.fromkeys(r["method"] for r in res))
  lengths = sorted({r["length"] for r in res})
  stem = os.path.splitext(os.path.basename(data.get("out", "x")))[0]
  lines = ["## Time against error (Pareto)", "",
           f"Command: `{data['command']}`. Machine: {data['device']}, "
           f"{data['host']}, {data['cpus']} CPUs, jax {data['jax']}; matmul "
           f"{data['matmul_gflops']:.0f} GFLOP/s. Measure: {data['measure']} "
           f"({data['rows']} rows, {data['draws']} draws). "
           f"B = {data['shapes']['batch']}, H = {data['shapes']['heads']}, "
           f"Dh = {data['shapes']['head_dim']}; q, k PreSBN'd and scaled by "
           "s. All runs in one process: compare ratios, not absolute times "
           "across runs.", "", f"![time vs error]({stem}.png)", ""]
  peer = "performer_peer" if "performer_peer" in methods else "favor"
  for length in lengths:
    for s in data["scales"]:
      key = f"{s:g}"
      lines += [f"L = {length}, s = {s:.3g}: fwd+bwd ms to reach error <= e "
                "(log-log interpolation between feature counts; - not "
                "reached)", ""]
      pts = {n: [(r["ms"], r["errors"][key]) for r in res
                 if r["method"] == n and r["length"] == length]
             for n in methods}
      lines.append("| method | " + " | ".join(f"{e:g}" for e in LEVELS)
                   + " |")
      lines.append("|---" * (len(LEVELS) + 1) + "|")
      for n in methods:
        tt = [time_to_reach(pts[n], e) for e in LEVELS]
        lines.append(f"| {n} | " + " | ".join(
            "-" if t is None else f"{t:.1f}" for t in tt) + " |")
      if "rmfa" in pts and peer in pts:
        ratios = [(e, time_to_reach(pts[peer], e),
                   time_to_reach(pts["rmfa"], e)) for e in LEVELS]
        ratios = [f"{e:g}: " + (f"{tp / tr:.2f}x" if tp else "rmfa only")
                  for e, tp, tr in ratios if tr]
        lines += ["", f"{peer} time / rmfa time at equal error: "
                  + (", ".join(ratios) or "no common level")]
      lines.append("")
  lines += ["Equal M (fwd+bwd ms, temp MiB of the compiled fwd+bwd; "
            f"ratio = {peer} / rmfa):", "",
            "| L | M | rmfa ms | " + f"{peer} ms | ratio | rmfa MiB | "
            f"{peer} MiB | rmfa % of matmul |", "|---" * 8 + "|"]
  by = {(r["method"], r["length"], r["num_features"]): r for r in res}
  for length in lengths:
    for m in sorted({r["num_features"] for r in res}):
      a, p = by.get(("rmfa", length, m)), by.get((peer, length, m))
      if a and p:
        lines.append(
            f"| {length} | {m} | {a['ms']:.1f} | {p['ms']:.1f} | "
            f"{p['ms'] / a['ms']:.2f}x | {a['temp_bytes'] / 2**20:.1f} | "
            f"{p['temp_bytes'] / 2**20:.1f} | "
            f"{100 * a['fraction_of_matmul']:.0f}% |")
  return "\n".join(lines) + "\n"


def plot(data, path):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  res = data["results"]
  lengths = sorted({r["length"] for r in res})
  scales = data["scales"]
  fig, axes = plt.subplots(len(scales), len(lengths), squeeze=False,
                           figsize=(4.5 * len(lengths), 3.8 * len(scales)))
  methods = list(dict.fromkeys(r["method"] for r in res))
  for i, s in enumerate(scales):
    for j, length in enumerate(lengths):
      ax = axes[i][j]
      for n in methods:
        pts = sorted((r["ms"], r["errors"][f"{s:g}"], r["num_features"])
                     for r in res if r["method"] == n
                     and r["length"] == length)
        style = "-" if n.startswith("rmfa") else "--"
        ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker="o",
                ms=3, label=n, lw=2.2 if n in ("rmfa", "performer_peer")
                else 1)
      ax.set_xscale("log")
      ax.set_yscale("log")
      ax.set_title(f"L = {length}, s = {s:.3g}", fontsize=9)
      ax.set_xlabel("fwd+bwd ms")
      ax.set_ylabel("relative error")
      ax.grid(True, which="both", alpha=0.3)
  axes[0][-1].legend(fontsize=6)
  fig.tight_layout()
  fig.savefig(path, dpi=110)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--lengths", default="1024,4096,16384")
  parser.add_argument("--num_features", default="32,64,128,256,512")
  parser.add_argument("--methods", default=DEFAULT_METHODS)
  parser.add_argument("--scales", default="auto,0.7",
                      help="q/k scales after PreSBN; auto = Dh^-1/4")
  parser.add_argument("--batch", type=int, default=2)
  parser.add_argument("--heads", type=int, default=2)
  parser.add_argument("--head_dim", type=int, default=32)
  parser.add_argument("--rows", type=int, default=128,
                      help="query rows of the float64 error")
  parser.add_argument("--draws", type=int, default=3)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--peer_src", default=None,
                      help="Performer's fast_attention.py (adds "
                      "performer_peer)")
  parser.add_argument("--out", default="docs/attention_pareto.json")
  parser.add_argument("--report_only", action="store_true",
                      help="redraw the .png and .md from --out")
  args = parser.parse_args(argv)
  if args.report_only:
    with open(args.out) as f:
      data = json.load(f)
  else:
    data = run(args)
  data["out"] = args.out
  stem = os.path.splitext(args.out)[0]
  plot(data, stem + ".png")
  text = summary(data)
  with open(stem + ".md", "w") as f:
    f.write(text)
  print(text)


if __name__ == "__main__":
  main()
