"""YouTube Highlights (Sun, Farhadi, Seitz, ECCV 2014) with UMT's or lighthouse's clip features.

Build it from the repo root, without TensorFlow (the `tfds build` CLI needs it):

  python -c "
  import tensorflow_datasets as tfds
  from tfds_builders.youtube_highlights import youtube_highlights_dataset_builder as b
  b.Builder(config='i3d_rgb', file_format='array_record').download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir='../shared/data/youtube_highlights'))"

manual_dir may hold our staged copy, UMT's release or lighthouse's
(`tfds_builders.layouts`); the builder detects which, or
`Builder(..., layout="umt")` insists on one. lighthouse ships CLIP and
SlowFast features only, so it builds the `clip` and `clip_slowfast` configs;
the staged copy and UMT's release build the I3D / audio ones.

With TensorFlow installed, `PYTHONPATH=. tfds build tfds_builders/youtube_highlights
--manual_dir=... --config=i3d_rgb --file_format=array_record` should do the
same (untested: this project runs without TensorFlow). Without data_dir, TFDS
uses $TFDS_DATA_DIR or ~/tensorflow_datasets.
`hl_jax.data.benchmarks.load_benchmark` builds it on first use.
"""

from __future__ import annotations

from typing import Any

from absl import logging
from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from tfds_builders import layouts
from tfds_builders import umt_release
from tfds_builders import umt_splits

ANNOTATIONS = "labels/umt_youtube_anno.json"  # of the staged layout
SPLITS = "splits/umt_youtube_splits.json"


def lighthouse_entry(row: dict[str, Any], vid: str, source: epath.Path) -> dict[str, Any]:
  """A row of lighthouse's jsonl as UMT's annotation; its `label` must be match > 0.

  lighthouse's rows carry UMT's fields (domain, fps, frames, clip, match) next
  to its own `label` [[match > 0]] per clip and `duration` (frames / fps).
  """
  entry = {
      k: umt_release.field(row, vid, k, source)
      for k in ("domain", "fps", "frames", "clip", "match")
  }
  match = umt_release.array_field(row, vid, "match", source, np.float64)
  label = umt_release.array_field(row, vid, "label", source, np.float64)
  if label.shape != (len(match), 1) or (label[:, 0] != (match > 0)).any():
    raise ValueError(f"video {vid}: 'label' in {source} is not [[match > 0]] per clip")
  return entry


LAYOUTS = {
    "staged": layouts.staged("youtube", ("i3d_rgb", "i3d_flow", "pann_audio")),
    "umt": layouts.umt("youtube", umt_splits.YOUTUBE_SPLITS),
    "lighthouse": layouts.lighthouse("youtube_highlight", lighthouse_entry),
}


class Builder(layouts.ReleaseBuilder):
  """YouTube Highlights: per-clip highlight labels and features, 6 domains."""

  name = "youtube_highlights"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "UMT annotations, UMT train/val split, float16 features."}
  BUILDER_CONFIGS = list(umt_release.FEATURE_SETS)
  DEFAULT_CONFIG_NAME = "i3d_rgb"
  LAYOUTS = LAYOUTS
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
  Point manual_dir at one of these layouts (see this folder's README.md, "Get the data"):
    staged:     {LAYOUTS["staged"].expects}
    umt:        {LAYOUTS["umt"].expects}
    lighthouse: {LAYOUTS["lighthouse"].expects}
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict(
            {
                "video_id": tfds.features.Text(),
                "domain": tfds.features.Text(),
                "fps": tfds.features.Scalar(np.float32),
                "frames": tfds.features.Scalar(np.int32),
                "duration_s": tfds.features.Scalar(np.float32),
                "clips": tfds.features.Tensor(shape=(None, 2), dtype=np.int32),
                "match": tfds.features.Tensor(shape=(None,), dtype=np.int8),
                "features": tfds.features.Tensor(
                    shape=(None, self.builder_config.dim),
                    dtype=np.float16,
                    encoding=tfds.features.Encoding.BYTES,
                ),
            }
        ),
        homepage="https://github.com/aliensunmin/DomainSpecificHighlight",
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    release = self._open_release(dl_manager.manual_dir)
    labels, ids = release.labels, self._split_ids(release)
    without = sorted(v for v in labels.entries if not release.has_any_features(v))
    if without:
      logging.warning(
          "youtube_highlights: %d of %d annotated videos have no feature "
          "files of any kind and are skipped: %s",
          len(without),
          len(labels.entries),
          without,
      )
    ids = {s: [v for v in vids if v not in without] for s, vids in ids.items()}
    return {s: self._generate_examples(release, vids) for s, vids in ids.items() if vids}

  def _example(self, release: layouts.Release, vid: str) -> dict:
    entry, source = release.labels.entries[vid], release.labels.sources[vid]
    fps, frames = umt_release.fps_and_frames(entry, vid, source)
    clips = umt_release.array_field(entry, vid, "clip", source, np.float64)
    match = umt_release.array_field(entry, vid, "match", source, np.float64)
    if clips.ndim != 2 or clips.shape[1] != 2 or len(clips) != len(match) or not len(match):
      raise ValueError(
          f"video {vid}: 'clip' {clips.shape} and 'match' {match.shape} "
          f"in {source} must be [T, 2] and [T]"
      )
    if (clips != np.round(clips)).any():
      raise ValueError(f"video {vid}: 'clip' in {source} holds non-integer frame numbers")
    if not np.isin(match, (-1, 0, 1)).all():
      raise ValueError(f"video {vid}: 'match' in {source} holds values outside {{-1, 0, 1}}")
    kinds = self.builder_config.kinds
    return {
        "video_id": vid,
        "domain": str(umt_release.field(entry, vid, "domain", source)),
        "fps": fps,
        "frames": frames,
        "duration_s": frames / fps,
        "clips": clips.astype(np.int32),
        "match": match.astype(np.int8),
        "features": umt_release.load_features(release, kinds, vid, len(match)),
    }
