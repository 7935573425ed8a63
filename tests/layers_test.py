"""Attention modules: registry, shapes and parameter counts per variant,
masking, random-feature state (checkpointable, redrawable), and the RMFA
module against the composition of the public pure functions."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from macformer_jax import attention
from macformer_jax import features
from macformer_jax import layers
from macformer_jax import normalization

B, L, E, H = 2, 24, 16, 2
PROJECTIONS = 4 * E * E  # q, k, v, out kernels without bias
# name -> (extra trainable params, random-feature shapes)
VARIANTS = {
  "softmax": (0, {}),
  "rmfa": (E // H, {"projections": (E // H, 127)}),  # PostSBN gamma
  "performer": (0, {"projections": (E // H, 128)}),
  "rfa": (0, {"projections": (E // H, 64)}),
  "linear": (0, {}),
  "exact_kernel": (E // H, {}),  # PostSBN gamma
  "spectral": (0, {"projections": (E // H, 128)}),  # posrf x orf
}


def _inputs():
  x = jax.random.normal(jax.random.key(0), (B, L, E))
  mask = jnp.arange(L)[None, :] < jnp.array([[L], [L - 9]])
  return x, mask


def _init(name, **options):
  model = layers.MultiHeadSelfAttention(
    num_heads=H, attention_cls=layers.attention_class(name, **options)
  )
  x, mask = _inputs()
  variables = jax.jit(model.init)(
    {"params": jax.random.key(1), "features": jax.random.key(2)}, x, mask
  )
  return model, variables


def test_every_registered_attention_has_a_row():
  assert set(layers.ATTENTIONS.names()) == set(VARIANTS)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_shapes_parameter_counts_and_feature_state(name):
  model, variables = _init(name)
  extra, feature_shapes = VARIANTS[name]
  count = sum(p.size for p in jax.tree.leaves(variables["params"]))
  assert count == PROJECTIONS + extra
  state = variables.get(layers.FEATURES, {})
  assert jax.tree.map(lambda a: a.shape, state) == (
    {"attention": feature_shapes} if feature_shapes else {}
  )
  x, mask = _inputs()
  out = jax.jit(model.apply)(variables, x, mask)  # apply needs no rng
  assert out.shape == (B, L, E) and np.all(np.isfinite(out))


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_padding_does_not_change_real_tokens(name):
  model, variables = _init(name)
  x, mask = _inputs()
  garbage = jax.random.normal(jax.random.key(5), x.shape) * 3
  changed = jnp.where(mask[:, :, None], x, garbage)
  out, out_changed = (model.apply(variables, y, mask) for y in (x, changed))
  real = np.asarray(mask)[:, :, None]
  np.testing.assert_allclose(
    out * real, out_changed * real, rtol=1e-4, atol=1e-5
  )


def test_rmfa_module_equals_composition_of_pure_functions():
  """PreSBN -> scale -> rmf -> rmfa -> gamma, through the public API."""
  core = layers.attention_class("rmfa", kernel="log")()
  rng = np.random.default_rng(0)
  q, k, v = (
    jnp.asarray(rng.normal(size=(B, L, H, 8)), jnp.float32) for _ in range(3)
  )
  mask = jnp.asarray(_inputs()[1])
  variables = core.init(
    {"params": jax.random.key(0), "features": jax.random.key(1)},
    q,
    k,
    v,
    mask=mask,
  )
  gamma = jnp.linspace(0.5, 2.0, 8)
  variables = {**variables, "params": {"post_sbn": {"gamma": gamma}}}
  out = core.apply(variables, q, k, v, mask=mask)
  plan, scales = features.make_plan(128, "log", "stratified")
  params = features.RMFParams(
    variables[layers.FEATURES]["projections"], jnp.asarray(scales), plan
  )
  s = 8**-0.25
  phi = lambda x: features.rmf(params, normalization.pre_sbn(x) * s)
  reference = attention.rmfa(phi(q), phi(k), v, mask) * gamma
  # Two float32 XLA paths (heads-first with analytic a_0 vs the public
  # layout): 1e-5 relative plus 1e-5 of the output scale.
  np.testing.assert_allclose(
    out, reference, rtol=1e-5, atol=1e-5 * np.max(np.abs(reference))
  )
  # The module is the one-call function plus PostSBN.
  one_call = attention.macformer_attention(params, q, k, v, mask) * gamma
  np.testing.assert_allclose(
    out, one_call, rtol=1e-5, atol=1e-5 * np.max(np.abs(reference))
  )


def test_fixed_qk_scale_outside_the_radius_is_rejected():
  """The module's fixed qk_scale goes through `attention.check_qk_scale`."""
  x, mask = _inputs()
  for kernel, scale in (("inverse", 1.0), ("log", 1.2)):
    model = layers.MultiHeadSelfAttention(
      num_heads=H,
      attention_cls=layers.attention_class(
        "rmfa", kernel=kernel, qk_scale=scale
      ),
    )
    with pytest.raises(ValueError, match="outside the radius of convergence"):
      model.init(
        {"params": jax.random.key(1), "features": jax.random.key(2)}, x, mask
      )
  model = layers.MultiHeadSelfAttention(
    num_heads=H,
    attention_cls=layers.attention_class("rmfa", kernel="exp", qk_scale=1.2),
  )
  with pytest.warns(UserWarning, match="variance"):
    model.init(
      {"params": jax.random.key(1), "features": jax.random.key(2)}, x, mask
    )


def test_features_redraw_checkpoint_and_layers_differ():
  model, variables = _init("rmfa")
  x, mask = _inputs()
  same = layers.draw_random_features(model, jax.random.key(2), x, mask)
  new = layers.draw_random_features(model, jax.random.key(3), x, mask)
  old_w = variables[layers.FEATURES]["attention"]["projections"]
  np.testing.assert_array_equal(same["attention"]["projections"], old_w)
  assert not np.array_equal(new["attention"]["projections"], old_w)
  assert set(np.unique(old_w)) == {-1.0, 1.0}
  # Two layers get independent draws from one `features` key.
  two = functools.partial(
    layers.MultiHeadSelfAttention,
    num_heads=H,
    attention_cls=layers.attention_class("rmfa"),
  )

  class Two(layers.nn.Module):
    @layers.nn.compact
    def __call__(self, x, mask):
      return two(name="b")(two(name="a")(x, mask), mask)

  state = Two().init(
    {"params": jax.random.key(0), "features": jax.random.key(1)}, x, mask
  )[layers.FEATURES]
  assert not np.array_equal(
    state["a"]["attention"]["projections"],
    state["b"]["attention"]["projections"],
  )


def test_per_head_features():
  _, variables = _init("rmfa", share_heads=False)
  assert variables[layers.FEATURES]["attention"]["projections"].shape == (
    H,
    E // H,
    127,
  )


def test_learned_scale_stays_inside_radius():
  model, variables = _init("rmfa", kernel="inverse", learn_qk_scale=True)
  params = variables["params"]
  logit = params["attention"]["qk_scale_logit"]
  s_max = attention.max_qk_scale("inverse")
  scale = s_max * jax.nn.sigmoid(logit)
  # Initialised at Dh^-1/4 unless that is within 10% of s_max.
  np.testing.assert_allclose(
    scale, min((E // H) ** -0.25, 0.9 * s_max), rtol=1e-5
  )
  # Push the logit far up: the scale saturates at s_max (s_max^2 = 0.4 < 1).
  params = jax.tree.map(lambda a: a, params)
  params["attention"]["qk_scale_logit"] = jnp.asarray(50.0)
  x, mask = _inputs()
  out = jax.jit(model.apply)({**variables, "params": params}, x, mask)
  assert np.all(np.isfinite(out))
  grads = jax.jit(
    jax.grad(
      lambda p: jnp.sum(model.apply({**variables, "params": p}, x, mask) ** 2)
    )
  )(variables["params"])
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))


def test_bfloat16_model_keeps_the_core_in_float32():
  model = layers.MultiHeadSelfAttention(
    num_heads=H,
    attention_cls=layers.attention_class("rmfa"),
    dtype=jnp.bfloat16,
  )
  x, mask = _inputs()
  variables = model.init(
    {"params": jax.random.key(1), "features": jax.random.key(2)}, x, mask
  )
  out = model.apply(variables, x, mask)
  assert out.dtype == jnp.bfloat16 and np.all(
    np.isfinite(out.astype(jnp.float32))
  )


@pytest.mark.parametrize(
  "name", ["rmfa", "performer", "rfa", "linear", "softmax"]
)
def test_causal_cores_match_masked_references(name):
  """A causal core's output at i ignores tokens after i."""
  model, variables = _init(name, causal=True)
  x, _ = _inputs()
  out = model.apply(variables, x)
  changed = model.apply(variables, x.at[:, 15:].set(7.0))
  np.testing.assert_allclose(out[:, :15], changed[:, :15], rtol=1e-4, atol=1e-5)


def test_unknown_attention_and_option_errors():
  with pytest.raises(
    ValueError,
    match="unknown attention 'rmf'; known: "
    "exact_kernel, linear, performer, rfa, rmfa, softmax",
  ):
    layers.attention_class("rmf")
  with pytest.raises(
    ValueError, match="no option.*'num_feature'.*num_features"
  ):
    layers.attention_class("rmfa", num_feature=64)
  with pytest.raises(ValueError, match="not divisible"):
    layers.MultiHeadSelfAttention(
      num_heads=3, attention_cls=layers.attention_class("softmax")
    ).init(jax.random.key(0), jnp.ones((1, 4, 16)))


def _qkv_mask(dh=8):
  rng = np.random.default_rng(0)
  q, k, v = (
    jnp.asarray(rng.normal(size=(B, L, H, dh)), jnp.float32) for _ in range(3)
  )
  return q, k, v, jnp.asarray(_inputs()[1])


@pytest.mark.parametrize("qk_scale", [None, 0.7])
def test_exact_kernel_module_is_kernelized_attention(qk_scale):
  """PreSBN -> scale -> `attention.kernelized_attention` -> gamma."""
  q, k, v, mask = _qkv_mask()
  core = layers.attention_class("exact_kernel", qk_scale=qk_scale)()
  variables = core.init(jax.random.key(0), q, k, v, mask=mask)
  assert layers.FEATURES not in variables  # no random features
  gamma = jnp.linspace(0.5, 2.0, 8)
  out = core.apply(
    {"params": {"post_sbn": {"gamma": gamma}}}, q, k, v, mask=mask
  )
  s = 8**-0.25 if qk_scale is None else qk_scale
  reference = (
    attention.kernelized_attention(
      normalization.pre_sbn(q) * s, normalization.pre_sbn(k) * s, v, "exp", mask
    )
    * gamma
  )
  np.testing.assert_allclose(out, reference, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("qk_scale", [None, 0.7])
def test_rmfa_converges_to_the_exact_kernel(qk_scale):
  """RMFA estimates exact-kernel attention: its error falls with M."""
  q, k, v, mask = _qkv_mask()
  exact = layers.attention_class("exact_kernel", qk_scale=qk_scale)()
  reference = exact.apply(
    exact.init(jax.random.key(0), q, k, v, mask=mask), q, k, v, mask=mask
  )
  real = np.asarray(mask)[:, :, None, None]
  errors = []
  for m in (16, 256, 8192):
    core = layers.attention_class("rmfa", num_features=m, qk_scale=qk_scale)()
    variables = core.init(
      {"params": jax.random.key(0), "features": jax.random.key(3)},
      q,
      k,
      v,
      mask=mask,
    )
    out = core.apply(variables, q, k, v, mask=mask)
    errors.append(
      float(
        np.sqrt(
          np.sum(((out - reference) * real) ** 2)
          / np.sum((reference * real) ** 2)
        )
      )
    )
  assert errors[0] > errors[1] > errors[2], errors
  assert errors[2] < 0.01, errors


def test_exact_kernel_rejects_a_scale_outside_a_finite_radius():
  q, k, v, mask = _qkv_mask()
  core = layers.attention_class(
    "exact_kernel", kernel="inverse", qk_scale=1.0
  )()
  with pytest.raises(ValueError, match="radius"):
    core.init(jax.random.key(0), q, k, v, mask=mask)


@pytest.mark.parametrize("causal", [False, True])
def test_performer_and_rfa_are_cells_of_the_spectral_grid(causal):
  """performer is posrf x orf (orthogonal=False: x gaussian) and rfa is
  trigrf x gaussian: the same draw (identical random features) and, for rfa
  and causal performer (the same stabiliser), the same output. Non-causal
  performer keeps FAVOR+'s stabiliser (one key max per example over all
  heads, eps 1e-6 inside the features; `features.favor_positive`), so its
  output differs from the cell's by the eps's share only (within 1e-3)."""
  cells = (
    ("performer", {}, "posrf", "orf"),
    ("performer", {"orthogonal": False}, "posrf", "gaussian"),
    ("rfa", {}, "trigrf", "gaussian"),
  )
  x, mask = _inputs()
  for name, options, component, weights in cells:
    model, variables = _init(name, causal=causal, **options)
    cell, cell_variables = _init(
      "spectral", causal=causal, component=component, weights=weights
    )
    draw, cell_draw = (
      v[layers.FEATURES]["attention"]["projections"]
      for v in (variables, cell_variables)
    )
    np.testing.assert_array_equal(draw, cell_draw)
    out = model.apply(variables, x, mask)
    out_cell = cell.apply(variables, x, mask)
    if name == "rfa" or causal:
      np.testing.assert_allclose(out, out_cell, rtol=1e-6, atol=1e-7)
    else:
      np.testing.assert_allclose(out, out_cell, rtol=0, atol=1e-3)


def test_performer_example_without_real_keys_is_finite():
  """An example whose tokens are all padding: its key max is over no key;
  the stabiliser falls back to 0 instead of -inf (which gave inf features
  and NaN through the masked values)."""
  q, k, v, _ = _qkv_mask()
  mask = jnp.array([[True] * L, [False] * L])
  core = layers.attention_class("performer", num_features=16)()
  variables = core.init(
    {"params": jax.random.key(0), "features": jax.random.key(1)},
    q,
    k,
    v,
    mask=mask,
  )
  out = core.apply(variables, q, k, v, mask=mask)
  assert np.all(np.isfinite(out))


def test_softmax_blocks_equal_the_einsum_with_dropout():
  # The module's blocked path (its own VJP) and the single einsum: the same
  # outputs and input gradients, dropout masks included, and 'auto' picks
  # the blocks for large weights on CPU only.
  r = np.random.default_rng(0)
  q, k, v, d_out = (
    jnp.asarray(r.normal(size=(2, 21, 2, 4)), jnp.float32) for _ in range(4)
  )
  mask = jnp.asarray(np.arange(21)[None] < np.array([[15], [21]]))

  def run(**options):
    core = layers.attention_class("softmax", dropout_rate=0.3, **options)()

    def loss(q, k, v):
      out = core.apply(
        {},
        q,
        k,
        v,
        mask=mask,
        deterministic=False,
        rngs={"dropout": jax.random.key(5)},
      )
      return jnp.vdot(out, d_out)

    return jax.value_and_grad(loss, argnums=(0, 1, 2))(q, k, v)

  ref_value, ref_grads = run(block_size=0, batch_block=0)
  value, grads = run(block_size=8, batch_block=1)
  np.testing.assert_allclose(value, ref_value, rtol=1e-5)
  for g, ref in zip(grads, ref_grads, strict=True):
    np.testing.assert_allclose(g, ref, atol=1e-5)
  auto = layers.SoftmaxAttention()
  assert auto._blocks(q) == (0, 0)  # pylint: disable=protected-access
  big = jnp.zeros((32, 2001, 2, 32))
  expected = (64, 1) if jax.default_backend() == "cpu" else (0, 0)
  assert auto._blocks(big) == expected  # pylint: disable=protected-access


@pytest.mark.parametrize(
  "x_shape, w_shape, n",
  [
    ((3, 5, 8), (8, 2, 4), 1),  # q/k/v: x narrower-or-equal, x transposed
    ((3, 5, 2, 4), (2, 4, 8), 2),  # output projection over (H, Dh)
    ((3, 5, 16), (16, 4), 1),  # x wider than g: g transposed
  ],
)
def test_dense_dot_general_equals_lax_dot_general(x_shape, w_shape, n):
  """Values and both gradients equal `jax.lax.dot_general` (float32, one
  product per entry: no reordering beyond the dot's own summation)."""
  kx, kw, kg = jax.random.split(jax.random.key(3), 3)
  x, w = jax.random.normal(kx, x_shape), jax.random.normal(kw, w_shape)
  contract = (tuple(range(len(x_shape) - n, len(x_shape))), tuple(range(n)))
  dims = (contract, ((), ()))
  out_shape = x_shape[: len(x_shape) - n] + w_shape[n:]
  g = jax.random.normal(kg, out_shape)

  def vjp(dot):
    out, pull = jax.vjp(lambda x, w: dot(x, w, dims), x, w)
    return (out, *pull(g))

  for got, want in zip(
    vjp(layers.dense_dot_general), vjp(jax.lax.dot_general), strict=True
  ):
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_dense_dot_general_other_contractions_fall_through():
  """A batch dimension takes `jax.lax.dot_general` itself."""
  a = jax.random.normal(jax.random.key(0), (2, 3, 4))
  b = jax.random.normal(jax.random.key(1), (2, 4, 5))
  dims = (((2,), (1,)), ((0,), (0,)))
  np.testing.assert_array_equal(
    layers.dense_dot_general(a, b, dims), jax.lax.dot_general(a, b, dims)
  )


@pytest.mark.parametrize(
  "name,options",
  [
    ("performer", {}),
    ("spectral", {"component": "posrf", "weights": "fastfood_learnable"}),
  ],
)
def test_positive_feature_cells_blocked_equal_materialised(name, options):
  """Non-causal performer and the posrf cells run the blocked core
  (`attention.positive_linear_attention`; 'auto' on CPU): the same outputs
  and gradients w.r.t. the input and every parameter (Fastfood's learned
  S, G, B reach the projection) as with the features materialised."""
  x, mask = _inputs()
  models = {
    size: layers.MultiHeadSelfAttention(
      num_heads=H,
      attention_cls=layers.attention_class(name, block_size=size, **options),
    )
    for size in (None, 8)
  }
  variables = models[None].init(
    {"params": jax.random.key(1), "features": jax.random.key(2)}, x, mask
  )

  def loss(size, params, x):
    out = models[size].apply({**variables, "params": params}, x, mask)
    return jnp.sum(jnp.sin(out) * mask[:, :, None]), out

  grad = jax.grad(loss, argnums=(1, 2), has_aux=True)
  blocked = jax.jit(grad, static_argnums=0)(8, variables["params"], x)
  plain = grad(None, variables["params"], x)
  leaves = jax.tree.leaves(blocked), jax.tree.leaves(plain)
  for a, b in zip(*leaves, strict=True):
    np.testing.assert_allclose(
      a, b, rtol=1e-5, atol=1e-5 * float(np.max(np.abs(b)))
    )
