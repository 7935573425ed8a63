r"""Approximation error of random Maclaurin features vs the feature count D.

The toy experiments behind the Macformer claims "RMFA approximates
dot-product kernelized attention without bias" and "ppSBN bounds its error"
(docs/METHOD.md §2.2, §5). For every kernel (exp, trigh, inverse, log, sqrt),
every D in 16..4096 (powers of 2) and several seeds, on random queries and keys:

* kernel error    |K_hat - K|_F / |K|_F of the [Lk, Lk] kernel matrix
                  K_ij = f(q_i . k_j), K_hat_ij = phi(q_i) . phi(k_j);
* attention error |A_hat - A|_F / |A|_F of the [L, Dv] attention output,
                  A = exact kernelized attention
                  (`attention.kernelized_attention`), A_hat = RMFA
                  (`attention.rmfa` on `features.rmf`), non-causal.

Inputs (d = head dim): q, k, v ~ N(0, 1), then for q and k
  presbn: PreSBN (`normalization.pre_sbn`) then * d^-1/4 (Macformer,
  docs/METHOD.md §5);
  raw:    sigma * (q, k) * d^-1/4, no PreSBN: the authors' no-ppSBN ablation
          (`--former transformer`). Here |q . k| can leave the radius of
          convergence 1 of inverse/log/sqrt, where f itself is undefined, and
          the RMF variance series diverges (docs/METHOD.md §2.2). Both errors
          are also measured against f truncated at degree 20 (what RMF estimates
          without bias, always defined), and non-finite values are recorded as
          the strings "inf"/"nan" in the JSON.

Feature maps: both degree allocations (`sampled`: the paper's; `stratified`:
the library default) and both projection layouts (`chained`: the library
default, width ~D; `independent`: Kar & Karnick's, width ~2D), planned with
`features.make_plan` (as `features.sample_rmf` does) and applied with
`features.rmf`. For comparison, on the
softmax (exp) kernel with the same inputs and D: Performer FAVOR+ (positive
orthogonal features, `features.favor_positive`) and RFA (random Fourier
features, `features.fourier_features`).

Variance table: the empirical variance of phi(x) . phi(y) at D = 128, d = 32
over many independent draws, per allocation x projection, beside the
docs/METHOD.md §2.2 formula (`features.rmf_variance`, sampled + independent) and
the exact formulas of the stratified layouts (derived in `stratified_variance`),
for random pairs (t = x.y ~ 0.03) and near pairs (t ~ 0.17 = 1/sqrt(d), where
the chained layout's correlations are largest).

Each curve gets a least-squares slope of log(mean error) vs log(D): Monte
Carlo error falls like D^-1/2, so slopes should be about -0.5.

How it runs fast: the degree counts fix array shapes, and `sampled` counts
differ per seed. Each draw lives in one superset plan per (D, layout) (the
largest count of every degree), whose extra features get scale 0, with the
Rademacher projections drawn directly in that layout: the same distribution
as `features.sample_rmf`, and the same numbers as `features.rmf` on the draw
itself (`embed`; tests/benchmarks_test.py checks it), but one compilation per
(D, layout), vmapped over kernels and seeds.

  python benchmarks/kernel_error.py            # default: ~1-2 min, 2 CPU cores
  python benchmarks/kernel_error.py --quick    # seconds (tests)

Writes docs/kernel_error.json and docs/kernel_error.png.
"""

import argparse
import datetime
import functools
import json
import math
import os
import platform
import re
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
# pylint: disable=g-import-not-at-top
from macformer_jax import attention
from macformer_jax import features
from macformer_jax import kernels
from macformer_jax import normalization

KERNELS = ("exp", "trigh", "inverse", "log", "sqrt")
ALLOCATIONS = ("sampled", "stratified")
PROJECTIONS = ("chained", "independent")
INPUTS = ("presbn", "raw")
BASELINES = ("performer", "rfa")
# Per (curve, D, seed): [kernel vs exact, kernel vs truncated, attention vs
# exact, attention vs truncated].
METRICS = ("kernel_error", "kernel_error_truncated", "attention_error",
           "attention_error_truncated")
MAX_DEGREE = 20


# ----------------------------------------------------------------------------
# Superset plans: many draws with different degree counts, one static shape.
# ----------------------------------------------------------------------------
def superset_plan(plans: Sequence[features.FeaturePlan]
                  ) -> features.FeaturePlan:
  """The smallest plan containing every plan (same layout): max counts."""
  projection = plans[0].projection
  if any(p.projection != projection for p in plans):
    raise ValueError("plans of one superset must share the projection layout")
  length = max(len(p.counts) for p in plans)
  counts = np.zeros(length, np.int64)
  for p in plans:
    counts[:len(p.counts)] = np.maximum(counts[:len(p.counts)], p.counts)
  return features.FeaturePlan("superset", 1.0, tuple(int(c) for c in counts),
                              projection)


def _block_starts(plan: features.FeaturePlan) -> np.ndarray:
  return np.concatenate([[0], np.cumsum(plan.widths)[:-1]]).astype(np.int64)


def embed_scales(plan: features.FeaturePlan, scales: np.ndarray,
                 sup: features.FeaturePlan) -> np.ndarray:
  """Scales [..., M-1] of a draw -> [..., M_sup - 1] of the superset (0 pads).

  The degree-n features of `plan` become the first C_n degree-n features of
  `sup`; the others get scale 0, so they add nothing to any estimate.
  """
  scales = np.asarray(scales)
  out = np.zeros(scales.shape[:-1] + (sup.num_features - 1,), np.float32)
  src = np.concatenate([[0], np.cumsum(plan.counts)])
  dst = np.concatenate([[0], np.cumsum(sup.counts)])
  for n, count in enumerate(plan.counts):
    out[..., dst[n]:dst[n] + count] = scales[..., src[n]:src[n] + count]
  return out


def embed(plan: features.FeaturePlan, projections: np.ndarray,
          scales: np.ndarray, sup: features.FeaturePlan
          ) -> Tuple[np.ndarray, np.ndarray]:
  """Places a drawn map (`features.sample_rmf`) into a superset's layout.

  Projection blocks are enumerated in the same order in both plans (level n
  for `chained`; (degree n, factor j) for `independent`), so each block of
  `plan` goes to the start of the matching block of `sup`; padding columns
  are 0 and padded features get scale 0. A degree-n feature of `plan` uses
  chain/column i < C_n of its blocks, which lands on chain/column i of the
  superset's blocks: `features.rmf` then gives the same features, plus
  zeros. Hence drawing the superset's projections directly (i.i.d.
  Rademacher, as `sample_rmf` does) and masking with `embed_scales` samples
  exactly the library's map; the benchmark does that, and
  tests/benchmarks_test.py checks this function against `features.rmf`.

  Args:
    plan: the drawn map's plan.
    projections: [..., Dk, W] of the drawn map.
    scales: [..., M-1] of the drawn map (any leading axes, e.g. kernels).
    sup: from `superset_plan`, containing `plan`.

  Returns:
    (projections [..., Dk, W_sup], scales [..., M_sup - 1]), float32 numpy.
  """
  projections = np.asarray(projections)
  out_p = np.zeros(projections.shape[:-1] + (sup.projection_width,),
                   np.float32)
  src, dst = _block_starts(plan), _block_starts(sup)
  for b, width in enumerate(plan.widths):
    out_p[..., dst[b]:dst[b] + width] = projections[..., src[b]:src[b] + width]
  return out_p, embed_scales(plan, scales, sup)


def kernel_scales(plan_kernel_free: features.FeaturePlan, num_features: int,
                  allocation: str, allocation_seed: Optional[int]
                  ) -> np.ndarray:
  """Scales [len(KERNELS), M-1] of one draw's counts, for every kernel."""
  rows = []
  for name in KERNELS:
    plan, scales = features.make_plan(num_features, name, allocation,
                                      MAX_DEGREE, plan_kernel_free.projection,
                                      allocation_seed)
    assert plan.counts == plan_kernel_free.counts  # counts are kernel-free
    rows.append(scales)
  return np.stack(rows)


# ----------------------------------------------------------------------------
# Inputs and exact targets.
# ----------------------------------------------------------------------------
def make_inputs(key: jax.Array, num_seeds: int, length: int, head_dim: int,
                raw_sigma: float) -> Dict[str, jax.Array]:
  """q, k [S, L, d] per input mode (scaled), v [S, L, d]."""
  kq, kk, kv = jax.random.split(key, 3)
  shape = (num_seeds, length, head_dim)
  q, k, v = (jax.random.normal(x, shape) for x in (kq, kk, kv))
  scale = head_dim**-0.25
  return {"presbn": (normalization.pre_sbn(q) * scale,
                     normalization.pre_sbn(k) * scale),
          "raw": (raw_sigma * scale * q, raw_sigma * scale * k),
          "v": v}


def _truncated_kernel(name: str) -> kernels.Kernel:
  base = kernels.get(name)
  return kernels.Kernel(f"{name}_trunc{MAX_DEGREE}", base.coefficient,
                        lambda t: kernels.truncated(name, t, MAX_DEGREE),
                        math.inf)


def _attend_exact(q, k, v, kernel):
  """[L, d] single-head wrapper around `attention.kernelized_attention`."""
  return attention.kernelized_attention(q[None, :, None], k[None, :, None],
                                        v[None, :, None], kernel)[0, :, 0]


@functools.partial(jax.jit, static_argnames=("kernel_length",))
def exact_targets(q, k, v, *, kernel_length):
  """Exact and degree-20 truncated targets for every kernel.

  Args:
    q, k, v: [S, L, d].
    kernel_length: Lk, the kernel matrix uses the first Lk queries and keys.

  Returns:
    dict of [S, K, Lk, Lk] kernel matrices ('kernel', 'kernel_truncated'),
    [S, K, L, d] attention outputs ('attention', 'attention_truncated'),
    and 'outside_radius' [S, K]: fraction of the L x L pairs with |t| >= the
    kernel's radius of convergence (where f is undefined or not the series).
  """
  def one_seed(q, k, v):
    t_full = q @ k.T
    t = t_full[:kernel_length, :kernel_length]
    out = {"kernel": [], "kernel_truncated": [], "attention": [],
           "attention_truncated": [], "outside_radius": []}
    for name in KERNELS:
      kern = kernels.get(name)
      trunc = _truncated_kernel(name)
      out["kernel"].append(kern.exact(t))
      out["kernel_truncated"].append(trunc.exact(t))
      out["attention"].append(_attend_exact(q, k, v, kern))
      out["attention_truncated"].append(_attend_exact(q, k, v, trunc))
      out["outside_radius"].append(jnp.mean(jnp.abs(t_full) >= kern.radius))
    return {key: jnp.stack(val) for key, val in out.items()}
  return jax.vmap(one_seed)(q, k, v)


def _rel_err(estimate, target):
  return (jnp.linalg.norm((estimate - target).ravel()) /
          jnp.linalg.norm(target.ravel()))


def _errors(khat, att, targets):
  """[4] errors (METRICS order) of one estimate against its targets."""
  return jnp.stack([_rel_err(khat, targets["kernel"]),
                    _rel_err(khat, targets["kernel_truncated"]),
                    _rel_err(att, targets["attention"]),
                    _rel_err(att, targets["attention_truncated"])])


# ----------------------------------------------------------------------------
# Estimates.
# ----------------------------------------------------------------------------
@functools.partial(jax.jit, static_argnames=("plan", "kernel_length"))
def rmf_errors(projections, scales, q, k, v, targets, *, plan, kernel_length):
  """Errors of RMF/RMFA for draws embedded in one superset plan.

  Args:
    projections: [S, d, W] (one draw per seed).
    scales: [S, K, M-1] (per seed and kernel; 0 for padding features).
    q, k, v: [S, L, d].
    targets: `exact_targets` output (leading [S, K]).
    plan: the superset plan (static).
    kernel_length: Lk.

  Returns:
    [S, K, 4] errors in METRICS order.
  """
  def one_seed(args):
    proj, sc, q, k, v, tg = args

    def one_kernel(s, tg):
      params = features.RMFParams(proj, s, plan)
      pq, pk = features.rmf(params, q), features.rmf(params, k)
      khat = pq[:kernel_length] @ pk[:kernel_length].T
      att = attention.rmfa(pq[None, :, None], pk[None, :, None],
                           v[None, :, None])[0, :, 0]
      return _errors(khat, att, tg)
    return jax.vmap(one_kernel)(sc, tg)
  return jax.lax.map(one_seed, (projections, scales, q, k, v, targets))


def rademacher(rng: np.random.Generator, shape) -> np.ndarray:
  """i.i.d. +-1 float32 (the distribution of `jax.random.rademacher`)."""
  return (2 * rng.integers(0, 2, shape, dtype=np.int8) - 1).astype(np.float32)


@functools.partial(jax.jit,
                   static_argnames=("method", "head_dim", "num_features"))
def _sample_baseline(keys, *, method, head_dim, num_features):
  """[S, d, M] Performer (orthogonal) or [S, d, M/2] RFA (Gaussian) draws."""
  if method == "performer":
    draw = lambda k: features.sample_orthogonal_gaussian(k, head_dim,
                                                         num_features)
  else:
    draw = lambda k: features.sample_gaussian(k, head_dim, num_features // 2)
  return jax.vmap(draw)(keys)


@functools.partial(jax.jit, static_argnames=("method", "kernel_length"))
def baseline_errors(projections, q, k, v, targets, *, method, kernel_length):
  """Errors of Performer FAVOR+ or RFA on exp(q . k) (targets of `exp`).

  Performer's kernel estimate uses the unstabilised features
  exp(w.x - |x|^2/2)/sqrt(M) (FAVOR+'s stabiliser cancels only in the
  attention ratio); its attention is `favor_positive` + `linear_attention`
  as in `layers.PerformerAttention`. RFA: `fourier_features` for both, with
  RMFA's per-key denominator floor, as in `layers.RFAAttention`.

  Returns:
    [S, 4] errors in METRICS order.
  """
  def one_seed(args):
    proj, q, k, v, tg = args
    if method == "performer":
      m = proj.shape[-1]

      def raw(x):
        return jnp.exp(x @ proj - 0.5 * jnp.sum(x * x, -1, keepdims=True)
                       ) / math.sqrt(m)
      khat = raw(q[:kernel_length]) @ raw(k[:kernel_length]).T
      pq = features.favor_positive(proj, q[None, None], is_query=True)
      pk = features.favor_positive(proj, k[None, None], is_query=False)
      att = attention.linear_attention(pq, pk, v[None, :, None], eps=1e-6,
                                       heads_first=True)[0, :, 0]
    else:
      pq = features.fourier_features(proj, q)
      pk = features.fourier_features(proj, k)
      khat = pq[:kernel_length] @ pk[:kernel_length].T
      att = attention.linear_attention(
          pq[None, None], pk[None, None], v[None, :, None],
          eps=attention.RMFA_DENOMINATOR_EPS, eps_per_key=True,
          heads_first=True)[0, :, 0]
    return _errors(khat, att, tg)
  return jax.lax.map(one_seed, (projections, q, k, v, targets))


# ----------------------------------------------------------------------------
# Variance of phi(x) . phi(y) at one D.
# ----------------------------------------------------------------------------
def stratified_variance(kernel: str, counts: Sequence[int], projection: str,
                        x: np.ndarray, y: np.ndarray) -> np.ndarray:
  """Exact Var[phi(x).phi(y)] of a stratified map (fixed counts C_n).

  With u = (w.x)(w.y), E[u] = t = x.y and E[u^2] = Q (docs/METHOD.md §2.2), the
  degree-n estimate (a_n / C_n) sum_i p_n^(i) of C_n products p_n of n
  independent u's has variance (a_n^2 / C_n)(Q^n - t^2n) (`independent`).
  `chained` adds the covariance of the degree-n and degree-m (n < m) prefix
  products of a shared chain, t^(m-n) (Q^n - t^2n), for min(C_n, C_m) chains:
    Var = sum_n a_n^2/C_n (Q^n - t^2n)
          + 2 sum_{n<m} a_n a_m min(C_n, C_m)/(C_n C_m) t^(m-n) (Q^n - t^2n).

  Args:
    x, y: [P, d] float64.

  Returns:
    float64 [P].
  """
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  t = np.sum(x * y, -1)
  q = (np.sum(x * x, -1) * np.sum(y * y, -1) + 2 * t**2
       - 2 * np.sum(x**2 * y**2, -1))
  a = kernels.coefficients(kernel, len(counts) + 1)
  var = np.zeros_like(t)
  for n, cn in enumerate(counts, 1):
    if not cn:
      continue
    base = q**n - t**(2 * n)
    var += a[n]**2 / cn * base
    if projection == "chained":
      for m in range(n + 1, len(counts) + 1):
        cm = counts[m - 1]
        if cm:
          var += 2 * a[n] * a[m] * min(cn, cm) / (cn * cm) * t**(m - n) * base
  return var


@functools.partial(jax.jit, static_argnames=("plan",))
def _pair_products(projections, scales, x, y, *, plan):
  """phi(x_p) . phi(y_p): projections [R, d, W], scales [R, K, M-1],
  x, y [P, d] -> [R, K, P]."""
  def one_draw(proj, sc):
    def one_kernel(s):
      params = features.RMFParams(proj, s, plan)
      return jnp.sum(features.rmf(params, x) * features.rmf(params, y), -1)
    return jax.vmap(one_kernel)(sc)
  return jax.vmap(one_draw)(projections, scales)


def variance_table(key: jax.Array, num_features: int, head_dim: int,
                   num_pairs: int, num_draws: int, chunk: int = 250
                   ) -> Dict[str, object]:
  """Empirical and formula variances of phi(x).phi(y) (module docstring)."""
  # Equal chunks (one compilation per layout): round the draws up.
  num_chunks = -(-num_draws // chunk)
  chunk = -(-num_draws // num_chunks)
  num_draws = chunk * num_chunks
  kx, ky, knear, kdraw = jax.random.split(key, 4)
  rng = np.random.default_rng(np.asarray(jax.random.key_data(kdraw)))
  scale = head_dim**-0.25
  x = normalization.pre_sbn(jax.random.normal(kx, (num_pairs, head_dim)))
  y_random = normalization.pre_sbn(jax.random.normal(ky, (num_pairs, head_dim)))
  noise = jax.random.normal(knear, (num_pairs, head_dim))
  y_near = normalization.pre_sbn(x + 0.15 * noise)
  pair_sets = {"random": (x * scale, y_random * scale),
               "near": (x * scale, y_near * scale)}
  rows = []
  results = {}
  for allocation in ALLOCATIONS:
    for projection in PROJECTIONS:
      seeds = (list(range(num_draws)) if allocation == "sampled" else [None])
      plans, scales = [], []
      for seed in seeds:
        plan, _ = features.make_plan(num_features, "exp", allocation,
                                     MAX_DEGREE, projection,
                                     None if seed is None else 7919 + seed)
        plans.append(plan)
        scales.append(kernel_scales(plan, num_features, allocation,
                                    None if seed is None else 7919 + seed))
      sup = superset_plan(plans)
      emb = [embed_scales(p, s, sup) for p, s in zip(plans, scales)]
      if len(emb) == 1:
        emb = emb * num_draws
      emb = np.stack(emb)  # [R, K, M_sup - 1]
      estimates = {name: [] for name in pair_sets}
      for lo in range(0, num_draws, chunk):
        hi = min(lo + chunk, num_draws)
        proj = jnp.asarray(rademacher(rng, (hi - lo, head_dim,
                                            sup.projection_width)))
        for name, (xs, ys) in pair_sets.items():
          estimates[name].append(np.asarray(_pair_products(
              proj, jnp.asarray(emb[lo:hi]), xs, ys, plan=sup)))
      for name in pair_sets:
        est = np.concatenate(estimates[name]).astype(np.float64)  # [R, K, P]
        results[(allocation, projection, name)] = est
  for name, (xs, ys) in pair_sets.items():
    xs64, ys64 = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
    t = np.sum(xs64 * ys64, -1)
    strat_plan, _ = features.make_plan(num_features, "exp", "stratified",
                                       MAX_DEGREE, "chained")
    for ki, kernel in enumerate(KERNELS):
      row = {"pairs": name, "kernel": kernel,
             "mean_abs_t": float(np.mean(np.abs(t)))}
      for (allocation, projection, pname), est in results.items():
        if pname != name:
          continue
        e = est[:, ki, :]
        label = f"{allocation}_{projection}"
        row[f"empirical_{label}"] = float(np.mean(np.var(e, axis=0, ddof=1)))
        # Bias check: mean over draws vs the target, in standard errors.
        if allocation == "sampled":
          target = np.asarray(kernels.truncated(kernel, t, MAX_DEGREE))
        else:
          target = np.asarray(kernels.truncated(kernel, t,
                                                len(strat_plan.counts)))
        # Unbiasedness: z = (mean - target) / standard error per pair; the
        # mean of z^2 over pairs should be ~1 (pairs share draws, so their
        # z are correlated: judge the mean, not the max).
        z = (e.mean(0) - target) / np.sqrt(np.var(e, axis=0, ddof=1) /
                                            e.shape[0])
        row[f"bias_z2_mean_{label}"] = float(np.mean(z**2))
        row[f"bias_z_max_{label}"] = float(np.max(np.abs(z)))
      row["formula_sampled_independent"] = float(np.mean(
          features.rmf_variance(kernel, xs64, ys64, num_features,
                                MAX_DEGREE)))
      for projection in PROJECTIONS:
        row[f"formula_stratified_{projection}"] = float(np.mean(
            stratified_variance(kernel, strat_plan.counts, projection, xs64,
                                ys64)))
      for allocation in ALLOCATIONS:
        row[f"chained_over_independent_{allocation}"] = (
            row[f"empirical_{allocation}_chained"] /
            row[f"empirical_{allocation}_independent"])
      row["stratified_over_sampled_chained"] = (
          row["empirical_stratified_chained"] /
          row["empirical_sampled_chained"])
      rows.append(row)
  return {"num_features": num_features, "head_dim": head_dim,
          "num_pairs": num_pairs, "num_draws": num_draws,
          "inputs": "PreSBN then * d^-1/4; 'random': independent x, y; "
                    "'near': y = PreSBN(x + 0.15 noise)",
          "rows": rows}


# ----------------------------------------------------------------------------
# Driver.
# ----------------------------------------------------------------------------
def _num(x: float):
  """JSON-safe number: non-finite values become the strings inf/-inf/nan."""
  x = float(x)
  if math.isfinite(x):
    return float(f"{x:.5g}")  # 5 significant digits: plenty for errors
  return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def dumps(result: dict) -> str:
  """Indented JSON with every flat list of scalars on one line."""
  text = json.dumps(result, indent=1)
  return re.sub(r"\[\s+([^\[\]{}]*?)\s+\]",
                lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]",
                text) + "\n"


def as_float(x) -> float:
  """Inverse of `_num` (accepts numbers, None and the strings)."""
  if x is None:
    return math.nan
  return float(x)


def fit_slope(dims: Sequence[int], values: Sequence[float]) -> Optional[float]:
  """Least-squares slope of log(value) vs log(D) over finite positive values."""
  d = np.asarray(dims, np.float64)
  v = np.asarray([as_float(x) for x in values], np.float64)
  ok = np.isfinite(v) & (v > 0)
  if ok.sum() < 2:
    return None
  return float(np.polyfit(np.log(d[ok]), np.log(v[ok]), 1)[0])


def _summarise(dims, per_seed: np.ndarray) -> Dict[str, object]:
  """per_seed [len(dims), S] -> mean/std/per-seed lists and the slope."""
  with np.errstate(invalid="ignore", over="ignore"):
    mean = per_seed.mean(axis=1)
    std = per_seed.std(axis=1)
  out = {"mean": [_num(m) for m in mean], "std": [_num(s) for s in std],
         "per_seed": [[_num(x) for x in row] for row in per_seed]}
  out["slope"] = fit_slope(dims, out["mean"])
  out["nonfinite"] = int(np.sum(~np.isfinite(per_seed)))
  return out


def device_info() -> Dict[str, object]:
  device = jax.devices()[0]
  return {"device": f"{device.platform}:{device.device_kind}",
          "host": platform.processor() or platform.machine(),
          "cpu_count": os.cpu_count(), "jax": jax.__version__,
          "python": platform.python_version()}


def run_grid(args, dims: List[int]) -> Tuple[List[dict], Dict[str, object]]:
  """All error curves: RMF (kernel x allocation x projection x inputs) and
  the baselines (x inputs)."""
  key = jax.random.key(args.seed)
  k_in, k_feat = jax.random.split(key)
  data = make_inputs(k_in, args.seeds, args.length, args.head_dim,
                     args.raw_sigma)
  v = data["v"]
  targets = {mode: exact_targets(*data[mode], v,
                                 kernel_length=args.kernel_length)
             for mode in INPUTS}
  outside = {mode: {name: float(np.mean(targets[mode]["outside_radius"][:, i]))
                    for i, name in enumerate(KERNELS)} for mode in INPUTS}
  exp_index = KERNELS.index("exp")
  rng = np.random.default_rng(args.seed)
  # errors[(method, kernel, allocation, projection, mode)] -> [len(dims), S, 4]
  errors: Dict[tuple, list] = {}
  for dim in dims:
    t0 = time.time()
    for projection in PROJECTIONS:
      draws = {}
      for allocation in ALLOCATIONS:
        for s in range(args.seeds):
          alloc_seed = (1000003 * dim + s) if allocation == "sampled" else None
          plan, _ = features.make_plan(dim, "exp", allocation, MAX_DEGREE,
                                       projection, alloc_seed)
          draws[(allocation, s)] = (plan, kernel_scales(plan, dim, allocation,
                                                        alloc_seed))
      sup = superset_plan([d[0] for d in draws.values()])
      for ai, allocation in enumerate(ALLOCATIONS):
        # i.i.d. Rademacher projections as in `sample_rmf`, drawn directly in
        # the superset layout (see `embed`) and host-side: a JAX draw would
        # compile once per shape, and every (D, layout) has its own.
        proj = jnp.asarray(rademacher(
            rng, (args.seeds, args.head_dim, sup.projection_width)))
        scales = jnp.asarray(np.stack(
            [embed_scales(*draws[(allocation, s)], sup)
             for s in range(args.seeds)]))
        for mode in INPUTS:
          err = np.asarray(rmf_errors(proj, scales, *data[mode], v,
                                      targets[mode], plan=sup,
                                      kernel_length=args.kernel_length))
          for ki, name in enumerate(KERNELS):
            errors.setdefault(("rmf", name, allocation, projection, mode),
                              []).append(err[:, ki])
    for method in BASELINES:
      keys = jax.random.split(jax.random.fold_in(k_feat, dim), args.seeds)
      proj = _sample_baseline(keys, method=method, head_dim=args.head_dim,
                              num_features=dim)
      for mode in INPUTS:
        tg = jax.tree.map(lambda x: x[:, exp_index], targets[mode])
        err = np.asarray(baseline_errors(proj, *data[mode], v, tg,
                                         method=method,
                                         kernel_length=args.kernel_length))
        errors.setdefault((method, "exp", None, None, mode), []).append(err)
    print(f"D={dim:5d} done in {time.time() - t0:5.1f}s", flush=True)
  curves = []
  for (method, name, allocation, projection, mode), per_dim in errors.items():
    arr = np.stack(per_dim)  # [len(dims), S, 4]
    curve = {"method": method, "kernel": name, "allocation": allocation,
             "projection": projection, "inputs": mode, "D": dims}
    for mi, metric in enumerate(METRICS):
      curve[metric] = _summarise(dims, arr[:, :, mi])
    curves.append(curve)
  return curves, outside


def find_curve(curves, *, method="rmf", kernel="exp", allocation=None,
               projection=None, inputs="presbn") -> dict:
  """The curve with these labels (KeyError naming them if none)."""
  for c in curves:
    if (c["method"], c["kernel"], c["allocation"], c["projection"],
        c["inputs"]) == (method, kernel, allocation, projection, inputs):
      return c
  raise KeyError(f"no curve {method}/{kernel}/{allocation}/{projection}/"
                 f"{inputs}")


# ----------------------------------------------------------------------------
# Plot.
# ----------------------------------------------------------------------------
CLIP = 1e3  # plot ceiling: larger or non-finite errors are drawn at it


def _plot_curve(ax, dims, summary, label, style):
  mean = np.array([as_float(x) for x in summary["mean"]])
  std = np.array([as_float(x) for x in summary["std"]])
  dims = np.asarray(dims, float)
  ok = np.isfinite(mean) & (mean <= CLIP)
  slope = summary.get("slope")
  lab = label + (f" ({slope:+.2f})" if slope is not None and ok.all() else "")
  line = ax.errorbar(dims[ok], mean[ok],
                     yerr=np.where(np.isfinite(std[ok]),
                                   np.minimum(std[ok], mean[ok] * 0.95), 0),
                     label=lab, capsize=2, **style)
  if (~ok).any():  # clipped or non-finite: a marker on the ceiling
    color = line[0].get_color()
    ax.scatter(dims[~ok], np.full((~ok).sum(), CLIP), marker="^", color=color,
               zorder=5, clip_on=False)
    ax.plot([], [], " ", label=f"  {label}: {int((~ok).sum())} D clipped "
            f"(>{CLIP:g} or inf/nan)")


def _machine_line(machine: dict) -> str:
  return (f"{machine['device']} ({machine['host']}, {machine['cpu_count']} "
          f"cores, jax {machine['jax']})")


def make_plot(result: dict, path: str) -> None:
  """The 2 x 3 figure (kernel and attention error; three views)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  curves, dims = result["curves"], result["settings"]["D"]
  colors = dict(zip(KERNELS, ["C0", "C5", "C1", "C2", "C3"]))
  fig, axes = plt.subplots(2, 3, figsize=(17, 10), sharex=True)
  rows = (("kernel_error", "kernel_error_truncated",
           "kernel matrix |K_hat-K|/|K|"),
          ("attention_error", "attention_error_truncated",
           "attention output |A_hat-A|/|A|"))
  for r, (metric, metric_trunc, ylabel) in enumerate(rows):
    # (a) PreSBN, library default map, every kernel + baselines.
    ax = axes[r, 0]
    for name in KERNELS:
      c = find_curve(curves, kernel=name, allocation="stratified",
                     projection="chained")
      _plot_curve(ax, dims, c[metric], name,
                  {"color": colors[name], "marker": "o", "ms": 3,
                   "ls": ":" if name == "trigh" else "-"})
    for method, marker in (("performer", "s"), ("rfa", "D")):
      c = find_curve(curves, method=method)
      _plot_curve(ax, dims, c[metric], f"{method} (softmax)",
                  {"color": "k" if method == "performer" else "0.5",
                   "marker": marker, "ms": 3, "ls": "--"})
    ax.set_title("PreSBN, RMF stratified+chained (default)")
    # (b) PreSBN, allocation x projection for exp and inverse.
    ax = axes[r, 1]
    for name, base in (("exp", "C0"), ("inverse", "C1")):
      for allocation, projection, ls, marker in (
          ("sampled", "independent", "-", "o"),
          ("sampled", "chained", "--", "o"),
          ("stratified", "independent", "-", "s"),
          ("stratified", "chained", "--", "s")):
        c = find_curve(curves, kernel=name, allocation=allocation,
                       projection=projection)
        _plot_curve(ax, dims, c[metric], f"{name} {allocation}/{projection}",
                    {"color": base if allocation == "sampled" else
                     ("C9" if name == "exp" else "C8"),
                     "marker": marker, "ms": 3, "ls": ls})
    ax.set_title("PreSBN: degree allocation x projection layout")
    # (c) No PreSBN (raw inputs), paper's map, vs the truncated series.
    ax = axes[r, 2]
    for name in KERNELS:
      c = find_curve(curves, kernel=name, allocation="sampled",
                     projection="independent", inputs="raw")
      _plot_curve(ax, dims, c[metric_trunc], name,
                  {"color": colors[name], "marker": "o", "ms": 3,
                   "ls": ":" if name == "trigh" else "-"})
    for method, marker in (("performer", "s"), ("rfa", "D")):
      c = find_curve(curves, method=method, inputs="raw")
      _plot_curve(ax, dims, c[metric_trunc], f"{method} (softmax)",
                  {"color": "k" if method == "performer" else "0.5",
                   "marker": marker, "ms": 3, "ls": "--"})
    sigma = result["settings"]["raw_sigma"]
    ax.set_title(f"no PreSBN: N(0,{sigma}^2) q,k * d^-1/4; sampled+indep.;\n"
                 f"vs f truncated at degree {MAX_DEGREE}; clipped at {CLIP:g}")
    d = np.asarray(dims, float)
    for c, ax in enumerate(axes[r]):
      # A D^-1/2 guide through 1.6x the first point of the panel's exp curve.
      exp_curve = (find_curve(curves, allocation="stratified",
                              projection="chained") if c < 2 else
                   find_curve(curves, allocation="sampled",
                              projection="independent", inputs="raw"))
      first = as_float(exp_curve[metric if c < 2 else metric_trunc]["mean"][0])
      ax.set_xscale("log", base=2)
      ax.set_yscale("log")
      if math.isfinite(first):
        ax.plot(d, 1.6 * first * (d / d[0])**-0.5, color="0.8", lw=3,
                zorder=0, label="~ D^-1/2")
      ax.set_ylabel(ylabel)
      ax.grid(True, which="both", alpha=0.3)
      ax.legend(fontsize=7, loc="upper right" if c < 2 else "lower left")
    axes[r, 2].set_ylim(1e-4, CLIP * 3)
  for ax in axes[1]:
    ax.set_xlabel("D (random features)")
  s = result["settings"]
  fig.suptitle(
      f"Random Maclaurin feature error vs D (slope of the mean in the legend);"
      f" L={s['length']} (kernel matrix {s['kernel_length']}x"
      f"{s['kernel_length']}), d={s['head_dim']}, {s['seeds']} seeds, error "
      f"bars = std over seeds\n{_machine_line(result['machine'])}",
      fontsize=11)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true",
                      help="tiny setting for tests (D=16,64,256, L=256, "
                      "3 seeds)")
  parser.add_argument("--dims", default=None,
                      help="comma-separated D (default 16..4096)")
  parser.add_argument("--seeds", type=int, default=None,
                      help="independent draws per D (default 5, quick 3)")
  parser.add_argument("--length", type=int, default=None,
                      help="L of the attention error (default 1024, quick 256)")
  parser.add_argument("--kernel_length", type=int, default=None,
                      help="Lk of the kernel matrix (default 256, quick 128)")
  parser.add_argument("--head_dim", type=int, default=32)
  parser.add_argument("--raw_sigma", type=float, default=0.5,
                      help="std of the raw (no PreSBN) q, k before d^-1/4")
  parser.add_argument("--variance_features", type=int, default=128)
  parser.add_argument("--variance_draws", type=int, default=None,
                      help="draws of the variance table (default 4000, "
                      "quick 300)")
  parser.add_argument("--variance_pairs", type=int, default=None,
                      help="pairs per pair set (default 64, quick 16)")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--out_json", default="docs/kernel_error.json")
  parser.add_argument("--out_png", default="docs/kernel_error.png",
                      help="'' to skip the plot")
  args = parser.parse_args(argv)
  quick = args.quick
  dims = ([int(x) for x in args.dims.split(",")] if args.dims else
          ([16, 64, 256] if quick else [2**i for i in range(4, 13)]))
  args.seeds = args.seeds or (3 if quick else 5)
  args.length = args.length or (256 if quick else 1024)
  args.kernel_length = min(args.kernel_length or (128 if quick else 256),
                           args.length)
  args.variance_draws = args.variance_draws or (300 if quick else 4000)
  args.variance_pairs = args.variance_pairs or (16 if quick else 64)

  start = time.time()
  curves, outside = run_grid(args, dims)
  grid_s = time.time() - start
  variance = variance_table(jax.random.key(args.seed + 1),
                            args.variance_features, args.head_dim,
                            args.variance_pairs, args.variance_draws)
  argv_list = sys.argv[1:] if argv is None else list(argv)
  result = {
      "command": " ".join(["python", "benchmarks/kernel_error.py"] +
                          argv_list),
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec="seconds"),
      "machine": device_info(),
      "settings": {"D": dims, "seeds": args.seeds, "length": args.length,
                   "kernel_length": args.kernel_length,
                   "head_dim": args.head_dim, "raw_sigma": args.raw_sigma,
                   "max_degree": MAX_DEGREE, "quick": quick,
                   "kernels": list(KERNELS), "metrics": list(METRICS),
                   "inputs": {"presbn": "PreSBN(q), PreSBN(k), * d^-1/4",
                              "raw": f"N(0, {args.raw_sigma}^2) q, k * d^-1/4,"
                                     " no PreSBN"},
                   "attention": "non-causal, no mask, v ~ N(0, 1)"},
      "fraction_outside_radius": outside,
      "curves": curves,
      "variance": variance,
      "runtime_s": {"grid": round(grid_s, 1),
                    "total": round(time.time() - start, 1)},
  }
  if args.out_json:
    os.makedirs(os.path.dirname(os.path.abspath(args.out_json)), exist_ok=True)
    with open(args.out_json, "w") as f:
      f.write(dumps(result))
    print(f"wrote {args.out_json}")
  if args.out_png:
    make_plot(result, args.out_png)
    print(f"wrote {args.out_png}")
  _print_summary(result)
  return result


def _print_summary(result: dict) -> None:
  dims = result["settings"]["D"]
  print(f"{'curve':55s} {'slope K':>8} {'slope A':>8}  A err at D=" +
        ",".join(str(d) for d in dims if d in (128, 1024)))
  for c in result["curves"]:
    label = "/".join(str(c[k]) for k in ("method", "kernel", "allocation",
                                         "projection", "inputs"))
    at = [c["attention_error"]["mean"][dims.index(d)] for d in dims
          if d in (128, 1024)]
    fmt = lambda s: f"{s:+.3f}" if s is not None else "   n/a"
    print(f"{label:55s} {fmt(c['kernel_error']['slope']):>8} "
          f"{fmt(c['attention_error']['slope']):>8}  " +
          ", ".join(f"{as_float(a):.4g}" for a in at))
  print(f"total {result['runtime_s']['total']} s")


if __name__ == "__main__":
  main()
