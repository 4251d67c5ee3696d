"""Writes the fake YouTube Highlights manual_dir next to this script.

  python tfds_builders/youtube_highlights/dummy_data/make_dummy_data.py

Same layout as ../shared/data/youtube_highlights. Every feature row is one
constant, so tests can check which video, clip and kind a row came from:
  feature_value(i, t, k) = 10 * i + t + 0.25 * k
for the i-th entry of VIDEOS, clip t and kind k (0 rgb, 1 flow, 2 audio).
Cases covered: a split id without annotation (skipped), an annotated video
without features (skipped), one outside the split ("other"), a .npy feature
file, and a val video with no positive clip.
"""

import json
import pathlib

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
KIND_DIMS = {"i3d_rgb": 1024, "i3d_flow": 1024, "pann_audio": 2048}

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
    "surfing": {"train": ["dummySurf01", "dummyNoFeat"],
                "val": ["dummySurf02", "dummySurf03"]},
}
FPS = 25.0


def feature_value(i: int, t: int, k: int) -> float:
  return 10 * i + t + 0.25 * k


def main() -> None:
  anno = {}
  for i, (vid, domain, match, files) in enumerate(VIDEOS):
    num_clips = len(match)
    anno[vid] = {
        "fps": FPS, "frames": str(50 * num_clips + 50), "domain": domain,
        "clip": [[50.0 * t, 50.0 * t + 100.0] for t in range(num_clips)],
        "match": list(match),
    }
    for k, (kind, dim) in enumerate(KIND_DIMS.items()):
      if files is None:
        continue
      rows = [feature_value(i, t, k) for t in range(num_clips)]
      array = np.repeat(np.asarray(rows, np.float16)[:, None], dim, axis=1)
      path = HERE / "features_umt_f16" / kind / f"{vid}.{files}"
      path.parent.mkdir(parents=True, exist_ok=True)
      if files == "npz":
        np.savez_compressed(path, features=array)
      else:
        np.save(path, array)
  (HERE / "labels").mkdir(exist_ok=True)
  (HERE / "labels" / "umt_youtube_anno.json").write_text(json.dumps(anno, indent=1))
  (HERE / "splits").mkdir(exist_ok=True)
  (HERE / "splits" / "umt_youtube_splits.json").write_text(json.dumps(SPLITS, indent=1))


if __name__ == "__main__":
  main()
