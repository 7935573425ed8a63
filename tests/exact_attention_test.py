"""Blocked exact softmax attention equals the einsum, dropout included."""

import jax
import jax.numpy as jnp
import numpy as np

from macformer_jax import attention
from macformer_jax import exact_attention


def test_blocks_and_reference_agree():
  r = np.random.default_rng(0)
  q, k, v = (
    jnp.asarray(r.normal(size=(2, 37, 2, 8)), jnp.float32) for _ in range(3)
  )
  mask = jnp.asarray(np.arange(37)[None] < np.array([[30], [37]]))
  ref = attention.softmax_attention(q, k, v, mask)
  np.testing.assert_allclose(
    exact_attention.softmax_attention(q, k, v, mask), ref, atol=1e-6
  )
  key = jax.random.key(1)
  whole = exact_attention.softmax_attention(
    q, k, v, mask, dropout_rate=0.2, dropout_key=key
  )
  blocked = exact_attention.softmax_attention(
    q, k, v, mask, dropout_rate=0.2, dropout_key=key, block_size=8
  )
  np.testing.assert_allclose(blocked, whole, atol=1e-5)
  assert not np.allclose(whole, ref, atol=1e-3)
