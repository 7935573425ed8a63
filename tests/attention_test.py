"""Attention functions against independent references: explicit quadratic
forms in float64, exact kernelized attention, softmax, masking and causality."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from macformer_jax import attention
from macformer_jax import features
from macformer_jax import normalization
from macformer_jax import spectral

B, L, H, D = 2, 40, 2, 16


def _qkv(seed=0, length=L, scale=None):
  rng = np.random.default_rng(seed)
  q, k, v = (rng.normal(size=(B, length, H, D)) for _ in range(3))
  if scale is not None:  # PreSBN then scale, as Macformer feeds the kernel
    q = np.asarray(normalization.pre_sbn(jnp.asarray(q))) * scale
    k = np.asarray(normalization.pre_sbn(jnp.asarray(k))) * scale
  return q, k, v


def _mask(lengths=(L, L - 13), length=L):
  return np.arange(length)[None, :] < np.array(lengths)[:, None]


def _explicit_linear(phi_q, phi_k, v, mask, causal):
  """sum_j phi(q_i).phi(k_j) v_j / sum_j phi(q_i).phi(k_j), by loops."""
  b, l, h, _ = phi_q.shape
  out = np.zeros(v.shape)
  for bi in range(b):
    for hi in range(h):
      for i in range(l):
        num, den = 0.0, 0.0
        for j in range(l):
          if not mask[bi, j] or (causal and j > i):
            continue
          w = phi_q[bi, i, hi] @ phi_k[bi, j, hi]
          num, den = num + w * v[bi, j, hi], den + w
        out[bi, i, hi] = num / den
  return out


@pytest.mark.parametrize("causal", [False, True])
def test_linear_attention_equals_explicit_form_in_float64(causal):
  rng = np.random.default_rng(1)
  phi_q, phi_k = (
    np.abs(rng.normal(size=(B, 12, H, 5))) + 0.1 for _ in range(2)
  )
  v = rng.normal(size=(B, 12, H, 3))
  mask = _mask((12, 7), 12)
  with jax.enable_x64(True):
    out = attention.linear_attention(
      jnp.asarray(phi_q),
      jnp.asarray(phi_k),
      jnp.asarray(v),
      jnp.asarray(mask),
      causal,
      eps=0.0,
      chunk_size=5,
    )
    # float32 inside (the core's precision): compare at float32 tolerance.
    np.testing.assert_allclose(
      out, _explicit_linear(phi_q, phi_k, v, mask, causal), rtol=2e-5, atol=2e-6
    )


def _close(actual, expected, rtol=1e-5, atol_scale=1e-5):
  """Two float32 XLA paths: 1e-5 relative, plus 1e-5 of the largest
  expected value (entries near 0 after cancellation carry the absolute
  round-off of their terms, ~1e-7 * sqrt(#terms) * scale)."""
  expected = np.asarray(expected)
  np.testing.assert_allclose(
    actual, expected, rtol=rtol, atol=atol_scale * np.max(np.abs(expected))
  )


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("share_heads", [True, False])
def test_macformer_attention_equals_composition_of_public_functions(
  causal, share_heads
):
  """The one call == pre_sbn -> scale -> rmf -> rmfa in the public
  [B, L, H, M] layout (with the constant column, no analytic a_0)."""
  q, k, v = (jnp.asarray(x, jnp.float32) for x in _qkv())
  params = features.sample_rmf(
    jax.random.key(0),
    D,
    64,
    "log",
    "stratified",
    num_heads=None if share_heads else H,
  )
  mask = jnp.asarray(_mask())
  s = 0.6
  phi = lambda x: features.rmf(params, normalization.pre_sbn(x) * s)
  plain = attention.rmfa(phi(q), phi(k), v, mask, causal, chunk_size=16)
  fast = attention.macformer_attention(
    params, q, k, v, mask, causal, qk_scale=s, chunk_size=16
  )
  assert fast.shape == v.shape and fast.dtype == jnp.float32
  _close(fast, plain)
  # Default scale Dh^-1/4 and no PreSBN (the authors' ablation).
  default = attention.macformer_attention(
    params, q, k, v, mask, causal, chunk_size=16
  )
  phi = lambda x: features.rmf(params, normalization.pre_sbn(x) * D**-0.25)
  _close(
    default, attention.rmfa(phi(q), phi(k), v, mask, causal, chunk_size=16)
  )
  raw = attention.macformer_attention(
    params,
    0.3 * q,
    0.3 * k,
    v,
    mask,
    causal,
    qk_scale=0.5,
    pre_sbn=False,
    chunk_size=16,
  )
  phi = lambda x: features.rmf(params, 0.15 * x)
  _close(raw, attention.rmfa(phi(q), phi(k), v, mask, causal, chunk_size=16))


@pytest.mark.parametrize("share_heads", [True, False])
@pytest.mark.parametrize("block_size", [16, 40, 64])
def test_blocked_core_equals_materialised_features_values_and_gradients(
  share_heads, block_size
):
  """The default non-causal path (features per block, recomputed in a custom
  VJP) == the materialised path, in values and in the gradients w.r.t. q,
  k, v and the q/k scale; L = 40 with blocks of 16 pads the last block."""
  q, k, v = (jnp.asarray(x, jnp.float32) for x in _qkv(seed=5))
  params = features.sample_rmf(
    jax.random.key(4),
    D,
    48,
    "inverse",
    "stratified",
    num_heads=None if share_heads else H,
  )
  mask = jnp.asarray(_mask())
  w = jnp.asarray(np.random.default_rng(6).normal(size=v.shape), jnp.float32)

  def loss(q, k, v, s, block):
    out = attention.macformer_attention(
      params, q, k, v, mask, qk_scale=s, block_size=block
    )
    return jnp.sum(jnp.tanh(out) * w), out

  grad = jax.grad(loss, argnums=(0, 1, 2, 3), has_aux=True)
  (g_blocked, blocked) = jax.jit(grad, static_argnums=4)(
    q, k, v, 0.6, block_size
  )
  (g_plain, plain) = grad(q, k, v, 0.6, None)
  _close(blocked, plain)
  for a, b in zip(g_blocked, g_plain, strict=True):
    _close(a, b)


def test_auto_block_size_covers_the_length_in_equal_blocks():
  """Hand-computed sizes, then the properties for every length up to 9000:
  at most `most` positions per block, the fewest blocks that allow it, and
  less than 8 padded positions per block."""
  f = attention.auto_block_size
  assert [f(n) for n in (10, 2000, 2048, 2049, 3000, 4096, 16384)] == [
    10,
    2000,
    2048,
    1032,
    1504,
    2048,
    2048,
  ]
  for most in (64, 2048):
    for length in range(1, 9001):
      size = f(length, most)
      blocks = -(-length // size)
      assert size <= most and blocks == -(-length // most)
      assert 0 <= blocks * size - length < 8 * blocks


@pytest.mark.parametrize("exact_linear", [False, True])
@pytest.mark.parametrize("projection", ["chained", "independent"])
@pytest.mark.parametrize("allocation", ["stratified", "sampled"])
@pytest.mark.parametrize("share_heads", [True, False])
def test_split_linear_is_the_degree_one_share_of_the_map(
  projection, allocation, share_heads, exact_linear
):
  """phi(x) . phi(y) == a_0 + x^T A y + rest(x) . rest(y), in float64 (an
  identity of the same random draw, so to round-off); with an exact linear
  term (docs/METHOD.md §3.3) A = a_1 I."""
  with jax.enable_x64(True):
    params = features.sample_rmf(
      jax.random.key(3),
      D,
      40,
      "inverse",
      allocation,
      projection=projection,
      num_heads=None if share_heads else H,
      allocation_seed=7,
      exact_linear=exact_linear,
    )
    params = features.RMFParams(
      params.projections.astype(jnp.float64),
      params.scales.astype(jnp.float64),
      params.plan,
    )
    x, y = (
      jnp.asarray(a[0], jnp.float64) for a in _qkv(seed=8, scale=0.5)[:2]
    )  # [L, H, Dk]
    linear, rest = features.split_linear(params)
    full = jnp.sum(features.rmf(params, x) * features.rmf(params, y), -1)
    heads = "" if share_heads else "h"
    split = (
      params.plan.sqrt_a0**2
      + jnp.einsum(f"lhd,{heads}de,lhe->lh", x, linear, y)
      + jnp.sum(
        features.rmf(rest, x, constant=False)
        * features.rmf(rest, y, constant=False),
        -1,
      )
    )
    np.testing.assert_allclose(split, full, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(linear, jnp.swapaxes(linear, -1, -2))
    if exact_linear:  # a_1 = 1 for the inverse kernel
      np.testing.assert_array_equal(
        linear, np.broadcast_to(np.eye(D), linear.shape)
      )
      assert rest.plan.exact_linear == 0
    assert rest.plan.counts[0] == 0
    assert rest.plan.counts[1:] == params.plan.counts[1:]
    # Only degree 1: nothing left for the blocked features.
    tiny = features.sample_rmf(jax.random.key(3), D, 2, "exp", "stratified")
    assert features.split_linear(tiny)[1] is None


@pytest.mark.parametrize(
  "num_features,projection,allocation,exact_linear,share_heads",
  [
    (2, "chained", "stratified", False, True),  # degree 1 only: no products
    (40, "independent", "sampled", False, True),
    (48, "chained", "stratified", True, True),  # H0/1, docs/METHOD.md §3.3
    (40, "chained", "stratified", True, False),
    (40, "independent", "sampled", True, True),
    (18, "chained", "stratified", True, True),  # a single product feature
  ],
)
def test_blocked_core_equals_materialised_features_for_other_maps(
  num_features, projection, allocation, exact_linear, share_heads
):
  q, k, v = (jnp.asarray(x, jnp.float32) for x in _qkv(seed=9))
  params = features.sample_rmf(
    jax.random.key(5),
    D,
    num_features,
    "log",
    allocation,
    projection=projection,
    allocation_seed=11,
    exact_linear=exact_linear,
    num_heads=None if share_heads else H,
  )
  mask = jnp.asarray(_mask())

  def loss(q, k, v, block):
    out = attention.macformer_attention(
      params, q, k, v, mask, qk_scale=0.6, block_size=block
    )
    return jnp.sum(out**2), out

  grad = jax.grad(loss, argnums=(0, 1, 2), has_aux=True)
  g_blocked, blocked = jax.jit(grad, static_argnums=3)(q, k, v, 16)
  g_plain, plain = grad(q, k, v, None)
  _close(blocked, plain)
  for a, b in zip(g_blocked, g_plain, strict=True):
    _close(a, b)


def _heads_first_qkv(seed):
  """q, k heads-first [B, H, L, D] (scaled), v [B, L, H, D]; the keys of
  position 30 enlarged so that the key max rises in a late block."""
  q, k, v = _qkv(seed=seed)
  k[:, 30] *= 3.0
  q, k = (
    jnp.asarray(np.swapaxes(x, 1, 2) * D**-0.25, jnp.float32) for x in (q, k)
  )
  return q, k, jnp.asarray(v, jnp.float32)


def _materialised_positive(w, q, k, v, mask, favor):
  """Today's materialised path: FAVOR+ (`features.favor_positive`) or the
  posrf cell (`spectral.feature_pair`), then `linear_attention`."""
  if favor:
    phi_q = features.favor_positive(w, q, is_query=True)
    phi_k = features.favor_positive(
      w, k, is_query=False, key_mask=None if mask is None else mask[:, None]
    )
  else:
    phi_q, phi_k = spectral.feature_pair("posrf", w, q, k, mask=mask)
  return attention.linear_attention(phi_q, phi_k, v, mask, heads_first=True)


@pytest.mark.parametrize("favor", [True, False])
@pytest.mark.parametrize("masked", [True, False])
@pytest.mark.parametrize("block_size", [7, 16, 40, 64])
def test_positive_blocked_core_equals_materialised_features(
  favor, masked, block_size
):
  """The blocked positive-feature core (online key max, features recomputed
  in a custom VJP) == the materialised FAVOR+ / posrf path, in values and
  in the gradients w.r.t. q, k, v and the projection w. L = 40 in blocks
  of 7 (two scans over 5 blocks, then a last block of 5), 16 (a last block
  of 8), 40 and 64 (one block)."""
  q, k, v = _heads_first_qkv(seed=11)
  w = features.sample_orthogonal_gaussian(jax.random.key(3), D, 24)
  mask = jnp.asarray(_mask()) if masked else None
  t = jnp.asarray(np.random.default_rng(12).normal(size=v.shape), jnp.float32)
  options = dict(
    key_max="example" if favor else "head",
    feature_eps=1e-6 if favor else 0.0,
    block_size=block_size,
  )

  def loss(blocked, w, q, k, v):
    if blocked:
      out = attention.positive_linear_attention(w, q, k, v, mask, **options)
    else:
      out = _materialised_positive(w, q, k, v, mask, favor)
    return jnp.sum(jnp.tanh(out) * t), out

  grad = jax.grad(loss, argnums=(1, 2, 3, 4), has_aux=True)
  g_blocked, blocked = jax.jit(grad, static_argnums=0)(True, w, q, k, v)
  g_plain, plain = grad(False, w, q, k, v)
  _close(blocked, plain)
  for a, b in zip(g_blocked, g_plain, strict=True):
    _close(a, b)


def _favor_float64(w, q, k, v, mask):
  """FAVOR+ attention in float64 numpy, from its definition (Choromanski et
  al. 2021, eq. 10 with their stabiliser): phi(x) = (exp(w.x - |x|^2/2 -
  c) + 1e-6) / sqrt(M), c the row max for a query and the max over all
  real keys and heads of the example for keys; out_i = sum_j real_j
  phi(q_i).phi(k_j) v_j / max(sum_j real_j phi(q_i).phi(k_j), 1e-6)."""
  w, q, k, v = (np.asarray(x, np.float64) for x in (w, q, k, v))
  m = w.shape[1]
  u_q = q @ w - 0.5 * np.sum(q * q, -1, keepdims=True)  # [B, H, L, M]
  u_k = k @ w - 0.5 * np.sum(k * k, -1, keepdims=True)
  phi_q = (np.exp(u_q - u_q.max(-1, keepdims=True)) + 1e-6) / np.sqrt(m)
  out = np.zeros(v.shape)
  for b in range(q.shape[0]):
    real = np.asarray(mask[b])
    c = u_k[b][:, real].max()
    phi_k = (np.exp(u_k[b] - c) + 1e-6) / np.sqrt(m)  # [H, L, M]
    for h in range(q.shape[1]):
      scores = phi_q[b, h] @ phi_k[h].T * real[None, :]  # [L, L]
      num = scores @ v[b, :, h]
      den = np.maximum(scores.sum(-1, keepdims=True), 1e-6)
      out[b, :, h] = num / den
  return out


def test_positive_blocked_core_matches_float64_favor():
  """The blocked core against an independent float64 FAVOR+ (exp
  features cancel over 4 orders of magnitude of scale; float32 round-off
  of the ratio is ~1e-6)."""
  q, k, v = _heads_first_qkv(seed=13)
  w = features.sample_orthogonal_gaussian(jax.random.key(4), D, 32)
  mask = _mask()
  out = attention.positive_linear_attention(
    w, q, k, v, jnp.asarray(mask), feature_eps=1e-6, block_size=16
  )
  np.testing.assert_allclose(
    out, _favor_float64(w, q, k, v, mask), rtol=1e-4, atol=1e-5
  )


def test_positive_blocked_core_example_without_real_keys():
  """An example whose keys are all padding: zero output (as the
  materialised path) and finite gradients; padded keys and values get zero
  gradient in the other example."""
  q, k, v = _heads_first_qkv(seed=14)
  w = features.sample_orthogonal_gaussian(jax.random.key(5), D, 16)
  mask = jnp.asarray(_mask((L - 5, 0)))

  def run(q, k, v):
    return attention.positive_linear_attention(
      w, q, k, v, mask, feature_eps=1e-6, block_size=16
    )

  out = run(q, k, v)
  np.testing.assert_array_equal(out[1], 0.0)
  grads = jax.grad(lambda *a: jnp.sum(run(*a) ** 2), argnums=(0, 1, 2))(q, k, v)
  for g in grads:
    assert np.all(np.isfinite(g))
  np.testing.assert_array_equal(grads[1][0, :, L - 5 :], 0.0)
  np.testing.assert_array_equal(grads[2][0, L - 5 :], 0.0)


@pytest.mark.parametrize("kernel", ["exp", "inverse"])
def test_macformer_attention_matches_exact_kernelized_attention(kernel):
  """M = 8192, qk_scale^2 = 0.36 (so f spreads, unlike the near-uniform
  default): relative error < 2 %, against a spread > 10x that.

  Error scale: ~0.02 at M = 256 on the default scale, falling like M^-1/2
  (README, docs/METHOD.md §2.2), so ~0.004-0.008 here; the draw is a fixed key.
  """
  q, k, v = (jnp.asarray(x, jnp.float32) for x in _qkv(seed=3))
  mask = jnp.asarray(_mask())
  s = 0.6
  params = features.sample_rmf(jax.random.key(2), D, 8192, kernel, "stratified")
  out = attention.macformer_attention(params, q, k, v, mask, qk_scale=s)
  qs, ks = (normalization.pre_sbn(x) * s for x in (q, k))
  exact = attention.kernelized_attention(qs, ks, v, kernel, mask)
  real = np.asarray(mask)[:, :, None, None]
  error = np.linalg.norm((out - exact) * real) / np.linalg.norm(exact * real)
  assert error < 0.02, error
  uniform = attention.kernelized_attention(0 * qs, ks, v, kernel, mask)
  spread = np.linalg.norm((uniform - exact) * real) / np.linalg.norm(
    exact * real
  )
  assert spread > 10 * error, (spread, error)


def test_qk_scale_outside_the_radius_is_an_error_or_a_warning():
  q, k, v = (jnp.asarray(x, jnp.float32) for x in _qkv(length=8))
  for kernel in ("inverse", "log", "sqrt"):  # radius 1: s^2 >= 1 diverges
    params = features.sample_rmf(jax.random.key(0), D, 16, kernel, "stratified")
    with pytest.raises(
      ValueError,
      match=(
        f"qk_scale=1.1 .* outside the radius of convergence 1 of the "
        f"'{kernel}' kernel"
      ),
    ):
      attention.macformer_attention(params, q, k, v, qk_scale=1.1)
    with pytest.warns(UserWarning, match="variance"):  # 0.4 < s^2 < 1
      attention.macformer_attention(params, q, k, v, qk_scale=0.8)
  exp = features.sample_rmf(jax.random.key(0), D, 16, "exp", "stratified")
  with pytest.warns(UserWarning, match="variance"):  # entire: s^2 > 1
    attention.macformer_attention(exp, q, k, v, qk_scale=1.5)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    attention.macformer_attention(exp, q, k, v, qk_scale=0.9)
    # A traced (learned) scale is not checked; without PreSBN nothing is.
    jax.jit(lambda s: attention.macformer_attention(exp, q, k, v, qk_scale=s))(
      3.0
    )
    attention.macformer_attention(exp, q, k, v, qk_scale=3.0, pre_sbn=False)
  assert not [w for w in caught if "qk_scale" in str(w.message)]
  assert attention.max_qk_scale("inverse") ** 2 == pytest.approx(0.4)
  assert attention.max_qk_scale("exp") == 1.0


@pytest.mark.parametrize("kernel", ["exp", "trigh", "inverse", "log", "sqrt"])
@pytest.mark.parametrize("causal", [False, True])
def test_rmfa_with_many_features_matches_exact_kernelized_attention(
  kernel, causal
):
  """D = 8192: relative error < 2% (D^-1/2 scaling: ~0.3%).

  The inputs use |q.k| up to 0.5 (not the near-uniform PreSBN*d^-1/4
  regime), so exact attention is far from a plain mean of V, which the
  second assertion checks: the test could not pass by averaging V.
  """
  q, k, v = _qkv(scale=0.5**0.5)
  mask = _mask()
  params = features.sample_rmf(jax.random.key(1), D, 8192, kernel, "stratified")
  out = attention.rmfa(
    features.rmf(params, q), features.rmf(params, k), v, mask, causal
  )
  exact = attention.kernelized_attention(q, k, v, kernel, mask, causal)
  real = mask[:, :, None, None] * np.ones_like(v)
  error = np.linalg.norm((out - exact) * real) / np.linalg.norm(exact * real)
  assert error < 0.02, error
  uniform = attention.kernelized_attention(0 * q, k, v, kernel, mask, causal)
  spread = np.linalg.norm((uniform - exact) * real) / np.linalg.norm(
    exact * real
  )
  assert spread > 5 * error, (spread, error)


def test_exact_linear_map_lowers_the_attention_error():
  """H0/1 (docs/METHOD.md §3.3) at equal M on PreSBN'd inputs at the
  default scale: the degree-1 features carry most of the default map's
  variance (there ~100x the rest at Dk = 32), so the exact linear term
  lowers the relative error of the output against exact exp-kernel
  attention; mean over 4 fixed draws each, asserted at > 3x (expected
  ~sqrt of the variance ratio, ~10x)."""
  dk, length = 32, 64
  rng = np.random.default_rng(21)
  q, k, v = (
    jnp.asarray(rng.normal(size=(B, length, H, dk)), jnp.float32)
    for _ in range(3)
  )
  s = dk**-0.25
  exact = attention.kernelized_attention(
    *(normalization.pre_sbn(x) * s for x in (q, k)), v, "exp"
  )

  def error(exact_linear):
    errs = []
    for i in range(4):
      params = features.sample_rmf(
        jax.random.key(i),
        dk,
        128,
        "exp",
        "stratified",
        exact_linear=exact_linear,
      )
      out = attention.macformer_attention(params, q, k, v)
      errs.append(np.linalg.norm(out - exact) / np.linalg.norm(exact))
    return np.mean(errs)

  default, h01 = error(False), error(True)
  assert h01 < default / 3, (h01, default)


def test_rmf_attention_layer_exact_linear_option():
  """`layers.RMFAttention(exact_linear=True)` runs the H0/1 map: its
  projections are those of `features.sample_rmf(..., exact_linear=True)`
  (degree >= 2 chains only) and its output (PostSBN off) equals the one
  call with that map."""
  from macformer_jax import layers

  q, k, v = (jnp.asarray(x, jnp.float32) for x in _qkv(seed=2))
  layer = layers.RMFAttention(
    num_features=48, exact_linear=True, post_sbn=False
  )
  variables = layer.init(
    {"params": jax.random.key(0), "features": jax.random.key(1)}, q, k, v
  )
  (projections,) = jax.tree.leaves(variables["random_features"])
  plan, scales = features.make_plan(
    48, "exp", "stratified", exact_linear=True, in_dim=D
  )
  assert projections.shape == (D, plan.projection_width)
  params = features.RMFParams(projections, jnp.asarray(scales), plan)
  _close(
    layer.apply(variables, q, k, v),
    attention.macformer_attention(params, q, k, v),
  )


def test_exp_kernelized_attention_is_softmax_attention():
  q, k, v = _qkv()
  mask = _mask()
  s = D**-0.25
  exact = attention.kernelized_attention(q * s, k * s, v, "exp", mask)
  soft = attention.softmax_attention(q, k, v, mask)
  np.testing.assert_allclose(exact, soft, rtol=1e-4, atol=1e-5)
  reference = jax.nn.dot_product_attention(
    jnp.asarray(q, jnp.float32),
    jnp.asarray(k, jnp.float32),
    jnp.asarray(v, jnp.float32),
    mask=jnp.asarray(mask)[:, None, None, :],
  )
  np.testing.assert_allclose(soft, reference, rtol=1e-4, atol=1e-5)


def test_causal_softmax_matches_dot_product_attention():
  q, k, v = _qkv()
  soft = attention.softmax_attention(q, k, v, causal=True)
  reference = jax.nn.dot_product_attention(
    *(jnp.asarray(x, jnp.float32) for x in (q, k, v)), is_causal=True
  )
  np.testing.assert_allclose(soft, reference, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_performer_approximates_softmax_attention(causal):
  """FAVOR+ with 16384 orthogonal features: within 4% of exact softmax.

  (Measured 0.020; the error falls like 1/sqrt(M): 0.17 at 256 features.
  Without the QR sign fix it stalled near 0.05.)
  """
  q, k, v = _qkv()
  q, k = 0.5 * q, 0.5 * k
  mask = jnp.asarray(_mask())
  w = features.sample_orthogonal_gaussian(jax.random.key(0), D, 16384)
  s = D**-0.25
  phi_q = features.favor_positive(w, q * s, is_query=True, causal=causal)
  phi_k = features.favor_positive(
    w, k * s, is_query=False, key_mask=mask[:, :, None], causal=causal
  )
  out = attention.linear_attention(phi_q, phi_k, v, mask, causal, eps=1e-30)
  exact = attention.softmax_attention(q, k, v, mask, causal)
  real = np.asarray(mask)[:, :, None, None]
  error = np.linalg.norm((out - exact) * real) / np.linalg.norm(exact * real)
  assert error < 0.04, error


@pytest.mark.parametrize("causal", [False, True])
def test_padding_keys_do_not_change_real_outputs(causal):
  q, k, v = (jnp.asarray(x) for x in _qkv(scale=D**-0.25))
  mask = jnp.asarray(_mask())
  params = features.sample_rmf(jax.random.key(0), D, 128, "exp", "stratified")

  def run(k, v):
    return attention.rmfa(
      features.rmf(params, q),
      features.rmf(params, k),
      v,
      mask,
      causal,
      chunk_size=16,
    )

  garbage = jax.random.normal(jax.random.key(7), k.shape) * 10
  pad = ~mask[:, :, None, None]
  out = run(k, v)
  out_changed = run(jnp.where(pad, garbage, k), jnp.where(pad, garbage, v))
  real = mask[:, :, None, None]
  np.testing.assert_allclose(
    out * real, out_changed * real, rtol=1e-5, atol=1e-6
  )
  # Padded keys and values get exactly zero gradient.
  grads = jax.grad(lambda k, v: jnp.sum(run(k, v) * real), argnums=(0, 1))(k, v)
  for g in grads:
    assert np.all(np.isfinite(g))
    np.testing.assert_array_equal(np.asarray(g) * pad, 0.0)


def test_causal_output_depends_only_on_the_past():
  q, k, v = (jnp.asarray(x) for x in _qkv(scale=D**-0.25))
  params = features.sample_rmf(jax.random.key(0), D, 64, "sqrt", "stratified")
  run = lambda k, v: attention.rmfa(
    features.rmf(params, q),
    features.rmf(params, k),
    v,
    causal=True,
    chunk_size=8,
  )
  out = run(k, v)
  changed = run(k.at[:, 25:].set(3.0), v.at[:, 25:].set(-2.0))
  np.testing.assert_allclose(out[:, :25], changed[:, :25], rtol=1e-5)
  assert not np.allclose(out[:, 25:], changed[:, 25:])


def test_denominator_floor_keeps_outputs_finite():
  """Signed features with a negative normaliser: the floor is eps * #keys."""
  phi_q = jnp.array([[[[1.0, 1.0]]]])  # [1, 1, 1, 2]
  phi_k = jnp.array([[[[1.0, -3.0]]], [[[0.0, 0.0]]]]).reshape(1, 2, 1, 2)
  phi_q = jnp.concatenate([phi_q, phi_q], axis=1)
  v = jnp.ones((1, 2, 1, 1))
  out = attention.rmfa(phi_q, phi_k, v, eps=0.01)
  # numerator = denominator = -2 (< 0); floor = 0.01 * 2 keys.
  np.testing.assert_allclose(out, -2.0 / 0.02)
  authors = attention.rmfa(phi_q, phi_k, v, eps=1.0, eps_per_key=False)
  np.testing.assert_allclose(authors, -2.0)


def test_fully_masked_example_gives_zeros_not_nan():
  q, k, v = (jnp.asarray(x) for x in _qkv(scale=D**-0.25))
  mask = jnp.asarray(_mask((L, 0)))
  params = features.sample_rmf(jax.random.key(0), D, 32, "exp", "stratified")
  for causal in (False, True):
    out = attention.rmfa(
      features.rmf(params, q), features.rmf(params, k), v, mask, causal
    )
    assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(out[1], 0.0)


def test_rmfa_under_vmap_equals_the_batched_call():
  q, k, v = (jnp.asarray(x, jnp.float32) for x in _qkv(scale=D**-0.25))
  mask = jnp.asarray(_mask())
  params = features.sample_rmf(jax.random.key(0), D, 32, "exp", "stratified")

  def one(q, k, v, mask):  # a single example: add and drop a batch axis
    out = attention.rmfa(
      features.rmf(params, q[None]),
      features.rmf(params, k[None]),
      v[None],
      mask[None],
    )
    return out[0]

  batched = attention.rmfa(
    features.rmf(params, q), features.rmf(params, k), v, mask
  )
  np.testing.assert_allclose(
    jax.jit(jax.vmap(one))(q, k, v, mask), batched, rtol=1e-5, atol=1e-6
  )
