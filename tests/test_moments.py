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
        # seed 2 is taken; seed 7 has no high neighbour; segment 1 (score 1) is
        # below the cut and never seeds, so 2 of top_k = 3 come back.
        (
            [0, 1, 5, 6, 1, 0, 0, 4, 0, 0],
            dict(top_k=3, min_gap_seconds=0),
            [(2, 4), (7, 8)],
        ),
        # The same with a 2 s gap.
        ([0, 1, 5, 6, 1, 0, 0, 4, 0, 0], dict(top_k=3), [(2, 4), (7, 8)]),
        # All high (q = 0), at most 3 s: the tie between 3 and 5 goes left, then 5 joins.
        (
            [1, 2, 3, 4, 5, 4, 3, 2, 1, 0],
            dict(top_k=1, merge_quantile=0.0, max_moment_seconds=3),
            [(3, 6)],
        ),
        # Too short: padded to 3 s by the better neighbour, the left one on ties.
        ([0, 0, 9, 0, 0, 0], dict(top_k=1, merge_quantile=0.9, min_moment_seconds=3), [(0, 3)]),
        # All high (q = 0), 2 s exactly: seed 2 takes its left neighbour (a tie);
        # seed 0 is boxed in by (1, 3) at 1 s and skipped; then seed 3 joins 4.
        (
            [5, 0, 9, 0, 0],
            dict(
                top_k=2,
                merge_quantile=0.0,
                min_moment_seconds=2,
                max_moment_seconds=2,
                min_gap_seconds=0,
            ),
            [(1, 3), (3, 5)],
        ),
        # Only the best segment is high (q = 9): padded to 2 s by its left
        # neighbour; segment 0 (score 5, below the cut) never seeds.
        (
            [5, 0, 9, 0, 0],
            dict(top_k=2, merge_quantile=1.0, min_moment_seconds=2, min_gap_seconds=0),
            [(1, 3)],
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


# The scores predict gave the five 2-s segments of a 10-s video (bikes.mp4, the
# README's example) with a model trained on the benchmark features.
BIKES = [-2.68, -1.54, -0.66, -0.50, -1.24]


def test_a_low_segment_never_seeds_a_moment():
  # q(0.75) of the sorted [-2.68, -1.54, -1.24, -0.66, -0.50] is -0.66 (position 3):
  # segments 2 and 3 are high. Seed 3 merges 2 into 4-8 s (4 s, the cap); 0-2 s
  # and 8-10 s lie 2 s or more away, but score below the cut: no second moment.
  starts, ends = moments.segment_times(5, 2.0)
  rule = moments.MomentRule(top_k=3, max_moment_seconds=4)
  chosen = moments.select_moments(np.array(BIKES), starts, ends, rule)
  assert [(m.start, m.end, m.start_s, m.end_s) for m in chosen] == [(2, 4, 4.0, 8.0)]
  assert chosen[0].score == pytest.approx(-0.58)
  assert moments.shortfall_note(np.array(BIKES), starts, ends, rule, chosen) == (
      "1 of top_k = 3 moments: a moment starts only at a high segment, one scoring at "
      "least -0.66 (the merge_quantile = 0.75 quantile of this video's 5 scores); of its "
      "2 high segments, 2 are in the moments."
  )


@pytest.mark.parametrize(
    "scores, rule, expected, note",
    [
        # q(0.75) of [0, 0, 0, 0, 5, 6] is 3.75: 5 and 6 are high. Seed 3 stays
        # alone (3-4 s); segment 1 (1-2 s) is 1 s from it, within the 2 s gap.
        (
            [0, 5, 0, 6, 0, 0],
            dict(top_k=3),
            [(3, 4)],
            "1 of top_k = 3 moments: a moment starts only at a high segment, one scoring "
            "at least 3.75 (the merge_quantile = 0.75 quantile of this video's 6 scores); "
            "of its 2 high segments, 1 is in the moments, 1 is within min_gap_seconds = "
            "2 s of one.",
        ),
        # q(0.75) of [-1, -1, -1, 5, 9] is 5: 5 and 9 are high. Seed 2 is padded
        # left to 1-3 s; seed 0 is free (0-1 s, no gap asked) but cannot reach 2 s.
        (
            [5, -1, 9, -1, -1],
            dict(top_k=2, min_moment_seconds=2, max_moment_seconds=2, min_gap_seconds=0),
            [(1, 3)],
            "1 of top_k = 2 moments: a moment starts only at a high segment, one scoring "
            "at least 5 (the merge_quantile = 0.75 quantile of this video's 5 scores); "
            "of its 2 high segments, 1 is in the moments, 1 is too boxed in to last "
            "min_moment_seconds = 2 s.",
        ),
        # Two segments for top_k = 5: q(0.75) = 1.75, only segment 1 is high.
        (
            [1, 2],
            dict(top_k=5, min_gap_seconds=0),
            [(1, 2)],
            "1 of top_k = 5 moments: a moment starts only at a high segment, one scoring "
            "at least 1.75 (the merge_quantile = 0.75 quantile of this video's 2 scores); "
            "of its 1 high segment, 1 is in the moments.",
        ),
        # top_k came back: no note.
        ([0, 1, 5, 6, 1, 0, 0, 4, 0, 0], dict(top_k=2), [(2, 4), (7, 8)], None),
        ([], dict(top_k=1), [], "0 of top_k = 1 moments: the video has no segments."),
    ],
)
def test_fewer_moments_and_the_reason(scores, rule, expected, note):
  rule = moments.MomentRule(**rule)
  starts, ends = _grid(len(scores))
  scores = np.asarray(scores, float)
  chosen = moments.select_moments(scores, starts, ends, rule)
  assert [(m.start, m.end) for m in chosen] == expected
  assert moments.shortfall_note(scores, starts, ends, rule, chosen) == note


def test_select_moments_overlapping_clips_never_overlap_in_time():
  # YouTube Highlights-like clips: 2 s windows at a 1 s stride. q(0.6) of
  # [0, 0, 0, 4, 5] = 1.6: 5 and 4 are high.
  starts, ends = np.arange(5.0), np.arange(5.0) + 2
  rule = moments.MomentRule(top_k=3, merge_quantile=0.6, min_gap_seconds=0)
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
