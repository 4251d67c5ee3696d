"""Live-stream highlight detection: an online detector over f's segment scores.

A live stream has no end to rank against, so the offline top-k of
`hl_jax.predict` is replaced by a causal decision with bounded state:

  features of segment t --f--> score x_t
  m_t = mean(x_{t-L+1..t})                        causal moving average, L
  z_t = (m_t - median) / (1.4826 * MAD)           robust z-score against the
        median and median absolute deviation of m over the last H segments
        (before m_t joins them)                   adaptive threshold
  out -> in:  z >= enter_z for `confirm_segments` segments in a row
  in -> out:  z <  exit_z  for `release_segments` segments in a row, or the
              highlight reaching `max_highlight_segments` (then z must drop
              below exit_z once before a new highlight can start)

Thresholds relative to the recent median and spread follow the stream's own
score level (f's scores are not calibrated across videos), and the median and
MAD are barely moved by the highlights themselves, so the exit threshold stays
near the background; enter_z > exit_z is the hysteresis that keeps noise
around one threshold from flickering. Like any relative threshold it finds
a stream's best parts even in a dull stream, as the offline top-k does.
The moving average already suppresses one-segment spikes, so by default one
segment past a threshold decides (confirm_segments = release_segments = 1);
requiring two delayed the events and agreed less with the offline top-k on
YouTube Highlights and TVSum val (benchmarks/streaming.py).

Events are dated back: the moving average lags a step in the scores by
lag = (L - 1) // 2 segments, so a start confirmed at segment t refers to
segment (first segment of the confirming run) - lag, and an end to the last
segment before (first segment of the releasing run) - lag. Each event carries
the segment it refers to and the segment whose arrival emitted it; their
difference, the latency, is at most
  lag + max(confirm_segments - 1, release_segments)
segments, which `StreamConfig` checks against `latency_budget_segments`.
State is a ring buffer of L scores and one of H smoothed scores: O(L + H)
memory whatever the stream's length.

A non-finite score (NaN or +-inf: a bad segment, a decoder glitch) is
skipped, not raised: a live stream should not die on one bad segment, and a
NaN must not reach the moving average, the median or the MAD (it would stay
in the history for H segments, and a NaN z-score is never below exit_z, so a
highlight open then would last to the end of the stream). A skipped segment
still counts as a segment, so event times stay those of the stream; it
changes neither the averages nor the state machine, and
`OnlineDetector.skipped_segments` counts them for the caller to watch.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Iterable

import numpy as np

START, END = "start", "end"


@dataclasses.dataclass(frozen=True)
class StreamConfig:
  """The online detector's settings; see the module docstring.

  Attributes:
    smooth_segments: L, segments in the causal moving average.
    history_segments: H, smoothed scores the thresholds are quantiles of.
    min_history: segments seen before any highlight may start.
    enter_z: robust z-score at or above which a highlight starts.
    exit_z: robust z-score (< enter_z) below which it ends.
    confirm_segments: consecutive segments above enter that start one.
    release_segments: consecutive segments below exit that end one.
    max_highlight_segments: longest highlight (0: unbounded).
    latency_budget_segments: the most segments an event may come after the
      segment it refers to; a config whose worst case exceeds it is refused.
    segment_seconds: length of one segment (for event times).
    stride_seconds: time between segment starts (None: segment_seconds).
  """

  smooth_segments: int = 3
  history_segments: int = 64
  min_history: int = 4
  enter_z: float = 2.0
  exit_z: float = 1.0
  confirm_segments: int = 1
  release_segments: int = 1
  max_highlight_segments: int = 0
  latency_budget_segments: int = 4
  segment_seconds: float = 2.0
  stride_seconds: float | None = None

  def __post_init__(self):
    for name in (
        "smooth_segments",
        "history_segments",
        "min_history",
        "confirm_segments",
        "release_segments",
    ):
      if getattr(self, name) < 1:
        raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
    if self.max_highlight_segments < 0:
      raise ValueError(
          f"max_highlight_segments={self.max_highlight_segments} must be " ">= 0 (0: unbounded)"
      )
    for name in ("segment_seconds", "stride_seconds"):
      value = getattr(self, name)
      if value is not None and not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name}={value} must be a finite number of seconds > 0")
    if self.min_history > self.history_segments:
      raise ValueError(
          f"min_history={self.min_history} exceeds history_segments=" f"{self.history_segments}"
      )
    if not self.exit_z < self.enter_z:
      raise ValueError(f"need exit_z ({self.exit_z}) < enter_z ({self.enter_z})")
    if self.max_latency_segments > self.latency_budget_segments:
      raise ValueError(
          f"worst-case latency {self.max_latency_segments} segments (moving-average "
          f"lag {self.lag_segments} + max(confirm_segments - 1, release_segments) = "
          f"max({self.confirm_segments - 1}, {self.release_segments})) exceeds "
          f"latency_budget_segments={self.latency_budget_segments}"
      )

  @property
  def lag_segments(self) -> int:
    """How far the moving average lags a step in the scores."""
    return (self.smooth_segments - 1) // 2

  @property
  def max_latency_segments(self) -> int:
    """The most segments between an event's segment and its emission."""
    return self.lag_segments + max(self.confirm_segments - 1, self.release_segments)

  @property
  def stride(self) -> float:
    return self.segment_seconds if self.stride_seconds is None else self.stride_seconds


@dataclasses.dataclass(frozen=True)
class Event:
  """A highlight boundary.

  Attributes:
    kind: "start" or "end".
    segment: the segment it refers to: a highlight's first segment (start)
      or its last one (end).
    time_s: that boundary in stream time: the segment's start (start event)
      or end (end event), seconds.
    emitted_segment: the segment whose arrival emitted the event.
    emitted_time_s: when that segment had fully arrived (its end), seconds.
    score: the smoothed score when emitted.
    start_segment: the highlight's first segment (equal to `segment` for a
      start event).
  """

  kind: str
  segment: int
  time_s: float
  emitted_segment: int
  emitted_time_s: float
  score: float
  start_segment: int

  @property
  def latency_segments(self) -> int:
    return self.emitted_segment - self.segment


class OnlineDetector:
  """Scores in, highlight start/end events out, with O(L + H) state.

  `push(scores)` takes one score or a chunk; it gives the same events either
  way. `finish()` ends an open highlight at the last segment seen.

  Attributes:
    config: the settings.
    skipped_segments: segments whose score was not finite (NaN, +-inf);
      they are skipped (see the module docstring), never raise.
  """

  def __init__(self, config: StreamConfig):
    self.config = config
    self._raw = np.zeros(config.smooth_segments, np.float64)  # ring, L
    self._history = np.zeros(config.history_segments, np.float64)  # ring, H
    self._t = 0  # segments seen
    self._n = 0  # of them with a finite score (ring positions)
    self.skipped_segments = 0
    self._inside = False
    self._armed = True  # False after a forced end until m < exit
    self._run = 0  # length of the current confirming/releasing run
    self._run_start = 0  # its first segment
    self._start = 0  # first segment of the open highlight
    self._last_end = -1  # last segment of the previous highlight

  @property
  def segments_seen(self) -> int:
    return self._t

  def state_nbytes(self) -> int:
    """Bytes of array state (constant: it does not grow with the stream)."""
    return self._raw.nbytes + self._history.nbytes

  def push(self, scores: float | Iterable[float]) -> list[Event]:
    """Consumes the next score(s) [C] (or one float); returns new events."""
    events = []
    for x in np.atleast_1d(np.asarray(scores, np.float64)):
      event = self._step(float(x))
      if event is not None:
        events.append(event)
    return events

  def finish(self) -> list[Event]:
    """Ends an open highlight at the last segment seen (end of stream)."""
    if not self._inside or self._t == 0:
      return []
    self._inside = False
    last = self._t - 1
    return [self._event(END, last, last, self._mean_of_last(self._n))]

  def _mean_of_last(self, count: int) -> float:
    """Mean of the last `count` raw scores (all of them while count < L)."""
    count = min(count, self.config.smooth_segments)
    return float(self._raw[:count].mean())

  def _event(self, kind: str, segment: int, emitted: int, score: float) -> Event:
    config = self.config
    time = segment * config.stride + (config.segment_seconds if kind == END else 0.0)
    return Event(
        kind,
        segment,
        time,
        emitted,
        emitted * config.stride + config.segment_seconds,
        score,
        segment if kind == START else self._start,
    )

  def _step(self, x: float) -> Event | None:
    config, t, n = self.config, self._t, self._n
    self._t = t + 1
    if not math.isfinite(x):
      self.skipped_segments += 1
      return None
    self._raw[n % config.smooth_segments] = x
    smoothed = self._mean_of_last(n + 1)
    filled = min(n, config.history_segments)
    event = None
    if filled >= config.min_history:
      event = self._transition(t, smoothed, self._zscore(smoothed, filled))
    self._history[n % config.history_segments] = smoothed
    self._n = n + 1
    return event

  def _zscore(self, m: float, filled: int) -> float:
    """m against the median and MAD of the last `filled` smoothed scores."""
    past = self._history[:filled]
    median = float(np.median(past))
    scale = 1.4826 * float(np.median(np.abs(past - median)))
    if scale > 0:
      return (m - median) / scale
    return 0.0 if m == median else np.copysign(np.inf, m - median)

  def _transition(self, t: int, m: float, z: float) -> Event | None:
    """The hysteresis state machine for segment t, smoothed score m, z-score z."""
    config, lag = self.config, self.config.lag_segments
    if not self._inside:
      self._armed = self._armed or z < config.exit_z
      if not (self._armed and z >= config.enter_z):
        self._run = 0
        return None
      self._run, self._run_start = self._run + 1, (t if self._run == 0 else self._run_start)
      if self._run < config.confirm_segments:
        return None
      self._inside, self._run = True, 0
      self._start = max(self._run_start - lag, self._last_end + 1, 0)
      return self._event(START, self._start, t, m)
    if config.max_highlight_segments and t - self._start + 1 >= config.max_highlight_segments:
      self._inside, self._armed, self._run, self._last_end = False, False, 0, t
      return self._event(END, t, t, m)
    if z >= config.exit_z:
      self._run = 0
      return None
    self._run, self._run_start = self._run + 1, (t if self._run == 0 else self._run_start)
    if self._run < config.release_segments:
      return None
    self._inside, self._run = False, 0
    self._last_end = max(self._run_start - lag - 1, self._start)
    return self._event(END, self._last_end, t, m)


def highlights(events: Iterable[Event]) -> list[tuple[int, int]]:
  """[(first, last + 1)] segment ranges of the completed highlights."""
  return [(e.start_segment, e.segment + 1) for e in events if e.kind == END]


class StreamingScorer:
  """f and the detector together: segment features in, events out.

  f runs on chunks padded to a fixed `chunk` rows (one compiled shape), so a
  single segment or a few at a time cost one call each.
  """

  def __init__(self, score_fn: Callable[[np.ndarray], np.ndarray], config: StreamConfig):
    """`score_fn` maps [C, D] features to [C] scores (`families.load_segment_scorer(workdir).score_segments`)."""
    self.score_fn = score_fn
    self.detector = OnlineDetector(config)

  def push(self, features: np.ndarray) -> tuple[np.ndarray, list[Event]]:
    """Consumes features [D] or [C, D]; returns ([C] scores, new events)."""
    features = np.asarray(features, np.float32)
    scores = self.score_fn(features[None] if features.ndim == 1 else features)
    return scores, self.detector.push(scores)

  def finish(self) -> list[Event]:
    return self.detector.finish()
