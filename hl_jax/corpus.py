"""The training corpus: its TFDS builder, and the table windows fed to the step.

`load` builds (once) and opens the configured `duration_corpus` dataset.
`TableFeeder` owns the Grain stream and decides when the resident table is
refilled; its `input_state()` is the input part of a checkpoint.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
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


def _builder(config: ml_collections.ConfigDict, dcb: Any) -> Any:
  """The prepared duration_corpus builder named by `corpus.config`.

  A registered config is built if needed. Any other name must be a custom
  `DurationCorpusConfig` built earlier into corpus.data_dir (with
  `dcb.get_builder(config_object, data_dir)`); it is opened from there, the
  newest version if there are several.
  """
  name = config.corpus.config
  if name in dcb.Builder.builder_configs:
    return dcb.get_builder(name, data_dir=config.corpus.data_dir or None,
                           manual_dir=config.corpus.manual_dir or None)
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from etils import epath  # pylint: disable=g-import-not-at-top
  root = (epath.Path(config.corpus.data_dir or tfds.core.constants.DATA_DIR)
          / "duration_corpus" / name)
  versions = [p for p in root.iterdir()
              if tfds.core.Version.is_valid(p.name)] if root.exists() else []
  if not versions:
    raise ValueError(
        f"corpus.config={name!r} is neither a registered duration_corpus config "
        f"({', '.join(dcb.Builder.builder_configs)}) nor built in {root}; build a "
        "custom DurationCorpusConfig there first with duration_corpus's get_builder")
  newest = max(versions, key=lambda p: tfds.core.Version(p.name))
  return tfds.builder_from_directory(newest)


def load(config: ml_collections.ConfigDict) -> Corpus:
  """Builds the configured duration_corpus if needed and opens its splits."""
  # Imported here so that hl_jax imports without the builders' dependencies.
  from tfds_builders.duration_corpus import duration_corpus_dataset_builder as dcb

  builder = _builder(config, dcb)
  feature_dim = int(builder.info.features["features"].shape[-1])
  name = f"duration_corpus/{config.corpus.config}"
  train_source = builder.as_data_source(split=config.corpus.train_split)
  eval_videos = []
  split = config.corpus.eval_split
  if split and split in builder.info.splits:
    eval_videos = evaluation.load_labelled_split(builder.as_data_source(split=split))
  if getattr(builder.builder_config, "segment_signal", ""):
    # Sides of one video split by a per-segment signal: keep them together so
    # that their pairs are drawn within the video.
    train_source = input_pipeline.GroupedSource(train_source)
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


def num_shards(config: ml_collections.ConfigDict) -> int:
  """S: input.num_shards, or one shard per host when it is 0."""
  shards = config.input.num_shards or jax.process_count()
  if shards % jax.process_count():
    raise ValueError(f"input.num_shards={shards} is not a multiple of the "
                     f"{jax.process_count()} hosts")
  return shards


class TableFeeder:
  """Reads table windows from this host's Grain streams and puts them on device.

  The corpus is split into S shards (source[s::S]); host h reads shards
  h * S / H ... (h + 1) * S / H - 1, one Grain stream and one table each.
  If the first windows hold whole shards, the tables never change. Otherwise
  new windows are read every `input.refill_every_steps` steps, on all hosts
  at the same steps.
  """

  def __init__(self, config: ml_collections.ConfigDict, data: Corpus,
               mesh: jax.sharding.Mesh):
    shards, hosts = num_shards(config), jax.process_count()
    per_host = shards // hosts
    self._shards = range(jax.process_index() * per_host,
                         (jax.process_index() + 1) * per_host)
    inp = config.input
    self._readers, self._shard_lens = [], []
    for shard in self._shards:
      shard_len = len(range(shard, len(data.train_source), shards))
      if shard_len == 0:
        raise ValueError(f"{data.name}: no training videos in input shard {shard} "
                         f"of {shards}")
      stream = input_pipeline.make_video_stream(
          data.train_source, inp, process_index=shard, process_count=shards)
      max_videos = min(inp.window_videos or shard_len, shard_len)
      self._readers.append(input_pipeline.WindowReader(
          stream, inp.table_segments, data.feature_dim, max_videos,
          jnp.dtype(inp.table_dtype)))
      self._shard_lens.append(shard_len)
    self._name = data.name
    self._num_shards = shards
    self._refill_every = inp.refill_every_steps
    self._sharding = parallel.per_shard(mesh)
    self._window_index = 0
    self._windows: list[input_pipeline.Window] | None = None
    self._static = False
    self._table = None
    # Reads the next windows on a host thread while the devices train on the
    # current ones; windows are read in order, so this changes no number.
    self._executor = concurrent.futures.ThreadPoolExecutor(1, "hl_jax_table")
    self._next_windows: concurrent.futures.Future | None = None

  def restore(self, input_state: dict[str, Any]) -> None:
    """Re-positions the streams at a checkpoint's windows."""
    if self._next_windows is not None:  # A read ahead from the old position.
      self._next_windows.result()
      self._next_windows = None
    for reader, state in zip(self._readers, input_state["window_starts"]):
      reader.restore(state)
    self._window_index = int(input_state["window_index"])
    self._windows = None

  def input_state(self) -> dict[str, Any]:
    """What a checkpoint keeps (per host) to re-read the current windows."""
    return {"window_starts": [w.start_state for w in self._windows],
            "window_index": self._window_index}

  def current_table(self) -> input_pipeline.SegmentTable:
    """The device table of the current windows, reading them if needed."""
    if self._windows is None:
      self._read()
    return self._table

  def should_refill(self, step: int) -> bool:
    return (not self._static and step > 0 and self._refill_every > 0
            and step % self._refill_every == 0)

  def refill(self) -> input_pipeline.SegmentTable:
    self._window_index += 1
    self._read()
    return self._table

  def videos_of_pairs(self, key: jax.Array, num_groups: int,
                      group_size: int) -> list[str] | None:
    """Ids of the videos in the pairs `sample_pairs(table, key, ...)` draws
    from the current windows; None on multi-host runs (shards are remote)."""
    if jax.process_count() > 1 or self._windows is None:
      return None
    local = input_pipeline.stack_tables([w.table for w in self._windows])
    rows = input_pipeline.sample_pairs(local, key, num_groups, group_size)
    ids = set()
    for shard_rows in rows:
      for shard, window in enumerate(self._windows):
        for owner in np.unique(window.table.video[np.asarray(shard_rows[shard])]):
          ids.add(window.video_ids[owner])
    return sorted(ids)

  def _put(self, windows: list[input_pipeline.Window]) -> input_pipeline.SegmentTable:
    """The device table of `windows`, written into the previous one in place.

    The [S, C, D] features stay on the devices for the whole run: a refill
    copies only the windows' filled rows (rounded up to a power of two) into
    them (`_write_rows`, the old buffer donated) and replaces the small index
    fields. Rows past the filled ones keep older features, which no index
    points to, so a resumed run (fresh zeros there) samples the same pairs.
    """
    capacity, dim = windows[0].table.features.shape
    rows = _row_bucket(_max_over_hosts(max(w.num_rows for w in windows)), capacity)
    shards = self._num_shards

    def global_array(local: np.ndarray) -> jax.Array:
      return jax.make_array_from_process_local_data(
          self._sharding, local, (shards,) + local.shape[1:])

    if self._table is None:
      dtype = windows[0].table.features.dtype
      features = jax.jit(lambda: jnp.zeros((shards, capacity, dim), dtype),
                         out_shardings=self._sharding)()
    else:
      features, self._table = self._table.features, None  # Donated below.
    local = input_pipeline.stack_tables(
        [w.table.replace(features=w.table.features[:rows]) for w in windows])
    features = _write_rows(features, global_array(local.features))
    return local.replace(features=features, **{
        field.name: global_array(getattr(local, field.name))
        for field in dataclasses.fields(local) if field.name != "features"})

  def _read_windows(self) -> list[input_pipeline.Window]:
    return [reader.read() for reader in self._readers]

  def _read(self) -> None:
    if self._next_windows is not None:
      windows, self._next_windows = self._next_windows.result(), None
    else:
      windows = self._read_windows()
    for shard, window in zip(self._shards, windows):
      table = window.table
      if int(table.num_short) == 0 or int(table.num_long) == 0:
        raise ValueError(
            f"{self._name}: window {self._window_index} of input shard {shard} has "
            f"{int(table.num_short)} short-video and {int(table.num_long)} "
            "long-video segments; pairs need both. Check the bucket thresholds "
            "or raise input.table_segments / input.window_videos.")
      logging.info("Shard %d window %d: %d videos, %d short and %d long segments",
                   shard, self._window_index, len(window.video_ids),
                   int(table.num_short), int(table.num_long))
    whole = self._window_index == 0 and all(
        w.num_videos_read == n for w, n in zip(windows, self._shard_lens))
    self._static = _all_hosts(whole)
    if self._static:
      logging.info("The tables hold the whole corpus; no refills.")
    self._windows = windows
    self._table = self._put(windows)
    for window in windows:  # The features live on the devices now.
      window.table = window.table.replace(features=None)
    if not self._static and self._refill_every > 0:
      self._next_windows = self._executor.submit(self._read_windows)


@functools.partial(jax.jit, donate_argnums=0)
def _write_rows(features: jax.Array, rows: jax.Array) -> jax.Array:
  """features[:, :R] = rows, in place ([S, C, D] donated, rows [S, R, D])."""
  return jax.lax.dynamic_update_slice(features, rows.astype(features.dtype), (0, 0, 0))


def _row_bucket(rows: int, capacity: int) -> int:
  """Rows copied on a refill: a power of two >= rows (few compiled shapes)."""
  return min(capacity, max(1024, 1 << max(rows - 1, 0).bit_length()))


def _max_over_hosts(value: int) -> int:
  if jax.process_count() == 1:
    return value
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return int(np.max(multihost_utils.process_allgather(np.array(value))))


def _all_hosts(value: bool) -> bool:
  """The AND of a flag over all hosts (the same refill schedule everywhere)."""
  if jax.process_count() == 1:
    return value
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return bool(np.all(multihost_utils.process_allgather(np.array(value))))
