"""Approximation error of random features vs their number (docs/METHOD.md
§2.2, §5, §7; the page is docs/BENCHMARKS.md).

Default: kernel-matrix and attention errors of random Maclaurin features vs
D (every kernel, allocation and projection layout; PreSBN'd and raw inputs)
beside Performer FAVOR+ and RFA on exp, and the variance of phi(x) . phi(y)
beside the exact formulas: docs/kernel_error.json, .png. `--spectral`: the
errors of every Spectraformer grid cell vs M, as `layers.SpectralAttention`
runs it, on the same inputs (slopes over M > d): docs/spectral_error.*.

  python -m benchmarks.kernel_error [--spectral]   # ~1-2 min; spectral ~20
  python -m benchmarks.kernel_error [--spectral] --quick    # seconds (tests)
"""

import argparse
import functools
import itertools
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from macformer_jax import attention
from macformer_jax import features
from macformer_jax import kernels
from macformer_jax import normalization
from macformer_jax import spectral

KERNELS = ("exp", "trigh", "inverse", "log", "sqrt")
ALLOCATIONS, PROJECTIONS = features.ALLOCATIONS, features.PROJECTIONS
INPUTS, BASELINES = ("presbn", "raw"), ("performer", "rfa")
TARGETS = ("kernel", "kernel_truncated", "attention", "attention_truncated")
METRICS = ("kernel_error", "kernel_error_truncated", "attention_error")
METRICS += ("attention_error_truncated",)  # TARGETS' errors
LABELS = ("method", "kernel", "allocation", "projection", "inputs")
DEFAULT_LABELS = ("rmf", "exp", None, None, "presbn")
MAX_DEGREE, CLIP = 20, 1e3  # plot ceiling: larger or non-finite errors
LAYOUTS = ("independent", "chained")  # the plot's order
YLABELS = ("kernel matrix |K_hat-K|/|K|", "attention output |A_hat-A|/|A|")
QUICK = dict(D=[16, 64, 256], seeds=3, length=256, kernel_length=128)
FULL = dict(D=[2**i for i in range(4, 13)], seeds=5, length=1024)
FULL["kernel_length"] = 256
VARIANCE = {True: (16, 300), False: (64, 4000)}  # --quick: (pairs, draws)
HEAD_DIM, SIGMA = 32, 0.5  # d; the std of q, k in the raw inputs
# --spectral: regime -> the inputs it takes; the errors; sizes.
REGIMES, ERRORS = {"presbn": "presbn", "gauss": "raw"}, METRICS[::2]
SPECTRAL_QUICK = dict(M=[16, 64], seeds=2, length=64, kernel_length=32)
SPECTRAL_FULL = dict(M=[2**i for i in range(4, 11)], seeds=5, length=1024)
SPECTRAL_FULL["kernel_length"] = 256


# Superset plans: `sampled` counts differ per draw, so every draw is placed in
# one plan per (D, layout) with the largest count of every degree (extra
# features get scale 0) and Rademacher projections (`sample_rademacher`): the
# distribution of `features.sample_rmf` with one compilation per (D, layout).
def superset_plan(plans) -> features.FeaturePlan:
  """The smallest plan containing every plan (same layout): max counts."""
  counts = np.zeros(max(len(p.counts) for p in plans), np.int64)
  for p in plans:
    counts[: len(p.counts)] = np.maximum(counts[: len(p.counts)], p.counts)
  counts = tuple(map(int, counts))
  return features.FeaturePlan("superset", 1.0, counts, plans[0].projection)


def move(x, src, dst) -> np.ndarray:
  """Block b of x (widths `src`) to the start of block b (widths `dst`),
  zeros elsewhere: a `features.sample_rmf` draw (projections by
  `plan.widths`, scales by `plan.counts`) in a superset plan's layout."""
  out = np.zeros(np.shape(x)[:-1] + (sum(dst),), np.float32)
  start = lambda widths: np.cumsum([0, *widths])
  for i, j, n in zip(start(src), start(dst), src, strict=False):
    out[..., j : j + n] = np.asarray(x)[..., i : i + n]
  return out


def superset(dim, allocations, projection, seeds):
  """Draws (allocation, seed) -> their superset plan and scales [K, M-1] of
  every kernel embedded in it (the counts are kernel-free)."""
  draws = {}
  for allocation, seed in itertools.product(allocations, seeds):
    drawn = seed if allocation == "sampled" else None
    args = (allocation, MAX_DEGREE, projection, drawn)
    made = [features.make_plan(dim, k, *args) for k in KERNELS]
    draws[allocation, seed] = made[0][0], np.stack([s for _, s in made])
  sup = superset_plan([p for p, _ in draws.values()])
  moved = {k: move(s, p.counts, sup.counts) for k, (p, s) in draws.items()}
  return sup, moved


# Inputs, exact targets, errors.
def make_inputs(key, num_seeds, length, head_dim, raw_sigma) -> dict:
  """q, k [S, L, d] per input mode (scaled), v [S, L, d]."""
  keys = jax.random.split(key, 3)
  q, k, v = (jax.random.normal(x, (num_seeds, length, head_dim)) for x in keys)
  s, sbn = head_dim**-0.25, normalization.pre_sbn
  raw = (raw_sigma * s * q, raw_sigma * s * k)
  return {"presbn": (sbn(q) * s, sbn(k) * s), "raw": raw, "v": v}


_heads = lambda x: x[None, :, None]  # [L, d] -> one head [1, L, 1, d]
_attend = lambda q, k, v, kernel: attention.kernelized_attention(
  _heads(q), _heads(k), _heads(v), kernel
)[0, :, 0]


@functools.partial(jax.jit, static_argnames=("kernel_length",))
def exact_targets(q, k, v, *, kernel_length):
  """[S, K, ...] exact and degree-20 truncated kernel matrices and attention
  outputs, and the fraction of pairs with |t| >= the radius."""

  def one_seed(q, k, v):
    t_full = q @ k.T
    t, rows = t_full[:kernel_length, :kernel_length], []
    for name in KERNELS:
      kern = kernels.get(name)
      f = functools.partial(kernels.truncated, name, max_degree=MAX_DEGREE)
      trunc = kernels.Kernel(name, kern.coefficient, f, math.inf)
      row = kern.exact(t), trunc.exact(t), _attend(q, k, v, kern)
      row += _attend(q, k, v, trunc), jnp.mean(jnp.abs(t_full) >= kern.radius)
      rows.append(row)
    columns = map(jnp.stack, zip(*rows, strict=True))
    return dict(zip(TARGETS + ("outside_radius",), columns, strict=True))

  return jax.vmap(one_seed)(q, k, v)


def rel_error(a, b):
  """|a - b| / |b| (Frobenius norms over every axis)."""
  return jnp.linalg.norm((a - b).ravel()) / jnp.linalg.norm(b.ravel())


def _errors(khat, att, targets):
  """[4] errors (METRICS order) of one estimate against its targets."""
  est = lambda n: att if n.startswith("attention") else khat
  return jnp.stack([rel_error(est(n), targets[n]) for n in TARGETS])


@functools.partial(jax.jit, static_argnames=("plan", "kernel_length"))
def rmf_errors(projections, scales, q, k, v, targets, *, plan, kernel_length):
  """[S, K, 4] errors of RMF/RMFA: projections [S, d, W], scales
  [S, K, M-1] (0 for padding features), q, k, v [S, L, d]."""

  def one_seed(args):
    proj, sc, q, k, v, tg = args

    def one_kernel(s, tg):
      params = features.RMFParams(proj, s, plan)
      pq, pk = features.rmf(params, q), features.rmf(params, k)
      att = attention.rmfa(_heads(pq), _heads(pk), _heads(v))[0, :, 0]
      lk = kernel_length
      return _errors(pq[:lk] @ pk[:lk].T, att, tg)

    return jax.vmap(one_kernel)(sc, tg)

  return jax.lax.map(one_seed, (projections, scales, q, k, v, targets))


@functools.partial(jax.jit, static_argnames=("method", "num_features", "lk"))
def baseline_errors(keys, q, k, v, targets, *, method, num_features, lk):
  """[S, 4] errors of Performer FAVOR+ or RFA on exp(q . k), as their
  layers run them; Performer's kernel estimate uses the unstabilised
  features (the stabiliser cancels only in the attention ratio)."""
  d, m, eps = q.shape[-1], num_features, attention.RMFA_DENOMINATOR_EPS
  linear = functools.partial(attention.linear_attention, heads_first=True)

  def one_seed(args):
    key, q, k, v, tg = args
    if method == "performer":
      w = features.sample_orthogonal_gaussian(key, d, m)
      pq = features.favor_positive(w, q[None, None], is_query=True)
      pk = features.favor_positive(w, k[None, None], is_query=False)
      att = linear(pq, pk, _heads(v), eps=1e-6)[0, :, 0]
      raw = lambda x: features.gerf_features(w, x[:lk])
      return _errors(raw(q) @ raw(k).T, att, tg)
    w = features.sample_gaussian(key, d, m // 2)
    pq, pk = (features.fourier_features(w, x)[None, None] for x in (q, k))
    att = linear(pq, pk, _heads(v), eps=eps, eps_per_key=True)[0, :, 0]
    return _errors(pq[0, 0, :lk] @ pk[0, 0, :lk].T, att, tg)

  return jax.lax.map(one_seed, (keys, q, k, v, targets))


# Variance of phi(x) . phi(y) at one D.
@functools.partial(jax.jit, static_argnames=("plan",))
def _pair_products(projections, scales, x, y, *, plan):
  """phi(x_p) . phi(y_p) [R, K, P]: projections [R, d, W], scales
  [R, K, M-1], x, y [P, d]."""

  def one(proj, s):
    params = features.RMFParams(proj, s, plan)
    return jnp.sum(features.rmf(params, x) * features.rmf(params, y), -1)

  return jax.vmap(jax.vmap(one, in_axes=(None, 0)))(projections, scales)


def _draws(num_features, head_dim, num_draws, chunk, key, pair_sets):
  """phi(x).phi(y) [R, K, P] per (allocation, projection, pairs)."""
  est, keys = {}, iter(jax.random.split(key, 4 * (num_draws // chunk)))
  for allocation, projection in itertools.product(ALLOCATIONS, PROJECTIONS):
    sampled = allocation == "sampled"
    seeds = range(7919, 7919 + num_draws) if sampled else [None]
    sup, emb = superset(num_features, [allocation], projection, seeds)
    shape = (num_draws, len(KERNELS), sup.num_features - 1)
    emb = np.broadcast_to(np.stack(list(emb.values())), shape)
    for lo in range(0, num_draws, chunk):
      width, sc = sup.projection_width, jnp.asarray(emb[lo : lo + chunk])
      proj = features.sample_rademacher(next(keys), head_dim, width, chunk)
      for name, (xs, ys) in pair_sets.items():
        out = np.asarray(_pair_products(proj, sc, xs, ys, plan=sup))
        est.setdefault((allocation, projection, name), []).append(out)
  return {k: np.concatenate(v).astype(np.float64) for k, v in est.items()}


def variance_table(key, num_features, head_dim, pairs, num_draws, chunk=250):
  """Empirical (and unbiasedness z-scores) and formula variances of
  phi(x).phi(y) at D = `num_features`, for PreSBN'd pairs * d^-1/4."""
  num_chunks = -(-num_draws // chunk)  # equal chunks: one compilation
  chunk = -(-num_draws // num_chunks)
  num_draws = chunk * num_chunks
  kx, ky, knear, kdraw = jax.random.split(key, 4)
  shape, sbn, s = (pairs, head_dim), normalization.pre_sbn, head_dim**-0.25
  x = sbn(jax.random.normal(kx, shape))
  noise = jax.random.normal(knear, shape)
  pair_sets = {
    "random": (x * s, s * sbn(jax.random.normal(ky, shape))),
    "near": (x * s, s * sbn(x + 0.15 * noise)),
  }
  est = _draws(num_features, head_dim, num_draws, chunk, kdraw, pair_sets)
  plan = features.make_plan(num_features, "exp", "stratified", MAX_DEGREE)[0]
  counts, rows = plan.counts, []
  for name, (xs, ys) in pair_sets.items():
    xs, ys = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
    t = np.sum(xs * ys, -1)
    for ki, kernel in enumerate(KERNELS):
      row = {"pairs": name, "kernel": kernel}
      row["mean_abs_t"] = float(np.mean(np.abs(t)))
      for allocation, projection in itertools.product(ALLOCATIONS, PROJECTIONS):
        degree = MAX_DEGREE if allocation == "sampled" else len(counts)
        target = np.asarray(kernels.truncated(kernel, t, degree))
        e = est[allocation, projection, name][:, ki]
        label, var = f"{allocation}_{projection}", np.var(e, axis=0, ddof=1)
        row[f"empirical_{label}"] = float(np.mean(var))
        # Unbiasedness: z per pair; pairs share draws, so judge mean z^2.
        z = (e.mean(0) - target) / np.sqrt(var / e.shape[0])
        row[f"bias_z2_mean_{label}"] = float(np.mean(z**2))
        row[f"bias_z_max_{label}"] = float(np.max(np.abs(z)))
      v = features.rmf_variance(kernel, xs, ys, num_features, MAX_DEGREE)
      row["formula_sampled_independent"] = float(np.mean(v))
      for projection in PROJECTIONS:
        p = features.FeaturePlan(kernel, 1.0, counts, projection)
        v = features.stratified_variance(p, xs, ys)
        row[f"formula_stratified_{projection}"] = float(np.mean(v))
      emp = lambda a, p, row=row: row[f"empirical_{a}_{p}"]
      for a in ALLOCATIONS:
        ratio = emp(a, "chained") / emp(a, "independent")
        row[f"chained_over_independent_{a}"] = ratio
      ratio = emp("stratified", "chained") / emp("sampled", "chained")
      row["stratified_over_sampled_chained"] = ratio
      rows.append(row)
  inputs = "PreSBN then * d^-1/4; 'random': independent x, y; "
  inputs += "'near': y = PreSBN(x + 0.15 noise)"
  out = dict(num_features=num_features, head_dim=head_dim, num_pairs=pairs)
  return dict(out, num_draws=num_draws, inputs=inputs, rows=rows)


# The grid of curves.
def _summarise(dims, per_seed: np.ndarray) -> dict[str, object]:
  """per_seed [len(dims), S] -> mean/std/per-seed lists and the slope."""
  with np.errstate(invalid="ignore", over="ignore"):
    mean, std = per_seed.mean(axis=1), per_seed.std(axis=1)
  out = {"mean": list(map(common.num, mean)), "std": list(map(common.num, std))}
  out["per_seed"] = [list(map(common.num, row)) for row in per_seed]
  out["slope"] = common.fit_slope(dims, out["mean"])
  out["nonfinite"] = int(np.sum(~np.isfinite(per_seed)))
  return out


def run_grid(s: dict):
  """Every error curve: RMF (kernel x allocation x projection x inputs) and
  the baselines (x inputs), and the fraction of pairs outside the radius."""
  k_in, k_feat = jax.random.split(jax.random.key(0))
  n, d, lk = s["seeds"], s["head_dim"], s["kernel_length"]
  data = make_inputs(k_in, n, s["length"], d, s["raw_sigma"])
  v, errors = data["v"], {}
  draws = iter(jax.random.split(jax.random.key(2), 4 * len(s["D"])))
  targets = {m: exact_targets(*data[m], v, kernel_length=lk) for m in INPUTS}
  exp_targets = {m: jax.tree.map(lambda x: x[:, 0], targets[m]) for m in INPUTS}
  add = lambda key, value: errors.setdefault(key, []).append(value)
  for dim in s["D"]:
    t0, seeds = time.time(), [1000003 * dim + i for i in range(n)]
    for projection in PROJECTIONS:
      sup, scales = superset(dim, ALLOCATIONS, projection, seeds)
      for allocation in ALLOCATIONS:
        proj = features.sample_rademacher(
          next(draws), d, sup.projection_width, n
        )
        sc = jnp.asarray(np.stack([scales[allocation, i] for i in seeds]))
        for mode in INPUTS:
          args = (proj, sc, *data[mode], v, targets[mode])
          err = np.asarray(rmf_errors(*args, plan=sup, kernel_length=lk))
          for ki, name in enumerate(KERNELS):
            add(("rmf", name, allocation, projection, mode), err[:, ki])
    keys = jax.random.split(jax.random.fold_in(k_feat, dim), n)
    for method, mode in itertools.product(BASELINES, INPUTS):
      args = (keys, *data[mode], v, exp_targets[mode])
      err = baseline_errors(*args, method=method, num_features=dim, lk=lk)
      add((method, "exp", None, None, mode), np.asarray(err))
    print(f"D={dim:5d} done in {time.time() - t0:5.1f}s", flush=True)
  curves = []
  for labels, per_dim in errors.items():
    c = dict(zip(LABELS, labels, strict=True), D=s["D"])
    for i, m in enumerate(METRICS):
      c[m] = _summarise(s["D"], np.stack(per_dim)[:, :, i])
    curves.append(c)
  outside = {}
  for mode in INPUTS:
    f = np.asarray(targets[mode]["outside_radius"])
    outside[mode] = {k: float(np.mean(f[:, i])) for i, k in enumerate(KERNELS)}
  return curves, outside


def find_curve(curves, **labels) -> dict:
  """The curve with these labels (the others: DEFAULT_LABELS)."""
  pairs = zip(LABELS, DEFAULT_LABELS, strict=True)
  key = tuple(labels.pop(k, d) for k, d in pairs)
  if labels:
    raise TypeError(f"unknown labels {sorted(labels)}")
  return next(c for c in curves if tuple(c[k] for k in LABELS) == key)


# Spectraformer grid (--spectral).
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
    return rel_error(khat, kernel), rel_error(out, exact)

  return jax.vmap(lambda w: jax.vmap(one)(w, x, y, v))(ws)


def run_spectral(s: dict) -> list[dict]:
  """One curve per (regime, component, weights): errors' mean, std, slope."""
  names = [w for w in spectral.WEIGHTS if w != "rademacher"]
  key = jax.random.key(0)
  inputs = make_inputs(key, s["seeds"], s["length"], HEAD_DIM, SIGMA)
  v, curves = inputs["v"][:, None, :, None], {}
  for (regime, mode), m in itertools.product(REGIMES.items(), s["M"]):
    x, y = (a[:, None, None] for a in inputs[mode])
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
  for c, name in itertools.product(curves.values(), ERRORS):
    slope = common.fit_slope(c["M"], c[name]["mean"], above=HEAD_DIM)
    c[name]["slope"] = slope
  return list(curves.values())


# Plots.
def _plot_curve(ax, dims, summary, label, color, marker="o", ls="-"):
  arr = lambda k: np.array([common.as_float(x) for x in summary[k]])
  mean, std, dims = arr("mean"), arr("std"), np.asarray(dims, float)
  ok = np.isfinite(mean) & (mean <= CLIP)
  if (slope := summary.get("slope")) is not None and ok.all():
    label += f" ({slope:+.2f})"
  yerr = np.where(np.isfinite(std[ok]), np.minimum(std[ok], mean[ok] * 0.95), 0)
  style = dict(color=color, marker=marker, ms=3, ls=ls, capsize=2)
  line = ax.errorbar(dims[ok], mean[ok], yerr=yerr, label=label, **style)
  if (~ok).any():  # clipped or non-finite: a marker on the ceiling
    n, style = int((~ok).sum()), dict(color=line[0].get_color(), zorder=5)
    ax.scatter(dims[~ok], np.full(n, CLIP), marker="^", clip_on=False, **style)
    label = f"  {label}: {n} D clipped (>{CLIP:g} or inf/nan)"
    ax.plot([], [], " ", label=label)


def make_plot(result: dict, path: str) -> None:
  """2 x 3 panels: kernel and attention error; default map with baselines,
  allocation x layout, and no PreSBN."""
  plt = common.pyplot()
  curves, s, m = result["curves"], result["settings"], result["machine"]
  dims, d = s["D"], np.asarray(s["D"], float)
  find = functools.partial(find_curve, curves)
  colors = dict(zip(KERNELS, ["C0", "C5", "C1", "C2", "C3"], strict=True))
  default = dict(allocation="stratified", projection="chained")
  paper = dict(allocation="sampled", projection="independent", inputs="raw")
  titles = [
    "PreSBN, RMF stratified+chained (default)",
    "PreSBN: degree allocation x projection layout",
    f"no PreSBN: N(0,{s['raw_sigma']}^2) q,k * d^-1/4; sampled+indep."
    f";\nvs f truncated at degree {MAX_DEGREE}; clipped at {CLIP:g}",
  ]
  fig, axes = plt.subplots(2, 3, figsize=(17, 10), sharex=True)
  for r, metric in enumerate(("kernel_error", "attention_error")):
    trunc = metric + "_truncated"
    for c, panel in ((0, default), (2, paper)):
      what = trunc if c == 2 else metric
      for name in KERNELS:
        curve = find(kernel=name, **panel)[what]
        ls = ":" if name == "trigh" else "-"
        _plot_curve(axes[r, c], dims, curve, name, colors[name], ls=ls)
      for method, mk in (("performer", "s"), ("rfa", "D")):
        curve = find(method=method, inputs=panel.get("inputs", "presbn"))
        color = "k" if method == "performer" else "0.5"
        label = f"{method} (softmax)"
        _plot_curve(axes[r, c], dims, curve[what], label, color, mk, "--")
    for name, color, other in (("exp", "C0", "C9"), ("inverse", "C1", "C8")):
      for allocation, projection in itertools.product(ALLOCATIONS, LAYOUTS):
        ls = "--" if projection == "chained" else "-"
        mk, color_ = ("o", color) if allocation == "sampled" else ("s", other)
        labels = dict(kernel=name, allocation=allocation, projection=projection)
        label, curve = f"{name} {allocation}/{projection}", find(**labels)
        _plot_curve(axes[r, 1], dims, curve[metric], label, color_, mk, ls)
    for c, ax in enumerate(axes[r]):
      ax.set_title(titles[c])
      # A D^-1/2 guide through 1.6x the first point of the panel's exp curve.
      guide = find(**default)[metric] if c < 2 else find(**paper)[trunc]
      first = common.as_float(guide["mean"][0])
      ax.set_xscale("log", base=2)
      ax.set_yscale("log")
      if math.isfinite(first):
        guide = 1.6 * first * (d / d[0]) ** -0.5
        ax.plot(d, guide, color="0.8", lw=3, zorder=0, label="~ D^-1/2")
      ax.set_ylabel(YLABELS[r])
      ax.grid(True, which="both", alpha=0.3)
      ax.legend(fontsize=7, loc="upper right" if c < 2 else "lower left")
    axes[r, 2].set_ylim(1e-4, CLIP * 3)
  for ax in axes[1]:
    ax.set_xlabel("D (random features)")
  lk = s["kernel_length"]
  fig.suptitle(
    f"Random Maclaurin feature error vs D (slope of the mean in the legend);"
    f" L={s['length']} (kernel matrix {lk}x{lk}), d={s['head_dim']}, "
    f"{s['seeds']} seeds, error bars = std over seeds\n{m['device']} "
    f"({m['host']}, {m['cpu_count']} cores, jax {m['jax']})",
    fontsize=11,
  )
  common.savefig(fig, path)


def plot_spectral(result, path):
  """Attention error vs M: one panel per (regime, component), colour =
  weights (gerf at A = 0 coincides with posrf)."""
  plt = common.pyplot()
  colors = dict(zip(spectral.WEIGHTS, plt.cm.tab10.colors, strict=False))
  shape = (len(REGIMES), len(spectral.COMPONENTS))
  fig, axes = plt.subplots(
    *shape, figsize=(18, 6.5), squeeze=False, sharex=True
  )
  for (row, regime), (col, component) in itertools.product(
    enumerate(REGIMES), enumerate(spectral.COMPONENTS)
  ):
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
  common.savefig(fig, path, dpi=100, rect=(0, 0, 1, 0.9))


def measure(args, argv) -> dict:
  """The JSON of the study `args` asks for."""
  start, q = time.time(), args.quick
  result = {"command": common.command("kernel_error", argv)}
  result["date"] = common.now()
  if args.spectral:
    s = SPECTRAL_QUICK if q else SPECTRAL_FULL
    curves = run_spectral(s)
    regimes = {"presbn": "PreSBN'd q, k (unit norm) * d^-1/4"}
    regimes["gauss"] = f"q, k ~ N(0, {SIGMA}^2 I) * d^-1/4"
    settings = dict(s, head_dim=HEAD_DIM, regimes=regimes)
    settings["unbiased_weights"] = list(spectral.UNBIASED_WEIGHTS)
    result.update(runtime_s=round(time.time() - start, 1))
    return dict(
      result, machine=common.machine(), settings=settings, curves=curves
    )
  s = dict(QUICK if q else FULL, head_dim=HEAD_DIM, raw_sigma=SIGMA)
  curves, outside = run_grid(s)
  grid_s = time.time() - start
  pairs, draws = VARIANCE[q]
  variance = variance_table(jax.random.key(1), 128, s["head_dim"], pairs, draws)
  raw = f"N(0, {s['raw_sigma']}^2) q, k * d^-1/4, no PreSBN"
  inputs = {"presbn": "PreSBN(q), PreSBN(k), * d^-1/4", "raw": raw}
  s.update(max_degree=MAX_DEGREE, quick=q, kernels=list(KERNELS))
  s.update(metrics=list(METRICS), inputs=inputs)
  s["attention"] = "non-causal, no mask, v ~ N(0, 1)"
  result.update(machine=common.machine(), settings=s)
  result.update(fraction_outside_radius=outside, curves=curves)
  result["variance"] = variance
  total = round(time.time() - start, 1)
  return dict(result, runtime_s={"grid": round(grid_s, 1), "total": total})


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--spectral", action="store_true", help="the grid's")
  parser.add_argument("--quick", action="store_true", help="seconds (tests)")
  parser.add_argument("--out", default="docs", help="the JSON and PNG's dir")
  args = parser.parse_args(argv)
  result = measure(args, argv)
  path = os.path.join(
    args.out, ("spectral" if args.spectral else "kernel") + "_error"
  )
  common.write(path + ".json", common.dumps(result))
  (plot_spectral if args.spectral else make_plot)(result, path + ".png")
  return result


if __name__ == "__main__":
  main()
