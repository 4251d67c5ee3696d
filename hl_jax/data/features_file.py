"""The features file: one video's segment features, as hl_jax writes and reads them.

  <video>.npy   [T, D] numbers
  <video>.npz   "features" [T, D], and optional scalars:
                segment_seconds, stride_seconds, duration_seconds (seconds);
                as hl_jax's extractors write it also frames_per_segment,
                frame_size, resize_shorter (0: none), fixed_rate, extractor
                and video (strings), "signature" (JSON: the extractor's
                signature) and "feature_space" (a string, below).

`write` writes the .npz whole or not at all; `read` checks a file of either
kind (numbers, finite, T > 0) and its time scalars, every error one line that
names the file; `read_signature` tells which extractor and decoding made a
file without reading its features (a cache of features checks it).

Feature spaces: which network and preprocessing made a file's numbers, as one
string. A model scores only features of the space it was trained on
(hl_jax.highlights.scorers.check_feature_space); its workdir records the
space of its training features. The benchmarks' staged features (UMT's
release) are v-iashin/video_features' I3D of DeepMind's ImageNet-inflated
checkpoints, "video_features/i3d_rgb_imagenet" for i3d_rgb
(`staged_feature_space`); hl_jax's extractors name theirs ("hl_jax/..."), and
its i3d_imagenet extractor reproduces the staged one. `read_feature_space`
reads a file's (files written before the key existed: from their
extractor's description); `corpus_feature_space` tells a training corpus's.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
from typing import Any, Mapping
import zipfile

import numpy as np

from hl_jax.core import files

KEY = "features"
TIME_KEYS = ("segment_seconds", "stride_seconds", "duration_seconds")

UNKNOWN_SPACE = "unknown"
SYNTHETIC_SPACE = "synthetic"
VIDEO_FEATURES_RGB_SPACE = "video_features/i3d_rgb_imagenet"
# A benchmark feature's parts (as the builders name them) and where each came from:
# v-iashin/video_features' I3D RGB and flow (PWC-Net) streams of DeepMind's ImageNet-inflated
# checkpoints and PANNs' Cnn14 audio (UMT's release), lighthouse's CLIP and SlowFast.
COMPONENT_SPACES = {
    "i3d_rgb": VIDEO_FEATURES_RGB_SPACE,
    "i3d_flow": "video_features/i3d_flow_imagenet",
    "pann_audio": "panns/cnn14",
    "clip": "lighthouse/clip",
    "slowfast": "lighthouse/slowfast",
}
# A benchmark feature set's parts, in the order they are concatenated.
FEATURE_SET_COMPONENTS = {
    "i3d_rgb": ("i3d_rgb",),
    "i3d_rgb_flow": ("i3d_rgb", "i3d_flow"),
    "i3d_rgb_flow_audio": ("i3d_rgb", "i3d_flow", "pann_audio"),
    "clip": ("clip",),
    "clip_slowfast": ("clip", "slowfast"),
}
# How many files of a manifest corpus `corpus_feature_space` reads.
MANIFEST_SAMPLE = 64


def write(
    output: str | os.PathLike[str],
    features: np.ndarray,
    duration: float,
    decode: Mapping[str, Any],
    *,
    extractor: str,
    video: str,
    signature: Mapping[str, Any] | None = None,
    feature_space: str | None = None,
) -> None:
  """Writes the .npz that `read` (and `hl_jax.predict --features`) reads.

  Args:
    output: the .npz path.
    features: [T, D] segment features.
    duration: the video's length in seconds.
    decode: the decoding: segment_seconds, optional stride_seconds (default
      segment_seconds), frames_per_segment, frame_size, resize_shorter and
      optional fixed_rate (`dataclasses.asdict` of a video.decoding.DecodeConfig).
    extractor: the extractor's description.
    video: the video file.
    signature: the extractor's signature (JSON-able), what `read_signature`
      returns; None: rebuilt on reading from the scalars above.
    feature_space: the space of the features (None: not recorded).
  """
  output = pathlib.Path(output)
  if output.suffix != ".npz":
    raise ValueError(f"output {output} must end in .npz")
  output.parent.mkdir(parents=True, exist_ok=True)
  extra = {}
  if signature is not None:
    extra["signature"] = np.str_(json.dumps(dict(signature), sort_keys=True))
  if feature_space is not None:
    extra["feature_space"] = np.str_(feature_space)
  with files.atomic_output(output) as partial, partial.open("wb") as f:
    np.savez(
        f,
        features=np.asarray(features).astype(np.float32),
        segment_seconds=np.float64(decode["segment_seconds"]),
        stride_seconds=np.float64(decode.get("stride_seconds", decode["segment_seconds"])),
        duration_seconds=np.float64(duration),
        frames_per_segment=np.int64(decode["frames_per_segment"]),
        frame_size=np.int64(decode["frame_size"]),
        resize_shorter=np.int64(decode["resize_shorter"] or 0),
        fixed_rate=np.bool_(decode.get("fixed_rate", False)),
        extractor=np.str_(extractor),
        video=np.str_(os.path.abspath(video)),
        **extra,
    )


def read(
    path: str | os.PathLike[str], where: str | None = None
) -> tuple[np.ndarray, dict[str, float]]:
  """A features file's [T, D] float32 features and its time scalars.

  Args:
    path: a .npy or .npz file.
    where: how errors name the file (default: its path).

  Returns:
    (features, {time key: seconds} of the TIME_KEYS the file has).

  Raises:
    FileNotFoundError: no such file.
    ValueError: one line naming the file: not .npy / .npz, unreadable, no
      "features" array, not a [T, D] array of numbers with T, D > 0, a
      non-finite feature, a time scalar that is not one finite number > 0.
  """
  path = pathlib.Path(path)
  where = where or str(path)
  if path.suffix not in (".npy", ".npz"):
    raise ValueError(f"{where}: features must be a .npy or .npz file")
  if not path.is_file():
    raise FileNotFoundError(f"{where}: no such features file")
  try:
    if path.suffix == ".npy":
      features, raw = np.load(path, allow_pickle=False), {}
    else:
      with np.load(path, allow_pickle=False) as data:
        keys = sorted(data.files)
        if KEY not in keys:
          raise KeyError(KEY)
        features = data[KEY]
        raw = {k: data[k] for k in TIME_KEYS if k in keys}
  except KeyError:
    raise ValueError(f"{where} has no {KEY!r} array (keys: {keys})") from None
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
    writer = "numpy.save" if path.suffix == ".npy" else "numpy.savez"
    text = " ".join(str(e).split()) or type(e).__name__
    raise ValueError(
        f"{where}: not a readable {path.suffix} file ({text}); is it "
        f"truncated, or not written by {writer}?"
    ) from e
  if features.ndim != 2 or not len(features) or not features.shape[1]:
    raise ValueError(
        f"{where}: features of shape {features.shape}, expected [T, D], " "T > 0, D > 0"
    )
  if features.dtype.kind not in "iuf":
    raise ValueError(f"{where}: features of dtype {features.dtype}, expected numbers")
  features = features.astype(np.float32)
  finite = np.isfinite(features).all(axis=1)
  if not finite.all():
    raise ValueError(
        f"{where}: non-finite feature in segment {int(np.argmin(finite))} "
        f"({int((~finite).sum())} of {len(features)} segments)"
    )
  return features, {k: _seconds(where, k, v) for k, v in raw.items()}


def _seconds(where: str, key: str, value: np.ndarray) -> float:
  """A time scalar of a .npz (segment_seconds, ...): a finite number > 0."""
  if value.size != 1 or value.dtype.kind not in "iuf":
    raise ValueError(
        f"{where}: {key!r} is a {value.dtype} array of shape {value.shape}, "
        "expected one number of seconds"
    )
  seconds = float(value.reshape(()))
  if not (np.isfinite(seconds) and seconds > 0):
    raise ValueError(
        f"{where}: {key!r} is {seconds}, expected a finite number of "
        "seconds > 0; fix or remove that key"
    )
  return seconds


def read_signature(path: str | os.PathLike[str]) -> dict[str, Any] | None:
  """The extractor signature a features file was written with (None if unreadable).

  The keys of `video.extractors.Extractor.signature()`: the stored JSON, or
  for a file without one, rebuilt from its scalars; the width comes from the
  features array's header, the array is not read.
  """
  try:
    with zipfile.ZipFile(path) as archive, archive.open(f"{KEY}.npy") as f:
      version = np.lib.format.read_magic(f)
      shape = (
          np.lib.format.read_array_header_1_0
          if version == (1, 0)
          else np.lib.format.read_array_header_2_0
      )(f)[0]
    width = shape[1] if len(shape) == 2 else 0
    with np.load(path, allow_pickle=False) as data:
      if "signature" in data.files:
        stored = json.loads(str(data["signature"]))
        return {**stored, "feature_dim": width} if isinstance(stored, dict) else None
      return {
          "extractor": str(data["extractor"]),
          "segment_seconds": float(data["segment_seconds"]),
          "frames_per_segment": int(data["frames_per_segment"]),
          "frame_size": int(data["frame_size"]),
          "resize_shorter": int(data["resize_shorter"]) or None,
          "fixed_rate": bool(data["fixed_rate"]),
          "feature_dim": width,
      }
  except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
    return None


def read_duration(path: str | os.PathLike[str]) -> float:
  """The duration_seconds of an .npz an extractor wrote."""
  with np.load(path, allow_pickle=False) as data:
    return float(data["duration_seconds"])


# ----------------------------------------------------------------------------
# Feature spaces.


def staged_feature_space(feature_set: str) -> str:
  """The feature space of a benchmark feature set ("i3d_rgb" -> "video_features/i3d_rgb_imagenet")."""
  return components_space(FEATURE_SET_COMPONENTS.get(feature_set, (feature_set,)))


def components_space(components: tuple[str, ...] | list[str]) -> str:
  """The space of benchmark features concatenated from `components` ("i3d_rgb", ...)."""
  return "+".join(COMPONENT_SPACES.get(c, f"benchmark/{c}") for c in components)


def description_space(description: str) -> str:
  """The feature space of a file hl_jax wrote before it recorded one, from its extractor's
  description (UNKNOWN_SPACE if it is not one of hl_jax's)."""
  if description.startswith("i3d deepmind/kinetics-i3d data/checkpoints/rgb_scratch"):
    return "hl_jax/i3d_rgb_scratch"
  untrained = re.match(r"SegmentEmbedder (seed \d+|weights .+?)(?: \(untrained|$)", description)
  if untrained:
    return f"hl_jax/untrained {untrained.group(1)}"
  return UNKNOWN_SPACE


def read_feature_space(path: str | os.PathLike[str]) -> str:
  """A features file's feature space: its "feature_space", else what its "extractor" implies,
  else UNKNOWN_SPACE (a .npy, or an .npz hl_jax did not write)."""
  if pathlib.Path(path).suffix != ".npz":
    return UNKNOWN_SPACE
  try:
    with np.load(path, allow_pickle=False) as data:
      if "feature_space" in data.files:
        return str(data["feature_space"])
      if "extractor" in data.files:
        return description_space(str(data["extractor"]))
  except (OSError, ValueError, EOFError, zipfile.BadZipFile):
    pass
  return UNKNOWN_SPACE


def corpus_feature_space(builder_config: str, manual_dir: str | None = None) -> str:
  """The feature space of a duration_corpus builder config's features.

  Synthetic configs: SYNTHETIC_SPACE. Benchmark configs: their feature sets'
  (`components_space`). Manifest configs: the space of the features files
  its manifest in `manual_dir` lists (the first MANIFEST_SAMPLE of them; two
  spaces joined by " | " if they differ); UNKNOWN_SPACE without a readable
  manifest, or for a config that is not registered (a corpus opened from its
  folder).
  """
  # pylint: disable=g-import-not-at-top  (the corpus builder, only when asked)
  from tfds_builders.duration_corpus import duration_corpus_dataset_builder as dcb
  from tfds_builders.duration_corpus import readers

  config = dcb.Builder.builder_configs.get(builder_config)
  if config is None:
    return UNKNOWN_SPACE
  if config.source == "synthetic":
    return SYNTHETIC_SPACE
  if config.source != "manifest":
    return components_space(tuple(config.feature_sets))
  if not manual_dir:
    return UNKNOWN_SPACE
  try:
    records = readers.read_manifest(manual_dir)
  except (OSError, ValueError, KeyError):
    return UNKNOWN_SPACE
  spaces = sorted(
      {read_feature_space(os.fspath(r.feature_paths[0])) for r in records[:MANIFEST_SAMPLE]}
  )
  return " | ".join(spaces) or UNKNOWN_SPACE
