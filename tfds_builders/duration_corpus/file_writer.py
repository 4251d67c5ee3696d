"""Shard writing that also works when the data_dir is on GCS / S3.

ArrayRecord's writer (array_record 0.8.x, riegeli) opens local files only: a
`gs://...` path is taken for a local one and fails with "open() failed: No
such file or directory" (google/array_record#120), with or without
TensorFlow. A distributed build must write to storage that every worker
shares, which on Dataflow means GCS. So `StagedExampleWriter`, TFDS's hook for
custom storage (`DatasetBuilder._example_writer`), writes each shard to the
worker's local disk and streams it to the remote path through `etils.epath`
(fsspec: gcsfs / s3fs). Local paths are written directly, as TFDS does.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Iterable

from etils import epath
from tensorflow_datasets.core import file_adapters
from tensorflow_datasets.core import writer as writer_lib

_COPY_CHUNK = 16 * 2**20


def is_remote(path: epath.PathLike) -> bool:
  """Whether `path` is a URI (gs://, s3://, ...) rather than a local path."""
  return '://' in os.fspath(path)


class StagedExampleWriter(writer_lib.ExampleWriter):
  """An ExampleWriter that stages remote shards on local disk, then copies them."""

  def write(
      self,
      path: epath.PathLike,
      examples: Iterable,
  ) -> file_adapters.ExamplePositions | None:
    if not is_remote(path):
      return super().write(path, examples)
    with tempfile.TemporaryDirectory(prefix='duration_corpus_shard_') as tmp:
      local = epath.Path(tmp) / epath.Path(path).name
      positions = super().write(local, examples)
      with local.open('rb') as src, epath.Path(path).open('wb') as dst:
        shutil.copyfileobj(src, dst, _COPY_CHUNK)
    return positions
