"""macformer-jax: random Maclaurin feature attention (Macformer) in JAX/Flax.

Pure functions for the mathematics live in `kernels`, `features`, `attention`,
`normalization` and `spectral`, which import no Flax; thin Flax modules in
`layers` (attention cores, PostSBN and the multi-head wrapper, one registry)
and `encoder` (LRA-style encoders).

In one call: `attention.macformer_attention(params, q, k, v, mask=None,
causal=False, qk_scale=None)` with `params = features.sample_rmf(key, Dh, M,
kernel)` and q, k, v [B, L, H, Dh]. In your own Flax model:
`flax.nnx.MultiHeadAttention(..., attention_fn=make_attention_fn(key, Dh))`
(or linen's `MultiHeadDotProductAttention`; `attention_fn` module, with the
Performer and Spectraformer baselines). Importing this package loads nothing
(the names below load `attention_fn` on first use); the submodules need only
jax, flax, chex, numpy and scipy (the trainer needs the `[lra]` extra).
"""

__version__ = "0.1.0"

# Loaded on first access (PEP 562), so that `import macformer_jax` stays free.
_LAZY = (
  "AttentionFn",
  "MaskError",
  "check_mask_structure",
  "make_attention_fn",
  "make_performer_attention_fn",
  "make_spectral_attention_fn",
)
__all__ = list(_LAZY)


def __getattr__(name):
  if name in _LAZY:
    from macformer_jax import attention_fn  # pylint: disable=g-import-not-at-top

    return getattr(attention_fn, name)
  raise AttributeError(f"module 'macformer_jax' has no attribute {name!r}")


def __dir__():
  return sorted(list(globals()) + list(_LAZY))
