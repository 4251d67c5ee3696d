"""Benchmark metrics: hand-computed cases and literal transcriptions of UMT/lighthouse."""

import numpy as np
import pytest

from hl_jax.eval import metrics


def reference_ap(ranked_labels):
  """The lighthouse/UMT loop, transcribed: AP of labels already in rank order."""
  num_gt = sum(ranked_labels)
  if num_gt == 0:
    return 0
  hits = ap = rec = 0
  prc = 1
  for j, gt in enumerate(ranked_labels):
    hits += gt
    _rec = hits / num_gt
    _prc = hits / (j + 1)
    ap += (_rec - rec) * (prc + _prc) / 2
    rec, prc = _rec, _prc
  return ap


def reference_tvsum(score, anno, k=5):
  """UMT's TVSum evaluate for one video, transcribed (torch.median -> lower middle)."""
  inds = np.argsort(-np.asarray(score, np.float64), kind="stable")  # ties by clip index
  anno = np.asarray(anno, np.float64)
  video_ap = []
  for i in range(anno.shape[1]):
    label = anno[:, i]
    median = sorted(label)[(len(label) - 1) // 2]
    label = np.where(label > median, 1.0, 0.0)
    video_ap.append(reference_ap(label[inds].tolist()[:k]))
  return sum(video_ap) / len(video_ap)


def test_all_positive_is_one_and_no_positive_is_zero():
  scores = np.array([0.3, 0.9, 0.1, 0.5])
  assert metrics.trapezoid_ap(scores, np.ones(4)) == 1.0
  assert metrics.trapezoid_ap(scores, np.zeros(4)) == 0.0
  assert metrics.youtube_highlights_ap(scores, [1, 1, 1, 1]) == 1.0
  assert metrics.youtube_highlights_ap(scores, [-1, 0, 0, -1]) == 0.0  # 0 is not positive


def test_hand_worked_ranked_list():
  # Ranked labels 1, 0, 1, 0, 0; num_pos = 2; prc starts at 1.
  #   rank 1: r = 1/2, p = 1    ap += (1/2 - 0) * (1 + 1) / 2     = 1/2
  #   rank 2: r = 1/2, p = 1/2  ap += 0
  #   rank 3: r = 1,   p = 2/3  ap += (1 - 1/2) * (1/2 + 2/3) / 2 = 7/24
  #   ranks 4, 5: r stays 1     ap += 0
  # AP = 19/24 (step-wise AP would say (1 + 2/3) / 2 = 5/6).
  scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
  labels = np.array([1, 0, 1, 0, 0])
  assert metrics.trapezoid_ap(scores, labels) == pytest.approx(19 / 24, abs=1e-12)
  # Same list shuffled: only the ranking matters.
  perm = np.array([3, 0, 4, 2, 1])
  assert metrics.trapezoid_ap(scores[perm], labels[perm]) == pytest.approx(19 / 24, abs=1e-12)


def test_ties_are_broken_by_clip_index():
  # Equal scores: clip 0 ranks first. Ranked [0, 1]: rank 1 r=0 p=0 (prc -> 0);
  # rank 2: r=1, p=1/2, ap += 1 * (0 + 1/2) / 2 = 1/4.
  assert metrics.trapezoid_ap([0.5, 0.5], [0, 1]) == pytest.approx(0.25)
  assert metrics.trapezoid_ap([0.5, 0.5], [1, 0]) == 1.0
  assert metrics.youtube_highlights_hit1([0.2, 0.7, 0.7], [0, -1, 1]) == 0.0
  assert metrics.youtube_highlights_hit1([0.2, 0.7, 0.7], [0, 1, -1]) == 1.0


def test_top5_one_hit_at_rank_1_is_one():
  scores = -np.arange(8.0)  # rank = clip index
  labels = np.array([1, 0, 0, 0, 0, 1, 1, 1])
  assert metrics.trapezoid_ap(scores, labels, top_k=5) == 1.0
  assert metrics.trapezoid_ap(scores, labels) < 1.0
  # No positive within the top 5 -> 0, whatever follows.
  assert metrics.trapezoid_ap(scores, [0, 0, 0, 0, 0, 1, 1, 1], top_k=5) == 0.0


def test_lower_median():
  assert metrics.lower_median([3, 1, 2]) == 2
  assert metrics.lower_median([4, 1, 3, 2]) == 2  # torch.median: lower middle value
  np.testing.assert_array_equal(metrics.lower_median([[1, 8], [2, 6], [3, 7], [4, 5]]), [2, 6])


def test_even_median_choice_changes_tvsum_ap():
  # Every annotator rates the 4 shots 1, 2, 3, 4. Lower median 2 -> positives are
  # shots 2 and 3; the upper middle value (3) would leave only shot 3.
  anno = np.tile(np.array([[1.0], [2.0], [3.0], [4.0]]), (1, 20))
  np.testing.assert_array_equal(metrics.tvsum_annotator_labels(anno)[:, 0], [0, 0, 1, 1])
  # Shot 2 on top, then shots 0, 1, 3 by index: ranked labels 1, 0, 0, 1, num_pos 2.
  #   rank 1: r=1/2, p=1 -> +1/2; ranks 2, 3: +0 (prc falls to 1/3);
  #   rank 4: r=1, p=1/2 -> +(1/2) * (1/3 + 1/2) / 2 = 5/24.   AP = 17/24.
  # With the upper middle value: ranked 0, 0, 0, 1 -> 1 * (0 + 1/4) / 2 = 1/8.
  scores = np.array([0.0, 0.0, 1.0, 0.0])
  assert metrics.tvsum_top5_ap(scores, anno) == pytest.approx(17 / 24)


def test_lower_median_labels_equal_numpy_median_labels():
  # Under strict ">" the lower middle value and np.median label identically.
  rng = np.random.default_rng(0)
  for _ in range(50):
    anno = rng.integers(1, 6, size=(rng.integers(1, 12), 20)).astype(float)
    np.testing.assert_array_equal(
        metrics.tvsum_annotator_labels(anno), anno > np.median(anno, axis=0)
    )


def test_trapezoid_ap_matches_lighthouse_loop():
  rng = np.random.default_rng(1)
  for trial in range(300):
    n = int(rng.integers(1, 40))
    # Integer scores give ties; the loop gets the documented order (stable by index).
    scores = rng.integers(0, 6, n) if trial % 2 else rng.normal(size=n)
    labels = rng.random(n) < rng.random()
    ranked = labels[np.argsort(-scores, kind="stable")].astype(float).tolist()
    assert metrics.trapezoid_ap(scores, labels) == pytest.approx(reference_ap(ranked), abs=1e-12)
    assert metrics.trapezoid_ap(scores, labels, top_k=5) == pytest.approx(
        reference_ap(ranked[:5]), abs=1e-12
    )


def test_tvsum_top5_ap_matches_umt_loop():
  rng = np.random.default_rng(2)
  for trial in range(60):
    n = int(rng.integers(1, 30))
    anno = rng.integers(1, 6, size=(n, 20)).astype(float)
    scores = rng.integers(0, 4, n) if trial % 2 else rng.normal(size=n)
    assert metrics.tvsum_top5_ap(scores, anno) == pytest.approx(
        reference_tvsum(scores, anno), abs=1e-12
    )


def test_tvsum_hit1():
  anno = np.array([[1, 2], [5, 4], [4, 5], [1, 1]], float)  # means 1.5, 4.5, 4.5, 1
  assert metrics.tvsum_hit1([0, 1, 0, 0], anno) == 1.0
  assert metrics.tvsum_hit1([0, 0, 1, 0], anno) == 1.0  # tied for the best mean
  assert metrics.tvsum_hit1([1, 0, 0, 0], anno) == 0.0
  assert metrics.tvsum_hit1([0, 0, 0, 0], anno) == 0.0  # all tied: shot 0 ranks first


def test_shape_errors():
  with pytest.raises(ValueError, match="must be"):
    metrics.tvsum_top5_ap(np.zeros(3), np.ones((4, 20)))
  with pytest.raises(ValueError, match="must be"):
    metrics.youtube_highlights_ap(np.zeros(3), np.ones(4))
