"""Weak signals other than duration: a per-video manifest column, a per-segment file.

Bucket 'short' is the preferred side of the signal, 'long' the other side
(tests/test_signal_training.py runs the real trainer on such corpora).
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

from tfds_builders import build
from tfds_builders.duration_corpus import duration_corpus_dataset_builder as dcb
from tfds_builders.duration_corpus import synthetic
from tfds_builders.duration_corpus import video_examples

DUMMY_DATA = pathlib.Path(__file__).parent / 'dummy_data'
SHORT, LONG, REST = synthetic.SHORT, synthetic.LONG, synthetic.REST
HIGHER, LOWER = 'higher_is_better', 'lower_is_better'


def _examples(builder, split: str = 'train') -> dict[str, dict]:
  return {ex['video_id'].decode(): ex for ex in builder.as_data_source(split)}


def _ctr_config(name='ctr_d8', **kwargs) -> dcb.DurationCorpusConfig:
  kwargs = {'signal': 'ctr', 'signal_direction': HIGHER, 'bucketing': 'domain_quantile', **kwargs}
  return dcb.DurationCorpusConfig(name=name, source='manifest', feature_dim=8, **kwargs)


def _segment_config(name='segments_d8', **kwargs) -> dcb.DurationCorpusConfig:
  kwargs = {
      'segment_signal': 'segment_signal',
      'signal_direction': HIGHER,
      'bucketing': 'video_quantile',
      **kwargs,
  }
  return dcb.DurationCorpusConfig(name=name, source='manifest', feature_dim=8, **kwargs)


def _write_manifest(manual: pathlib.Path, rows: list[dict], dim: int = 8, seed: int = 0) -> None:
  """manifest.csv of `rows` (+ a [T, dim] feature file per row if absent)."""
  manual.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(seed)
  for row in rows:
    row.setdefault('duration_s', 10.0)
    if 'feature_path' not in row:
      row['feature_path'] = f'{row["video_id"]}.npy'
      np.save(manual / row['feature_path'], rng.normal(size=(4, dim)).astype(np.float32))
  columns = list(dict.fromkeys(k for row in rows for k in row))
  lines = [','.join(columns)] + [','.join(str(row.get(c, '')) for c in columns) for row in rows]
  (manual / 'manifest.csv').write_text('\n'.join(lines) + '\n')


def test_ctr_higher_is_better_domain_quantiles(tmp_path):
  ctr = {
      's1': 0.10,
      's2': 0.02,
      's3': 0.05,
      's4': 0.08,
      's5': 0.01,
      's6': 0.05,
      'g1': 0.3,
      'g2': 0.3,
      'g3': 0.1,
  }
  rows = [
      {'video_id': v, 'domain': 'shop' if v[0] == 's' else 'game', 'ctr': c, 'duration_s': 5.0 + i}
      for i, (v, c) in enumerate(ctr.items())
  ]
  _write_manifest(tmp_path / 'manual', rows)
  builder = dcb.get_builder(_ctr_config(), tmp_path / 'data', manual_dir=tmp_path / 'manual')
  train = _examples(builder)
  # shop (6 videos, thirds): the 2 highest CTRs are preferred ('short'), the 2
  # lowest 'long'. game: g1 and g2 tie at 0.3, video_id breaks it.
  assert {v: int(ex['bucket']) for v, ex in train.items()} == {
      's1': SHORT,
      's4': SHORT,
      's3': REST,
      's6': REST,
      's2': LONG,
      's5': LONG,
      'g1': SHORT,
      'g2': REST,
      'g3': LONG,
  }
  for v, ex in train.items():
    assert ex['signal'] == np.float32(ctr[v])
    assert ex['pair_group'] == b''
  assert train['s3']['duration_s'] == np.float32(7.0)


@pytest.mark.parametrize(
    'direction,expected', [(HIGHER, [LONG, REST, REST, SHORT]), (LOWER, [SHORT, REST, REST, LONG])]
)
def test_threshold_buckets_follow_the_direction(direction, expected):
  config = _ctr_config(
      bucketing='threshold', signal_direction=direction, short_max_s=0.02, long_min_s=0.05
  )
  got = dcb.assign_buckets(np.array([0.01, 0.02, 0.05, 0.06]), ['a'] * 4, list('wxyz'), config)
  np.testing.assert_array_equal(got, expected)


def test_dummy_data_ctr_thresholds(tmp_path):
  config = _ctr_config('ctr_threshold_d8', bucketing='threshold', short_max_s=0.02, long_min_s=0.04)
  train = _examples(dcb.get_builder(config, tmp_path, manual_dir=DUMMY_DATA))
  assert {v: int(ex['bucket']) for v, ex in train.items()} == {
      'clip_a': REST,
      'clip_b': LONG,
      'clip_c': SHORT,
      'clip_d': REST,
      'clip_e': SHORT,
  }


@pytest.mark.parametrize(
    'signal,direction,hi,lo',
    [
        ([3, 8, 1, 7, 2, 9, 4, 6], HIGHER, [1, 5], [2, 4]),
        ([3, 8, 1, 7, 2, 9, 4, 6], LOWER, [2, 4], [1, 5]),
        ([0, 10, 20, 30, 40] * 3, HIGHER, [3, 4, 8, 9, 14], [0, 5, 6, 10, 11]),
    ],
)
def test_split_segments(signal, direction, hi, lo):
  got = video_examples.split_segments(np.array(signal, float), 1 / 3, 2 / 3, direction)
  np.testing.assert_array_equal(got[0], hi)
  np.testing.assert_array_equal(got[1], lo)


@pytest.mark.parametrize(
    'signal,reason',
    [
        ([10, 20], video_examples.TOO_FEW_SEGMENTS),
        ([7, 7, 7, 7, 7, 7], video_examples.TIED_ACROSS_CUT),
        ([5, 1, 1, 1, 1, 1], video_examples.TIED_ACROSS_CUT),
    ],
)
def test_split_segments_without_a_clean_pair(signal, reason):
  assert video_examples.split_segments(np.array(signal, float), 1 / 3, 2 / 3, HIGHER) == reason


def test_segment_signal_dummy_data(tmp_path):
  train = _examples(dcb.get_builder(_segment_config(), tmp_path, manual_dir=DUMMY_DATA))
  # clip_a has 2 segments (thirds hold none), clip_e a constant signal: skipped.
  assert sorted(train) == [
      'clip_b#hi',
      'clip_b#lo',
      'clip_c#hi',
      'clip_c#lo',
      'clip_d#hi',
      'clip_d#lo',
  ]
  features = np.load(DUMMY_DATA / 'features' / 'clip_c.npy')
  signal = np.load(DUMMY_DATA / 'segment_signal' / 'clip_c.npy')
  for suffix, rows, bucket in (('#hi', [1, 5], SHORT), ('#lo', [2, 4], LONG)):
    ex = train['clip_c' + suffix]
    assert int(ex['bucket']) == bucket
    np.testing.assert_array_equal(ex['features'], features[rows])
    assert ex['signal'] == np.float32(signal[rows].mean())
    assert ex['pair_group'] == b'clip_c' and ex['domain'] == b'surfing'
    assert ex['duration_s'] == np.float32(30.0)
    assert (ex['labels'] == -1).all()
  assert len(train['clip_b#hi']['features']) == 1  # [5, 1, 9] -> 9 over 1
  assert train['clip_b#hi']['signal'] == 9 and train['clip_b#lo']['signal'] == 1


@pytest.mark.parametrize(
    'kwargs,pattern',
    [
        (dict(signal_direction='up'), 'signal_direction'),
        (dict(source='synthetic', signal='ctr'), "need source='manifest'"),
        (dict(segment_signal='sig'), 'go together'),
        (dict(bucketing='video_quantile'), 'go together'),
        (dict(segment_signal='sig', bucketing='video_quantile', signal='ctr'), 'would be unused'),
        (dict(signal=''), 'must name a manifest column'),
    ],
)
def test_signal_config_validation(kwargs, pattern):
  kwargs = {'source': 'manifest', **kwargs}
  with pytest.raises(ValueError, match=f'config bad: .*{pattern}'):
    dcb.DurationCorpusConfig(name='bad', **kwargs)


def _bad_segment_files(manual: pathlib.Path) -> None:
  np.save(manual / 'ok.npy', np.zeros((3, 8), np.float32))
  nan = np.ones(3)
  nan[1] = np.nan
  for name, a in {
      's3': np.arange(3),
      's4': np.arange(4),
      'flat2d': np.ones((3, 1)),
      'nan': nan,
      'text': np.array(['a', 'b', 'c']),
  }.items():
    np.save(manual / f'{name}.npy', a)
  np.savez(manual / 'nokey.npz', viewers=np.arange(3))


_CTR = 'video_id,duration_s,feature_path,ctr\n'
_SEG = 'video_id,duration_s,feature_path,segment_signal\n'
BAD_SIGNAL_MANIFESTS = [  # (manifest file, content), config, error, pattern, id
    (
        ('manifest.csv', 'video_id,duration_s,feature_path\na,3,ok.npy\n'),
        'ctr',
        ValueError,
        r"manifest.csv line 1: header .* lacks column\(s\) \['ctr'\]",
        'no ctr column',
    ),
    (
        (
            'manifest.jsonl',
            json.dumps({'video_id': 'a', 'duration_s': 3, 'feature_path': 'ok.npy'}) + '\n',
        ),
        'ctr',
        ValueError,
        r'manifest.jsonl line 1 \(video a\): ctr is missing',
        'no ctr key',
    ),
    (
        ('manifest.csv', _CTR + 'a,3,ok.npy,0.1\nb,3,ok.npy,high\n'),
        'ctr',
        ValueError,
        r"manifest.csv line 3 \(video b\): ctr 'high' is not a number",
        'text ctr',
    ),
    (
        ('manifest.csv', _CTR + 'a,3,ok.npy,\n'),
        'ctr',
        ValueError,
        r'line 2 \(video a\): ctr is missing',
        'empty ctr',
    ),
    (
        ('manifest.csv', _CTR + 'a,3,ok.npy,inf\n'),
        'ctr',
        ValueError,
        r"video a\): ctr 'inf' must be a finite number",
        'inf ctr',
    ),
    (
        ('manifest.csv', 'video_id,duration_s,feature_path\na,3,ok.npy\n'),
        'seg',
        ValueError,
        r"lacks column\(s\) \['segment_signal'\]",
        'no segment column',
    ),
    (
        ('manifest.csv', _SEG + 'a,3,ok.npy,\n'),
        'seg',
        ValueError,
        r'line 2 \(video a\): segment_signal is missing',
        'empty segment path',
    ),
    (
        ('manifest.csv', _SEG + 'a,3,ok.npy,s4.npy\n'),
        'seg',
        ValueError,
        r'line 2 \(video a\): segment signal .*s4.npy has 4 values but the '
        r'features \(.*ok.npy\) have 3 segments',
        'length mismatch',
    ),
    (
        ('manifest.csv', _SEG + 'a,3,ok.npy,gone.npy\n'),
        'seg',
        FileNotFoundError,
        r'video a\): segment signal file .*gone.npy not found',
        'no segment file',
    ),
    (
        ('manifest.csv', _SEG + 'a,3,ok.npy,flat2d.npy\n'),
        'seg',
        ValueError,
        r'video a\): segment signal .*flat2d.npy has shape \(3, 1\), expected \[T\]',
        'segment 2-d',
    ),
    (
        ('manifest.csv', _SEG + 'a,3,ok.npy,nan.npy\n'),
        'seg',
        ValueError,
        r'video a\): segment signal .*nan.npy has 1 NaN/Inf values, first at ' r'segment 1',
        'segment nan',
    ),
    (
        ('manifest.csv', _SEG + 'a,3,ok.npy,text.npy\n'),
        'seg',
        ValueError,
        r'video a\): segment signal .*text.npy has dtype <U1, expected numbers',
        'segment text',
    ),
    (
        ('manifest.csv', _SEG + 'a,3,ok.npy,nokey.npz\n'),
        'seg',
        ValueError,
        r"video a\): .*nokey.npz has no key 'signal' \(keys: viewers\)",
        'segment npz key',
    ),
]


@pytest.mark.parametrize(
    'manifest,config,error,pattern',
    [pytest.param(*case[:4], id=case[4]) for case in BAD_SIGNAL_MANIFESTS],
)
def test_bad_signal_inputs(tmp_path, manifest, config, error, pattern):
  manual = tmp_path / 'manual'
  manual.mkdir()
  _bad_segment_files(manual)
  (manual / manifest[0]).write_text(manifest[1])
  config = _ctr_config('bad_d8') if config == 'ctr' else _segment_config('bad_d8')
  with pytest.raises(error, match=pattern):
    dcb.get_builder(config, tmp_path / 'data', manual_dir=manual)
  assert not list((tmp_path / 'data').rglob('*.array_record*'))


def test_all_videos_skipped_is_an_error(tmp_path):
  manual = tmp_path / 'manual'
  np.save(tmp_path / 'flat.npy', np.ones(4))
  _write_manifest(manual, [{'video_id': 'a', 'segment_signal': str(tmp_path / 'flat.npy')}])
  with pytest.raises(ValueError, match=r'no video gave an example .*tied'):
    dcb.get_builder(_segment_config('skip_d8'), tmp_path / 'data', manual_dir=manual)


def test_build_cli_derives_a_config_of_another_width(tmp_path):
  config = build.resolve_config('manifest_segment_signal', feature_dim=8)
  assert (config.name, config.feature_dim, config.segment_signal) == (
      'manifest_segment_signal_d8',
      8,
      'segment_signal',
  )
  assert build.resolve_config('manifest_ctr').feature_dim == 1024
  with pytest.raises(ValueError, match="unknown config 'ctr'; registered: "):
    build.resolve_config('ctr')
  builder = build.build_corpus(
      'manifest_segment_signal', str(tmp_path), str(DUMMY_DATA), feature_dim=8
  )
  assert builder.info.splits['train'].num_examples == 6


def test_tags_column_joins_the_domain(tmp_path):
  features = tmp_path / 'f.npy'
  np.save(features, np.zeros((3, 8), np.float32))
  (tmp_path / 'manifest.csv').write_text(
      'video_id,duration_s,domain,tags,feature_path\n'
      f'a,10,dog,pets|outdoor,{features}\n'
      f'b,10,,cats,{features}\n'
      f'c,10,dog,dog,{features}\n'
      f'd,10,,,{features}\n'
  )
  from tfds_builders.duration_corpus import readers  # pylint: disable=g-import-not-at-top

  domains = [r.domain for r in readers.read_manifest(tmp_path)]
  assert domains == ['dog|pets|outdoor', 'cats', 'dog', readers.DEFAULT_DOMAIN]


def test_tvsum_source_reads_the_train_split_with_categories(tmp_path):
  anno = {
      v: {'domain': cat, 'fps': 30.0, 'frames': str(f)}
      for v, cat, f in [('a', 'BK', 300), ('b', 'BK', 900), ('c', 'VT', 600), ('v', 'VT', 300)]
  }
  splits = {'BK': {'train': ['a', 'b'], 'val': []}, 'VT': {'train': ['c'], 'val': ['v']}}
  (tmp_path / 'tvsum' / 'labels').mkdir(parents=True)
  (tmp_path / 'tvsum' / 'splits').mkdir()
  (tmp_path / 'tvsum' / 'labels' / 'umt_tvsum_anno.json').write_text(json.dumps(anno))
  (tmp_path / 'tvsum' / 'splits' / 'umt_tvsum_splits.json').write_text(json.dumps(splits))
  folder = tmp_path / 'tvsum' / 'features_umt_f16' / 'i3d_rgb'
  folder.mkdir(parents=True)
  for vid, rows in [('a', 5), ('b', 15), ('c', 10), ('v', 5)]:
    np.savez(folder / f'{vid}.npz', features=np.full((rows, 1024), 0.5, np.float16))
  for kind, dim in (('i3d_flow', 1024), ('pann_audio', 2048)):
    (tmp_path / 'tvsum' / 'features_umt_f16' / kind).mkdir()
    for vid, rows in [('a', 5), ('b', 15), ('c', 10)]:
      rows += kind == 'pann_audio' and vid == 'b'  # One audio row too many, as in TVSum.
      np.savez(
          tmp_path / 'tvsum' / 'features_umt_f16' / kind / f'{vid}.npz',
          features=np.full((rows, dim), 0.25, np.float16),
      )
  fused = _examples(
      dcb.get_builder('tvsum_rgb_flow_audio', tmp_path / 'data', manual_dir=tmp_path / 'tvsum')
  )
  assert fused['b']['features'].shape == (15, 4096)  # Its last audio row dropped.
  np.testing.assert_array_equal(fused['b']['features'][:, 2048:], 0.25)
  builder = dcb.get_builder('tvsum', tmp_path / 'data', manual_dir=tmp_path / 'tvsum')
  train = _examples(builder)
  assert sorted(train) == ['a', 'b', 'c']  # The val video never enters.
  assert {v: ex['domain'].decode() for v, ex in train.items()} == {'a': 'BK', 'b': 'BK', 'c': 'VT'}
  assert train['b']['duration_s'] == 30.0
  assert train['b']['features'].shape == (15, 1024)
