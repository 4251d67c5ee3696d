"""Recurrence scores: hand-computed 2-d cases, a brute-force loop, and the errors."""

import numpy as np
import pytest

from hl_jax.signals import recurrence

R = np.sqrt(0.5)  # cos 45 degrees
# Three videos of 2-d segments (one group unless a test says otherwise).
A = np.array([[1.0, 0.0], [0.0, 1.0]])
B = np.array([[1.0, 0.0], [1.0, 1.0]])
C = np.array([[0.0, 3.0]])


def scores(*args, **kwargs):
  kwargs.setdefault("normalize", "l2")
  return [s.tolist() for s in recurrence.recurrence_scores(*args, **kwargs)]


def brute_force(
    features,
    groups,
    reference=None,
    reference_groups=None,
    *,
    method,
    k,
    normalize,
    exclude_same_video=True,
):
  """Segment by segment, the module docstring's definitions, with Python loops."""
  transductive = reference is None
  if transductive:
    reference, reference_groups = features, groups
  if normalize == "centered_l2":
    mean = np.concatenate(reference).mean(axis=0)
    features = [f - mean for f in features]
    reference = [r - mean for r in reference]
  unit = lambda x: x / max(np.linalg.norm(x), 1e-12)
  out = []
  for i, (video, group) in enumerate(zip(features, groups)):
    video_scores = []
    for x in video:
      per_video = [
          [float(unit(x) @ unit(y)) for y in ref]
          for j, (ref, ref_group) in enumerate(zip(reference, reference_groups))
          if ref_group == group and not (transductive and exclude_same_video and i == j)
      ]
      flat = sorted((c for cs in per_video for c in cs), reverse=True)
      if method == "knn":
        video_scores.append(np.mean(flat[:k]))
      elif method == "centroid":
        video_scores.append(np.mean(flat))
      else:
        video_scores.append(np.mean([max(cs) for cs in per_video]))
    out.append(video_scores)
  return out


def test_knn_by_hand_transductive():
  # A[0]=[1,0] sees B: 1, R and C: 0; A[1]=[0,1] sees B: 0, R and C: 1; B[0] sees A: 1, 0
  # and C: 0; B[1] sees R everywhere; C sees A: 0, 1 and B: 0, R.
  features, groups = [A, B, C], ["g"] * 3
  assert np.allclose(sum(scores(features, groups, k=1), []), [1, 1, 1, R, 1])
  assert np.allclose(
      sum(scores(features, groups, k=2), []), [(1 + R) / 2, (1 + R) / 2, 0.5, R, (1 + R) / 2]
  )
  # k above the number of reference segments: the mean over all of them.
  assert np.allclose(scores(features, groups, k=10)[0], [(1 + R) / 3, (1 + R) / 3])


def test_centroid_and_video_max_by_hand():
  features, groups = [A, B, C], ["g"] * 3
  assert np.allclose(
      sum(scores(features, groups, method="centroid"), []),
      [(1 + R) / 3, (1 + R) / 3, 1 / 3, (3 * R) / 3, (1 + R) / 4],
  )
  # Best match per other video, then the mean over those videos.
  assert np.allclose(
      sum(scores(features, groups, method="video_max"), []),
      [(1 + 0) / 2, (R + 1) / 2, (1 + 0) / 2, R, (1 + R) / 2],
  )


def test_own_video_is_excluded():
  same = np.array([[1.0, 0.0], [1.0, 0.0]])  # Two identical segments of one video.
  other = np.array([[0.0, 1.0]])
  for method in recurrence.METHODS:
    assert scores([same, other], ["g", "g"], method=method, k=1)[0] == [0.0, 0.0]
  # Kept in, each segment's nearest neighbour is itself (or its twin).
  assert scores([same, other], ["g", "g"], k=1, exclude_same_video=False)[0] == [1.0, 1.0]


def test_groups_are_respected():
  # A and B (group g) only see reference [0, 1]; C (group h) only sees [2, 0].
  reference, reference_groups = [np.array([[0.0, 1.0]]), np.array([[2.0, 0.0]])], ["g", "h"]
  got = scores(
      [A, B[1:], C],
      ["g", "g", "h"],
      reference_features=reference,
      reference_groups=reference_groups,
      k=1,
  )
  assert np.allclose(sum(got, []), [0, 1, R, 0])
  pooled = scores(
      [A, B[1:], C], ["x"] * 3, reference_features=reference, reference_groups=["x", "x"], k=1
  )
  assert np.allclose(sum(pooled, []), [1, 1, R, 1])
  # Transductive: A (g) is scored against C (g) only, never against the B's (h).
  assert np.allclose(scores([A, B, C, B], ["g", "h", "g", "h"], k=1)[0], [0, 1])


def test_centring_by_hand():
  # Transductive mean [1, 1]: A' = [1, -1], B' = [-1, 1], C' = 0 (cosine 0 to all).
  features = [np.array([[2.0, 0.0]]), np.array([[0.0, 2.0]]), np.array([[1.0, 1.0]])]
  assert np.allclose(sum(scores(features, ["g"] * 3, k=1), []), [R, R, R])
  assert np.allclose(sum(scores(features, ["g"] * 3, k=1, normalize="centered_l2"), []), [0, 0, 0])
  assert np.allclose(
      sum(scores(features, ["g"] * 3, k=2, normalize="centered_l2"), []), [-0.5, -0.5, 0]
  )
  # Inductive: the reference's mean [2, 2] is subtracted, not the queries'.
  got = scores(
      [np.array([[1.0, 0.0]])],
      ["g"],
      reference_features=[np.array([[3.0, 1.0]]), np.array([[1.0, 3.0]])],
      reference_groups=["g", "g"],
      k=1,
      normalize="centered_l2",
  )
  assert np.allclose(got, [[1 / np.sqrt(10)]])


@pytest.mark.parametrize("method", recurrence.METHODS)
@pytest.mark.parametrize("normalize", recurrence.NORMALIZATIONS)
@pytest.mark.parametrize("inductive", [False, True])
def test_matches_brute_force(method, normalize, inductive):
  rng = np.random.default_rng(0)
  make = lambda n: [rng.random((rng.integers(1, 6), 3)) - 0.3 for _ in range(n)]
  features, groups = make(7), ["a", "b", "a", "c", "b", "a", "c"]
  reference = (
      dict(reference_features=make(6), reference_groups=["c", "a", "b", "a", "c", "b"])
      if inductive
      else {}
  )
  kwargs = dict(method=method, k=3, normalize=normalize)
  want = brute_force(
      features,
      groups,
      reference.get("reference_features"),
      reference.get("reference_groups"),
      **kwargs,
  )
  got = recurrence.recurrence_scores(features, groups, chunk_size=4, **reference, **kwargs)
  assert [len(g) for g in got] == [len(f) for f in features]
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, atol=1e-6)


@pytest.mark.parametrize("method", recurrence.METHODS)
def test_chunking_does_not_change_scores(method):
  rng = np.random.default_rng(1)
  features = [rng.random((n, 4)).astype(np.float32) for n in (5, 1, 7, 3, 4)]
  groups = ["a", "b", "a", "b", "a"]
  whole = recurrence.recurrence_scores(features, groups, method=method, k=4, chunk_size=1000)
  for chunk_size in (1, 2, 3):
    chunked = recurrence.recurrence_scores(
        features, groups, method=method, k=4, chunk_size=chunk_size
    )
    assert [len(c) for c in chunked] == [5, 1, 7, 3, 4]
    for c, w in zip(chunked, whole):  # Up to float32 rounding of other BLAS blocks.
      np.testing.assert_allclose(c, w, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(groups=["g", "g"]), "3 feature arrays but 2 groups"),
        (dict(reference_features=[A]), "without reference_groups"),
        (dict(reference_groups=["g"]), "without reference_features"),
        (dict(reference_features=[A, B], reference_groups=["g"]), "2 feature arrays but 1"),
        (dict(reference_features=[np.ones((2, 3))], reference_groups=["g"]), "3-d"),
        (dict(features=[A, np.ones((2, 3)), C]), "one D"),
        (dict(method="median"), "method 'median'"),
        (dict(normalize="l1"), "normalize 'l1'"),
        (dict(k=0), "k=0"),
        (dict(groups=["g", "g", "h"]), "group 'h': no reference segments for 1"),
        (dict(groups=["g", "g", "h"], reference_features=[A], reference_groups=["g"]), "group 'h'"),
    ],
)
def test_errors(kwargs, message):
  features = kwargs.pop("features", [A, B, C])
  groups = kwargs.pop("groups", ["g"] * 3)
  with pytest.raises(ValueError, match=message):
    recurrence.recurrence_scores(features, groups, **kwargs)
