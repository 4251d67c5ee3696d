"""Input: a Grain stream of videos fills a resident table of segments.

Pairs are not built here. The host streams whole videos (one TFDS example per
video) through Grain, keeps the segments of short and long videos in a
fixed-capacity `SegmentTable`, and puts that table on the devices once per
window. The compiled train step samples its (short, long) pairs from the table
with its own RNG (`sample_pairs`), so no per-pair Python ever runs.

When the corpus does not fit in `input.table_segments` rows, the table is
refilled from the stream every `input.refill_every_steps` steps. The Grain
iterator state at the start of the current window is what a checkpoint keeps:
restoring it and reading one window reproduces the table exactly.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator

from absl import logging
import flax.struct
import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

SHORT, LONG, REST = 0, 1, 2  # The duration_corpus ClassLabel order.


@flax.struct.dataclass
class SegmentTable:
  """Segments available for pair sampling; all arrays have a fixed capacity C.

  A table read from one stream has the shapes below. The train step takes a
  stack of S such tables, one per input shard (`stack_tables`), with a leading
  [S] axis on every field; shard s lives on the devices of the host reading it.

  Attributes:
    features: [C, D] segment features. Rows past the filled ones are never
      read (the index fields do not point there): zero in a fresh table, left
      from an earlier window on the devices after a refill.
    video: [C] int32 window-local video number of each row (-1 if empty).
    short_index: [C] int32 rows of short-video segments, valid up to num_short.
    long_index: [C] int32 rows of long-video segments, valid up to num_long.
    num_short: [] int32.
    num_long: [] int32.
    short_partner_start: [C] int32, for each short_index position, where the
      long rows of the same pair group start in long_index.
    short_partner_count: [C] int32, how many there are (0: no group, or a
      group without long rows in this window; the pair then takes any long row).
  """
  features: jnp.ndarray
  video: jnp.ndarray
  short_index: jnp.ndarray
  long_index: jnp.ndarray
  num_short: jnp.ndarray
  num_long: jnp.ndarray
  short_partner_start: jnp.ndarray
  short_partner_count: jnp.ndarray


def stack_tables(tables: list[SegmentTable]) -> SegmentTable:
  """Per-shard tables -> one table with a leading [S] shard axis.

  One table is stacked as a view, without copying its features.
  """
  if len(tables) == 1:
    return jax.tree.map(lambda x: np.asarray(x)[None], tables[0])
  return jax.tree.map(lambda *xs: np.stack(xs), *tables)


def sample_pairs(table: SegmentTable, key: jax.Array, num_groups: int,
                 group_size: int) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Samples (short, long) segment rows uniformly, inside the compiled step.

  The m groups are split evenly over the S shards: the groups of block s draw
  both segments of every pair from shard s, so a group never leaves the host
  that holds its shard. A short segment with a pair group (the preferred side
  of a video split by a per-segment signal) is paired with a long segment of
  the same group, so such pairs stay within one video; others take any long
  segment.

  Args:
    table: the resident stacked table, fields with a leading [S] axis.
    key: PRNG key for this step.
    num_groups: m (divisible by S).
    group_size: n.

  Returns:
    Two [S, m / S, n] int32 arrays of per-shard table rows: short-video and
    long-video segments.
  """
  num_shards = table.num_short.shape[0]
  shape = (num_shards, num_groups // num_shards, group_size)
  key_short, key_long = jax.random.split(key)
  i = jax.random.randint(key_short, shape, 0, table.num_short[:, None, None])
  j = jax.random.randint(key_long, shape, 0, table.num_long[:, None, None])
  take = jax.vmap(lambda index, picks: index[picks])
  start = take(table.short_partner_start, i)
  count = take(table.short_partner_count, i)
  u = jax.random.uniform(jax.random.fold_in(key_long, 1), shape)
  in_group = start + jnp.minimum((u * count).astype(jnp.int32),
                                 jnp.maximum(count - 1, 0))
  j = jnp.where(count > 0, in_group, j)
  return take(table.short_index, i), take(table.long_index, j)


def gather_features(table: SegmentTable, rows: jnp.ndarray) -> jnp.ndarray:
  """[S, m / S, n] per-shard rows -> [m, n, D] features."""
  features = jax.vmap(lambda f, r: f[r])(table.features, rows)
  return features.reshape((-1,) + features.shape[2:])


def _text(value: Any) -> str:
  return value.decode() if isinstance(value, bytes) else str(value)


class GroupedSource:
  """Examples of one `pair_group` as one item, so that they stay together.

  Shards, shuffles and windows then move whole groups: the two sides of a
  video split by a per-segment signal always share a window. Examples without
  a group are items of their own.
  """

  def __init__(self, source: Any):
    self._source = source
    groups: dict[str, list[int]] = {}
    self._items: list[list[int]] = []
    for index in range(len(source)):
      group = _text(source[index].get("pair_group", ""))
      if not group:
        self._items.append([index])
      elif group in groups:
        groups[group].append(index)
      else:
        groups[group] = [index]
        self._items.append(groups[group])

  def __len__(self) -> int:
    return len(self._items)

  def __getitem__(self, index: int) -> list[Any]:
    return [self._source[i] for i in self._items[index]]

  def __repr__(self) -> str:  # Deterministic, as Grain checks it on restore.
    return f"GroupedSource({self._source!r})"


def _subsample(features: np.ndarray, max_segments: int) -> np.ndarray:
  """At most `max_segments` rows, evenly spaced over the video."""
  if len(features) <= max_segments:
    return features
  rows = np.linspace(0, len(features) - 1, max_segments).round().astype(int)
  return features[rows]


def make_video_stream(data_source: Any, config: ml_collections.ConfigDict, *,
                      process_index: int = 0,
                      process_count: int = 1) -> grain.DatasetIterator:
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

  def prepare_one(example: dict[str, Any]) -> dict[str, Any]:
    return {
        "video_id": _text(example["video_id"]),
        "bucket": int(example["bucket"]),
        "pair_group": _text(example.get("pair_group", "")),
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
  table: SegmentTable          # numpy arrays
  video_ids: list[str]         # window-local video number -> video id
  start_state: dict[str, Any]  # Grain state that re-reads this window
  num_videos_read: int         # videos taken from the stream, rest included
  num_rows: int                # filled rows of table.features (a prefix)


class WindowReader:
  """Fills `SegmentTable`s from a video stream, one window at a time.

  A video that does not fit in the current window is kept for the next one,
  so windows never split a video and re-reading from `start_state` is exact.
  """

  def __init__(self, stream: grain.DatasetIterator, capacity: int,
               feature_dim: int, max_videos: int, dtype: np.dtype):
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
    buckets = np.full((self._capacity,), REST, np.int32)
    groups = np.full((self._capacity,), -1, np.int32)
    group_ids: dict[str, int] = {}
    video_ids: list[str] = []
    filled = read = 0
    while True:
      videos = [v for v in item if v["bucket"] != REST]
      for video in videos:
        rows = video["features"]
        if rows.ndim != 2 or rows.shape[1] != self._feature_dim:
          raise ValueError(
              f"video {video['video_id']!r} has features of shape {rows.shape}, "
              f"expected [num_segments, {self._feature_dim}]")
      size = sum(len(v["features"]) for v in videos)
      if filled + size > self._capacity:
        if filled == 0:
          raise ValueError(
              f"video {videos[0]['video_id']!r} (with its pair group) has {size} "
              f"segments, more than input.table_segments={self._capacity}")
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
    return Window(_make_table(features, owner, buckets, groups), video_ids,
                  window_start, read, filled)


def _make_table(features: np.ndarray, owner: np.ndarray, buckets: np.ndarray,
                groups: np.ndarray | None = None) -> SegmentTable:
  capacity = len(owner)
  groups = np.full((capacity,), -1, np.int32) if groups is None else groups
  short = np.flatnonzero((buckets == SHORT) & (owner >= 0)).astype(np.int32)
  long_ = np.flatnonzero((buckets == LONG) & (owner >= 0)).astype(np.int32)
  long_ = long_[np.argsort(groups[long_], kind="stable")]  # Groups contiguous.
  long_groups = groups[long_]
  short_groups = groups[short]
  start = np.searchsorted(long_groups, short_groups, side="left")
  count = np.searchsorted(long_groups, short_groups, side="right") - start
  count[short_groups < 0] = 0

  def pad(rows: np.ndarray) -> np.ndarray:
    return np.pad(rows.astype(np.int32), (0, capacity - len(rows)))

  return SegmentTable(features=features, video=owner, short_index=pad(short),
                      long_index=pad(long_), num_short=np.int32(len(short)),
                      num_long=np.int32(len(long_)),
                      short_partner_start=pad(start), short_partner_count=pad(count))
