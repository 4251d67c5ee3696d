r"""TaoHighlight trained with labels on TVSum or YouTube Highlights.

  python launch.py --config=configs/taohighlight.py --workdir=/tmp/hl_jax/tao
  python launch.py --config=configs/taohighlight.py:benchmark=youtube_highlights \
    --workdir=/tmp/hl_jax/tao_yth
  python launch.py --config=configs/taohighlight.py:benchmark=tvsum,no_graph --workdir=...

The config argument takes comma-separated words (configs/common.py's parser):
benchmark=tvsum|youtube_highlights, group=<category or domain> (train and
evaluate on that group only), tiny (tests), and the ablations no_text
(model.use_text False), no_graph (model.use_graph False) and no_ag (loss.w_ag
0: "w/o L_ag"). Anything else: flags such as --config.train.num_steps=500 or
--config.data_dir=/tmp/hl_jax_ws/tfds.

The co-attention's context: TVSum videos have a title, whose CLIP tokens [L, 512]
the video attends to (model.context "text"). YouTube Highlights has no text, so
there the video attends to its own per-clip PANN audio features (features
[:, 2048:] of i3d_rgb_flow_audio; model.context "audio"). The visual stream is
features[:, :model.visual_dim] (I3D rgb + flow) either way.

Hyper-parameters are chosen with cv_folds / cv_fold (a fold of the train videos
is evaluated instead of the benchmark's val split), never on val.
"""

import ml_collections

from configs import common

BENCHMARKS = ("tvsum", "youtube_highlights")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The TaoHighlight config; see the module docstring for `arg`."""
  config = common.base("taohighlight")
  config.benchmark = "tvsum"
  config.feature_set = "i3d_rgb_flow_audio"
  config.group = ""  # "": all groups at once; else one category / domain.
  # 0: every train video of each group; N: the first N per group in
  # sha1(video_id) order (the weak-to-strong curve).
  config.num_labelled = 0
  # k-fold split of the train videos, stratified by group; fold cv_fold is
  # evaluated instead of the val split. 0: off.
  config.cv_folds = 0
  config.cv_fold = 0

  config.model = ml_collections.ConfigDict()
  # "taohighlight", or a plain baseline with the same inputs and outputs
  # (hl_jax/taohighlight/baselines.py; configs/saliency_baseline.py).
  config.model.kind = "taohighlight"
  config.model.layers = 2  # model.kind "transformer" only: encoder blocks.
  config.model.hidden = 128
  config.model.heads = 4
  config.model.k = 8
  config.model.use_text = True
  config.model.use_graph = True
  config.model.dropout = 0.1
  config.model.temperature = 0.1
  config.model.context = "text"  # "text" (TVSum titles) | "audio" (YTH: no text).
  config.model.visual_dim = 2048  # features[:, :visual_dim] visual, the rest audio.

  config.loss = ml_collections.ConfigDict()
  config.loss.segment_length = 8  # Clips: 8 TVSum 2-s shots = 16 s; YTH 4.
  config.loss.thetas = (1.0, -1.0, 1.0)  # (theta_r, theta_d, theta_s) of L_ag.
  config.loss.w_ag = 1.0  # 0: the "w/o L_ag" ablation.
  config.loss.w_sal = 1.0
  config.loss.w_reg = 1.0
  # L_reg per video length ("video": start/end as fractions) or in clips.
  config.loss.reg_scale = "video"

  config.train.batch_size = 8  # Videos per step; a multiple of the device count.
  # False: every batch padded to the longest video of the run (one compiled step);
  # True: to the next power of two >= its own longest video (a few compiled
  # steps, far less padding: the same model, another dropout stream).
  config.train.pad_per_batch = False
  config.train.num_steps = 300
  config.train.learning_rate = 1e-3
  config.train.weight_decay = 1e-4
  config.train.log_every = 25
  config.eval.every_steps = 100  # 0: only at the end.
  config.checkpoint.every_steps = 100

  # A workdir with a per-segment scorer (Less-is-More): its per-clip score,
  # z-normalised per video, becomes one extra visual channel ("feed"). "": off.
  config.weak = ml_collections.ConfigDict()
  config.weak.workdir = ""

  common.parse_arg(
      arg,
      {
          "benchmark": lambda value: set_benchmark(config, value),
          "group": lambda value: setattr(config, "group", value),
          "tiny": lambda _: _tiny(config),
          "no_text": lambda _: setattr(config.model, "use_text", False),
          "no_graph": lambda _: setattr(config.model, "use_graph", False),
          "no_ag": lambda _: setattr(config.loss, "w_ag", 0.0),
      },
      "configs/taohighlight.py",
  )
  return config


def _tiny(config: ml_collections.ConfigDict) -> None:
  config.model.hidden, config.model.heads, config.model.k = 16, 2, 4
  config.train.batch_size, config.train.num_steps = 4, 4
  config.train.log_every, config.eval.every_steps = 2, 0
  config.checkpoint.every_steps = 2


def set_benchmark(config: ml_collections.ConfigDict, name: str) -> None:
  """Selects a benchmark and the context and segment length that go with it."""
  if name not in BENCHMARKS:
    raise ValueError(f"benchmark={name!r} must be one of {BENCHMARKS}")
  config.benchmark = name
  config.model.context = "text" if name == "tvsum" else "audio"
  config.loss.segment_length = 8 if name == "tvsum" else 4
