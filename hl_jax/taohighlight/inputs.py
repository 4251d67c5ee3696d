"""TaoHighlight's inputs: which videos, their model inputs and targets, padded batches.

Videos: a benchmark's train split (config.group, num_labelled; configs/taohighlight.py),
evaluated on val or, with cv_folds > 0, on a fold of the train videos (`cv_split`).
Inputs (`make_examples`): visual = features[:, :visual_dim] (I3D rgb + flow); the context
is the title tokens ("text", TVSum) or features[:, visual_dim:] ("audio": PANN, YouTube
Highlights); targets from `taohighlight.targets`. `collate` pads to one static T_max
(`padded_lengths`: the longest video, rounded up to a multiple of 8; a prefix mask) and
L_max. `batch_indices` picks step t's videos from (seed, t) alone, so resuming is exact.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import os
from typing import Sequence

from absl import logging
import ml_collections
import numpy as np

from hl_jax.core import families
from hl_jax.data import benchmarks
from hl_jax.eval import evaluators
from hl_jax.taohighlight import targets


@dataclasses.dataclass(frozen=True, eq=False)
class Example:
  """One video's model inputs and targets, unpadded."""

  video_id: str
  visual: np.ndarray  # [T, Dv]: rgb + flow (+ the weak channel).
  audio: np.ndarray | None  # [T, Da], context "audio" only.
  text: np.ndarray | None  # [L, Dt] title tokens.
  saliency: np.ndarray  # [T] float32 in [0, 1].
  segment: tuple[int, int]  # [start, end) in clips.


def _by_group(videos: Sequence[benchmarks.Video]) -> dict[str, list[benchmarks.Video]]:
  """Videos per group, each group in sha1(video_id) order."""
  order = sorted(videos, key=lambda v: (v.group, hashlib.sha1(v.video_id.encode()).digest()))
  return {g: list(vs) for g, vs in itertools.groupby(order, key=lambda v: v.group)}


def select_labelled(
    videos: Sequence[benchmarks.Video], num_labelled: int
) -> list[benchmarks.Video]:
  """The first `num_labelled` videos of each group in sha1 order (0: all), in input order."""
  keep = {v.video_id for vs in _by_group(videos).values() for v in vs[: num_labelled or None]}
  return [v for v in videos if v.video_id in keep]


def cv_split(
    videos: Sequence[benchmarks.Video], folds: int, fold: int
) -> tuple[list[benchmarks.Video], list[benchmarks.Video]]:
  """(train, held out): fold `fold` of `folds` holds the group's i-th sha1-ordered
  videos with i % folds == fold, so every group is split alike."""
  if folds < 2 or not 0 <= fold < folds:
    raise ValueError(f"cv_folds={folds}, cv_fold={fold}: need folds >= 2, 0 <= fold < folds")
  held = {
      v.video_id for vs in _by_group(videos).values() for i, v in enumerate(vs) if i % folds == fold
  }
  return ([v for v in videos if v.video_id not in held], [v for v in videos if v.video_id in held])


def load_videos(
    config: ml_collections.ConfigDict,
) -> tuple[list[benchmarks.Video], list[benchmarks.Video], str]:
  """(train videos, evaluation videos, the evaluation split's name)."""
  load = functools.partial(
      benchmarks.load_benchmark,
      config.benchmark,
      manual_dir=os.path.join(config.data_root, config.benchmark),
      data_dir=config.data_dir or None,
      feature_set=config.feature_set,
  )

  def of_group(videos):
    kept = [v for v in videos if v.group == config.group or not config.group]
    if config.group and not kept:
      raise ValueError(
          f"group={config.group!r} has no {config.benchmark} videos; groups: "
          f"{sorted({v.group for v in videos})}"
      )
    return kept

  train_videos = of_group(load("train"))
  if config.cv_folds:
    train_videos, eval_videos = cv_split(train_videos, config.cv_folds, config.cv_fold)
    split = f"train_cv{config.cv_fold}of{config.cv_folds}"
  else:
    eval_videos, split = of_group(load("val")), "val"
  return select_labelled(train_videos, config.num_labelled), eval_videos, split


def weak_channel(workdir: str, videos: Sequence[benchmarks.Video]) -> dict[str, np.ndarray]:
  """{video_id: [T] scores of a workdir's per-segment scorer, z-normalised per video}."""
  scorer = families.load_segment_scorer(workdir)
  score_fn, dim, step = scorer.score_segments, scorer.feature_dim, scorer.step
  if dim > videos[0].features.shape[1]:
    raise ValueError(
        f"weak.workdir={workdir} scores {dim}-d features but the videos "
        f"have {videos[0].features.shape[1]}-d ones"
    )
  logging.info("Feeding f of %s (step %d, %d-d) as a visual channel", workdir, step, dim)
  scores = evaluators.score_videos(score_fn, [v.features[:, :dim] for v in videos])
  return {
      v.video_id: ((s - s.mean()) / max(float(s.std()), 1e-6)).astype(np.float32)
      for v, s in zip(videos, scores)
  }


def make_examples(
    videos: Sequence[benchmarks.Video],
    config: ml_collections.ConfigDict,
    weak: dict[str, np.ndarray] | None = None,
) -> list[Example]:
  """The model inputs and targets of `videos` (see the module docstring). A video
  without .labels (prediction) gets zero targets."""
  dv, context = config.model.visual_dim, config.model.context
  examples = []
  for v in videos:
    labels = getattr(v, "labels", None)
    num_clips = len(v.features) if labels is None else v.num_clips
    if v.features.ndim != 2 or v.features.shape[1] < dv or len(v.features) != num_clips:
      raise ValueError(
          f"video {v.video_id}: features {v.features.shape} for {num_clips} "
          f"labelled clips; need [T, >= {dv}] (model.visual_dim={dv})"
      )
    visual = v.features[:, :dv]
    if weak is not None:
      visual = np.concatenate([visual, weak[v.video_id][:, None]], axis=1)
    use = config.model.use_text and context
    audio = v.features[:, dv:] if use == "audio" else None
    text = getattr(v, "text", None) if use == "text" else None
    saliency, segment = (
        targets.targets(labels, config.benchmark, config.loss.segment_length)
        if labels is not None
        else (np.zeros(num_clips, np.float32), (0, 0))
    )
    examples.append(
        Example(
            v.video_id,
            visual.astype(np.float32),
            audio,
            None if text is None else np.asarray(text, np.float32),
            saliency,
            segment,
        )
    )
  return examples


def collate(
    examples: Sequence[Example], t_max: int, l_max: int = 0, text_width: int = 0
) -> dict[str, np.ndarray]:
  """A padded batch: visual [B, T_max, Dv], mask (a prefix) and saliency [B, T_max],
  segment [B, 2], audio [B, T_max, Da] if any, text [B, L_max, Dt] + text_mask if l_max."""
  b, first = len(examples), examples[0]
  out = {
      "visual": np.zeros((b, t_max, first.visual.shape[1]), np.float32),
      "mask": np.zeros((b, t_max), bool),
      "saliency": np.zeros((b, t_max), np.float32),
      "segment": np.array([e.segment for e in examples], np.int32),
  }
  if first.audio is not None:
    out["audio"] = np.zeros((b, t_max, first.audio.shape[1]), np.float32)
  if l_max:  # A video without text gets no valid token: the model uses no context.
    out["text"] = np.zeros((b, l_max, text_width), np.float32)
    out["text_mask"] = np.zeros((b, l_max), bool)
  for i, e in enumerate(examples):
    t = len(e.visual)
    out["visual"][i, :t], out["mask"][i, :t], out["saliency"][i, :t] = e.visual, True, e.saliency
    if "audio" in out:
      out["audio"][i, :t] = e.audio
    if l_max and e.text is not None:
      out["text"][i, : len(e.text)], out["text_mask"][i, : len(e.text)] = e.text, True
  return out


def padded_lengths(examples: Sequence[Example]) -> tuple[int, int, int]:
  """(T_max rounded up to a multiple of 8, L_max, Dt); L_max = Dt = 0 without text."""
  t_max = -(-max(len(e.visual) for e in examples) // 8) * 8
  texts = [e.text for e in examples if e.text is not None]
  return t_max, max((len(x) for x in texts), default=0), texts[0].shape[1] if texts else 0


def bucket_length(length: int, t_max: int, smallest: int = 32) -> int:
  """The padded length of a batch whose longest video has `length` clips: the next
  power of two >= length (at least `smallest`), at most t_max (train.pad_per_batch:
  at most log2(t_max / smallest) + 2 compiled shapes)."""
  return min(t_max, max(smallest, 1 << max(length - 1, 0).bit_length()))


def batch_indices(num_videos: int, batch_size: int, seed: int, step: int) -> np.ndarray:
  """The [batch_size] training videos of `step`: epochs of seeded permutations, in turn."""
  pos = step * batch_size + np.arange(batch_size)
  out = np.empty(batch_size, np.int64)
  for epoch in np.unique(pos // num_videos):
    here = pos // num_videos == epoch
    out[here] = np.random.default_rng([seed, int(epoch)]).permutation(num_videos)[
        pos[here] % num_videos
    ]
  return out
