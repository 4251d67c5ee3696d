"""The labelled benchmarks, YouTube Highlights and TVSum, opened from TFDS.

  videos = benchmarks.load_benchmark("tvsum", "val", manual_dir="../shared/data/tvsum")

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

from absl import logging
import numpy as np

from hl_jax.core import config_checks
from hl_jax.core import files

BENCHMARKS = ("youtube_highlights", "tvsum")


FEATURE_SETS = ("i3d_rgb", "i3d_rgb_flow", "i3d_rgb_flow_audio")


FEATURE_DIMS = {"i3d_rgb": 1024, "i3d_rgb_flow": 2048, "i3d_rgb_flow_audio": 4096}


SPLITS = ("train", "val", "other", "all")


# Per benchmark: (group field, label field) of its TFDS examples.
_FIELDS = {"youtube_highlights": ("domain", "match"), "tvsum": ("category", "scores")}


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
  """

  video_id: str
  group: str
  features: np.ndarray
  labels: np.ndarray
  text: np.ndarray | None = None

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
) -> list[Video]:
  """Loads one split of a benchmark, building its TFDS dataset first if needed.

  Args:
    benchmark: "youtube_highlights" or "tvsum".
    split: "train", "val" (the standard split), "other" (annotated videos
      outside it) or "all".
    manual_dir: the raw data, laid out like ../shared/data/<benchmark>; only
      read when the dataset is not built yet (None is fine then).
    data_dir: TFDS data_dir (None: TFDS's default, $TFDS_DATA_DIR or
      ~/tensorflow_datasets).
    feature_set: builder config: "i3d_rgb" (D=1024), "i3d_rgb_flow" (2048) or
      "i3d_rgb_flow_audio" (4096).

  Returns:
    The split's videos, sorted by (group, video_id).
  """
  config_checks.check_choice("benchmark", benchmark, BENCHMARKS)
  config_checks.check_choice("split", split, SPLITS)
  config_checks.check_choice("feature_set", feature_set, FEATURE_SETS)
  builder = _prepared_benchmark(benchmark, feature_set, data_dir, manual_dir)
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
      )
      for ex in builder.as_data_source(split=split)
  ]
  return sorted(videos, key=lambda v: (v.group, v.video_id))


def _prepared_benchmark(benchmark: str, feature_set: str, data_dir: Any, manual_dir: Any) -> Any:
  """The benchmark's builder, built from `manual_dir` if it is not yet."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  from tfds_builders.tvsum import tvsum_dataset_builder  # pylint: disable=g-import-not-at-top
  from tfds_builders.youtube_highlights import youtube_highlights_dataset_builder  # pylint: disable=g-import-not-at-top

  builder_class = {
      "youtube_highlights": youtube_highlights_dataset_builder.Builder,
      "tvsum": tvsum_dataset_builder.Builder,
  }[benchmark]
  if data_dir is not None:
    data_dir = os.path.expanduser(os.fspath(data_dir))
  if manual_dir is not None:
    manual_dir = os.path.expanduser(os.fspath(manual_dir))
  make = functools.partial(
      builder_class, config=feature_set, data_dir=data_dir, file_format="array_record"
  )
  builder = make()
  if builder.is_prepared():
    return builder
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
    # Processes building the same data_dir at once (the hosts of one job) race
    # to rename their finished copy into place; the loser reads the winner's.
    builder = make()
    if not builder.is_prepared():
      raise
  return builder
