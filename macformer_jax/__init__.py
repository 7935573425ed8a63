"""macformer-jax: random Maclaurin feature attention (Macformer) in JAX/Flax.

Pure functions for the mathematics live in `kernels`, `features`, `attention`,
`normalization` and `spectral`, which import no Flax; thin Flax modules in
`layers` (attention cores, PostSBN and the multi-head wrapper, one registry)
and `encoder` (LRA-style encoders).

In one call: `attention.macformer_attention(params, q, k, v, mask=None,
causal=False, qk_scale=None)` with `params = features.sample_rmf(key, Dh, M,
kernel)` and q, k, v [B, L, H, Dh]. Importing this package loads nothing;
the submodules need only jax, flax, chex, numpy and scipy (the trainer needs
the `[lra]` extra).
"""

__version__ = "0.1.0"
