"""Tests of macformer_jax.encoder: shapes, padding invariance, build_model."""

import functools
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import common
from macformer_jax import encoder
from macformer_jax import layers

B, L, V, C = 2, 12, 11, 3
TINY = dict(
  vocab_size=V,
  emb_dim=16,
  num_heads=2,
  num_layers=2,
  qkv_dim=16,
  mlp_dim=32,
  max_len=24,
  dropout_rate=0.1,
)
ATTENTIONS = {
  "softmax": layers.attention_class("softmax"),
  "rmfa": layers.attention_class("rmfa", num_features=16),
  "performer": layers.attention_class("performer", num_features=16),
  "linear": layers.attention_class("linear"),
}


# Fewer XLA passes: these tests compile many small programs (conftest.py).
pytestmark = pytest.mark.usefixtures("compile_fast")


def _tokens(seed, length=L, pad_from=(8, 5)):
  """[B, length] ids in 1..V-1 with 0-padding from pad_from[b] on."""
  x = np.random.default_rng(seed).integers(1, V, (B, length))
  for b, start in enumerate(pad_from):
    x[b, start:] = 0
  return jnp.asarray(x, jnp.int32)


def _init(model, *inputs):
  return jax.jit(functools.partial(model.init, deterministic=True))(
    {"params": jax.random.key(0), "features": jax.random.key(1)}, *inputs
  )


def _classifier(attention="softmax", dual=False, **overrides):
  enc = encoder.Encoder(
    attention_cls=ATTENTIONS[attention], **{**TINY, **overrides}
  )
  head = encoder.ClassifierHead(C, (32, 16) if dual else (32,))
  cls = encoder.DualClassifier if dual else encoder.Classifier
  return cls(encoder=enc, head=head)


@pytest.mark.parametrize("pooling", ["CLS", "MEAN"])
@pytest.mark.parametrize("attention", ["softmax", "rmfa"])
def test_single_encoder_shapes(attention, pooling):
  model = _classifier(attention, pooling=pooling)
  x = _tokens(0)
  variables = _init(model, x)
  logits = model.apply(
    variables, x, deterministic=False, rngs={"dropout": jax.random.key(2)}
  )
  assert logits.shape == (B, C) and logits.dtype == jnp.float32
  pooled = model.apply(variables, x, method=lambda m, x: m.encoder(x))
  assert pooled.shape == (B, TINY["emb_dim"])
  params = variables["params"]
  if pooling == "CLS":
    np.testing.assert_array_equal(params["encoder"]["cls"], 0.0)
  else:
    assert "cls" not in params["encoder"]
  assert (layers.FEATURES in variables) == (attention == "rmfa")


@pytest.mark.parametrize("attention", ["softmax", "rmfa"])
def test_dual_encoder_shapes_and_shared_weights(attention):
  model = _classifier(attention, dual=True)
  x, x2 = _tokens(0), _tokens(1, pad_from=(3, 12))
  variables = _init(model, x, x2)
  logits = model.apply(variables, x, x2)
  assert logits.shape == (B, C)
  # One shared encoder; the head sees [u, v, u*v, u-v] = 4E features.
  assert set(variables["params"]) == {"encoder", "head"}
  assert variables["params"]["head"]["hidden_0"]["kernel"].shape == (
    4 * TINY["emb_dim"],
    32,
  )
  assert variables["params"]["head"]["hidden_1"]["kernel"].shape == (32, 16)
  # Swapping the documents changes u - v only: a different output.
  swapped = model.apply(variables, x2, x)
  assert not np.allclose(logits, swapped)


@pytest.mark.parametrize(
  "pooling,pos_emb", [("CLS", "sinusoidal"), ("MEAN", "learned")]
)
@pytest.mark.parametrize("attention", sorted(ATTENTIONS))
def test_padding_does_not_change_pooled_output(attention, pooling, pos_emb):
  """Appending padding leaves the pooled vector unchanged: padded keys are
  masked in every attention core and MEAN pooling skips padded positions."""
  enc = encoder.Encoder(
    attention_cls=ATTENTIONS[attention],
    pooling=pooling,
    pos_emb=pos_emb,
    **TINY,
  )
  x = _tokens(3)
  variables = _init(enc, x)
  pooled = enc.apply(variables, x)
  longer = jnp.concatenate([x, jnp.zeros((B, 9), jnp.int32)], axis=1)
  np.testing.assert_allclose(
    enc.apply(variables, longer), pooled, rtol=1e-5, atol=1e-5
  )


def test_dual_padding_invariance():
  model = _classifier("rmfa", dual=True)
  x, x2 = _tokens(4), _tokens(5, pad_from=(2, 7))
  variables = _init(model, x, x2)
  pad = jnp.zeros((B, 6), jnp.int32)
  np.testing.assert_allclose(
    model.apply(
      variables, jnp.concatenate([x, pad], 1), jnp.concatenate([x2, pad], 1)
    ),
    model.apply(variables, x, x2),
    rtol=1e-5,
    atol=1e-5,
  )


def test_mean_pooling_ignores_padding_positions():
  enc = encoder.Encoder(
    attention_cls=ATTENTIONS["softmax"], pooling="MEAN", **TINY
  )
  x = _tokens(6)
  variables = _init(enc, x)
  pooled = enc.apply(variables, x)
  # Reference: mean of the final-LN outputs over real tokens only.
  hidden = enc.apply(
    variables, x, capture_intermediates=lambda m, _: m.name == "encoder_norm"
  )[1]["intermediates"]["encoder_norm"]["__call__"][0]
  mask = np.asarray(x != 0, np.float32)[..., None]
  expected = (np.asarray(hidden) * mask).sum(1) / mask.sum(1)
  np.testing.assert_allclose(pooled, expected, rtol=1e-5, atol=1e-6)


def test_sinusoidal_table():
  table = encoder.sinusoidal_table(7, 6)[0]
  pos = 5  # channel pair (4, 5) uses div_term exp(-4 ln(1e4) / 6)
  freq = np.exp(-4 * np.log(10000.0) / 6)
  np.testing.assert_allclose(table[pos, 4], np.sin(pos * freq), rtol=1e-6)
  np.testing.assert_allclose(table[pos, 5], np.cos(pos * freq), rtol=1e-6)
  np.testing.assert_allclose(table[0, 1::2], 1.0)


def test_learned_table_too_short_raises():
  enc = encoder.Encoder(
    attention_cls=ATTENTIONS["softmax"],
    pos_emb="learned",
    **{**TINY, "max_len": 4},
  )
  with pytest.raises(ValueError, match="longer than the learned position"):
    _init(enc, _tokens(0))


def test_bfloat16_compute_returns_float32_logits():
  model = _classifier("rmfa", dtype=jnp.bfloat16)
  x = _tokens(7)
  variables = _init(model, x)
  logits = model.apply(variables, x)
  assert logits.dtype == jnp.float32 and np.all(np.isfinite(logits))
  # Parameters stay float32.
  assert all(
    p.dtype == jnp.float32 for p in jax.tree.leaves(variables["params"])
  )


@pytest.mark.parametrize("preset", ["lra", "macformer"])
@pytest.mark.parametrize("dual", [False, True])
def test_build_model_from_config(preset, dual):
  config = common.get_base_config()
  common.with_attention(config, "macformer_exp")
  if preset == "macformer":
    common.apply_macformer_preset(
      config,
      max_len=32,
      batch_size=2,
      learning_rate=1e-4,
      warmup_steps=2,
      num_train_steps=10,
      eval_frequency=5,
      num_eval_batches=-1,
    )
  config.model.emb_dim, config.model.qkv_dim, config.model.mlp_dim = 16, 16, 8
  config.model.num_layers, config.model.num_heads = 1, 2
  config.data.max_len = 32
  spec = types.SimpleNamespace(num_classes=C, vocab_size=V, dual_input=dual)
  model = encoder.build_model(config, spec)
  assert isinstance(
    model, encoder.DualClassifier if dual else encoder.Classifier
  )
  inputs = encoder.init_inputs(1, 32, dual)
  variables = _init(model, *inputs)
  params = variables["params"]
  attn = params["encoder"]["block_0"]["attention"]
  assert ("bias" in attn["query"]) == (preset == "macformer")
  assert ("pos_embedding" in params["encoder"].get("pos_embed", {})) == (
    preset == "macformer"
  )
  assert ("cls" in params["encoder"]) == (preset == "lra")
  assert layers.FEATURES in variables
  assert model.apply(variables, *inputs).shape == (1, C)


def test_build_model_rejects_unknown_names():
  config = common.get_base_config()
  common.with_attention(config, "softmax")
  spec = types.SimpleNamespace(num_classes=C, vocab_size=V, dual_input=False)
  config.model.pooling = "MAX"
  with pytest.raises(ValueError, match="pooling"):
    encoder.build_model(config, spec)
  config.model.pooling = "CLS"
  config.model.dtype = "float16"
  with pytest.raises(ValueError, match="dtype"):
    encoder.build_model(config, spec)


def test_attention_dropout_reaches_softmax_only():
  config = common.get_base_config()
  config.model.attention_dropout_rate = 0.25
  common.with_attention(config, "softmax")
  core = encoder.attention_from_config(config.attention, 0.25)
  assert core.keywords["dropout_rate"] == 0.25
  common.with_attention(config, "macformer_exp")
  core = encoder.attention_from_config(config.attention, 0.25)
  assert "dropout_rate" not in core.keywords


def test_learned_position_table_gradient_is_the_batch_sum():
  """The table's gradient (a custom VJP: ones . g) is sum over the batch."""
  module = encoder.AddPositionEmbs("learned", max_len=L)
  x = jax.random.normal(jax.random.key(0), (B, L, 4))
  g = jax.random.normal(jax.random.key(1), (B, L, 4))
  params = module.init(jax.random.key(2), x)
  out, pull = jax.vjp(lambda p, x: module.apply(p, x), params, x)
  d_params, d_x = pull(g)
  table = params["params"]["pos_embedding"]
  np.testing.assert_allclose(out, x + table, rtol=1e-6)
  np.testing.assert_allclose(
    d_params["params"]["pos_embedding"], g.sum(0, keepdims=True), rtol=1e-5
  )
  np.testing.assert_array_equal(d_x, g)
