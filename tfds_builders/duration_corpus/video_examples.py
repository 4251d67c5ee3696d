"""From validated manifest records to TFDS examples, in one process or on Beam.

`ExampleMaker` turns one `readers.VideoRecord` and its bucket into examples:
one per video, or, with a per-segment signal, a preferred (`<vid>#hi`, bucket
'short') and a less preferred (`<vid>#lo`, bucket 'long') pseudo-video made of
the video's top- and bottom-quantile segments. The same maker runs in the
plain generator and in the Beam workers, so both builds hold the same examples.

For Beam, the launcher writes the parsed manifest with its buckets as a JSONL
"plan" (`write_plan`) next to the dataset being built, and the workers read it
with `ReadFromText` (`beam_examples`): the pipeline graph stays small however
many videos there are, and only the workers open the feature files.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Iterable, Iterator

from absl import logging
from etils import epath
import numpy as np

from tfds_builders.duration_corpus import readers
from tfds_builders.duration_corpus import synthetic

PREFERRED_SUFFIX, OTHER_SUFFIX = '#hi', '#lo'
LOWER_IS_BETTER, HIGHER_IS_BETTER = 'lower_is_better', 'higher_is_better'
TOO_FEW_SEGMENTS = 'too few segments for the quantiles'
TIED_ACROSS_CUT = 'segment signal tied across the cut'


def make_example(
    video_id: str,
    domain: str,
    duration_s: float,
    bucket: int,
    features: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    signal: float | None = None,
    pair_group: str = '',
) -> dict:
  """One duration_corpus example (see the README for the features)."""
  if labels is None:
    labels = np.full(len(features), -1, np.int32)
  return {
      'video_id': video_id,
      'domain': domain,
      'duration_s': np.float32(duration_s),
      'bucket': int(bucket),
      'signal': np.float32(duration_s if signal is None else signal),
      'pair_group': pair_group,
      'features': features,
      'labels': labels.astype(np.int32),
  }


def preference_key(values: np.ndarray, direction: str) -> np.ndarray:
  """Values ordered so that smaller means preferred (negated if higher is better)."""
  values = np.asarray(values)
  return values if direction == LOWER_IS_BETTER else -values


def split_segments(
    signal: np.ndarray,
    short_quantile: float,
    long_quantile: float,
    direction: str,
) -> tuple[np.ndarray, np.ndarray] | str:
  """The preferred and the less preferred segments of one video.

  Segments are ranked by preference (ties by segment index); the
  floor(T * short_quantile) first are preferred, the floor(T * (1 -
  long_quantile)) last less preferred.

  Args:
    signal: [T] per-segment signal.
    short_quantile: share of preferred segments.
    long_quantile: 1 - share of less preferred segments.
    direction: LOWER_IS_BETTER or HIGHER_IS_BETTER.

  Returns:
    (preferred rows, other rows), each sorted in time order, or the reason the
    video gives no pair: TOO_FEW_SEGMENTS, or TIED_ACROSS_CUT when its worst
    preferred segment is not strictly better than its best other segment.
  """
  key = preference_key(signal, direction)
  t = len(key)
  num_hi = int(np.floor(t * short_quantile + 1e-9))
  num_lo = int(np.floor(t * (1 - long_quantile) + 1e-9))
  if num_hi == 0 or num_lo == 0:
    return TOO_FEW_SEGMENTS
  ranked = np.lexsort((np.arange(t), key))
  hi, lo = ranked[:num_hi], ranked[t - num_lo :]
  if key[hi].max() >= key[lo].min():
    return TIED_ACROSS_CUT
  return np.sort(hi), np.sort(lo)


@dataclasses.dataclass(frozen=True)
class ExampleMaker:
  """Builds the examples of one video; picklable, so Beam workers run it too.

  Attributes:
    feature_dim: D.
    segment_signal: whether records carry a per-segment signal to split on.
    short_quantile: share of preferred segments (segment_signal only).
    long_quantile: 1 - share of less preferred segments (segment_signal only).
    direction: LOWER_IS_BETTER or HIGHER_IS_BETTER.
  """

  feature_dim: int
  segment_signal: bool = False
  short_quantile: float = 1 / 3
  long_quantile: float = 2 / 3
  direction: str = LOWER_IS_BETTER

  def __call__(
      self,
      record: readers.VideoRecord,
      bucket: int,
  ) -> tuple[list[tuple[str, dict]], str | None]:
    """Returns ((key, example) list, reason the video was skipped or None)."""
    features = readers.load_features(record, self.feature_dim)
    if not self.segment_signal:
      return [
          (
              record.video_id,
              make_example(
                  record.video_id,
                  record.domain,
                  record.duration_s,
                  bucket,
                  features,
                  signal=record.signal,
              ),
          )
      ], None
    signal = readers.load_segment_signal(record, len(features))
    split = split_segments(signal, self.short_quantile, self.long_quantile, self.direction)
    if isinstance(split, str):
      return [], split
    examples = []
    for rows, suffix, side in (
        (split[0], PREFERRED_SUFFIX, synthetic.SHORT),
        (split[1], OTHER_SUFFIX, synthetic.LONG),
    ):
      key = record.video_id + suffix
      examples.append(
          (
              key,
              make_example(
                  key,
                  record.domain,
                  record.duration_s,
                  side,
                  features[rows],
                  signal=float(signal[rows].mean()),
                  pair_group=record.video_id,
              ),
          )
      )
    return examples, None

  def generate(
      self, records: list[readers.VideoRecord], buckets: np.ndarray, name: str
  ) -> Iterator[tuple[str, dict]]:
    """Yields the examples of all records in order; logs the skipped videos."""
    skipped: dict[str, list[str]] = {}
    num_examples = 0
    for record, bucket in zip(records, buckets):
      examples, reason = self(record, int(bucket))
      if reason:
        skipped.setdefault(reason, []).append(record.video_id)
      num_examples += len(examples)
      yield from examples
    for reason, ids in skipped.items():
      logging.warning(
          'duration_corpus/%s: skipped %d videos (%s): %s',
          name,
          len(ids),
          reason,
          ' '.join(ids[:20]),
      )
    if not num_examples:
      raise ValueError(
          f'duration_corpus/{name}: no video gave an example '
          f'(skipped: { {r: len(v) for r, v in skipped.items()} })'
      )


def _plan_line(record: readers.VideoRecord, bucket: int) -> str:
  return json.dumps(
      {
          'video_id': record.video_id,
          'domain': record.domain,
          'duration_s': record.duration_s,
          'signal': record.signal,
          'feature_paths': [str(p) for p in record.feature_paths],
          'segment_signal_path': (
              str(record.segment_signal_path) if record.segment_signal_path else None
          ),
          'where': record.where,
          'bucket': int(bucket),
      }
  )


def parse_plan_line(line: str) -> tuple[readers.VideoRecord, int]:
  """The (record, bucket) of one plan line."""
  d = json.loads(line)
  segment_path = d['segment_signal_path']
  return (
      readers.VideoRecord(
          d['video_id'],
          d['domain'],
          d['duration_s'],
          tuple(epath.Path(p) for p in d['feature_paths']),
          d['where'],
          d['signal'],
          epath.Path(segment_path) if segment_path else None,
      ),
      d['bucket'],
  )


def write_plan(records: list[readers.VideoRecord], buckets: np.ndarray, path: epath.Path) -> None:
  """Writes the records and their buckets as JSONL for the Beam workers."""
  with path.open('w') as f:
    for record, bucket in zip(records, buckets):
      f.write(_plan_line(record, bucket) + '\n')


def beam_examples(plan_path: epath.Path, maker: ExampleMaker, name: str) -> Any:
  """A Beam PTransform: plan lines -> (key, example), skipped videos counted.

  Args:
    plan_path: the file written by `write_plan` (where the workers can read it).
    maker: builds the examples of one video.
    name: config name, for the counters and logs.

  Returns:
    A `beam.PTransform` from the pipeline root to (key, example) pairs.
  """
  import apache_beam as beam  # pylint: disable=g-import-not-at-top

  def make(line: str) -> Iterable[tuple[str, dict]]:
    record, bucket = parse_plan_line(line)
    examples, reason = maker(record, bucket)
    if reason:
      beam.metrics.Metrics.counter('duration_corpus', f'skipped: {reason}').inc()
      logging.warning('duration_corpus/%s: skipped video %s (%s)', name, record.video_id, reason)
    beam.metrics.Metrics.counter('duration_corpus', 'examples').inc(len(examples))
    return examples

  @beam.ptransform_fn
  def generate(root):
    return (
        root
        | 'ReadPlan' >> beam.io.ReadFromText(str(plan_path))
        | 'Reshuffle' >> beam.Reshuffle()  # Spread feature reads over workers.
        | 'MakeExamples' >> beam.FlatMap(make)
    )

  return generate()  # pylint: disable=no-value-for-parameter
