"""Exact softmax attention: hashed dropout, blocks, own VJP.

The library's one exact softmax attention (softmax(q k^T / sqrt(Dk)) with
padded keys masked by a -1e10 logit, dropout on the weights, times v);
`attention.softmax_attention` is an alias of its einsum path and
`layers.SoftmaxAttention` runs it. Built for the training step:

* Dropout on the [B, H, L, L] weights draws its mask from
  `dropout.keep_mask`, a hash of the key and each weight's index, which
  XLA fuses into the softmax; `jax.random.bernoulli` wrote B H L^2 threefry
  words first (a gigabyte at L = 2000, batch 32, 2 heads).
* With `block_size` or `batch_block` set, the weights are computed a block
  of (examples, queries) at a time and never exist whole: the forward pass
  keeps only the output and each query's log-sum-exp, and a custom VJP
  recomputes a block's weights from them (the backward pass of
  FlashAttention, Dao et al. 2022, Algorithm 2 with the key loop of length
  one: each block sees every key, so no online rescaling is needed and
  each row is the einsum's, to float32 round-off). A block of a few hundred
  kilobytes stays in the CPU's cache across the softmax, the dropout and
  both products, where the einsum's autodiff reads and writes [B, H, L, L]
  arrays in memory several times over; the dropout mask of a block is the
  slice of the whole mask, so both paths drop the same weights.

The backward pass of a block, with P = softmax(S), S = q k^T / sqrt(Dk),
Z the kept-and-rescaled mask (keep / (1 - rate), 0 where dropped) and
O = (P * Z) v:  dv = (P * Z)^T dO;  dP = (dO v^T) * Z;
dS = P * (dP - rowsum(dO * O)) (the row sum is over the head dimension:
sum_j P_ij dP_ij = dO_i . O_i); dq = dS k / sqrt(Dk), dk = dS^T q /
sqrt(Dk); masked logits get no gradient, as through the einsum's `where`.
"""

import chex
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

from macformer_jax import dropout as dropout_lib

# A large finite negative (as LRA's -1e10 bias), not -inf: a row with no
# visible key becomes uniform instead of NaN.
_MASKED = -1e10


def _visible(mask, causal, first, rows, length):
  """bool [b|1, 1, rows, L] (or None): which logits of a block are kept."""
  visible = None if mask is None else mask[:, None, None, :]
  if causal:
    row = first + lax.broadcasted_iota(jnp.int32, (rows, length), 0)
    col = lax.broadcasted_iota(jnp.int32, (rows, length), 1)
    causal_mask = (col <= row)[None, None]
    visible = causal_mask if visible is None else visible & causal_mask
  return visible


def _logits(q, k, visible, heads_first=False):
  """q [b, C, H, D], k [b, L, H, D] -> masked logits [b, H, C, L].

  heads_first: q [b, H, C, D] already scaled by 1 / sqrt(D), k [b, H, L, D].
  """
  if heads_first:
    logits = jnp.einsum("bhqd,bhkd->bhqk", q, k)
  else:
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.float32(
      np.sqrt(q.shape[-1])
    )
  if visible is not None:
    logits = jnp.where(visible, logits, _MASKED)
  return logits


def _keep(dropout_key, dropout_rate, shape, offsets, full_shape):
  """The block of the whole [B, H, L, L] keep mask at `offsets`."""
  return dropout_lib.keep_mask(
    dropout_key, dropout_rate, shape, offsets=offsets, full_shape=full_shape
  )


def _attend(q, k, v, mask, causal, dropout_rate, dropout_key, first, length):
  """Queries q [B, C, H, D] at rows first..first+C of the [L, L] weights
  (the einsum path, differentiated by autodiff)."""
  b, c, h, _ = q.shape
  visible = _visible(mask, causal, first, c, length)
  if visible is None:
    visible = jnp.ones((1, 1, 1, length), bool)
  weights = jax.nn.softmax(_logits(q, k, visible), axis=-1)
  if dropout_key is not None and dropout_rate > 0.0:
    keep = _keep(
      dropout_key,
      dropout_rate,
      (b, h, c, length),
      (0, 0, first, 0),
      (b, h, length, length),
    )
    weights = jnp.where(keep, weights / (1.0 - dropout_rate), 0.0)
  return jnp.einsum("bhqk,bkhd->bqhd", weights, v)


def _largest_divisor(n: int, at_most: int) -> int:
  """The largest divisor of n that is <= at_most (>= 1)."""
  return max(d for d in range(1, max(min(n, at_most), 1) + 1) if n % d == 0)


def _blocked(  # noqa: C901 (forward and backward of one VJP, nested)
  q, k, v, mask, key_data, *, causal, dropout_rate, block_size, batch_block
):
  """The blocked path with its own VJP (module docstring).

  q, k [B, L, H, Dk], v [B, L, H, Dv] float32; mask bool [B, L] or None;
  key_data uint32 key data or None (no dropout). Returns [B, L, H, Dv].
  Inside, q, k, v are heads-first ([B, H, L, D], transposed once), so that
  each block's products are plain batched matmuls.
  """
  batch, length, heads, _ = q.shape
  bb = _largest_divisor(batch, batch_block)
  nb = batch // bb
  c = min(block_size, length)
  nq = -(-length // c)
  pad = nq * c - length
  full = (batch, heads, length, length)
  has_mask, has_dropout = mask is not None, key_data is not None
  inv_sqrt = np.float32(1.0 / np.sqrt(q.shape[-1]))

  def examples(x):  # [B, ...] -> [nb, bb, ...]
    return x.reshape((nb, bb) + x.shape[1:])

  def queries(x):  # [bb, H, L, D] -> [nq, bb, H, c, D] (padded rows last)
    x = jnp.pad(x, ((0, 0), (0, 0), (0, pad), (0, 0)))
    return jnp.moveaxis(x.reshape(x.shape[:2] + (nq, c, x.shape[-1])), 2, 0)

  def unqueries(x):  # [nq, bb, H, c, D] -> [bb, H, L, D]
    x = jnp.moveaxis(x, 0, 2)
    return x.reshape(x.shape[:2] + (nq * c, x.shape[-1]))[:, :, :length]

  def block_keep(key_data, i, j):
    return _keep(
      key_data,
      dropout_rate,
      (bb, heads, c, length),
      (i * bb, 0, j * c, 0),
      full,
    )

  def forward(q, k, v, mask, key_data):
    """Outputs [B, H, L, Dv] and each row's log-sum-exp as (max logit,
    log of the sum of exp(logit - max)), each [nb, nq, bb, H, c]: a row
    with every key masked has max -1e10, and -1e10 + log(L) would round
    to -1e10 in float32."""

    def chunk(args):
      i, qc, kc, vc, mc = args

      def block(_, args):
        j, qb = args
        logits = _logits(
          qb, kc, _visible(mc, causal, j * c, c, length), heads_first=True
        )
        top = jnp.max(logits, -1, keepdims=True)
        e = jnp.exp(logits - top)
        total = jnp.sum(e, -1, keepdims=True)
        norm = total  # the row's 1 / total and 1 / (1 - rate) on [c, Dv]
        if has_dropout:
          e = jnp.where(block_keep(key_data, i, j), e, 0.0)
          norm = total * (1.0 - dropout_rate)
        out = jnp.einsum("bhqk,bhkd->bhqd", e, vc) / norm
        return None, (out, (top[..., 0], jnp.log(total[..., 0])))

      _, (out, lse) = lax.scan(block, None, (jnp.arange(nq), queries(qc)))
      return unqueries(out), lse

    out, lse = lax.map(
      chunk,
      (
        jnp.arange(nb),
        examples(q),
        examples(k),
        examples(v),
        examples(mask) if has_mask else None,
      ),
    )
    return out.reshape((batch,) + out.shape[2:]), lse

  def backward(q, k, v, mask, key_data, lse, d_out, delta):
    """(dq, dk, dv) from the saved log-sum-exps."""

    def chunk(args):
      i, qc, kc, vc, mc, lc, dc, deltac = args
      deltas = jnp.moveaxis(
        jnp.pad(deltac, ((0, 0), (0, 0), (0, pad))).reshape((bb, heads, nq, c)),
        2,
        0,
      )

      def block(carry, args):
        dk_sum, dv_sum = carry
        j, qb, (top, log_total), db, deltab = args
        visible = _visible(mc, causal, j * c, c, length)
        p = jnp.exp(
          (_logits(qb, kc, visible, True) - top[..., None])
          - log_total[..., None]
        )
        pz = p
        if has_dropout:  # 1 / (1 - rate) on db [c, Dv], not on [c, L]
          keep = block_keep(key_data, i, j)
          db = db / (1.0 - dropout_rate)
          pz = jnp.where(keep, p, 0.0)
        dp = jnp.einsum("bhqd,bhkd->bhqk", db, vc)
        if has_dropout:
          dp = jnp.where(keep, dp, 0.0)
        ds = p * (dp - deltab[..., None])
        if visible is not None:
          ds = jnp.where(visible, ds, 0.0)
        # The cotangent of the scaled q; autodiff applies 1 / sqrt(Dk).
        dq = jnp.einsum("bhqk,bhkd->bhqd", ds, kc)
        dk_sum = dk_sum + jnp.einsum("bhqk,bhqd->bhkd", ds, qb)
        dv_sum = dv_sum + jnp.einsum("bhqk,bhqd->bhkd", pz, db)
        return (dk_sum, dv_sum), dq

      (dkc, dvc), dq = lax.scan(
        block,
        (jnp.zeros_like(kc), jnp.zeros_like(vc)),
        (jnp.arange(nq), queries(qc), lc, queries(dc), deltas),
      )
      return unqueries(dq), dkc, dvc

    grads = lax.map(
      chunk,
      (
        jnp.arange(nb),
        examples(q),
        examples(k),
        examples(v),
        examples(mask) if has_mask else None,
        lse,
        examples(d_out),
        examples(delta),
      ),
    )
    return tuple(g.reshape((batch,) + g.shape[2:]) for g in grads)

  @jax.custom_vjp
  def attend(q, k, v, mask, key_data):
    return forward(q, k, v, mask, key_data)[0]

  def attend_fwd(q, k, v, mask, key_data):
    out, lse = forward(q, k, v, mask, key_data)
    return out, (q, k, v, mask, key_data, out, lse)

  def attend_bwd(residuals, d_out):
    q, k, v, mask, key_data, out, lse = residuals
    delta = jnp.einsum("bhqd,bhqd->bhq", d_out, out)  # rowsum(P dP)
    dq, dk, dv = backward(q, k, v, mask, key_data, lse, d_out, delta)
    return dq, dk, dv, None, None

  attend.defvjp(attend_fwd, attend_bwd)
  q, k, v = (jnp.swapaxes(x, 1, 2) for x in (q, k, v))
  # q scaled once here ([B, H, L, Dk]), not each block's logits [c, L].
  return jnp.swapaxes(attend(q * inv_sqrt, k, v, mask, key_data), 1, 2)


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
  batch_block: int = 0,
) -> jax.Array:
  """Exact softmax attention, in float32.

  Args:
    q, k: [B, L, H, Dk]; v: [B, L, H, Dv].
    mask: [B, L] real-token mask (keys).
    causal: query i sees keys j <= i only.
    dropout_rate, dropout_key: dropout on the attention weights (an
      independent mask per weight, `dropout.keep_mask` of the whole
      [B, H, L, L] weights); none when the key is None.
    block_size: queries per block of the blocked path (0: all L).
    batch_block: examples per block of the blocked path (0: all B; else the
      largest divisor of B not above it).
    With both 0: one einsum over all weights, differentiated by autodiff
    (the reference); otherwise the blocked path with its own VJP (module
    docstring), equal to it up to float32 round-off.

  Returns:
    float32 [B, L, H, Dv]; a query with no visible key averages all values.
  """
  chex.assert_rank([q, k, v], 4)
  b, length = q.shape[:2]
  if mask is not None:
    chex.assert_shape(mask, (b, length))
    mask = mask.astype(bool)
  q, k, v = (x.astype(jnp.float32) for x in (q, k, v))
  if dropout_rate <= 0.0:
    dropout_key = None
  if block_size <= 0 and batch_block <= 0:
    return _attend(q, k, v, mask, causal, dropout_rate, dropout_key, 0, length)
  key_data = None
  if dropout_key is not None:
    key_data = dropout_key
    if jnp.issubdtype(key_data.dtype, jax.dtypes.prng_key):
      key_data = jax.random.key_data(key_data)
  return _blocked(
    q,
    k,
    v,
    mask,
    key_data,
    causal=causal,
    dropout_rate=dropout_rate,
    block_size=block_size if block_size > 0 else length,
    batch_block=batch_block if batch_block > 0 else b,
  )
