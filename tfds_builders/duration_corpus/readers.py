"""Readers for the file-backed duration corpora: a user manifest, YouTube Highlights.

Both produce `VideoRecord`s (id, domain, duration, weak signal, feature files)
that are validated before anything is written; `load_features` and
`load_segment_signal` read one video's arrays with checks that name the video
and the file on failure. Paths are `etils.epath` paths, so a manual_dir or a
feature_path may be local or on GCS / S3 (`gs://...`, needs gcsfs / s3fs).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
from typing import Any
import zipfile

from absl import logging
from etils import epath
import numpy as np

MANIFEST_NAMES = ('manifest.csv', 'manifest.jsonl')
REQUIRED_COLUMNS = ('video_id', 'duration_s', 'feature_path')
DEFAULT_DOMAIN = 'all'
NPZ_KEY = 'features'
SEGMENT_SIGNAL_NPZ_KEY = 'signal'
DURATION = 'duration_s'

YTH_ANNOTATIONS = 'labels/umt_youtube_anno.json'
YTH_SPLITS = 'splits/umt_youtube_splits.json'
TVSUM_ANNOTATIONS = 'labels/umt_tvsum_anno.json'
TVSUM_SPLITS = 'splits/umt_tvsum_splits.json'
# UMT-release sources: (annotations, splits) inside manual_dir.
UMT_LAYOUTS = {
    'youtube_highlights': (YTH_ANNOTATIONS, YTH_SPLITS),
    'tvsum': (TVSUM_ANNOTATIONS, TVSUM_SPLITS),
}


@dataclasses.dataclass(frozen=True)
class VideoRecord:
  """One video of a file-backed corpus.

  Attributes:
    video_id: unique id.
    domain: domain name.
    duration_s: duration in seconds, finite and > 0.
    feature_paths: files whose [T, D_i] arrays are concatenated per row.
    where: where the record came from, for error messages.
    signal: the per-video weak signal that buckets the video (duration_s
      unless the config names another manifest column); finite.
    segment_signal_path: a [T] per-segment signal file, or None.
  """

  video_id: str
  domain: str
  duration_s: float
  feature_paths: tuple[epath.Path, ...]
  where: str
  signal: float
  segment_signal_path: epath.Path | None = None


def find_manifest(manual_dir: epath.Path) -> epath.Path:
  """The manifest.csv or manifest.jsonl inside `manual_dir` (exactly one)."""
  found = [manual_dir / n for n in MANIFEST_NAMES if (manual_dir / n).is_file()]
  if not found:
    raise FileNotFoundError(
        f'no manifest in {manual_dir}: expected one of {", ".join(MANIFEST_NAMES)} '
        f'with columns {", ".join(REQUIRED_COLUMNS)} and optional domain'
    )
  if len(found) > 1:
    raise ValueError(f'both {found[0]} and {found[1]} exist; keep only one')
  return found[0]


def _csv_rows(path: epath.Path, required: tuple[str, ...]):
  """Yields (line number, row dict) of a CSV manifest, checking the shape."""
  with path.open('rb') as raw, io.TextIOWrapper(raw, 'utf-8', newline='') as f:
    reader = csv.DictReader(f)
    try:
      header = reader.fieldnames or []
      missing = [c for c in required if c not in header]
      if missing:
        raise ValueError(f'{path} line 1: header {header} lacks column(s) {missing}')
      for row in reader:
        if None in row or None in row.values():
          raise ValueError(
              f'{path} line {reader.line_num}: malformed row, expected '
              f'{len(header)} fields ({", ".join(header)})'
          )
        yield reader.line_num, row
    except (csv.Error, UnicodeDecodeError) as e:
      raise ValueError(f'{path} line {reader.line_num}: malformed CSV ({e})') from e


def _jsonl_rows(path: epath.Path):
  """Yields (line number, object) of a JSONL manifest, skipping blank lines."""
  with path.open('rb') as f:
    for line_num, raw in enumerate(f, start=1):
      try:
        line = raw.decode('utf-8')
      except UnicodeDecodeError as e:
        raise ValueError(f'{path} line {line_num}: not UTF-8 ({e})') from e
      if not line.strip():
        continue
      try:
        row = json.loads(line)
      except json.JSONDecodeError as e:
        raise ValueError(f'{path} line {line_num}: malformed JSON ({e.msg})') from e
      if not isinstance(row, dict):
        raise ValueError(f'{path} line {line_num}: expected a JSON object')
      yield line_num, row


def parse_number(value: Any, column: str, where: str) -> float:
  """A finite number from a manifest cell, else an error naming `where` and `column`."""
  if value is None or (isinstance(value, str) and not value.strip()):
    raise ValueError(f'{where}: {column} is missing')
  if isinstance(value, bool):
    raise ValueError(f'{where}: {column} {value!r} is not a number')
  try:
    number = float(value)
  except (TypeError, ValueError):
    raise ValueError(f'{where}: {column} {value!r} is not a number') from None
  if not math.isfinite(number):
    raise ValueError(f'{where}: {column} {value!r} must be a finite number')
  return number


def parse_duration(value: Any, where: str) -> float:
  """A duration in seconds: a finite number > 0, else an error naming `where`."""
  duration = parse_number(value, DURATION, where)
  if duration <= 0:
    raise ValueError(f'{where}: {DURATION} {value!r} must be a finite number > 0')
  return duration


def _path(manual_dir: epath.Path, row: dict[str, Any], column: str, where: str) -> epath.Path:
  """A path column of a manifest row, relative to manual_dir or absolute."""
  value = str(row.get(column) or '').strip()
  if not value:
    raise ValueError(f'{where}: {column} is missing')
  return manual_dir / value


def _domain_and_tags(row: dict[str, Any], where: str) -> str:
  """The `domain` feature: the domain, then the row's `tags` ('|'-separated).

  Video-level tags (hl_jax's corpus.tag) are read from this field: a row with
  domain 'dog' and tags 'pets|outdoor' is stored as 'dog|pets|outdoor'.
  """
  names = [str(row.get('domain') or '').strip()]
  names += str(row.get('tags') or '').split('|')
  names = list(dict.fromkeys(n.strip() for n in names if n.strip()))
  if any(',' in n for n in names):
    raise ValueError(f'{where}: tags are separated by "|", not ","')
  return '|'.join(names) or DEFAULT_DOMAIN


def read_manifest(
    manual_dir: os.PathLike[str] | str, signal: str = DURATION, segment_signal: str = ''
) -> list[VideoRecord]:
  """Parses and validates the manifest of `manual_dir` (files not opened yet).

  Args:
    manual_dir: folder with manifest.csv or manifest.jsonl; relative
      feature_path values are relative to it.
    signal: the column holding each video's weak signal (a finite number).
    segment_signal: '' or the column holding each video's per-segment signal
      file (relative to manual_dir or absolute).

  Returns:
    One record per manifest row, in file order.
  """
  manual_dir = epath.Path(manual_dir)
  path = find_manifest(manual_dir)
  required = tuple(
      dict.fromkeys(REQUIRED_COLUMNS + (signal,) + ((segment_signal,) if segment_signal else ()))
  )
  rows = _csv_rows(path, required) if path.suffix == '.csv' else _jsonl_rows(path)
  records, first_seen = [], {}
  for line_num, row in rows:
    where = f'{path} line {line_num}'
    video_id = str(row.get('video_id') or '').strip()
    if not video_id:
      raise ValueError(f'{where}: video_id is missing')
    where = f'{where} (video {video_id})'
    if video_id in first_seen:
      raise ValueError(f'{where}: duplicate video_id, first at line ' f'{first_seen[video_id]}')
    first_seen[video_id] = line_num
    duration = parse_duration(row.get(DURATION), where)
    value = duration if signal == DURATION else parse_number(row.get(signal), signal, where)
    feature_path = _path(manual_dir, row, 'feature_path', where)
    segment_path = _path(manual_dir, row, segment_signal, where) if segment_signal else None
    domain = _domain_and_tags(row, where)
    records.append(
        VideoRecord(video_id, domain, duration, (feature_path,), where, value, segment_path)
    )
  if not records:
    raise ValueError(f'{path} lists no videos')
  return records


def _load_array(
    path: epath.Path, where: str, npz_key: str = NPZ_KEY, what: str = 'feature file'
) -> np.ndarray:
  """The array of one .npy file, or key `npz_key` of one .npz file."""
  if not path.is_file():
    raise FileNotFoundError(f'{where}: {what} {path} not found')
  if path.suffix not in ('.npy', '.npz'):
    raise ValueError(f'{where}: {what} {path} must be .npy or .npz')
  try:
    with path.open('rb') as f:  # A file object, so that gs:// paths work too.
      if path.suffix == '.npy':
        return np.load(f, allow_pickle=False)
      with np.load(f, allow_pickle=False) as z:
        files = z.files
        if npz_key in files:
          return z[npz_key]
  except (ValueError, EOFError, OSError, zipfile.BadZipFile) as e:
    raise ValueError(
        f'{where}: {what} {path} is not a readable {path.suffix} ' f'file ({e})'
    ) from e
  raise ValueError(f'{where}: {path} has no key {npz_key!r} ' f'(keys: {", ".join(files)})')


def load_features(record: VideoRecord, feature_dim: int) -> np.ndarray:
  """Loads, checks and concatenates (per row) the feature files of one video.

  Args:
    record: the video.
    feature_dim: expected total width D.

  Returns:
    [T, D] float32 features, T > 0, all finite.
  """
  parts = []
  for path in record.feature_paths:
    a = _load_array(path, record.where)
    if a.ndim != 2:
      raise ValueError(f'{record.where}: {path} has shape {a.shape}, expected [T, D]')
    if a.shape[0] == 0:
      raise ValueError(f'{record.where}: {path} has zero segments')
    if parts and a.shape[0] == parts[0].shape[0] + 1:
      # One TVSum audio file has a row more than the video's I3D rows: drop
      # it, as the tvsum benchmark builder does (umt_release.load_features).
      logging.warning(
          '%s: %s has %d rows, %s %d; dropping its last row',
          record.where,
          path,
          a.shape[0],
          record.feature_paths[0],
          parts[0].shape[0],
      )
      a = a[:-1]
    if parts and a.shape[0] != parts[0].shape[0]:
      raise ValueError(
          f'{record.where}: {path} has {a.shape[0]} rows but '
          f'{record.feature_paths[0]} has {parts[0].shape[0]}'
      )
    parts.append(a.astype(np.float32))
  features = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
  if features.shape[1] != feature_dim:
    raise ValueError(
        f'{record.where}: features have dim {features.shape[1]} '
        f'({", ".join(str(p) for p in record.feature_paths)}), config '
        f'feature_dim is {feature_dim}'
    )
  bad = ~np.isfinite(features)
  if bad.any():
    rows = np.flatnonzero(bad.any(axis=1))
    raise ValueError(
        f'{record.where}: {bad.sum()} NaN/Inf values in '
        f'{len(rows)} segment(s), first at row {rows[0]}'
    )
  return features


def load_segment_signal(record: VideoRecord, num_segments: int) -> np.ndarray:
  """Loads and checks the per-segment signal of one video.

  Args:
    record: the video; `record.segment_signal_path` is a .npy [T] array or a
      .npz with key `signal` (any real dtype).
    num_segments: T of the video's features.

  Returns:
    [T] float64 signal, all finite.
  """
  path = record.segment_signal_path
  a = _load_array(path, record.where, SEGMENT_SIGNAL_NPZ_KEY, 'segment signal file')
  if a.ndim != 1:
    raise ValueError(f'{record.where}: segment signal {path} has shape {a.shape}, ' 'expected [T]')
  if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
    raise ValueError(
        f'{record.where}: segment signal {path} has dtype {a.dtype}, ' 'expected numbers'
    )
  if len(a) != num_segments:
    raise ValueError(
        f'{record.where}: segment signal {path} has {len(a)} values but the '
        f'features ({", ".join(str(p) for p in record.feature_paths)}) have '
        f'{num_segments} segments'
    )
  a = a.astype(np.float64)
  bad = ~np.isfinite(a)
  if bad.any():
    raise ValueError(
        f'{record.where}: segment signal {path} has {bad.sum()} '
        f'NaN/Inf values, first at segment {np.flatnonzero(bad)[0]}'
    )
  return a


def list_youtube_highlights(
    manual_dir: os.PathLike[str] | str,
    feature_root: str,
    feature_sets: tuple[str, ...],
    source: str = 'youtube_highlights',
) -> tuple[list[VideoRecord], dict[str, list[str]]]:
  """The TRAIN-split videos of YouTube Highlights (or TVSum) with all feature sets.

  source='tvsum' reads TVSum's UMT release the same way
  (labels/umt_tvsum_anno.json, splits/umt_tvsum_splits.json: {category:
  {train, val}}); the domain is then the TVSum category.

  Layout (as in the UMT release): labels/umt_youtube_anno.json gives domain,
  fps and frames per video; splits/umt_youtube_splits.json gives
  {domain: {train: [...], val: [...]}}; <feature_root>/<set>/<vid>.npz holds
  key `features`. duration_s = frames / fps. Val videos never enter, even if a
  train list repeats one.

  Args:
    manual_dir: the dataset folder.
    feature_root: folder of the feature sets, relative to manual_dir.
    feature_sets: feature set folder names, concatenated in this order.

  Returns:
    (records sorted by domain then split order, skipped ids by reason).
  """
  manual_dir = epath.Path(manual_dir)
  docs = []
  annotations, splits_file = UMT_LAYOUTS[source]
  for rel in (annotations, splits_file):
    path = manual_dir / rel
    if not path.is_file():
      raise FileNotFoundError(
          f'{path} not found: manual_dir must be ' f'laid out like the {source} UMT release'
      )
    try:
      doc = json.loads(path.read_bytes().decode('utf-8'))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
      raise ValueError(f'{path}: malformed JSON ({e})') from e
    if not isinstance(doc, dict) or not all(isinstance(v, dict) for v in doc.values()):
      raise ValueError(f'{path}: expected a JSON object of objects, as in the UMT ' 'release')
    docs.append(doc)
  anno, splits = docs
  val_ids = {v for d in splits.values() for v in d.get('val', [])}
  records, skipped = [], {'in_val_split': [], 'no_annotation': [], 'no_features': []}
  for domain in sorted(splits):
    for vid in splits[domain].get('train', []):
      paths = tuple(manual_dir / feature_root / s / f'{vid}.npz' for s in feature_sets)
      if vid in val_ids:
        skipped['in_val_split'].append(vid)
      elif vid not in anno:
        skipped['no_annotation'].append(vid)
      elif not all(p.is_file() for p in paths):
        skipped['no_features'].append(vid)
      else:
        where = f'{manual_dir / annotations} (video {vid})'
        try:
          duration = float(anno[vid]['frames']) / float(anno[vid]['fps'])
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as e:
          raise ValueError(f'{where}: bad frames / fps ({e!r})') from e
        duration = parse_duration(duration, where)
        records.append(VideoRecord(vid, domain, duration, paths, where, signal=duration))
  return records, skipped
