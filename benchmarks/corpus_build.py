r"""Build time of a manifest corpus: plain generator vs Beam DirectRunner.

  python -m benchmarks.corpus_build --videos=2000 \
      --segments=16 --dim=1024 --workdir=/tmp/dc_bench

Writes a random manifest corpus (`--videos` .npy files of [segments, dim]),
builds it once without Beam and once per DirectRunner mode, checks that the
builds hold the same bytes, and prints the seconds. `--parse_rows=N` also
times parsing and bucketing an N-row manifest (the launcher's share of a
Beam build). Needs apache-beam for the Beam rows.
"""

from __future__ import annotations

import resource
import shutil
import time

from absl import app
from absl import flags
from etils import epath
import numpy as np

from tfds_builders.duration_corpus import duration_corpus_dataset_builder as dcb
from tfds_builders.duration_corpus import readers

_VIDEOS = flags.DEFINE_integer('videos', 2000, 'Videos in the corpus.')
_SEGMENTS = flags.DEFINE_integer('segments', 16, 'Segments per video.')
_DIM = flags.DEFINE_integer('dim', 1024, 'Feature width D.')
_WORKDIR = flags.DEFINE_string('workdir', '/tmp/duration_corpus_bench', 'Scratch.')
_MODES = flags.DEFINE_list(
    'modes', ['in_memory', 'multi_processing'], 'DirectRunner running modes to time.'
)
_PARSE_ROWS = flags.DEFINE_integer('parse_rows', 0, 'Also time an N-row manifest.')


def write_corpus(manual: epath.Path, videos: int, segments: int, dim: int) -> None:
  rng = np.random.default_rng(0)
  manual.mkdir(parents=True)
  lines = ['video_id,duration_s,domain,feature_path,ctr']
  for i in range(videos):
    np.save(manual / f'v{i}.npy', rng.normal(size=(segments, dim)).astype(np.float32))
    lines.append(f'v{i},{rng.uniform(5, 200):.2f},d{i % 6},v{i}.npy,' f'{rng.uniform(0, 0.1):.5f}')
  (manual / 'manifest.csv').write_text('\n'.join(lines) + '\n')


def time_parse(rows: int, workdir: epath.Path) -> None:
  manual = workdir / 'parse'
  manual.mkdir(parents=True)
  with (manual / 'manifest.csv').open('w') as f:
    f.write('video_id,duration_s,domain,feature_path,ctr\n')
    for i in range(rows):
      f.write(
          f'video_{i:08d},{5 + i % 200}.5,d{i % 6},' f'features/video_{i:08d}.npy,0.0{i % 97}\n'
      )
  config = dcb.DurationCorpusConfig(
      name='parse',
      source='manifest',
      signal='ctr',
      signal_direction='higher_is_better',
      bucketing='domain_quantile',
  )
  start = time.perf_counter()
  records = readers.read_manifest(manual, 'ctr')
  parsed = time.perf_counter() - start
  dcb.assign_buckets(
      np.array([r.signal for r in records]),
      [r.domain for r in records],
      [r.video_id for r in records],
      config,
  )
  bucketed = time.perf_counter() - start - parsed
  rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
  print(
      f'manifest of {rows} rows: parse {parsed:.1f} s, bucket '
      f'{bucketed:.1f} s, peak RSS {rss_gb:.2f} GB'
  )


def main(argv):
  del argv
  workdir = epath.Path(_WORKDIR.value)
  if workdir.exists():
    shutil.rmtree(workdir)
  if _PARSE_ROWS.value:
    time_parse(_PARSE_ROWS.value, workdir)
  manual = workdir / 'manual'
  write_corpus(manual, _VIDEOS.value, _SEGMENTS.value, _DIM.value)
  size_mb = _VIDEOS.value * _SEGMENTS.value * _DIM.value * 4 / 2**20
  print(
      f'{_VIDEOS.value} videos x {_SEGMENTS.value} segments x {_DIM.value} '
      f'float32 = {size_mb:.0f} MB of features'
  )
  config = dcb.DurationCorpusConfig(
      name=f'bench_d{_DIM.value}',
      source='manifest',
      feature_dim=_DIM.value,
      signal='ctr',
      signal_direction='higher_is_better',
      bucketing='domain_quantile',
  )
  runs = [('plain', {})]
  for mode in _MODES.value:
    # pylint: disable=g-import-not-at-top
    from apache_beam.options import pipeline_options
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    # The DirectRunner's Python engine (the DirectRunner itself first tries
    # to download the Prism runner binary).
    options = pipeline_options.PipelineOptions(direct_running_mode=mode, direct_num_workers=0)
    runs.append(
        (f'DirectRunner {mode}', {'beam_runner': fn_runner.FnApiRunner(), 'beam_options': options})
    )
  reference = None
  for name, kwargs in runs:
    start = time.perf_counter()
    builder = dcb.get_builder(config, workdir / name.replace(' ', '_'), manual_dir=manual, **kwargs)
    seconds = time.perf_counter() - start
    source = builder.as_data_source('train')
    ids = [source[i]['video_id'] for i in range(len(source))]
    reference = reference or ids
    same = 'same order' if ids == reference else 'DIFFERENT ORDER'
    print(f'{name:32s} {seconds:7.1f} s  {len(source)} examples, {same}')


if __name__ == '__main__':
  app.run(main)
