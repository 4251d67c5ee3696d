"""TaoHighlight (Taobao 2021): supervised multimodal highlight detection.

Modelled: per-clip visual features -> BiGRU; text tokens -> QFGA (a cosine
token graph, GCN, query-focused aggregation); a co-attention where the video
attends to the text; graph fine-tuning (a GCN over the top-k scored clips);
heads for per-clip saliency and start/end logits; the losses L_reg (L1 on
start/end) and L_ag (alignment of the top-k candidates with the true segment);
decoding a fixed-length segment from the start logits; training targets for
TVSum / YouTube Highlights and IoU metrics.

Choices where the article is silent (all configurable where they are numbers):
  * BiGRU: H/2 units per direction, concatenated to H; masks must be a prefix
    (valid clips first), because the reversed GRU starts at seq_lengths - 1.
  * Graphs: adjacency = softmax over valid nodes of cosine / temperature (0.1
    by default: cosines in [-1, 1] give a near-uniform softmax otherwise). The
    GCN layers are residual, x + relu(A x W), so a node keeps its identity.
  * QFGA: two GCN layers; the query is the projected masked-mean visual
    feature; the query-focused summary sum_l alpha_l x_l is added to every
    token, and all tokens go to the co-attention.
  * Graph fine-tuning: the GCN output is added to the features of the top-k
    clips and every clip is re-scored by the same Dense scorer, so clips
    outside the top-k keep the plain score. Start/end logits and saliency
    come from the refined features.
  * end_logits point at the segment's last clip; its expected position + 1 is
    the half-open end. L_ag uses e exactly as written: theta_d multiplies
    +distance, so pass theta_d < 0 for the distance to be a penalty (default
    -1). The IoU and distance terms have no gradient (top-k indices are
    discrete); only the cosine term trains the features. Segment features
    are the mean features of their clips.
  * L_reg is divided by the video's length by default (reg_scale "video"):
    in clips, on videos of ~100-400 clips, it is two orders of magnitude
    above the other terms and saliency is barely trained.
  * Saliency loss: sigmoid binary cross-entropy on targets in [0, 1], mean
    over the valid clips (a pointwise loss that mAP's ranking can use).
  * A second per-clip stream (audio, [B, T, Da]) may replace text as the
    co-attention's keys/values (context="audio").
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from hl_jax.core import ops

NEG = -1e9  # Logit of a masked clip: -inf-safe in softmax, BCE and top_k.


CONTEXTS = ("text", "audio")


class GCN(nn.Module):
  """Residual graph convolutions x <- x + relu(A x W) on a cosine graph.

  Attributes:
    layers: number of graph convolutions.
    temperature: the adjacency is softmax(cos / temperature) over valid nodes.
  """

  layers: int = 2
  temperature: float = 0.1

  @nn.compact
  def __call__(self, x: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    """[B, N, H] nodes with [B, N] mask -> [B, N, H] (masked nodes zero)."""
    keep = jnp.broadcast_to(mask[:, None, :], mask.shape + mask.shape[-1:])
    adj = ops.masked_softmax(ops.cosine(x, x) / self.temperature, keep)
    for _ in range(self.layers):
      x = x + nn.relu(adj @ nn.Dense(x.shape[-1])(x))
    return x * mask[..., None]


class VisualStream(nn.Module):
  """Bidirectional GRU over clip features, [B, T, Dv] -> [B, T, H]."""

  hidden: int

  @nn.compact
  def __call__(self, visual: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    if self.hidden % 2:
      raise ValueError(f"hidden={self.hidden} must be even (H/2 per direction)")
    visual = jnp.where(mask[..., None], visual, 0.0)
    lengths = jnp.sum(mask, axis=-1).astype(jnp.int32)
    gru = nn.Bidirectional(
        nn.RNN(nn.GRUCell(self.hidden // 2, name="forward")),
        nn.RNN(nn.GRUCell(self.hidden // 2, name="backward")),
    )
    return gru(visual, seq_lengths=lengths) * mask[..., None]


class QFGA(nn.Module):
  """Query-focused graph aggregation of text tokens.

  Attributes:
    hidden: H.
    temperature: the token graph's softmax temperature.
  """

  hidden: int
  temperature: float = 0.1

  @nn.compact
  def __call__(
      self, text: jnp.ndarray, mask: jnp.ndarray, query: jnp.ndarray
  ) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Tokens [B, L, Dt], mask [B, L], query [B, H].

    Returns:
      tokens [B, L, H] (each plus the query-focused summary; masked zero) and
      alpha [B, L], the query's attention over valid tokens (sums to 1).
    """
    x = nn.Dense(self.hidden)(jnp.where(mask[..., None], text, 0.0))
    x = GCN(2, self.temperature)(x, mask)
    logits = jnp.einsum("blh,bh->bl", x, nn.Dense(self.hidden)(query))
    alpha = ops.masked_softmax(logits / np.sqrt(self.hidden), mask)
    summary = jnp.einsum("bl,blh->bh", alpha, x)
    return (x + summary[:, None, :]) * mask[..., None], alpha


class CoAttention(nn.Module):
  """The video attends to a context: LayerNorm(v + MHA(v, context)).

  Attributes:
    heads: attention heads.
    dropout: dropout rate on the attention weights and output.
  """

  heads: int
  dropout: float = 0.0

  @nn.compact
  def __call__(
      self,
      visual: jnp.ndarray,
      context: jnp.ndarray | None,
      context_mask: jnp.ndarray | None,
      train: bool = False,
  ) -> jnp.ndarray:
    """visual [B, T, H], context [B, S, H] with mask [B, S] -> [B, T, H].

    context None gives the visual features unchanged (the "w/o text" ablation).
    """
    if context is None:
      return visual
    attend = nn.MultiHeadDotProductAttention(
        self.heads,
        qkv_features=visual.shape[-1],
        dropout_rate=self.dropout,
        deterministic=not train,
    )
    out = attend(visual, context, mask=context_mask[:, None, None, :])
    # A video with no valid key would average masked values: give it nothing.
    out = out * jnp.any(context_mask, axis=-1)[:, None, None]
    out = nn.Dropout(self.dropout, deterministic=not train)(out)
    return nn.LayerNorm()(visual + out)


class GraphFineTune(nn.Module):
  """Scores clips, refines the top-k on a clip graph, re-scores.

  Attributes:
    k: clips in the graph (min(k, T) are taken; masked picks are flagged).
    use_graph: False gives the plain scorer (the "w/o graph" ablation).
    temperature: the clip graph's softmax temperature.
  """

  k: int
  use_graph: bool = True
  temperature: float = 0.1

  @nn.compact
  def __call__(self, feats: jnp.ndarray, mask: jnp.ndarray) -> dict[str, jnp.ndarray]:
    """feats [B, T, H], mask [B, T].

    Returns:
      logits [B, T] (masked clips NEG), features [B, T, H] (refined),
      top_idx [B, k'] int32 the top-k' clips by plain score (k' = min(k, T)),
      top_valid [B, k'] whether each pick is a valid clip.
    """
    scorer = nn.Dense(1, name="scorer")
    plain = jnp.where(mask, scorer(feats)[..., 0], -jnp.inf)
    _, top_idx = jax.lax.top_k(plain, min(self.k, feats.shape[1]))
    top_valid = jnp.take_along_axis(mask, top_idx, axis=1)
    if self.use_graph:
      picked = jnp.take_along_axis(feats, top_idx[..., None], axis=1)
      delta = GCN(2, self.temperature)(picked, top_valid) - picked * top_valid[..., None]
      # Scatter back as a one-hot product: static shapes, picks are distinct.
      onehot = jax.nn.one_hot(top_idx, feats.shape[1]) * top_valid[..., None]
      feats = feats + jnp.einsum("bkt,bkh->bth", onehot, delta)
    logits = jnp.where(mask, scorer(feats)[..., 0], NEG)
    return {"logits": logits, "features": feats, "top_idx": top_idx, "top_valid": top_valid}


class TaoHighlight(nn.Module):
  """The full model.

  Attributes:
    hidden: H.
    heads: co-attention heads.
    k: clips in the fine-tuning graph (and L_ag candidates).
    use_text: False ignores text/audio (the "w/o text" ablation).
    use_graph: False skips graph fine-tuning.
    dropout: dropout rate.
    context: "text" (QFGA tokens) or "audio" (per-clip, [B, T, Da]) as keys.
    temperature: the graphs' softmax temperature.
  """

  hidden: int = 128
  heads: int = 4
  k: int = 8
  use_text: bool = True
  use_graph: bool = True
  dropout: float = 0.1
  context: str = "text"
  temperature: float = 0.1

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
    """visual [B, T, Dv], visual_mask [B, T] (bool, a prefix), text [B, L, Dt]
    with text_mask [B, L], or audio [B, T, Da].

    Returns:
      saliency, start_logits, end_logits [B, T] (masked clips NEG), and the
      graph stage's features [B, T, H], top_idx and top_valid [B, k'].
    """
    if self.context not in CONTEXTS:
      raise ValueError(f"context={self.context!r} is unknown; one of {CONTEXTS}")
    mask = visual_mask.astype(bool)
    v = VisualStream(self.hidden)(visual, mask)
    context, context_mask = None, None
    if self.use_text and self.context == "text" and text is not None:
      if text_mask is None:
        text_mask = jnp.ones(text.shape[:2], bool)
      count = jnp.maximum(jnp.sum(mask, -1, keepdims=True), 1)
      query = nn.Dense(self.hidden)(jnp.sum(v, axis=1) / count)
      context, _ = QFGA(self.hidden, self.temperature)(text, text_mask.astype(bool), query)
      context_mask = text_mask.astype(bool)
    elif self.use_text and self.context == "audio" and audio is not None:
      context = nn.Dense(self.hidden)(jnp.where(mask[..., None], audio, 0.0))
      context_mask = mask
    fused = CoAttention(self.heads, self.dropout)(v, context, context_mask, train)
    fused = nn.Dropout(self.dropout, deterministic=not train)(fused) * mask[..., None]
    graph = GraphFineTune(self.k, self.use_graph, self.temperature)(fused, mask)
    bounds = nn.Dense(2, name="boundaries")(graph["features"])
    bounds = jnp.where(mask[..., None], bounds, NEG)
    return {
        "saliency": graph["logits"],
        "start_logits": bounds[..., 0],
        "end_logits": bounds[..., 1],
        "features": graph["features"],
        "top_idx": graph["top_idx"],
        "top_valid": graph["top_valid"],
    }
