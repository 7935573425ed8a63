r"""Approximation error of every Spectraformer grid cell vs the feature count M.

For every (component, weights) cell of `spectral.grid()` (docs/METHOD.md §7),
M in 16..1024 and several seeds, d = 32: the error |K_hat - K|_F / |K|_F of
`spectral.kernel_estimate` (K_ij = exp(x_i . y_j) on [Lk, Lk]) and the error
of the non-causal attention output as `layers.SpectralAttention` runs it,
against exact softmax-kernel attention. x = q d^-1/4, y = k d^-1/4 with q, k
PreSBN'd (`presbn`) or ~ N(0, sigma^2 I), sigma = 0.5 (`gauss`, harder);
v ~ N(0, I); gerf at A = 0, fastfood_learnable at its initial S, G, B. Slopes
of log(mean error) vs log(M) are fitted over M > d (Monte Carlo: -0.5).

  nice -n 19 python -m benchmarks.spectral_error     # minutes, 2 cores
  python -m benchmarks.spectral_error --quick         # seconds
  python -m benchmarks.spectral_error --replot        # the PNG from the JSON
"""

import argparse
import functools
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from macformer_jax import attention
from macformer_jax import normalization
from macformer_jax import spectral

REGIMES = ("presbn", "gauss")


def make_inputs(key, seeds, length, head_dim, regime, sigma):
  """x, y [S, 1, 1, L, d] (scaled, heads-first) and v [S, 1, L, 1, d]."""
  kq, kk, kv = jax.random.split(key, 3)
  shape = (seeds, 1, 1, length, head_dim)
  q, k = jax.random.normal(kq, shape), jax.random.normal(kk, shape)
  q, k = (
    (normalization.pre_sbn(q), normalization.pre_sbn(k))
    if regime == "presbn"
    else (q * sigma, k * sigma)
  )
  v = jax.random.normal(kv, (seeds, 1, length, 1, head_dim))
  return q * head_dim**-0.25, k * head_dim**-0.25, v


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def draw(weights, head_dim, width, seeds, key):
  """[S, d, width] projections, one per seed."""
  return jax.vmap(
    lambda kk: spectral.sample_weights(kk, weights, head_dim, width)
  )(jax.random.split(key, seeds))


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def cell_errors(component, num_features, kernel_length, ws, x, y, v):
  """Kernel and attention errors [N, S] for projections ws [N, S, d, W]."""
  logit = jnp.zeros((1, 1, 1))  # gerf at initialisation: A = 0
  rel = lambda a, b: (
    jnp.linalg.norm((a - b).ravel()) / jnp.linalg.norm(b.ravel())
  )

  def one(w, x, y, v):  # x, y [1, 1, L, d]; v [1, L, 1, d]
    xk, yk = x[..., :kernel_length, :], y[..., :kernel_length, :]
    khat = spectral.kernel_estimate(
      component, w, xk, yk, num_features=num_features, gerf_logit=logit
    )
    kernel = jnp.exp(jnp.einsum("...id,...jd->...ij", xk, yk))
    phi_q, phi_k = spectral.feature_pair(
      component, w, x, y, num_features=num_features, gerf_logit=logit
    )
    signed = component in spectral.SIGNED
    out = attention.linear_attention(
      phi_q,
      phi_k,
      v,
      heads_first=True,
      eps=attention.RMFA_DENOMINATOR_EPS if signed else 1e-6,
      eps_per_key=signed,
      constant=1.0 if component == "rmf" else 0.0,
    )
    exact = attention.kernelized_attention(
      jnp.swapaxes(x, 1, 2), jnp.swapaxes(y, 1, 2), v, "exp"
    )
    return rel(khat, kernel), rel(out, exact)

  return jax.vmap(lambda w: jax.vmap(one)(w, x, y, v))(ws)


def run(args):
  dims = [int(d) for d in args.dims.split(",")]
  names = [w for w in spectral.WEIGHTS if w != "rademacher"]
  curves = {}
  for regime in REGIMES:
    x, y, v = make_inputs(
      jax.random.key(args.seed),
      args.seeds,
      args.length,
      args.head_dim,
      regime,
      args.sigma,
    )
    for m in dims:
      for component in spectral.COMPONENTS:
        cells = ["rademacher"] if component == "rmf" else names
        width = spectral.projection_width(component, m)
        base = jax.random.key(args.seed + 1)
        ws = jnp.stack(
          [
            draw(
              w,
              args.head_dim,
              width,
              args.seeds,
              jax.random.fold_in(base, 1000 * i + m),
            )
            for i, w in enumerate(cells)
          ]
        )
        errors = [
          np.asarray(e)
          for e in cell_errors(component, m, args.kernel_length, ws, x, y, v)
        ]
        for i, w in enumerate(cells):
          c = curves.setdefault(
            (regime, component, w),
            {
              "regime": regime,
              "component": component,
              "weights": w,
              "M": [],
              "kernel_error": {"mean": [], "std": []},
              "attention_error": {"mean": [], "std": []},
            },
          )
          c["M"].append(m)
          for name, err in zip(("kernel_error", "attention_error"), errors):
            c[name]["mean"].append(common.num(np.mean(err[i])))
            c[name]["std"].append(common.num(np.std(err[i])))
      print(f"{regime} M={m} done", flush=True)
  for c in curves.values():
    for name in ("kernel_error", "attention_error"):
      c[name]["slope"] = common.fit_slope(
        c["M"], c[name]["mean"], above=args.head_dim
      )
  return list(curves.values())


def make_plot(result, path):
  """Attention error vs M: one panel per (regime, component), colour =
  weights (gerf at A = 0 coincides with posrf)."""
  plt = common.pyplot()
  colors = dict(zip(spectral.WEIGHTS, plt.cm.tab10.colors))
  fig, axes = plt.subplots(
    len(REGIMES),
    len(spectral.COMPONENTS),
    figsize=(18, 6.5),
    squeeze=False,
    sharex=True,
  )
  for row, regime in enumerate(REGIMES):
    for col, component in enumerate(spectral.COMPONENTS):
      ax = axes[row][col]
      for c in result["curves"]:
        if (c["regime"], c["component"]) == (regime, component):
          ax.plot(
            c["M"],
            [common.as_float(v) for v in c["attention_error"]["mean"]],
            color=colors[c["weights"]],
            marker=".",
            linewidth=1.2,
            label=c["weights"],
          )
      ax.set_xscale("log", base=2)
      ax.set_yscale("log")
      ax.set_title(f"{component}, {regime}", fontsize=10)
      ax.grid(True, which="both", alpha=0.3)
      if row == len(REGIMES) - 1:
        ax.set_xlabel("M (features)")
      if col == 0:
        ax.set_ylabel("attention rel. error")
  handles, labels = axes[0][1].get_legend_handles_labels()
  fig.legend(
    handles,
    labels,
    loc="upper center",
    ncol=len(labels),
    fontsize=9,
    bbox_to_anchor=(0.5, 0.95),
  )
  fig.suptitle(
    "Spectraformer grid: attention error vs M (mean over seeds); "
    "kernel errors are in the JSON",
    y=0.995,
    fontsize=11,
  )
  fig.tight_layout(rect=(0, 0, 1, 0.9))
  fig.savefig(path, dpi=100)
  plt.close(fig)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument(
    "--quick", action="store_true", help="tiny settings (seconds), for tests"
  )
  parser.add_argument("--dims", default=None, help="comma-separated M")
  parser.add_argument("--seeds", type=int, default=None)
  parser.add_argument("--length", type=int, default=None)
  parser.add_argument("--kernel_length", type=int, default=None)
  parser.add_argument("--head_dim", type=int, default=32)
  parser.add_argument(
    "--sigma", type=float, default=0.5, help="std of q, k in the gauss regime"
  )
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--out_json", default="docs/spectral_error.json")
  parser.add_argument(
    "--out_png", default="docs/spectral_error.png", help="empty: no plot"
  )
  parser.add_argument(
    "--replot",
    action="store_true",
    help="only redraw --out_png from --out_json",
  )
  args = parser.parse_args(argv)
  if args.replot:
    return make_plot(common.load_json(args.out_json)[0], args.out_png)
  for key, quick, full in (
    ("dims", "16,64", "16,32,64,128,256,512,1024"),
    ("seeds", 2, 5),
    ("length", 64, 1024),
    ("kernel_length", 32, 256),
  ):
    if getattr(args, key) is None:
      setattr(args, key, quick if args.quick else full)
  start = time.time()
  curves = run(args)
  result = {
    "command": common.command("spectral_error", argv),
    "date": common.now(),
    "runtime_s": round(time.time() - start, 1),
    "machine": common.machine(),
    "settings": {
      "M": [int(d) for d in args.dims.split(",")],
      "seeds": args.seeds,
      "length": args.length,
      "kernel_length": args.kernel_length,
      "head_dim": args.head_dim,
      "regimes": {
        "presbn": "PreSBN'd q, k (unit norm) * d^-1/4",
        "gauss": f"q, k ~ N(0, {args.sigma}^2 I) * d^-1/4",
      },
      "unbiased_weights": list(spectral.UNBIASED_WEIGHTS),
    },
    "curves": curves,
  }
  if args.out_json:
    common.write(args.out_json, json.dumps(result, indent=1))
  if args.out_png:
    make_plot(result, args.out_png)
  return result


if __name__ == "__main__":
  main()
