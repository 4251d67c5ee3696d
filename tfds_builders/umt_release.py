"""Readers and feature sets shared by the YouTube Highlights and TVSum builders.

A builder reads one of three layouts of the same benchmark (`layouts`): our
staged copy (../shared/data/<name>/), UMT's data release or lighthouse's. Each
gives per-video annotations in UMT's form ({video_id: {...}}, as UMT's
*_anno.json), a {group: {"train": [ids], "val": [ids]}} split, and one feature
file per video and feature kind, one row per clip. This module reads those
files, checked: every error names the file, video or key at fault.

Feature kinds are I3D RGB (1024-d), I3D optical flow (1024-d), PANN audio
(2048-d), CLIP image features (512-d) and SlowFast R50 (2304-d); a feature set
concatenates kinds clip by clip. Files are opened through `etils.epath` (as
TFDS does), never by path with `open` / `np.load`, so a manual_dir may be
local or on GCS (`gs://...`).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any
import zipfile

from absl import logging
from etils import epath
import numpy as np
import tensorflow_datasets as tfds

KIND_DIMS = {"i3d_rgb": 1024, "i3d_flow": 1024, "pann_audio": 2048, "clip": 512, "slowfast": 2304}


@dataclasses.dataclass(eq=False)
class FeatureSetConfig(tfds.core.BuilderConfig):
  """A feature set: the kinds concatenated per clip, in this order."""

  kinds: tuple[str, ...] = ()

  @property
  def dim(self) -> int:
    return sum(KIND_DIMS[k] for k in self.kinds)


FEATURE_SETS = (
    FeatureSetConfig(
        name="i3d_rgb", kinds=("i3d_rgb",), description="I3D RGB features, 1024-d per clip."
    ),
    FeatureSetConfig(
        name="i3d_rgb_flow",
        kinds=("i3d_rgb", "i3d_flow"),
        description="I3D RGB and optical flow concatenated, 2048-d per clip.",
    ),
    FeatureSetConfig(
        name="i3d_rgb_flow_audio",
        kinds=("i3d_rgb", "i3d_flow", "pann_audio"),
        description="I3D RGB, flow and PANN audio concatenated, 4096-d per clip.",
    ),
    # lighthouse's features for these benchmarks (its `clip` and
    # `clip_slowfast`); YouTube Highlights has no I3D there.
    FeatureSetConfig(
        name="clip",
        kinds=("clip",),
        description="CLIP image features, 512-d per clip (lighthouse release).",
    ),
    FeatureSetConfig(
        name="clip_slowfast",
        kinds=("clip", "slowfast"),
        description="CLIP and SlowFast concatenated, 2816-d per clip (lighthouse release).",
    ),
)


def load_json(path: epath.PathLike) -> Any:
  """Parses a JSON file; a missing or malformed file raises naming the path."""
  path = epath.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"{path} not found in the manual_dir")
  try:
    with path.open("rb") as f:
      return json.loads(f.read().decode("utf-8"))
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise ValueError(f"malformed JSON in {path}: {e}") from e


def load_jsonl(path: epath.PathLike) -> list[dict[str, Any]]:
  """Parses a JSON-lines file of objects (blank lines skipped).

  Raises:
    FileNotFoundError: naming the path.
    ValueError: naming the file and line, for a line that is not a JSON object.
  """
  path = epath.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"{path} not found in the manual_dir")
  with path.open("rb") as f:
    lines = f.read().decode("utf-8", errors="replace").splitlines()
  rows = []
  for number, line in enumerate(lines, 1):
    if not line.strip():
      continue
    try:
      row = json.loads(line)
    except json.JSONDecodeError as e:
      raise ValueError(f"malformed JSON in {path} line {number}: {e}") from e
    if not isinstance(row, dict):
      raise ValueError(
          f"{path} line {number}: expected a JSON object, not a " f"{type(row).__name__}"
      )
    rows.append(row)
  return rows


def load_array(path: epath.Path, key: str | None = None) -> np.ndarray:
  """A .npy file's array, or array `key` of a .npz, read through a file object.

  Raises:
    ValueError: naming the file, if it is not a readable .npy / .npz or the
      .npz has no `key`.
  """
  try:
    with path.open("rb") as f:
      if key is None:
        return np.load(f, allow_pickle=False)
      with np.load(f, allow_pickle=False) as data:
        if key not in data.files:
          raise KeyError(f"{path}: no key {key!r} (keys: {sorted(data.files)})")
        return data[key]
  except (ValueError, EOFError, OSError, zipfile.BadZipFile) as e:
    raise ValueError(f"{path}: not a readable {path.suffix} file ({e})") from e


def field(anno: dict[str, Any], video_id: str, key: str, source: epath.Path) -> Any:
  """`anno[key]`, or a KeyError that names the video, the key and the file."""
  try:
    return anno[key]
  except (KeyError, TypeError):
    raise KeyError(f"video {video_id}: no key {key!r} in {source}") from None


def array_field(
    anno: dict[str, Any], video_id: str, key: str, source: epath.Path, dtype: type
) -> np.ndarray:
  """`anno[key]` as an array; a missing key or ragged list raises naming the video."""
  value = field(anno, video_id, key, source)
  try:
    return np.asarray(value, dtype)
  except (TypeError, ValueError) as e:
    raise ValueError(
        f"video {video_id}: {key!r} in {source} is not a regular " f"{dtype.__name__} array: {e}"
    ) from e


def fps_and_frames(anno: dict[str, Any], video_id: str, source: epath.Path) -> tuple[float, int]:
  """`fps` (> 0) and `frames` (a whole number > 0) of one video, checked.

  UMT's files hold frames as a string ("842"), lighthouse's as a float (842.0).
  """
  fps = field(anno, video_id, "fps", source)
  frames = field(anno, video_id, "frames", source)
  try:
    fps, frames_float = float(fps), float(frames)
  except (TypeError, ValueError):
    raise ValueError(
        f"video {video_id}: fps {fps!r} and frames {frames!r} in " f"{source} must be numbers"
    ) from None
  if not fps > 0 or not frames_float > 0 or not frames_float.is_integer():
    raise ValueError(
        f"video {video_id}: fps {fps} and frames {frames} in {source} "
        "must be > 0 (frames a whole number)"
    )
  return fps, int(frames_float)


def check_splits(raw: Any, where: str, annotated: set[str]) -> dict[str, dict[str, list[str]]]:
  """Checks {group: {"train": ids, "val": ids}} and drops ids without annotations.

  UMT drops split ids that its annotation file lacks (27 of 419 in YouTube
  Highlights); the count is logged, never dropped silently.

  Args:
    raw: the split, as parsed from a file or taken from `umt_splits`.
    where: what it came from, for messages (a path or a module name).
    annotated: video ids with annotations.

  Returns:
    {group: {"train": [ids], "val": [ids]}}, annotated ids only, groups sorted.
  """
  if not isinstance(raw, dict):
    raise ValueError(
        f'{where}: expected {{group: {{"train": [ids], "val": [ids]}}}}, '
        f"not a {type(raw).__name__}"
    )
  splits, seen, dropped = {}, {}, []
  for group, by_split in sorted(raw.items()):
    splits[group] = {}
    for split in ("train", "val"):
      ids = by_split.get(split) if isinstance(by_split, dict) else None
      if not isinstance(ids, (list, tuple)):
        raise ValueError(f"{where}: group {group!r} has no list {split!r}")
      for vid in ids:
        if vid in seen:
          raise ValueError(f"{where}: video {vid} listed twice ({seen[vid]}, {group}/{split})")
        seen[vid] = f"{group}/{split}"
      dropped += [v for v in ids if v not in annotated]
      splits[group][split] = [v for v in ids if v in annotated]
  if dropped:
    logging.warning(
        "%s: %d split video ids have no annotation and are skipped " "(as UMT does), e.g. %s",
        where,
        len(dropped),
        sorted(dropped)[:5],
    )
  return splits


def read_splits(path: epath.Path, annotated: set[str]) -> dict[str, dict[str, list[str]]]:
  """`check_splits` of a split JSON file."""
  return check_splits(load_json(path), str(path), annotated)


def load_kind(release: Any, kind: str, video_id: str) -> np.ndarray:
  """Loads one feature kind of one video, checked.

  Args:
    release: a `layouts.Release` (where the files are).
    kind: a key of KIND_DIMS.
    video_id: the video.

  Returns:
    [T, KIND_DIMS[kind]] float16, all finite.
  """
  found = release.feature_file(kind, video_id)
  if found is None:
    raise FileNotFoundError(
        f"video {video_id}: no {kind} features "
        f"({' or '.join(map(str, release.feature_paths(kind, video_id)))})"
    )
  path, key = found
  array = load_array(path, key)
  if array.ndim != 2 or array.shape[1] != KIND_DIMS[kind]:
    raise ValueError(
        f"{path}: video {video_id} {kind} features have shape "
        f"{array.shape}, expected [T, {KIND_DIMS[kind]}]"
    )
  # The staged release is float16 already; UMT's raw I3D is float64 and its
  # audio float32: they are cast, and a value that overflows float16 becomes
  # inf and is caught below.
  with np.errstate(over="ignore"):
    array = array.astype(np.float16)
  if not np.isfinite(array).all():
    bad = np.argwhere(~np.isfinite(array))[0]
    raise ValueError(
        f"{path}: video {video_id} {kind} features hold NaN/Inf "
        f"(first at row {bad[0]}, column {bad[1]})"
    )
  return array


def load_features(
    release: Any, kinds: tuple[str, ...], video_id: str, num_clips: int
) -> np.ndarray:
  """Loads and concatenates the feature kinds of one video, aligned to its labels.

  A kind with exactly one row more than the labels (one TVSum audio file) is
  truncated to the label length and logged; any other mismatch raises.

  Args:
    release: a `layouts.Release` (where the files are).
    kinds: feature kinds to concatenate, in order.
    video_id: the video.
    num_clips: number of label rows T.

  Returns:
    [T, sum of the kinds' dims] float16.
  """
  parts = []
  for kind in kinds:
    array = load_kind(release, kind, video_id)
    if len(array) == num_clips + 1:
      logging.warning(
          "video %s: %s features have %d rows, labels %d; dropping the " "last row",
          video_id,
          kind,
          len(array),
          num_clips,
      )
      array = array[:num_clips]
    elif len(array) != num_clips:
      raise ValueError(
          f"video {video_id}: {kind} features have {len(array)} rows "
          f"but the labels have {num_clips} clips"
      )
    parts.append(array)
  return np.concatenate(parts, axis=1)


def check_groups(
    splits: dict[str, dict[str, list[str]]],
    anno: dict[str, Any],
    key: str,
    sources: dict[str, epath.Path],
) -> None:
  """Raises if a split lists a video under a group its annotation disagrees with."""
  for group, by_split in splits.items():
    for vid in by_split["train"] + by_split["val"]:
      if field(anno[vid], vid, key, sources[vid]) != group:
        raise ValueError(
            f"video {vid}: {key} {anno[vid][key]!r} in {sources[vid]} but "
            f"the split lists it under {group!r}"
        )
