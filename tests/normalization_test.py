"""ppSBN: PreSBN's zero mean / unit norm, its eps, PostSBN's scale
(`layers.PostSBN`, a Flax module beside the other cores)."""

import jax
import jax.numpy as jnp
import numpy as np

from macformer_jax import layers
from macformer_jax import normalization


def test_pre_sbn_zero_mean_unit_norm():
  x = jax.random.normal(jax.random.key(0), (3, 7, 2, 32)) * 5 + 3
  y = normalization.pre_sbn(x)
  np.testing.assert_allclose(jnp.mean(y, -1), 0.0, atol=1e-6)
  np.testing.assert_allclose(jnp.linalg.norm(y, axis=-1), 1.0, rtol=1e-5)
  # Independent reference: (x - mean) / |x - mean|.
  c = np.asarray(x) - np.asarray(x).mean(-1, keepdims=True)
  np.testing.assert_allclose(
    y, c / np.linalg.norm(c, axis=-1, keepdims=True), rtol=1e-5, atol=1e-6
  )


def test_pre_sbn_constant_vector_gives_no_nan():
  x = jnp.full((2, 32), 4.0)
  y, grad = jax.value_and_grad(
    lambda x: jnp.sum(normalization.pre_sbn(x) ** 2)
  )(x)
  assert np.isfinite(y) and np.all(np.isfinite(grad))
  np.testing.assert_array_equal(normalization.pre_sbn(x), 0.0)


def test_pre_sbn_under_jit_and_vmap():
  x = jax.random.normal(jax.random.key(1), (4, 5, 8))
  # Two XLA programs: 1e-5 relative, 1e-6 absolute (entries <= 1).
  np.testing.assert_allclose(
    jax.jit(normalization.pre_sbn)(x),
    jax.vmap(normalization.pre_sbn)(x),
    rtol=1e-5,
    atol=1e-6,
  )


def test_pre_sbn_keeps_bfloat16():
  x = jax.random.normal(jax.random.key(1), (4, 8)).astype(jnp.bfloat16)
  y = normalization.pre_sbn(x)
  assert y.dtype == jnp.bfloat16
  np.testing.assert_allclose(
    jnp.linalg.norm(y.astype(jnp.float32), axis=-1), 1.0, rtol=1e-2
  )


def test_post_sbn_scale_and_power_form():
  x = jnp.linspace(-2.0, 2.0, 12).reshape(1, 3, 4)
  module = layers.PostSBN()
  variables = module.init(jax.random.key(0), x)
  np.testing.assert_array_equal(variables["params"]["gamma"], np.ones(4))
  np.testing.assert_allclose(module.apply(variables, x), x)
  gamma = jnp.array([1.0, 2.0, 3.0, 4.0])
  np.testing.assert_allclose(
    module.apply({"params": {"gamma": gamma}}, x), x * gamma
  )
  power = layers.PostSBN(power=True)
  params = {"gamma": jnp.ones(4), "beta": jnp.full(4, 0.5)}
  out, grads = jax.value_and_grad(
    lambda p: jnp.sum(power.apply({"params": p}, x))
  )(params)
  assert np.isfinite(out)
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
  np.testing.assert_allclose(
    power.apply({"params": params}, x),
    np.sign(x) * (np.abs(x) + 1e-6) ** 0.5,
    rtol=1e-5,
  )
