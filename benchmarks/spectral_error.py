"""Approximation error of every Spectraformer grid cell vs the feature count M.

The kernel-matrix error of `spectral.kernel_estimate` and the attention error
of each (component, weights) cell as `layers.SpectralAttention` runs it,
against exact softmax-kernel attention, on kernel_error's PreSBN'd (`presbn`)
or Gaussian (`gauss`, its `raw`) inputs (docs/METHOD.md §7; slopes fitted
over M > d).

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
from benchmarks import kernel_error
from macformer_jax import attention
from macformer_jax import spectral

REGIMES = {"presbn": "presbn", "gauss": "raw"}  # -> kernel_error's inputs
ERRORS = ("kernel_error", "attention_error")
QUICK = dict(M=[16, 64], seeds=2, length=64, kernel_length=32)
FULL = dict(M=[2**i for i in range(4, 11)], seeds=5, length=1024)
FULL["kernel_length"] = 256
HEAD_DIM, SIGMA = 32, 0.5  # d; the std of q, k in the gauss regime


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def draw(weights, width, seeds, key):
  """[S, d, width] projections, one per seed."""
  one = lambda k: spectral.sample_weights(k, weights, HEAD_DIM, width)
  return jax.vmap(one)(jax.random.split(key, seeds))


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def cell_errors(component, num_features, kernel_length, ws, x, y, v):
  """Kernel and attention errors [N, S] for projections ws [N, S, d, W],
  x, y [S, 1, 1, L, d] (heads first) and v [S, 1, L, 1, d]."""
  opts = dict(num_features=num_features, gerf_logit=jnp.zeros((1, 1, 1)))
  signed = component in spectral.SIGNED  # gerf at initialisation: A = 0
  eps = attention.RMFA_DENOMINATOR_EPS if signed else 1e-6
  lin = dict(heads_first=True, eps=eps, eps_per_key=signed)
  lin["constant"] = 1.0 if component == "rmf" else 0.0

  def one(w, x, y, v):
    xk, yk = x[..., :kernel_length, :], y[..., :kernel_length, :]
    khat = spectral.kernel_estimate(component, w, xk, yk, **opts)
    kernel = jnp.exp(jnp.einsum("...id,...jd->...ij", xk, yk))
    phi_q, phi_k = spectral.feature_pair(component, w, x, y, **opts)
    out = attention.linear_attention(phi_q, phi_k, v, **lin)
    xs, ys = jnp.swapaxes(x, 1, 2), jnp.swapaxes(y, 1, 2)
    exact = attention.kernelized_attention(xs, ys, v, "exp")
    return kernel_error.rel_error(khat, kernel), kernel_error.rel_error(
      out, exact
    )

  return jax.vmap(lambda w: jax.vmap(one)(w, x, y, v))(ws)


def run(s: dict):
  names = [w for w in spectral.WEIGHTS if w != "rademacher"]
  inputs = kernel_error.make_inputs(
    jax.random.key(0), s["seeds"], s["length"], HEAD_DIM, SIGMA
  )
  v, curves = inputs["v"][:, None, :, None], {}
  for regime, mode in REGIMES.items():
    x, y = (a[:, None, None] for a in inputs[mode])
    for m in s["M"]:
      for component in spectral.COMPONENTS:
        cells = ["rademacher"] if component == "rmf" else names
        width = spectral.projection_width(component, m)
        key = lambda i, m=m: jax.random.fold_in(jax.random.key(1), 1000 * i + m)
        ws = [draw(w, width, s["seeds"], key(i)) for i, w in enumerate(cells)]
        args = (component, m, s["kernel_length"], jnp.stack(ws), x, y, v)
        errors = [np.asarray(e) for e in cell_errors(*args)]
        for i, w in enumerate(cells):
          c = dict(regime=regime, component=component, weights=w, M=[])
          c = curves.setdefault((regime, component, w), c)
          c["M"].append(m)
          for name, err in zip(ERRORS, errors, strict=True):
            c.setdefault(name, {"mean": [], "std": []})
            c[name]["mean"].append(common.num(np.mean(err[i])))
            c[name]["std"].append(common.num(np.std(err[i])))
      print(f"{regime} M={m} done", flush=True)
  for c in curves.values():
    for name in ERRORS:
      slope = common.fit_slope(c["M"], c[name]["mean"], above=HEAD_DIM)
      c[name]["slope"] = slope
  return list(curves.values())


def make_plot(result, path):
  """Attention error vs M: one panel per (regime, component), colour =
  weights (gerf at A = 0 coincides with posrf)."""
  plt = common.pyplot()
  colors = dict(zip(spectral.WEIGHTS, plt.cm.tab10.colors, strict=False))
  shape = (len(REGIMES), len(spectral.COMPONENTS))
  style = dict(figsize=(18, 6.5), squeeze=False, sharex=True)
  fig, axes = plt.subplots(*shape, **style)
  for row, regime in enumerate(REGIMES):
    for col, component in enumerate(spectral.COMPONENTS):
      ax = axes[row][col]
      for c in result["curves"]:
        if (c["regime"], c["component"]) == (regime, component):
          mean = [common.as_float(v) for v in c["attention_error"]["mean"]]
          style = dict(color=colors[c["weights"]], marker=".", linewidth=1.2)
          ax.plot(c["M"], mean, **style, label=c["weights"])
      ax.set_xscale("log", base=2)
      ax.set_yscale("log")
      ax.set_title(f"{component}, {regime}", fontsize=10)
      ax.grid(True, which="both", alpha=0.3)
      if row == len(REGIMES) - 1:
        ax.set_xlabel("M (features)")
      if col == 0:
        ax.set_ylabel("attention rel. error")
  handles, labels = axes[0][1].get_legend_handles_labels()
  style = dict(loc="upper center", fontsize=9, bbox_to_anchor=(0.5, 0.95))
  fig.legend(handles, labels, ncol=len(labels), **style)
  title = "Spectraformer grid: attention error vs M (mean over seeds); "
  fig.suptitle(title + "kernel errors are in the JSON", y=0.995, fontsize=11)
  fig.tight_layout(rect=(0, 0, 1, 0.9))
  fig.savefig(path, dpi=100)
  plt.close(fig)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="seconds (tests)")
  parser.add_argument("--out_json", default="docs/spectral_error.json")
  parser.add_argument("--out_png", default="docs/spectral_error.png")
  help_ = "only redraw --out_png from --out_json"
  parser.add_argument("--replot", action="store_true", help=help_)
  args = parser.parse_args(argv)
  if args.replot:
    return make_plot(common.load_json(args.out_json)[0], args.out_png)
  s, start = QUICK if args.quick else FULL, time.time()
  curves = run(s)
  regimes = {
    "presbn": "PreSBN'd q, k (unit norm) * d^-1/4",
    "gauss": f"q, k ~ N(0, {SIGMA}^2 I) * d^-1/4",
  }
  settings = dict(s, head_dim=HEAD_DIM, regimes=regimes)
  settings["unbiased_weights"] = list(spectral.UNBIASED_WEIGHTS)
  result = {"command": common.command("spectral_error", argv)}
  result.update(date=common.now(), runtime_s=round(time.time() - start, 1))
  result.update(machine=common.machine(), settings=settings, curves=curves)
  if args.out_json:
    common.write(args.out_json, json.dumps(result, indent=1))
  if args.out_png:
    make_plot(result, args.out_png)
  return result


if __name__ == "__main__":
  main()
