"""Blocked exact softmax attention equals the einsum, dropout included."""

import jax
import jax.numpy as jnp
import numpy as np

from macformer_jax import attention
from macformer_jax import exact_attention


def _numpy_softmax_attention(q, k, v, mask):
  """float64 softmax(q k^T / sqrt(Dk)) v over the real keys, in numpy."""
  q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
  logits = np.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(q.shape[-1])
  logits = np.where(np.asarray(mask)[:, None, None, :], logits, -np.inf)
  weights = np.exp(logits - logits.max(-1, keepdims=True))
  weights /= weights.sum(-1, keepdims=True)
  return np.einsum("bhqk,bkhd->bqhd", weights, v)


def test_blocks_and_reference_agree():
  r = np.random.default_rng(0)
  q, k, v = (
    jnp.asarray(r.normal(size=(2, 37, 2, 8)), jnp.float32) for _ in range(3)
  )
  mask = jnp.asarray(np.arange(37)[None] < np.array([[30], [37]]))
  ref = _numpy_softmax_attention(q, k, v, mask)
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


def test_attention_softmax_attention_is_this_implementation():
  """`attention.softmax_attention` is an alias: the same outputs, dropout
  (its `dropout_rng` is `dropout_key`) included."""
  q, k, v, _, mask = _inputs()
  key = jax.random.key(3)
  for rate, rng in ((0.0, None), (0.3, key)):
    np.testing.assert_array_equal(
      attention.softmax_attention(
        q, k, v, mask, True, dropout_rate=rate, dropout_rng=rng
      ),
      exact_attention.softmax_attention(
        q, k, v, mask, True, dropout_rate=rate, dropout_key=rng
      ),
    )


def _inputs(batch=3, length=37, heads=2, dim=8, seed=0):
  r = np.random.default_rng(seed)
  q, k, v, d_out = (
    jnp.asarray(r.normal(size=(batch, length, heads, dim)), jnp.float32)
    for _ in range(4)
  )
  # Example 0 keeps 30 keys, example 2 none (its rows average all values).
  lengths = np.array([[30], [length], [0]])[:batch]
  mask = jnp.asarray(np.arange(length)[None] < lengths)
  return q, k, v, d_out, mask


def _value_and_grads(d_out, **kwargs):
  def loss(q, k, v, mask):
    return jnp.vdot(
      exact_attention.softmax_attention(q, k, v, mask, **kwargs), d_out
    )

  return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))


def test_blocked_vjp_equals_einsum_autodiff():
  # The custom VJP (recomputed weights from the log-sum-exp) against
  # autodiff through the one-einsum reference: values and dq, dk, dv to
  # float32 round-off, with padding, an all-padded example, causal or not,
  # dropout or not, and blocks that divide neither L nor B.
  q, k, v, d_out, mask = _inputs()
  key = jax.random.key(7)
  for causal in (False, True):
    for rate, drop_key in ((0.0, None), (0.3, key)):
      common = dict(causal=causal, dropout_rate=rate, dropout_key=drop_key)
      ref_value, ref_grads = _value_and_grads(d_out, **common)(q, k, v, mask)
      scale = max(float(jnp.max(jnp.abs(g))) for g in ref_grads)
      for block_size, batch_block in ((8, 1), (0, 2), (37, 0), (5, 3)):
        value, grads = _value_and_grads(
          d_out, block_size=block_size, batch_block=batch_block, **common
        )(q, k, v, mask)
        np.testing.assert_allclose(value, ref_value, rtol=1e-5, atol=1e-4)
        for g, ref in zip(grads, ref_grads, strict=True):
          np.testing.assert_allclose(g, ref, atol=2e-6 * scale)


def test_blocked_without_mask_and_under_vmap():
  # No mask at all, and per-example keys under vmap (the pmap engine runs
  # the model on one example at a time): both equal the einsum.
  q, k, v, d_out, _ = _inputs(batch=2)
  keys = jax.random.split(jax.random.key(3), 2)

  def per_example(block_size, batch_block):
    def loss(q, k, v):
      def one(key, q, k, v):
        return exact_attention.softmax_attention(
          q[None],
          k[None],
          v[None],
          dropout_rate=0.2,
          dropout_key=key,
          block_size=block_size,
          batch_block=batch_block,
        )[0]

      return jnp.vdot(jax.vmap(one)(keys, q, k, v), d_out)

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))(q, k, v)

  ref_value, ref_grads = per_example(0, 0)
  value, grads = per_example(16, 1)
  np.testing.assert_allclose(value, ref_value, rtol=1e-5)
  scale = max(float(jnp.max(jnp.abs(g))) for g in ref_grads)
  for g, ref in zip(grads, ref_grads, strict=True):
    np.testing.assert_allclose(g, ref, atol=2e-6 * scale)
