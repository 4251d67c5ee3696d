"""Recurrence scores as the per-segment signal of a manifest corpus (`build`).

  built = recurrence_corpus.build("/data/my_corpus")   # writes recurrence/ and a new manifest

The library behind `python -m hl_jax.recurrence_build`, whose docstring
describes the files, what each score sees and the cost: every video's
segments are scored by `hl_jax.signals.recurrence.recurrence_scores` against
the other videos of its domain, the scores are written one file per video,
and the manifest is rewritten with a `segment_signal` column naming them.
No label is read.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import hashlib
import io
import json
import os
import pathlib
import re
from typing import Any, Sequence

from absl import app
from absl import logging
from etils import epath
import numpy as np

from hl_jax.core import files
from hl_jax.data import features_file
from hl_jax.signals import recurrence
from tfds_builders.duration_corpus import readers

COLUMN = "segment_signal"


SIGNAL_DIR = "recurrence"


CORPUS_DIR = "recurrence_corpus"


GROUP_BY = ("domain", "all")


_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


@dataclasses.dataclass(frozen=True)
class Manifest:
  """A manifest as read: its file, columns, raw rows and validated records."""

  path: pathlib.Path
  columns: list[str]
  rows: list[dict[str, Any]]
  records: list[readers.VideoRecord]


@dataclasses.dataclass(frozen=True)
class Built:
  """What `build` wrote: the new manifest, for `num_videos` videos of width D."""

  manifest: pathlib.Path
  num_videos: int
  feature_dim: int


def read_manifest(manual_dir: str | os.PathLike[str]) -> Manifest:
  """The manifest.csv / .jsonl of `manual_dir`, validated by the builder's reader."""
  records = readers.read_manifest(manual_dir)  # Errors name the file and line.
  path = pathlib.Path(str(readers.find_manifest(epath.Path(manual_dir))))
  with path.open(encoding="utf-8", newline="") as f:
    if path.suffix == ".csv":
      reader = csv.DictReader(f)
      rows = list(reader)
      columns = list(reader.fieldnames or [])
    else:
      rows = [json.loads(line) for line in f if line.strip()]
      columns = list(dict.fromkeys(key for row in rows for key in row))
  if [str(r.get("video_id")).strip() for r in rows] != [r.video_id for r in records]:
    raise ValueError(f"{path}: rows and parsed videos disagree; please report this")
  return Manifest(path, columns, rows, records)


def load_features(record: readers.VideoRecord) -> np.ndarray:
  """[T, D] float32 features of one video (a features file: .npy, or .npz key `features`)."""
  # Not readers.load_features: that one needs D in advance, here the first video sets it.
  path = pathlib.Path(str(record.feature_paths[0]))
  return features_file.read(path, where=f"{record.where}: feature file {path}")[0]


def load_all_features(records: Sequence[readers.VideoRecord]) -> list[np.ndarray]:
  """Every video's features, checking that they share one width D."""
  features = []
  for record in records:
    features.append(load_features(record))
    if features[-1].shape[1] != features[0].shape[1]:
      raise ValueError(
          f"{record.where}: features are {features[-1].shape[1]}-d but "
          f"video {records[0].video_id!r}'s are {features[0].shape[1]}-d"
      )
  return features


def score_videos(
    features: Sequence[np.ndarray], domains: Sequence[str], *, k: int = 20, group_by: str = "domain"
) -> list[np.ndarray]:
  """Per video, its [T_i] float32 recurrence against the other videos of its group.

  Args:
    features: per video, [T_i, D] features.
    domains: per video, its domain.
    k: neighbours of the kNN score.
    group_by: "domain": a video is compared with the other videos of its
      domain, or with all other videos if it is alone in it; "all": with all
      other videos.

  Returns:
    Per video, [T_i] float32 scores (`recurrence.recurrence_scores`).
  """
  if group_by not in GROUP_BY:
    raise ValueError(f"group_by={group_by!r}: expected one of {list(GROUP_BY)}")
  if len(features) < 2:
    raise ValueError(
        f"{len(features)} video(s): recurrence compares a video with "
        "other videos, so it needs at least 2"
    )
  groups = [str(d) for d in domains] if group_by == "domain" else ["all"] * len(features)
  size = collections.Counter(groups)
  shared = [i for i, g in enumerate(groups) if size[g] > 1]
  scores: list[np.ndarray] = [np.empty(0, np.float32)] * len(features)
  if shared:
    got = recurrence.recurrence_scores(
        [features[i] for i in shared], [groups[i] for i in shared], k=k
    )
    for i, s in zip(shared, got):
      scores[i] = s
  for i in (i for i, g in enumerate(groups) if size[g] == 1):
    others = [f for j, f in enumerate(features) if j != i]
    logging.info(
        "domain %r has one video: compared with all %d other videos", groups[i], len(others)
    )
    scores[i] = recurrence.recurrence_scores(
        [features[i]],
        ["all"],
        reference_features=others,
        reference_groups=["all"] * len(others),
        k=k,
    )[0]
  return scores


def signal_file_name(video_id: str) -> str:
  """`<video_id>.npy`; an id that is not a plain file name: cleaned, plus a hash of it."""
  if _SAFE_NAME.fullmatch(video_id):
    return f"{video_id}.npy"
  clean = re.sub(r"[^A-Za-z0-9._-]", "_", video_id)[:100]
  return f"{clean}-{hashlib.sha1(video_id.encode()).hexdigest()[:12]}.npy"


def _file_names(records: Sequence[readers.VideoRecord]) -> list[str]:
  """Score file names, distinct even on a case-insensitive file system."""
  names, seen = [signal_file_name(r.video_id) for r in records], {}
  for record, name in zip(records, names):
    other = seen.setdefault(name.casefold(), record.video_id)
    if other != record.video_id:
      raise ValueError(
          f"{record.where}: videos {other!r} and {record.video_id!r} "
          f"would share the score file {SIGNAL_DIR}/{name}; rename one"
      )
  return names


def _relocated(value: str, manual_dir: pathlib.Path, out_dir: pathlib.Path) -> str:
  """A path of a manifest in `manual_dir` as a manifest in `out_dir` must say it."""
  value = value.strip()
  if "://" in value or os.path.isabs(value):
    return value
  target = manual_dir / value
  relative = os.path.relpath(target, out_dir)
  if os.path.realpath(out_dir / relative) != os.path.realpath(target):
    return str(target)  # `..` out of a symlinked folder leads elsewhere.
  return pathlib.Path(relative).as_posix()


def _manifest_bytes(columns: Sequence[str], rows: Sequence[dict[str, Any]], suffix: str) -> bytes:
  if suffix == ".jsonl":
    return "".join(json.dumps(row) + "\n" for row in rows).encode("utf-8")
  text = io.StringIO()
  writer = csv.DictWriter(text, fieldnames=list(columns), lineterminator="\n")
  writer.writeheader()
  writer.writerows(
      {
          c: "" if row.get(c) is None else row[c] if isinstance(row[c], str) else json.dumps(row[c])
          for c in columns
      }
      for row in rows
  )
  return text.getvalue().encode("utf-8")


def _check_output(output: pathlib.Path, manifest: Manifest) -> None:
  """Refuses an output manifest the builder could not read, or the input itself."""
  if output.suffix not in (".csv", ".jsonl"):
    raise app.UsageError(f"--output_manifest={output} must end in .csv or .jsonl")
  if output.resolve() == manifest.path.resolve():
    raise app.UsageError(
        f"--output_manifest={output} is the input manifest; the "
        f"default is {manifest.path.parent / CORPUS_DIR / 'manifest.csv'}"
    )
  if output.name not in readers.MANIFEST_NAMES:
    logging.warning(
        "the builder reads only %s: rename %s before building",
        " / ".join(readers.MANIFEST_NAMES),
        output,
    )
    return
  for name in readers.MANIFEST_NAMES:
    if name != output.name and (output.parent / name).exists():
      raise ValueError(
          f"{output.parent / name} exists next to --output_manifest="
          f"{output}; the builder reads one manifest per folder: remove it"
      )


def build(
    manual_dir: str | os.PathLike[str],
    output_manifest: str | os.PathLike[str] | None = None,
    *,
    k: int = 20,
    group_by: str = "domain",
    overwrite: bool = False,
) -> Built:
  """Writes the score files and the new manifest (see the module docstring).

  Args:
    manual_dir: the folder of the input manifest.csv / manifest.jsonl.
    output_manifest: the new manifest (default
      `<manual_dir>/recurrence_corpus/manifest.csv`).
    k: neighbours of the kNN score.
    group_by: "domain" or "all" (`score_videos`).
    overwrite: replace an existing `segment_signal` column.

  Returns:
    The new manifest, the number of videos and their width D.
  """
  manual_dir = pathlib.Path(os.path.abspath(os.path.expanduser(manual_dir)))
  manifest = read_manifest(manual_dir)
  if COLUMN in manifest.columns and not overwrite:
    raise ValueError(
        f"{manifest.path} already has a {COLUMN!r} column; pass "
        "--overwrite to replace it with recurrence scores"
    )
  output = pathlib.Path(
      os.path.abspath(
          os.path.expanduser(output_manifest or manual_dir / CORPUS_DIR / "manifest.csv")
      )
  )
  _check_output(output, manifest)
  names = _file_names(manifest.records)
  features = load_all_features(manifest.records)
  scores = score_videos(features, [r.domain for r in manifest.records], k=k, group_by=group_by)
  (manual_dir / SIGNAL_DIR).mkdir(exist_ok=True)
  for name, score in zip(names, scores):
    data = io.BytesIO()
    np.save(data, np.asarray(score, np.float32))
    files.write_bytes(manual_dir / SIGNAL_DIR / name, data.getvalue())
  out_dir = output.parent
  out_dir.mkdir(parents=True, exist_ok=True)
  rows = [
      {
          **row,
          "feature_path": _relocated(str(row["feature_path"]), manual_dir, out_dir),
          COLUMN: _relocated(f"{SIGNAL_DIR}/{name}", manual_dir, out_dir),
      }
      for row, name in zip(manifest.rows, names)
  ]
  columns = manifest.columns + ([] if COLUMN in manifest.columns else [COLUMN])
  files.write_bytes(output, _manifest_bytes(columns, rows, output.suffix))
  return Built(output, len(rows), features[0].shape[1])
