"""YouTube Highlights (Sun, Farhadi, Seitz, ECCV 2014) with UMT's clip features.

Build it from the repo root, without TensorFlow (the `tfds build` CLI needs it):

  python -c "
  import tensorflow_datasets as tfds
  from tfds_builders.youtube_highlights import youtube_highlights_dataset_builder as b
  b.Builder(config='i3d_rgb', file_format='array_record').download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir='../shared/data/youtube_highlights'))"

With TensorFlow installed, `PYTHONPATH=. tfds build tfds_builders/youtube_highlights
--manual_dir=... --config=i3d_rgb --file_format=array_record` should do the
same (untested: this project runs without TensorFlow). Without data_dir, TFDS
uses $TFDS_DATA_DIR or ~/tensorflow_datasets.
`hl_jax.datasets.load_benchmark` builds it on first use.
"""

from __future__ import annotations

from typing import Iterator

from absl import logging
from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from tfds_builders import umt_release

ANNOTATIONS = "labels/umt_youtube_anno.json"
SPLITS = "splits/umt_youtube_splits.json"


class Builder(tfds.core.GeneratorBasedBuilder):
  """YouTube Highlights: per-clip highlight labels and features, 6 domains."""

  name = "youtube_highlights"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "UMT annotations, UMT train/val split, float16 features."}
  BUILDER_CONFIGS = list(umt_release.FEATURE_SETS)
  DEFAULT_CONFIG_NAME = "i3d_rgb"
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
  Point manual_dir at a folder laid out like ../shared/data/youtube_highlights:
    {ANNOTATIONS}   (UMT's youtube_anno.json)
    {SPLITS}    ({{domain: {{train: [ids], val: [ids]}}}})
    {umt_release.FEATURES_DIR}/{{i3d_rgb,i3d_flow,pann_audio}}/<video_id>.npz  (key 'features')
  See README.md for where these files come from.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "video_id": tfds.features.Text(),
            "domain": tfds.features.Text(),
            "fps": tfds.features.Scalar(np.float32),
            "frames": tfds.features.Scalar(np.int32),
            "duration_s": tfds.features.Scalar(np.float32),
            "clips": tfds.features.Tensor(shape=(None, 2), dtype=np.int32),
            "match": tfds.features.Tensor(shape=(None,), dtype=np.int8),
            "features": tfds.features.Tensor(
                shape=(None, self.builder_config.dim), dtype=np.float16,
                encoding=tfds.features.Encoding.BYTES),
        }),
        homepage="https://github.com/aliensunmin/DomainSpecificHighlight",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    root = epath.Path(dl_manager.manual_dir)
    anno = umt_release.load_json(root / ANNOTATIONS)
    splits = umt_release.read_splits(root / SPLITS, set(anno))
    umt_release.check_groups(splits, anno, "domain", root / ANNOTATIONS)
    ids = {s: [v for group in splits.values() for v in group[s]] for s in ("train", "val")}
    # Annotated videos outside UMT's split; TFDS's split="all" is train+val+other.
    ids["other"] = sorted(set(anno) - set(ids["train"]) - set(ids["val"]))
    without = sorted(v for v in anno if not umt_release.has_any_features(root, v))
    if without:
      logging.warning("youtube_highlights: %d of %d annotated videos have no feature "
                      "files of any kind and are skipped: %s", len(without), len(anno), without)
    ids = {s: [v for v in vids if v not in without] for s, vids in ids.items()}
    return {s: self._generate_examples(root, anno, vids) for s, vids in ids.items() if vids}

  def _generate_examples(self, root: epath.Path, anno: dict,
                         video_ids: list[str]) -> Iterator[tuple[str, dict]]:
    for vid in video_ids:
      yield vid, self._example(root, vid, anno[vid])

  def _example(self, root: epath.Path, vid: str, entry: dict) -> dict:
    source = root / ANNOTATIONS
    fps = float(umt_release.field(entry, vid, "fps", source))
    frames = int(umt_release.field(entry, vid, "frames", source))
    if not fps > 0 or frames <= 0:
      raise ValueError(f"video {vid}: fps {fps} and frames {frames} in {source} must be > 0")
    clips = umt_release.array_field(entry, vid, "clip", source, np.float64)
    match = umt_release.array_field(entry, vid, "match", source, np.float64)
    if clips.ndim != 2 or clips.shape[1] != 2 or len(clips) != len(match) or not len(match):
      raise ValueError(f"video {vid}: 'clip' {clips.shape} and 'match' {match.shape} "
                       f"in {source} must be [T, 2] and [T]")
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
        "features": umt_release.load_features(root, kinds, vid, len(match)),
    }
