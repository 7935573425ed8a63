r"""Approximation error of random Maclaurin features vs the feature count D.

For every kernel, D in 16..4096 and several seeds, on q, k, v ~ N(0, 1)
(docs/METHOD.md §2.2, §5): the kernel error |K_hat - K|_F / |K|_F, K_ij =
f(q_i . k_j) on [Lk, Lk], and the attention error |A_hat - A|_F / |A|_F of
RMFA's non-causal output against `attention.kernelized_attention`. Inputs
`presbn`: PreSBN then * d^-1/4; `raw`: sigma * (q, k) * d^-1/4 (the authors'
no-ppSBN ablation), where |q . k| can leave the radius 1 of inverse/log/sqrt,
so errors are also taken against f truncated at degree 20 and non-finite
values are stored as "inf"/"nan". Maps: both allocations x both projection
layouts (`features.make_plan`, `features.rmf`), beside Performer FAVOR+ and
RFA on exp; and the variance of phi(x) . phi(y) at D = 128 beside the exact
formulas, for random pairs and near pairs (where chained features correlate).

`sampled` counts differ per draw, so every draw is placed in one superset
plan per (D, layout) (the largest count of every degree; extra features get
scale 0) with i.i.d. Rademacher projections: the distribution of
`features.sample_rmf`, one compilation per (D, layout) (tests check `embed`).

  python -m benchmarks.kernel_error            # ~1-2 min, 2 CPU cores
  python -m benchmarks.kernel_error --quick    # seconds (tests)
"""

import argparse
import functools
import math
import time
from typing import Dict, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from macformer_jax import attention
from macformer_jax import features
from macformer_jax import kernels
from macformer_jax import normalization

KERNELS = ("exp", "trigh", "inverse", "log", "sqrt")
ALLOCATIONS = ("sampled", "stratified")
PROJECTIONS = ("chained", "independent")
INPUTS = ("presbn", "raw")
BASELINES = ("performer", "rfa")
METRICS = (
  "kernel_error",
  "kernel_error_truncated",
  "attention_error",
  "attention_error_truncated",
)
LABELS = ("method", "kernel", "allocation", "projection", "inputs")
MAX_DEGREE = 20
CLIP = 1e3  # plot ceiling: larger or non-finite errors are drawn at it


# ----------------------------------------------------------------------------
# Superset plans: many draws with different degree counts, one static shape.
# ----------------------------------------------------------------------------
def superset_plan(
  plans: Sequence[features.FeaturePlan],
) -> features.FeaturePlan:
  """The smallest plan containing every plan (same layout): max counts."""
  counts = np.zeros(max(len(p.counts) for p in plans), np.int64)
  for p in plans:
    counts[: len(p.counts)] = np.maximum(counts[: len(p.counts)], p.counts)
  return features.FeaturePlan(
    "superset", 1.0, tuple(map(int, counts)), plans[0].projection
  )


def _move(x, src, dst) -> np.ndarray:
  """Block b of x (widths `src`) to the start of block b (widths `dst`)."""
  out = np.zeros(np.shape(x)[:-1] + (sum(dst),), np.float32)
  for i, j, n in zip(np.cumsum([0, *src]), np.cumsum([0, *dst]), src):
    out[..., j : j + n] = np.asarray(x)[..., i : i + n]
  return out


def embed(plan, projections, scales, sup):
  """A drawn map (`features.sample_rmf`) in a superset's layout: block b of
  `plan` goes to the start of block b of `sup` (padding 0, padded features
  scale 0), so `features.rmf` gives the same features, plus zeros."""
  return (
    _move(projections, plan.widths, sup.widths),
    _move(scales, plan.counts, sup.counts),
  )


def superset(dim, allocations, projection, seeds):
  """Draws (allocation, seed) -> their superset plan and scales [K, M-1] of
  every kernel embedded in it (the counts are kernel-free)."""
  draws = {}
  for allocation, seed in ((a, s) for a in allocations for s in seeds):
    made = [
      features.make_plan(
        dim,
        k,
        allocation,
        MAX_DEGREE,
        projection,
        seed if allocation == "sampled" else None,
      )
      for k in KERNELS
    ]
    draws[allocation, seed] = made[0][0], np.stack([s for _, s in made])
  sup = superset_plan([p for p, _ in draws.values()])
  return sup, {k: _move(s, p.counts, sup.counts) for k, (p, s) in draws.items()}


def rademacher(rng: np.random.Generator, shape) -> jax.Array:
  """i.i.d. +-1 float32, host-side (a JAX draw compiles per shape)."""
  return jnp.asarray(
    (2 * rng.integers(0, 2, shape, dtype=np.int8) - 1).astype(np.float32)
  )


# ----------------------------------------------------------------------------
# Inputs, exact targets, errors.
# ----------------------------------------------------------------------------
def make_inputs(key, num_seeds, length, head_dim, raw_sigma) -> Dict:
  """q, k [S, L, d] per input mode (scaled), v [S, L, d]."""
  q, k, v = (
    jax.random.normal(x, (num_seeds, length, head_dim))
    for x in jax.random.split(key, 3)
  )
  scale = head_dim**-0.25
  return {
    "presbn": (
      normalization.pre_sbn(q) * scale,
      normalization.pre_sbn(k) * scale,
    ),
    "raw": (raw_sigma * scale * q, raw_sigma * scale * k),
    "v": v,
  }


def _attend(q, k, v, kernel):
  """[L, d] single-head `attention.kernelized_attention`."""
  return attention.kernelized_attention(
    q[None, :, None], k[None, :, None], v[None, :, None], kernel
  )[0, :, 0]


@functools.partial(jax.jit, static_argnames=("kernel_length",))
def exact_targets(q, k, v, *, kernel_length):
  """[S, K, ...] exact and degree-20 truncated kernel matrices and attention
  outputs, and the fraction of pairs with |t| >= the radius."""

  def one_seed(q, k, v):
    t_full = q @ k.T
    t = t_full[:kernel_length, :kernel_length]
    out = {}
    for name in KERNELS:
      kern = kernels.get(name)
      trunc = kernels.Kernel(
        name,
        kern.coefficient,
        functools.partial(kernels.truncated, name, max_degree=MAX_DEGREE),
        math.inf,
      )
      for key, value in (
        ("kernel", kern.exact(t)),
        ("kernel_truncated", trunc.exact(t)),
        ("attention", _attend(q, k, v, kern)),
        ("attention_truncated", _attend(q, k, v, trunc)),
        ("outside_radius", jnp.mean(jnp.abs(t_full) >= kern.radius)),
      ):
        out.setdefault(key, []).append(value)
    return {key: jnp.stack(val) for key, val in out.items()}

  return jax.vmap(one_seed)(q, k, v)


def _errors(khat, att, targets):
  """[4] errors (METRICS order) of one estimate against its targets."""
  rel = lambda a, b: (
    jnp.linalg.norm((a - b).ravel()) / jnp.linalg.norm(b.ravel())
  )
  return jnp.stack(
    [
      rel(khat, targets["kernel"]),
      rel(khat, targets["kernel_truncated"]),
      rel(att, targets["attention"]),
      rel(att, targets["attention_truncated"]),
    ]
  )


@functools.partial(jax.jit, static_argnames=("plan", "kernel_length"))
def rmf_errors(projections, scales, q, k, v, targets, *, plan, kernel_length):
  """[S, K, 4] errors of RMF/RMFA: projections [S, d, W], scales
  [S, K, M-1] (0 for padding features), q, k, v [S, L, d]."""

  def one_seed(args):
    proj, sc, q, k, v, tg = args

    def one_kernel(s, tg):
      params = features.RMFParams(proj, s, plan)
      pq, pk = features.rmf(params, q), features.rmf(params, k)
      att = attention.rmfa(
        pq[None, :, None], pk[None, :, None], v[None, :, None]
      )[0, :, 0]
      return _errors(pq[:kernel_length] @ pk[:kernel_length].T, att, tg)

    return jax.vmap(one_kernel)(sc, tg)

  return jax.lax.map(one_seed, (projections, scales, q, k, v, targets))


@functools.partial(
  jax.jit, static_argnames=("method", "num_features", "kernel_length")
)
def baseline_errors(
  keys, q, k, v, targets, *, method, num_features, kernel_length
):
  """[S, 4] errors of Performer FAVOR+ or RFA on exp(q . k), as their
  layers run them; Performer's kernel estimate uses the unstabilised
  features exp(w.x - |x|^2/2)/sqrt(M) (the stabiliser cancels only in the
  attention ratio)."""
  d, lk = q.shape[-1], kernel_length

  def one_seed(args):
    key, q, k, v, tg = args
    if method == "performer":
      proj = features.sample_orthogonal_gaussian(key, d, num_features)
      raw = lambda x: (
        jnp.exp(x @ proj - 0.5 * jnp.sum(x * x, -1, keepdims=True))
        / math.sqrt(num_features)
      )
      pq = features.favor_positive(proj, q[None, None], is_query=True)
      pk = features.favor_positive(proj, k[None, None], is_query=False)
      return _errors(
        raw(q[:lk]) @ raw(k[:lk]).T,
        attention.linear_attention(
          pq, pk, v[None, :, None], eps=1e-6, heads_first=True
        )[0, :, 0],
        tg,
      )
    proj = features.sample_gaussian(key, d, num_features // 2)
    pq, pk = (features.fourier_features(proj, x) for x in (q, k))
    att = attention.linear_attention(
      pq[None, None],
      pk[None, None],
      v[None, :, None],
      eps=attention.RMFA_DENOMINATOR_EPS,
      eps_per_key=True,
      heads_first=True,
    )[0, :, 0]
    return _errors(pq[:lk] @ pk[:lk].T, att, tg)

  return jax.lax.map(one_seed, (keys, q, k, v, targets))


# ----------------------------------------------------------------------------
# Variance of phi(x) . phi(y) at one D.
# ----------------------------------------------------------------------------
def stratified_variance(
  kernel: str,
  counts: Sequence[int],
  projection: str,
  x: np.ndarray,
  y: np.ndarray,
) -> np.ndarray:
  """Exact Var[phi(x).phi(y)] [P] of a stratified map (fixed counts C_n).

  With u = (w.x)(w.y), E[u] = t and E[u^2] = Q (docs/METHOD.md §2.2), the
  degree-n part (a_n / C_n) sum_i p_n^(i) has variance (a_n^2 / C_n)
  (Q^n - t^2n) (`independent`); `chained` adds the covariance of a shared
  chain's degree-n and degree-m prefixes (n < m), t^(m-n) (Q^n - t^2n), for
  min(C_n, C_m) chains.
  """
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  t = np.sum(x * y, -1)
  q = (
    np.sum(x * x, -1) * np.sum(y * y, -1)
    + 2 * t**2
    - 2 * np.sum(x**2 * y**2, -1)
  )
  a = kernels.coefficients(kernel, len(counts) + 1)
  var = np.zeros_like(t)
  for n, cn in enumerate(counts, 1):
    base = q**n - t ** (2 * n) if cn else 0.0
    var = var + (a[n] ** 2 / cn * base if cn else 0.0)
    for m in range(n + 1, len(counts) + 1):
      cm = counts[m - 1]
      if projection == "chained" and cn and cm:
        var = var + (
          2 * a[n] * a[m] * min(cn, cm) / (cn * cm) * t ** (m - n) * base
        )
  return var


@functools.partial(jax.jit, static_argnames=("plan",))
def _pair_products(projections, scales, x, y, *, plan):
  """phi(x_p) . phi(y_p) [R, K, P]: projections [R, d, W], scales
  [R, K, M-1], x, y [P, d]."""

  def one(proj, s):
    params = features.RMFParams(proj, s, plan)
    return jnp.sum(features.rmf(params, x) * features.rmf(params, y), -1)

  return jax.vmap(jax.vmap(one, in_axes=(None, 0)))(projections, scales)


def variance_table(
  key,
  num_features: int,
  head_dim: int,
  num_pairs: int,
  num_draws: int,
  chunk: int = 250,
) -> Dict[str, object]:
  """Empirical and formula variances of phi(x).phi(y) (module docstring)."""
  num_chunks = -(-num_draws // chunk)  # equal chunks: one compilation
  chunk = -(-num_draws // num_chunks)
  num_draws = chunk * num_chunks
  kx, ky, knear, kdraw = jax.random.split(key, 4)
  rng = np.random.default_rng(np.asarray(jax.random.key_data(kdraw)))
  x = normalization.pre_sbn(jax.random.normal(kx, (num_pairs, head_dim)))
  noise = jax.random.normal(knear, (num_pairs, head_dim))
  s = head_dim**-0.25
  pair_sets = {
    "random": (
      x * s,
      s * normalization.pre_sbn(jax.random.normal(ky, (num_pairs, head_dim))),
    ),
    "near": (x * s, s * normalization.pre_sbn(x + 0.15 * noise)),
  }
  est = {}
  for allocation in ALLOCATIONS:
    for projection in PROJECTIONS:
      seeds = (
        range(7919, 7919 + num_draws) if allocation == "sampled" else [None]
      )
      sup, emb = superset(num_features, [allocation], projection, seeds)
      emb = np.broadcast_to(
        np.stack(list(emb.values())),
        (num_draws, len(KERNELS), sup.num_features - 1),
      )
      for lo in range(0, num_draws, chunk):
        proj = rademacher(rng, (chunk, head_dim, sup.projection_width))
        for name, (xs, ys) in pair_sets.items():
          est.setdefault((allocation, projection, name), []).append(
            np.asarray(
              _pair_products(
                proj, jnp.asarray(emb[lo : lo + chunk]), xs, ys, plan=sup
              )
            )
          )
  counts = features.make_plan(
    num_features, "exp", "stratified", MAX_DEGREE, "chained"
  )[0].counts
  rows = []
  for name, (xs, ys) in pair_sets.items():
    xs, ys = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
    t = np.sum(xs * ys, -1)
    for ki, kernel in enumerate(KERNELS):
      row = {
        "pairs": name,
        "kernel": kernel,
        "mean_abs_t": float(np.mean(np.abs(t))),
      }
      for allocation in ALLOCATIONS:
        target = np.asarray(
          kernels.truncated(
            kernel, t, MAX_DEGREE if allocation == "sampled" else len(counts)
          )
        )
        for projection in PROJECTIONS:
          e = np.concatenate(est[allocation, projection, name])[:, ki]
          e = e.astype(np.float64)
          label = f"{allocation}_{projection}"
          var = np.var(e, axis=0, ddof=1)
          row[f"empirical_{label}"] = float(np.mean(var))
          # Unbiasedness: z per pair; pairs share draws, so judge mean z^2.
          z = (e.mean(0) - target) / np.sqrt(var / e.shape[0])
          row[f"bias_z2_mean_{label}"] = float(np.mean(z**2))
          row[f"bias_z_max_{label}"] = float(np.max(np.abs(z)))
      row["formula_sampled_independent"] = float(
        np.mean(features.rmf_variance(kernel, xs, ys, num_features, MAX_DEGREE))
      )
      for projection in PROJECTIONS:
        row[f"formula_stratified_{projection}"] = float(
          np.mean(stratified_variance(kernel, counts, projection, xs, ys))
        )
      for a in ALLOCATIONS:
        row[f"chained_over_independent_{a}"] = (
          row[f"empirical_{a}_chained"] / row[f"empirical_{a}_independent"]
        )
      row["stratified_over_sampled_chained"] = (
        row["empirical_stratified_chained"] / row["empirical_sampled_chained"]
      )
      rows.append(row)
  return {
    "num_features": num_features,
    "head_dim": head_dim,
    "num_pairs": num_pairs,
    "num_draws": num_draws,
    "inputs": "PreSBN then * d^-1/4; 'random': independent x, y; "
    "'near': y = PreSBN(x + 0.15 noise)",
    "rows": rows,
  }


# ----------------------------------------------------------------------------
# The grid of curves.
# ----------------------------------------------------------------------------
def _summarise(dims, per_seed: np.ndarray) -> Dict[str, object]:
  """per_seed [len(dims), S] -> mean/std/per-seed lists and the slope."""
  with np.errstate(invalid="ignore", over="ignore"):
    mean, std = per_seed.mean(axis=1), per_seed.std(axis=1)
  out = {
    "mean": [common.num(m) for m in mean],
    "std": [common.num(s) for s in std],
    "per_seed": [[common.num(x) for x in row] for row in per_seed],
  }
  return dict(
    out,
    slope=common.fit_slope(dims, out["mean"]),
    nonfinite=int(np.sum(~np.isfinite(per_seed))),
  )


def run_grid(args, dims):
  """Every error curve: RMF (kernel x allocation x projection x inputs) and
  the baselines (x inputs), and the fraction of pairs outside the radius."""
  k_in, k_feat = jax.random.split(jax.random.key(args.seed))
  data = make_inputs(
    k_in, args.seeds, args.length, args.head_dim, args.raw_sigma
  )
  v, lk = data["v"], args.kernel_length
  targets = {
    mode: exact_targets(*data[mode], v, kernel_length=lk) for mode in INPUTS
  }
  rng = np.random.default_rng(args.seed)
  errors = {}  # curve labels -> [len(dims)] of [S, 4]
  for dim in dims:
    t0 = time.time()
    seeds = range(args.seeds)
    for projection in PROJECTIONS:
      sup, scales = superset(
        dim, ALLOCATIONS, projection, [1000003 * dim + s for s in seeds]
      )
      for allocation in ALLOCATIONS:
        proj = rademacher(
          rng, (args.seeds, args.head_dim, sup.projection_width)
        )
        sc = jnp.asarray(
          np.stack([scales[allocation, 1000003 * dim + s] for s in seeds])
        )
        for mode in INPUTS:
          err = np.asarray(
            rmf_errors(
              proj,
              sc,
              *data[mode],
              v,
              targets[mode],
              plan=sup,
              kernel_length=lk,
            )
          )
          for ki, name in enumerate(KERNELS):
            errors.setdefault(
              ("rmf", name, allocation, projection, mode), []
            ).append(err[:, ki])
    keys = jax.random.split(jax.random.fold_in(k_feat, dim), args.seeds)
    for method in BASELINES:
      for mode in INPUTS:
        tg = jax.tree.map(lambda x: x[:, 0], targets[mode])  # exp
        errors.setdefault((method, "exp", None, None, mode), []).append(
          np.asarray(
            baseline_errors(
              keys,
              *data[mode],
              v,
              tg,
              method=method,
              num_features=dim,
              kernel_length=lk,
            )
          )
        )
    print(f"D={dim:5d} done in {time.time() - t0:5.1f}s", flush=True)
  curves = [
    dict(
      zip(LABELS, labels),
      D=dims,
      **{
        m: _summarise(dims, np.stack(per_dim)[:, :, i])
        for i, m in enumerate(METRICS)
      },
    )
    for labels, per_dim in errors.items()
  ]
  return curves, {
    mode: {
      name: float(np.mean(targets[mode]["outside_radius"][:, i]))
      for i, name in enumerate(KERNELS)
    }
    for mode in INPUTS
  }


def find_curve(
  curves,
  *,
  method="rmf",
  kernel="exp",
  allocation=None,
  projection=None,
  inputs="presbn",
) -> dict:
  """The curve with these labels (KeyError naming them if none)."""
  key = (method, kernel, allocation, projection, inputs)
  for c in curves:
    if tuple(c[k] for k in LABELS) == key:
      return c
  raise KeyError(f"no curve {'/'.join(map(str, key))}")


# ----------------------------------------------------------------------------
# Plot.
# ----------------------------------------------------------------------------
def _plot_curve(ax, dims, summary, label, style):
  mean, std = (
    np.array([common.as_float(x) for x in summary[k]]) for k in ("mean", "std")
  )
  dims = np.asarray(dims, float)
  ok = np.isfinite(mean) & (mean <= CLIP)
  slope = summary.get("slope")
  lab = label + (f" ({slope:+.2f})" if slope is not None and ok.all() else "")
  line = ax.errorbar(
    dims[ok],
    mean[ok],
    yerr=np.where(
      np.isfinite(std[ok]), np.minimum(std[ok], mean[ok] * 0.95), 0
    ),
    label=lab,
    capsize=2,
    **style,
  )
  if (~ok).any():  # clipped or non-finite: a marker on the ceiling
    ax.scatter(
      dims[~ok],
      np.full((~ok).sum(), CLIP),
      marker="^",
      color=line[0].get_color(),
      zorder=5,
      clip_on=False,
    )
    ax.plot(
      [],
      [],
      " ",
      label=f"  {label}: {int((~ok).sum())} D clipped (>{CLIP:g} or inf/nan)",
    )


def make_plot(result: dict, path: str) -> None:
  """2 x 3 panels: kernel and attention error; default map with baselines,
  allocation x layout, and no PreSBN."""
  plt = common.pyplot()
  curves, s, m = result["curves"], result["settings"], result["machine"]
  dims, d = s["D"], np.asarray(s["D"], float)
  find = functools.partial(find_curve, curves)
  colors = dict(zip(KERNELS, ["C0", "C5", "C1", "C2", "C3"]))
  style = lambda n: {
    "color": colors[n],
    "marker": "o",
    "ms": 3,
    "ls": ":" if n == "trigh" else "-",
  }
  base = lambda m, mk: {
    "color": "k" if m == "performer" else "0.5",
    "marker": mk,
    "ms": 3,
    "ls": "--",
  }
  fig, axes = plt.subplots(2, 3, figsize=(17, 10), sharex=True)
  for r, metric in enumerate(("kernel_error", "attention_error")):
    trunc = metric + "_truncated"
    default = dict(allocation="stratified", projection="chained")
    paper = dict(allocation="sampled", projection="independent", inputs="raw")
    for c, (panel, title) in enumerate(
      (
        (default, "PreSBN, RMF stratified+chained (default)"),
        (None, ""),
        (
          paper,
          f"no PreSBN: N(0,{s['raw_sigma']}^2) q,k * d^-1/4; "
          f"sampled+indep.;\nvs f truncated at degree {MAX_DEGREE}; "
          f"clipped at {CLIP:g}",
        ),
      )
    ):
      if panel is None:
        continue
      what = trunc if c == 2 else metric
      for name in KERNELS:
        _plot_curve(
          axes[r, c], dims, find(kernel=name, **panel)[what], name, style(name)
        )
      for method, mk in (("performer", "s"), ("rfa", "D")):
        _plot_curve(
          axes[r, c],
          dims,
          find(method=method, inputs=panel.get("inputs", "presbn"))[what],
          f"{method} (softmax)",
          base(method, mk),
        )
      axes[r, c].set_title(title)
    for name, color in (("exp", "C0"), ("inverse", "C1")):
      for allocation, projection, ls, mk in (
        ("sampled", "independent", "-", "o"),
        ("sampled", "chained", "--", "o"),
        ("stratified", "independent", "-", "s"),
        ("stratified", "chained", "--", "s"),
      ):
        _plot_curve(
          axes[r, 1],
          dims,
          find(kernel=name, allocation=allocation, projection=projection)[
            metric
          ],
          f"{name} {allocation}/{projection}",
          {
            "color": color
            if allocation == "sampled"
            else ("C9" if name == "exp" else "C8"),
            "marker": mk,
            "ms": 3,
            "ls": ls,
          },
        )
    axes[r, 1].set_title("PreSBN: degree allocation x projection layout")
    for c, ax in enumerate(axes[r]):
      # A D^-1/2 guide through 1.6x the first point of the panel's exp curve.
      first = common.as_float(
        (find(**default)[metric] if c < 2 else find(**paper)[trunc])["mean"][0]
      )
      ax.set_xscale("log", base=2)
      ax.set_yscale("log")
      if math.isfinite(first):
        ax.plot(
          d,
          1.6 * first * (d / d[0]) ** -0.5,
          color="0.8",
          lw=3,
          zorder=0,
          label="~ D^-1/2",
        )
      ax.set_ylabel(
        ["kernel matrix |K_hat-K|/|K|", "attention output |A_hat-A|/|A|"][r]
      )
      ax.grid(True, which="both", alpha=0.3)
      ax.legend(fontsize=7, loc="upper right" if c < 2 else "lower left")
    axes[r, 2].set_ylim(1e-4, CLIP * 3)
  for ax in axes[1]:
    ax.set_xlabel("D (random features)")
  fig.suptitle(
    f"Random Maclaurin feature error vs D (slope of the mean in the legend);"
    f" L={s['length']} (kernel matrix {s['kernel_length']}x"
    f"{s['kernel_length']}), d={s['head_dim']}, {s['seeds']} seeds, error "
    f"bars = std over seeds\n{m['device']} ({m['host']}, {m['cpu_count']} "
    f"cores, jax {m['jax']})",
    fontsize=11,
  )
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument(
    "--quick",
    action="store_true",
    help="tiny setting for tests (D=16,64,256, L=256)",
  )
  parser.add_argument("--dims", default=None, help="comma-separated D")
  for flag in (
    "seeds",
    "length",
    "kernel_length",
    "variance_draws",
    "variance_pairs",
  ):
    parser.add_argument(f"--{flag}", type=int, default=None)
  parser.add_argument("--head_dim", type=int, default=32)
  parser.add_argument("--raw_sigma", type=float, default=0.5)
  parser.add_argument("--variance_features", type=int, default=128)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--out_json", default="docs/kernel_error.json")
  parser.add_argument(
    "--out_png", default="docs/kernel_error.png", help="'' to skip the plot"
  )
  args = parser.parse_args(argv)
  q = args.quick
  dims = (
    [int(x) for x in args.dims.split(",")]
    if args.dims
    else ([16, 64, 256] if q else [2**i for i in range(4, 13)])
  )
  args.seeds = args.seeds or (3 if q else 5)
  args.length = args.length or (256 if q else 1024)
  args.kernel_length = min(
    args.kernel_length or (128 if q else 256), args.length
  )
  start = time.time()
  curves, outside = run_grid(args, dims)
  grid_s = time.time() - start
  variance = variance_table(
    jax.random.key(args.seed + 1),
    args.variance_features,
    args.head_dim,
    args.variance_pairs or (16 if q else 64),
    args.variance_draws or (300 if q else 4000),
  )
  result = {
    "command": common.command("kernel_error", argv),
    "date": common.now(),
    "machine": common.machine(),
    "settings": {
      "D": dims,
      "seeds": args.seeds,
      "length": args.length,
      "kernel_length": args.kernel_length,
      "head_dim": args.head_dim,
      "raw_sigma": args.raw_sigma,
      "max_degree": MAX_DEGREE,
      "quick": q,
      "kernels": list(KERNELS),
      "metrics": list(METRICS),
      "inputs": {
        "presbn": "PreSBN(q), PreSBN(k), * d^-1/4",
        "raw": f"N(0, {args.raw_sigma}^2) q, k * d^-1/4, no PreSBN",
      },
      "attention": "non-causal, no mask, v ~ N(0, 1)",
    },
    "fraction_outside_radius": outside,
    "curves": curves,
    "variance": variance,
    "runtime_s": {
      "grid": round(grid_s, 1),
      "total": round(time.time() - start, 1),
    },
  }
  if args.out_json:
    common.write(args.out_json, common.dumps(result))
  if args.out_png:
    make_plot(result, args.out_png)
  return result


if __name__ == "__main__":
  main()
