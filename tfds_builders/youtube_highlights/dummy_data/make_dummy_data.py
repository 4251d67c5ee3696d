"""Writes the fake YouTube Highlights manual_dirs next to this script.

  python tfds_builders/youtube_highlights/dummy_data/make_dummy_data.py

The same made-up videos in the three layouts the builder reads
(tfds_builders/layouts.py):
  ./           staged, as ../shared/data/youtube_highlights: labels/umt_youtube_anno.json,
               splits/umt_youtube_splits.json, features_umt_f16/<kind>/<vid>.npz
  umt/         a UMT checkout: data/youtube/youtube_anno.json,
               data/youtube/video_features/<vid>_{rgb,opt}.npy,
               data/youtube/audio_features/<vid>.npy; the UMT_VIDEOS only
               (.npy files are not compressed), float16 (UMT's are float64 and
               float32; the builder casts any float to float16)
  lighthouse/  a lighthouse checkout: data/youtube_highlight/
               youtube_highlight_{train,val}_release.jsonl (the split videos
               that have features, as lighthouse's release lists them) and
               features/youtube_highlight/{clip,slowfast}/<vid>.npz
Every feature row is one constant, so tests can check which video, clip and
kind a row came from:
  feature_value(i, t, k) = 10 * i + t + 0.25 * k
for the i-th entry of VIDEOS, clip t and kind k (0 rgb, 1 flow, 2 audio,
3 clip, 4 slowfast).
Cases covered: a split id without annotation (skipped), an annotated video
without features (skipped), one outside the split ("other"), a .npy feature
file, and a val video with no positive clip. UMT's split is UMT's code
(tfds_builders/umt_splits.py), which lists none of these ids: tests give the
umt layout SPLITS instead.
"""

import json
import pathlib

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
KIND_DIMS = {"i3d_rgb": 1024, "i3d_flow": 1024, "pann_audio": 2048, "clip": 512, "slowfast": 2304}
STAGED_KINDS = ("i3d_rgb", "i3d_flow", "pann_audio")
UMT_FILES = {
    "i3d_rgb": "video_features/{vid}_rgb.npy",
    "i3d_flow": "video_features/{vid}_opt.npy",
    "pann_audio": "audio_features/{vid}.npy",
}

# (video_id, domain, match per clip, feature files: "npz", "npy" or None)
VIDEOS = (
    ("dummyDog_01", "dog", (-1, 1, 1, 0), "npz"),
    ("dummyDog_02", "dog", (0, -1, 1), "npz"),
    ("dummyDog_03", "dog", (1, 0, -1, -1, 1), "npz"),
    ("dummySurf01", "surfing", (-1, 0, 1, 1, -1, 0), "npz"),
    ("dummySurf02", "surfing", (1, -1, 0), "npz"),
    ("dummySurf03", "surfing", (0, -1, 0, -1), "npy"),
    ("dummyNoFeat", "surfing", (0, 1, 1), None),
    ("dummyOther1", "dog", (1, 1, 0), "npz"),
)
SPLITS = {
    "dog": {"train": ["dummyDog_01", "dummyDog_02", "dummyNoAnno"], "val": ["dummyDog_03"]},
    "surfing": {"train": ["dummySurf01", "dummyNoFeat"], "val": ["dummySurf02", "dummySurf03"]},
}
# One train, one val and one "other" video, in UMT's release.
UMT_VIDEOS = ("dummyDog_02", "dummySurf02", "dummyOther1")
FPS = 25.0


def feature_value(i: int, t: int, k: int) -> float:
  return 10 * i + t + 0.25 * k


def features(i: int, kind: str) -> np.ndarray:
  """[T, dim] float16 features of the i-th video, row t = feature_value(i, t, k)."""
  k = list(KIND_DIMS).index(kind)
  rows = [feature_value(i, t, k) for t in range(len(VIDEOS[i][2]))]
  return np.repeat(np.asarray(rows, np.float16)[:, None], KIND_DIMS[kind], axis=1)


def split_of(vid: str) -> str | None:
  for by_split in SPLITS.values():
    for split, ids in by_split.items():
      if vid in ids:
        return split
  return None


def write_json(path: pathlib.Path, value, indent: int | None = 1) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(value, indent=indent))


def save(path: pathlib.Path, array: np.ndarray) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  if path.suffix == ".npz":
    np.savez_compressed(path, features=array)
  else:
    np.save(path, array)


def main() -> None:
  anno, lighthouse = {}, {"train": [], "val": []}
  for i, (vid, domain, match, files) in enumerate(VIDEOS):
    num_clips = len(match)
    anno[vid] = {
        "fps": FPS,
        "frames": str(50 * num_clips + 50),
        "domain": domain,
        "clip": [[50.0 * t, 50.0 * t + 100.0] for t in range(num_clips)],
        "match": list(match),
    }
    if files is None:
      continue
    for kind in STAGED_KINDS:
      save(HERE / "features_umt_f16" / kind / f"{vid}.{files}", features(i, kind))
    if vid in UMT_VIDEOS:
      for kind, template in UMT_FILES.items():
        save(HERE / "umt" / "data" / "youtube" / template.format(vid=vid), features(i, kind))
    if split_of(vid) is not None:
      # lighthouse's rows: UMT's fields, `label` [[match > 0]], `duration` in seconds.
      lighthouse[split_of(vid)].append(
          {
              "qid": vid,
              "query": domain,
              "duration": (50 * num_clips + 50) / FPS,
              "vid": vid,
              "relevant_clip_ids": None,
              "relevant_windows": None,
              "label": [[int(m > 0)] for m in match],
              "domain": domain,
              "frames": float(50 * num_clips + 50),
              "fps": FPS,
              "clip": anno[vid]["clip"],
              "match": list(match),
          }
      )
      for kind in ("clip", "slowfast"):
        save(
            HERE / "lighthouse" / "features" / "youtube_highlight" / kind / f"{vid}.npz",
            features(i, kind),
        )
  write_json(HERE / "labels" / "umt_youtube_anno.json", anno)
  write_json(HERE / "splits" / "umt_youtube_splits.json", SPLITS)
  write_json(
      HERE / "umt" / "data" / "youtube" / "youtube_anno.json",
      {vid: anno[vid] for vid in UMT_VIDEOS},
  )
  for split, rows in lighthouse.items():
    path = (
        HERE
        / "lighthouse"
        / "data"
        / "youtube_highlight"
        / f"youtube_highlight_{split}_release.jsonl"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


if __name__ == "__main__":
  main()
