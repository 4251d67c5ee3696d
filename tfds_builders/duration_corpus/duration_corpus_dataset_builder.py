"""duration_corpus: per-video segment features bucketed by a weak signal.

The weak supervision of "Less is More" (Xiong et al., CVPR 2019): segments of
SHORT user videos should score above segments of LONG ones. One example per
video: its segment features, its duration and its bucket. Bucket 'short' is
the PREFERRED side and 'long' the less preferred side of the weak signal: the
duration by default, or any per-video manifest column (CTR, GMV, viewers), or
a per-segment signal that splits each video in two (see README.md).

Configs:
  synthetic (default): an embedded corpus drawn from a seeded generative model
    (see `synthetic.py` and README.md), no files needed. Splits `train`
    (unlabelled, labels all -1) and `val` (per-segment 0/1 ground truth).
  synthetic_tiny: the same model, D=16, 60 train / 12 val videos, for tests.
  manifest: your own corpus, `manifest.csv` / `manifest.jsonl` in manual_dir
    (video_id, duration_s, feature_path, optional domain). Split `train`.
  manifest_ctr: the same, bucketed by per-domain thirds of a `ctr` column,
    higher is better (the top third is 'short' = preferred).
  manifest_segment_signal: the same, each video split by its per-segment
    signal file (column `segment_signal`, higher is better) into `<vid>#hi`
    ('short') and `<vid>#lo` ('long') pseudo-videos.
  youtube_highlights / youtube_highlights_rgb_flow /
    youtube_highlights_rgb_flow_audio: the YouTube Highlights TRAIN videos
    (labels dropped) with I3D rgb (1024-d), rgb+flow (2048-d) or rgb+flow+PANN
    audio (4096-d) features, bucketed by per-domain duration quantiles. Split
    `train`.
  tvsum / tvsum_rgb_flow_audio: the 40 TVSum TRAIN videos the same way (domain:
    the category), for video-level tags (`corpus.tag` in configs/joint.py).

Build without TensorFlow (array_record), from the repository root:

  python -c "from tfds_builders.duration_corpus import get_builder; \
      get_builder('synthetic', data_dir='/tmp/tfds')"
  python -c "from tfds_builders.duration_corpus import get_builder; \
      get_builder('youtube_highlights', '/tmp/tfds', \
                  manual_dir='/path/to/youtube_highlights')"

(`tfds build tfds_builders/duration_corpus --config=synthetic` also works
where TensorFlow is installed.) Manifest corpora also build as an Apache Beam
pipeline (DirectRunner, Dataflow, Flink, Spark) when `get_builder` gets
`beam_runner` / `beam_options`, or with `python -m tfds_builders.build
duration_corpus/<config> --beam_options=...`: see WORKSPACE.md, "Building a
manifest corpus of millions of videos (Apache Beam)".
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any

from absl import logging
import numpy as np
import tensorflow_datasets as tfds

from tfds_builders.duration_corpus import file_writer
from tfds_builders.duration_corpus import readers
from tfds_builders.duration_corpus import synthetic
from tfds_builders.duration_corpus import video_examples

SOURCES = ('synthetic', 'manifest', 'youtube_highlights', 'tvsum')
# 'duration' is the historical name of 'threshold' (fixed cuts on the signal).
THRESHOLD_BUCKETINGS = ('threshold', 'duration')
BUCKETINGS = THRESHOLD_BUCKETINGS + ('domain_quantile', 'video_quantile')
DIRECTIONS = (video_examples.LOWER_IS_BETTER, video_examples.HIGHER_IS_BETTER)
PLAN_NAME = 'beam_manifest_plan.jsonl'


@dataclasses.dataclass(eq=False, kw_only=True)
class DurationCorpusConfig(tfds.core.BuilderConfig):
  """BuilderConfig of duration_corpus.

  Bucket 'short' (0) is always the PREFERRED side of the signal and 'long' (1)
  the less preferred side, whatever the signal: the trainer pairs 'short'
  segments (should score higher) with 'long' ones.

  Attributes:
    source: 'synthetic', 'manifest', 'youtube_highlights' or 'tvsum'.
    feature_dim: D, the width of `features`.
    short_max_s: threshold bucketing: the LOW cut, in the signal's units
      (seconds for duration_s). Values < short_max_s are the low side.
    long_min_s: threshold bucketing: the HIGH cut; values > long_min_s are the
      high side. The low side is 'short' when lower is better (duration), the
      high side is 'short' when higher is better (CTR); the middle is 'rest'.
    bucketing: 'threshold' (cuts above; 'duration' is its historical name),
      'domain_quantile' (per domain, videos ranked by preference, ties by
      video_id: the floor(n * short_quantile) most preferred are 'short', the
      floor(n * (1 - long_quantile)) least preferred 'long') or
      'video_quantile' (with segment_signal: the same quantiles over the
      segments of each video).
    short_quantile: see bucketing.
    long_quantile: see bucketing.
    signal: manifest source: the column holding the per-video weak signal
      (finite numbers). Other sources only have 'duration_s'.
    signal_direction: 'lower_is_better' (duration) or 'higher_is_better'
      (CTR, GMV, viewers).
    segment_signal: manifest source: '' or the column holding each video's
      per-segment signal file (.npy [T], or .npz key 'signal'); needs
      bucketing='video_quantile'. Each video then gives a '<vid>#hi' ('short')
      and a '<vid>#lo' ('long') example with pair_group <vid>.
    feature_root: youtube_highlights, tvsum: feature folder inside manual_dir.
    feature_sets: youtube_highlights, tvsum: feature sets, concatenated per clip.
    synthetic: parameters of the synthetic generator.
  """

  source: str = 'synthetic'
  feature_dim: int = 128
  short_max_s: float = 15.0
  long_min_s: float = 45.0
  bucketing: str = 'duration'
  short_quantile: float = 1 / 3
  long_quantile: float = 2 / 3
  signal: str = readers.DURATION
  signal_direction: str = video_examples.LOWER_IS_BETTER
  segment_signal: str = ''
  feature_root: str = 'features_umt_f16'
  feature_sets: tuple[str, ...] = ('i3d_rgb',)
  synthetic: synthetic.SyntheticParams = dataclasses.field(
      default_factory=synthetic.SyntheticParams
  )

  def __post_init__(self):
    if self.source not in SOURCES:
      raise ValueError(f'config {self.name}: source {self.source!r} not in {SOURCES}')
    if self.bucketing not in BUCKETINGS:
      raise ValueError(f'config {self.name}: bucketing {self.bucketing!r} not in {BUCKETINGS}')
    if self.feature_dim <= 0:
      raise ValueError(f'config {self.name}: feature_dim must be > 0')
    if not self.short_max_s <= self.long_min_s:
      raise ValueError(f'config {self.name}: short_max_s > long_min_s')
    if not 0 <= self.short_quantile <= self.long_quantile <= 1:
      raise ValueError(f'config {self.name}: need 0 <= short_quantile <= ' 'long_quantile <= 1')
    if self.signal_direction not in DIRECTIONS:
      raise ValueError(
          f'config {self.name}: signal_direction ' f'{self.signal_direction!r} not in {DIRECTIONS}'
      )
    if not self.signal:
      raise ValueError(f'config {self.name}: signal must name a manifest column')
    custom = self.signal != readers.DURATION or self.segment_signal
    if custom and self.source != 'manifest':
      raise ValueError(
          f'config {self.name}: signal {self.signal!r} / '
          f"segment_signal need source='manifest'; the "
          f'{self.source} source only has duration_s'
      )
    if bool(self.segment_signal) != (self.bucketing == 'video_quantile'):
      raise ValueError(
          f'config {self.name}: segment_signal and ' "bucketing='video_quantile' go together"
      )
    if self.segment_signal and self.signal != readers.DURATION:
      raise ValueError(
          f'config {self.name}: with segment_signal the per-video '
          f'signal {self.signal!r} would be unused; leave it out'
      )


def assign_buckets(
    signal: np.ndarray, domains: list[str], video_ids: list[str], config: DurationCorpusConfig
) -> np.ndarray:
  """Bucket per video under `config.bucketing` and `config.signal_direction`.

  Args:
    signal: [V] per-video signal (durations in seconds by default), compared
      as the stored float32.
    domains: V domain names (used by 'domain_quantile').
    video_ids: V ids (tie-break of 'domain_quantile').
    config: the builder config.

  Returns:
    [V] int indices into synthetic.BUCKET_NAMES ('short' = preferred,
    'long' = less preferred, 'rest'); all 'rest' for 'video_quantile', whose
    buckets are per segment.
  """
  signal = np.asarray(signal, np.float32)
  bucket = np.full(len(signal), synthetic.REST)
  if config.bucketing == 'video_quantile':
    return bucket
  lower_is_better = config.signal_direction == video_examples.LOWER_IS_BETTER
  if config.bucketing in THRESHOLD_BUCKETINGS:
    low_high = synthetic.duration_bucket(signal, config.short_max_s, config.long_min_s)
    return (
        low_high
        if lower_is_better
        else np.choose(low_high, [synthetic.LONG, synthetic.SHORT, synthetic.REST])
    )
  key = video_examples.preference_key(signal, config.signal_direction)
  domains, video_ids = np.asarray(domains), np.asarray(video_ids)
  for domain in np.unique(domains):
    members = np.flatnonzero(domains == domain)
    ranked = members[np.lexsort((video_ids[members], key[members]))]
    n = len(ranked)
    num_short = int(np.floor(n * config.short_quantile + 1e-9))
    num_long = int(np.floor(n * (1 - config.long_quantile) + 1e-9))
    bucket[ranked[:num_short]] = synthetic.SHORT
    bucket[ranked[n - num_long :]] = synthetic.LONG
  return bucket


def _maker(config: DurationCorpusConfig) -> video_examples.ExampleMaker:
  return video_examples.ExampleMaker(
      feature_dim=config.feature_dim,
      segment_signal=bool(config.segment_signal),
      short_quantile=config.short_quantile,
      long_quantile=config.long_quantile,
      direction=config.signal_direction,
  )


class Builder(tfds.core.GeneratorBasedBuilder):
  """DatasetBuilder for duration_corpus."""

  VERSION = tfds.core.Version('1.1.0')
  RELEASE_NOTES = {
      '1.0.0': 'Initial release.',
      '1.1.0': 'Any weak signal: features `signal` and `pair_group`; manifest '
      'signal columns, per-segment signals, Beam builds.',
  }
  BUILDER_CONFIGS = [
      DurationCorpusConfig(name='synthetic', description='Embedded synthetic corpus, D=128.'),
      DurationCorpusConfig(
          name='synthetic_tiny',
          feature_dim=16,
          synthetic=synthetic.SyntheticParams(num_train=60, num_val_per_domain=2),
          description='Synthetic corpus for tests, D=16, 60 train / 12 val.',
      ),
      DurationCorpusConfig(
          name='manifest',
          source='manifest',
          feature_dim=1024,
          description='Your corpus from manual_dir/manifest.{csv,jsonl}.',
      ),
      DurationCorpusConfig(
          name='manifest_ctr',
          source='manifest',
          feature_dim=1024,
          signal='ctr',
          signal_direction='higher_is_better',
          bucketing='domain_quantile',
          description='Manifest corpus, per-domain thirds of column ctr; the '
          "top third is 'short' (preferred).",
      ),
      DurationCorpusConfig(
          name='manifest_segment_signal',
          source='manifest',
          feature_dim=1024,
          segment_signal='segment_signal',
          signal_direction='higher_is_better',
          bucketing='video_quantile',
          description='Manifest corpus, each video split into its top third '
          "('<vid>#hi', short) and bottom third ('<vid>#lo', long) "
          'of segments by the per-segment signal file in column '
          'segment_signal.',
      ),
      DurationCorpusConfig(
          name='youtube_highlights',
          source='youtube_highlights',
          feature_dim=1024,
          bucketing='domain_quantile',
          description='YouTube Highlights train videos, I3D rgb, no labels.',
      ),
      DurationCorpusConfig(
          name='youtube_highlights_rgb_flow',
          source='youtube_highlights',
          feature_dim=2048,
          bucketing='domain_quantile',
          feature_sets=('i3d_rgb', 'i3d_flow'),
          description='YouTube Highlights train videos, I3D rgb+flow, no labels.',
      ),
      DurationCorpusConfig(
          name='youtube_highlights_rgb_flow_audio',
          source='youtube_highlights',
          feature_dim=4096,
          bucketing='domain_quantile',
          # The order of the youtube_highlights benchmark's i3d_rgb_flow_audio.
          feature_sets=('i3d_rgb', 'i3d_flow', 'pann_audio'),
          description='YouTube Highlights train videos, I3D rgb+flow and PANN ' 'audio, no labels.',
      ),
      DurationCorpusConfig(
          name='tvsum',
          source='tvsum',
          feature_dim=1024,
          bucketing='domain_quantile',
          description='TVSum train videos (40; domain: the category), I3D rgb, '
          'no labels: for video-level tags.',
      ),
      DurationCorpusConfig(
          name='tvsum_rgb_flow_audio',
          source='tvsum',
          feature_dim=4096,
          bucketing='domain_quantile',
          feature_sets=('i3d_rgb', 'i3d_flow', 'pann_audio'),
          description='TVSum train videos, I3D rgb+flow and PANN audio, no labels.',
      ),
  ]
  DEFAULT_CONFIG_NAME = 'synthetic'
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  manifest*: put manifest.csv or manifest.jsonl in manual_dir, one video per
  row with video_id, duration_s, feature_path (relative to manual_dir or
  absolute; .npy [T, D] or .npz with key `features`) and optional domain;
  manifest_ctr also needs a ctr column, manifest_segment_signal a
  segment_signal column (path of a .npy [T] or .npz with key `signal`).
  youtube_highlights*: manual_dir is the YouTube Highlights folder with
  labels/umt_youtube_anno.json, splits/umt_youtube_splits.json and
  features_umt_f16/{i3d_rgb,i3d_flow,pann_audio}/<video_id>.npz.
  tvsum*: manual_dir is the TVSum folder, laid out the same way
  (labels/umt_tvsum_anno.json, splits/umt_tvsum_splits.json).
  synthetic*: needs no manual_dir.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    d = self.builder_config.feature_dim
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict(
            {
                'video_id': tfds.features.Text(),
                'domain': tfds.features.Text(),
                'duration_s': tfds.features.Scalar(np.float32),
                'bucket': tfds.features.ClassLabel(names=list(synthetic.BUCKET_NAMES)),
                'signal': tfds.features.Scalar(np.float32),
                'pair_group': tfds.features.Text(),
                'features': tfds.features.Tensor(shape=(None, d), dtype=np.float32),
                'labels': tfds.features.Tensor(shape=(None,), dtype=np.int32),
            }
        ),
        supervised_keys=None,
        homepage='http://vision.cs.utexas.edu/projects/highlights',
    )

  def _example_writer(self) -> file_writer.StagedExampleWriter:
    # ArrayRecord writes local files only: stage shards bound for gs:// etc.
    return file_writer.StagedExampleWriter(file_format=self.info.file_format)

  def _download_and_prepare(self, dl_manager, download_config):
    # A Beam runner or Beam options in the DownloadConfig select the Beam
    # build; otherwise the examples come from a plain generator.
    self._use_beam = (
        download_config.beam_runner is not None or download_config.beam_options is not None
    )
    try:
      super()._download_and_prepare(dl_manager, download_config)
    finally:
      self._use_beam = False
      plan = self.data_path / PLAN_NAME
      if plan.exists():
        plan.unlink()

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    config = self.builder_config
    if config.source == 'synthetic':
      _, splits = synthetic.generate(
          config.synthetic, config.feature_dim, config.short_max_s, config.long_min_s
      )
      return {
          name: self._generate_examples(self._synthetic_examples(split, labelled=name == 'val'))
          for name, split in splits.items()
      }
    if config.source == 'manifest':
      records = readers.read_manifest(dl_manager.manual_dir, config.signal, config.segment_signal)
    else:
      records, skipped = readers.list_youtube_highlights(
          dl_manager.manual_dir, config.feature_root, config.feature_sets, config.source
      )
      for reason, ids in skipped.items():
        if ids:
          logging.warning(
              'duration_corpus/%s: skipped %d train videos (%s): %s',
              config.name,
              len(ids),
              reason,
              ' '.join(ids),
          )
    buckets = assign_buckets(
        np.array([r.signal for r in records]),
        [r.domain for r in records],
        [r.video_id for r in records],
        config,
    )
    logging.info(
        'duration_corpus/%s: %d videos, %s',
        config.name,
        len(records),
        dict(zip(synthetic.BUCKET_NAMES, np.bincount(buckets, minlength=3))),
    )
    maker = _maker(config)
    if getattr(self, '_use_beam', False):
      plan = self.data_path / PLAN_NAME
      video_examples.write_plan(records, buckets, plan)
      return {
          'train': self._generate_examples(video_examples.beam_examples(plan, maker, config.name))
      }
    return {'train': self._generate_examples(maker.generate(records, buckets, config.name))}

  def _generate_examples(self, examples: Any):
    """The (key, example) iterator or Beam PTransform of _split_generators."""
    return examples

  def _synthetic_examples(self, split: synthetic.Split, labelled: bool):
    config = self.builder_config
    buckets = assign_buckets(
        split.duration_s,
        [config.synthetic.domains[k] for k in split.domain],
        split.video_ids,
        config,
    )
    r = split.row_splits
    for i, video_id in enumerate(split.video_ids):
      rows = slice(r[i], r[i + 1])
      yield video_id, video_examples.make_example(
          video_id,
          config.synthetic.domains[split.domain[i]],
          split.duration_s[i],
          buckets[i],
          split.features[rows],
          split.highlight[rows] if labelled else None,
      )


def get_builder(
    config_name: str | DurationCorpusConfig,
    data_dir: str | os.PathLike[str] | None,
    manual_dir: str | os.PathLike[str] | None = None,
    *,
    beam_runner: Any = None,
    beam_options: Any = None,
) -> tfds.core.DatasetBuilder:
  """Builds duration_corpus/<config> as array_record (if not built) and returns it.

  Args:
    config_name: a registered config name, or a DurationCorpusConfig (e.g. a
      manifest config with another feature_dim; give it a new name).
    data_dir: TFDS data dir (None: $TFDS_DATA_DIR or ~/tensorflow_datasets);
      may be gs://... (needs gcsfs).
    manual_dir: folder of the manifest / YouTube Highlights data.
    beam_runner: manifest / youtube_highlights sources: build with Apache Beam
      on this runner (e.g. 'DirectRunner'; needs apache-beam).
    beam_options: `apache_beam.options.pipeline_options.PipelineOptions` (e.g.
      `--runner=DataflowRunner ...`); also selects the Beam build.

  Returns:
    The prepared builder; read it with `builder.as_data_source(split)`.
  """
  make = functools.partial(
      Builder, config=config_name, data_dir=data_dir, file_format='array_record'
  )
  builder = make()
  try:
    builder.download_and_prepare(
        file_format='array_record',
        download_config=tfds.download.DownloadConfig(
            manual_dir=manual_dir, beam_runner=beam_runner, beam_options=beam_options
        ),
    )
  except FileExistsError:
    # Processes that build the same data_dir at once (e.g. the hosts of one
    # job) race to rename their finished copy into place; the loser reads the
    # winner's, which is complete since the rename is atomic.
    builder = make()
    if not builder.is_prepared():
      raise
  return builder
