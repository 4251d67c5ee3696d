"""clu metric writers that need no TensorFlow: TensorBoard events and JSON lines.

clu's own SummaryWriter imports TensorFlow; these two implement the same
`MetricWriter` interface with tensorboardX and plain JSON, so training code
only ever talks to clu.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Mapping

from clu import metric_writers
import numpy as np
import tensorboardX


class JsonlWriter(metric_writers.MetricWriter):
  """Appends one JSON object per write: {"step", "time", <name>: value, ...}."""

  def __init__(self, path: str):
    self._file = open(path, "a", encoding="utf-8")

  def _write(self, step: int, kind: str, values: Mapping[str, Any]) -> None:
    row = {"step": int(step), "time": time.time(), "kind": kind}
    row.update({k: _jsonable(v) for k, v in values.items()})
    self._file.write(json.dumps(row) + "\n")

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
    self._file.flush()

  def close(self):
    self._file.close()


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
      self._writer.add_images(name, np.asarray(image), global_step=int(step),
                              dataformats="NHWC")

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
    self._writer.add_text("hparams", json.dumps(
        {k: _jsonable(v) for k, v in hparams.items()}, indent=1))

  def flush(self):
    self._writer.flush()

  def close(self):
    self._writer.close()


def _jsonable(value: Any) -> Any:
  if isinstance(value, (np.generic, np.ndarray)) or hasattr(value, "__array__"):
    value = np.asarray(value)
    return value.item() if value.ndim == 0 else value.tolist()
  if isinstance(value, (str, int, float, bool)) or value is None:
    return value
  return str(value)


def create_writer(workdir: str, *, is_chief: bool) -> metric_writers.MetricWriter:
  """Logging on every host; TensorBoard and metrics.jsonl on the chief only."""
  if not is_chief:
    return metric_writers.create_default_writer(just_logging=True)
  os.makedirs(workdir, exist_ok=True)
  return metric_writers.AsyncMultiWriter([
      metric_writers.LoggingWriter(),
      TensorboardWriter(os.path.join(workdir, "tensorboard")),
      JsonlWriter(os.path.join(workdir, "metrics.jsonl")),
  ])
