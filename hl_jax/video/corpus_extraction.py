"""Corpora from raw videos: sharded, resumable feature extraction and a manifest.

The library of the program `hl_jax.extract_corpus`, whose docstring (its
--help) documents the video list, the sharding, the files a shard writes and
what a rerun skips. Here: `read_video_list` (the list -> `ListedVideo`s),
`check_existing` (which features files this extractor already wrote),
`extract_videos`, `run_shard` (one shard: extract, write its manifest and
failures, merge if all shards are there) and `merge_manifests` (manifest.csv).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import io
import json
import os
import pathlib
import time
from typing import Any, Iterator, Sequence

from absl import logging

from hl_jax.core import cli
from hl_jax.core import files
from hl_jax.data import features_file
from hl_jax.video import extraction
from hl_jax.video import extractors

MANIFEST_COLUMNS = ("video_id", "duration_s", "domain", "feature_path")


LIST_COLUMNS = ("video", "video_id", "domain")


MAX_LISTED_FAILURES = 10


LOG_EVERY_S = 10.0


@dataclasses.dataclass(frozen=True)
class ListedVideo:
  """One video of the list.

  `index` (0-based; its shard is index % K), `line` in the list file, `path`
  (absolute), `video_id`, `domain` ('' if none), `extra` (carried columns).
  """

  index: int
  line: int
  path: str
  video_id: str
  domain: str
  extra: dict[str, str]


@dataclasses.dataclass
class ShardReport:
  """What `run_shard` did: counts, [(video, error)] failures, manifest.csv if written."""

  total: int
  skipped: int
  extracted: int
  failures: list[tuple[ListedVideo, str]]
  manifest: pathlib.Path | None


def _manifest_text(value: Any) -> str:
  """A list value as manifest text (JSON numbers and booleans as JSON, None as '')."""
  return "" if value is None else value if isinstance(value, str) else json.dumps(value)


def _list_rows(path: pathlib.Path) -> Iterator[tuple[int, dict[str, Any]]]:
  """(line number, row) of a text, .csv or .jsonl video list."""
  with path.open(newline="") as f:
    if path.suffix == ".csv":
      reader = csv.DictReader(f)
      if "video" not in (reader.fieldnames or []):
        raise ValueError(
            f"--videos={path}: a .csv list needs a header row with a "
            f"`video` column (got {reader.fieldnames or 'no header'})"
        )
      for row in reader:
        if None in row or None in row.values():
          raise ValueError(
              f"--videos={path} line {reader.line_num}: expected "
              f"{len(reader.fieldnames)} columns"
          )
        yield reader.line_num, row
      return
    for line, text in enumerate(f, 1):
      if path.suffix != ".jsonl" and text.strip() and not text.lstrip().startswith("#"):
        yield line, {"video": text.strip()}
      if path.suffix != ".jsonl" or not text.strip():
        continue
      try:
        row = json.loads(text)
      except json.JSONDecodeError as e:
        raise ValueError(f"--videos={path} line {line}: not JSON ({e})") from e
      if not isinstance(row, dict) or not isinstance(row.get("video"), str):
        raise ValueError(
            f"--videos={path} line {line}: expected an object with a " "`video` string"
        )
      yield line, row


def read_video_list(path: str | os.PathLike[str]) -> tuple[list[ListedVideo], list[str]]:
  """Reads --videos: (videos in list order, names of the carried columns).

  Raises ValueError naming the line(s) for a malformed line, an empty path, a
  bad or duplicate video_id or a column that clashes with the manifest's.
  """
  path = pathlib.Path(path).expanduser()
  if not path.is_file():
    raise FileNotFoundError(f"--videos={path}: no such file")
  base = path.resolve().parent
  videos, rows, carried, seen = [], [], [], {}
  for line, row in _list_rows(path):
    where = f"--videos={path} line {line}"
    for column in row:
      if column in ("duration_s", "feature_path"):
        raise ValueError(
            f"{where}: column {column!r} is written by the extraction (hl_jax.extract_corpus); rename it"
        )
      if column not in LIST_COLUMNS and column not in carried:
        carried.append(column)
    if not _manifest_text(row["video"]).strip():
      raise ValueError(f"{where}: empty video path")
    video = base / pathlib.Path(_manifest_text(row["video"]).strip()).expanduser()
    video_id = _manifest_text(row.get("video_id")).strip() or video.stem
    if video_id in (".", "..") or "/" in video_id or "\\" in video_id:
      raise ValueError(
          f"{where}: video_id {video_id!r} cannot name a file " "features/<video_id>.npz"
      )
    if video_id in seen:
      raise ValueError(
          f"{where}: video_id {video_id!r} is also line {seen[video_id]}; "
          "ids must be unique (give a video_id column)"
      )
    seen[video_id] = line
    videos.append((line, os.fspath(video), video_id, _manifest_text(row.get("domain")).strip()))
    rows.append(row)
  if not videos:
    raise ValueError(f"--videos={path}: no videos listed")
  # A column first seen on a later JSONL line is empty on the earlier ones.
  return [
      ListedVideo(i, *video, {c: _manifest_text(row.get(c)) for c in carried})
      for i, (video, row) in enumerate(zip(videos, rows))
  ], carried


def _difference(signature: dict[str, Any], want: dict[str, Any]) -> str:
  """What differs between a stored signature and this run's, e.g. "4-d features, this run 8-d"."""
  if signature["feature_dim"] != want["feature_dim"]:
    return f"{signature['feature_dim']}-d features, this run {want['feature_dim']}-d"
  return "; ".join(
      f"{k} {signature.get(k)!r}, this run {want[k]!r}" for k in want if signature.get(k) != want[k]
  )


def check_existing(
    videos: Sequence[ListedVideo],
    output_dir: pathlib.Path,
    extractor: extractors.Extractor,
    overwrite: bool = False,
) -> tuple[dict[int, float], list[ListedVideo]]:
  """({list index: duration} of videos with this extractor's features, videos to do).

  Raises ValueError naming a features file of another extractor or config, or
  unreadable, and what differs (with `overwrite`, such videos are to do).
  """
  want = extractor.signature()
  done, todo, conflicts = {}, [], []
  for video in videos:
    path = output_dir / "features" / f"{video.video_id}.npz"
    if not path.exists():
      todo.append(video)
      continue
    signature = features_file.read_signature(path)
    if signature == want:
      done[video.index] = features_file.read_duration(path)
      continue
    todo.append(video)
    conflicts.append(
        (
            path,
            "not a readable features file" if signature is None else _difference(signature, want),
        )
    )
  if conflicts and not overwrite:
    (path, why), more = conflicts[0], len(conflicts) - 1
    raise ValueError(
        f"{path}{f' (and {more} more)' if more else ''} was written by another "
        f"extractor or config ({why}); use another --output_dir, or "
        "--overwrite to re-extract it"
    )
  return done, todo


def _write_csv(path: pathlib.Path, columns: Sequence[str], rows: Sequence[dict[str, str]]):
  text = io.StringIO()
  writer = csv.DictWriter(text, fieldnames=list(columns), lineterminator="\n")
  writer.writeheader()
  writer.writerows(rows)
  files.write_text(path, text.getvalue())


def extract_videos(
    videos: Sequence[ListedVideo],
    output_dir: pathlib.Path,
    extractor: extractors.Extractor,
    *,
    decode_threads: int = 2,
    name: str = "",
    done_before: int = 0,
) -> tuple[dict[int, float], list[tuple[ListedVideo, str]]]:
  """Writes `videos`' features: ({list index: duration}, [(video, error)] of failures)."""
  durations, failures, segments = {}, [], 0
  start = last = time.monotonic()
  for count, result in enumerate(
      extraction.extract_many([v.path for v in videos], extractor, decode_threads=decode_threads), 1
  ):
    video = videos[result.index]
    if result.error is not None:
      error = f"{type(result.error).__name__}: {cli.message(result.error)}"
      logging.error("%s (list line %d): %s", video.path, video.line, error)
      failures.append((video, error))
    else:
      extraction.write_features(
          output_dir / "features" / f"{video.video_id}.npz", result, extractor, video.path
      )
      durations[video.index] = result.duration
      segments += len(result.features)
    now = time.monotonic()
    if now - last >= LOG_EVERY_S or count == len(videos):
      last, elapsed = now, max(now - start, 1e-9)
      eta = datetime.timedelta(seconds=round((len(videos) - count) * elapsed / count))
      logging.info(
          "%s: %d/%d videos done (%d failed), %.1f segments/s, ETA %s",
          name,
          done_before + count,
          done_before + len(videos),
          len(failures),
          segments / elapsed,
          eta,
      )
  failures.sort(key=lambda failure: failure[0].index)
  return durations, failures


def merge_manifests(
    videos: Sequence[ListedVideo],
    carried: Sequence[str],
    output_dir: pathlib.Path,
    num_shards: int,
    required: bool = False,
) -> pathlib.Path | None:
  """Writes manifest.csv from all K shard manifests (None: one is missing).

  Raises FileNotFoundError if `required` and one is missing, ValueError for a
  shard manifest of another list or a features file gone.
  """
  paths = [output_dir / f"manifest_shard{i}of{num_shards}.csv" for i in range(num_shards)]
  missing = ", ".join(p.name for p in paths if not p.exists())
  if missing and required:
    raise FileNotFoundError(
        f"no {missing} in {output_dir}: run those shards first "
        f"(--num_shards={num_shards} --shard_index=I)"
    )
  if missing:
    logging.info("%s: manifest.csv waits for %s", output_dir, missing)
    return None
  columns, rows = list(MANIFEST_COLUMNS) + list(carried), {}
  listed = {v.video_id: v for v in videos}
  for shard, path in enumerate(paths):
    with path.open(newline="") as f:
      reader = csv.DictReader(f)
      if reader.fieldnames != columns:
        raise ValueError(
            f"{path} has columns {reader.fieldnames}, not {columns}: from "
            "another list? use another --output_dir"
        )
      for row in reader:
        video = listed.get(row["video_id"])
        if video is None or video.index % num_shards != shard:
          raise ValueError(
              f"{path}: {row['video_id']!r} is not in shard {shard} of "
              "--videos: from another list? use another --output_dir"
          )
        if not (output_dir / row["feature_path"]).exists():
          raise ValueError(f"{path}: {row['feature_path']} is gone; rerun shard {shard}")
        rows[row["video_id"]] = row
  absent = [v.video_id for v in videos if v.video_id not in rows]
  if absent:
    logging.warning(
        "manifest.csv lacks %d of %d videos (failed, see failures_shard*." "jsonl): %s",
        len(absent),
        len(videos),
        ", ".join(absent[:10]),
    )
  manifest = output_dir / "manifest.csv"
  _write_csv(manifest, columns, [rows[v.video_id] for v in videos if v.video_id in rows])
  logging.info("wrote %s: %d videos", manifest, len(rows))
  return manifest


def run_shard(
    videos: Sequence[ListedVideo],
    carried: Sequence[str],
    output_dir: str | os.PathLike[str],
    extractor: extractors.Extractor,
    *,
    shard_index: int = 0,
    num_shards: int = 1,
    decode_threads: int = 2,
    overwrite: bool = False,
) -> ShardReport:
  """Extracts shard I of K, writes its manifest and failures, merges if all K are there.

  `videos` and `carried` are `read_video_list`'s (the whole list: shard I takes
  index % K == I); `overwrite` re-extracts features files of another extractor.
  """
  if not 0 <= shard_index < num_shards:
    raise ValueError(f"shard_index={shard_index} must be in [0, num_shards={num_shards})")
  output_dir = pathlib.Path(output_dir)
  (output_dir / "features").mkdir(parents=True, exist_ok=True)
  mine = [v for v in videos if v.index % num_shards == shard_index]
  name = f"shard {shard_index}/{num_shards}"
  durations, todo = check_existing(mine, output_dir, extractor, overwrite)
  logging.info(
      "%s: %d of %d listed videos; skipped %d already extracted, extracting %d " "(%s)",
      name,
      len(mine),
      len(videos),
      len(durations),
      len(todo),
      extractor.description,
  )
  failures = []
  if todo:
    extracted, failures = extract_videos(
        todo,
        output_dir,
        extractor,
        name=name,
        decode_threads=decode_threads,
        done_before=len(durations),
    )
    durations.update(extracted)
  failed = output_dir / f"failures_shard{shard_index}.jsonl"
  if failures:
    files.write_text(
        failed,
        "".join(
            json.dumps({"video_id": v.video_id, "video": v.path, "line": v.line, "error": error})
            + "\n"
            for v, error in failures
        ),
    )
  elif failed.exists():
    failed.unlink()  # From an earlier run; those videos are done now.
  rows = [
      {
          "video_id": v.video_id,
          "duration_s": repr(float(durations[v.index])),
          "domain": v.domain,
          "feature_path": f"features/{v.video_id}.npz",
          **v.extra,
      }
      for v in mine
      if v.index in durations
  ]
  _write_csv(
      output_dir / f"manifest_shard{shard_index}of{num_shards}.csv",
      list(MANIFEST_COLUMNS) + list(carried),
      rows,
  )
  return ShardReport(
      len(mine),
      len(mine) - len(todo),
      len(todo) - len(failures),
      failures,
      merge_manifests(videos, carried, output_dir, num_shards),
  )
