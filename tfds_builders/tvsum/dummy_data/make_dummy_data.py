"""Writes the fake TVSum manual_dir next to this script.

  python tfds_builders/tvsum/dummy_data/make_dummy_data.py

Same layout as ../shared/data/tvsum. Every feature row is one constant, so
tests can check which video, clip and kind a row came from:
  feature_value(i, t, k) = 10 * i + t + 0.25 * k
for the i-th entry of VIDEOS, clip t and kind k (0 rgb, 1 flow, 2 audio).
One video's audio has one extra row (as one real TVSum video does), which the
builder drops. Annotator scores are integers 1..5 from a fixed seed.
Title features (clip_title_query/<vid>.npz) are constant rows too: token l of
video i is title_value(i, l) and its pooled 'text' row is title_value(i, -1),
with NUM_TITLE_TOKENS[i] = 2 + i tokens.
"""

import json
import pathlib

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
KIND_DIMS = {"i3d_rgb": 1024, "i3d_flow": 1024, "pann_audio": 2048}
NUM_ANNOTATORS = 20
TEXT_DIM = 512

# (video_id, category, number of 2-second shots, extra audio rows)
VIDEOS = (
    ("dummyBK_trn", "BK", 5, 0),
    ("dummyBK_val", "BK", 4, 0),
    ("dummyVT_trn", "VT", 3, 0),
    ("dummyVT_val", "VT", 6, 1),
)
SPLITS = {
    "BK": {"train": ["dummyBK_trn"], "val": ["dummyBK_val"]},
    "VT": {"train": ["dummyVT_trn"], "val": ["dummyVT_val"]},
}
FPS = 30.0


def feature_value(i: int, t: int, k: int) -> float:
  return 10 * i + t + 0.25 * k


def num_title_tokens(i: int) -> int:
  return 2 + i


def title_value(i: int, l: int) -> float:
  return -(i + 0.125 * l)


def title_arrays(i: int) -> tuple[np.ndarray, np.ndarray]:
  """(token [L, 512], text [1, 512]) float16 of the i-th video's title."""
  values = np.asarray([title_value(i, l) for l in range(num_title_tokens(i))], np.float16)
  token = np.repeat(values[:, None], TEXT_DIM, axis=1)
  text = np.full((1, TEXT_DIM), title_value(i, -1), np.float16)
  return token, text


def main() -> None:
  rng = np.random.default_rng(0)
  anno = {}
  for i, (vid, category, num_clips, extra_audio) in enumerate(VIDEOS):
    anno[vid] = {
        "fps": FPS, "frames": str(60 * num_clips - 7), "domain": category,
        "title": f"Dummy {category} video {i}", "url": f"https://example.com/{vid}",
        "length": f"0:{2 * num_clips:02d}",
        "anno": rng.integers(1, 6, size=(num_clips, NUM_ANNOTATORS)).astype(float).tolist(),
    }
    for k, (kind, dim) in enumerate(KIND_DIMS.items()):
      rows = num_clips + (extra_audio if kind == "pann_audio" else 0)
      values = [feature_value(i, t, k) for t in range(rows)]
      array = np.repeat(np.asarray(values, np.float16)[:, None], dim, axis=1)
      path = HERE / "features_umt_f16" / kind / f"{vid}.npz"
      path.parent.mkdir(parents=True, exist_ok=True)
      np.savez_compressed(path, features=array)
    token, text = title_arrays(i)
    path = HERE / "features_umt_f16" / "clip_title_query" / f"{vid}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, token=token, text=text)
  (HERE / "labels").mkdir(exist_ok=True)
  (HERE / "labels" / "umt_tvsum_anno.json").write_text(json.dumps(anno, indent=1))
  (HERE / "splits").mkdir(exist_ok=True)
  (HERE / "splits" / "umt_tvsum_splits.json").write_text(json.dumps(SPLITS, indent=1))


if __name__ == "__main__":
  main()
