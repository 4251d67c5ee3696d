"""Writing files whole or not at all, local or on cloud storage, and reading text fields.

Every file hl_jax writes for someone else to read (results, configs,
features, manifests, reels, pages) goes through `atomic_output`: the writer
fills `<name>.<pid>.partial<suffix>` and it is renamed into place only when
complete, so a reader (another host, a later run, a user) never sees half a
file, and a failed write leaves nothing behind.

Paths may also be URLs of an object store (`gs://bucket/...`, `s3://...`),
read and written through etils.epath (gcsfs, s3fs). There an object appears
whole when its upload completes, and a rename is a copy and a delete, so the
final name is written directly (`atomic_output` fills a local temporary file
and uploads it when the block succeeds). Object stores cannot append either:
a file that grows (a history, metrics) is rewritten whole.

gcsfs caches directory listings for ever by default, so a process would not
see the files another process (another host, an evaluator) wrote after it
first listed a folder; importing this module turns that cache off for gs://
unless the fsspec configuration ($FSSPEC_GS_USE_LISTINGS_CACHE) says otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import re
import tempfile
from typing import Any, Iterator

from etils import epath
import fsspec

# Directory listings read afresh on every gs:// call (see the docstring).
fsspec.config.conf.setdefault("gs", {}).setdefault("use_listings_cache", False)
# gs:// through gcsfs even where TensorFlow is installed: etils.epath would
# otherwise use tf.io.gfile, which no program of hl_jax needs (and which no
# emulator can stand in for). Read once, at epath's first use of any path.
os.environ.setdefault("EPATH_USE_TF", "false")

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_remote(path: str | os.PathLike[str]) -> bool:
  """Whether `path` is a URL of an object store ("gs://b/x", "s3://b/x"), not a local path."""
  text = os.fspath(path)
  return bool(_URL.match(text)) and not text.startswith("file://")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[pathlib.Path]:
  """Yields a temporary path next to `path`; renames it to `path` if the block succeeds.

  The temporary name keeps `path`'s suffix (libraries that pick a format by the
  suffix, such as an mp4 muxer or numpy's savez, see the right one) and holds
  the process id (processes writing the same file do not meet). On an error
  the temporary file is removed and the error propagates. For a URL of an
  object store the temporary file is local and is uploaded under the final
  name when the block succeeds (an object appears whole or not at all).
  """
  if is_remote(path):
    with _uploaded(path) as partial:
      yield partial
    return
  path = pathlib.Path(path)
  partial = path.with_name(f"{path.stem}.{os.getpid()}.partial{path.suffix}")
  try:
    yield partial
    os.replace(partial, path)
  except BaseException:
    partial.unlink(missing_ok=True)
    raise


@contextlib.contextmanager
def _uploaded(url: str | os.PathLike[str]) -> Iterator[pathlib.Path]:
  """A local temporary file, uploaded to `url` (whole) if the block succeeds."""
  suffix = pathlib.PurePosixPath(os.fspath(url)).suffix
  with tempfile.TemporaryDirectory(prefix="hl_jax_upload_") as folder:
    partial = pathlib.Path(folder) / f"partial{suffix}"
    yield partial
    epath.Path(url).write_bytes(partial.read_bytes())


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
  """Writes `data` to `path` atomically (a URL: one upload, whole or not at all)."""
  if is_remote(path):
    epath.Path(path).write_bytes(data)
    return
  with atomic_output(path) as partial:
    partial.write_bytes(data)


def write_text(path: str | os.PathLike[str], text: str) -> None:
  """Writes `text` (UTF-8) to `path` atomically."""
  write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], value: Any, indent: int | None = 1) -> None:
  """Writes `value` as JSON (and a final newline) to `path` atomically."""
  write_text(path, json.dumps(value, indent=indent) + "\n")


def as_text(value: Any) -> str:
  """A string field (bytes from ArrayRecord, numpy strings) as str."""
  return value.decode() if isinstance(value, bytes) else str(value)
