"""Tests of the Spectraformer grid (spectral.py and SpectralAttention).

Statistical tests use fixed seeds and 4-standard-error bounds over >= 1000
independent draws (vmapped over keys, one compilation per weight matrix).
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import common
from macformer_jax import attention
from macformer_jax import features
from macformer_jax import layers
from macformer_jax import spectral

pytestmark = pytest.mark.usefixtures("compile_fast")

DK, M = 6, 12  # Dk not a power of two (sorf/fastfood pad to 8), M > 8
DRAWS = 2000
QMC_DRAWS = 1000  # qmc: one host (scipy) call per draw
POSITIVE_AND_TRIG = ("trigrf", "posrf", "oprf", "gerf", "saderf")
GERF_LOGIT = 0.7  # A = (1 - e^0.7) / 8 = -0.126: a GERF away from posrf
LARGE_M = 2048  # attention tests


def _pairs(num=5):
  """x, y [num, DK] with |x|, |y| <= 1 (norms from 0.3 to 1)."""
  x, y = jax.random.normal(jax.random.key(7), (2, num, DK))
  norms = jnp.linspace(0.3, 1.0, num)[:, None]
  unit = lambda a: a / jnp.linalg.norm(a, axis=-1, keepdims=True)
  return unit(x) * norms, unit(y) * norms[::-1]


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _draw(weights, width, draws):
  """[draws, DK, width] independent projections."""
  keys = jax.random.split(jax.random.key(len(weights) * 1000 + width), draws)
  return jax.vmap(lambda key: spectral.sample_weights(key, weights, DK, width))(
    keys
  )


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _sample(weights, dh, width, seed):
  return spectral.sample_weights(jax.random.key(seed), weights, dh, width)


@functools.cache
def _draws(weights, width):
  return _draw(weights, width, QMC_DRAWS if weights == "qmc" else DRAWS)


@functools.partial(jax.jit, static_argnums=0)
def _estimates(component, ws, x, y):
  """[draws, P] estimates phi(x_p) . phi(y_p), one projection per draw."""

  def one(w):
    k = spectral.kernel_estimate(
      component, w, x, y, num_features=M, gerf_logit=jnp.float32(GERF_LOGIT)
    )
    return jnp.diagonal(k)

  return jax.vmap(one)(ws)


def _within_4se(samples, target):
  samples = np.asarray(samples, np.float64)
  mean = samples.mean(0)
  se = samples.std(0, ddof=1) / math.sqrt(samples.shape[0])
  assert np.all(np.abs(mean - target) <= 4 * se + 1e-6 * np.abs(target)), (
    mean,
    target,
    se,
  )


@pytest.mark.parametrize("weights", spectral.UNBIASED_WEIGHTS)
def test_unbiased_for_gaussian_marginal_weights(weights):
  """Columns marginally N(0, I) (gaussian, orf, fastfood -- exactly, see
  spectral's docstring -- and qmc: each scrambled Sobol point is uniform)
  make every component unbiased for exp(x . y). oprf and saderf fit A and
  psi on the batch (x, y), independently of W, so they are unbiased too."""
  x, y = _pairs()
  target = np.exp(np.sum(np.asarray(x, np.float64) * np.asarray(y), -1))
  for component in POSITIVE_AND_TRIG:
    ws = _draws(weights, spectral.projection_width(component, M))
    _within_4se(_estimates(component, ws, x, y), target)


def test_rmf_unbiased_for_truncated_exp():
  """rmf x rademacher: unbiased for exp truncated at the plan's top degree."""
  x, y = _pairs()
  t = np.sum(np.asarray(x, np.float64) * np.asarray(y), -1)
  degree = spectral.rmf_plan(M)[0].max_degree
  target = sum(t**n / math.factorial(n) for n in range(degree + 1))
  ws = _draws("rademacher", spectral.projection_width("rmf", M))
  _within_4se(_estimates("rmf", ws, x, y), target)


def test_rmf_cell_is_the_macformer_map():
  """rmf x rademacher is `features.sample_rmf` for exp (stratified, chained):
  the same draw from the same key, and the same features."""
  key = jax.random.key(3)
  width = spectral.projection_width("rmf", M)
  w = spectral.sample_weights(key, "rademacher", DK, width)
  params = features.sample_rmf(
    key, DK, M, "exp", "stratified", projection="chained"
  )
  np.testing.assert_array_equal(w, params.projections)
  x, _ = _pairs()
  np.testing.assert_array_equal(
    spectral.rmf_features(w, x, M), features.rmf(params, x)
  )


@pytest.mark.parametrize("weights", [w for w in spectral.WEIGHTS if w != "mm"])
def test_column_moments(weights):
  """E[w] = 0 and E[w w^T] = I for every matrix; E[w_i^4] = 3 (Gaussian)
  for the marginally Gaussian ones. sorf's columns are rows of sqrt(P) times
  an orthogonal matrix and rademacher's entries are +-1, so their 4th
  moments are not Gaussian: that is why they are biased for exp (sorf) or
  used only with the Maclaurin estimator (rademacher)."""
  w = np.asarray(_draws(weights, M), np.float64)  # [draws, Dk, M]
  draws = w.shape[0]
  mean, fourth = w.mean(-1), (w**4).mean(-1)
  second = np.einsum("nim,njm->nij", w, w) / M
  _within_4se(mean, np.zeros(DK))
  _within_4se(second.reshape(draws, -1), np.eye(DK).ravel())
  if weights in spectral.UNBIASED_WEIGHTS:
    _within_4se(fourth, np.full(DK, 3.0))
  else:  # not Gaussian: far from 3 (sorf: P = 8 > Dk, entries bounded).
    assert np.all(np.abs(np.mean(np.asarray(fourth), 0) - 3.0) > 0.5)


def test_sorf_blocks_are_orthogonal_and_stacked_independently():
  """What holds exactly for sorf (docs/METHOD.md §7.3): every block of P rows
  is sqrt(P) times an orthogonal matrix, so (1/P) sum_rows w w^T = I per
  block, and blocks beyond the first are independent draws, not columns of
  one big product (the peer's m > d bug). |w| = sqrt(P) is fixed only when
  Dk = P: at Dk = 6 < P = 8 the cut rows vary in norm (mean square Dk).
  Second moments alone do not make GERF-type estimates right: at x = y = 0
  the gerf estimate is D^2 exp(2A |w|^2) averaged over the columns, which is
  (1 - 4A)^(Dk/2) exp(2A P) for every draw when Dk = P, not 1 (a bias at
  order 0 for A != 0); posrf (A = 0) gives exactly 1."""
  w = np.asarray(_sample("sorf", 8, 24, 0))  # 3 blocks
  blocks = w.T.reshape(3, 8, 8)
  for b in blocks:
    np.testing.assert_allclose(b @ b.T, 8 * np.eye(8), atol=2e-5)
  assert not np.allclose(np.abs(blocks[0]), np.abs(blocks[1]))
  np.testing.assert_allclose(np.sum(w * w, 0), 8.0, rtol=1e-5)
  w6 = np.asarray(_sample("sorf", DK, 16, 1))
  for b in w6.T.reshape(2, 8, DK):  # padded Dk: first DK coordinates
    np.testing.assert_allclose(b.T @ b / 8, np.eye(DK), atol=2e-5)
  norms = np.sum(np.asarray(w6, np.float64) ** 2, 0)
  np.testing.assert_allclose(norms.reshape(2, 8).mean(1), DK, rtol=1e-5)
  assert norms.min() < DK - 0.5 and norms.max() > DK + 0.5, norms
  zero = jnp.zeros((1, 8))
  a = float(spectral.gerf_a(GERF_LOGIT))
  gerf = spectral.kernel_estimate(
    "gerf", jnp.asarray(w), zero, zero, gerf_logit=jnp.float32(GERF_LOGIT)
  )
  np.testing.assert_allclose(
    float(gerf[0, 0]), (1 - 4 * a) ** 4 * math.exp(16 * a), rtol=1e-4
  )
  assert abs(float(gerf[0, 0]) - 1.0) > 0.2
  posrf = spectral.kernel_estimate("posrf", jnp.asarray(w), zero, zero)
  np.testing.assert_allclose(float(posrf[0, 0]), 1.0, rtol=1e-6)


def test_moment_matching_is_exact():
  """mm: empirical mean 0 and empirical E[w w^T] = I exactly (W > Dk), or
  per-coordinate mean 0, mean square 1 (W <= Dk). Its columns are then
  dependent and not Gaussian (a biased estimator, O(1/W) bias)."""
  w = np.asarray(_sample("mm", DK, 40, 0), np.float64)
  np.testing.assert_allclose(w.mean(1), 0, atol=1e-5)
  np.testing.assert_allclose(w @ w.T / 40, np.eye(DK), atol=1e-5)
  w = np.asarray(_sample("mm", DK, 4, 0), np.float64)
  np.testing.assert_allclose(w.mean(1), 0, atol=1e-5)
  np.testing.assert_allclose((w * w).mean(1), 1, atol=1e-5)


def test_fastfood_matrix_matches_its_definition():
  """fastfood_matrix = rows of S H G Pi H B / sqrt(P), built densely here."""
  p, dk = 8, DK
  s, g, b, perm = jax.jit(spectral.sample_fastfood, static_argnums=(1, 2))(
    jax.random.key(4), dk, 8
  )
  h = spectral.hadamard(p).astype(np.float64)
  pi = np.eye(p)[np.asarray(perm[0])]  # (Pi z)_k = z_perm[k]
  v = (
    np.diag(np.asarray(s[0]))
    @ h
    @ np.diag(np.asarray(g[0]))
    @ pi
    @ h
    @ np.diag(np.asarray(b[0]))
  ) / math.sqrt(p)
  w = jax.jit(spectral.fastfood_matrix, static_argnums=(4, 5))(
    s, g, b, perm, dk, 8
  )
  np.testing.assert_allclose(np.asarray(w), v[:, :dk].T, rtol=1e-5, atol=1e-5)


def test_oprf_a_minimises_the_mean_log_second_moment():
  """A* is the argmin over A of mean_ij log E[(phi(x_i) . phi(y_j))^2]."""
  x, y = (np.asarray(a, np.float64) for a in _pairs(8))
  a_star = float(spectral.oprf_a(jnp.asarray(x), jnp.asarray(y)).squeeze())
  z2 = np.sum((x[:, None] + y[None]) ** 2, -1)

  a = np.linspace(-1.0, 0.12, 20001)[:, None]
  # The mean log second moment, up to terms free of A.
  objective = np.mean(
    DK * np.log1p(-4 * a)
    - DK / 2 * np.log1p(-8 * a)
    + 2 * (1 - 4 * a) / (1 - 8 * a) * z2.ravel(),
    -1,
  )
  best = float(a[np.argmin(objective), 0])
  assert abs(a_star - best) < 1e-3 and a_star <= 0


def _attention_inputs(length=48, heads=2, dh=8, scale=0.5):
  kq, kk, kv = jax.random.split(jax.random.key(11), 3)
  shape = (2, length, heads, dh)
  q = jax.random.normal(kq, shape) * scale
  k = jax.random.normal(kk, shape) * scale
  v = jax.random.normal(kv, shape)
  mask = jnp.arange(length)[None, :] < jnp.array([[length], [length - 13]])
  return q, k, v, mask


@functools.partial(jax.jit, static_argnums=(0, 1))
def _attend(component, causal, ws, q, k, v, mask):
  """SpectralAttention's pure-function path, vmapped over projections
  ws [N, Dh, W] (outputs [N, B, L, H, Dv])."""
  dh = q.shape[-1]
  qh, kh = (jnp.swapaxes(a, 1, 2) * dh**-0.25 for a in (q, k))
  signed = component in spectral.SIGNED

  def one(w):
    if component == "trigrf":
      w = w[:, : w.shape[1] // 2]  # M/2 frequencies
    phi_q, phi_k = spectral.feature_pair(
      component,
      w,
      qh,
      kh,
      num_features=LARGE_M,
      gerf_logit=jnp.full((q.shape[2], 1, 1), GERF_LOGIT),
      mask=mask,
      causal=causal,
    )
    return attention.linear_attention(
      phi_q,
      phi_k,
      v,
      mask,
      causal,
      heads_first=True,
      eps=1e-2 if signed else 1e-30,
      eps_per_key=signed,
      constant=1.0 if component == "rmf" else 0.0,
    )

  return jax.vmap(one)(ws)


def _rel(a, b, mask):
  m = np.asarray(mask)[:, :, None, None]
  return float(np.linalg.norm((a - b) * m) / np.linalg.norm(b * m))


def test_every_cell_approximates_softmax_kernel_attention_with_padding():
  """At M = 2048 every cell is within 8% of exact exp(q.k/sqrt(Dh))
  attention on masked inputs (Monte Carlo error ~ M^-1/2: 1-4% here; sorf
  and mm, biased, within 12%), and garbage in padded positions changes no
  real output (keys are masked after the feature map; oprf/saderf
  statistics and the key stabiliser skip them). trigrf uses the first M/2
  columns of each projection."""
  q, k, v, mask = _attention_inputs()
  dh = q.shape[-1]
  exact = attention.kernelized_attention(
    q * dh**-0.25, k * dh**-0.25, v, "exp", mask
  )
  garbage = jax.random.normal(jax.random.key(9), (3,) + q.shape) * 3
  pad = ~mask[:, :, None, None]
  q2, k2, v2 = (
    jnp.where(pad, g, a) for g, a in zip(garbage, (q, k, v), strict=True)
  )
  names = [w for w in spectral.WEIGHTS if w != "rademacher"]
  ws = jnp.stack([_sample(w, dh, LARGE_M, i) for i, w in enumerate(names)])
  rmf_w = _sample(
    "rademacher", dh, spectral.projection_width("rmf", LARGE_M), 0
  )[None]
  m = np.asarray(mask)[:, :, None, None]
  for component in spectral.COMPONENTS:
    cells = ["rademacher"] if component == "rmf" else names
    w = rmf_w if component == "rmf" else ws
    out = _attend(component, False, w, q, k, v, mask)
    out_garbage = _attend(component, False, w, q2, k2, v2, mask)
    for i, weights in enumerate(cells):
      cell = (component, weights)
      # Biased matrices: sorf's non-Gaussian rows (largest for gerf), mm's
      # dependent columns.
      bound = 0.12 if weights in ("sorf", "mm") else 0.08
      assert _rel(out[i], exact, mask) < bound, (
        cell,
        _rel(out[i], exact, mask),
      )
      np.testing.assert_allclose(
        out[i] * m, out_garbage[i] * m, rtol=1e-4, atol=1e-5, err_msg=str(cell)
      )


@pytest.mark.parametrize("component", ["gerf", "rmf"])
def test_causal_cells_approximate_causal_attention_and_ignore_the_future(
  component,
):
  """Causal: close to exact causal attention, and changing the last tokens
  leaves earlier outputs unchanged (the causal key stabiliser is
  data-independent; gerf's shares its code with posrf, rmf adds its
  constant feature in the chunked prefix sums)."""
  q, k, v, mask = _attention_inputs(length=40)
  dh = q.shape[-1]
  weights = "rademacher" if component == "rmf" else "orf"
  w = _sample(weights, dh, spectral.projection_width(component, LARGE_M), 5)[
    None
  ]
  exact = attention.kernelized_attention(
    q * dh**-0.25, k * dh**-0.25, v, "exp", mask, causal=True
  )
  future = jnp.arange(q.shape[1])[None, :, None, None] >= 30
  out = _attend(component, True, w, q, k, v, mask)[0]
  out2 = _attend(
    component,
    True,
    w,
    *(jnp.where(future, a * 3 + 1, a) for a in (q, k, v)),
    mask,
  )[0]
  assert _rel(out, exact, mask) < 0.08
  np.testing.assert_allclose(out[:, :30], out2[:, :30], rtol=1e-4, atol=1e-5)


def test_oprf_and_saderf_have_no_causal_mode():
  q, k, v, mask = _attention_inputs(length=8)
  for component in spectral.NOT_CAUSAL:
    core = layers.attention_class(
      "spectral", component=component, weights="orf", causal=True
    )()
    with pytest.raises(ValueError, match="causal"):
      jax.eval_shape(
        functools.partial(core.init, mask=mask),
        {"params": jax.random.key(0), "features": jax.random.key(1)},
        q,
        k,
        v,
      )


def _module(component, weights, **options):
  core = layers.attention_class(
    "spectral", component=component, weights=weights, num_features=32, **options
  )()
  q, k, v, mask = _attention_inputs(length=16)
  variables = jax.jit(functools.partial(core.init, mask=mask))(
    {"params": jax.random.key(0), "features": jax.random.key(1)}, q, k, v
  )
  return core, variables, (q, k, v, mask)


def test_module_equals_pure_functions_and_state_layout():
  core, variables, (q, k, v, mask) = _module("oprf", "orf")
  assert jax.tree.map(jnp.shape, variables) == {
    layers.FEATURES: {"projections": (8, 32)}
  }
  out = jax.jit(lambda var: core.apply(var, q, k, v, mask=mask))(variables)
  w = variables[layers.FEATURES]["projections"]
  qh, kh = (jnp.swapaxes(a, 1, 2) * 8**-0.25 for a in (q, k))
  phi_q, phi_k = spectral.feature_pair("oprf", w, qh, kh, mask=mask)
  ref = attention.linear_attention(phi_q, phi_k, v, mask, heads_first=True)
  np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
  core = layers.attention_class(
    "spectral", component="gerf", weights="fastfood_learnable", num_features=32
  )()
  shapes = jax.eval_shape(
    functools.partial(core.init, mask=mask),
    {"params": jax.random.key(0), "features": jax.random.key(1)},
    q,
    k,
    v,
  )
  assert jax.tree.map(jnp.shape, shapes) == {  # 4 blocks of P = 8 rows
    "params": {
      "fastfood": {"s": (4, 8), "g": (4, 8), "b": (4, 8)},
      "gerf_logit": (2,),
    },
    layers.FEATURES: {"permutation": (4, 8)},
  }


@pytest.mark.parametrize(
  "component,weights", [("gerf", "fastfood_learnable"), ("saderf", "qmc")]
)
def test_gradients_are_finite(component, weights):
  """Learnable S, G, B and A get finite, nonzero gradients; so do q, k, v
  through the data-dependent oprf/saderf statistics."""
  core, variables, (q, k, v, mask) = _module(component, weights)

  def loss(params, q, k, v):
    out = core.apply({**variables, "params": params}, q, k, v, mask=mask)
    return jnp.sum(out**2)

  grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2, 3)))(
    variables.get("params", {}), q, k, v
  )
  for leaf in jax.tree.leaves(grads):
    assert np.all(np.isfinite(leaf))
  for leaf in jax.tree.leaves(grads[0]):
    assert np.any(leaf != 0)


def test_vmap_over_feature_keys_and_jit():
  """A batch of independent draws (qmc's host callback included) under vmap
  and jit: different keys give different outputs, the same key the same."""
  core, variables, (q, k, v, mask) = _module("posrf", "qmc")

  def draw_and_apply(key):
    feats = layers.draw_random_features(core, key, q, k, v, mask=mask)
    return core.apply({**variables, layers.FEATURES: feats}, q, k, v, mask=mask)

  keys = jax.random.split(jax.random.key(2), 3)
  outs = jax.jit(jax.vmap(draw_and_apply))(
    jnp.stack([keys[0], keys[1], keys[0]])
  )
  assert np.all(np.isfinite(outs))
  np.testing.assert_allclose(outs[0], outs[2], rtol=1e-6)
  assert not np.allclose(outs[0], outs[1])


def test_presets_and_errors():
  assert len(common.SPECTRA_PRESETS) == len(spectral.grid()) == 36
  core, options = common.ATTENTION_PRESETS["spectra_oprf_fastfoodl"]
  assert (core, options["component"], options["weights"]) == (
    "spectral",
    "oprf",
    "fastfood_learnable",
  )
  assert common.ATTENTION_PRESETS["spectra_posrf_orf"][1]["weights"] == "orf"
  with pytest.raises(ValueError, match="rademacher"):
    spectral.check_cell("posrf", "rademacher")
  with pytest.raises(ValueError, match="unknown component"):
    spectral.check_cell("cosrf", "orf")
  with pytest.raises(ValueError, match="unknown weights"):
    spectral.sample_weights(jax.random.key(0), "sgq", 4, 4)
