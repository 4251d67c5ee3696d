"""hl_jax.highlights.moments: moment selection on hand-made scores."""

import numpy as np
import pytest

from hl_jax.highlights import moments


def _grid(num):
  return moments.segment_times(num, 1.0)


def _spans(scores, rule, starts=None, ends=None):
  if starts is None:
    starts, ends = _grid(len(scores))
  return [
      (m.start, m.end)
      for m in moments.select_moments(
          np.asarray(scores, float), np.asarray(starts, float), np.asarray(ends, float), rule
      )
  ]


@pytest.mark.parametrize(
    "scores, rule, expected",
    [
        # q(0.75) = 3.25: 5, 6 and 4 are high. Seed 3 merges its high neighbour 2;
        # seed 2 is taken; seed 7 has no high neighbour; then seed 1 (ties: lower index).
        (
            [0, 1, 5, 6, 1, 0, 0, 4, 0, 0],
            dict(top_k=3, min_gap_seconds=0),
            [(2, 4), (7, 8), (1, 2)],
        ),
        # The same with a 2 s gap: everything within 2 s of (2, 4) and (7, 8) is taken.
        ([0, 1, 5, 6, 1, 0, 0, 4, 0, 0], dict(top_k=3), [(2, 4), (7, 8)]),
        # All high (q = 0), at most 3 s: the tie between 3 and 5 goes left, then 5 joins.
        (
            [1, 2, 3, 4, 5, 4, 3, 2, 1, 0],
            dict(top_k=1, merge_quantile=0.0, max_moment_seconds=3),
            [(3, 6)],
        ),
        # Too short: padded to 3 s by the better neighbour, the left one on ties.
        ([0, 0, 9, 0, 0, 0], dict(top_k=1, merge_quantile=0.9, min_moment_seconds=3), [(0, 3)]),
        # Seed 0 is boxed in by (1, 3) and cannot reach 2 s: skipped; then seed 3.
        (
            [5, 0, 9, 0, 0],
            dict(top_k=2, merge_quantile=1.0, min_moment_seconds=2, min_gap_seconds=0),
            [(1, 3), (3, 5)],
        ),
        # A video shorter than the minimum is one moment.
        ([1, 2], dict(min_moment_seconds=10), [(0, 2)]),
        # Equal scores: seeds in index order; the run grows right over the high segments.
        ([1, 1, 1], dict(top_k=1, merge_quantile=1.0), [(0, 3)]),
        ([], dict(), []),
    ],
)
def test_select_moments_hand_made(scores, rule, expected):
  assert _spans(scores, moments.MomentRule(**rule)) == expected


def test_select_moments_overlapping_clips_never_overlap_in_time():
  # YouTube Highlights-like clips: 2 s windows at a 1 s stride. q(0.8) = 4.2: only 5 is high.
  starts, ends = np.arange(5.0), np.arange(5.0) + 2
  rule = moments.MomentRule(top_k=3, merge_quantile=0.8, min_gap_seconds=0)
  chosen = moments.select_moments(np.array([0, 5, 0, 0, 4.0]), starts, ends, rule)
  # (1, 2) spans 1-3 s, so clips 0 (0-2 s) and 2 (2-4 s) overlap it and are not free;
  # (4, 5) spans 4-6 s and takes clip 3 (3-5 s): no third moment.
  assert [(m.start, m.end, m.start_s, m.end_s, m.score) for m in chosen] == [
      (1, 2, 1.0, 3.0, 5.0),
      (4, 5, 4.0, 6.0, 4.0),
  ]


def test_moment_score_is_the_mean_and_json_has_seconds():
  starts, ends = moments.segment_times(4, 2.0, duration_seconds=7.0)
  np.testing.assert_array_equal(ends, [2, 4, 6, 7])
  (moment,) = moments.select_moments(
      np.array([0, 0, 3, 1.0]), starts, ends, moments.MomentRule(top_k=1, merge_quantile=0.5)
  )
  assert moment.to_json() == {
      "start_s": 4.0,
      "end_s": 7.0,
      "score": 2.0,
      "start_segment": 2,
      "end_segment": 4,
  }


@pytest.mark.parametrize(
    "rule, message",
    [
        (dict(top_k=0), "top_k=0"),
        (dict(min_moment_seconds=5, max_moment_seconds=4), "min_moment_seconds"),
        (dict(merge_quantile=1.5), "merge_quantile=1.5"),
        (dict(min_gap_seconds=-1), "min_gap_seconds=-1"),
    ],
)
def test_moment_rule_errors(rule, message):
  with pytest.raises(ValueError, match=message):
    moments.MomentRule(**rule)
