r"""Joint training of f and h (the paper's "Ours") on the embedded synthetic corpus.

  python launch.py --config=configs/joint.py --workdir=/tmp/hl_jax/joint

The base Less-is-More config; every other Less-is-More config derives from it.
The config argument takes comma-separated words (configs/common.py's parser):
corpus=<duration_corpus config> (e.g. corpus=youtube_highlights, the real
corpus), weighting=<train.weighting> (ranking_d, ranking_em, detached, ...),
domain=<domain> (Ours-S); anything else is overridden with flags such as
`--config.train.num_steps=500`.
"""

import os

import ml_collections

from configs import common

DATA_ROOT = common.DATA_ROOT


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The base Less-is-More config; see the module docstring for `arg`."""
  config = common.base("less_is_more")

  config.corpus = ml_collections.ConfigDict()
  # Name of the duration_corpus BuilderConfig to train on (or of a custom
  # DurationCorpusConfig built into data_dir).
  config.corpus.builder_config = "synthetic"
  config.corpus.manual_dir = ""  # For the manifest / youtube_highlights configs.
  config.corpus.train_split = "train"
  config.corpus.eval_split = "val"  # Labelled split of the corpus; "" for none.
  config.corpus.domain = ""  # "": Ours-A (all domains); "dog": Ours-S for dog.
  # Video-level tags as the weak signal (hl_jax/data/tags.py): "" off; "dog":
  # every training video whose domain (or '|'-separated tags) holds "dog" is
  # preferred over every other video, and evaluation is on "dog" only.
  # tag_pairs="tag_duration" keeps only short tagged vs long untagged videos.
  config.corpus.tag = ""
  config.corpus.tag_pairs = "tag"  # tag | tag_duration
  # Share of the train split kept away from training (stable hash of the
  # video id, stratified by domain and bucket) and scored by the label-free
  # "heldout" evaluator, which picks results.json's "selected" step. In [0, 0.5).
  config.corpus.holdout_fraction = 0.0
  # Share of the training videos that trains (1: all). Below 1, the first
  # max(1, round(share * n)) videos of each (domain, duration bucket) stratum in
  # sha1(video id) order: a smaller share is inside any larger one (the
  # corpus-size study, experiments/corpus_size.py). In (0, 1].
  config.corpus.train_fraction = 1.0

  config.input = ml_collections.ConfigDict()
  config.input.table_segments = 131072  # Rows of the resident segment table.
  config.input.window_videos = 0  # Videos per window; 0: as many as fit.
  config.input.refill_every_steps = 1000  # When the corpus exceeds one window.
  config.input.max_segments_per_video = 64  # Longer videos are subsampled evenly.
  config.input.table_dtype = "float32"
  config.input.num_workers = 0  # Grain worker processes decoding videos.
  # Input shards (each with its own stream and table); 0: one per host.
  config.input.num_shards = 0
  config.input.shuffle_seed = 0
  # "domain": each short segment is paired with long segments of its own
  # domain (same window); "": with any long segment, as in the paper.
  config.input.pair_within = ""

  config.model = ml_collections.ConfigDict()
  config.model.scorer_hidden = (512, 128)
  config.model.weigher_hidden = (512, 128)
  config.model.dropout = 0.5
  # Dropout masks from random bytes (keep rounded to 1/256; 4x cheaper), or
  # "flax": flax.linen.Dropout, the masks of results made before 2026-11-25.
  config.model.dropout_masks = "bytes"
  config.model.dtype = "float32"  # Computation dtype; params stay float32.
  # (): f scores all features. ((start, end), ...): one MLP per column range of
  # the features, scores summed (late fusion of streams; one range: that
  # stream alone). E.g. ((0, 2048), (2048, 4096)) on i3d_rgb_flow_audio.
  config.model.streams = ()

  config.train.num_groups = 256  # m groups ...
  config.train.group_size = 8  # ... of n pairs: m * n pairs per step.
  # "random": a group's pairs are drawn independently (the paper). "video":
  # its n preferred segments come from one preferred video (a multiple-
  # instance bag, for video-level tags: the group's weights pick its segments).
  config.train.pair_groups = "random"
  config.train.num_steps = 2000
  config.train.margin = 1.0
  config.train.pair_loss = "hinge"  # hinge | logistic | softmax (rax).
  # How the pairs of a group are weighted (hl_jax/less_is_more/weightings.py):
  # "softmax" is the paper's joint model, softmax(h), which collapses onto one
  # satisfied pair; "ranking_d" (1/n) and "ranking_em" (EM posteriors) need no
  # h; detached | tempered | capped_simplex | self_paced cannot collapse
  # (RESULTS.md). The schedule keys apply to the latter.
  config.train.weighting = "softmax"
  config.train.weight_schedule_steps = 1000  # From near-uniform weights to the target.
  config.train.weight_temperature_start = 10.0  # tempered: T from this to 1.
  config.train.weight_entropy_bonus = 0.0  # tempered: entropy bonus in h's loss.
  config.train.valid_fraction = 0.5  # capped_simplex, self_paced: p, the kept share.
  config.train.optimizer = "adamw"  # adamw | sgd
  config.train.learning_rate = 1e-3
  config.train.momentum = 0.9  # sgd only.
  config.train.weight_decay = 5e-5
  config.train.on_nonfinite = "stop"  # stop | skip
  config.train.log_every = 100
  config.train.sync_every = 10

  config.em = ml_collections.ConfigDict()  # Ranking-EM only.
  config.em.prior_init = 0.5  # Initial valid-pair proportion p.
  config.em.prior_rate = 0.01  # Online M-step rate of p.

  config.checkpoint.every_steps = 500
  config.checkpoint.max_to_keep = 3

  config.eval.every_steps = 1000  # 0: only at the end.
  config.eval.random_seeds = 5
  config.eval.chunk_segments = 4096
  # Labelled benchmarks scored at every evaluation, a tuple of names from
  # ("youtube_highlights", "tvsum"). Their raw data is <data_root>/<name>.
  # From the command line: --config.eval.benchmarks="('tvsum',)".
  config.eval.benchmarks = ()
  config.eval.benchmark_split = "val"
  config.eval.feature_set = "i3d_rgb"  # Must give the corpus's feature dim.

  common.parse_arg(
      arg,
      {
          "corpus": lambda value: set_corpus(config, value),
          "weighting": lambda value: setattr(config.train, "weighting", value),
          "domain": lambda value: setattr(config.corpus, "domain", value),
          "variant": _variant_was_replaced,
      },
      "configs/joint.py",
  )
  return config


def _variant_was_replaced(value: str) -> None:
  raise ValueError(
      f"config argument variant={value} was replaced by weighting=: "
      "Ranking-D and Ranking-EM are pair weightings now "
      "(configs/joint.py:weighting=ranking_d, or configs/ranking_d.py)"
  )


# Real corpora: (manual_dir under DATA_ROOT, evaluated benchmarks, train.num_groups,
# train.num_steps, evaluation and checkpoint interval). YTH: its 234 train videos,
# duration-bucketed, unlabelled (~5 min on 2 CPU cores), evaluated on YTH and TVSum val.
# TVSum: its 40 train videos (domain: category), for video-level tags
# (corpus.tag=<category>), evaluated on TVSum val.
_REAL_CORPORA = {
    "youtube_highlights": ("youtube_highlights", ("youtube_highlights", "tvsum"), 128, 600, 200),
    "tvsum": ("tvsum", ("tvsum",), 64, 200, 50),
}


def set_corpus(config: ml_collections.ConfigDict, name: str) -> None:
  """Selects a training corpus and the evaluation that goes with it."""
  config.corpus.builder_config = name
  real = next((k for k in _REAL_CORPORA if name.startswith(k)), None)
  if real is None:
    return
  folder, benchmarks, groups, steps, every = _REAL_CORPORA[real]
  config.corpus.manual_dir = os.path.join(config.data_root, folder)
  config.corpus.eval_split = ""  # Unlabelled; the benchmarks are the evaluation.
  config.eval.benchmarks = benchmarks
  # The benchmarks' features of the corpus's width (its name's suffix).
  config.eval.feature_set = next(
      f
      for f in ("i3d_rgb_flow_audio", "i3d_rgb_flow", "i3d_rgb")
      if name.endswith(f[3:]) or f == "i3d_rgb"
  )
  config.train.num_groups, config.train.num_steps = groups, steps
  config.train.weight_schedule_steps = steps // 2
  config.eval.every_steps = config.checkpoint.every_steps = every
