"""LRA-style Transformer encoders around any registered attention core.

One encoder serves every task and every attention: the attention
is injected as a class (`layers.attention_class`), and `build_model(config,
task_spec)` is the only place where config names become classes.

The model follows the original LRA Transformer (docs/METHOD.md §8.2):

  tokens [B, L] -> Embed (N(0, embed_init_std)) -> [prepend CLS] -> + position
  embedding -> dropout -> num_layers x pre-LN block (LN -> MHSA -> dropout ->
  residual; LN -> Dense-GELU-dropout-Dense-dropout -> residual) -> final LN ->
  pool (CLS or mask-aware MEAN) -> head (Dense -> ReLU)^n -> Dense(C).

Where this differs from the original LRA code, on purpose:
  * The padding mask (`inputs != 0`) reaches every attention core, the
    kernelised ones included; LRA's Performer and Linear Transformer ignored it.
  * `CLS` pooling always reads a learned, zero-initialised CLS token, also in
    the dual encoder; LRA's dual encoder had no CLS token and pooled the first
    byte of each document.
  * `MEAN` pooling averages over real tokens only; LRA's mean included the
    padded positions, the authors' code (docs/METHOD.md §8.3) counts them as
    zeros.
  * The Retrieval head always combines [u, v, u*v, u-v] (the paper's NLI
    interaction); LRA's code only did so with `interaction='NLI'`.
  * The CLS slot is always a real token in the mask; LRA copied the first
    token's mask value.
"""

from collections.abc import Callable, Sequence
import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from macformer_jax import layers

POS_EMBS = ("sinusoidal", "learned", "none")
POOLINGS = ("CLS", "MEAN")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def sinusoidal_table(length: int, dim: int) -> np.ndarray:
  """Fixed sin/cos position table (LRA `sinusoidal_init`).

  Args:
    length: number of positions.
    dim: embedding width E.

  Returns:
    [1, length, E] float32: sin on even channels, cos on odd channels.
  """
  position = np.arange(length, dtype=np.float32)[:, None]
  div_term = np.exp(
    np.arange(0, dim, 2, dtype=np.float32) * -(np.log(10000.0) / dim)
  )
  table = np.zeros((length, dim), np.float32)
  table[:, 0::2] = np.sin(position * div_term)
  table[:, 1::2] = np.cos(position * div_term)[:, : dim // 2]
  return table[None]


@jax.custom_vjp
def _add_table(x: jax.Array, table: jax.Array) -> jax.Array:
  """x [B, L, E] + table [1, L, E]; the table's gradient as a matmul.

  Autodiff sums the cotangent over the batch as a reduction over the outer
  axis of [B, L, E], which XLA's CPU backend runs at a fraction of memory
  speed (the slowest single op of the linear attentions' training step);
  ones [B] . g is the same sum (to float32 round-off) as a matrix-vector
  product.
  """
  return x + table


def _add_table_fwd(x, table):
  return x + table, x.shape[0]


def _add_table_bwd(batch, g):
  ones = jnp.ones((batch,), g.dtype)
  return g, jnp.einsum("b,ble->le", ones, g)[None]


_add_table.defvjp(_add_table_fwd, _add_table_bwd)


class AddPositionEmbs(nn.Module):
  """Adds a position embedding to [B, L, E] inputs.

  Attributes:
    kind: 'sinusoidal' (fixed, LRA's default), 'learned' (parameter
      `pos_embedding` [1, max_len, E], init N(0, init_std)) or 'none'.
    max_len: table length for 'learned' (inputs may be shorter).
    init_std: standard deviation of the learned table (LRA and the authors:
      0.02).
  """

  kind: str = "sinusoidal"
  max_len: int = 2048
  init_std: float = 0.02

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x: [B, L, E]. Returns [B, L, E]."""
    _, length, dim = x.shape
    if self.kind == "none":
      return x
    if self.kind == "sinusoidal":
      return x + jnp.asarray(sinusoidal_table(length, dim), x.dtype)
    if self.kind != "learned":
      raise ValueError(
        f"unknown position embedding {self.kind!r}; known: "
        f"{', '.join(POS_EMBS)}"
      )
    if length > self.max_len:
      raise ValueError(
        f"sequence of length {length} is longer than the "
        f"learned position table ({self.max_len})"
      )
    table = self.param(
      "pos_embedding",
      nn.initializers.normal(stddev=self.init_std),
      (1, self.max_len, dim),
    )
    return _add_table(x, table[:, :length].astype(x.dtype))


class MlpBlock(nn.Module):
  """Dense(mlp_dim) -> GELU -> dropout -> Dense(E) -> dropout (LRA MlpBlock).

  Attributes:
    mlp_dim: hidden width.
    dropout_rate: dropout after each Dense.
    dtype: compute dtype.
  """

  mlp_dim: int
  dropout_rate: float = 0.1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
    """x: [B, L, E]. Returns [B, L, E]."""
    dense = functools.partial(
      nn.Dense,
      dtype=self.dtype,
      kernel_init=nn.initializers.xavier_uniform(),
      bias_init=nn.initializers.normal(stddev=1e-6),
      dot_general=layers.dense_dot_general,
    )
    y = dense(self.mlp_dim, name="hidden")(x)
    y = nn.gelu(y)
    y = layers.Dropout(self.dropout_rate)(y, deterministic=deterministic)
    y = dense(x.shape[-1], name="output")(y)
    return layers.Dropout(self.dropout_rate)(y, deterministic=deterministic)


class EncoderBlock(nn.Module):
  """Pre-LayerNorm Transformer block (LRA TransformerBlock).

  Attributes:
    num_heads: H.
    qkv_dim: total q/k/v width over heads (H * Dh).
    mlp_dim: MLP hidden width.
    attention_cls: the attention core (class or `functools.partial`).
    dropout_rate: dropout after attention and in the MLP.
    qkv_bias: biases on the q/k/v/output projections (LRA: none; the
      authors' model: yes).
    dtype: compute dtype (the attention core itself runs in float32).
  """

  num_heads: int
  qkv_dim: int
  mlp_dim: int
  attention_cls: Callable[..., nn.Module]
  dropout_rate: float = 0.1
  qkv_bias: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(
    self, x: jax.Array, mask: jax.Array, deterministic: bool = True
  ) -> jax.Array:
    """x: [B, L, E]; mask: [B, L] bool, True = real token. Returns [B, L, E]."""
    y = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, name="attention_norm")(x)
    y = layers.MultiHeadSelfAttention(
      num_heads=self.num_heads,
      attention_cls=self.attention_cls,
      qkv_dim=self.qkv_dim,
      use_bias=self.qkv_bias,
      dtype=self.dtype,
      name="attention",
    )(y, mask, deterministic)
    y = layers.Dropout(self.dropout_rate)(y, deterministic=deterministic)
    x = x + y
    y = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, name="mlp_norm")(x)
    y = MlpBlock(self.mlp_dim, self.dropout_rate, self.dtype, name="mlp")(
      y, deterministic
    )
    return x + y


class Encoder(nn.Module):
  """Token ids -> one pooled vector per sequence.

  Attributes:
    vocab_size: V (id 0 is padding).
    emb_dim: E.
    num_heads: H.
    num_layers: number of blocks (untied).
    qkv_dim: total q/k/v width over heads; `Dh = qkv_dim // H`.
    mlp_dim: MLP hidden width.
    max_len: longest input L (sizes the learned position table).
    attention_cls: the attention core.
    dropout_rate: dropout on the embeddings, after attention and in the MLPs.
    pos_emb: 'sinusoidal', 'learned' or 'none'.
    embed_init_std: std of the token embedding init (LRA 1.0, authors 0.02).
    pooling: 'CLS' (a learned zero-initialised token prepended) or 'MEAN'
      (average over real tokens).
    qkv_bias: biases on the attention projections.
    dtype: compute dtype.
  """

  vocab_size: int
  emb_dim: int
  num_heads: int
  num_layers: int
  qkv_dim: int
  mlp_dim: int
  max_len: int
  attention_cls: Callable[..., nn.Module]
  dropout_rate: float = 0.1
  pos_emb: str = "sinusoidal"
  embed_init_std: float = 1.0
  pooling: str = "CLS"
  qkv_bias: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(
    self, inputs: jax.Array, deterministic: bool = True
  ) -> jax.Array:
    """Encodes and pools.

    Args:
      inputs: [B, L] int token ids, 0 = padding.
      deterministic: disables dropout (evaluation).

    Returns:
      [B, E] pooled representation (float32).
    """
    if self.pooling not in POOLINGS:
      raise ValueError(
        f"unknown pooling {self.pooling!r}; known: {', '.join(POOLINGS)}"
      )
    mask = inputs != 0  # [B, L]
    x = nn.Embed(
      self.vocab_size,
      self.emb_dim,
      embedding_init=nn.initializers.normal(stddev=self.embed_init_std),
      name="embed",
    )(inputs.astype(jnp.int32))
    max_len = self.max_len
    if self.pooling == "CLS":
      cls = self.param("cls", nn.initializers.zeros, (1, 1, self.emb_dim))
      x = jnp.concatenate(
        [
          jnp.broadcast_to(cls, (x.shape[0], 1, self.emb_dim)).astype(x.dtype),
          x,
        ],
        axis=1,
      )
      mask = jnp.concatenate([jnp.ones_like(mask[:, :1]), mask], axis=1)
      max_len += 1
    x = AddPositionEmbs(self.pos_emb, max_len, name="pos_embed")(x)
    x = layers.Dropout(self.dropout_rate)(x, deterministic=deterministic)
    x = x.astype(self.dtype)
    for i in range(self.num_layers):
      x = EncoderBlock(
        num_heads=self.num_heads,
        qkv_dim=self.qkv_dim,
        mlp_dim=self.mlp_dim,
        attention_cls=self.attention_cls,
        dropout_rate=self.dropout_rate,
        qkv_bias=self.qkv_bias,
        dtype=self.dtype,
        name=f"block_{i}",
      )(x, mask, deterministic)
    x = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, name="encoder_norm")(x)
    x = x.astype(jnp.float32)
    if self.pooling == "CLS":
      return x[:, 0]
    weights = mask.astype(jnp.float32)[..., None]
    return jnp.sum(x * weights, axis=1) / jnp.maximum(
      jnp.sum(weights, axis=1), 1.0
    )


class ClassifierHead(nn.Module):
  """(Dense -> ReLU) x len(hidden_dims) -> Dense(num_classes).

  LRA: one hidden layer of `mlp_dim` for single inputs, `mlp_dim, mlp_dim // 2`
  for the dual encoder; the authors: one hidden layer of 128 for both.

  Attributes:
    num_classes: C.
    hidden_dims: widths of the hidden layers.
    dtype: compute dtype (logits are returned in float32).
  """

  num_classes: int
  hidden_dims: Sequence[int]
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x: [B, F]. Returns logits [B, C] float32."""
    for i, width in enumerate(self.hidden_dims):
      x = nn.relu(nn.Dense(width, dtype=self.dtype, name=f"hidden_{i}")(x))
    return nn.Dense(self.num_classes, dtype=self.dtype, name="logits")(
      x
    ).astype(jnp.float32)


class Classifier(nn.Module):
  """Single-input classifier: encoder + head.

  Attributes:
    encoder: an `Encoder` (adopted as the submodule `encoder`).
    head: a `ClassifierHead`.
  """

  encoder: Encoder
  head: ClassifierHead

  @nn.compact
  def __call__(
    self, inputs: jax.Array, deterministic: bool = True
  ) -> jax.Array:
    """inputs: [B, L] int. Returns logits [B, C] float32."""
    return self.head(self.encoder(inputs, deterministic))


class DualClassifier(nn.Module):
  """Two-document classifier (Retrieval): one shared encoder, NLI combination.

  Both documents go through the same encoder (shared weights); the pooled
  vectors u, v are combined as [u, v, u * v, u - v] (LRA paper, and LRA's
  `interaction='NLI'`) and classified by the head.

  Attributes:
    encoder: an `Encoder`, applied to each document.
    head: a `ClassifierHead` on the [B, 4E] combination.
  """

  encoder: Encoder
  head: ClassifierHead

  @nn.compact
  def __call__(
    self, inputs: jax.Array, inputs2: jax.Array, deterministic: bool = True
  ) -> jax.Array:
    """inputs, inputs2: [B, L] int. Returns logits [B, C] float32."""
    u = self.encoder(inputs, deterministic)
    v = self.encoder(inputs2, deterministic)
    return self.head(jnp.concatenate([u, v, u * v, u - v], axis=-1))


def head_dims(mlp_dim: int, num_layers: int) -> tuple:
  """Hidden widths of the head: mlp_dim, mlp_dim // 2, mlp_dim // 4, ..."""
  return tuple(max(mlp_dim // 2**i, 1) for i in range(num_layers))


def attention_from_config(
  attention_config: Any, attention_dropout_rate: float = 0.0
) -> Callable[..., nn.Module]:
  """The attention core class of `config.attention`.

  Args:
    attention_config: `config.attention` (`name` and `options`).
    attention_dropout_rate: passed as `dropout_rate` to cores that have that
      option (softmax) unless the options set it.

  Returns:
    A class or `functools.partial` for `MultiHeadSelfAttention`.
  """
  options = dict(attention_config.options)
  core = layers.ATTENTIONS.get(attention_config.name)
  if "dropout_rate" in {f.name for f in dataclasses.fields(core)}:
    options.setdefault("dropout_rate", attention_dropout_rate)
  return layers.attention_class(attention_config.name, **options)


def build_model(config: Any, task_spec: Any) -> nn.Module:
  """The classifier of `config` for the task described by `task_spec`.

  The only place where config names (attention, pooling, dtype) become
  classes. A dual-input task (`task_spec.dual_input`, Retrieval) gets the
  `DualClassifier`.

  Args:
    config: the run config (`config.model`, `config.attention`,
      `config.data.max_len` are read).
    task_spec: `lra_tasks` TaskSpec (num_classes, vocab_size, dual_input).

  Returns:
    An unbound `Classifier` or `DualClassifier`; call it with one or two
    [B, L] int arrays and `deterministic`.
  """
  model_config = config.model
  if model_config.dtype not in DTYPES:
    raise ValueError(
      f"unknown model.dtype {model_config.dtype!r}; known: {', '.join(DTYPES)}"
    )
  if model_config.pos_emb not in POS_EMBS:
    raise ValueError(
      f"unknown model.pos_emb {model_config.pos_emb!r}; "
      f"known: {', '.join(POS_EMBS)}"
    )
  if model_config.pooling not in POOLINGS:
    raise ValueError(
      f"unknown model.pooling {model_config.pooling!r}; "
      f"known: {', '.join(POOLINGS)}"
    )
  dtype = DTYPES[model_config.dtype]
  encoder = Encoder(
    vocab_size=task_spec.vocab_size,
    emb_dim=model_config.emb_dim,
    num_heads=model_config.num_heads,
    num_layers=model_config.num_layers,
    qkv_dim=model_config.qkv_dim,
    mlp_dim=model_config.mlp_dim,
    max_len=config.data.max_len,
    attention_cls=attention_from_config(
      config.attention, model_config.attention_dropout_rate
    ),
    dropout_rate=model_config.dropout_rate,
    pos_emb=model_config.pos_emb,
    embed_init_std=model_config.embed_init_std,
    pooling=model_config.pooling,
    qkv_bias=model_config.qkv_bias,
    dtype=dtype,
  )
  head = ClassifierHead(
    num_classes=task_spec.num_classes,
    hidden_dims=head_dims(
      model_config.mlp_dim, model_config.head_hidden_layers
    ),
    dtype=dtype,
  )
  if task_spec.dual_input:
    return DualClassifier(encoder=encoder, head=head)
  return Classifier(encoder=encoder, head=head)


def model_inputs(batch: dict, dual_input: bool) -> tuple:
  """The positional model inputs of a batch: (inputs,) or (inputs, inputs2)."""
  if dual_input:
    return batch["inputs"], batch["inputs2"]
  return (batch["inputs"],)


def init_inputs(batch_size: int, max_len: int, dual_input: bool) -> tuple:
  """Dummy [B, L] int32 inputs of ones for `model.init`."""
  x = jnp.ones((batch_size, max_len), jnp.int32)
  return (x, x) if dual_input else (x,)
