"""clu metric writers that need no TensorFlow: TensorBoard events and JSON lines.

clu's own SummaryWriter imports TensorFlow (and, from TensorFlow 2.20 on, a
separate tensorboard package), and `clu.metric_writers` imports it eagerly. We
register a stand-in for that one module (its SummaryWriter raises if used)
before importing clu, whether or not TensorFlow is installed, and write
TensorBoard events with tensorboardX instead; everything else is clu's. So
importing hl_jax never imports TensorFlow (seconds per process saved where it
is installed).

A workdir on an object store (gs://, s3://) works too. An object cannot be
appended to, so each file is kept in memory and uploaded whole through
etils.epath: TensorBoard's event files at each of tensorboardX's flushes
(every 2 minutes and at the end; `_ObjectRecordWriter`, registered with
tensorboardX in place of its own GCS writer, which uploads again whenever it
is garbage-collected, even at exit), metrics.jsonl at most every
`JsonlWriter.upload_every_s` seconds and at each flush.

`quiet_libraries` keeps the INFO chatter of TFDS, Beam, orbax and grain out of
the absl log, so the log holds the trainer's own lines.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import time
import types
from typing import Any, Mapping

from absl import logging as absl_logging
from etils import epath
import numpy as np
import tensorboardX
from tensorboardX import record_writer

from hl_jax.core import files
from hl_jax.core import trees


def _import_clu_metric_writers() -> types.ModuleType:
  name = "clu.metric_writers.summary_writer"
  if name not in sys.modules:
    stand_in = types.ModuleType(name)

    class SummaryWriter:  # pylint: disable=too-few-public-methods

      def __init__(self, *args, **kwargs):
        raise ImportError(
            "clu's SummaryWriter needs TensorFlow; use " "hl_jax.core.writers.TensorboardWriter"
        )

    stand_in.SummaryWriter = SummaryWriter
    sys.modules[name] = stand_in
  from clu import metric_writers as module  # pylint: disable=g-import-not-at-top

  return module


metric_writers = _import_clu_metric_writers()


class JsonlWriter(metric_writers.MetricWriter):
  """Appends one JSON object per write: {"step", "time", <name>: value, ...}.

  A local file is appended to. An object (a URL), which cannot be appended
  to, is read once, kept in memory with the new lines, and uploaded whole at
  most every `upload_every_s` seconds and at each flush and close.
  """

  upload_every_s = 30.0

  def __init__(self, path: str):
    self._path = path
    self._remote = files.is_remote(path)
    if self._remote:
      existing = epath.Path(path)
      self._lines = [existing.read_text()] if existing.exists() else []
      self._uploaded = time.monotonic()
    else:
      self._file = open(path, "a", encoding="utf-8")

  def _write(self, step: int, kind: str, values: Mapping[str, Any]) -> None:
    row = {"step": int(step), "time": time.time(), "kind": kind}
    row.update({k: _jsonable(v) for k, v in values.items()})
    if not self._remote:
      self._file.write(json.dumps(row) + "\n")
      return
    self._lines.append(json.dumps(row) + "\n")
    if time.monotonic() - self._uploaded > self.upload_every_s:
      self._upload()

  def _upload(self) -> None:
    files.write_text(self._path, "".join(self._lines))
    self._uploaded = time.monotonic()

  def write_summaries(self, step, values, metadata=None):
    self._write(step, "summary", values)

  def write_scalars(self, step, scalars):
    self._write(step, "scalars", scalars)

  def write_texts(self, step, texts):
    self._write(step, "texts", texts)

  def write_hparams(self, hparams):
    self._write(0, "hparams", hparams)

  def write_images(self, step, images):
    pass  # Images go to TensorBoard only.

  def write_videos(self, step, videos):
    pass

  def write_audios(self, step, audios, *, sample_rate):
    pass

  def write_histograms(self, step, arrays, num_buckets=None):
    pass

  def flush(self):
    if self._remote:
      self._upload()
    else:
      self._file.flush()

  def close(self):
    if self._remote:
      self._upload()
    else:
      self._file.close()


class _ObjectRecordWriter:
  """An event file on an object store: kept in memory, uploaded whole at each flush."""

  def __init__(self, url: str):
    self._url = url
    self._buffer = io.BytesIO()
    self._uploaded_size = -1

  def write(self, data: bytes) -> None:
    self._buffer.write(data)

  def flush(self) -> None:
    if self._buffer.tell() != self._uploaded_size:
      files.write_bytes(self._url, self._buffer.getvalue())
      self._uploaded_size = self._buffer.tell()

  def close(self) -> None:
    self.flush()


class _ObjectRecordWriterFactory:
  """tensorboardX's hook for a URL prefix ("gs", "s3"): where its event files go."""

  def open(self, path: str) -> _ObjectRecordWriter:
    return _ObjectRecordWriter(path)

  def directory_check(self, path: str) -> None:
    del path  # Object stores have no folders to create.


for _prefix in ("gs", "s3"):
  record_writer.register_writer_factory(_prefix, _ObjectRecordWriterFactory())


class TensorboardWriter(metric_writers.MetricWriter):
  """TensorBoard event files through tensorboardX."""

  def __init__(self, logdir: str):
    self._writer = tensorboardX.SummaryWriter(logdir)

  def write_summaries(self, step, values, metadata=None):
    self.write_scalars(step, values)

  def write_scalars(self, step, scalars):
    for name, value in scalars.items():
      self._writer.add_scalar(name, float(value), global_step=int(step))

  def write_images(self, step, images):
    for name, image in images.items():
      self._writer.add_images(name, np.asarray(image), global_step=int(step), dataformats="NHWC")

  def write_videos(self, step, videos):
    pass

  def write_audios(self, step, audios, *, sample_rate):
    pass

  def write_texts(self, step, texts):
    for name, text in texts.items():
      self._writer.add_text(name, text, global_step=int(step))

  def write_histograms(self, step, arrays, num_buckets=None):
    for name, values in arrays.items():
      self._writer.add_histogram(name, np.asarray(values), global_step=int(step))

  def write_hparams(self, hparams):
    self._writer.add_text(
        "hparams", json.dumps({k: _jsonable(v) for k, v in hparams.items()}, indent=1)
    )

  def flush(self):
    self._writer.flush()

  def close(self):
    self._writer.close()


def flatten(tree: Mapping[str, Any]) -> dict[str, Any]:
  """{"a": {"b": 1}} -> {"a.b": 1}; sequences become strings (hparams take scalars)."""
  return {
      key: value if isinstance(value, (int, float, str, bool)) else str(value)
      for key, value in trees.flatten(tree).items()
  }


def _jsonable(value: Any) -> Any:
  if isinstance(value, (np.generic, np.ndarray)) or hasattr(value, "__array__"):
    value = np.asarray(value)
    return value.item() if value.ndim == 0 else value.tolist()
  if isinstance(value, (str, int, float, bool)) or value is None:
    return value
  return str(value)


def create_writer(workdir: str, *, is_chief: bool) -> metric_writers.MetricWriter:
  """TensorBoard and metrics.jsonl on the chief; nothing on other hosts.

  No LoggingWriter: the trainer's own log line (with pairs/s and ETA) is the
  human-readable progress, and a second copy of it would only be noise.
  """
  if not is_chief:
    return metric_writers.MultiWriter([])  # Writes to no one.
  epath.Path(workdir).mkdir(parents=True, exist_ok=True)
  return metric_writers.AsyncMultiWriter(
      [
          TensorboardWriter(os.path.join(workdir, "tensorboard")),
          JsonlWriter(os.path.join(workdir, "metrics.jsonl")),
      ]
  )


# INFO records from these packages are progress chatter (dataset generation,
# checkpoint bookkeeping, worker start-up, gcsfs's read-ahead set-up for every
# file it opens); their warnings still show.
_CHATTY_PATHS = ("/orbax/", "/grain/", "/tensorflow_datasets/", "/apache_beam/", "/gcsfs/")


_CHATTY_LOGGERS = ("tensorflow_datasets", "apache_beam")


class _QuietLibraries(logging.Filter):
  """Drops INFO chatter of the libraries above and jax's missing-libtpu note."""

  def filter(self, record: logging.LogRecord) -> bool:
    if record.levelno >= logging.WARNING:
      return True
    if any(path in record.pathname for path in _CHATTY_PATHS):
      return False
    return not _is_missing_libtpu(record)


def _is_missing_libtpu(record: logging.LogRecord) -> bool:
  # jax probes for a TPU on every host and logs the failure at INFO. On a host
  # that does have TPU chips but no libtpu, jax also warns, and that stays.
  message = record.getMessage()
  return (
      record.name.startswith("jax")
      and message.startswith("Unable to initialize backend 'tpu'")
      and "libtpu.so" in message
  )


def quiet_libraries(verbosity: int) -> None:
  """Keeps library INFO chatter out of the absl log unless verbosity >= 1.

  Args:
    verbosity: absl's verbosity (`--verbosity`, `-v`): 0 is INFO, 1 is DEBUG.
      At 1 or more everything is shown.
  """
  if verbosity >= 1:
    return
  absl_logging.get_absl_handler().addFilter(_QuietLibraries())
  for name in _CHATTY_LOGGERS:
    logging.getLogger(name).setLevel(logging.WARNING)
