"""The resident segment table, and the pairs the train step samples from it.

A `SegmentTable` holds the segments of short and long videos of one input
window in fixed-capacity arrays. It lives on the devices; the compiled train
step draws its (short, long) pairs from it with its own RNG (`sample_pairs`)
and gathers their features (`gather_features`), so no per-pair Python runs.
`hl_jax.less_is_more.input_pipeline` fills the tables from the video stream.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
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
    short_video_start: [C] int32, for each short_index position, where the
      short rows of the same video start in short_index (bag groups).
    short_video_count: [C] int32, how many there are.
  """

  features: jnp.ndarray
  video: jnp.ndarray
  short_index: jnp.ndarray
  long_index: jnp.ndarray
  num_short: jnp.ndarray
  num_long: jnp.ndarray
  short_partner_start: jnp.ndarray
  short_partner_count: jnp.ndarray
  short_video_start: jnp.ndarray
  short_video_count: jnp.ndarray


def stack_tables(tables: list[SegmentTable]) -> SegmentTable:
  """Per-shard tables -> one table with a leading [S] shard axis.

  One table is stacked as a view, without copying its features.
  """
  if len(tables) == 1:
    return jax.tree.map(lambda x: np.asarray(x)[None], tables[0])
  return jax.tree.map(lambda *xs: np.stack(xs), *tables)


def sample_pairs(
    table: SegmentTable, key: jax.Array, num_groups: int, group_size: int, bags: bool = False
) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Samples (short, long) segment rows uniformly, inside the compiled step.

  The m groups are split evenly over the S shards: the groups of block s draw
  both segments of every pair from shard s, so a group never leaves the host
  that holds its shard. A short segment with a pair group (the preferred side
  of a video split by a per-segment signal) is paired with a long segment of
  the same group, so such pairs stay within one video; others take any long
  segment.

  With `bags` (train.pair_groups="video"), the n short segments of a group
  are drawn from ONE preferred video (a multiple-instance bag: the group's
  softmax weights then choose which of its segments to trust, as MINI-Net's
  max over a bag does); each still gets its own long segment as above.

  Args:
    table: the resident stacked table, fields with a leading [S] axis.
    key: PRNG key for this step.
    num_groups: m (divisible by S).
    group_size: n.
    bags: draw each group's short segments from one video.

  Returns:
    Two [S, m / S, n] int32 arrays of per-shard table rows: short-video and
    long-video segments.
  """
  num_shards = table.num_short.shape[0]
  shape = (num_shards, num_groups // num_shards, group_size)
  key_short, key_long = jax.random.split(key)
  take = jax.vmap(lambda index, picks: index[picks])
  if bags:
    first = jax.random.randint(key_short, shape[:2] + (1,), 0, table.num_short[:, None, None])
    bag_start = take(table.short_video_start, first)
    bag_count = take(table.short_video_count, first)
    v = jax.random.uniform(jax.random.fold_in(key_short, 1), shape)
    i = bag_start + jnp.minimum((v * bag_count).astype(jnp.int32), jnp.maximum(bag_count - 1, 0))
  else:
    i = jax.random.randint(key_short, shape, 0, table.num_short[:, None, None])
  j = jax.random.randint(key_long, shape, 0, table.num_long[:, None, None])
  start = take(table.short_partner_start, i)
  count = take(table.short_partner_count, i)
  u = jax.random.uniform(jax.random.fold_in(key_long, 1), shape)
  in_group = start + jnp.minimum((u * count).astype(jnp.int32), jnp.maximum(count - 1, 0))
  j = jnp.where(count > 0, in_group, j)
  return take(table.short_index, i), take(table.long_index, j)


def gather_features(table: SegmentTable, rows: jnp.ndarray) -> jnp.ndarray:
  """[S, m / S, n] per-shard rows -> [m, n, D] features."""
  features = jax.vmap(lambda f, r: f[r])(table.features, rows)
  return features.reshape((-1,) + features.shape[2:])


def make_table(
    features: np.ndarray, owner: np.ndarray, buckets: np.ndarray, groups: np.ndarray | None = None
) -> SegmentTable:
  """The table of C filled-or-empty rows.

  Args:
    features: [C, D] segment features.
    owner: [C] window-local video number of each row, -1 for empty rows; a
      video's rows are contiguous and numbered in row order.
    buckets: [C] SHORT, LONG or REST per row (REST rows are never paired).
    groups: [C] pair group number per row, -1 for none.
  """
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
  short_owner = owner[short]  # Non-decreasing: a video fills one span of rows.
  bag_start = np.searchsorted(short_owner, short_owner, side="left")
  bag_count = np.searchsorted(short_owner, short_owner, side="right") - bag_start

  def pad(rows: np.ndarray) -> np.ndarray:
    return np.pad(rows.astype(np.int32), (0, capacity - len(rows)))

  return SegmentTable(
      features=features,
      video=owner,
      short_index=pad(short),
      long_index=pad(long_),
      num_short=np.int32(len(short)),
      num_long=np.int32(len(long_)),
      short_partner_start=pad(start),
      short_partner_count=pad(count),
      short_video_start=pad(bag_start),
      short_video_count=pad(bag_count),
  )
