"""The drop-in `attention_fn`s inside Flax's own attention modules."""

import importlib.util
import pathlib
import warnings

from flax import nnx
from flax import serialization
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import macformer_jax
from macformer_jax import attention
from macformer_jax import attention_fn as afn
from macformer_jax import features
from macformer_jax import layers
from macformer_jax import normalization

pytestmark = pytest.mark.usefixtures("compile_fast")

B, L, H, DH = 2, 16, 2, 8
E = H * DH
# Example 0 right-padded (11 real tokens), example 1 left-padded (3 pads):
# with a causal mask its first queries see no key at all.
VALID = jnp.stack([jnp.arange(L) < 11, jnp.arange(L) >= 3])


class Recorder:
  """An attention_fn that records what the Flax module passes and returns."""

  def __init__(self, fn):
    self.fn, self.calls = fn, []

  def __call__(
    self,
    query,
    key,
    value,
    mask=None,
    dropout_rng=None,
    dropout_rate=0.0,
    broadcast_dropout=True,
    deterministic=False,
    dtype=None,
    precision=None,
    module=None,
    is_causal=False,
  ):
    out = self.fn(
      query,
      key,
      value,
      mask=mask,
      dropout_rng=dropout_rng,
      dropout_rate=dropout_rate,
      broadcast_dropout=broadcast_dropout,
      deterministic=deterministic,
      dtype=dtype,
      precision=precision,
      module=module,
      is_causal=is_causal,
    )
    self.calls.append((query, key, value, mask, is_causal, out))
    return out


def _exact_and_bound(
  q, k, v, mask, causal, num_features, sigmas=4.0, variance_factor=1.0
):
  """Exact kernelized attention under the full Flax mask, and an error bound.

  float64 numpy. x = PreSBN(q) Dh^-1/4 (what the features see),
  w_ij = exp(x_i . y_j) over the visible keys V_i, D_i = sum_j w_ij,
  o_i = sum_j w_ij v_j / D_i; a query with no visible key gets 0. The RMFA
  output is N^/D^ with per-pair errors e_ij = w^_ij - w_ij, so exactly
  out_i - o_i = sum_j e_ij (v_j - o_i) / D^_i. With sigma_ij^2 =
  `features.rmf_variance` (Kar & Karnick 2012; Guo et al. 2024, eq. of the
  RMF variance) the numerator has std <= S_i = sum_j sigma_ij |v_j - o_i|
  (Minkowski) and |D^_i - D_i| <= k T_i, T_i = sum_j sigma_ij, at k
  standard deviations: |out_i - o_i| <= k S_i / (D_i - k T_i).
  `variance_factor` scales sigma^2 for maps other than sampled/independent.
  """
  q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
  x, y = (
    np.asarray(normalization.pre_sbn(jnp.asarray(a)), np.float64) * DH**-0.25
    for a in (q, k)
  )
  visible = np.ones((q.shape[0], 1, L, L), bool)
  if mask is not None:
    visible = visible & np.asarray(mask).astype(bool)
  if causal:
    visible = visible & np.tril(np.ones((L, L), bool))
  w = np.where(visible, np.exp(np.einsum("bqhd,bkhd->bhqk", x, y)), 0.0)
  denom = w.sum(-1, keepdims=True)
  exact = np.einsum("bhqk,bkhd->bqhd", w / np.where(denom == 0, 1, denom), v)
  var = features.rmf_variance(
    "exp",
    x.transpose(0, 2, 1, 3)[:, :, :, None],
    y.transpose(0, 2, 1, 3)[:, :, None],
    num_features,
  )
  sigma = np.where(visible, np.sqrt(var * variance_factor), 0.0)  # [B,H,L,L]
  spread = np.abs(
    v.transpose(0, 2, 1, 3)[:, :, None]
    - exact.transpose(0, 2, 1, 3)[:, :, :, None]
  )
  s = np.einsum("bhqk,bhqkd->bqhd", sigma, spread)
  t = sigma.sum(-1).transpose(0, 2, 1)[..., None]
  d = denom[..., 0].transpose(0, 2, 1)[..., None]
  assert np.all(d[d > 0] > sigmas * t[d > 0])  # the bound is meaningful
  bound = sigmas * s / np.maximum(d - sigmas * t, 1e-30) + 1e-5  # + float32
  return exact, bound


def _rmfa_fn(num_features=256, **kwargs):
  # sampled + independent: the map `features.rmf_variance` describes.
  return afn.make_attention_fn(
    jax.random.key(7),
    DH,
    num_features=num_features,
    allocation="sampled",
    projection="independent",
    **kwargs,
  )


def _check_against_exact(rec, mask, causal, num_features=256):
  ((q, k, v, _, _, out),) = rec.calls
  exact, bound = _exact_and_bound(q, k, v, mask, causal, num_features)
  err = np.abs(np.asarray(out, np.float64) - exact)
  assert np.all(err <= bound), float(np.max(err / bound))
  assert np.max(err) > 0  # random features, not the exact computation
  return err, bound


@pytest.mark.parametrize("masking", ["padding", "causal", "factory_causal"])
def test_linen_module_matches_exact_kernelized_attention(masking):
  with jax.enable_x64(True):
    x = jax.random.normal(jax.random.key(0), (B, L, E), jnp.float64)
    mask = nn.make_attention_mask(VALID, VALID)
    if masking == "causal":
      mask = nn.combine_masks(mask, nn.make_causal_mask(VALID))
    rec = Recorder(_rmfa_fn(causal=masking == "factory_causal"))
    mha = nn.MultiHeadDotProductAttention(
      num_heads=H, qkv_features=E, attention_fn=rec
    )
    variables = mha.init(jax.random.key(1), x, mask=mask)
    rec.calls.clear()
    y = mha.apply(variables, x, mask=mask)
    assert y.shape == (B, L, E) and y.dtype == jnp.float64
    _check_against_exact(rec, mask, masking != "padding")


@pytest.mark.parametrize("masking", ["padding", "is_causal"])
def test_nnx_module_matches_exact_kernelized_attention(masking):
  with jax.enable_x64(True):
    x = jax.random.normal(jax.random.key(0), (B, L, E), jnp.float64)
    mask = nn.make_attention_mask(VALID, VALID)
    rec = Recorder(_rmfa_fn())
    mha = nnx.MultiHeadAttention(
      H, E, attention_fn=rec, decode=False, rngs=nnx.Rngs(0)
    )
    y = mha(x, mask=mask, is_causal=masking == "is_causal")
    assert y.shape == (B, L, E)
    err, _ = _check_against_exact(rec, mask, masking == "is_causal")
    assert np.all(err[~np.asarray(VALID)] == 0)  # padded queries get 0


def test_error_bound_is_not_vacuous():
  """Same check, one draw: the bound is within ~20x of the actual error."""
  with jax.enable_x64(True):
    q, k, v = jax.random.normal(
      jax.random.key(3), (3, B, L, H, DH), jnp.float64
    )
    mask = nn.make_attention_mask(VALID, VALID)
    out = _rmfa_fn()(q, k, v, mask=mask)
    exact, bound = _exact_and_bound(q, k, v, mask, False, 256)
    err = np.abs(np.asarray(out, np.float64) - exact)
    ratio = err / bound
    assert ratio.max() <= 1 and ratio.max() > 0.05, ratio.max()
    # The default map (stratified, chained): no multinomial count noise, but
    # chains share factors, which raises the variance of near-parallel pairs
    # by at most x1.43 (features module doc): the bound with sigma^2 x 1.5.
    default = afn.make_attention_fn(jax.random.key(7), DH, num_features=256)
    exact, bound = _exact_and_bound(
      q, k, v, mask, False, 256, variance_factor=1.5
    )
    err = np.abs(np.asarray(default(q, k, v, mask=mask), np.float64) - exact)
    assert np.all(err <= bound), float(np.max(err / bound))


def test_same_numbers_as_macformer_attention():
  fn = afn.make_attention_fn(
    jax.random.key(0), DH, kernel="inverse", num_features=64
  )
  q, k, v = jax.random.normal(jax.random.key(1), (3, B, L, H, DH))
  expected = attention.macformer_attention(fn.params, q, k, v, VALID)
  expected = jnp.where(VALID[:, :, None, None], expected, 0.0)
  mask = nn.make_attention_mask(VALID, VALID)
  np.testing.assert_allclose(fn(q, k, v, mask=mask), expected, atol=1e-6)
  key_mask = VALID[:, None, None, :]  # [B, 1, 1, L]: real queries unchanged
  np.testing.assert_allclose(
    jnp.where(VALID[:, :, None, None], fn(q, k, v, mask=key_mask), 0),
    expected,
    atol=1e-6,
  )
  causal = attention.macformer_attention(fn.params, q, k, v, causal=True)
  np.testing.assert_allclose(fn(q, k, v, is_causal=True), causal, atol=1e-6)
  jitted = jax.jit(fn)(q, k, v, mask=nn.make_causal_mask(VALID))
  np.testing.assert_allclose(jitted, causal, atol=1e-5)  # traced mask: cond


def test_exact_linear_map_reaches_the_attention_fn():
  """exact_linear=True draws the H0/1 map (docs/METHOD.md §3.3) and runs it."""
  fn = afn.make_attention_fn(
    jax.random.key(0), DH, num_features=DH + 16, exact_linear=True
  )
  expected_params = features.sample_rmf(
    jax.random.key(0), DH, DH + 16, "exp", "stratified", exact_linear=True
  )
  for got, want in zip(
    jax.tree.leaves(fn.params), jax.tree.leaves(expected_params), strict=True
  ):
    np.testing.assert_array_equal(got, want)
  q, k, v = jax.random.normal(jax.random.key(1), (3, B, L, H, DH))
  exact = attention.kernelized_attention(
    normalization.pre_sbn(q) * DH**-0.25,
    normalization.pre_sbn(k) * DH**-0.25,
    v,
    "exp",
  )
  default = afn.make_attention_fn(jax.random.key(0), DH, num_features=DH + 16)

  def error(f):
    return float(jnp.linalg.norm(f(q, k, v) - exact) / jnp.linalg.norm(exact))

  # Only degrees >= 2 are estimated, so at equal M the error is several times
  # the default map's smaller (5-6x over seeds 0-5 here; 0.02 vs 0.14).
  h01, rmf = error(fn), error(default)
  assert h01 < 0.05 and h01 < rmf / 3, (h01, rmf)


def test_baselines_match_their_library_modules():
  q, k, v = jax.random.normal(jax.random.key(1), (3, B, L, H, DH))
  mask = nn.make_attention_mask(VALID, VALID)
  rows = VALID[:, :, None, None]
  performer = macformer_jax.make_performer_attention_fn(
    jax.random.key(2), DH, num_features=32
  )
  spectral = macformer_jax.make_spectral_attention_fn(
    jax.random.key(2), DH, component="oprf", weights="qmc", num_features=32
  )
  for fn, core in (
    (performer, layers.PerformerAttention(num_features=32)),
    (
      spectral,
      layers.SpectralAttention(
        component="oprf", weights="qmc", num_features=32
      ),
    ),
  ):
    expected = core.apply({layers.FEATURES: fn.params}, q, k, v, mask=VALID)
    np.testing.assert_allclose(
      fn(q, k, v, mask=mask), jnp.where(rows, expected, 0), atol=1e-6
    )
  with pytest.raises(ValueError, match="trainable"):
    afn.make_spectral_attention_fn(jax.random.key(0), DH, component="gerf")


def test_baselines_plug_into_both_modules():
  x = jax.random.normal(jax.random.key(0), (B, L, E))
  mask = nn.make_attention_mask(VALID, VALID)
  for fn in (
    afn.make_performer_attention_fn(jax.random.key(1), DH),
    afn.make_spectral_attention_fn(
      jax.random.key(1), DH, component="trigrf", weights="sorf"
    ),
  ):
    linen = nn.MultiHeadDotProductAttention(num_heads=H, attention_fn=fn)
    y = linen.apply(linen.init(jax.random.key(2), x, mask=mask), x, mask=mask)
    mha = nnx.MultiHeadAttention(
      H, E, attention_fn=fn, decode=False, rngs=nnx.Rngs(0)
    )
    causal = lambda m, x, mask: m(x, mask=mask, is_causal=True)
    y2 = nnx.jit(causal)(mha, x, mask)  # a traced mask
    np.testing.assert_allclose(y2, causal(mha, x, mask), atol=1e-5)
    assert y.shape == y2.shape == (B, L, E)
    assert bool(jnp.all(jnp.isfinite(y)) & jnp.all(jnp.isfinite(y2)))


def test_arbitrary_mask_raises_one_line_error_when_checked():
  fn = afn.make_attention_fn(jax.random.key(0), DH, num_features=32)
  q, k, v = jax.random.normal(jax.random.key(1), (3, B, L, H, DH))
  mask = nn.make_attention_mask(VALID, VALID, dtype=bool)
  window = jnp.abs(jnp.arange(L)[:, None] - jnp.arange(L)) < 3  # local
  per_head = jnp.broadcast_to(mask, (B, H, L, L)).at[0, 1, :, 0].set(False)
  for bad in (mask & window, per_head):
    with pytest.raises(
      ValueError, match="neither key padding nor causal"
    ) as error:
      fn(q, k, v, mask=bad)
    assert "\n" not in str(error.value) and "example(s) [0" in str(error.value)
    with pytest.raises(afn.MaskError):
      afn.check_mask_structure(bad)
  assert afn.check_mask_structure(nn.make_causal_mask(VALID)) is True
  assert afn.check_mask_structure(mask) is False
  # Under jit the mask is traced: the offending example becomes NaN.
  out = jax.jit(fn)(q, k, v, mask=mask.at[1].set(mask[1] & window))
  assert bool(jnp.all(jnp.isfinite(out[0])))
  assert bool(jnp.all(jnp.isnan(out[1])))
  # Unchecked: the smallest padding mask containing it (here: the padding).
  loose = afn.make_attention_fn(
    jax.random.key(0), DH, num_features=32, check_mask=False
  )
  np.testing.assert_allclose(
    loose(q, k, v, mask=mask & window), fn(q, k, v, mask=mask), atol=1e-6
  )


def test_features_fixed_redraw_and_checkpoint():
  fn = afn.make_attention_fn(jax.random.key(0), DH, num_features=32)
  q, k, v = jax.random.normal(jax.random.key(1), (3, B, L, H, DH))
  again = afn.make_attention_fn(jax.random.key(0), DH, num_features=32)
  np.testing.assert_array_equal(fn(q, k, v), again(q, k, v))  # from the key
  other = fn.redraw(jax.random.key(5))
  assert other.options == fn.options
  assert not np.allclose(other(q, k, v), fn(q, k, v))
  state = serialization.to_state_dict(fn.params)  # e.g. saved with orbax
  state = jax.tree.map(np.asarray, state)
  restored = other.with_params(
    serialization.from_state_dict(other.params, state)
  )
  np.testing.assert_array_equal(restored(q, k, v), fn(q, k, v))
  # Constants of the model: the nnx module's state holds only its weights.
  mha = nnx.MultiHeadAttention(
    H, E, attention_fn=fn, decode=False, rngs=nnx.Rngs(0)
  )
  leaves = jax.tree.leaves(nnx.state(mha))
  assert all(leaf.shape != fn.params.projections.shape for leaf in leaves)


def test_call_contract():
  fn = afn.make_attention_fn(jax.random.key(0), DH, num_features=32)
  q, k, v = jax.random.normal(jax.random.key(1), (3, 2, 3, L, H, DH))
  jfn = jax.jit(fn)
  out = jfn(q, k, v)  # several batch dims
  assert out.shape == (2, 3, L, H, DH)
  np.testing.assert_allclose(out[1, 2], jfn(q[1], k[1], v[1])[2], atol=1e-6)
  half = jfn(*(x.astype(jnp.bfloat16) for x in (q, k, v)))
  assert half.dtype == jnp.bfloat16
  with pytest.raises(ValueError, match="bias"):
    fn(q, k, v, bias=jnp.zeros((L, L)))
  with pytest.raises(ValueError, match="self-attention only"):
    fn(q, k[..., :4, :, :], v[..., :4, :, :])
  with pytest.raises(ValueError, match="head dim"):
    fn(q[..., :4], k[..., :4], v)
  with pytest.warns(UserWarning, match="ignores dropout"):
    jax.eval_shape(lambda: fn(q, k, v, dropout_rate=0.1, deterministic=False))
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    jax.eval_shape(lambda: fn(q, k, v, dropout_rate=0.1, deterministic=True))
  x = jax.random.normal(jax.random.key(0), (B, L, E))
  mha = nnx.MultiHeadAttention(
    H, E, attention_fn=fn, decode=False, rngs=nnx.Rngs(0)
  )
  with pytest.raises(ValueError, match="sow_weights"):
    nnx.eval_shape(lambda m: m(x, sow_weights=True), mha)
  gqa = nnx.MultiHeadAttention(
    H, E, num_kv_heads=1, attention_fn=fn, decode=False, rngs=nnx.Rngs(0)
  )
  assert nnx.eval_shape(lambda m: m(x), gqa).shape == (B, L, E)

  def loss(model):
    return jnp.sum(model(x, mask=nn.make_attention_mask(VALID, VALID)) ** 2)

  grads = nnx.jit(nnx.grad(loss))(mha)
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


def test_digits_example_runs_a_few_steps(capsys):
  pytest.importorskip("sklearn")
  path = (
    pathlib.Path(__file__).resolve().parents[1] / "examples" / ("digits_vit.py")
  )
  spec = importlib.util.spec_from_file_location("digits_vit", path)
  example = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(example)
  results = example.main(
    ["--steps", "2", "--eval_every", "2", "--dim", "16", "--num_features", "16"]
  )
  assert set(results) == {"softmax", "macformer"}
  for r in results.values():
    assert 0.0 <= r["accuracy"] <= 1.0 and r["train_s"] > 0
  text = capsys.readouterr().out
  assert "softmax" in text and "macformer" in text and "accuracy" in text


def test_readme_section_runs(capsys):
  readme = (
    pathlib.Path(__file__).resolve().parents[1] / "README.md"
  ).read_text()
  section = readme.split("## Use it in your own Flax model", 1)[1]
  block = section.split("```python\n", 1)[1].split("```", 1)[0]
  exec(block, {})  # pylint: disable=exec-used
  assert capsys.readouterr().out.strip() == "(2, 100, 64) (2, 100, 64)"
