"""Small array operations that more than one model family uses."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def masked_softmax(logits: jnp.ndarray, keep: jnp.ndarray) -> jnp.ndarray:
  """Softmax over the kept entries of the last axis; all-zero rows where none is kept."""
  logits = jnp.where(keep, logits.astype(jnp.float32), -jnp.inf)
  top = jnp.max(logits, axis=-1, keepdims=True)
  top = jnp.where(jnp.isfinite(top), top, 0.0)
  e = jnp.where(keep, jnp.exp(logits - jax.lax.stop_gradient(top)), 0.0)
  return e / jnp.maximum(jnp.sum(e, axis=-1, keepdims=True), 1e-30)


def cosine(x: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
  """Cosine similarity of [..., N, H] and [..., M, H] -> [..., N, M]."""
  # rsqrt of a clamped square: the norm's gradient is NaN at masked (zero) rows.
  x = x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, -1, keepdims=True), 1e-12))
  y = y * jax.lax.rsqrt(jnp.maximum(jnp.sum(y * y, -1, keepdims=True), 1e-12))
  return jnp.einsum("...nh,...mh->...nm", x, y)
