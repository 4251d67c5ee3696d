r"""TaoHighlight trained with labels on TVSum or YouTube Highlights (hl_jax/tao_train.py).

  python -m hl_jax.tao_train --config=configs/taohighlight.py --workdir=/tmp/hl_jax/tao
  python -m hl_jax.tao_train --config=configs/taohighlight.py:benchmark=youtube_highlights \
    --workdir=/tmp/hl_jax/tao_yth
  python launch.py --config=configs/taohighlight.py:benchmark=tvsum,no_graph --workdir=...

The config argument takes comma-separated words: benchmark=tvsum|youtube_highlights,
group=<category or domain> (train and evaluate on that group only), tiny (tests),
and the ablations no_text (model.use_text False), no_graph (model.use_graph False)
and no_ag (loss.w_ag 0: "w/o L_ag"). Anything else: flags such as
--config.train.num_steps=500 or --config.data_dir=/tmp/hl_jax_ws/tfds.

The co-attention's context: TVSum videos have a title, whose CLIP tokens [L, 512]
the video attends to (model.context "text"). YouTube Highlights has no text, so
there the video attends to its own per-clip PANN audio features (features
[:, 2048:] of i3d_rgb_flow_audio; model.context "audio"). The visual stream is
features[:, :model.visual_dim] (I3D rgb + flow) either way.

Hyper-parameters are chosen with cv_folds / cv_fold (a fold of the train videos
is evaluated instead of the benchmark's val split), never on val.
"""

import ml_collections

from configs import joint

BENCHMARKS = ("tvsum", "youtube_highlights")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The TaoHighlight config; see the module docstring for `arg`."""
  config = ml_collections.ConfigDict()
  config.model_family = "taohighlight"  # launch.py dispatches on it.
  config.seed = 0
  config.benchmark = "tvsum"
  config.feature_set = "i3d_rgb_flow_audio"
  config.data_root = joint.DATA_ROOT  # Raw data: <data_root>/<benchmark>.
  config.data_dir = ""  # TFDS data_dir; "" is TFDS's default.
  config.group = ""  # "": all groups at once; else one category / domain.
  # 0: every train video of each group; N: the first N per group in
  # sha1(video_id) order (the weak-to-strong curve).
  config.num_labelled = 0
  # k-fold split of the train videos, stratified by group; fold cv_fold is
  # evaluated instead of the val split. 0: off.
  config.cv_folds = 0
  config.cv_fold = 0
  config.distributed = ml_collections.ConfigDict()  # As configs/joint.py.
  config.distributed.initialize = False
  config.distributed.coordinator_address = ""
  config.distributed.num_processes = 0
  config.distributed.process_id = -1

  config.model = ml_collections.ConfigDict()
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

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = 8  # Videos per step; a multiple of the device count.
  config.train.num_steps = 300
  config.train.learning_rate = 1e-3
  config.train.weight_decay = 1e-4
  config.train.log_every = 25
  config.train.eval_every = 100  # 0: only at the end.

  config.checkpoint = ml_collections.ConfigDict()
  config.checkpoint.every_steps = 100
  config.checkpoint.max_to_keep = 3
  # Resuming a workdir with a config that changes more than RESUMABLE_KEYS of
  # hl_jax/tao_train.py is refused unless this is True.
  config.checkpoint.allow_changed_config = False

  # A Less-is-More workdir: its scorer f's per-clip score, z-normalised per
  # video, becomes one extra visual channel ("feed"). "": off.
  config.weak = ml_collections.ConfigDict()
  config.weak.workdir = ""

  for item in (arg.split(",") if arg else []):
    key, _, value = item.partition("=")
    if key == "benchmark":
      set_benchmark(config, value)
    elif key == "group":
      config.group = value
    elif key == "tiny":
      config.model.hidden, config.model.heads, config.model.k = 16, 2, 4
      config.train.batch_size, config.train.num_steps = 4, 4
      config.train.log_every, config.train.eval_every = 2, 0
      config.checkpoint.every_steps = 2
    elif key == "no_text":
      config.model.use_text = False
    elif key == "no_graph":
      config.model.use_graph = False
    elif key == "no_ag":
      config.loss.w_ag = 0.0
    else:
      raise ValueError(f"unknown config argument {key!r} in {arg!r}")
  return config


def set_benchmark(config: ml_collections.ConfigDict, name: str) -> None:
  """Selects a benchmark and the context and segment length that go with it."""
  if name not in BENCHMARKS:
    raise ValueError(f"benchmark={name!r} must be one of {BENCHMARKS}")
  config.benchmark = name
  config.model.context = "text" if name == "tvsum" else "audio"
  config.loss.segment_length = 8 if name == "tvsum" else 4
