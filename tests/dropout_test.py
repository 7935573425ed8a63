"""Hashed dropout masks: rate, scaling, blocks of a whole mask, keys."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from macformer_jax import dropout
from macformer_jax import layers


def test_keep_rate_and_scaling():
  x = jnp.ones((64, 500, 32), jnp.float32)
  y = np.asarray(dropout.dropout(x, 0.1, jax.random.key(0)))
  kept = y != 0
  # 1M Bernoulli(0.9) draws: std of the mean 3e-4.
  assert abs(kept.mean() - 0.9) < 2e-3
  np.testing.assert_allclose(y[kept], 1 / 0.9, rtol=1e-6)
  # No visible structure along any axis: per-position keep rates agree.
  assert abs(kept.mean(axis=(0, 1)) - 0.9).max() < 0.01
  assert abs(kept.mean(axis=(0, 2)) - 0.9).max() < 0.03


def test_masks_depend_on_the_key_only_through_its_data():
  shape = (8, 300)
  a = dropout.keep_mask(jax.random.key(1), 0.5, shape)
  b = dropout.keep_mask(jax.random.key(1), 0.5, shape)
  c = dropout.keep_mask(jax.random.key(2), 0.5, shape)
  d = dropout.keep_mask(jax.random.key_data(jax.random.key(1)), 0.5, shape)
  np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(a, d)
  # Independent keys: masks agree on about half the entries.
  assert 0.45 < float(jnp.mean(a == c)) < 0.55


def test_a_block_is_the_same_slice_of_the_whole_mask():
  key = jax.random.fold_in(jax.random.key(3), 7)
  full = (2, 3, 40, 50)
  whole = dropout.random_bits(key, full)
  block = dropout.random_bits(
    key, (2, 3, 8, 50), offsets=(0, 0, 16, 0), full_shape=full
  )
  np.testing.assert_array_equal(block, whole[:, :, 16:24])
  traced = jax.jit(
    lambda o: dropout.random_bits(
      key, (2, 3, 8, 50), offsets=(0, 0, o, 0), full_shape=full
    )
  )(16)
  np.testing.assert_array_equal(traced, whole[:, :, 16:24])


def test_module_matches_the_function_and_is_off_when_deterministic():
  x = jnp.arange(1.0, 401.0).reshape(4, 100)
  module = layers.Dropout(0.25)
  key = jax.random.key(5)
  y = module.apply({}, x, deterministic=False, rngs={"dropout": key})
  assert float(jnp.mean(y == 0)) > 0.1
  np.testing.assert_array_equal(module.apply({}, x), x)
  np.testing.assert_array_equal(dropout.dropout(x, 0.0, key), x)


def test_too_many_elements_raise():
  with pytest.raises(ValueError, match="wrap"):
    dropout.random_bits(jax.random.key(0), (1, 1), full_shape=(2**16, 2**16))
