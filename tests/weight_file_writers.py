"""Writers of synthetic I3D weight files for tests: TensorFlow bundles and both torch.save formats.

Written from the formats' specifications, not with hl_jax.video.weight_files' readers:
- TensorFlow tensor bundle: `<prefix>.data-00000-of-00001` (tensors back to back) and
  `<prefix>.index`, a LevelDB-format table (prefix-compressed keys, restart points, block
  trailers with masked CRC32C, an index block, a 48-byte footer) of BundleHeaderProto and
  BundleEntryProto records encoded by hand.
- PyTorch: the zip archive of torch >= 1.6 and the legacy stream of torch <= 1.5, with the
  state_dict pickle emitted opcode by opcode (protocol 2), since `pickle` cannot name
  torch's globals without importing torch.
- hassony2/kinetics_i3d_pytorch's state_dict names and layouts, from its `load_tf_weights`
  (src/i3dpt.py): conv weights transposed (4, 3, 0, 1, 2), BatchNorm weight = ones.

Only the CRC32C comes from the library (its known answers are tested on their own);
`bitwise_crc32c` and `masked` are the tests' own, from the definitions, to check it against.
"""

from __future__ import annotations

import collections
import io
import pathlib
import pickle
import re
import struct
import zipfile

import numpy as np

from hl_jax.video import weight_files

TABLE_MAGIC = 0xDB4775248B80FB57
TF_DTYPES = {"float32": 1, "float64": 2, "int32": 3, "int64": 9}
TORCH_STORAGES = {
    "float32": "FloatStorage",
    "float64": "DoubleStorage",
    "int64": "LongStorage",
    "int32": "IntStorage",
}
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def bitwise_crc32c(data: bytes) -> int:
  """CRC-32C (Castagnoli), bit by bit from its definition (slow: small inputs)."""
  crc = 0xFFFFFFFF
  for byte in data:
    crc ^= byte
    for _ in range(8):
      crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
  return crc ^ 0xFFFFFFFF


def masked(crc: int) -> int:
  """TF's (leveldb's) stored form of a CRC: rotated right by 15 bits, plus a constant."""
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# ---------------------------------------------------------------------------------- TensorFlow


def _varint(value: int) -> bytes:
  out = bytearray()
  value &= (1 << 64) - 1
  while True:
    byte, value = value & 0x7F, value >> 7
    out.append(byte | (0x80 if value else 0))
    if not value:
      return bytes(out)


def _field(number: int, value: int | bytes) -> bytes:
  if isinstance(value, bytes):
    return _varint(number << 3 | 2) + _varint(len(value)) + value
  return _varint(number << 3) + _varint(value)


def _entry_proto(dtype: str, shape: tuple[int, ...], offset: int, size: int, crc: int) -> bytes:
  shape_proto = b"".join(_field(2, _field(1, d)) for d in shape)
  proto = _field(1, TF_DTYPES[dtype]) + _field(2, shape_proto)
  proto += (_field(4, offset) if offset else b"") + _field(5, size)
  return proto + _varint(6 << 3 | 5) + struct.pack("<I", crc)


def _block(items: list[tuple[bytes, bytes]], restart_interval: int) -> bytes:
  out, restarts, last = bytearray(), [], b""
  for i, (key, value) in enumerate(items):
    shared = 0
    if i % restart_interval == 0:
      restarts.append(len(out))
    else:
      while shared < min(len(last), len(key)) and last[shared] == key[shared]:
        shared += 1
    out += _varint(shared) + _varint(len(key) - shared) + _varint(len(value))
    out += key[shared:] + value
    last = key
  restarts = restarts or [0]
  return (
      bytes(out)
      + b"".join(struct.pack("<I", r) for r in restarts)
      + struct.pack("<I", len(restarts))
  )


def write_sstable(
    path: pathlib.Path,
    items: list[tuple[bytes, bytes]],
    block_size: int = 1024,
    restart_interval: int = 16,
) -> None:
  """A LevelDB-format table of sorted (key, value) items, blocks of ~block_size bytes."""
  out, index = bytearray(), []

  def emit(contents: bytes) -> bytes:
    handle = _varint(len(out)) + _varint(len(contents))
    out.extend(
        contents + b"\x00" + struct.pack("<I", weight_files.masked_crc32c(contents + b"\x00"))
    )
    return handle

  chunk, chunk_bytes = [], 0
  for key, value in items:
    chunk.append((key, value))
    chunk_bytes += len(key) + len(value)
    if chunk_bytes >= block_size:
      index.append((chunk[-1][0], emit(_block(chunk, restart_interval))))
      chunk, chunk_bytes = [], 0
  if chunk:
    index.append((chunk[-1][0], emit(_block(chunk, restart_interval))))
  metaindex = emit(_block([], 1))
  index_handle = emit(_block(index, 1))
  footer = (metaindex + index_handle).ljust(40, b"\x00") + struct.pack("<Q", TABLE_MAGIC)
  path.write_bytes(bytes(out) + footer)


def write_tf_checkpoint(
    prefix: pathlib.Path, tensors: dict[str, np.ndarray]
) -> dict[str, tuple[int, int]]:
  """A one-shard tensor bundle; returns {name: (byte offset, size)} in the data file."""
  data, items, where = bytearray(), [(b"", _field(1, 1) + _field(3, _field(1, 1)))], {}
  for name in sorted(tensors):
    array = np.ascontiguousarray(tensors[name])
    raw = array.astype(array.dtype.newbyteorder("<")).tobytes()
    where[name] = (len(data), len(raw))
    items.append(
        (
            name.encode(),
            _entry_proto(
                array.dtype.name, array.shape, len(data), len(raw), weight_files.masked_crc32c(raw)
            ),
        )
    )
    data += raw
  prefix.with_name(prefix.name + ".data-00000-of-00001").write_bytes(bytes(data))
  write_sstable(prefix.with_name(prefix.name + ".index"), items)
  return where


# -------------------------------------------------------------------------------------- PyTorch

_BRANCHES = {
    "Branch_0/Conv3d_0a_1x1": "branch_0",
    "Branch_1/Conv3d_0a_1x1": "branch_1.0",
    "Branch_1/Conv3d_0b_3x3": "branch_1.1",
    "Branch_2/Conv3d_0a_1x1": "branch_2.0",
    "Branch_2/Conv3d_0b_3x3": "branch_2.1",
    "Branch_2/Conv3d_0a_3x3": "branch_2.1",
    "Branch_3/Conv3d_0b_1x1": "branch_3.1",
}
_LEAVES = {
    "conv_3d/w": "conv3d.weight",
    "conv_3d/b": "conv3d.bias",
    "batch_norm/beta": "batch3d.bias",
    "batch_norm/moving_mean": "batch3d.running_mean",
    "batch_norm/moving_variance": "batch3d.running_var",
}


def hassony2_state_dict(tensors: dict[str, np.ndarray]) -> collections.OrderedDict:
  """DeepMind-named TF tensors -> the state_dict hassony2's `load_tf_weights` builds."""
  out = collections.OrderedDict()
  for name in sorted(tensors):
    match = re.fullmatch(r"(?:RGB|Flow)/inception_i3d/(.+)/(conv_3d/\w|batch_norm/\w+)", name)
    unit, leaf = match.groups()
    if unit.startswith("Mixed_"):
      block, branch = unit.split("/", 1)
      unit = f"{block.lower()}.{_BRANCHES[branch]}"
    else:
      unit = unit.replace("Logits/", "").lower()
    value = tensors[name]
    if leaf == "conv_3d/w":
      value = np.ascontiguousarray(np.transpose(value, (4, 3, 0, 1, 2)))
    out[f"{unit}.{_LEAVES[leaf]}"] = value
    if leaf == "batch_norm/beta":
      out[f"{unit}.batch3d.weight"] = np.ones_like(value)
  return out


def _int(value: int) -> bytes:
  if -(1 << 31) <= value < (1 << 31):
    return b"J" + struct.pack("<i", value)
  raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
  return b"\x8a" + bytes([len(raw)]) + raw


def _str(value: str) -> bytes:
  raw = value.encode()
  return b"X" + struct.pack("<I", len(raw)) + raw


def _global(module: str, name: str) -> bytes:
  return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _tuple(items: list[bytes]) -> bytes:
  return b"(" + b"".join(items) + b"t"


class TorchLayout:
  """Where each tensor lies: storages (flat arrays) and (key, offset, shape, stride) per tensor.

  mode "contiguous": one storage per tensor, as torch.save writes a state_dict;
  "shared": every tensor in one storage, at increasing offsets;
  "tf_strided": conv weights left in TensorFlow layout in their storage and viewed with
  permuted strides (what saving torch.from_numpy(np.transpose(w)) without a copy gives).
  """

  def __init__(self, state_dict: dict[str, np.ndarray], mode: str = "contiguous"):
    self.storages: dict[str, np.ndarray] = {}
    self.tensors: dict[str, tuple[str, int, tuple[int, ...], tuple[int, ...]]] = {}
    if mode == "shared":
      dtype = next(iter(state_dict.values())).dtype
      flat, offset = [], 0
      for name, value in state_dict.items():
        flat.append(np.ravel(value))
        self.tensors[name] = ("0", offset, value.shape, _strides(value.shape))
        offset += value.size
      self.storages["0"] = np.concatenate(flat).astype(dtype)
      return
    for i, (name, value) in enumerate(state_dict.items()):
      key = str(1000 + i)  # keys sort as strings in legacy files
      if mode == "tf_strided" and value.ndim == 5:
        stored = np.ascontiguousarray(np.transpose(value, (2, 3, 4, 1, 0)))
        tf_strides = _strides(stored.shape)
        self.tensors[name] = (key, 0, value.shape, tuple(tf_strides[a] for a in (4, 3, 0, 1, 2)))
        self.storages[key] = stored.ravel()
      else:
        self.tensors[name] = (key, 0, value.shape, _strides(value.shape))
        self.storages[key] = np.ravel(value).copy()


def _strides(shape: tuple[int, ...]) -> tuple[int, ...]:
  out, step = [], 1
  for n in reversed(shape):
    out.append(step)
    step *= n
  return tuple(reversed(out))


def _state_dict_pickle(layout: TorchLayout, rebuild: str, legacy: bool, metadata: bool) -> bytes:
  """Protocol-2 opcodes for an OrderedDict of tensors, as torch.save pickles it."""
  empty_ordered_dict = _global("collections", "OrderedDict") + b")R"
  out = bytearray(b"\x80\x02" + empty_ordered_dict + b"(")
  for name, (key, offset, shape, stride) in layout.tensors.items():
    storage = layout.storages[key]
    pid = [
        _str("storage"),
        _global("torch", TORCH_STORAGES[storage.dtype.name]),
        _str(key),
        _str("cpu"),
        _int(storage.size),
    ] + ([b"N"] if legacy else [])
    args = [
        _tuple(pid) + b"Q",
        _int(offset),
        _tuple([_int(n) for n in shape]),
        _tuple([_int(s) for s in stride]),
    ]
    if rebuild == "_rebuild_tensor_v2":
      args += [b"\x89", empty_ordered_dict]  # requires_grad=False, backward_hooks
    out += _str(name) + _global("torch._utils", rebuild) + _tuple(args) + b"R"
  out += b"u"
  if metadata:  # state_dict()._metadata, set by BUILD as torch >= 0.4.1 writes it
    out += b"}" + _str("_metadata") + empty_ordered_dict + b"sb"
  return bytes(out + b".")


def write_torch_zip(
    path: pathlib.Path, state_dict: dict[str, np.ndarray], mode: str = "contiguous"
) -> dict[str, tuple[int, int]]:
  """torch >= 1.6's zip format; returns {tensor name: (byte offset, size) of its storage}."""
  layout = TorchLayout(state_dict, mode)
  with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
    archive.writestr(
        "archive/data.pkl", _state_dict_pickle(layout, "_rebuild_tensor_v2", False, True)
    )
    archive.writestr("archive/byteorder", "little")
    for key, storage in layout.storages.items():
      archive.writestr(
          f"archive/data/{key}", storage.astype(storage.dtype.newbyteorder("<")).tobytes()
      )
    archive.writestr("archive/version", "3\n")
  where = {}
  with zipfile.ZipFile(path) as archive, open(path, "rb") as f:
    for name, (key, *_) in layout.tensors.items():
      info = archive.getinfo(f"archive/data/{key}")
      f.seek(info.header_offset + 26)
      name_len, extra_len = struct.unpack("<HH", f.read(4))
      where[name] = (info.header_offset + 30 + name_len + extra_len, info.file_size)
  return where


def write_torch_legacy(
    path: pathlib.Path,
    state_dict: dict[str, np.ndarray],
    mode: str = "contiguous",
    rebuild: str = "_rebuild_tensor",
) -> dict[str, tuple[int, int]]:
  """torch <= 1.5's stream (torch 0.3's `_rebuild_tensor` by default, as in 2017-2018 files).

  Returns {tensor name: (byte offset, size) of its storage's bytes}.
  """
  layout = TorchLayout(state_dict, mode)
  sys_info = {
      "protocol_version": 1001,
      "little_endian": True,
      "type_sizes": {"short": 2, "int": 4, "long": 4},
  }
  out = io.BytesIO()
  for header in (LEGACY_MAGIC, 1001, sys_info):
    out.write(pickle.dumps(header, protocol=2))
  out.write(_state_dict_pickle(layout, rebuild, True, False))
  keys = sorted(layout.storages)
  out.write(pickle.dumps(keys, protocol=2))
  starts = {}
  for key in keys:
    storage = layout.storages[key]
    out.write(struct.pack("<q", storage.size))
    starts[key] = out.tell()
    out.write(storage.astype(storage.dtype.newbyteorder("<")).tobytes())
  path.write_bytes(out.getvalue())
  where = {}
  for name, (key, offset, shape, _) in layout.tensors.items():
    item = layout.storages[key].itemsize
    where[name] = (starts[key] + offset * item, int(np.prod(shape)) * item)
  return where
