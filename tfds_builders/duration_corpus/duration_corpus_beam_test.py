"""The manifest builder as an Apache Beam pipeline (DirectRunner) equals the plain build.

Needs the optional `apache-beam` extra; skipped, saying so, without it. The
runner is the FnApiRunner, the Python engine of Beam's DirectRunner: the
DirectRunner itself first tries the Prism runner, a Go binary that it
downloads from GitHub at run time, which a machine without internet lacks.
"""

from __future__ import annotations

import pathlib
import time

import numpy as np
import pytest

from tfds_builders import build
from tfds_builders.duration_corpus import duration_corpus_dataset_builder as dcb

beam = pytest.importorskip(
    'apache_beam',
    reason='apache_beam is not installed (pip install -e ".[beam]"): the Beam '
    'build of duration_corpus is not tested',
)

from apache_beam.runners.portability.fn_api_runner import fn_runner  # pylint: disable=g-import-not-at-top,g-bad-import-order

DUMMY_DATA = pathlib.Path(__file__).parent / 'dummy_data'
KEYS = ('video_id', 'domain', 'duration_s', 'bucket', 'signal', 'pair_group', 'features', 'labels')
CONFIGS = [
    dcb.DurationCorpusConfig(name='manifest_d8', source='manifest', feature_dim=8),
    dcb.DurationCorpusConfig(
        name='ctr_d8',
        source='manifest',
        feature_dim=8,
        signal='ctr',
        signal_direction='higher_is_better',
        bucketing='threshold',
        short_max_s=0.02,
        long_min_s=0.04,
    ),
    dcb.DurationCorpusConfig(
        name='segments_d8',
        source='manifest',
        feature_dim=8,
        segment_signal='segment_signal',
        signal_direction='higher_is_better',
        bucketing='video_quantile',
    ),
]


def _bytes(example: dict) -> list[bytes]:
  return [np.asarray(example[k]).tobytes() for k in KEYS]


@pytest.mark.parametrize('config', CONFIGS, ids=lambda c: c.name)
def test_direct_runner_build_equals_plain_build(tmp_path, config):
  start = time.perf_counter()
  plain = dcb.get_builder(config, tmp_path / 'plain', manual_dir=DUMMY_DATA)
  plain_s = time.perf_counter() - start
  start = time.perf_counter()
  beamed = dcb.get_builder(
      config, tmp_path / 'beam', manual_dir=DUMMY_DATA, beam_runner=fn_runner.FnApiRunner()
  )
  beam_s = time.perf_counter() - start
  print(f'{config.name}: plain {plain_s:.2f} s, Beam FnApiRunner {beam_s:.2f} s')
  a, b = plain.as_data_source('train'), beamed.as_data_source('train')
  assert len(a) == len(b) > 0
  for i in range(len(a)):  # Same examples in the same (hashed key) order.
    assert _bytes(a[i]) == _bytes(b[i]), (config.name, i, a[i]['video_id'])
  assert plain.info.splits['train'].shard_lengths == (beamed.info.splits['train'].shard_lengths)
  files = sorted(p.name for p in beamed.data_path.iterdir())
  assert not [f for f in files if 'plan' in f or 'incomplete' in f], files
  assert sorted(p.name for p in plain.data_path.iterdir()) == files


def test_direct_runner_build_error_names_the_video(tmp_path):
  manual = tmp_path / 'manual'
  manual.mkdir()
  np.save(manual / 'ok.npy', np.zeros((3, 8), np.float32))
  np.save(manual / 'wide.npy', np.zeros((3, 9), np.float32))
  (manual / 'manifest.csv').write_text(
      'video_id,duration_s,feature_path\na,3,ok.npy\nb,90,wide.npy\n'
  )
  with pytest.raises(Exception, match=r'line 3 \(video b\): features have dim 9'):
    dcb.get_builder(
        CONFIGS[0], tmp_path / 'data', manual_dir=manual, beam_runner=fn_runner.FnApiRunner()
    )
  assert not list((tmp_path / 'data').rglob('*.array_record*'))


def test_build_cli_with_beam_options(tmp_path):
  runner = '--runner=apache_beam.runners.portability.fn_api_runner.fn_runner.FnApiRunner'
  beamed = build.build(
      'duration_corpus/manifest_ctr',
      str(DUMMY_DATA),
      str(tmp_path / 'beam'),
      feature_dim=8,
      beam_args=[runner],
  )
  plain = build.build(
      'duration_corpus/manifest_ctr', str(DUMMY_DATA), str(tmp_path / 'plain'), feature_dim=8
  )
  assert beamed.builder_config.name == 'manifest_ctr_d8'
  a, b = plain.as_data_source('train'), beamed.as_data_source('train')
  assert [_bytes(a[i]) for i in range(len(a))] == [_bytes(b[i]) for i in range(len(b))]


def test_beam_build_stages_shards_for_a_remote_data_dir(tmp_path, monkeypatch):
  """Beam workers write shards bound for gs:// locally first (no GCS here)."""
  from tfds_builders.duration_corpus import file_writer  # pylint: disable=g-import-not-at-top

  plain = dcb.get_builder(CONFIGS[2], tmp_path / 'plain', manual_dir=DUMMY_DATA)
  monkeypatch.setattr(file_writer, 'is_remote', lambda path: True)
  beamed = dcb.get_builder(
      CONFIGS[2], tmp_path / 'beam', manual_dir=DUMMY_DATA, beam_runner=fn_runner.FnApiRunner()
  )
  a, b = plain.as_data_source('train'), beamed.as_data_source('train')
  assert [_bytes(a[i]) for i in range(len(a))] == [_bytes(b[i]) for i in range(len(b))]
