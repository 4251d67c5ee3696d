"""Input: Grain streams videos into the resident segment tables on the devices.

Pairs are not built here. Each host streams whole videos (one TFDS example per
video, or a pair group's videos) through Grain (`make_video_stream`), keeps the
segments of short and long videos in a fixed-capacity table
(`segment_table.SegmentTable`, filled by `WindowReader`), and `TableFeeder`
puts the tables of all input shards on the devices once per window. The
compiled train step samples its pairs from them (`segment_table.sample_pairs`).

When the corpus does not fit in `input.table_segments` rows, the tables are
refilled from the stream every `input.refill_every_steps` steps. The Grain
iterator states at the start of the current windows are what a checkpoint
keeps: restoring them and reading one window reproduces the tables exactly.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
from typing import Any

from absl import logging
import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from hl_jax.core import files
from hl_jax.core import parallel
from hl_jax.data import corpora
from hl_jax.less_is_more import segment_table


def _subsample(features: np.ndarray, max_segments: int) -> np.ndarray:
  """At most `max_segments` rows, evenly spaced over the video."""
  if len(features) <= max_segments:
    return features
  rows = np.linspace(0, len(features) - 1, max_segments).round().astype(int)
  return features[rows]


def make_video_stream(
    data_source: Any,
    config: ml_collections.ConfigDict,
    *,
    process_index: int = 0,
    process_count: int = 1,
) -> grain.DatasetIterator:
  """A shuffled, endlessly repeated Grain stream of this host's videos.

  Args:
    data_source: a random-access source of duration_corpus examples
      (`builder.as_data_source(split)`).
    config: the `input` part of the config.
    process_index: this host's index; hosts read disjoint shards.
    process_count: the number of hosts.

  Returns:
    A checkpointable iterator of dicts with video_id, bucket and features.
  """
  max_segments = config.max_segments_per_video
  within_domain = config.get("pair_within", "") == "domain"

  def prepare_one(example: dict[str, Any]) -> dict[str, Any]:
    group = files.as_text(example.get("pair_group", ""))
    if within_domain and not group:
      # Pairs matched on a video-level statistic: a short segment meets long
      # segments of its own domain only (of the same window), so that f
      # cannot rank by which domain a video is from.
      group = "domain:" + files.as_text(example["domain"])
    return {
        "video_id": files.as_text(example["video_id"]),
        "bucket": int(example["bucket"]),
        "pair_group": group,
        "features": _subsample(np.asarray(example["features"]), max_segments),
    }

  def prepare(item: Any) -> list[dict[str, Any]]:
    # An item is one example, or the examples of one pair group (GroupedSource).
    return [prepare_one(e) for e in (item if isinstance(item, list) else [item])]

  ds = grain.MapDataset.source(data_source)[process_index::process_count]
  ds = ds.shuffle(seed=config.shuffle_seed).repeat().map(prepare)
  ds = ds.to_iter_dataset()
  if config.num_workers > 0:
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=config.num_workers))
  return iter(ds)


@dataclasses.dataclass
class Window:
  """One filled table on the host, with where it came from."""

  table: segment_table.SegmentTable  # numpy arrays
  video_ids: list[str]  # window-local video number -> video id
  start_state: dict[str, Any]  # Grain state that re-reads this window
  num_videos_read: int  # videos taken from the stream, rest included
  num_rows: int  # filled rows of table.features (a prefix)


class WindowReader:
  """Fills `SegmentTable`s from a video stream, one window at a time.

  A video that does not fit in the current window is kept for the next one,
  so windows never split a video and re-reading from `start_state` is exact.
  """

  def __init__(
      self,
      stream: grain.DatasetIterator,
      capacity: int,
      feature_dim: int,
      max_videos: int,
      dtype: np.dtype,
  ):
    self._stream = stream
    self._capacity = capacity
    self._feature_dim = feature_dim
    self._max_videos = max_videos
    self._dtype = dtype
    self._pending: tuple[dict[str, Any], dict[str, Any]] | None = None

  def _next(self) -> tuple[dict[str, Any], dict[str, Any]]:
    """The next (state before it, video), the pending one first."""
    if self._pending is not None:
      item, self._pending = self._pending, None
      return item
    state = self._stream.get_state()
    return state, next(self._stream)

  def restore(self, start_state: dict[str, Any]) -> None:
    """Positions the stream at the start of a saved window."""
    self._pending = None
    self._stream.set_state(start_state)

  def read(self) -> Window:
    """Reads items until the table is full or `max_videos` items were read.

    An item is a list of videos (one, or a pair group's); it is never split.
    """
    window_start, item = self._next()
    state = window_start
    features = np.zeros((self._capacity, self._feature_dim), self._dtype)
    owner = np.full((self._capacity,), -1, np.int32)
    buckets = np.full((self._capacity,), segment_table.REST, np.int32)
    groups = np.full((self._capacity,), -1, np.int32)
    group_ids: dict[str, int] = {}
    video_ids: list[str] = []
    filled = read = 0
    while True:
      videos = [v for v in item if v["bucket"] != segment_table.REST]
      for video in videos:
        rows = video["features"]
        if rows.ndim != 2 or rows.shape[1] != self._feature_dim:
          raise ValueError(
              f"video {video['video_id']!r} has features of shape {rows.shape}, "
              f"expected [num_segments, {self._feature_dim}]"
          )
      size = sum(len(v["features"]) for v in videos)
      if filled + size > self._capacity:
        if filled == 0:
          raise ValueError(
              f"video {videos[0]['video_id']!r} (with its pair group) has {size} "
              f"segments, more than input.table_segments={self._capacity}"
          )
        self._pending = (state, item)
        break
      for video in videos:
        rows = video["features"]
        span = slice(filled, filled + len(rows))
        features[span] = rows
        owner[span] = len(video_ids)
        buckets[span] = video["bucket"]
        if video["pair_group"]:
          groups[span] = group_ids.setdefault(video["pair_group"], len(group_ids))
        filled += len(rows)
        video_ids.append(video["video_id"])
      read += 1
      if read >= self._max_videos:
        break
      state, item = self._next()
    return Window(
        segment_table.make_table(features, owner, buckets, groups),
        video_ids,
        window_start,
        read,
        filled,
    )


def num_shards(config: ml_collections.ConfigDict) -> int:
  """S: input.num_shards, or one shard per host when it is 0."""
  shards = config.input.num_shards or jax.process_count()
  if shards % jax.process_count():
    raise ValueError(
        f"input.num_shards={shards} is not a multiple of the " f"{jax.process_count()} hosts"
    )
  return shards


class TableFeeder:
  """Reads table windows from this host's Grain streams and puts them on device.

  The corpus is split into S shards (source[s::S]); host h reads shards
  h * S / H ... (h + 1) * S / H - 1, one Grain stream and one table each.
  If the first windows hold whole shards, the tables never change. Otherwise
  new windows are read every `input.refill_every_steps` steps, on all hosts
  at the same steps.
  """

  def __init__(
      self, config: ml_collections.ConfigDict, data: corpora.Corpus, mesh: jax.sharding.Mesh
  ):
    shards, hosts = num_shards(config), jax.process_count()
    per_host = shards // hosts
    self._shards = range(jax.process_index() * per_host, (jax.process_index() + 1) * per_host)
    inp = config.input
    self._readers, self._shard_lens = [], []
    for shard in self._shards:
      shard_len = len(range(shard, len(data.train_source), shards))
      if shard_len == 0:
        raise ValueError(f"{data.name}: no training videos in input shard {shard} " f"of {shards}")
      stream = make_video_stream(data.train_source, inp, process_index=shard, process_count=shards)
      max_videos = min(inp.window_videos or shard_len, shard_len)
      self._readers.append(
          WindowReader(
              stream, inp.table_segments, data.feature_dim, max_videos, jnp.dtype(inp.table_dtype)
          )
      )
      self._shard_lens.append(shard_len)
    self._name = data.name
    self._num_shards = shards
    self._refill_every = inp.refill_every_steps
    self._sharding = parallel.per_shard(mesh)
    self._window_index = 0
    self._windows: list[Window] | None = None
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
    return {
        "window_starts": [w.start_state for w in self._windows],
        "window_index": self._window_index,
    }

  def current_table(self) -> segment_table.SegmentTable:
    """The device table of the current windows, reading them if needed."""
    if self._windows is None:
      self._read()
    return self._table

  def should_refill(self, step: int) -> bool:
    return (
        not self._static and step > 0 and self._refill_every > 0 and step % self._refill_every == 0
    )

  def refill(self) -> segment_table.SegmentTable:
    self._window_index += 1
    self._read()
    return self._table

  def videos_of_pairs(
      self, key: jax.Array, num_groups: int, group_size: int, bags: bool = False
  ) -> list[str] | None:
    """Ids of the videos in the pairs `sample_pairs(table, key, ...)` draws
    from the current windows; None on multi-host runs (shards are remote)."""
    if jax.process_count() > 1 or self._windows is None:
      return None
    local = segment_table.stack_tables([w.table for w in self._windows])
    rows = segment_table.sample_pairs(local, key, num_groups, group_size, bags)
    ids = set()
    for shard_rows in rows:
      for shard, window in enumerate(self._windows):
        for owner in np.unique(window.table.video[np.asarray(shard_rows[shard])]):
          ids.add(window.video_ids[owner])
    return sorted(ids)

  def _put(self, windows: list[Window]) -> segment_table.SegmentTable:
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
          self._sharding, local, (shards,) + local.shape[1:]
      )

    if self._table is None:
      dtype = windows[0].table.features.dtype
      features = jax.jit(
          lambda: jnp.zeros((shards, capacity, dim), dtype), out_shardings=self._sharding
      )()
    else:
      features, self._table = self._table.features, None  # Donated below.
    local = segment_table.stack_tables(
        [w.table.replace(features=w.table.features[:rows]) for w in windows]
    )
    features = _write_rows(features, global_array(local.features))
    return local.replace(
        features=features,
        **{
            field.name: global_array(getattr(local, field.name))
            for field in dataclasses.fields(local)
            if field.name != "features"
        },
    )

  def _read_windows(self) -> list[Window]:
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
            "or raise input.table_segments / input.window_videos."
        )
      logging.info(
          "Shard %d window %d: %d videos, %d short and %d long segments",
          shard,
          self._window_index,
          len(window.video_ids),
          int(table.num_short),
          int(table.num_long),
      )
    whole = self._window_index == 0 and all(
        w.num_videos_read == n for w, n in zip(windows, self._shard_lens)
    )
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
