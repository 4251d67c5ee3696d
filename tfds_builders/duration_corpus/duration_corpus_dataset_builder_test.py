"""Tests of the duration_corpus builder (array_record, no TensorFlow).

`tfds.testing.DatasetBuilderTestCase` needs TensorFlow, so the builder is
built with `download_and_prepare` into a tmp data_dir and read back with
`as_data_source`, as the trainer reads it.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time

import numpy as np
import pytest

from tfds_builders.duration_corpus import duration_corpus_dataset_builder as dcb
from tfds_builders.duration_corpus import readers
from tfds_builders.duration_corpus import synthetic

DUMMY_DATA = pathlib.Path(__file__).parent / 'dummy_data'
FEATURE_KEYS = {
    'video_id',
    'domain',
    'duration_s',
    'bucket',
    'signal',
    'pair_group',
    'features',
    'labels',
}
SHORT, LONG, REST = synthetic.SHORT, synthetic.LONG, synthetic.REST


def _examples(builder, split: str) -> dict[str, dict]:
  """All examples of a split, keyed by decoded video_id."""
  return {ex['video_id'].decode(): ex for ex in builder.as_data_source(split)}


def _manifest_config(dim: int = 8) -> dcb.DurationCorpusConfig:
  return dcb.DurationCorpusConfig(name=f'manifest_d{dim}', source='manifest', feature_dim=dim)


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
  return dcb.get_builder('synthetic_tiny', tmp_path_factory.mktemp('tfds'))


def test_name_and_configs():
  assert dcb.Builder.name == 'duration_corpus'
  assert list(dcb.Builder.builder_configs) == [
      'synthetic',
      'synthetic_tiny',
      'manifest',
      'manifest_ctr',
      'manifest_segment_signal',
      'youtube_highlights',
      'youtube_highlights_rgb_flow',
      'youtube_highlights_rgb_flow_audio',
      'tvsum',
      'tvsum_rgb_flow_audio',
  ]
  assert dcb.Builder(data_dir='/nonexistent').builder_config.name == 'synthetic'
  dims = {n: c.feature_dim for n, c in dcb.Builder.builder_configs.items()}
  assert dims == {
      'synthetic': 128,
      'synthetic_tiny': 16,
      'manifest': 1024,
      'manifest_ctr': 1024,
      'manifest_segment_signal': 1024,
      'youtube_highlights': 1024,
      'youtube_highlights_rgb_flow': 2048,
      'youtube_highlights_rgb_flow_audio': 4096,
      'tvsum': 1024,
      'tvsum_rgb_flow_audio': 4096,
  }


@pytest.mark.parametrize(
    'kwargs',
    [
        dict(source='video'),
        dict(bucketing='median'),
        dict(feature_dim=0),
        dict(short_max_s=50.0),
        dict(short_quantile=0.8),
    ],
)
def test_config_validation(kwargs):
  with pytest.raises(ValueError, match='config bad'):
    dcb.DurationCorpusConfig(name='bad', **kwargs)


def test_tiny_feature_spec(tiny):
  assert set(tiny.info.splits) == {'train', 'val'}
  assert tiny.info.features['bucket'].names == ['short', 'long', 'rest']
  assert tiny.info.features['features'].shape == (None, 16)
  train, val = _examples(tiny, 'train'), _examples(tiny, 'val')
  assert (len(train), len(val)) == (60, 12)
  for ex in list(train.values()) + list(val.values()):
    assert set(ex) == FEATURE_KEYS
    t = len(ex['labels'])
    assert ex['features'].shape == (t, 16) and ex['features'].dtype == np.float32
    assert ex['labels'].dtype == np.int32 and t >= 2
    d = float(ex['duration_s'])
    assert ex['bucket'] == (SHORT if d < 15 else LONG if d > 45 else REST)
    assert ex['signal'] == ex['duration_s'] and ex['pair_group'] == b''
  assert all((ex['labels'] == -1).all() for ex in train.values())
  assert set(ex['bucket'] for ex in train.values()) == {SHORT, LONG, REST}
  for ex in val.values():
    assert set(np.unique(ex['labels'])) == {0, 1}  # every val video has both


def test_synthetic_is_deterministic(tiny, tmp_path):
  config = dcb.Builder.builder_configs['synthetic_tiny']
  _, first = synthetic.generate(config.synthetic, 16)
  _, again = synthetic.generate(config.synthetic, 16)
  for name in first:
    assert first[name].features.tobytes() == again[name].features.tobytes()
    np.testing.assert_array_equal(first[name].highlight, again[name].highlight)
  rebuilt = dcb.get_builder('synthetic_tiny', tmp_path)
  for split in ('train', 'val'):
    a, b = _examples(tiny, split), _examples(rebuilt, split)
    assert a.keys() == b.keys()
    for vid, ex in a.items():
      for key in FEATURE_KEYS:
        assert np.asarray(ex[key]).tobytes() == np.asarray(b[vid][key]).tobytes()
  other = dataclasses.replace(config.synthetic, seed=1)
  assert synthetic.generate(other, 16)[1]['train'].features.tobytes() != (
      first['train'].features.tobytes()
  )


def test_default_synthetic_statistics():
  config = dcb.Builder.builder_configs['synthetic']
  lat, splits = synthetic.generate(config.synthetic, config.feature_dim)
  train, val = splits['train'], splits['val']
  assert len(train.video_ids) == 3000 and len(val.video_ids) == 120
  np.testing.assert_allclose(np.bincount(train.bucket) / 3000, 1 / 3, atol=0.04)
  expected = np.clip(np.rint(train.duration_s / 4), 2, 64)
  np.testing.assert_array_equal(train.num_segments, expected)
  assert train.junk_video[train.bucket == SHORT].mean() == pytest.approx(0.25, abs=0.04)
  assert not train.junk_video[train.bucket == LONG].any()
  assert np.isin(val.num_segments, np.arange(20, 41)).all()
  assert (np.bincount(val.bucket, minlength=3) > 0).all()
  assert val.highlight.mean() == pytest.approx(0.3, abs=0.03)
  assert val.junk_segment[~val.highlight].mean() == pytest.approx(0.2, abs=0.03)
  assert not (val.junk_segment & val.highlight).any()
  np.testing.assert_allclose(lat.highlight @ lat.junk, 0, atol=1e-12)


def test_default_synthetic_builds(tmp_path):
  builder = dcb.get_builder('synthetic', tmp_path)
  assert builder.info.splits['train'].num_examples == 3000
  assert builder.info.splits['val'].num_examples == 120
  assert builder.as_data_source('train')[0]['features'].shape[1] == 128


@pytest.mark.parametrize('other_process_finished', [True, False])
def test_get_builder_loses_a_build_race(tmp_path, monkeypatch, other_process_finished):
  """A concurrent build of the same data_dir that renamed its copy first."""
  real = dcb.Builder.download_and_prepare

  def racing(self, **kwargs):
    if other_process_finished:
      real(self, **kwargs)
    raise FileExistsError('Destination 1.0.0 already exists.')

  monkeypatch.setattr(dcb.Builder, 'download_and_prepare', racing)
  if other_process_finished:
    assert len(dcb.get_builder('synthetic_tiny', tmp_path).as_data_source('val')) == 12
  else:
    with pytest.raises(FileExistsError):
      dcb.get_builder('synthetic_tiny', tmp_path)


def test_domain_quantile_buckets():
  config = dcb.Builder.builder_configs['youtube_highlights']
  durations = np.array([10, 50, 30, 30, 90, 70, 20, 5.0])
  domains = ['a'] * 7 + ['b']
  ids = ['v0', 'v1', 'v3', 'v2', 'v4', 'v5', 'v6', 'v7']
  got = dcb.assign_buckets(durations, domains, ids, config)
  # Domain a, ranked: v0 10, v6 20, v2 30, v3 30, v1 50, v5 70, v4 90 (n=7):
  # 2 short, 2 long, 3 rest. Domain b has one video: rest.
  np.testing.assert_array_equal(got, [SHORT, REST, REST, REST, LONG, LONG, SHORT, REST])


def test_manifest_dummy_data(tmp_path):
  builder = dcb.get_builder(_manifest_config(), tmp_path, manual_dir=DUMMY_DATA)
  assert list(builder.info.splits) == ['train']
  train = _examples(builder, 'train')
  assert {v: int(ex['bucket']) for v, ex in train.items()} == {
      'clip_a': SHORT,
      'clip_b': SHORT,
      'clip_c': REST,
      'clip_d': LONG,
      'clip_e': LONG,
  }
  assert train['clip_e']['domain'] == b'all'
  assert train['clip_a']['domain'] == b'dog'
  expected = np.load(DUMMY_DATA / 'features' / 'clip_d.npz')['features']
  np.testing.assert_array_equal(train['clip_d']['features'], expected.astype(np.float32))
  np.testing.assert_array_equal(
      train['clip_a']['features'], np.load(DUMMY_DATA / 'features' / 'clip_a.npy')
  )
  assert all((ex['labels'] == -1).all() for ex in train.values())


def test_manifest_jsonl_absolute_paths(tmp_path):
  manual = tmp_path / 'manual'
  manual.mkdir()
  rows = [
      {
          'video_id': 'x',
          'duration_s': 7,
          'feature_path': str(DUMMY_DATA / 'features' / 'clip_a.npy'),
      },
      {
          'video_id': 'y',
          'duration_s': '99.5',
          'domain': 'dog',
          'feature_path': str(DUMMY_DATA / 'features' / 'clip_b.npz'),
      },
  ]
  (manual / 'manifest.jsonl').write_text('\n'.join(json.dumps(r) for r in rows) + '\n\n')
  builder = dcb.get_builder(_manifest_config(), tmp_path / 'data', manual_dir=manual)
  train = _examples(builder, 'train')
  assert (int(train['x']['bucket']), int(train['y']['bucket'])) == (SHORT, LONG)


def _write_feature_files(d: pathlib.Path) -> None:
  """The feature files that the bad manifests point at (D = 8)."""
  nan, inf = np.zeros((3, 8)), np.zeros((3, 8))
  nan[1, 2], inf[2, 0] = np.nan, np.inf
  arrays = {
      'ok': np.zeros((3, 8)),
      'nan': nan,
      'inf': inf,
      'wide': np.zeros((3, 9)),
      'empty': np.zeros((0, 8)),
      'flat': np.zeros(8),
  }
  for name, array in arrays.items():
    np.save(d / f'{name}.npy', array.astype(np.float32))
  np.savez(d / 'nokey.npz', feats=np.zeros((3, 8)))


def _csv(*rows: str) -> tuple[str, str]:
  return 'manifest.csv', 'video_id,duration_s,feature_path\n' + ''.join(r + '\n' for r in rows)


def _jsonl(*lines: str) -> tuple[str, str]:
  return 'manifest.jsonl', ''.join(line + '\n' for line in lines)


_OK_JSON = '{"video_id": "a", "duration_s": 3, "feature_path": "ok.npy"}'
BAD_MANIFESTS = [  # (manifest file, content), error, regex of the message
    (
        ('manifest.csv', 'video_id,feature_path\na,ok.npy\n'),
        ValueError,
        r'manifest.csv line 1: .*lacks column.*duration_s',
        'no column',
    ),
    (
        _csv('a,10,ok.npy', 'b,10,ok.npy,oops'),
        ValueError,
        r'manifest.csv line 3: malformed row',
        'extra field',
    ),
    (
        _csv('a,10,ok.npy', 'b,10'),
        ValueError,
        r'manifest.csv line 3: malformed row',
        'missing field',
    ),
    (
        _jsonl(_OK_JSON, '{"video_id": "b",'),
        ValueError,
        r'manifest.jsonl line 2: malformed JSON',
        'bad json',
    ),
    (_jsonl('[1, 2]'), ValueError, r'manifest.jsonl line 1: expected a JSON object', 'json list'),
    (_csv('a,,ok.npy'), ValueError, r'line 2 \(video a\): duration_s is missing', 'no duration'),
    (
        _jsonl('{"video_id": "a", "feature_path": "ok.npy"}'),
        ValueError,
        r'line 1 \(video a\): duration_s is missing',
        'no duration json',
    ),
    (
        _csv('a,-3,ok.npy'),
        ValueError,
        r'line 2 \(video a\): duration_s .-3. must be',
        'negative duration',
    ),
    (
        _csv('a,ten,ok.npy'),
        ValueError,
        r"video a\): duration_s 'ten' is not a number",
        'text duration',
    ),
    (
        _csv('a,nan,ok.npy'),
        ValueError,
        r'video a\): duration_s .nan. must be a finite',
        'nan duration',
    ),
    (
        _csv('a,10,ok.npy', 'b,10,missing.npy'),
        FileNotFoundError,
        r'line 3 \(video b\): feature file .*missing.npy not found',
        'no file',
    ),
    (
        _csv('a,10,wide.npy'),
        ValueError,
        r'video a\): features have dim 9 .*wide.npy.*feature_dim is 8',
        'wrong dim',
    ),
    (_csv('a,10,flat.npy'), ValueError, r'video a\): .*flat.npy has shape \(8,\)', 'not 2-d'),
    (
        _csv('a,10,empty.npy'),
        ValueError,
        r'video a\): .*empty.npy has zero segments',
        'zero segments',
    ),
    (
        _csv('a,10,nan.npy'),
        ValueError,
        r'video a\): 1 NaN/Inf values .*first at row 1',
        'nan features',
    ),
    (
        _csv('a,10,inf.npy'),
        ValueError,
        r'video a\): 1 NaN/Inf values .*first at row 2',
        'inf features',
    ),
    (
        _csv('a,10,nokey.npz'),
        ValueError,
        r"video a\): .*nokey.npz has no key 'features' \(keys: feats\)",
        'npz key',
    ),
    (
        _csv('a,10,ok.npy', 'b,20,ok.npy', 'a,30,ok.npy'),
        ValueError,
        r'line 4 \(video a\): duplicate video_id, first at line 2',
        'duplicate',
    ),
    (_csv(',10,ok.npy'), ValueError, r'line 2: video_id is missing', 'no video id'),
    (_csv(), ValueError, r'lists no videos', 'no rows'),
]


@pytest.mark.parametrize(
    'manifest,error,pattern', [pytest.param(*case[:3], id=case[3]) for case in BAD_MANIFESTS]
)
def test_manifest_bad_inputs(tmp_path, manifest, error, pattern):
  manual = tmp_path / 'manual'
  manual.mkdir()
  _write_feature_files(manual)
  (manual / manifest[0]).write_text(manifest[1])
  with pytest.raises(error, match=pattern):
    dcb.get_builder(_manifest_config(), tmp_path / 'data', manual_dir=manual)
  _assert_nothing_complete(tmp_path / 'data')


def _assert_nothing_complete(data_dir: pathlib.Path):
  """A failed build leaves no version folder and no dataset_info.json."""
  config_dir = data_dir / 'duration_corpus' / 'manifest_d8'
  assert not (config_dir / '1.0.0').exists()
  assert not list(data_dir.rglob('dataset_info.json'))
  assert not list(data_dir.rglob('*.array_record*'))


def test_missing_manifest(tmp_path):
  manual = tmp_path / 'manual'
  manual.mkdir()
  (manual / 'notes.txt').write_text('not a manifest')
  with pytest.raises(FileNotFoundError, match=r'no manifest in .*manual.*manifest.csv'):
    dcb.get_builder(_manifest_config(), tmp_path / 'data', manual_dir=manual)
  _assert_nothing_complete(tmp_path / 'data')


def test_both_manifests_is_an_error(tmp_path):
  for name in readers.MANIFEST_NAMES:
    (tmp_path / name).write_text('')
  with pytest.raises(ValueError, match='keep only one'):
    readers.read_manifest(tmp_path)


def _fake_youtube_highlights(root: pathlib.Path) -> None:
  """A YouTube Highlights layout: 3 usable videos, one val, two skipped."""
  anno = {
      v: {'domain': 'dog', 'fps': 25.0, 'frames': str(f)}
      for v, f in [('good', 500), ('good2', 2500), ('good3', 100), ('valvid', 300), ('nofeat', 400)]
  }
  splits = {
      'dog': {'train': ['good', 'good2', 'valvid', 'noanno', 'nofeat', 'good3'], 'val': ['valvid']}
  }
  (root / 'labels').mkdir(parents=True)
  (root / 'splits').mkdir()
  (root / readers.YTH_ANNOTATIONS).write_text(json.dumps(anno))
  (root / readers.YTH_SPLITS).write_text(json.dumps(splits))
  for feature_set in ('i3d_rgb', 'i3d_flow'):
    folder = root / 'features_umt_f16' / feature_set
    folder.mkdir(parents=True)
    for vid, rows in [('good', 9), ('good2', 49), ('good3', 1), ('valvid', 5)]:
      np.savez(folder / f'{vid}.npz', features=np.ones((rows, 1024), np.float16))


def test_youtube_highlights_layout_without_real_data(tmp_path):
  manual = tmp_path / 'yth'
  _fake_youtube_highlights(manual)
  records, skipped = readers.list_youtube_highlights(
      manual, 'features_umt_f16', ('i3d_rgb', 'i3d_flow')
  )
  assert [r.video_id for r in records] == ['good', 'good2', 'good3']
  assert records[0].duration_s == 20.0
  assert skipped == {
      'in_val_split': ['valvid'],
      'no_annotation': ['noanno'],
      'no_features': ['nofeat'],
  }
  builder = dcb.get_builder('youtube_highlights_rgb_flow', tmp_path / 'data', manual_dir=manual)
  train = _examples(builder, 'train')
  assert train['good2']['features'].shape == (49, 2048)
  assert [int(train[v]['bucket']) for v in ('good', 'good2', 'good3')] == [
      REST,
      LONG,
      SHORT,
  ]  # per-domain thirds of 3 videos


@pytest.mark.slow
def test_youtube_highlights_real_data(shared_data, tmp_path):
  data = shared_data / 'youtube_highlights'
  builders, seconds = {}, {}
  for name in ('youtube_highlights', 'youtube_highlights_rgb_flow'):
    start = time.perf_counter()
    builders[name] = dcb.get_builder(name, tmp_path, manual_dir=data)
    seconds[name] = round(time.perf_counter() - start, 2)
  print(f'build seconds: {seconds}')
  splits = json.loads((data / readers.YTH_SPLITS).read_text())
  train_ids = {v for d in splits.values() for v in d['train']}
  val_ids = {v for d in splits.values() for v in d['val']}
  rgb = _examples(builders['youtube_highlights'], 'train')
  assert len(rgb) == 234  # 247 train ids - 12 without annotation - 1 without features
  assert not rgb.keys() & val_ids
  assert rgb.keys() <= train_ids
  counts = np.bincount([int(ex['bucket']) for ex in rgb.values()], minlength=3)
  assert dict(zip(synthetic.BUCKET_NAMES, counts)) == {'short': 76, 'long': 76, 'rest': 82}
  for ex in rgb.values():
    assert ex['features'].shape == (len(ex['labels']), 1024)
    assert (ex['labels'] == -1).all()
  both = _examples(builders['youtube_highlights_rgb_flow'], 'train')
  assert both.keys() == rgb.keys()
  vid = sorted(rgb)[0]
  assert both[vid]['features'].shape == (len(rgb[vid]['labels']), 2048)
  np.testing.assert_array_equal(both[vid]['features'][:, :1024], rgb[vid]['features'])
  flow = np.load(data / 'features_umt_f16' / 'i3d_flow' / f'{vid}.npz')['features']
  np.testing.assert_array_equal(both[vid]['features'][:, 1024:], flow.astype(np.float32))


def test_shards_for_a_remote_data_dir_are_staged_locally(tmp_path, monkeypatch):
  """The gs:// path of StagedExampleWriter, on local paths (no GCS here)."""
  from tfds_builders.duration_corpus import file_writer  # pylint: disable=g-import-not-at-top

  direct = dcb.get_builder(_manifest_config(), tmp_path / 'direct', manual_dir=DUMMY_DATA)
  staged_paths = []
  real_write = dcb.tfds.core.writer.ExampleWriter.write

  def spy(self, path, examples):
    staged_paths.append(str(path))
    return real_write(self, path, examples)

  monkeypatch.setattr(file_writer, 'is_remote', lambda path: True)
  monkeypatch.setattr(dcb.tfds.core.writer.ExampleWriter, 'write', spy)
  staged = dcb.get_builder(_manifest_config(), tmp_path / 'staged', manual_dir=DUMMY_DATA)
  assert staged_paths and all('duration_corpus_shard_' in p for p in staged_paths)
  a, b = direct.as_data_source('train'), staged.as_data_source('train')
  assert [x['features'].tobytes() for x in a] == [x['features'].tobytes() for x in b]
  shards = sorted(staged.data_path.glob('*.array_record*'))
  assert [p.read_bytes() for p in shards] == [
      p.read_bytes() for p in sorted(direct.data_path.glob('*.array_record*'))
  ]
