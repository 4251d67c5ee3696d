"""hl_jax.highlights.streaming: planted highlights, latency budget, bounded state, chunking."""

import dataclasses

import jax
import numpy as np
import pytest

from hl_jax.highlights import streaming
from hl_jax.less_is_more import models
from hl_jax.less_is_more import scoring


def _stream(num=200, blocks=((60, 75, 4.0),), noise=None, seed=0):
  """Planted blocks on a background: periodic (noise None) or Gaussian noise."""
  t = np.arange(num)
  if noise is None:
    # Bounded and stationary: its robust z-scores stay below 2, so only the
    # planted blocks can start a highlight.
    scores = 0.3 * np.sin(2 * np.pi * t / 7) + 0.2 * np.sin(2 * np.pi * t / 3.3)
  else:
    scores = np.random.default_rng(seed).normal(0, noise, num)
  for start, end, height in blocks:
    scores[start:end] += height
  return scores


def _run(config, scores, chunks=None):
  detector = streaming.OnlineDetector(config)
  if chunks is None:
    events = [e for x in scores for e in detector.push(x)]
  else:
    bounds = np.cumsum([0] + list(chunks))
    events = [e for a, b in zip(bounds[:-1], bounds[1:]) for e in detector.push(scores[a:b])]
  return events + detector.finish()


@pytest.mark.parametrize("smooth, confirm, release", [(1, 1, 1), (3, 2, 2), (5, 3, 1)])
def test_planted_highlight_gives_one_start_and_one_end_within_budget(smooth, confirm, release):
  config = streaming.StreamConfig(
      smooth_segments=smooth,
      confirm_segments=confirm,
      release_segments=release,
      latency_budget_segments=6,
  )
  events = _run(config, _stream())
  assert [e.kind for e in events] == ["start", "end"]
  start, end = events
  lag = (smooth - 1) // 2
  # Dated back by the moving average's lag: within it of the planted block 60..74.
  assert 60 - lag <= start.segment <= 60 and 74 <= end.segment <= 74 + lag
  assert start.latency_segments <= config.max_latency_segments <= 6
  assert end.latency_segments <= config.max_latency_segments
  assert end.start_segment == start.segment
  assert start.time_s == 2.0 * start.segment and end.time_s == 2.0 * (end.segment + 1)
  assert start.emitted_time_s == 2.0 * (start.emitted_segment + 1)
  assert streaming.highlights(events) == [(start.segment, end.segment + 1)]


@pytest.mark.parametrize("seed", range(5))
def test_planted_highlight_in_noise_is_found_within_budget(seed):
  # Gaussian noise can also cross enter_z elsewhere; the planted block must be found.
  config = streaming.StreamConfig()
  events = _run(config, _stream(noise=0.3, seed=seed))
  assert max(e.latency_segments for e in events) <= config.latency_budget_segments
  covered = [(a, b) for a, b in streaming.highlights(events) if a < 75 and b > 60]
  assert len(covered) == 1 and covered[0][0] <= 61 and covered[0][1] >= 74


def test_two_highlights_and_latencies_exact():
  # No noise: a step of 5 over the background of 0 is seen the moment it arrives.
  scores = _stream(blocks=((30, 40, 5.0), (100, 104, 5.0)), noise=0.0)
  scores += 0.01 * np.sin(np.arange(200))  # a small spread for the MAD
  config = streaming.StreamConfig(smooth_segments=3, confirm_segments=2, release_segments=2)
  events = _run(config, scores)
  # Block 30..39: the average of 3 is far above the background already at 30,
  # so the confirming run is 30, 31 (emitted at 31) and the start is dated
  # back by the lag of 1 to 29. After the block, the average drops below
  # exit_z at 42; the releasing run is 42, 43 and the end 42 - 1 - 1 = 40.
  assert [(e.kind, e.segment, e.emitted_segment) for e in events] == [
      ("start", 29, 31),
      ("end", 40, 43),
      ("start", 99, 101),
      ("end", 104, 107),
  ]
  assert config.max_latency_segments == 3
  assert max(e.latency_segments for e in events) == 3


def test_latency_budget_is_checked():
  with pytest.raises(
      ValueError, match=r"worst-case latency 5 segments .* lag 2 .*budget" r"_segments=4"
  ):
    streaming.StreamConfig(
        smooth_segments=5, confirm_segments=3, release_segments=3, latency_budget_segments=4
    )
  with pytest.raises(ValueError, match="exit_z"):
    streaming.StreamConfig(enter_z=1.0, exit_z=1.0)


def test_max_highlight_length_forces_an_end_and_rearms_only_after_a_drop():
  scores = _stream(blocks=((50, 90, 4.0), (160, 166, 4.0)))
  config = streaming.StreamConfig(max_highlight_segments=10)
  spans = streaming.highlights(_run(config, scores))
  assert spans[0] == (49, 59)
  # The long block does not restart until it drops; the second block is found.
  assert len(spans) == 2 and spans[1][0] == 159


def test_finish_closes_an_open_highlight_and_no_event_before_min_history():
  config = streaming.StreamConfig(min_history=8)
  events = _run(config, _stream(num=50, blocks=((40, 50, 4.0),)))
  assert [e.kind for e in events] == ["start", "end"]
  assert events[1].segment == events[1].emitted_segment == 49
  # A block in the first 8 segments has no history to stand out against; the
  # same block 10 segments later does.
  assert _run(config, _stream(num=20, blocks=((0, 6, 4.0),))) == []
  assert streaming.highlights(_run(config, _stream(num=20, blocks=((10, 16, 4.0),)))) == [(9, 17)]


def test_chunked_equals_one_at_a_time():
  scores = _stream(num=500, blocks=((60, 75, 4.0), (200, 230, 2.0), (400, 402, 6.0)), seed=3)
  config = streaming.StreamConfig(history_segments=32)
  single = _run(config, scores)
  assert len(single) >= 4
  rng = np.random.default_rng(0)
  for _ in range(3):
    sizes = rng.integers(1, 12, size=500)
    sizes = sizes[: np.searchsorted(np.cumsum(sizes), 500) + 1]
    sizes[-1] -= sizes.sum() - 500
    assert _run(config, scores, chunks=sizes) == single
  assert _run(config, scores, chunks=[500]) == single


def test_state_is_bounded():
  config = streaming.StreamConfig(smooth_segments=5, history_segments=16, latency_budget_segments=6)
  detector = streaming.OnlineDetector(config)
  detector.push(np.zeros(3))
  before = (detector.state_nbytes(), sorted(vars(detector)))
  for i in range(20):
    detector.push(_stream(num=1000, seed=i))
  assert detector.segments_seen == 20003
  assert (detector.state_nbytes(), sorted(vars(detector))) == before
  assert detector.state_nbytes() == (5 + 16) * 8
  assert all(not isinstance(v, (list, dict)) for v in vars(detector).values())


def test_streaming_scorer_with_f_chunked_equals_single():
  # f: a randomly initialised scorer (ReLU, zero biases, so f(c x) = c f(x) for
  # c > 0). Segments 70..79 near 4x the best-scored noise segment make a highlight.
  scorer = models.Scorer(hidden=(8,))
  params = scorer.init(jax.random.PRNGKey(0), np.zeros((1, 6), np.float32))["params"]
  rng = np.random.default_rng(0)
  features = rng.normal(size=(120, 6)).astype(np.float32)
  best = features[np.argmax(scoring.make_score_fn(scorer, params, chunk=64)(features))]
  features[70:80] = 4.0 * best + 0.3 * rng.normal(size=(10, 6))
  config = streaming.StreamConfig()
  results = {}
  for chunk in (1, 4):
    streamer = streaming.StreamingScorer(scoring.make_score_fn(scorer, params, chunk=chunk), config)
    pieces = [features[i : i + chunk] if chunk > 1 else features[i] for i in range(0, 120, chunk)]
    outs = [streamer.push(p) for p in pieces]
    results[chunk] = (
        np.concatenate([s for s, _ in outs]),
        [e for _, ev in outs for e in ev] + streamer.finish(),
    )
  np.testing.assert_allclose(results[1][0], results[4][0], rtol=1e-5, atol=1e-6)
  # The planted block is found (one highlight over 70..79), chunked or not.
  spans = streaming.highlights(results[1][1])
  assert len(spans) == 1 and spans[0][0] <= 70 and spans[0][1] >= 80, spans
  key = lambda e: dataclasses.replace(e, score=round(e.score, 4))  # noqa: E731
  assert [key(e) for e in results[1][1]] == [key(e) for e in results[4][1]]
  direct = scoring.make_score_fn(scorer, params, chunk=64)(features)
  np.testing.assert_allclose(results[1][0], direct, rtol=1e-5, atol=1e-6)
