"""Exact softmax attention for training: hashed dropout, query blocks.

The same maths as `attention.softmax_attention` (softmax(q k^T / sqrt(Dk))
with padded keys masked by a -1e10 logit, dropout on the weights, times v),
computed for the training step:

* Dropout on the [B, H, L, L] weights draws its mask from
  `dropout.keep_mask`, a hash of the key and each weight's index, which
  XLA fuses into the softmax; `jax.random.bernoulli` wrote B H L^2 threefry
  words first (a gigabyte at L = 2000, batch 32, 2 heads).
* With `block_size` < L, queries are processed `block_size` at a time
  (`lax.map`), each block rematerialised in the backward pass
  (`jax.checkpoint`), so the [B, H, L, L] weights never exist at once:
  memory O(B H block_size L). Each block sees every key, so no online
  softmax rescaling is needed and the result is the einsum's, row for row;
  the dropout mask of a block is the slice of the whole mask.
"""

import chex
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

from macformer_jax import dropout as dropout_lib


def _attend(q, k, v, mask, causal, dropout_rate, dropout_key, first, length):
  """Queries q [B, C, H, D] at rows first..first+C of the [L, L] weights."""
  b, c, h, dk = q.shape
  logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(dk)
  visible = jnp.ones((1, 1, 1, length), bool)
  if mask is not None:
    visible = visible & mask[:, None, None, :]
  if causal:
    rows = first + lax.broadcasted_iota(jnp.int32, (c, length), 0)
    cols = lax.broadcasted_iota(jnp.int32, (c, length), 1)
    visible = visible & (cols <= rows)[None, None]
  # A large finite negative (as LRA's -1e10 bias), not -inf: a row with no
  # visible key becomes uniform instead of NaN.
  logits = jnp.where(visible, logits, -1e10)
  weights = jax.nn.softmax(logits, axis=-1)
  if dropout_key is not None and dropout_rate > 0.0:
    keep = dropout_lib.keep_mask(
      dropout_key,
      dropout_rate,
      (b, h, c, length),
      offsets=(0, 0, first, 0),
      full_shape=(b, h, length, length),
    )
    weights = jnp.where(keep, weights / (1.0 - dropout_rate), 0.0)
  return jnp.einsum("bhqk,bkhd->bqhd", weights, v)


def softmax_attention(
  q: jax.Array,
  k: jax.Array,
  v: jax.Array,
  mask: jax.Array | None = None,
  causal: bool = False,
  *,
  dropout_rate: float = 0.0,
  dropout_key: jax.Array | None = None,
  block_size: int = 0,
) -> jax.Array:
  """Exact softmax attention, in float32.

  Args:
    q, k: [B, L, H, Dk]; v: [B, L, H, Dv].
    mask: [B, L] real-token mask (keys).
    causal: query i sees keys j <= i only.
    dropout_rate, dropout_key: dropout on the attention weights (an
      independent mask per weight, `dropout.keep_mask` of the whole
      [B, H, L, L] weights); none when the key is None.
    block_size: queries per block; 0 or >= L: one einsum over all of them.

  Returns:
    float32 [B, L, H, Dv]; a query with no visible key averages all values.
  """
  chex.assert_rank([q, k, v], 4)
  b, length = q.shape[:2]
  if mask is not None:
    chex.assert_shape(mask, (b, length))
    mask = mask.astype(bool)
  q, k, v = (x.astype(jnp.float32) for x in (q, k, v))
  attend = lambda qb, first: _attend(
    qb, k, v, mask, causal, dropout_rate, dropout_key, first, length
  )
  if not 0 < block_size < length:
    return attend(q, 0)
  pad = (-length) % block_size
  n = (length + pad) // block_size
  blocks = jnp.pad(q, ((0, 0), (0, pad), (0, 0), (0, 0)))
  blocks = jnp.moveaxis(blocks.reshape((b, n, block_size) + q.shape[2:]), 1, 0)
  firsts = jnp.arange(n, dtype=jnp.int32) * block_size
  out = lax.map(lambda args: jax.checkpoint(attend)(*args), (blocks, firsts))
  out = jnp.moveaxis(out, 0, 1).reshape((b, n * block_size) + out.shape[3:])
  return out[:, :length]
