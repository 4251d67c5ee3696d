"""Writes the fake TVSum manual_dirs next to this script.

  python tfds_builders/tvsum/dummy_data/make_dummy_data.py

The same made-up videos in the three layouts the builder reads
(tfds_builders/layouts.py):
  ./           staged, as ../shared/data/tvsum: labels/umt_tvsum_anno.json,
               splits/umt_tvsum_splits.json,
               features_umt_f16/{i3d_rgb,i3d_flow,pann_audio,clip_title_query}/<vid>.npz
  umt/         a UMT checkout: data/tvsum/tvsum_anno.json,
               data/tvsum/video_features/<vid>_{rgb,opt}.npy,
               data/tvsum/audio_features/<vid>.npy, data/tvsum/query_features/<vid>.npz
  lighthouse/  a lighthouse checkout: data/tvsum/tvsum_{train,val}_release.jsonl,
               features/tvsum/i3d/<vid>_{rgb,opt}.npy,
               features/tvsum/{clip,slowfast,clip_text}/<vid>.npz
umt/ and lighthouse/ hold the SUBSET videos only (.npy files are not
compressed), as float16 (UMT's are float64 and float32; the builder casts
any float to float16). Every feature row is one constant, so tests can check
which video, clip and kind a row came from:
  feature_value(i, t, k) = 10 * i + t + 0.25 * k
for the i-th entry of VIDEOS, clip t and kind k (0 rgb, 1 flow, 2 audio,
3 clip, 4 slowfast).
One video's audio has one extra row (as one real TVSum video does), which the
builder drops. Annotator scores are integers 1..5 from a fixed seed.
Title features (clip_title_query/<vid>.npz) are constant rows too: token l of
video i is title_value(i, l) and its pooled 'text' row is title_value(i, -1),
with NUM_TITLE_TOKENS[i] = 2 + i tokens. lighthouse's rows carry no fps or
frames, and their `duration` counts 2-second shots, as in lighthouse's release.
UMT's split is UMT's code (tfds_builders/umt_splits.py), which lists none of
these ids: tests give the umt layout SPLITS instead.
"""

import json
import pathlib

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
KIND_DIMS = {"i3d_rgb": 1024, "i3d_flow": 1024, "pann_audio": 2048, "clip": 512, "slowfast": 2304}
NUM_ANNOTATORS = 20
TEXT_DIM = 512
STAGED_KINDS = ("i3d_rgb", "i3d_flow", "pann_audio")
UMT_FILES = {
    "i3d_rgb": "video_features/{vid}_rgb.npy",
    "i3d_flow": "video_features/{vid}_opt.npy",
    "pann_audio": "audio_features/{vid}.npy",
}
LIGHTHOUSE_FILES = {
    "i3d_rgb": "i3d/{vid}_rgb.npy",
    "i3d_flow": "i3d/{vid}_opt.npy",
    "clip": "clip/{vid}.npz",
    "slowfast": "slowfast/{vid}.npz",
}

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
# One train and one val video (the one with an extra audio row), in umt/ and lighthouse/.
SUBSET = ("dummyVT_trn", "dummyVT_val")
FPS = 30.0


def feature_value(i: int, t: int, k: int) -> float:
  return 10 * i + t + 0.25 * k


def features(i: int, kind: str) -> np.ndarray:
  """[T (+1 for the extra audio row), dim] float16 features of the i-th video."""
  _, _, num_clips, extra_audio = VIDEOS[i]
  k = list(KIND_DIMS).index(kind)
  rows = num_clips + (extra_audio if kind == "pann_audio" else 0)
  values = [feature_value(i, t, k) for t in range(rows)]
  return np.repeat(np.asarray(values, np.float16)[:, None], KIND_DIMS[kind], axis=1)


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


def split_of(vid: str) -> str:
  return next(s for by_split in SPLITS.values() for s, ids in by_split.items() if vid in ids)


def save(path: pathlib.Path, **arrays: np.ndarray) -> None:
  """`arrays` as a compressed .npz, or the one array as a .npy."""
  path.parent.mkdir(parents=True, exist_ok=True)
  if path.suffix == ".npz":
    np.savez_compressed(path, **arrays)
  else:
    np.save(path, *arrays.values())


def write_text(path: pathlib.Path, text: str) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(text)


def main() -> None:
  rng = np.random.default_rng(0)
  anno, lighthouse = {}, {"train": [], "val": []}
  umt, features_dir = HERE / "umt" / "data" / "tvsum", HERE / "lighthouse" / "features" / "tvsum"
  for i, (vid, category, num_clips, _) in enumerate(VIDEOS):
    anno[vid] = {
        "fps": FPS,
        "frames": str(60 * num_clips - 7),
        "domain": category,
        "title": f"Dummy {category} video {i}",
        "url": f"https://example.com/{vid}",
        "length": f"0:{2 * num_clips:02d}",
        "anno": rng.integers(1, 6, size=(num_clips, NUM_ANNOTATORS)).astype(float).tolist(),
    }
    token, text = title_arrays(i)
    for kind in STAGED_KINDS:
      save(HERE / "features_umt_f16" / kind / f"{vid}.npz", features=features(i, kind))
    save(HERE / "features_umt_f16" / "clip_title_query" / f"{vid}.npz", token=token, text=text)
    if vid not in SUBSET:
      continue
    for kind, template in UMT_FILES.items():
      save(umt / template.format(vid=vid), features=features(i, kind))
    save(umt / "query_features" / f"{vid}.npz", token=token, text=text)
    for kind, template in LIGHTHOUSE_FILES.items():
      save(features_dir / template.format(vid=vid), features=features(i, kind))
    save(features_dir / "clip_text" / f"{vid}.npz", token=token, text=text)
    lighthouse[split_of(vid)].append(
        {
            "qid": vid,
            "query": anno[vid]["title"],
            "duration": num_clips,
            "vid": vid,
            "relevant_clip_ids": None,
            "relevant_windows": None,
            "label": anno[vid]["anno"],
            "domain": category,
        }
    )
  write_text(HERE / "labels" / "umt_tvsum_anno.json", json.dumps(anno, indent=1))
  write_text(HERE / "splits" / "umt_tvsum_splits.json", json.dumps(SPLITS, indent=1))
  write_text(umt / "tvsum_anno.json", json.dumps({v: anno[v] for v in SUBSET}, indent=1))
  for split, rows in lighthouse.items():
    write_text(
        HERE / "lighthouse" / "data" / "tvsum" / f"tvsum_{split}_release.jsonl",
        "".join(json.dumps(row) + "\n" for row in rows),
    )


if __name__ == "__main__":
  main()
