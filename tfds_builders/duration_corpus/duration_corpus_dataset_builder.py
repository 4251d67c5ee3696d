"""duration_corpus: per-video segment features bucketed by video duration.

The weak supervision of "Less is More" (Xiong et al., CVPR 2019): segments of
SHORT user videos should score above segments of LONG ones. One example per
video: its segment features, its duration and its duration bucket.

Configs:
  synthetic (default): an embedded corpus drawn from a seeded generative model
    (see `synthetic.py` and README.md), no files needed. Splits `train`
    (unlabelled, labels all -1) and `val` (per-segment 0/1 ground truth).
  synthetic_tiny: the same model, D=16, 60 train / 12 val videos, for tests.
  manifest: your own corpus, `manifest.csv` / `manifest.jsonl` in manual_dir
    (video_id, duration_s, feature_path, optional domain). Split `train`.
  youtube_highlights / youtube_highlights_rgb_flow: the YouTube Highlights
    TRAIN videos (labels dropped) with I3D rgb (1024-d) or rgb+flow (2048-d)
    features, bucketed by per-domain duration quantiles. Split `train`.

Build without TensorFlow (array_record), from the repository root:

  python -c "from tfds_builders.duration_corpus import get_builder; \
      get_builder('synthetic', data_dir='/tmp/tfds')"
  python -c "from tfds_builders.duration_corpus import get_builder; \
      get_builder('youtube_highlights', '/tmp/tfds', \
                  manual_dir='/path/to/youtube_highlights')"

(`tfds build tfds_builders/duration_corpus --config=synthetic` also works
where TensorFlow is installed.)
"""

from __future__ import annotations

import dataclasses
import functools
import os

from absl import logging
import numpy as np
import tensorflow_datasets as tfds

from tfds_builders.duration_corpus import readers
from tfds_builders.duration_corpus import synthetic

SOURCES = ('synthetic', 'manifest', 'youtube_highlights')
BUCKETINGS = ('duration', 'domain_quantile')


@dataclasses.dataclass(eq=False, kw_only=True)
class DurationCorpusConfig(tfds.core.BuilderConfig):
  """BuilderConfig of duration_corpus.

  Attributes:
    source: 'synthetic', 'manifest' or 'youtube_highlights'.
    feature_dim: D, the width of `features`.
    short_max_s: bucketing='duration': short if duration_s < short_max_s.
    long_min_s: bucketing='duration': long if duration_s > long_min_s.
    bucketing: 'duration' (thresholds above) or 'domain_quantile' (per domain,
      the floor(n * short_quantile) shortest videos are short, the
      floor(n * (1 - long_quantile)) longest are long, ties by video_id).
    short_quantile: see bucketing.
    long_quantile: see bucketing.
    feature_root: youtube_highlights: feature folder inside manual_dir.
    feature_sets: youtube_highlights: feature sets, concatenated per clip.
    synthetic: parameters of the synthetic generator.
  """
  source: str = 'synthetic'
  feature_dim: int = 128
  short_max_s: float = 15.0
  long_min_s: float = 45.0
  bucketing: str = 'duration'
  short_quantile: float = 1 / 3
  long_quantile: float = 2 / 3
  feature_root: str = 'features_umt_f16'
  feature_sets: tuple[str, ...] = ('i3d_rgb',)
  synthetic: synthetic.SyntheticParams = dataclasses.field(
      default_factory=synthetic.SyntheticParams)

  def __post_init__(self):
    if self.source not in SOURCES:
      raise ValueError(f'config {self.name}: source {self.source!r} not in {SOURCES}')
    if self.bucketing not in BUCKETINGS:
      raise ValueError(
          f'config {self.name}: bucketing {self.bucketing!r} not in {BUCKETINGS}')
    if self.feature_dim <= 0:
      raise ValueError(f'config {self.name}: feature_dim must be > 0')
    if not self.short_max_s <= self.long_min_s:
      raise ValueError(f'config {self.name}: short_max_s > long_min_s')
    if not 0 <= self.short_quantile <= self.long_quantile <= 1:
      raise ValueError(f'config {self.name}: need 0 <= short_quantile <= '
                       'long_quantile <= 1')


def assign_buckets(duration_s: np.ndarray, domains: list[str],
                   video_ids: list[str], config: DurationCorpusConfig) -> np.ndarray:
  """Duration bucket per video under `config.bucketing`.

  Args:
    duration_s: [V] durations in seconds.
    domains: V domain names (used by 'domain_quantile').
    video_ids: V ids (tie-break of 'domain_quantile').
    config: the builder config.

  Returns:
    [V] int indices into synthetic.BUCKET_NAMES ('short', 'long', 'rest').
  """
  duration_s = np.asarray(duration_s, np.float32)
  if config.bucketing == 'duration':
    return synthetic.duration_bucket(duration_s, config.short_max_s,
                                     config.long_min_s)
  bucket = np.full(len(duration_s), synthetic.REST)
  domains, video_ids = np.asarray(domains), np.asarray(video_ids)
  for domain in np.unique(domains):
    members = np.flatnonzero(domains == domain)
    ranked = members[np.lexsort((video_ids[members], duration_s[members]))]
    n = len(ranked)
    num_short = int(np.floor(n * config.short_quantile + 1e-9))
    num_long = int(np.floor(n * (1 - config.long_quantile) + 1e-9))
    bucket[ranked[:num_short]] = synthetic.SHORT
    bucket[ranked[n - num_long:]] = synthetic.LONG
  return bucket


def _example(video_id: str, domain: str, duration_s: float, bucket: int,
             features: np.ndarray, labels: np.ndarray | None) -> dict:
  if labels is None:
    labels = np.full(len(features), -1, np.int32)
  return {'video_id': video_id, 'domain': domain,
          'duration_s': np.float32(duration_s), 'bucket': int(bucket),
          'features': features, 'labels': labels.astype(np.int32)}


class Builder(tfds.core.GeneratorBasedBuilder):
  """DatasetBuilder for duration_corpus."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  BUILDER_CONFIGS = [
      DurationCorpusConfig(
          name='synthetic', description='Embedded synthetic corpus, D=128.'),
      DurationCorpusConfig(
          name='synthetic_tiny', feature_dim=16,
          synthetic=synthetic.SyntheticParams(num_train=60, num_val_per_domain=2),
          description='Synthetic corpus for tests, D=16, 60 train / 12 val.'),
      DurationCorpusConfig(
          name='manifest', source='manifest', feature_dim=1024,
          description='Your corpus from manual_dir/manifest.{csv,jsonl}.'),
      DurationCorpusConfig(
          name='youtube_highlights', source='youtube_highlights',
          feature_dim=1024, bucketing='domain_quantile',
          description='YouTube Highlights train videos, I3D rgb, no labels.'),
      DurationCorpusConfig(
          name='youtube_highlights_rgb_flow', source='youtube_highlights',
          feature_dim=2048, bucketing='domain_quantile',
          feature_sets=('i3d_rgb', 'i3d_flow'),
          description='YouTube Highlights train videos, I3D rgb+flow, no labels.'),
  ]
  DEFAULT_CONFIG_NAME = 'synthetic'
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  manifest: put manifest.csv or manifest.jsonl in manual_dir, one video per
  row with video_id, duration_s, feature_path (relative to manual_dir or
  absolute; .npy [T, D] or .npz with key `features`) and optional domain.
  youtube_highlights*: manual_dir is the YouTube Highlights folder with
  labels/umt_youtube_anno.json, splits/umt_youtube_splits.json and
  features_umt_f16/{i3d_rgb,i3d_flow}/<video_id>.npz.
  synthetic*: needs no manual_dir.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    d = self.builder_config.feature_dim
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            'video_id': tfds.features.Text(),
            'domain': tfds.features.Text(),
            'duration_s': tfds.features.Scalar(np.float32),
            'bucket': tfds.features.ClassLabel(names=list(synthetic.BUCKET_NAMES)),
            'features': tfds.features.Tensor(shape=(None, d), dtype=np.float32),
            'labels': tfds.features.Tensor(shape=(None,), dtype=np.int32),
        }),
        supervised_keys=None,
        homepage='http://vision.cs.utexas.edu/projects/highlights',
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    config = self.builder_config
    if config.source == 'synthetic':
      _, splits = synthetic.generate(config.synthetic, config.feature_dim,
                                     config.short_max_s, config.long_min_s)
      return {name: self._generate_examples(
                  self._synthetic_examples(split, labelled=name == 'val'))
              for name, split in splits.items()}
    if config.source == 'manifest':
      records = readers.read_manifest(dl_manager.manual_dir)
    else:
      records, skipped = readers.list_youtube_highlights(
          dl_manager.manual_dir, config.feature_root, config.feature_sets)
      for reason, ids in skipped.items():
        if ids:
          logging.warning('duration_corpus/%s: skipped %d train videos (%s): %s',
                          config.name, len(ids), reason, ' '.join(ids))
    buckets = assign_buckets(
        np.array([r.duration_s for r in records]), [r.domain for r in records],
        [r.video_id for r in records], config)
    logging.info('duration_corpus/%s: %d videos, %s', config.name, len(records),
                 dict(zip(synthetic.BUCKET_NAMES, np.bincount(buckets, minlength=3))))
    return {'train': self._generate_examples(
        self._record_examples(records, buckets))}

  def _generate_examples(self, examples):
    """Yields the (video_id, example) pairs built by _split_generators."""
    yield from examples

  def _synthetic_examples(self, split: synthetic.Split, labelled: bool):
    config = self.builder_config
    buckets = assign_buckets(split.duration_s,
                             [config.synthetic.domains[k] for k in split.domain],
                             split.video_ids, config)
    r = split.row_splits
    for i, video_id in enumerate(split.video_ids):
      rows = slice(r[i], r[i + 1])
      yield video_id, _example(
          video_id, config.synthetic.domains[split.domain[i]],
          split.duration_s[i], buckets[i], split.features[rows],
          split.highlight[rows] if labelled else None)

  def _record_examples(self, records: list[readers.VideoRecord],
                        buckets: np.ndarray):
    for record, bucket in zip(records, buckets):
      features = readers.load_features(record, self.builder_config.feature_dim)
      yield record.video_id, _example(record.video_id, record.domain,
                                      record.duration_s, bucket, features, None)


def get_builder(config_name: str | DurationCorpusConfig,
                data_dir: str | os.PathLike[str] | None,
                manual_dir: str | os.PathLike[str] | None = None,
                ) -> tfds.core.DatasetBuilder:
  """Builds duration_corpus/<config> as array_record (if not built) and returns it.

  Args:
    config_name: a registered config name, or a DurationCorpusConfig (e.g. a
      manifest config with another feature_dim; give it a new name).
    data_dir: TFDS data dir (None: $TFDS_DATA_DIR or ~/tensorflow_datasets).
    manual_dir: folder of the manifest / YouTube Highlights data.

  Returns:
    The prepared builder; read it with `builder.as_data_source(split)`.
  """
  make = functools.partial(Builder, config=config_name, data_dir=data_dir,
                           file_format='array_record')
  builder = make()
  try:
    builder.download_and_prepare(
        file_format='array_record',
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  except FileExistsError:
    # Processes that build the same data_dir at once (e.g. the hosts of one
    # job) race to rename their finished copy into place; the loser reads the
    # winner's, which is complete since the rename is atomic.
    builder = make()
    if not builder.is_prepared():
      raise
  return builder
