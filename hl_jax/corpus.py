"""The training corpus: its TFDS builder, and the table windows fed to the step.

`load` builds (once) and opens the configured `duration_corpus` dataset.
`TableFeeder` owns the Grain stream and decides when the resident table is
refilled; its `input_state()` is the input part of a checkpoint.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from hl_jax import evaluation
from hl_jax import input_pipeline
from hl_jax import parallel


@dataclasses.dataclass
class Corpus:
  """An opened duration-bucketed corpus."""
  name: str
  train_source: Any                 # random-access source of training videos
  feature_dim: int
  eval_videos: list[evaluation.LabelledVideo]  # empty if no labelled split


def load(config: ml_collections.ConfigDict) -> Corpus:
  """Builds the configured duration_corpus if needed and opens its splits."""
  # Imported here so that hl_jax imports without the builders' dependencies.
  from tfds_builders.duration_corpus import duration_corpus_dataset_builder as dcb

  builder = dcb.get_builder(config.corpus.config,
                            data_dir=config.corpus.data_dir or None,
                            manual_dir=config.corpus.manual_dir or None)
  feature_dim = int(builder.info.features["features"].shape[-1])
  name = f"duration_corpus/{config.corpus.config}"
  train_source = builder.as_data_source(split=config.corpus.train_split)
  eval_videos = []
  split = config.corpus.eval_split
  if split and split in builder.info.splits:
    eval_videos = evaluation.load_labelled_split(builder.as_data_source(split=split))
  domain = config.corpus.domain
  if domain:  # Ours-S: one model per domain, trained on that domain only.
    train_source = DomainSubset(train_source, domain)
    if not len(train_source):
      raise ValueError(f"{name} has no training video of domain {domain!r}")
    eval_videos = [v for v in eval_videos if v.group == domain]
    name += f" (domain {domain})"
  return Corpus(name=name, train_source=train_source, feature_dim=feature_dim,
                eval_videos=eval_videos)


class DomainSubset:
  """The examples of one domain of a random-access source, in source order."""

  def __init__(self, source: Any, domain: str):
    self._source = source
    self._domain = domain
    self._indices = [i for i in range(len(source))
                     if _text(source[i]["domain"]) == domain]

  def __len__(self) -> int:
    return len(self._indices)

  def __getitem__(self, index: int) -> Any:
    return self._source[self._indices[index]]

  def __repr__(self) -> str:  # Deterministic, as Grain checks it on restore.
    return f"DomainSubset({self._source!r}, {self._domain!r})"


def _text(value: Any) -> str:
  return value.decode() if isinstance(value, bytes) else str(value)


class TableFeeder:
  """Reads table windows from this host's Grain stream and puts them on device.

  If the first window holds the whole shard, the table never changes.
  Otherwise a new window is read every `input.refill_every_steps` steps.
  """

  def __init__(self, config: ml_collections.ConfigDict, data: Corpus,
               mesh: jax.sharding.Mesh):
    count, index = jax.process_count(), jax.process_index()
    self._shard_len = len(range(index, len(data.train_source), count))
    if self._shard_len == 0:
      raise ValueError(f"{data.name}: no training videos for host {index}")
    inp = config.input
    stream = input_pipeline.make_video_stream(
        data.train_source, inp, process_index=index, process_count=count)
    max_videos = min(inp.window_videos or self._shard_len, self._shard_len)
    self._reader = input_pipeline.WindowReader(
        stream, inp.table_segments, data.feature_dim, max_videos,
        jnp.dtype(inp.table_dtype))
    self._name = data.name
    self._refill_every = inp.refill_every_steps
    self._sharding = parallel.replicated(mesh)
    self._window_index = 0
    self._window: input_pipeline.Window | None = None
    self._static = False
    self._table = None

  def restore(self, input_state: dict[str, Any]) -> None:
    """Re-positions the stream at a checkpoint's window."""
    self._reader.restore(input_state["window_start"])
    self._window_index = int(input_state["window_index"])
    self._window = None

  def input_state(self) -> dict[str, Any]:
    """What a checkpoint keeps to re-read the current window."""
    return {"window_start": self._window.start_state,
            "window_index": self._window_index}

  def current_table(self) -> input_pipeline.SegmentTable:
    """The device table of the current window, reading it if needed."""
    if self._window is None:
      self._read()
    return self._table

  def should_refill(self, step: int) -> bool:
    return (not self._static and step > 0 and self._refill_every > 0
            and step % self._refill_every == 0)

  def refill(self) -> input_pipeline.SegmentTable:
    self._window_index += 1
    self._read()
    return self._table

  def _read(self) -> None:
    window = self._reader.read()
    table = window.table
    if int(table.num_short) == 0 or int(table.num_long) == 0:
      raise ValueError(
          f"{self._name}: window {self._window_index} has "
          f"{int(table.num_short)} short-video and {int(table.num_long)} "
          "long-video segments; pairs need both. Check the bucket thresholds "
          "or raise input.table_segments / input.window_videos.")
    self._static = self._window_index == 0 and window.num_videos_read == self._shard_len
    logging.info("Table window %d: %d videos, %d short and %d long segments%s",
                 self._window_index, len(window.video_ids), int(table.num_short),
                 int(table.num_long), " (whole corpus, static)" if self._static else "")
    self._window = window
    self._table = jax.device_put(table, self._sharding)
