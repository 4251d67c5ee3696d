r"""Recurrence as a build step: a per-segment signal file for each video of a manifest corpus.

The label-free recurrence score of `hl_jax.signals.recurrence` (defaults: kNN, k=20,
cosine) becomes the `segment_signal` of a manifest corpus (see
tfds_builders/duration_corpus/README.md, "The `manifest` corpus"). The
duration_corpus config `manifest_segment_signal` then splits each video into
its most recurrent third (`<vid>#hi`, preferred) and its least recurrent third
(`<vid>#lo`), and the trainer pairs the two within the video. For I3D
features (1024-d, what `hl_jax.extract_corpus` writes):

  # 1. Scores and a manifest that names them (/data/my_corpus holds manifest.csv).
  python -m hl_jax.recurrence_build --manual_dir=/data/my_corpus
  # 2. The TFDS corpus, in a data_dir of its own (below).
  python -m tfds_builders.build duration_corpus/manifest_segment_signal \
      --manual_dir=/data/my_corpus/recurrence_corpus --data_dir=/data/tfds_recurrence
  # 3. Training (a manifest corpus has a train split only).
  python launch.py --config=configs/joint.py --workdir=/data/runs/my_corpus_recurrence \
      --config.corpus.builder_config=manifest_segment_signal \
      --config.corpus.manual_dir=/data/my_corpus/recurrence_corpus \
      --config.data_dir=/data/tfds_recurrence

The builder reads `manifest.csv` / `manifest.jsonl` of --manual_dir only, so
the new manifest goes to a folder of its own, by default
DIR/recurrence_corpus/manifest.csv. `manifest_segment_signal` is a registered
name and TFDS reuses a dataset already built under it: a data_dir that holds
one built from another per-segment signal (viewers) would silently give that
one, hence the separate data_dir. Another width D builds with `--feature_dim=D`
into `manifest_segment_signal_d<D>`; train with that name (the trainer reads
the within-video pairing from the examples' `pair_group`).

Which segments a score sees (transductive over the manifest, no labels): a
segment of video v is compared with the segments of the OTHER videos of the
manifest that share v's `domain` (--group_by=domain, the default; videos
without a domain form the domain 'all', as in the builder), or with those of
all other videos of the manifest (--group_by=all). v's own segments never
count. A video alone in its domain is compared with all other videos of the
manifest (logged). Only `feature_path` and `domain` are read: no label, no
duration, ctr or other column. A video's score thus depends on which other
videos the manifest lists (add or drop videos and it changes); videos you
evaluate on must not be in the manifest if the evaluation is to stay
inductive.

Files (all written atomically, a rerun on the same inputs gives
byte-identical files): DIR/recurrence/<video_id>.npy, [T] float32, T the
video's feature rows (an id that is not a plain file name gets a cleaned name
plus a hash of the id); the new manifest, last, so it exists only when every
score file does: the input manifest's rows, columns and order, `feature_path`
rewritten to be correct from the new manifest's folder (relative where it
can be, absolute else), plus a `segment_signal` column (relative paths to
the score files). A manifest that already has a `segment_signal` column is
refused unless --overwrite (which replaces that column). The output format
is the --output_manifest suffix: .csv or .jsonl. Local paths only.

Cost: all features are held in memory (sum of T x D x 4 bytes); the scores
take a [1024, M_g] similarity block at a time, M_g a domain's segments.
User errors end in one line, `hl_jax.recurrence_build: error: ...`, naming
the manifest, line, video or file.
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
