"""Moments: the top-k highlights of one video from its per-segment scores.

Pure functions of arrays, no model and no I/O: `select_moments` is the offline
twin of `hl_jax.highlights.streaming` (which decides online, segment by segment), and
`hl_jax.predict` applies it to every video it scores.

  starts, ends = moments.segment_times(len(scores), segment_seconds=2.0)
  rule = moments.MomentRule(top_k=5)
  chosen = moments.select_moments(scores, starts, ends, rule)
  note = moments.shortfall_note(scores, starts, ends, rule, chosen)  # None: top_k came back

A moment is a highlight: it starts at a segment that scores at or above the
rule's high-score cut, so a video with few high segments gets fewer than
top_k moments (and a shorter reel) rather than its worst parts;
`shortfall_note` says why in words.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class MomentRule:
  """How `select_moments` turns scores into moments (see its docstring).

  Attributes:
    top_k: at most this many moments per video.
    min_moment_seconds: shortest moment (cut to the video's length).
    max_moment_seconds: longest moment; a single segment is always allowed.
    merge_quantile: the high-score cut: segments scoring at or above this
      quantile of the video's scores are "high"; only they start a moment,
      and they merge into a neighbouring one.
    min_gap_seconds: moments are at least this far apart in time (0: they
      may touch but never overlap).
  """

  top_k: int = 5
  min_moment_seconds: float = 0.0
  max_moment_seconds: float = 10.0
  merge_quantile: float = 0.75
  min_gap_seconds: float = 2.0

  def __post_init__(self):
    if self.top_k < 1:
      raise ValueError(f"top_k={self.top_k} must be >= 1")
    if not 0 <= self.min_moment_seconds <= self.max_moment_seconds:
      raise ValueError(
          f"need 0 <= min_moment_seconds ({self.min_moment_seconds}) <= "
          f"max_moment_seconds ({self.max_moment_seconds})"
      )
    if not 0 <= self.merge_quantile <= 1:
      raise ValueError(f"merge_quantile={self.merge_quantile} must be in [0, 1]")
    if self.min_gap_seconds < 0:
      raise ValueError(f"min_gap_seconds={self.min_gap_seconds} must be >= 0")


@dataclasses.dataclass(frozen=True)
class Moment:
  """Segments [start, end) of a video, start_s..end_s seconds, mean score."""

  start: int
  end: int
  start_s: float
  end_s: float
  score: float

  def to_json(self) -> dict[str, Any]:
    return {
        "start_s": round(self.start_s, 3),
        "end_s": round(self.end_s, 3),
        "score": self.score,
        "start_segment": self.start,
        "end_segment": self.end,
    }


def segment_times(
    num_segments: int,
    segment_seconds: float,
    stride_seconds: float | None = None,
    duration_seconds: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
  """Start and end times of a regular grid of segments.

  Returns:
    ([T] starts i * stride, [T] ends start + segment_seconds, cut at the
    duration when it is given), in seconds.
  """
  if segment_seconds <= 0:
    raise ValueError(f"segment_seconds={segment_seconds} must be > 0")
  stride = segment_seconds if stride_seconds is None else stride_seconds
  starts = np.arange(num_segments, dtype=np.float64) * stride
  ends = starts + segment_seconds
  if duration_seconds is not None:
    ends = np.maximum(np.minimum(ends, duration_seconds), starts)
  return starts, ends


def select_moments(
    scores: np.ndarray, starts: np.ndarray, ends: np.ndarray, rule: MomentRule
) -> list[Moment]:
  """The top-k moments of one video, greedily by score; the exact rule.

  A moment is a run of segments [a, b) lasting ends[b-1] - starts[a] seconds.
  "High" segments score >= q, the `rule.merge_quantile` quantile of `scores`
  (numpy's linear interpolation): the high-score cut. Only high segments
  seed moments: seeds are taken in order of decreasing score (ties: lower
  index first), skipping segments that are not free, until `rule.top_k`
  moments are chosen or no high segment is left. So a moment is a
  highlight: a segment below the cut never starts one, and a video with few
  high segments gets fewer than top_k moments (`shortfall_note` says why).
  A segment is free while its time span stays `rule.min_gap_seconds` or more
  away from every chosen moment's (so moments never overlap in time, not
  even where segments overlap, as YouTube Highlights clips do). From a free
  seed i, the run [i, i+1):
    1. merges high free neighbours: of the segments a-1 and b that are free,
       high, and keep the run within max_moment_seconds, the higher-scoring
       one joins (the left one on a tie); repeat until none qualifies;
    2. if it lasts less than m = min(min_moment_seconds, the whole video's
       span), extends the same way to any free neighbour, high or not, within
       max_moment_seconds, until it lasts m or cannot grow;
    3. is kept if it lasts >= m; otherwise (boxed in by earlier moments or
       by the length cap) the seed is skipped and its segments stay free.
  A single segment is a run even if longer than max_moment_seconds.
  Moments come in the order chosen; a moment's score is its mean segment
  score.

  Args:
    scores: [T] segment scores.
    starts: [T] segment start times, seconds, non-decreasing.
    ends: [T] segment end times, seconds.
    rule: top_k, min/max length, merge quantile and gap.

  Returns:
    At most `rule.top_k` moments (at least one for T > 0 unless the best
    segment cannot reach the minimum length).
  """
  scores = np.asarray(scores, np.float64)
  num = len(scores)
  if num == 0:
    return []
  if starts.shape != (num,) or ends.shape != (num,):
    raise ValueError(f"scores [{num}] but starts {starts.shape} and ends {ends.shape}")
  high = scores >= high_score_cut(scores, rule)
  min_len = _min_length(starts, ends, rule)
  free = np.ones(num, bool)
  moments = []
  for seed in np.lexsort((np.arange(num), -scores)):
    # Seeds come by decreasing score: past the last high one, none may seed.
    if len(moments) == rule.top_k or not high[seed]:
      break
    if not free[seed]:
      continue
    a, b = _grow(
        seed, seed + 1, scores, starts, ends, free & high, rule.max_moment_seconds, until=math.inf
    )
    a, b = _grow(a, b, scores, starts, ends, free, rule.max_moment_seconds, until=min_len)
    if ends[b - 1] - starts[a] < min_len - 1e-9:
      continue
    free &= _away_from(starts, ends, starts[a], ends[b - 1], rule.min_gap_seconds)
    moments.append(
        Moment(int(a), int(b), float(starts[a]), float(ends[b - 1]), float(scores[a:b].mean()))
    )
  return moments


def high_score_cut(scores: np.ndarray, rule: MomentRule) -> float:
  """The score at and above which a segment is high: the merge_quantile quantile.

  Args:
    scores: [T] segment scores, T > 0.
    rule: its merge_quantile.

  Returns:
    numpy's linearly interpolated `rule.merge_quantile` quantile of `scores`.
  """
  return float(np.quantile(np.asarray(scores, np.float64), rule.merge_quantile))


def shortfall_note(
    scores: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    rule: MomentRule,
    chosen: Sequence[Moment],
) -> str | None:
  """Why `select_moments` gave fewer than top_k moments, in one sentence.

  Every high segment was tried as a seed (the selection stops early only at
  top_k), so each one that is not in a moment was either not free (within
  min_gap_seconds of a moment) or free but unable to grow to the minimum
  length; freedom only shrinks, so the final moments tell which.

  Args:
    scores: [T] segment scores, as given to `select_moments`.
    starts: [T] segment start times, seconds.
    ends: [T] segment end times, seconds.
    rule: the rule `chosen` was selected with.
    chosen: what `select_moments(scores, starts, ends, rule)` returned.

  Returns:
    None when top_k moments came back, else e.g. "1 of top_k = 3 moments: a
    moment starts only at a high segment, one scoring at least -0.658 (the
    merge_quantile = 0.75 quantile of this video's 5 scores); of its 2 high
    segments, 2 are in the moments."
  """
  scores = np.asarray(scores, np.float64)
  num = len(scores)
  if len(chosen) >= rule.top_k:
    return None
  if num == 0:
    return f"0 of top_k = {rule.top_k} moments: the video has no segments."
  cut = high_score_cut(scores, rule)
  high = scores >= cut
  inside, free = np.zeros(num, bool), np.ones(num, bool)
  for m in chosen:
    inside[m.start : m.end] = True
    free &= _away_from(starts, ends, m.start_s, m.end_s, rule.min_gap_seconds)
  counts = {
      "in the moments": int((high & inside).sum()),
      f"within min_gap_seconds = {rule.min_gap_seconds:g} s of one": int(
          (high & ~inside & ~free).sum()
      ),
      # Free but skipped as a seed: boxed in below the minimum length.
      f"too boxed in to last min_moment_seconds = {_min_length(starts, ends, rule):g} s": int(
          (high & free).sum()
      ),
  }
  where = ", ".join(f"{n} {'is' if n == 1 else 'are'} {what}" for what, n in counts.items() if n)
  plural = "s" if high.sum() != 1 else ""
  return (
      f"{len(chosen)} of top_k = {rule.top_k} moments: a moment starts only at a high "
      f"segment, one scoring at least {cut:.3g} (the merge_quantile = {rule.merge_quantile:g} "
      f"quantile of this video's {num} scores); of its {int(high.sum())} high segment{plural}, "
      f"{where}."
  )


def _min_length(starts: np.ndarray, ends: np.ndarray, rule: MomentRule) -> float:
  """min_moment_seconds, cut to the whole video's span."""
  return min(rule.min_moment_seconds, float(ends.max() - starts[0]))


def _away_from(
    starts: np.ndarray, ends: np.ndarray, start_s: float, end_s: float, gap: float
) -> np.ndarray:
  """[T] bool: the segments at least `gap` seconds away from [start_s, end_s]."""
  gap -= 1e-9
  return (starts >= end_s + gap) | (ends <= start_s - gap)


def _grow(
    a: int,
    b: int,
    scores: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    allowed: np.ndarray,
    max_len: float,
    until: float,
) -> tuple[int, int]:
  """Extends [a, b) by the better allowed neighbour while it lasts < `until`."""
  num = len(scores)
  while ends[b - 1] - starts[a] < until - 1e-9:
    options = []
    if a > 0 and allowed[a - 1] and ends[b - 1] - starts[a - 1] <= max_len + 1e-9:
      options.append((-scores[a - 1], 0, a - 1, b))
    if b < num and allowed[b] and ends[b] - starts[a] <= max_len + 1e-9:
      options.append((-scores[b], 1, a, b + 1))
    if not options:
      break
    _, _, a, b = min(options)
  return a, b
