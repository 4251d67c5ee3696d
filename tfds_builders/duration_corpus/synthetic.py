"""Generative model of the embedded `synthetic` duration corpus.

Every segment is a D-dim feature vector x. A video v of domain d with
segments t = 1..T_v is drawn as

  x_vt = B_d c_vt + o_v + n_vt + 1[highlight_vt] s_vt h_d + 1[junk_vt] g j

  h_d   = normalize(u + a v_d): the domain's highlight direction; u is a
          shared latent highlight direction, v_d a random per-domain one.
  B_d   : [D, R] orthonormal background subspace of domain d; c_vt ~ N(0, b^2 I_R).
  o_v   ~ N(0, o^2 I_D): per-video offset, shared by all segments of the video
          (it cannot change a within-video ranking, only cross-video pairs).
  n_vt  ~ N(0, sigma^2 I_D): isotropic noise.
  s_vt  ~ U[(1 - jit) S, (1 + jit) S]: highlight strength.
  j     : the junk signature (a static, talking-head look), a unit vector
          orthogonal to u and to every h_d; g is its strength.

The `train` split mixes short / long / rest videos; each video gets a
highlight fraction p_v ~ Beta(bucket) and marks each segment a highlight with
probability p_v. A fraction of the short (and some rest) videos are junk: p_v
is near zero and ALL their segments carry g j. Junk videos make some
short-vs-long pairs wrong, recognisably so from content.

The `val` split has the same domains, durations across all buckets and
exactly round(p_v T_v) (clipped to [1, T_v - 1]) highlight segments per video,
p_v ~ Beta around 0.3; a fraction of its NON-highlight segments carry g j, so
a scorer that learned to like the junk look is punished at evaluation.

Everything is drawn from one `np.random.default_rng(seed)` in a fixed order:
the same parameters give bit-identical arrays.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# Order of the `bucket` ClassLabel.
BUCKET_NAMES = ('short', 'long', 'rest')
SHORT, LONG, REST = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class SyntheticParams:
  """Parameters of the synthetic generator (all tuples are (short, long, rest))."""

  seed: int = 0
  domains: tuple[str, ...] = ('dog', 'gymnastics', 'parkour', 'skating', 'skiing', 'surfing')
  # Sizes and durations.
  num_train: int = 3000
  bucket_probs: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3)
  short_range_s: tuple[float, float] = (5.0, 15.0)  # uniform
  long_range_s: tuple[float, float] = (45.0, 240.0)  # log-uniform
  rest_range_s: tuple[float, float] = (15.0, 45.0)  # uniform
  segment_s: float = 4.0
  min_segments: int = 2
  max_segments: int = 64
  num_val_per_domain: int = 20
  val_segments: tuple[int, int] = (20, 40)  # inclusive range
  # Directions and scales.
  domain_mix: float = 0.7  # a in h_d = normalize(u + a v_d)
  background_rank: int = 8  # R
  background_scale: float = 2.0  # b
  video_offset_scale: float = 1.0  # o
  noise_scale: float = 1.0  # sigma
  highlight_strength: float = 3.0  # S
  highlight_jitter: float = 0.3  # jit
  junk_strength: float = 1.75  # g
  # Highlight fractions and junk.
  highlight_beta: tuple[tuple[float, float], ...] = ((6.0, 4.0), (1.5, 8.5), (3.5, 6.5))
  junk_video_fraction: tuple[float, float, float] = (0.25, 0.0, 0.1)
  junk_highlight_beta: tuple[float, float] = (0.5, 20.0)
  val_highlight_beta: tuple[float, float] = (9.0, 21.0)
  val_junk_fraction: float = 0.2  # of the val non-highlight segments


@dataclasses.dataclass(frozen=True)
class Latents:
  """The hidden directions of the generative model (not stored in the dataset).

  Attributes:
    shared: [D] u, the shared highlight direction.
    highlight: [K, D] h_d per domain, unit norm.
    background: [K, D, R] orthonormal background bases B_d.
    junk: [D] j, unit norm, orthogonal to u and every h_d.
  """

  shared: np.ndarray
  highlight: np.ndarray
  background: np.ndarray
  junk: np.ndarray


@dataclasses.dataclass(frozen=True)
class Split:
  """One split, videos concatenated along the segment axis.

  Attributes:
    video_ids: V ids.
    domain: [V] int domain index.
    duration_s: [V] float32 durations.
    bucket: [V] int bucket (SHORT, LONG, REST) from the duration thresholds.
    junk_video: [V] bool, train junk videos (all False in val).
    row_splits: [V + 1] segment offsets; video i is rows row_splits[i]:[i+1].
    features: [N, D] float32.
    highlight: [N] bool ground truth.
    junk_segment: [N] bool, segment carries the junk signature.
  """

  video_ids: list[str]
  domain: np.ndarray
  duration_s: np.ndarray
  bucket: np.ndarray
  junk_video: np.ndarray
  row_splits: np.ndarray
  features: np.ndarray
  highlight: np.ndarray
  junk_segment: np.ndarray

  @property
  def num_segments(self) -> np.ndarray:
    """[V] segments per video."""
    return np.diff(self.row_splits)

  @property
  def segment_video(self) -> np.ndarray:
    """[N] video index of each segment."""
    return np.repeat(np.arange(len(self.video_ids)), self.num_segments)


def duration_bucket(duration_s: np.ndarray, short_max_s: float, long_min_s: float) -> np.ndarray:
  """Bucket per video: SHORT if d < short_max_s, LONG if d > long_min_s, else REST.

  Args:
    duration_s: [V] durations in seconds.
    short_max_s: short threshold (exclusive).
    long_min_s: long threshold (exclusive).

  Returns:
    [V] int64 bucket indices into BUCKET_NAMES.
  """
  d = np.asarray(duration_s)
  return np.where(d < short_max_s, SHORT, np.where(d > long_min_s, LONG, REST))


def _unit(x: np.ndarray) -> np.ndarray:
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def make_latents(rng: np.random.Generator, dim: int, p: SyntheticParams) -> Latents:
  """Draws u, h_d, B_d and j (see the module docstring)."""
  k = len(p.domains)
  shared = _unit(rng.normal(size=dim))
  highlight = _unit(shared + p.domain_mix * _unit(rng.normal(size=(k, dim))))
  background, _ = np.linalg.qr(rng.normal(size=(k, dim, p.background_rank)))
  span, _ = np.linalg.qr(np.concatenate([shared[:, None], highlight.T], axis=1))
  junk = rng.normal(size=dim)
  junk = _unit(junk - span @ (span.T @ junk))
  return Latents(shared, highlight, background, junk)


def _durations(rng: np.random.Generator, bucket: np.ndarray, p: SyntheticParams) -> np.ndarray:
  """[V] float32 durations: uniform in short / rest, log-uniform in long."""
  u = rng.random(len(bucket))
  lo = np.array([p.short_range_s[0], np.log(p.long_range_s[0]), p.rest_range_s[0]])
  hi = np.array([p.short_range_s[1], np.log(p.long_range_s[1]), p.rest_range_s[1]])
  d = lo[bucket] + u * (hi[bucket] - lo[bucket])
  return np.where(bucket == LONG, np.exp(d), d).astype(np.float32)


def _render(
    rng: np.random.Generator,
    lat: Latents,
    p: SyntheticParams,
    domain: np.ndarray,
    num_segments: np.ndarray,
    highlight: np.ndarray,
    junk_segment: np.ndarray,
) -> np.ndarray:
  """[N, D] float32 features of N = sum(num_segments) segments."""
  v, dim = len(domain), lat.shared.shape[0]
  seg_video = np.repeat(np.arange(v), num_segments)
  seg_domain = domain[seg_video]
  n = len(seg_video)
  x = p.noise_scale * rng.normal(size=(n, dim))
  coeff = p.background_scale * rng.normal(size=(n, p.background_rank))
  for k in range(len(p.domains)):
    rows = seg_domain == k
    x[rows] += coeff[rows] @ lat.background[k].T
  x += p.video_offset_scale * rng.normal(size=(v, dim))[seg_video]
  strength = p.highlight_strength * rng.uniform(
      1 - p.highlight_jitter, 1 + p.highlight_jitter, size=n
  )
  x += (highlight * strength)[:, None] * lat.highlight[seg_domain]
  x += (junk_segment * p.junk_strength)[:, None] * lat.junk
  return x.astype(np.float32)


def _num_segments(duration_s: np.ndarray, p: SyntheticParams) -> np.ndarray:
  n = np.rint(duration_s.astype(np.float64) / p.segment_s)
  return np.clip(n, p.min_segments, p.max_segments).astype(np.int64)


def make_train(
    rng: np.random.Generator,
    lat: Latents,
    p: SyntheticParams,
    short_max_s: float,
    long_min_s: float,
) -> Split:
  """The unlabelled training videos (ground truth kept for diagnostics)."""
  v = p.num_train
  intended = rng.choice(3, size=v, p=np.asarray(p.bucket_probs) / sum(p.bucket_probs))
  domain = rng.integers(len(p.domains), size=v)
  duration = _durations(rng, intended, p)
  num_segments = _num_segments(duration, p)
  junk_video = rng.random(v) < np.asarray(p.junk_video_fraction)[intended]
  beta = np.asarray(p.highlight_beta)[intended]
  beta[junk_video] = p.junk_highlight_beta
  fraction = rng.beta(beta[:, 0], beta[:, 1])
  seg_video = np.repeat(np.arange(v), num_segments)
  highlight = rng.random(len(seg_video)) < fraction[seg_video]
  junk_segment = junk_video[seg_video]
  features = _render(rng, lat, p, domain, num_segments, highlight, junk_segment)
  return Split(
      video_ids=[f'syn_train_{i:05d}' for i in range(v)],
      domain=domain,
      duration_s=duration,
      bucket=duration_bucket(duration, short_max_s, long_min_s),
      junk_video=junk_video,
      row_splits=np.concatenate([[0], np.cumsum(num_segments)]),
      features=features,
      highlight=highlight,
      junk_segment=junk_segment,
  )


def make_val(
    rng: np.random.Generator,
    lat: Latents,
    p: SyntheticParams,
    short_max_s: float,
    long_min_s: float,
) -> Split:
  """Labelled evaluation videos, domain-balanced, durations in every bucket.

  Evaluation needs lists long enough for a stable AP, so a val video has
  `val_segments` segments whatever its duration (its segments are then
  duration_s / T_v long); durations cycle through short, long and rest.
  """
  k, per = len(p.domains), p.num_val_per_domain
  v = k * per
  domain = np.repeat(np.arange(k), per)
  intended = np.tile(np.arange(per) % 3, k)
  duration = _durations(rng, intended, p)
  num_segments = rng.integers(p.val_segments[0], p.val_segments[1] + 1, size=v)
  fraction = rng.beta(*p.val_highlight_beta, size=v)
  num_pos = np.clip(np.rint(fraction * num_segments), 1, num_segments - 1)
  row_splits = np.concatenate([[0], np.cumsum(num_segments)])
  seg_video = np.repeat(np.arange(v), num_segments)
  # A random permutation within each video: the first num_pos are highlights.
  order = np.lexsort((rng.random(len(seg_video)), seg_video))
  rank = np.empty_like(order)
  rank[order] = np.arange(len(order)) - row_splits[seg_video[order]]
  highlight = rank < num_pos[seg_video]
  junk_segment = ~highlight & (rng.random(len(seg_video)) < p.val_junk_fraction)
  features = _render(rng, lat, p, domain, num_segments, highlight, junk_segment)
  return Split(
      video_ids=[f'syn_val_{i:04d}' for i in range(v)],
      domain=domain,
      duration_s=duration,
      bucket=duration_bucket(duration, short_max_s, long_min_s),
      junk_video=np.zeros(v, bool),
      row_splits=row_splits,
      features=features,
      highlight=highlight,
      junk_segment=junk_segment,
  )


def generate(
    p: SyntheticParams, dim: int, short_max_s: float = 15.0, long_min_s: float = 45.0
) -> tuple[Latents, dict[str, Split]]:
  """The whole corpus: latents, then train, then val, from one seeded stream."""
  rng = np.random.default_rng(p.seed)
  lat = make_latents(rng, dim, p)
  train = make_train(rng, lat, p, short_max_s, long_min_s)
  val = make_val(rng, lat, p, short_max_s, long_min_s)
  return lat, {'train': train, 'val': val}
