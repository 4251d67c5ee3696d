"""Plain supervised saliency scorers: what TaoHighlight's parts add over a per-clip model.

Both read the same per-clip features as TaoHighlight ([B, T, Dv] with a prefix
mask) and return the same outputs, so the trainer, the losses and the
evaluation are shared; they are trained with the saliency loss alone
(`loss.w_ag = loss.w_reg = 0`, checked by hl_jax/taohighlight/schema.py), as
UMT's saliency head is (BCE on per-clip targets in [0, 1]).

  mlp:          LayerNorm -> Dense(H) -> ReLU -> dropout -> Dense(1), per clip
                (no context: each clip is scored alone).
  transformer:  LayerNorm -> Dense(H) + sinusoidal positions -> `layers`
                pre-LN encoder blocks (self-attention over the valid clips,
                MLP 4H) -> LayerNorm -> Dense(1).

The input LayerNorm stands in for lighthouse's L2 normalisation of clip
features: the staged features' scale differs by stream (I3D vs PANN audio).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from hl_jax.taohighlight import network


def _outputs(logits: jnp.ndarray, features: jnp.ndarray, mask: jnp.ndarray, k: int) -> dict:
  """TaoHighlight's output dict from per-clip logits [B, T] and features [B, T, H].

  The start / end logits are the saliency logits (a segment starts at the most
  salient clip); top_idx / top_valid are the top-k clips by saliency.
  """
  saliency = jnp.where(mask, logits, network.NEG)
  _, top_idx = jax.lax.top_k(saliency, min(k, logits.shape[1]))
  return {
      "saliency": saliency,
      "start_logits": saliency,
      "end_logits": saliency,
      "features": features * mask[..., None],
      "top_idx": top_idx,
      "top_valid": jnp.take_along_axis(mask, top_idx, axis=1),
  }


class PerClipScorer(nn.Module):
  """TaoHighlight's call and outputs over a per-clip encoder: one logit per clip.

  A subclass defines `encode(visual, mask, train) -> [B, T, H]` (visual zeroed
  past each video's end) and the fields `k` (clips in top_idx) and `hidden`.
  """

  @nn.compact
  def __call__(
      self,
      visual: jnp.ndarray,
      visual_mask: jnp.ndarray,
      text: jnp.ndarray | None = None,
      text_mask: jnp.ndarray | None = None,
      train: bool = False,
      audio: jnp.ndarray | None = None,
  ) -> dict[str, jnp.ndarray]:
    """visual [B, T, Dv], visual_mask [B, T] -> TaoHighlight's outputs (text, audio unused)."""
    del text, text_mask, audio
    mask = visual_mask.astype(bool)
    x = self.encode(jnp.where(mask[..., None], visual, 0.0), mask, train)
    return _outputs(nn.Dense(1)(x)[..., 0], x, mask, self.k)


class SaliencyMLP(PerClipScorer):
  """Each clip scored alone by a one-hidden-layer MLP.

  Attributes:
    hidden: H.
    dropout: dropout rate after the hidden layer.
    k: clips in top_idx.
  """

  hidden: int = 128
  dropout: float = 0.1
  k: int = 8

  def encode(self, visual: jnp.ndarray, mask: jnp.ndarray, train: bool) -> jnp.ndarray:
    x = nn.relu(nn.Dense(self.hidden)(nn.LayerNorm()(visual)))
    return nn.Dropout(self.dropout, deterministic=not train)(x)


def sinusoidal(length: int, width: int) -> np.ndarray:
  """[length, width] float32 sine / cosine positions (Vaswani et al.); width even."""
  position = np.arange(length)[:, None]
  rate = np.exp(-np.log(10000.0) * np.arange(0, width, 2) / width)[None, :]
  out = np.zeros((length, width), np.float32)
  out[:, 0::2], out[:, 1::2] = np.sin(position * rate), np.cos(position * rate)
  return out


class SaliencyTransformer(PerClipScorer):
  """A small transformer encoder over the clip sequence, one logit per clip.

  Attributes:
    hidden: H (even).
    heads: attention heads.
    layers: encoder blocks.
    dropout: dropout rate on attention weights and block outputs.
    k: clips in top_idx.
  """

  hidden: int = 128
  heads: int = 4
  layers: int = 2
  dropout: float = 0.1
  k: int = 8

  def encode(self, visual: jnp.ndarray, mask: jnp.ndarray, train: bool) -> jnp.ndarray:
    if self.hidden % 2:
      raise ValueError(f"hidden={self.hidden} must be even (sine / cosine positions)")
    drop = nn.Dropout(self.dropout, deterministic=not train)
    x = nn.Dense(self.hidden)(nn.LayerNorm()(visual))
    x = x + sinusoidal(visual.shape[1], self.hidden)[None]
    attention_mask = nn.make_attention_mask(mask, mask)  # [B, 1, T, T]: valid keys only.
    for _ in range(self.layers):
      y = nn.MultiHeadDotProductAttention(
          self.heads, dropout_rate=self.dropout, deterministic=not train
      )(nn.LayerNorm()(x), mask=attention_mask)
      x = x + drop(y)
      y = nn.Dense(self.hidden)(nn.gelu(nn.Dense(4 * self.hidden)(nn.LayerNorm()(x))))
      x = x + drop(y)
    return nn.LayerNorm()(x) * mask[..., None]


# config.model.kind -> the network, from the config.model keys it reads.
BUILDERS = {
    "mlp": lambda model: SaliencyMLP(model["hidden"], model["dropout"], model["k"]),
    "transformer": lambda model: SaliencyTransformer(
        model["hidden"], model["heads"], model["layers"], model["dropout"], model["k"]
    ),
}
KINDS = ("taohighlight", *BUILDERS)  # config.model.kind
