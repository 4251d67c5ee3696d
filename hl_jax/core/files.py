"""Writing files whole or not at all, and reading text fields.

Every file hl_jax writes for someone else to read (results, configs,
features, manifests, reels, pages) goes through `atomic_output`: the writer
fills `<name>.<pid>.partial<suffix>` and it is renamed into place only when
complete, so a reader (another host, a later run, a user) never sees half a
file, and a failed write leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[pathlib.Path]:
  """Yields a temporary path next to `path`; renames it to `path` if the block succeeds.

  The temporary name keeps `path`'s suffix (libraries that pick a format by the
  suffix, such as an mp4 muxer or numpy's savez, see the right one) and holds
  the process id (processes writing the same file do not meet). On an error
  the temporary file is removed and the error propagates.
  """
  path = pathlib.Path(path)
  partial = path.with_name(f"{path.stem}.{os.getpid()}.partial{path.suffix}")
  try:
    yield partial
    os.replace(partial, path)
  except BaseException:
    partial.unlink(missing_ok=True)
    raise


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
  """Writes `data` to `path` atomically."""
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
