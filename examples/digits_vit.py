"""A small ViT on scikit-learn's 8x8 digits: softmax vs drop-in Macformer.

The model is plain Flax (`nnx.MultiHeadAttention`); the only change between
the runs is the module's `attention_fn`: Flax's softmax
`dot_product_attention`, or `macformer_jax.make_attention_fn(key, head_dim)`
(random Maclaurin feature attention, Guo et al. 2024). The data ship inside
scikit-learn (1797 images, 8x8, 10 classes), so it runs offline:

  python examples/digits_vit.py                  # 600 steps per attention
  python examples/digits_vit.py --steps 100 --attention softmax,performer

Prints test accuracy and training time of each attention side by side. At
16 tokens (2x2 patches) the quadratic cost of softmax is nothing, so RMFA is
not faster here: the example shows the swap and that the accuracy holds;
the speed-up needs long sequences (benchmarks/attention_speed.py).
"""

import argparse
import sys
import time

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn.datasets import load_digits

import macformer_jax

ATTENTIONS = ("softmax", "macformer", "performer")


def load_data(seed: int = 0, num_test: int = 360):
  """(x_train, y_train, x_test, y_test); x float32 [N, 8, 8] in [0, 1]."""
  digits = load_digits()
  x = (digits.images / 16.0).astype(np.float32)
  y = digits.target.astype(np.int32)
  order = np.random.default_rng(seed).permutation(len(y))
  test, train = order[:num_test], order[num_test:]
  return x[train], y[train], x[test], y[test]


def make_attention_fn(name: str, head_dim: int, num_features: int, seed: int):
  """The `attention_fn` of `nnx.MultiHeadAttention` for an attention name."""
  key = jax.random.key(seed)
  if name == "softmax":
    return nnx.dot_product_attention  # Flax's default
  if name == "macformer":
    return macformer_jax.make_attention_fn(
      key, head_dim, num_features=num_features
    )
  if name == "performer":
    return macformer_jax.make_performer_attention_fn(
      key, head_dim, num_features=num_features
    )
  raise ValueError(f"unknown attention {name!r}; known: {ATTENTIONS}")


class Block(nnx.Module):
  """Pre-LN transformer block around Flax's multi-head attention."""

  def __init__(self, dim, heads, attention_fn, rngs):
    self.norm1 = nnx.LayerNorm(dim, rngs=rngs)
    self.attn = nnx.MultiHeadAttention(
      heads, dim, attention_fn=attention_fn, decode=False, rngs=rngs
    )
    self.norm2 = nnx.LayerNorm(dim, rngs=rngs)
    self.up = nnx.Linear(dim, 2 * dim, rngs=rngs)
    self.down = nnx.Linear(2 * dim, dim, rngs=rngs)

  def __call__(self, x):
    x = x + self.attn(self.norm1(x))
    return x + self.down(nnx.gelu(self.up(self.norm2(x))))


class ViT(nnx.Module):
  """Patches of 2x2 pixels -> tokens -> blocks -> mean pool -> 10 logits."""

  def __init__(self, attention_fn, *, dim=64, heads=2, depth=2, patch=2, rngs):
    self.patch = patch
    tokens = (8 // patch) ** 2
    self.embed = nnx.Linear(patch * patch, dim, rngs=rngs)
    self.pos = nnx.Param(0.02 * jax.random.normal(rngs.params(), (tokens, dim)))
    self.blocks = nnx.List(
      [Block(dim, heads, attention_fn, rngs) for _ in range(depth)]
    )
    self.norm = nnx.LayerNorm(dim, rngs=rngs)
    self.head = nnx.Linear(dim, 10, rngs=rngs)

  def __call__(self, images):
    b, p = images.shape[0], self.patch
    x = images.reshape(b, 8 // p, p, 8 // p, p).transpose(0, 1, 3, 2, 4)
    x = self.embed(x.reshape(b, -1, p * p)) + self.pos[...]
    for block in self.blocks:
      x = block(x)
    return self.head(self.norm(x.mean(axis=1)))


@nnx.jit
def train_step(model, optimizer, images, labels):
  def loss_fn(model):
    logits = model(images)
    return optax.softmax_cross_entropy_with_integer_labels(
      logits, labels
    ).mean()

  loss, grads = nnx.value_and_grad(loss_fn)(model)
  optimizer.update(model, grads)
  return loss


@nnx.jit
def predict(model, images):
  return jnp.argmax(model(images), axis=-1)


def train(
  name: str,
  data,
  *,
  steps: int,
  batch_size: int,
  lr: float,
  dim: int,
  heads: int,
  num_features: int,
  seed: int,
  eval_every: int,
):
  """Trains one ViT; returns accuracy, training time and ms per step."""
  x_train, y_train, x_test, y_test = data
  fn = make_attention_fn(name, dim // heads, num_features, seed + 1)
  model = ViT(fn, dim=dim, heads=heads, rngs=nnx.Rngs(seed))  # same init
  optimizer = nnx.Optimizer(
    model, optax.adamw(lr, weight_decay=1e-4), wrt=nnx.Param
  )
  rng = np.random.default_rng(seed)  # same batches for every attention
  start = time.perf_counter()
  compiled_at = None
  for step in range(1, steps + 1):
    idx = rng.choice(len(y_train), batch_size, replace=False)
    loss = train_step(model, optimizer, x_train[idx], y_train[idx])
    if step == 1:
      jax.block_until_ready(loss)
      compiled_at = time.perf_counter()
    if step % eval_every == 0 or step == steps:
      acc = float(np.mean(np.asarray(predict(model, x_test)) == y_test))
      print(
        f"  {name:9s} step {step:4d}  loss {float(loss):.3f}  "
        f"test accuracy {acc:.3f}",
        flush=True,
      )
  jax.block_until_ready(loss)
  end = time.perf_counter()
  per_step = 1e3 * (end - compiled_at) / max(steps - 1, 1)
  return {"accuracy": acc, "train_s": end - start, "ms_per_step": per_step}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument(
    "--attention",
    default="softmax,macformer",
    help=f"comma-separated, from {', '.join(ATTENTIONS)}",
  )
  parser.add_argument("--steps", type=int, default=600)
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--lr", type=float, default=3e-3)
  parser.add_argument("--dim", type=int, default=64)
  parser.add_argument("--heads", type=int, default=2)
  parser.add_argument("--num_features", type=int, default=128)
  parser.add_argument("--eval_every", type=int, default=200)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  data = load_data(args.seed)
  print(
    f"digits: {len(data[1])} train, {len(data[3])} test images; "
    f"{args.steps} steps of {args.batch_size}; jax "
    f"{jax.__version__} on {jax.devices()[0].platform}"
  )
  results = {}
  for name in args.attention.split(","):
    results[name] = train(
      name,
      data,
      steps=args.steps,
      batch_size=args.batch_size,
      lr=args.lr,
      dim=args.dim,
      heads=args.heads,
      num_features=args.num_features,
      seed=args.seed,
      eval_every=args.eval_every,
    )
  print(
    f"\n{'attention':10s} {'test accuracy':>14s} {'train time (s)':>15s} "
    f"{'ms/step':>8s}"
  )
  for name, r in results.items():
    print(
      f"{name:10s} {r['accuracy']:14.3f} {r['train_s']:15.1f} "
      f"{r['ms_per_step']:8.2f}"
    )
  return results


if __name__ == "__main__":
  main(sys.argv[1:])
