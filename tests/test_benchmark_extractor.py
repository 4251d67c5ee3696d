"""The i3d_imagenet extractor: video_features' preprocessing, stacks, grids, pooling, refusals.

Always run (random weights where a network is needed): the resize and crop
arithmetic, video_features' stack rule simulated from its loop, the clip grids
against the benchmarks' annotation files, the frames of each clip's stack on
synthetic videos whose frames show their index (tests/videos.py), the
PyTorch port's BatchNorm epsilon in every unit, the pooling, one end-to-end
stack at the real sizes, feature spaces and the refusal of another space.

With DeepMind's rgb_imagenet weights (env HL_JAX_I3D_IMAGENET_WEIGHTS, or a
file under ../shared/data/kinetics_i3d_reference/weights/): DeepMind's sample
clip, the staged blank-clip fingerprint and the staged features' statistics.
They skip otherwise, naming where they looked.
"""

import fractions
import json
import math
import os
import pathlib
import shutil
import tracemalloc

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from hl_jax.core import workdir as workdir_lib
from hl_jax.data import features_file
from hl_jax.highlights import scorers
from hl_jax.video import clip_stacks
from hl_jax.video import extraction
from hl_jax.video import extractors
from hl_jax.video import i3d
from hl_jax.video import weight_files

import weight_file_writers as writers

av = pytest.importorskip("av")
import videos  # pylint: disable=g-import-not-at-top,wrong-import-position  # tests/videos.py

LEGACY = pathlib.Path(__file__).parent / "legacy_workdirs"
STAGED = features_file.VIDEO_FEATURES_RGB_SPACE

# ------------------------------------------------------------------ frames: resize and crop


@pytest.mark.parametrize(
    "size, resized",
    [
        ((640, 272), (602, 256)),  # 256 * 640 / 272 = 602.35
        ((272, 640), (256, 602)),
        ((176, 144), (312, 256)),  # 312.89: truncated, not rounded
        ((1920, 1080), (455, 256)),
        ((100, 100), (256, 256)),
        ((256, 300), (256, 300)),  # shorter side already 256: untouched
        ((301, 256), (301, 256)),
        ((255, 400), (256, 401)),  # 401.57
    ],
)
def test_resized_size_is_video_features_resize_improved(size, resized):
  assert clip_stacks.resized_size(*size) == resized


def test_preprocess_frame_is_pil_bilinear_then_centre_crop():
  rng = np.random.default_rng(0)
  frame = rng.integers(0, 256, (144, 176, 3), np.uint8)  # H x W
  by_hand = np.asarray(Image.fromarray(frame).resize((312, 256), Image.BILINEAR))
  # TensorCenterCrop(224): from ((256 - 224) // 2, (312 - 224) // 2) = (16, 44).
  np.testing.assert_array_equal(
      clip_stacks.preprocess_frame(frame), by_hand[16 : 16 + 224, 44 : 44 + 224]
  )
  # No resize when the shorter side is 256; an odd margin puts the extra column on the right.
  frame = rng.integers(0, 256, (256, 301, 3), np.uint8)
  np.testing.assert_array_equal(clip_stacks.preprocess_frame(frame), frame[16:240, 38:262])


def test_the_resize_antialiases_when_it_shrinks():
  # A one-pixel checkerboard shrunk 4x: PIL's bilinear filter averages it to grey; a
  # two-tap bilinear without antialiasing would keep picking black and white pixels.
  board = (np.indices((1024, 1024)).sum(0) % 2 * 255).astype(np.uint8)
  crop = clip_stacks.preprocess_frame(np.repeat(board[..., None], 3, axis=2))
  assert crop.shape == (224, 224, 3)
  assert abs(crop.mean() - 127.5) < 2 and crop.std() < 4


def test_scaling_to_minus_one_one_is_video_features_scale():
  x = np.arange(256, dtype=np.uint8)
  # ScaleTo1_1: (2 * x / 255) - 1 in float32, as torch computes it.
  want = (np.float32(2) * x.astype(np.float32)) / np.float32(255) - np.float32(1)
  np.testing.assert_array_equal(i3d.preprocess(x), want)


# ------------------------------------------------------------------ stacks and grids


def _video_features_stacks(num_frames: int, stack: int = 64, step: int = 64) -> list[list[int]]:
  """The frames of each stack, by video_features' own loop (extract_i3d.py, 2021)."""
  buffer, out = [], []
  for n in range(num_frames):
    buffer.append(n)
    if len(buffer) - 1 == stack:  # "- 1 is used because we need B+1 frames"
      out.append(buffer[:-1])  # rgb: stream_slice = rgb_stack[:-1]
      buffer = buffer[step:]
  return out  # an incomplete last stack never runs


@pytest.mark.parametrize("num_frames", [0, 1, 63, 64, 65, 128, 129, 130, 200, 257, 1000])
def test_stack_rule_is_video_features_loop(num_frames):
  want = _video_features_stacks(num_frames)
  assert clip_stacks.num_stacks(num_frames) == len(want) == max(0, (num_frames - 1) // 64)
  ranges = clip_stacks.clip_ranges("stacks", num_frames, 30)
  assert [list(range(s, e)) for s, e in ranges] == want
  # Each stack is its own clip's centred stack.
  assert all(clip_stacks.stack_start(s, e, num_frames) == s for s, e in ranges)


@pytest.mark.parametrize(
    "num_frames, want",
    [
        (1, [[0, 1]]),
        (100, [[0, 100]]),
        (101, [[0, 100], [50, 101]]),
        (150, [[0, 100], [50, 150]]),
        (151, [[0, 100], [50, 150], [100, 151]]),
        (842, [[50 * k, 50 * k + 100] for k in range(15)] + [[750, 842]]),
    ],
)
def test_youtube_highlights_windows(num_frames, want):
  np.testing.assert_array_equal(
      clip_stacks.clip_ranges("youtube_highlights", num_frames, 27.17), np.asarray(want)
  )


def test_tvsum_shots():
  ntsc = fractions.Fraction(30000, 1001)
  # Frame n starts at n / fps: shot 1 of 29.97 fps starts at ceil(2 * 29.97) = 60; 119 frames
  # are 3.97 s, one whole shot.
  np.testing.assert_array_equal(clip_stacks.clip_ranges("tvsum", 119, ntsc), [[0, 60]])
  np.testing.assert_array_equal(
      clip_stacks.clip_ranges("tvsum", 200, ntsc), [[0, 60], [60, 120], [120, 180]]
  )
  np.testing.assert_array_equal(clip_stacks.clip_ranges("tvsum", 120, 30), [[0, 60], [60, 120]])
  assert len(clip_stacks.clip_ranges("tvsum", 119, 30)) == 1  # a partial shot is dropped
  np.testing.assert_array_equal(clip_stacks.clip_ranges("tvsum", 75, 25, 1.5), [[0, 38], [38, 75]])


@pytest.mark.parametrize(
    "start, end, num_frames, first",
    [
        (0, 100, 842, 18),  # centred: 50 - 32
        (0, 60, 842, 0),  # would start at -2
        (750, 842, 842, 764),
        (800, 842, 842, 778),  # pushed back inside: 842 - 64
        (0, 40, 40, 0),  # shorter than a stack: from the start (the last frame repeats)
    ],
)
def test_stack_start(start, end, num_frames, first):
  assert clip_stacks.stack_start(start, end, num_frames) == first


def test_youtube_highlights_grid_is_the_annotation_files(shared_data):
  anno = json.loads(
      (shared_data / "youtube_highlights" / "labels" / "umt_youtube_anno.json").read_text()
  )
  same_count = same_clip = clips = 0
  for video in anno.values():
    frames = int(float(video["frames"]))
    ours = clip_stacks.clip_ranges("youtube_highlights", frames, float(video["fps"])).tolist()
    theirs = [[int(s), int(e)] for s, e in video["clip"]]
    same_count += len(ours) == len(theirs)
    if len(ours) == len(theirs):
      clips += len(ours)
      same_clip += sum(a == b for a, b in zip(ours, theirs))
  # Measured: 416 of 422 counts, 20180 of 24366 windows (the others shifted by hand).
  assert same_count >= 0.98 * len(anno) and same_clip >= 0.8 * clips


def test_tvsum_grid_is_the_annotation_files(shared_data):
  anno = json.loads((shared_data / "tvsum" / "labels" / "umt_tvsum_anno.json").read_text())
  for video_id, video in anno.items():
    frames, fps = int(float(video["frames"])), float(video["fps"])
    shots = len(clip_stacks.clip_ranges("tvsum", frames, fps))
    assert shots == len(video["anno"]) == math.floor(frames / fps / 2), video_id


# ------------------------------------------------------------------ decoding synthetic videos


@pytest.fixture(scope="module")
def square_video(tmp_path_factory):
  """250 frames at 30 fps, 64 x 64: a stack's frames read back as their indices."""
  path = tmp_path_factory.mktemp("stacks") / "v.mp4"
  return videos.make_video(path, seconds=250 / 30, fps=30, size=(64, 64))


@pytest.mark.parametrize(
    "grid, clips, segment, stride",
    [
        ("stacks", 3, 64 / 30, 64 / 30),
        ("youtube_highlights", 4, 100 / 30, 50 / 30),
        ("tvsum", 4, 2.0, 2.0),
    ],
)
def test_each_clip_gets_its_centred_stack(square_video, grid, clips, segment, stride):
  # No resize, no crop at this size: the frames are the video's own.
  config = clip_stacks.StackConfig(grid=grid, resize_shorter=64, frame_size=64)
  info = {}
  stacks = list(clip_stacks.iter_clip_stacks(config, square_video, info))
  assert info["num_frames"] == 250 and info["fps"] == 30.0
  assert info["duration"] == pytest.approx(250 / 30)
  assert (info["segment_seconds"], info["stride_seconds"]) == pytest.approx((segment, stride))
  ranges = clip_stacks.clip_ranges(grid, 250, 30)
  assert len(stacks) == len(ranges) == clips
  for (start, end), stack in zip(ranges, stacks):
    assert stack.shape == (64, 64, 64, 3) and stack.dtype == np.uint8
    first = clip_stacks.stack_start(start, end, 250)
    assert [videos.frame_index(f) for f in stack] == list(range(first, first + 64))


def test_memory_does_not_grow_with_the_video(tmp_path):
  path = videos.make_video(tmp_path / "long.mp4", seconds=50, fps=30, size=(64, 64))
  config = clip_stacks.StackConfig(grid="youtube_highlights", resize_shorter=64, frame_size=64)
  tracemalloc.start()
  try:
    clips = sum(1 for _ in clip_stacks.iter_clip_stacks(config, path))
    peak = tracemalloc.get_traced_memory()[1]
  finally:
    tracemalloc.stop()
  assert clips == 29  # of 1500 frames
  # Measured: about 134 frames' worth (the frames kept and the stack handed out).
  assert peak < 200 * 64 * 64 * 3


def test_a_video_shorter_than_a_stack_repeats_its_last_frame(tmp_path):
  path = videos.make_video(tmp_path / "short.mp4", seconds=4, fps=10, size=(64, 64))
  config = clip_stacks.StackConfig(grid="tvsum", resize_shorter=64, frame_size=64)
  stacks = list(clip_stacks.iter_clip_stacks(config, path))
  assert len(stacks) == 2  # two 2-s shots of 20 frames, both on the one 40-frame stack
  for stack in stacks:
    assert [videos.frame_index(f) for f in stack] == list(range(40)) + [39] * 24


def test_too_short_for_one_clip_is_refused(tmp_path):
  path = videos.make_video(tmp_path / "tiny.mp4", seconds=64 / 30, fps=30, size=(64, 64))
  config = clip_stacks.StackConfig(grid="stacks", resize_shorter=64, frame_size=64)
  with pytest.raises(ValueError, match=r"tiny.mp4: 64 frames at 30.000 fps, too short for one"):
    list(clip_stacks.iter_clip_stacks(config, path))


def test_native_rate_is_the_streams(tmp_path):
  path = videos.make_video(
      tmp_path / "ntsc.mp4", seconds=3, fps=fractions.Fraction(30000, 1001), size=(64, 64)
  )
  info = {}
  config = clip_stacks.StackConfig(grid="youtube_highlights", resize_shorter=64, frame_size=64)
  list(clip_stacks.iter_clip_stacks(config, path, info))
  assert info["fps"] == pytest.approx(30000 / 1001) and info["num_frames"] == 90
  assert info["stride_seconds"] == pytest.approx(50 * 1001 / 30000)


# ------------------------------------------------------------------ the network


def _random_variables(seed: int = 0):
  """InceptionI3d's tree filled with He-scaled kernels and plausible BatchNorm statistics."""
  clip = jax.ShapeDtypeStruct((1, 16, 224, 224, 3), jnp.float32)
  template = jax.eval_shape(i3d.InceptionI3d().init, jax.random.PRNGKey(0), clip)
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    name = path[-1].key
    if name == "kernel":
      value = rng.standard_normal(leaf.shape) * np.sqrt(2.0 / np.prod(leaf.shape[:-1]))
    elif name == "var":
      value = rng.uniform(0.5, 1.5, leaf.shape)
    else:
      value = rng.normal(0.0, 0.1, leaf.shape)
    return jnp.asarray(value, jnp.float32)

  return jax.tree_util.tree_map_with_path(fill, template)


@pytest.fixture(scope="module")
def random_variables():
  return _random_variables()


def test_stack_features_use_the_pytorch_epsilon_and_mixed_5c(random_variables):
  seen = []

  def record(next_fun, args, kwargs, context):
    if isinstance(context.module, nn.BatchNorm):
      seen.append(context.module.epsilon)
    return next_fun(*args, **kwargs)

  # The smallest input: T = 9 frames (2 steps at Mixed_5c), 193 x 193 (7 x 7 there). One
  # compilation for both; the interceptor sees every BatchNorm while they are traced.
  x = jax.random.uniform(jax.random.PRNGKey(3), (1, 9, 193, 193, 3), minval=-1.0, maxval=1.0)
  net = i3d.InceptionI3d(final_endpoint="Mixed_5c", bn_epsilon=i3d.PYTORCH_BN_EPSILON)
  with nn.intercept_methods(record):
    mixed, features = jax.jit(lambda v, x: (net.apply(v, x), i3d.stack_features(v, x)))(
        random_variables, x
    )
  # 3 stem units and 6 in each of the 9 Inception blocks, in both networks.
  assert seen == [1e-5] * 2 * 57
  assert i3d.InceptionI3d().bn_epsilon == 1e-3  # the TensorFlow default is unchanged
  mixed = np.asarray(mixed)
  assert mixed.shape == (1, 2, 7, 7, 1024) and mixed.std() > 1e-3
  # (2, 7, 7) pooling of 2 steps is one window: the mean over time and space.
  np.testing.assert_allclose(features, mixed.mean(axis=(1, 2, 3)), rtol=1e-5, atol=1e-6)


def test_unit_batch_norm_by_hand():
  rng = np.random.default_rng(1)
  x = rng.standard_normal((1, 2, 3, 3, 4)).astype(np.float32)
  kernel = rng.standard_normal((1, 1, 1, 4, 5)).astype(np.float32)
  beta, mean = rng.normal(size=5).astype(np.float32), rng.normal(size=5).astype(np.float32)
  var = np.full(5, 1e-4, np.float32)  # small, so that the epsilon matters
  variables = {
      "params": {"Conv_0": {"kernel": kernel}, "BatchNorm_0": {"bias": beta}},
      "batch_stats": {"BatchNorm_0": {"mean": mean, "var": var}},
  }
  for eps in (1e-5, 1e-3):
    got = i3d.Unit3D(5, bn_epsilon=eps).apply(variables, x)
    want = np.maximum((x @ kernel[0, 0, 0] - mean) / np.sqrt(var + eps) + beta, 0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_video_features_pool_weighs_the_ends_half():
  x = np.random.default_rng(2).uniform(0, 1, (2, 8, 7, 7, 5)).astype(np.float32)
  frames = x.mean(axis=(2, 3))  # [B, 8, C]
  # AvgPool3d((2, 7, 7), stride 1) -> 7 steps, then their mean: 1/14, 2/14, ..., 2/14, 1/14.
  weights = np.asarray([1, 2, 2, 2, 2, 2, 2, 1], np.float32) / 14
  want = np.einsum("t,btc->bc", weights, frames)
  np.testing.assert_allclose(i3d.video_features_pool(x), want, rtol=1e-6)
  assert not np.allclose(want, frames.mean(1), rtol=1e-3)  # not a plain mean
  with pytest.raises(ValueError, match=r"\[B, >=2, 7, 7, C\]"):
    i3d.video_features_pool(x[:, :1])


@pytest.mark.slow
def test_extractor_end_to_end_at_the_real_sizes(random_variables, tmp_path):
  """One 64-frame stack at 224 x 224 (about a minute on two cores): the frames it feeds."""
  path = videos.make_video(tmp_path / "v.mp4", seconds=3, fps=30, size=(320, 240))
  extractor = extractors.make_stack_extractor(
      "i3d_imagenet",
      random_variables,
      clip_stacks.StackConfig(),
      weights_description="random",
      batch=1,
      devices=jax.local_devices()[:1],
  )
  result = extraction.extract_one(path, extractor)
  assert result.features.shape == (1, 1024) and result.duration == pytest.approx(3.0)
  # Independently: PyAV frames 0..63 (one 2-s shot of 60 frames, its stack pushed to 0),
  # PIL to 341 x 256, crop from (16, 58).
  with av.open(path) as container:
    frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)][:64]
  frames = np.stack(
      [
          np.asarray(Image.fromarray(f).resize((341, 256), Image.BILINEAR))[16:240, 58:282]
          for f in frames
      ]
  )
  # The same compiled network (tested on its own above): what differs is only the frames.
  np.testing.assert_array_equal(result.features, extractor.embed_fn(frames[None]))
  assert result.features.std() > 1e-3
  out = tmp_path / "v.npz"
  extraction.write_features(out, result, extractor)
  assert features_file.read_signature(out) == extractor.signature()
  assert features_file.read_feature_space(out) == STAGED
  assert "grid" in extractor.signature() and "2x/255-1" in extractor.description


# ------------------------------------------------------------------ weights and options


@pytest.fixture(scope="module")
def fake_checkpoint(tmp_path_factory):
  """rgb_imagenet's names and shapes with random numbers: a file that must be refused."""
  rng, tensors = np.random.default_rng(0), {}
  for name, entry in weight_files.shipped_entries("rgb_imagenet").items():
    tensors[name] = rng.normal(0, 0.1, entry.shape).astype(np.float32)
  folder = tmp_path_factory.mktemp("fake")
  writers.write_tf_checkpoint(folder / "model.ckpt", tensors)
  return folder / "model.ckpt"


def test_a_file_that_is_not_rgb_imagenet_is_refused(fake_checkpoint):
  with pytest.raises(ValueError) as error:
    extractors.make_extractor("i3d_imagenet", weights=str(fake_checkpoint))
  message = str(error.value)
  assert "\n" not in message and str(fake_checkpoint) in message
  assert "230 of 230 tensors differ from deepmind/kinetics-i3d rgb_imagenet" in message
  assert "RGB/inception_i3d/Conv3d_1a_7x7/batch_norm/beta: crc32c" in message


def test_without_weights_it_says_what_to_get(monkeypatch):
  monkeypatch.delenv(extractors.I3D_IMAGENET_WEIGHTS_ENV, raising=False)
  with pytest.raises(ValueError, match="--extractor_weights=.*i3d_rgb.pt.*HL_JAX_I3D_IMAGENET"):
    extractors.make_extractor("i3d_imagenet")


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(fps=25.0), "fps cannot be set"),
        (dict(frames_per_segment=32), "frames_per_segment cannot be set"),
        (dict(feature_dim=512), "feature_dim cannot be set"),
        (dict(grid="youtube_highlights", segment_seconds=3.0), "the youtube_highlights grid's"),
        (dict(grid="hourly"), "unknown clip grid 'hourly'"),
    ],
)
def test_options_it_refuses(fake_checkpoint, options, message):
  with pytest.raises(ValueError, match=message):
    extractors.make_extractor("i3d_imagenet", weights=str(fake_checkpoint), **options)


def test_other_extractors_refuse_a_grid():
  with pytest.raises(ValueError, match="a clip grid .youtube_highlights. is for the i3d_imagenet"):
    extractors.make_extractor("untrained", grid="youtube_highlights")


# ------------------------------------------------------------------ feature spaces


def test_extractors_name_their_feature_space():
  untrained = extractors.make_extractor("untrained", frame_size=16, feature_dim=8)
  assert untrained.feature_space == "hl_jax/untrained seed 0"
  assert extractors.make_extractor("i3d").feature_space == "hl_jax/i3d_rgb_scratch"


def test_feature_space_of_files(tmp_path):
  decode = dict(segment_seconds=2.0, frames_per_segment=4, frame_size=64, resize_shorter=None)
  features = np.ones((2, 3), np.float32)
  new = tmp_path / "new.npz"
  features_file.write(
      new, features, 4.0, decode, extractor="x", video="v.mp4", feature_space=STAGED
  )
  assert features_file.read_feature_space(new) == STAGED
  # Files written before the key: from their extractor's description.
  for description, space in [
      ("i3d deepmind/kinetics-i3d data/checkpoints/rgb_scratch: RGB ...", "hl_jax/i3d_rgb_scratch"),
      ("SegmentEmbedder seed 7 (untrained: not meaningful features)", "hl_jax/untrained seed 7"),
      ("SegmentEmbedder weights /w/e.msgpack", "hl_jax/untrained weights /w/e.msgpack"),
      ("made elsewhere", "unknown"),
  ]:
    old = tmp_path / "old.npz"
    features_file.write(old, features, 4.0, decode, extractor=description, video="v.mp4")
    assert features_file.read_feature_space(old) == space
  np.save(tmp_path / "plain.npy", features)
  assert features_file.read_feature_space(tmp_path / "plain.npy") == "unknown"
  # A stored signature comes back as written, with the array's width.
  signature = {"extractor": "x", "grid": "tvsum", "resize_shorter": None, "feature_dim": 99}
  features_file.write(new, features, 4.0, decode, extractor="x", video="v", signature=signature)
  assert features_file.read_signature(new) == {**signature, "feature_dim": 3}


@pytest.mark.parametrize(
    "builder_config, space",
    [
        ("synthetic_tiny", "synthetic"),
        ("youtube_highlights", STAGED),
        ("tvsum", STAGED),
        (
            "youtube_highlights_rgb_flow_audio",
            f"{STAGED}+video_features/i3d_flow_imagenet+panns/cnn14",
        ),
        ("manifest", "unknown"),  # no manual_dir
        ("my_corpus_d128", "unknown"),  # opened from its folder: not registered
    ],
)
def test_corpus_feature_space(builder_config, space):
  assert features_file.corpus_feature_space(builder_config) == space


def test_manifest_corpus_feature_space_is_its_files(tmp_path):
  decode = dict(segment_seconds=2.0, frames_per_segment=4, frame_size=64, resize_shorter=None)
  rows = ["video_id,duration_s,feature_path"]
  for name in ("a", "b"):
    features_file.write(
        tmp_path / f"{name}.npz",
        np.ones((2, 3)),
        4.0,
        decode,
        extractor="x",
        video="v",
        feature_space="hl_jax/i3d_rgb_scratch",
    )
    rows.append(f"{name},4.0,{name}.npz")
  (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
  space = features_file.corpus_feature_space("manifest", str(tmp_path))
  assert space == "hl_jax/i3d_rgb_scratch"
  features_file.write(
      tmp_path / "b.npz",
      np.ones((2, 3)),
      4.0,
      decode,
      extractor="x",
      video="v",
      feature_space=STAGED,
  )
  assert features_file.corpus_feature_space("manifest", str(tmp_path)) == (
      f"hl_jax/i3d_rgb_scratch | {STAGED}"
  )


def test_old_workdirs_get_the_space_their_config_implies():
  assert scorers.model_feature_space(str(LEGACY / "less_is_more_joint")) == "synthetic"
  assert scorers.model_feature_space(str(LEGACY / "taohighlight")) == (
      features_file.staged_feature_space("i3d_rgb_flow_audio")
  )


def _workdir_with_space(tmp_path, space):
  workdir = tmp_path / "w"
  workdir.mkdir()
  shutil.copy(LEGACY / "taohighlight" / "config.json", workdir)
  saved = json.loads((workdir / "config.json").read_text())
  saved["scorer"] = {"family": "taohighlight", "feature_dim": 1024, "feature_space": space}
  (workdir / "config.json").write_text(json.dumps(saved))
  assert workdir_lib.load_config(str(workdir))[1]["feature_space"] == space
  return str(workdir)


def test_another_space_is_refused_unless_overridden(tmp_path):
  workdir = _workdir_with_space(tmp_path, STAGED)
  same = scorers.check_feature_space(workdir, STAGED, source="--video=a.mp4")
  assert same == {"model": STAGED, "features": STAGED, "status": "same", "note": ""}
  with pytest.raises(ValueError) as error:
    scorers.check_feature_space(workdir, "hl_jax/i3d_rgb_scratch", source="--video=a.mp4")
  message = str(error.value)
  assert "\n" not in message
  assert message.startswith(
      f"--video=a.mp4 has hl_jax/i3d_rgb_scratch features but the model in {workdir} was "
      f"trained on {STAGED} features; extract with --extractor=i3d_imagenet"
  )
  assert scorers.OVERRIDE_FLAG in message
  forced = scorers.check_feature_space(
      workdir, "hl_jax/i3d_rgb_scratch", source="--video=a.mp4", override=True
  )
  assert forced["status"] == "override" and scorers.OVERRIDE_FLAG in forced["note"]
  unknown = scorers.check_feature_space(workdir, "unknown", source="f.npy")
  assert unknown["status"] == "unchecked" and "features'" in unknown["note"]


def test_clip_grid_of_a_workdir(tmp_path):
  assert scorers.clip_grid(str(LEGACY / "less_is_more_joint")) == "tvsum"  # synthetic
  workdir = _workdir_with_space(tmp_path, STAGED)  # TaoHighlight on TVSum
  assert scorers.clip_grid(workdir) == "tvsum"
  config = pathlib.Path(workdir, "config.json")
  config.write_text(config.read_text().replace('"tvsum"', '"youtube_highlights"'))
  assert scorers.clip_grid(workdir) == "youtube_highlights"


def test_a_synthetic_model_is_not_checked():
  record = scorers.check_feature_space(
      str(LEGACY / "less_is_more_joint"), "hl_jax/untrained seed 0", source="--video=a.mp4"
  )
  assert record["status"] == "unchecked" and "synthetic" in record["note"]


# ------------------------------------------------------------------ with the genuine weights


def _weights_candidates():
  env = os.environ.get(extractors.I3D_IMAGENET_WEIGHTS_ENV)
  shared = pathlib.Path(os.environ.get("HL_JAX_SHARED_DATA", "../shared/data"))
  folder = shared / "kinetics_i3d_reference" / "weights"
  return ([pathlib.Path(env)] if env else []) + [
      folder / "i3d_rgb.pt",
      folder / "model_rgb.pth",
      folder / "rgb_imagenet" / "model.ckpt",
  ]


@pytest.fixture(scope="module")
def genuine_weights():
  """The path of DeepMind's rgb_imagenet weights, or a skip naming where it looked."""
  candidates = _weights_candidates()
  for path in candidates:
    if path.is_file() or path.with_name(path.name + ".index").is_file():
      return path
  pytest.skip(
      "DeepMind's rgb_imagenet I3D weights not found (set $"
      f"{extractors.I3D_IMAGENET_WEIGHTS_ENV}); looked at: " + ", ".join(str(p) for p in candidates)
  )


@pytest.fixture(scope="module")
def genuine(genuine_weights):
  """The i3d_imagenet extractor (tvsum grid) with the genuine weights."""
  return extractors.make_extractor("i3d_imagenet", weights=str(genuine_weights))


@pytest.mark.slow
def test_genuine_weights_classify_deepminds_sample_clip(genuine_weights, shared_data):
  from experiments import i3d_reference  # pylint: disable=g-import-not-at-top

  sample = shared_data / i3d_reference.SAMPLE_DIR
  labels = i3d_reference.read_labels(sample / "label_map.txt")
  frames = i3d_reference.read_gif(sample / i3d_reference.GIF)
  # DeepMind's own numbers come from TensorFlow: its BatchNorm epsilon.
  variables, _ = weight_files.load_i3d_variables(genuine_weights)
  logits = np.asarray(i3d.logits(variables, i3d.preprocess(frames[None])))[0]
  result = i3d_reference.compare(
      logits, labels, *i3d_reference.read_expected(sample / i3d_reference.IMAGENET_RGB)
  )
  assert result["top1_match"] and result["top5_overlap"] >= 4
  assert result["correlation_over_listed"] > 0.95


def _constant_video(path, seconds=3, fps=30, level=0):
  with av.open(str(path), "w") as container:
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
    stream.options = {"qp": "0"}
    image = np.full((240, 320, 3), level, np.uint8)
    for n in range(round(seconds * fps)):
      frame = av.VideoFrame.from_ndarray(image, format="rgb24")
      frame.pts = n
      container.mux(stream.encode(frame))
    container.mux(stream.encode())
  return str(path)


@pytest.mark.slow
def test_genuine_blank_clip_is_the_staged_fingerprint(genuine, shared_data, tmp_path):
  row = np.load(
      shared_data / "kinetics_i3d_reference/staged_fingerprint/staged_constant_clip_rgb_row.npy"
  )
  result = extraction.extract_one(_constant_video(tmp_path / "black.mp4"), genuine)
  cosine = result.features @ row / np.linalg.norm(result.features, axis=1) / np.linalg.norm(row)
  # rgb_scratch, our i3d extractor's network, gives 0.465 on a black clip (measured once).
  assert cosine.min() >= 0.99, f"cosine {cosine} (norms {np.linalg.norm(result.features, axis=1)})"


@pytest.mark.slow
def test_genuine_features_have_the_staged_statistics(genuine, shared_data):
  """Our features of the sample videos against the staged i3d_rgb rows.

  Tolerances from BENCHMARKS.md ("How close are its features to the staged benchmark features?") (rgb_scratch: norm ratio 0.63, per-dimension std
  correlation 0.008, 1.1% of values < 0.01; a control of as many staged TVSum rows against
  YouTube Highlights: 0.99 +- 0.08, 0.171 +- 0.065, staged 4.9-7.4% < 0.01).
  """
  names = ["bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4", "univtg_example/charades.mp4"]
  ours = np.concatenate(
      [extraction.extract_one(shared_data / "sample_videos" / n, genuine).features for n in names]
  )
  folder = shared_data / "youtube_highlights" / "features_umt_f16" / "i3d_rgb"
  staged = np.concatenate(
      [np.load(p)["features"].astype(np.float32) for p in sorted(folder.glob("*.npz"))]
  )
  ratio = np.linalg.norm(ours, axis=1).mean() / np.linalg.norm(staged, axis=1).mean()
  std_corr = np.corrcoef(ours.std(0), staged.std(0))[0, 1]
  small = (ours < 0.01).mean()
  report = f"norm ratio {ratio:.3f}, std correlation {std_corr:.3f}, {small:.1%} < 0.01"
  assert (ours >= 0).all(), report
  assert 0.75 <= ratio <= 1.3, report
  assert std_corr >= 0.05, report
  assert small >= 0.02, report
