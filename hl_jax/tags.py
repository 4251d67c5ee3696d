"""Video-level tags as a weak signal: the re-bucketing view of a training corpus.

A video's tags are its `domain` field, '|'-separated (duration_corpus stores a
manifest's `domain` and `tags` columns there). `TagPairs` wraps any corpus
source (`hl_jax.datasets.load_corpus` applies it for `corpus.tag`).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def as_text(value: Any) -> str:
  """A string feature of a corpus example (bytes from ArrayRecord) as str."""
  return value.decode() if isinstance(value, bytes) else str(value)


def examples_of(item: Any) -> list[Any]:
  """The examples of a corpus item: one example, or a pair group's list."""
  return item if isinstance(item, list) else [item]


def tags_of(domain: str | bytes) -> list[str]:
  """A video's tags: its `domain` field, '|'-separated ("dog|pets": two tags)."""
  return [t.strip() for t in as_text(domain).split("|") if t.strip()]


class TagPairs:
  """Video-level tags as the weak signal (MINI-Net's bags), from any corpus.

  The corpus's buckets are replaced: with pairs="tag", every video tagged
  `tag` (`tags_of` its domain) is 'short' (preferred) and every other video
  'long', so that f learns what sets a segment of a `tag` video apart from
  segments of other kinds of video (h, or the collapse-proof weights, choose
  which of these noisy pairs to trust: most segments of a tagged video are
  not highlights). pairs="tag_duration" keeps only the tagged videos that the
  corpus buckets 'short' and the untagged ones it buckets 'long' (MINI-Net's
  short in-domain vs long out-of-domain); the others are dropped.
  """

  def __init__(self, source: Any, tag: str, pairs: str, corpus_name: str):
    if pairs not in ("tag", "tag_duration"):
      raise ValueError(f"corpus.tag_pairs={pairs!r}: 'tag' or 'tag_duration'")
    self._source, self._tag, self._pairs = source, tag, pairs
    self._indices, counts = [], [0, 0]
    for index in range(len(source)):
      buckets = [e["bucket"] for e in examples_of(self._relabelled(source[index]))]
      if any(b != _REST for b in buckets):
        self._indices.append(index)
        counts[buckets[0]] += 1
    if min(counts) == 0:
      raise ValueError(f"{corpus_name}: corpus.tag={tag!r} (tag_pairs={pairs!r}) leaves "
                       f"{counts[0]} tagged and {counts[1]} untagged training videos; "
                       "both sides need one")

  def __getitem__(self, index: int) -> Any:
    return self._relabelled(self._source[self._indices[index]])

  def __repr__(self) -> str:  # Deterministic, as Grain checks it on restore.
    return f"TagPairs({self._source!r}, {self._tag!r}, {self._pairs!r})"

  def __len__(self) -> int:
    return len(self._indices)

  def _relabelled(self, item: Any) -> Any:
    if isinstance(item, list):
      return [self._relabelled(e) for e in item]
    tagged, bucket = self._tag in tags_of(item["domain"]), int(item["bucket"])
    if self._pairs == "tag":
      bucket = _SHORT if tagged else _LONG
    elif (tagged and bucket != _SHORT) or (not tagged and bucket != _LONG):
      bucket = _REST
    return {**item, "bucket": np.int64(bucket)}


_SHORT, _LONG, _REST = 0, 1, 2  # duration_corpus's bucket ClassLabel.
