"""TVSum (Song et al., CVPR 2015) with UMT's per-2-second-shot features.

Every config also carries the video's title as UMT's CLIP text features:
`title_tokens` [L, 512] (one row per token) and `title_embedding` [512].

Build it from the repo root, without TensorFlow (the `tfds build` CLI needs it):

  python -c "
  import tensorflow_datasets as tfds
  from tfds_builders.tvsum import tvsum_dataset_builder as b
  b.Builder(config='i3d_rgb', file_format='array_record').download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir='../shared/data/tvsum'))"

With TensorFlow installed, `PYTHONPATH=. tfds build tfds_builders/tvsum
--manual_dir=... --config=i3d_rgb --file_format=array_record` should do the
same (untested: this project runs without TensorFlow). Without data_dir, TFDS
uses $TFDS_DATA_DIR or ~/tensorflow_datasets.
`hl_jax.datasets.load_benchmark` builds it on first use.
"""

from __future__ import annotations

from typing import Iterator

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from tfds_builders import umt_release

ANNOTATIONS = "labels/umt_tvsum_anno.json"
SPLITS = "splits/umt_tvsum_splits.json"
NUM_ANNOTATORS = 20
TITLE_DIR = "clip_title_query"  # under umt_release.FEATURES_DIR
TEXT_DIM = 512  # CLIP text width


class Builder(tfds.core.GeneratorBasedBuilder):
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
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
  Point manual_dir at a folder laid out like ../shared/data/tvsum:
    {ANNOTATIONS}   (UMT's tvsum_anno.json)
    {SPLITS}    ({{category: {{train: [ids], val: [ids]}}}})
    {umt_release.FEATURES_DIR}/{{i3d_rgb,i3d_flow,pann_audio}}/<video_id>.npz  (key 'features')
    {umt_release.FEATURES_DIR}/{TITLE_DIR}/<video_id>.npz  (keys 'token' [L, {TEXT_DIM}],
        'text' [1, {TEXT_DIM}]: UMT's query_features, CLIP features of the title)
  See README.md for where these files come from.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "video_id": tfds.features.Text(),
            "category": tfds.features.Text(),
            "title": tfds.features.Text(),
            "fps": tfds.features.Scalar(np.float32),
            "frames": tfds.features.Scalar(np.int32),
            "duration_s": tfds.features.Scalar(np.float32),
            "scores": tfds.features.Tensor(shape=(None, NUM_ANNOTATORS), dtype=np.float32),
            "features": tfds.features.Tensor(
                shape=(None, self.builder_config.dim), dtype=np.float16,
                encoding=tfds.features.Encoding.BYTES),
            "title_tokens": tfds.features.Tensor(shape=(None, TEXT_DIM), dtype=np.float32),
            "title_embedding": tfds.features.Tensor(shape=(TEXT_DIM,), dtype=np.float32),
        }),
        homepage="https://github.com/yalesong/tvsum",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    root = epath.Path(dl_manager.manual_dir)
    anno = umt_release.load_json(root / ANNOTATIONS)
    splits = umt_release.read_splits(root / SPLITS, set(anno))
    umt_release.check_groups(splits, anno, "domain", root / ANNOTATIONS)
    ids = {s: [v for group in splits.values() for v in group[s]] for s in ("train", "val")}
    # Annotated videos outside the split (none in TVSum); split="all" adds them.
    ids["other"] = sorted(set(anno) - set(ids["train"]) - set(ids["val"]))
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
    scores = umt_release.array_field(entry, vid, "anno", source, np.float32)
    if scores.ndim != 2 or scores.shape[1] != NUM_ANNOTATORS or not len(scores):
      raise ValueError(f"video {vid}: 'anno' in {source} has shape {scores.shape}, "
                       f"expected [T, {NUM_ANNOTATORS}]")
    if not np.isfinite(scores).all():
      raise ValueError(f"video {vid}: 'anno' in {source} holds NaN/Inf")
    kinds = self.builder_config.kinds
    title_tokens, title_embedding = load_title(root, vid)
    return {
        "video_id": vid,
        "category": str(umt_release.field(entry, vid, "domain", source)),
        "title": str(umt_release.field(entry, vid, "title", source)),
        "fps": fps,
        "frames": frames,
        "duration_s": frames / fps,
        "scores": scores,
        "features": umt_release.load_features(root, kinds, vid, len(scores)),
        "title_tokens": title_tokens,
        "title_embedding": title_embedding,
    }


def load_title(root: epath.Path, video_id: str) -> tuple[np.ndarray, np.ndarray]:
  """Loads one video's CLIP title features, checked.

  Args:
    root: the manual_dir.
    video_id: the video.

  Returns:
    (tokens [L, 512], embedding [512]), float32, all finite, L >= 1.

  Raises:
    FileNotFoundError: the video has no title file (naming video and path).
    ValueError: the file is unreadable, lacks a key or has a bad shape or
      NaN/Inf (naming file and video).
  """
  path = root / umt_release.FEATURES_DIR / TITLE_DIR / f"{video_id}.npz"
  if not path.is_file():
    raise FileNotFoundError(f"video {video_id}: no title tokens ({path})")
  arrays = {}
  for key, rows in (("token", "L"), ("text", "1")):
    try:
      array = umt_release.load_array(path, key)
    except KeyError as e:  # load_array's message already names the file
      raise ValueError(f"video {video_id}: {e.args[0]}") from None
    if (array.ndim != 2 or array.shape[1] != TEXT_DIM or not len(array)
        or (key == "text" and len(array) != 1)):
      raise ValueError(f"{path}: video {video_id} title {key!r} has shape "
                       f"{array.shape}, expected [{rows}, {TEXT_DIM}]")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
      raise ValueError(f"{path}: video {video_id} title {key!r} holds NaN/Inf")
    arrays[key] = array
  return arrays["token"], arrays["text"][0]
