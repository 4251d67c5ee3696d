"""The features file: one video's segment features, as hl_jax writes and reads them.

  <video>.npy   [T, D] numbers
  <video>.npz   "features" [T, D], and optional scalars:
                segment_seconds, stride_seconds, duration_seconds (seconds);
                as hl_jax's extractors write it also frames_per_segment,
                frame_size, resize_shorter (0: none), fixed_rate, extractor
                and video (strings): the extractor's signature.

`write` writes the .npz whole or not at all; `read` checks a file of either
kind (numbers, finite, T > 0) and its time scalars, every error one line that
names the file; `read_signature` tells which extractor and decoding made a
file without reading its features (a cache of features checks it).
"""

from __future__ import annotations

import os
import pathlib
from typing import Any, Mapping
import zipfile

import numpy as np

from hl_jax.core import files

KEY = "features"
TIME_KEYS = ("segment_seconds", "stride_seconds", "duration_seconds")


def write(
    output: str | os.PathLike[str],
    features: np.ndarray,
    duration: float,
    decode: Mapping[str, Any],
    *,
    extractor: str,
    video: str,
) -> None:
  """Writes the .npz that `read` (and `hl_jax.predict --features`) reads.

  Args:
    output: the .npz path.
    features: [T, D] segment features.
    duration: the video's length in seconds.
    decode: the decoding (`dataclasses.asdict` of a video.decoding.DecodeConfig:
      segment_seconds, frames_per_segment, frame_size, resize_shorter, fixed_rate).
    extractor: the extractor's description.
    video: the video file.
  """
  output = pathlib.Path(output)
  if output.suffix != ".npz":
    raise ValueError(f"output {output} must end in .npz")
  output.parent.mkdir(parents=True, exist_ok=True)
  with files.atomic_output(output) as partial, partial.open("wb") as f:
    np.savez(
        f,
        features=np.asarray(features).astype(np.float32),
        segment_seconds=np.float64(decode["segment_seconds"]),
        stride_seconds=np.float64(decode["segment_seconds"]),
        duration_seconds=np.float64(duration),
        frames_per_segment=np.int64(decode["frames_per_segment"]),
        frame_size=np.int64(decode["frame_size"]),
        resize_shorter=np.int64(decode["resize_shorter"] or 0),
        fixed_rate=np.bool_(decode["fixed_rate"]),
        extractor=np.str_(extractor),
        video=np.str_(os.path.abspath(video)),
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

  The keys of `video.extractors.Extractor.signature()`; the width comes from
  the features array's header, the array is not read.
  """
  try:
    with zipfile.ZipFile(path) as archive, archive.open(f"{KEY}.npy") as f:
      version = np.lib.format.read_magic(f)
      shape = (
          np.lib.format.read_array_header_1_0
          if version == (1, 0)
          else np.lib.format.read_array_header_2_0
      )(f)[0]
    with np.load(path, allow_pickle=False) as data:
      return {
          "extractor": str(data["extractor"]),
          "segment_seconds": float(data["segment_seconds"]),
          "frames_per_segment": int(data["frames_per_segment"]),
          "frame_size": int(data["frame_size"]),
          "resize_shorter": int(data["resize_shorter"]) or None,
          "fixed_rate": bool(data["fixed_rate"]),
          "feature_dim": shape[1] if len(shape) == 2 else 0,
      }
  except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
    return None


def read_duration(path: str | os.PathLike[str]) -> float:
  """The duration_seconds of an .npz an extractor wrote."""
  with np.load(path, allow_pickle=False) as data:
    return float(data["duration_seconds"])
