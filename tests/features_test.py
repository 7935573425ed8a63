"""Random Maclaurin features: allocation, determinism, jit, unbiasedness (with
bounds from the variance), and the 1/sqrt(D) error rate."""

import collections
import dataclasses
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from macformer_jax import features
from macformer_jax import kernels

KERNELS = ("exp", "trigh", "inverse", "log", "sqrt", "polynomial2")
D_IN = 16


def _sbn_pair(seed=0, d=D_IN, correlation=0.6):
  """Two PreSBN'd vectors scaled by d^-1/4 (docs/METHOD.md §5), x.y != 0."""
  rng = np.random.default_rng(seed)
  x = rng.normal(size=d)
  y = correlation * x + rng.normal(size=d)
  out = []
  for v in (x, y):
    v = v - v.mean()
    out.append(v / np.linalg.norm(v) * d**-0.25)
  return np.stack(out)


def test_degree_pmf():
  pmf = features.degree_pmf(20)
  assert pmf.shape == (20,)
  np.testing.assert_allclose(pmf.sum(), 1.0, rtol=1e-12)
  # P(1) of the authors' degree distribution, docs/METHOD.md §2.1.
  np.testing.assert_allclose(pmf[0], 0.50000048, rtol=1e-7)
  np.testing.assert_allclose(pmf[1:] / pmf[:-1], 0.5)


def test_stratified_counts_and_weights():
  counts, weights = features.allocate_degrees(127, "stratified", 20)
  assert counts == (64, 32, 16, 8, 4, 2, 1)
  np.testing.assert_allclose(weights, 1.0 / np.array(counts))


def test_sampled_counts_are_multinomial():
  counts, weights = features.allocate_degrees(
    127, "sampled", 20, np.random.default_rng(0)
  )
  assert sum(counts) == 127
  pmf = features.degree_pmf(20)[: len(counts)]
  present = np.array(counts) > 0
  np.testing.assert_allclose(weights[present], 1.0 / (pmf[present] * 127))


@pytest.mark.parametrize(
  "projection,width", [("chained", 127), ("independent", 247)]
)
def test_plan_widths(projection, width):
  plan, scales = features.make_plan(128, "exp", "stratified", 20, projection)
  assert plan.num_features == 128 and scales.shape == (127,)
  assert plan.projection_width == width  # sum_n C_n vs sum_n n C_n


def test_same_key_same_features_and_static_shapes_under_jit():
  x = jnp.asarray(_sbn_pair())
  sample = jax.jit(
    lambda key: features.sample_rmf(key, D_IN, 64, "exp", "stratified")
  )
  a, b = sample(jax.random.key(3)), sample(jax.random.key(3))
  c = sample(jax.random.key(4))
  np.testing.assert_array_equal(a.projections, b.projections)
  assert not np.array_equal(a.projections, c.projections)
  phi = jax.jit(features.rmf)(a, x)
  assert phi.shape == (2, 64) and phi.dtype == jnp.float32
  np.testing.assert_allclose(phi[:, 0], 1.0)  # constant sqrt(a_0) first


def test_sampled_under_jit_needs_a_concrete_seed():
  with pytest.raises(ValueError, match="allocation_seed"):
    jax.jit(lambda key: features.sample_rmf(key, D_IN, 64, "exp", "sampled"))(
      jax.random.key(0)
    )
  params = jax.jit(
    lambda key: features.sample_rmf(
      key, D_IN, 64, "exp", "sampled", allocation_seed=7
    )
  )(jax.random.key(0))
  eager = features.sample_rmf(
    jax.random.key(0), D_IN, 64, "exp", "sampled", allocation_seed=7
  )
  assert params.plan == eager.plan


def test_bad_options_are_named():
  with pytest.raises(ValueError, match="unknown allocation 'random'"):
    features.sample_rmf(jax.random.key(0), 4, 8, "exp", "random")
  with pytest.raises(ValueError, match="unknown projection"):
    features.sample_rmf(
      jax.random.key(0), 4, 8, "exp", "stratified", projection="tree"
    )
  with pytest.raises(ValueError, match="unknown kernel"):
    features.sample_rmf(jax.random.key(0), 4, 8, "gauss", "stratified")


def test_bfloat16_inputs_are_computed_in_float32():
  x = jnp.asarray(_sbn_pair())
  params = features.sample_rmf(jax.random.key(0), D_IN, 64, "exp", "stratified")
  phi32 = features.rmf(params, x)
  phi16 = features.rmf(params, x.astype(jnp.bfloat16))
  assert phi16.dtype == jnp.float32
  # Only the input rounding differs (bf16 has 8 mantissa bits).
  np.testing.assert_allclose(phi16, phi32, atol=0.02)


def _dots(params_fn, keys, x):
  def one(key):
    phi = features.rmf(params_fn(key), x)
    return phi[0] @ phi[1]

  return np.asarray(jax.jit(jax.vmap(one))(keys), np.float64)


def _sampled_moments(kernel, x, y, min_degree=1):
  """Exact variance and kurtosis of the one-random-feature estimate (M = 2,
  or M = Dk + 2 with the exact linear term and `min_degree=2`).

  Z = (a_N / P(N)) prod_{j<=N} u_j with u = (w.x)(w.y), N ~ P(n): the raw
  moments are E[Z^k] = sum_n P(n) (a_n / P(n))^k E[u^k]^n, with E[u^k] by
  enumerating all 2^Dk Rademacher vectors w (independent of the
  closed form of docs/METHOD.md §2.2, which the test checks against it).
  P(n) is 2^-(n+1) renormalised over n = min_degree..20, written out here.
  """
  w = np.array(list(itertools.product((-1.0, 1.0), repeat=len(x))))
  u = (w @ x) * (w @ y)
  n = np.arange(min_degree, 21)
  pmf = 2.0 ** -(n + 1.0) / np.sum(2.0 ** -(n + 1.0))
  a = kernels.coefficients(kernel, 21)[min_degree:]
  raw = [np.sum(pmf * (a / pmf) ** k * np.mean(u**k) ** n) for k in range(5)]
  mean = raw[1]
  mu2 = raw[2] - mean**2
  mu4 = raw[4] - 4 * mean * raw[3] + 6 * mean**2 * raw[2] - 3 * mean**4
  return mu2, mu4 / mu2**2


@pytest.mark.parametrize("kernel", KERNELS)
def test_sampled_allocation_is_unbiased(kernel):
  """Paper scheme: the degree of each feature drawn i.i.d. from P(n).

  4000 independent draws of a one-random-feature map (M = 2); draws with the
  same degree are computed together (one compile per degree). Bound: 4
  standard errors, sigma^2 from the formula of docs/METHOD.md §2.2 (exact for
  this scheme).
  """
  x = _sbn_pair()
  num_draws = 4000
  seeds = np.random.default_rng(1).integers(0, 2**31, num_draws)
  groups = collections.defaultdict(list)
  for seed in seeds:
    plan, _ = features.make_plan(2, kernel, "sampled", allocation_seed=seed)
    groups[plan.counts].append(int(seed))
  keys = jax.random.split(jax.random.key(2), num_draws)
  values, start = [], 0
  for seed_list in groups.values():
    group_keys = keys[start : start + len(seed_list)]
    start += len(seed_list)
    values.append(
      _dots(
        lambda k, s=seed_list[0]: features.sample_rmf(
          k, D_IN, 2, kernel, "sampled", allocation_seed=s
        ),
        group_keys,
        x,
      )
    )
  values = np.concatenate(values)
  t = float(x[0] @ x[1])
  target = float(kernels.truncated(kernel, np.float64(t), 20))
  sigma = np.sqrt(features.rmf_variance(kernel, x[0], x[1], 2) / num_draws)
  assert abs(values.mean() - target) < 4 * sigma, (values.mean(), target, sigma)
  # The variance formula (docs/METHOD.md §2.2) equals the exact enumeration, and
  # the sample variance is within 4 of its standard errors, sqrt((kurtosis - 1)
  # / n) relative: 6 % for most kernels, 16 % for inverse (heavy tails).
  variance, kurtosis = _sampled_moments(kernel, x[0], x[1])
  np.testing.assert_allclose(
    features.rmf_variance(kernel, x[0], x[1], 2), variance, rtol=1e-9
  )
  np.testing.assert_allclose(
    values.var(), variance, rtol=4 * np.sqrt((kurtosis - 1) / num_draws)
  )


@pytest.mark.parametrize("projection", ["chained", "independent"])
@pytest.mark.parametrize("kernel", KERNELS)
def test_stratified_allocation_is_unbiased(kernel, projection):
  """2000 independent draws, M = 32; bound: 4 empirical standard errors.

  The target is f truncated at the plan's largest degree (5 for M = 32).
  Inputs with |x|^2 = 1 (not PreSBN-scaled) so that degrees >= 2 matter.
  """
  x = _sbn_pair() * D_IN**0.25 * 0.8  # |x| = 0.8, t ~ 0.4
  num_draws = 2000
  keys = jax.random.split(jax.random.key(5), num_draws)
  values = _dots(
    lambda k: features.sample_rmf(
      k, D_IN, 32, kernel, "stratified", projection=projection
    ),
    keys,
    x,
  )
  plan, _ = features.make_plan(32, kernel, "stratified", projection=projection)
  t = float(x[0] @ x[1])
  target = float(kernels.truncated(kernel, np.float64(t), plan.max_degree))
  stderr = values.std() / np.sqrt(num_draws)
  assert abs(values.mean() - target) < 4 * stderr, (
    values.mean(),
    target,
    stderr,
  )
  # Degree >= 2 terms are present: the target differs from a_0 + a_1 t.
  a = kernels.coefficients(kernel, 2)
  assert abs(target - (a[0] + a[1] * t)) > 10 * stderr or kernel == "sqrt"


def test_kernel_matrix_error_falls_like_one_over_sqrt_d():
  """Relative Frobenius error of the 32 x 32 kernel matrix, 8 seeds per D."""
  rng = np.random.default_rng(0)
  x = rng.normal(size=(32, D_IN))
  x = x - x.mean(-1, keepdims=True)
  x = x / np.linalg.norm(x, axis=-1, keepdims=True) * D_IN**-0.25
  exact = np.exp(x @ x.T)
  sizes = [64, 128, 256, 512, 1024, 2048]
  errors = []
  for m in sizes:

    def error(key, m=m):
      phi = features.rmf(
        features.sample_rmf(key, D_IN, m, "exp", "stratified"), x
      )
      return jnp.linalg.norm(phi @ phi.T - exact) / np.linalg.norm(exact)

    keys = jax.random.split(jax.random.key(m), 8)
    errors.append(float(jnp.mean(jax.jit(jax.vmap(error))(keys))))
  slope = np.polyfit(np.log(sizes), np.log(errors), 1)[0]
  assert -0.65 <= slope <= -0.35, (slope, errors)


def test_per_head_maps_are_independent():
  """Head h of a per-head map == a shared map with that head's projections.

  The two sides contract x with the projections on different XLA paths
  (einsum over [H, Dk, W] vs one matmul), which may sum in different orders.
  Integer inputs make every projection w.x an exact small integer in
  float32 whatever the order, so the only round-off left is the same few
  elementwise products and scales on both sides: at most one rounding per
  factor (degree <= 5 here), hence rtol = 8 float32 epsilons.
  """
  params = features.sample_rmf(
    jax.random.key(0), D_IN, 32, "exp", "stratified", num_heads=3
  )
  assert params.projections.shape == (3, D_IN, 31)
  x = jnp.asarray(
    np.random.default_rng(0).integers(-3, 4, size=(5, 3, D_IN)), jnp.float32
  )
  rtol = 8 * np.finfo(np.float32).eps
  rmf = jax.jit(features.rmf, static_argnames=("constant", "head_axis"))
  phi = rmf(params, x)
  for h in range(3):
    single = features.RMFParams(
      params.projections[h], params.scales, params.plan
    )
    np.testing.assert_allclose(phi[:, h], rmf(single, x[:, h]), rtol=rtol)
  heads_first = rmf(params, jnp.swapaxes(x[None], 1, 2), head_axis=1)
  np.testing.assert_allclose(jnp.swapaxes(heads_first[0], 0, 1), phi, rtol=rtol)
  # The heads' draws differ.
  assert not np.array_equal(params.projections[0], params.projections[1])


def test_fourier_features_estimate_the_softmax_kernel():
  """RFA: mean over 2000 draws within 4 empirical standard errors of exp(x.y).

  (FAVOR+'s stabilisers make single-pair values scale-free; it is tested at
  the attention level against exact softmax in attention_test.py.)
  """
  x = jnp.asarray(_sbn_pair())
  target = float(np.exp(np.asarray(x[0] @ x[1])))

  def fourier(key):
    phi = features.fourier_features(jax.random.normal(key, (D_IN, 8)), x)
    return phi[0] @ phi[1]

  keys = jax.random.split(jax.random.key(9), 2000)
  values = np.asarray(jax.vmap(fourier)(keys), np.float64)
  stderr = values.std() / np.sqrt(len(values))
  assert abs(values.mean() - target) < 4 * stderr


def test_seed_from_key_reads_the_key_words():
  """One seed helper: a key and its raw key data give the same 64-bit seed,
  the first key word shifted above the last (Python-int reference)."""
  key = jax.random.key(123)
  words = [int(w) for w in np.asarray(jax.random.key_data(key)).ravel()]
  expected = (words[0] << 32) | words[-1]
  assert features.seed_from_key(key) == expected
  assert features.seed_from_key(np.asarray(jax.random.key_data(key))) == (
    expected
  )
  # sample_rmf's 'sampled' counts come from it: same plan as the seed given.
  drawn = features.sample_rmf(key, D_IN, 64, "exp", "sampled")
  seeded = features.sample_rmf(
    key, D_IN, 64, "exp", "sampled", allocation_seed=expected
  )
  assert drawn.plan == seeded.plan


def test_sample_rmf_projections_are_its_rademacher_draw():
  key = jax.random.key(4)
  params = features.sample_rmf(key, D_IN, 32, "exp", "stratified", num_heads=3)
  draw = features.sample_rademacher(key, D_IN, params.plan.projection_width, 3)
  np.testing.assert_array_equal(params.projections, draw)
  assert set(np.unique(np.asarray(draw)).tolist()) == {-1.0, 1.0}


@pytest.mark.parametrize("causal", [False, True])
def test_favor_positive_is_the_gerf_map_at_a_zero(causal):
  """FAVOR+'s features are the unbiased A = 0 features exp(w.x - |x|^2/2)
  / sqrt(M) times a stabiliser constant: per row for queries, per example
  for keys (non-causal; causal keys: exp(-|w|^2/2) per feature), plus
  Performer's eps = 1e-6 / sqrt(M) (non-causal)."""
  m = 16
  w = features.sample_orthogonal_gaussian(jax.random.key(0), D_IN, m)
  x = jax.random.normal(jax.random.key(1), (2, 3, 5, D_IN)) * D_IN**-0.25
  x64, w64 = np.asarray(x, np.float64), np.asarray(w, np.float64)
  unbiased = np.exp(x64 @ w64 - 0.5 * np.sum(x64**2, -1, keepdims=True))
  unbiased /= np.sqrt(m)
  eps = 0.0 if causal else 1e-6 / np.sqrt(m)
  phi_q = np.asarray(
    features.favor_positive(w, x, is_query=True, causal=causal), np.float64
  )
  phi_k = np.asarray(
    features.favor_positive(w, x, is_query=False, causal=causal), np.float64
  )
  ratio_q = (phi_q - eps) / unbiased
  if causal:
    ratio_q = ratio_q * np.exp(-0.5 * np.sum(w64**2, 0))
    ratio_k = (phi_k - eps) / unbiased * np.exp(0.5 * np.sum(w64**2, 0))
    np.testing.assert_allclose(ratio_k, 1.0, rtol=1e-5)
  else:
    ratio_k = ((phi_k - eps) / unbiased).reshape(2, -1)
    np.testing.assert_allclose(ratio_k / ratio_k[:, :1], 1.0, rtol=1e-4)
  np.testing.assert_allclose(ratio_q / ratio_q[..., :1], 1.0, rtol=1e-4)


# ----------------------------------------------------------------------------
# Exact constant and linear terms (H0/1, docs/METHOD.md §3.3).
# ----------------------------------------------------------------------------
def test_degree_pmf_above_one():
  """P'(n) = P(n) / (1 - P(1)) over n >= 2, zero at n = 1."""
  pmf, full = features.degree_pmf(20, 2), features.degree_pmf(20)
  assert pmf[0] == 0.0
  np.testing.assert_allclose(pmf[1:], full[1:] / (1.0 - full[0]), rtol=1e-12)


@pytest.mark.parametrize("projection", ["chained", "independent"])
def test_exact_linear_plan(projection):
  """M = 128, Dk = 32: 1 constant + 32 linear columns + 95 random features
  of degrees >= 2, allocated by largest remainder of 95 P'(n)."""
  plan, scales = features.make_plan(
    128,
    "sqrt",
    "stratified",
    projection=projection,
    exact_linear=True,
    in_dim=32,
  )
  assert plan.exact_linear == 32 and plan.counts[0] == 0
  assert plan.counts == (0, 48, 24, 12, 6, 3, 1, 1)  # 95 * (1/2, 1/4, ...)
  assert plan.num_features == 128 and scales.shape == (127,)
  assert (
    plan.degrees().tolist()
    == [1] * 32 + np.repeat(np.arange(1, 9), plan.counts).tolist()
  )
  a = kernels.coefficients("sqrt", 9)
  np.testing.assert_allclose(scales[:32], np.sqrt(a[1]), rtol=1e-7)
  np.testing.assert_allclose(
    scales[32:],
    np.repeat(np.sqrt(a[2:] / plan.counts[1:]), plan.counts[1:]),
    rtol=1e-7,
  )
  sampled, s_scales = features.make_plan(
    128, "exp", "sampled", exact_linear=True, in_dim=32, allocation_seed=3
  )
  assert sampled.counts[0] == 0 and sum(sampled.counts) == 95
  pmf = features.degree_pmf(20, 2)[: len(sampled.counts)]
  a = kernels.coefficients("exp", len(sampled.counts) + 1)[1:]
  expected = np.sqrt(a / (np.maximum(pmf, 1e-300) * 95))
  np.testing.assert_allclose(
    s_scales[32:], np.repeat(expected, sampled.counts), rtol=1e-6
  )
  with pytest.raises(ValueError, match="in_dim"):
    features.make_plan(128, "exp", "stratified", exact_linear=True)
  with pytest.raises(ValueError, match="num_features >= Dk \\+ 2 = 34"):
    features.sample_rmf(
      jax.random.key(0), 32, 33, "exp", "stratified", exact_linear=True
    )


def test_exact_linear_map_has_the_exact_low_degree_terms():
  """phi = [sqrt(a_0), sqrt(a_1) x, products of degree >= 2]: the first
  1 + Dk columns are exact, and phi(x) . phi(y) minus a_0 + a_1 x.y is the
  product part alone (float64, so to round-off)."""
  params = features.sample_rmf(
    jax.random.key(1), D_IN, 40, "log", "stratified", exact_linear=True
  )
  x = _sbn_pair(3) * D_IN**0.25 * 0.8
  phi = np.asarray(features.rmf(params, jnp.asarray(x)), np.float64)
  x32 = x.astype(np.float32).astype(np.float64)
  a = kernels.coefficients("log", 2)
  np.testing.assert_allclose(phi[:, 0], np.sqrt(a[0]))
  np.testing.assert_allclose(phi[:, 1 : 1 + D_IN], np.sqrt(a[1]) * x32, 1e-6)
  products = features.rmf(
    features.RMFParams(
      params.projections,
      params.scales[D_IN:],
      dataclasses.replace(params.plan, exact_linear=0),
    ),
    jnp.asarray(x),
    constant=False,
  )
  assert products.shape == (2, 40 - 1 - D_IN)
  np.testing.assert_allclose(
    phi[:, 1 + D_IN :], np.asarray(products, np.float64), rtol=1e-6
  )


def _float64_params(params, scales):
  """The same draw with float64 projections and reference float64 scales."""
  return features.RMFParams(
    params.projections.astype(jnp.float64), jnp.asarray(scales), params.plan
  )


def _dots64(params_fn, scales, keys, x):
  """phi(x_0) . phi(x_1) per key, computed in float64."""
  with jax.enable_x64(True):

    def one(key):
      phi = features.rmf(_float64_params(params_fn(key), scales), x)
      return phi[0] @ phi[1]

    return np.asarray(jax.jit(jax.vmap(one))(keys))


def _exact_linear_scales(kernel, counts, weights):
  """float64 scales [sqrt(a_1)] * Dk + sqrt(a_n w_n) per random feature."""
  a = kernels.coefficients(kernel, len(counts) + 1)
  return np.concatenate(
    [
      np.full(D_IN, np.sqrt(a[1])),
      np.repeat(np.sqrt(a[1:] * np.asarray(weights, np.float64)), counts),
    ]
  )


@pytest.mark.parametrize("kernel", KERNELS)
def test_exact_linear_sampled_is_unbiased_with_the_derived_variance(kernel):
  """H0/1 with the paper's sampled degrees (over n >= 2), one random
  feature (M = Dk + 2), float64: 4000 draws. The mean is within 4 standard
  errors of f_20(t), sigma from the variance of docs/METHOD.md §3.3; that
  formula equals exact enumeration over the 2^16 Rademacher vectors; the
  sample variance is within 4 of its standard errors, sqrt((kurtosis - 1)
  / n) relative, with the enumerated kurtosis.

  Inputs with |x| = 0.8 (t ~ 0.4), where the degree >= 2 terms matter.
  """
  x = _sbn_pair() * D_IN**0.25 * 0.8
  x32 = x.astype(np.float32).astype(np.float64)  # what rmf projects
  m = D_IN + 2
  num_draws = 4000
  seeds = np.random.default_rng(11).integers(0, 2**31, num_draws)
  groups = collections.defaultdict(list)
  for seed in seeds:
    plan, _ = features.make_plan(
      m,
      kernel,
      "sampled",
      allocation_seed=seed,
      exact_linear=True,
      in_dim=D_IN,
    )
    groups[plan.counts].append(int(seed))
  keys = jax.random.split(jax.random.key(12), num_draws)
  n = np.arange(2, 21)
  pmf = 2.0 ** -(n + 1.0) / np.sum(2.0 ** -(n + 1.0))
  values, start = [], 0
  for counts, seed_list in groups.items():
    group_keys = keys[start : start + len(seed_list)]
    start += len(seed_list)
    weights = np.zeros(len(counts))
    weights[len(counts) - 1] = 1.0 / pmf[len(counts) - 2]  # R = 1
    values.append(
      _dots64(
        lambda k, s=seed_list[0]: features.sample_rmf(
          k,
          D_IN,
          m,
          kernel,
          "sampled",
          allocation_seed=s,
          exact_linear=True,
        ),
        _exact_linear_scales(kernel, counts, weights),
        group_keys,
        x,
      )
    )
  values = np.concatenate(values)
  t = x32[0] @ x32[1]
  target = float(kernels.truncated(kernel, np.float64(t), 20))
  formula = features.rmf_variance(kernel, x32[0], x32[1], m, exact_linear=True)
  sigma = np.sqrt(formula / num_draws)
  assert abs(values.mean() - target) < 4 * sigma, (values.mean(), target, sigma)
  variance, kurtosis = _sampled_moments(kernel, x32[0], x32[1], min_degree=2)
  np.testing.assert_allclose(formula, variance, rtol=1e-9)
  np.testing.assert_allclose(
    values.var(), variance, rtol=4 * np.sqrt((kurtosis - 1) / num_draws)
  )


def _stratified_moments(plan, x, y):
  """Exact variance and kurtosis of a stratified map's phi(x).phi(y).

  Independent of `features.stratified_variance`'s closed form: E[u^k], u =
  (w.x)(w.y), by enumerating all 2^Dk Rademacher vectors; distinct chains
  (`chained`) or features (`independent`) use disjoint projections, so they
  are independent and their cumulants add. A chain's value Z = sum_n c_n
  prod_{j<=n} u_j (c_n = a_n / C_n where the chain carries a degree-n
  feature, else 0) is Horner's Z_n = u_n (c_n + Z_{n+1}) with u_n
  independent of Z_{n+1}, so E[Z_n^k] = E[u^k] E[(c_n + Z_{n+1})^k].
  """
  w = np.array(list(itertools.product((-1.0, 1.0), repeat=len(x))))
  u = (w @ x) * (w @ y)
  mu = np.array([np.mean(u**k) for k in range(5)])
  counts = plan.counts
  a = kernels.coefficients(plan.kernel, len(counts) + 1)
  coef = [a[n] / c if c else 0.0 for n, c in enumerate(counts, 1)]
  if plan.projection == "chained":
    chains = [
      [coef[n] if i < counts[n] else 0.0 for n in range(len(counts))]
      for i in range(max(counts))
    ]
  else:
    chains = [
      [0.0] * n + [coef[n]]
      for n in range(len(counts))
      for _ in range(counts[n])
    ]
  k2 = k4 = 0.0
  for d in chains:
    raw = np.array([1.0, 0, 0, 0, 0])  # moments of Z_{L+1} = 0
    for c in d[::-1]:
      shifted = [
        sum(math.comb(k, j) * c ** (k - j) * raw[j] for j in range(k + 1))
        for k in range(5)
      ]
      raw = mu * np.array(shifted)
    m = raw[1]
    var = raw[2] - m**2
    c4 = raw[4] - 4 * m * raw[3] + 6 * m**2 * raw[2] - 3 * m**4
    k2, k4 = k2 + var, k4 + c4 - 3 * var**2
  return k2, 3 + k4 / k2**2


@pytest.mark.parametrize("projection", ["chained", "independent"])
@pytest.mark.parametrize("kernel", KERNELS)
def test_exact_linear_stratified_is_unbiased_with_the_derived_variance(
  kernel, projection
):
  """H0/1 stratified, M = 48 (31 random features, degrees 2..6), float64,
  3000 draws. `features.stratified_variance` (docs/METHOD.md §3.3, the
  chained covariance included) equals the exact variance by enumeration;
  the mean is within 4 standard errors of f_K(t), sigma from it; the sample
  variance is within 4 of its standard errors, sqrt((kurtosis - 1) / n)
  relative, with the exact kurtosis (large for the inverse kernel, whose
  single degree-6 feature is heavy-tailed: the bound is loose there).
  Inputs with |x| = 0.6 (t ~ 0.29), where the degree >= 2 terms matter."""
  x = _sbn_pair(2) * D_IN**0.25 * 0.6
  x32 = x.astype(np.float32).astype(np.float64)
  m = 48
  plan, _ = features.make_plan(
    m,
    kernel,
    "stratified",
    projection=projection,
    exact_linear=True,
    in_dim=D_IN,
  )
  counts = np.asarray(plan.counts)
  weights = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)
  num_draws = 3000
  values = _dots64(
    lambda k: features.sample_rmf(
      k,
      D_IN,
      m,
      kernel,
      "stratified",
      projection=projection,
      exact_linear=True,
    ),
    _exact_linear_scales(kernel, plan.counts, weights),
    jax.random.split(jax.random.key(13), num_draws),
    x,
  )
  t = x32[0] @ x32[1]
  target = float(kernels.truncated(kernel, np.float64(t), plan.max_degree))
  formula = features.stratified_variance(plan, x32[0], x32[1])
  variance, kurtosis = _stratified_moments(plan, x32[0], x32[1])
  np.testing.assert_allclose(formula, variance, rtol=1e-9)
  sigma = np.sqrt(variance / num_draws)
  assert abs(values.mean() - target) < 4 * sigma, (values.mean(), target, sigma)
  # The degree >= 2 terms are estimated: the target is not a_0 + a_1 t.
  a = kernels.coefficients(kernel, 2)
  assert abs(target - (a[0] + a[1] * t)) > 10 * sigma
  np.testing.assert_allclose(
    values.var(), variance, rtol=4 * np.sqrt((kurtosis - 1) / num_draws)
  )


def test_exact_linear_variance_is_far_below_the_default_maps():
  """On PreSBN'd inputs (|x| = Dk^-1/4, Dk = 32, M = 128, exp), the
  degree-1 features carry most of the default map's variance (docs/METHOD.md
  §3.3): taking them exact lowers the variance of phi(x).phi(y) by more
  than 30x, by the formulas, for every pair of 64 random pairs."""
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 64, 32))
  x = x - x.mean(-1, keepdims=True)
  x = x / np.linalg.norm(x, axis=-1, keepdims=True) * 32**-0.25
  default, _ = features.make_plan(128, "exp", "stratified")
  h01, _ = features.make_plan(
    128, "exp", "stratified", exact_linear=True, in_dim=32
  )
  ratio = features.stratified_variance(
    default, x[0], x[1]
  ) / features.stratified_variance(h01, x[0], x[1])
  assert ratio.min() > 30, ratio.min()
