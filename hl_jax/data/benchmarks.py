"""The labelled benchmarks, YouTube Highlights and TVSum, opened from TFDS.

  videos = benchmarks.load_benchmark("tvsum", "val", manual_dir="../shared/data/tvsum")

manual_dir may hold any release the builders read (our staged copy, UMT's or
lighthouse's: tfds_builders/layouts.py); `layout` "auto" detects which.
Every labelled video, whether of a benchmark or of a corpus's labelled split,
is a `Video`; hl_jax.eval scores lists of them. The builders
(tfds_builders/) are imported inside the functions, so that hl_jax imports
without their dependencies (and the builders import nothing from hl_jax).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import os
import pathlib
from typing import Any, Iterator

from absl import flags
from absl import logging
import numpy as np

from hl_jax.core import config_checks
from hl_jax.core import files

BENCHMARKS = ("youtube_highlights", "tvsum")


# The builders' configs: I3D (+ flow, + audio) from our staged copy or UMT's
# release; CLIP (+ SlowFast) from lighthouse's.
FEATURE_SETS = ("i3d_rgb", "i3d_rgb_flow", "i3d_rgb_flow_audio", "clip", "clip_slowfast")


FEATURE_DIMS = {
    "i3d_rgb": 1024,
    "i3d_rgb_flow": 2048,
    "i3d_rgb_flow_audio": 4096,
    "clip": 512,
    "clip_slowfast": 2816,
}


# Where a builder reads its raw data from (tfds_builders.layouts.CHOICES).
LAYOUTS = ("auto", "staged", "umt", "lighthouse")


SPLITS = ("train", "val", "other", "all")


# Per benchmark: (group field, label field) of its TFDS examples.
_FIELDS = {"youtube_highlights": ("domain", "match"), "tvsum": ("category", "scores")}


TVSUM_SHOT_SECONDS = 2.0


@dataclasses.dataclass(frozen=True, eq=False)
class Video:
  """One labelled video.

  Attributes:
    video_id: the video's id.
    group: what the headline metric averages over: domain (corpus, YouTube
      Highlights) or category (TVSum).
    features: [T, D] float32 clip features.
    labels: corpus: [T] 0/1 highlight; youtube_highlights: [T] int match in
      {-1, 0, 1}; tvsum: [T, 20] float annotator scores 1..5.
    text: [L, 512] float32 title tokens (TVSum: CLIP tokens of the title);
      None where the benchmark has no text (YouTube Highlights, corpus videos).
    segments_s: [T, 2] float64 start and end of each clip, seconds (YouTube
      Highlights: the annotated frame windows over fps, so they overlap;
      TVSum: 2-s shots); None where unknown (corpus videos).
  """

  video_id: str
  group: str
  features: np.ndarray
  labels: np.ndarray
  text: np.ndarray | None = None
  segments_s: np.ndarray | None = None

  @property
  def num_clips(self) -> int:
    return len(self.labels)


@contextlib.contextmanager
def _quiet_build(what: str) -> Iterator[None]:
  """One log line when TFDS builds `what`; TFDS's own prints at --verbosity=1."""
  printed = io.StringIO()
  with contextlib.redirect_stdout(printed):
    yield
  if printed.getvalue().strip():
    logging.info("Built %s (first use; later runs read it)", what)
    logging.vlog(1, "%s", printed.getvalue().strip())


def load_benchmark(
    benchmark: str,
    split: str,
    *,
    manual_dir: str | os.PathLike[str] | None,
    data_dir: str | os.PathLike[str] | None = None,
    feature_set: str = "i3d_rgb",
    layout: str = "auto",
) -> list[Video]:
  """Loads one split of a benchmark, building its TFDS dataset first if needed.

  Args:
    benchmark: "youtube_highlights" or "tvsum".
    split: "train", "val" (the standard split), "other" (annotated videos
      outside it) or "all".
    manual_dir: the raw data: our staged copy (../shared/data/<benchmark>),
      UMT's release or lighthouse's; only read when the dataset is not built
      yet (None is fine then).
    data_dir: TFDS data_dir (None: TFDS's default, $TFDS_DATA_DIR or
      ~/tensorflow_datasets).
    feature_set: builder config: "i3d_rgb" (D=1024), "i3d_rgb_flow" (2048),
      "i3d_rgb_flow_audio" (4096), "clip" (512) or "clip_slowfast" (2816;
      lighthouse's release only).
    layout: "auto" (detect the release in manual_dir) or "staged", "umt",
      "lighthouse" (insist on one); a data_dir holding the dataset built from
      another named layout is refused.

  Returns:
    The split's videos, sorted by (group, video_id).
  """
  config_checks.check_choice("benchmark", benchmark, BENCHMARKS)
  config_checks.check_choice("split", split, SPLITS)
  config_checks.check_choice("feature_set", feature_set, FEATURE_SETS)
  config_checks.check_choice("layout", layout, LAYOUTS)
  builder = _prepared_benchmark(benchmark, feature_set, data_dir, manual_dir, layout)
  if split not in builder.info.splits and split != "all":
    return []  # e.g. "other" of TVSum, where every video is in the split
  group_key, label_key = _FIELDS[benchmark]
  videos = [
      Video(
          video_id=files.as_text(ex["video_id"]),
          group=files.as_text(ex[group_key]),
          features=np.asarray(ex["features"], np.float32),
          labels=np.asarray(ex[label_key]),
          text=(np.asarray(ex["title_tokens"], np.float32) if benchmark == "tvsum" else None),
          segments_s=_segments_s(benchmark, ex),
      )
      for ex in builder.as_data_source(split=split)
  ]
  return sorted(videos, key=lambda v: (v.group, v.video_id))


def load_split(benchmark: str, split: str, **options: Any) -> list[Video]:
  """`load_benchmark(benchmark, split, **options)`, refusing a split without videos.

  Raises:
    ValueError: the split has no videos (naming the benchmark and split).
  """
  videos = load_benchmark(benchmark, split, **options)
  if not videos:
    raise ValueError(f"{benchmark} split {split!r} has no videos")
  return videos


def built_layout(
    benchmark: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    feature_set: str = "i3d_rgb",
) -> str | None:
  """The layout a built benchmark dataset was read from (None: not built)."""
  from tfds_builders import layouts  # pylint: disable=g-import-not-at-top

  return layouts.built_from(_builder_class(benchmark)(**_builder_args(feature_set, data_dir)))


def _segments_s(benchmark: str, example: dict[str, Any]) -> np.ndarray:
  """[T, 2] clip times in seconds from a TFDS example (see `Video.segments_s`).

  YouTube Highlights examples carry each clip's frame window and the fps in
  every layout; TVSum's shots are 2 s (lighthouse's TVSum has no fps).
  """
  if benchmark == "youtube_highlights":
    return np.asarray(example["clips"], np.float64) / float(example["fps"])
  starts = np.arange(len(example["scores"]), dtype=np.float64) * TVSUM_SHOT_SECONDS
  return np.stack([starts, starts + TVSUM_SHOT_SECONDS], axis=1)


def _builder_class(benchmark: str) -> Any:
  from tfds_builders.tvsum import tvsum_dataset_builder  # pylint: disable=g-import-not-at-top
  from tfds_builders.youtube_highlights import youtube_highlights_dataset_builder  # pylint: disable=g-import-not-at-top

  return {
      "youtube_highlights": youtube_highlights_dataset_builder.Builder,
      "tvsum": tvsum_dataset_builder.Builder,
  }[benchmark]


def _builder_args(feature_set: str, data_dir: Any) -> dict[str, Any]:
  if data_dir is not None:
    data_dir = os.path.expanduser(os.fspath(data_dir))
  return {"config": feature_set, "data_dir": data_dir, "file_format": "array_record"}


def _prepared_benchmark(
    benchmark: str, feature_set: str, data_dir: Any, manual_dir: Any, layout: str = "auto"
) -> Any:
  """The benchmark's builder, built from `manual_dir` (in `layout`) if it is not yet."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  if manual_dir is not None:
    manual_dir = os.path.expanduser(os.fspath(manual_dir))
  make = functools.partial(
      _builder_class(benchmark), layout=layout, **_builder_args(feature_set, data_dir)
  )
  builder = make()
  if builder.is_prepared():
    return builder
  if files.is_remote(data_dir or ""):
    raise FileNotFoundError(
        not_built_remotely(f"{benchmark}/{feature_set}", data_dir, f"--manual_dir={manual_dir}")
    )
  if manual_dir is None or not pathlib.Path(manual_dir).is_dir():
    raise FileNotFoundError(
        f"{benchmark}/{feature_set} is not built in {builder.data_dir} and manual_dir "
        f"{manual_dir} is not a directory:{builder.MANUAL_DOWNLOAD_INSTRUCTIONS}"
    )
  try:
    with _quiet_build(f"{benchmark}/{feature_set} in {builder.data_dir}"):
      builder.download_and_prepare(
          download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
      )
  except OSError:
    # Processes building the same local or POSIX data_dir at once (the hosts
    # of one job) race to rename their finished copy into place; the loser
    # reads the winner's. (Never on cloud storage: refused above.)
    builder = make()
    if not builder.is_prepared():
      raise
  return builder


def not_built_remotely(name: str, data_dir: Any, build_flags: str) -> str:
  """The one-line error for a dataset missing from a data_dir on cloud storage.

  Such datasets are built once, before the job, and copied there: ArrayRecord
  writes local files only, and TFDS's final rename of a build is a copy and a
  delete on an object store, so hosts building at once would clash.
  """
  return (
      f"{name} is not built in {data_dir}; a data_dir on cloud storage is read, never "
      f"built into: build it once locally (python -m tfds_builders.build {name} "
      f"--data_dir=/tmp/tfds {build_flags}), copy /tmp/tfds/{name.split('/')[0]} into "
      f"{data_dir}/ (gcloud storage cp -r), then start the job (WORKSPACE.md, Data)"
  )


def define_source_flags() -> None:
  """--manual_dir, --layout and --data_dir: where a program finds a benchmark's data."""
  flags.DEFINE_string(
      "manual_dir",
      None,
      "Raw benchmark data: our staged copy (../shared/data/<benchmark>), UMT's or "
      "lighthouse's release; needed to build the TFDS dataset the first time.",
  )
  flags.DEFINE_enum(
      "layout",
      "auto",
      LAYOUTS,
      "Which release --manual_dir holds: our staged copy, UMT's or lighthouse's "
      "(auto: detect it).",
  )
  flags.DEFINE_string("data_dir", None, "TFDS data_dir (default: TFDS's).")


def source_from_flags() -> dict[str, Any]:
  """`load_benchmark`'s manual_dir, layout and data_dir from `define_source_flags`' flags."""
  return {name: getattr(flags.FLAGS, name) for name in ("manual_dir", "layout", "data_dir")}
