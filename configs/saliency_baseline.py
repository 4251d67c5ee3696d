r"""A plain supervised saliency scorer: configs/taohighlight.py with a baseline network.

  python launch.py --config=configs/saliency_baseline.py:benchmark=tvsum,kind=mlp \
      --workdir=/tmp/hl_jax/mlp_tvsum
  python launch.py --config=configs/saliency_baseline.py:benchmark=youtube_highlights,kind=transformer \
      --workdir=/tmp/hl_jax/transformer_yth

The same inputs, targets, trainer and evaluation as TaoHighlight, so that a
comparison separates what TaoHighlight's parts add: a per-clip MLP (kind=mlp,
the default) or a small transformer encoder over the clip sequence
(kind=transformer), hl_jax/taohighlight/baselines.py. Both see every column of
the i3d_rgb_flow_audio features (I3D rgb + flow and PANN audio:
model.visual_dim 4096) and no title, and train the saliency loss alone
(sigmoid BCE on match > 0 for YouTube Highlights, on (sum of the 20 annotator
scores - 20) / 80 for TVSum: hl_jax/taohighlight/targets.py), as UMT's saliency
head does. The config argument takes configs/taohighlight.py's words
(benchmark=, group=, tiny) and kind=mlp|transformer.
"""

import ml_collections

from configs import taohighlight

KINDS = ("mlp", "transformer")  # hl_jax/taohighlight/baselines.py's networks.


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """configs/taohighlight.py's config with a baseline network; see the docstring."""
  words = [w for w in (arg or "").split(",") if w]
  kinds = [w.partition("=")[2] for w in words if w.startswith("kind=")]
  config = taohighlight.get_config(",".join(w for w in words if not w.startswith("kind=")))
  kind = kinds[-1] if kinds else "mlp"
  if kind not in KINDS:
    raise ValueError(f"kind={kind!r} in configs/saliency_baseline.py:{arg}; one of {list(KINDS)}")
  config.model.kind = kind
  config.model.visual_dim = 4096  # Every column: rgb + flow + audio.
  config.model.use_text = False  # No title, no second stream: the features alone.
  config.model.use_graph = False
  config.loss.w_ag = config.loss.w_reg = 0.0  # The saliency loss alone.
  return config
