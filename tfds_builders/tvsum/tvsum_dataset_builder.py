"""TVSum (Song et al., CVPR 2015) with UMT's or lighthouse's per-2-second-shot features.

Every config also carries the video's title as UMT's CLIP text features:
`title_tokens` [L, 512] (one row per token) and `title_embedding` [512].

Build it from the repo root, without TensorFlow (the `tfds build` CLI needs it):

  python -c "
  import tensorflow_datasets as tfds
  from tfds_builders.tvsum import tvsum_dataset_builder as b
  b.Builder(config='i3d_rgb', file_format='array_record').download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir='../shared/data/tvsum'))"

manual_dir may hold our staged copy, UMT's release or lighthouse's
(`tfds_builders.layouts`); the builder detects which, or
`Builder(..., layout="umt")` insists on one. lighthouse ships UMT's I3D files
plus CLIP and SlowFast but no audio, and its rows carry no fps or frames:
built from it, `fps` and `duration_s` are NaN and `frames` is -1.

With TensorFlow installed, `PYTHONPATH=. tfds build tfds_builders/tvsum
--manual_dir=... --config=i3d_rgb --file_format=array_record` should do the
same (untested: this project runs without TensorFlow). Without data_dir, TFDS
uses $TFDS_DATA_DIR or ~/tensorflow_datasets.
`hl_jax.data.benchmarks.load_benchmark` builds it on first use.
"""

from __future__ import annotations

import math
from typing import Any

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from tfds_builders import layouts
from tfds_builders import umt_release
from tfds_builders import umt_splits

ANNOTATIONS = "labels/umt_tvsum_anno.json"  # of the staged layout
SPLITS = "splits/umt_tvsum_splits.json"
NUM_ANNOTATORS = 20
TITLE_DIR = "clip_title_query"  # under features_umt_f16/ in the staged layout
TEXT_DIM = 512  # CLIP text width
# Fields a layout may lack (lighthouse: fps, frames) and what stands for them.
UNKNOWN_FPS, UNKNOWN_FRAMES = math.nan, -1


def lighthouse_entry(row: dict[str, Any], vid: str, source: epath.Path) -> dict[str, Any]:
  """A row of lighthouse's jsonl as UMT's annotation (no fps, no frames).

  `query` is the title and `label` UMT's `anno`; `duration` counts 2-second
  shots, not seconds (lighthouse's quirk), and is not read.
  """
  return {
      "domain": umt_release.field(row, vid, "domain", source),
      "title": umt_release.field(row, vid, "query", source),
      "anno": umt_release.field(row, vid, "label", source),
  }


LAYOUTS = {
    "staged": layouts.staged("tvsum", ("i3d_rgb", "i3d_flow", "pann_audio"), TITLE_DIR),
    "umt": layouts.umt("tvsum", umt_splits.TVSUM_SPLITS, title=True),
    "lighthouse": layouts.lighthouse(
        "tvsum", lighthouse_entry, i3d=True, title=True, missing=("fps", "frames")
    ),
}


class Builder(layouts.ReleaseBuilder):
  """TVSum: 20 annotators' 1..5 scores per 2-second shot, 10 categories."""

  name = "tvsum"
  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {
      "1.0.0": "UMT annotations, standard 4/1 per-category split, float16 features.",
      "1.1.0": "title tokens: title_tokens [L, 512] and title_embedding [512], UMT's CLIP "
      "text features of the title.",
  }
  BUILDER_CONFIGS = list(umt_release.FEATURE_SETS)
  DEFAULT_CONFIG_NAME = "i3d_rgb"
  LAYOUTS = LAYOUTS
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
  Point manual_dir at one of these layouts (see this folder's README.md, "Get the data"):
    staged:     {LAYOUTS["staged"].expects}
    umt:        {LAYOUTS["umt"].expects}
    lighthouse: {LAYOUTS["lighthouse"].expects}
  Title files hold keys 'token' [L, {TEXT_DIM}] and 'text' [1, {TEXT_DIM}]: UMT's
  query_features, CLIP features of the title.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict(
            {
                "video_id": tfds.features.Text(),
                "category": tfds.features.Text(),
                "title": tfds.features.Text(),
                "fps": tfds.features.Scalar(np.float32),
                "frames": tfds.features.Scalar(np.int32),
                "duration_s": tfds.features.Scalar(np.float32),
                "scores": tfds.features.Tensor(shape=(None, NUM_ANNOTATORS), dtype=np.float32),
                "features": tfds.features.Tensor(
                    shape=(None, self.builder_config.dim),
                    dtype=np.float16,
                    encoding=tfds.features.Encoding.BYTES,
                ),
                "title_tokens": tfds.features.Tensor(shape=(None, TEXT_DIM), dtype=np.float32),
                "title_embedding": tfds.features.Tensor(shape=(TEXT_DIM,), dtype=np.float32),
            }
        ),
        homepage="https://github.com/yalesong/tvsum",
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    release = self._open_release(dl_manager.manual_dir)
    ids = self._split_ids(release)  # "other": none in TVSum
    return {s: self._generate_examples(release, vids) for s, vids in ids.items() if vids}

  def _example(self, release: layouts.Release, vid: str) -> dict:
    entry, source = release.labels.entries[vid], release.labels.sources[vid]
    if "fps" in release.layout.missing:
      fps, frames, duration_s = UNKNOWN_FPS, UNKNOWN_FRAMES, math.nan
    else:
      fps, frames = umt_release.fps_and_frames(entry, vid, source)
      duration_s = frames / fps
    scores = umt_release.array_field(entry, vid, "anno", source, np.float32)
    if scores.ndim != 2 or scores.shape[1] != NUM_ANNOTATORS or not len(scores):
      raise ValueError(
          f"video {vid}: 'anno' in {source} has shape {scores.shape}, "
          f"expected [T, {NUM_ANNOTATORS}]"
      )
    if not np.isfinite(scores).all():
      raise ValueError(f"video {vid}: 'anno' in {source} holds NaN/Inf")
    kinds = self.builder_config.kinds
    title_tokens, title_embedding = load_title(release.title_file(vid), vid)
    return {
        "video_id": vid,
        "category": str(umt_release.field(entry, vid, "domain", source)),
        "title": str(umt_release.field(entry, vid, "title", source)),
        "fps": fps,
        "frames": frames,
        "duration_s": duration_s,
        "scores": scores,
        "features": umt_release.load_features(release, kinds, vid, len(scores)),
        "title_tokens": title_tokens,
        "title_embedding": title_embedding,
    }


def load_title(path: epath.Path, video_id: str) -> tuple[np.ndarray, np.ndarray]:
  """Loads one video's CLIP title features, checked.

  Args:
    path: the video's title .npz (keys "token" and "text").
    video_id: the video.

  Returns:
    (tokens [L, 512], embedding [512]), float32, all finite, L >= 1.

  Raises:
    FileNotFoundError: the video has no title file (naming video and path).
    ValueError: the file is unreadable, lacks a key or has a bad shape or
      NaN/Inf (naming file and video).
  """
  if not path.is_file():
    raise FileNotFoundError(f"video {video_id}: no title tokens ({path})")
  arrays = {}
  for key, rows in (("token", "L"), ("text", "1")):
    try:
      array = umt_release.load_array(path, key)
    except KeyError as e:  # load_array's message already names the file
      raise ValueError(f"video {video_id}: {e.args[0]}") from None
    if (
        array.ndim != 2
        or array.shape[1] != TEXT_DIM
        or not len(array)
        or (key == "text" and len(array) != 1)
    ):
      raise ValueError(
          f"{path}: video {video_id} title {key!r} has shape "
          f"{array.shape}, expected [{rows}, {TEXT_DIM}]"
      )
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
      raise ValueError(f"{path}: video {video_id} title {key!r} holds NaN/Inf")
    arrays[key] = array
  return arrays["token"], arrays["text"][0]
