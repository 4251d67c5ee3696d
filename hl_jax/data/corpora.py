"""The weakly labelled training corpora (duration_corpus), opened from TFDS, and their views.

  corpus = corpora.load_corpus(config)        # config.corpus: which corpus, which view

A corpus's training split is a random-access source of videos, each with a
duration bucket (short, long, rest); views of it choose what trains:
`DomainSubset` (Ours-S, one domain), `TagPairs` (video-level tags as the weak
signal: tagged videos preferred over the others), `GroupedSource` (the two
sides of a video split by a per-segment signal kept together), and
`TrainingPart` (`corpus.holdout_fraction` > 0: a deterministic,
bucket-stratified part kept away from training for label-free model
selection, `Corpus.heldout`, hl_jax/eval/heldout.py), and `NestedFraction`
(`corpus.train_fraction` < 1: a stratified share of the training videos, each
smaller share inside the larger, for the corpus-size study). How the training videos
reach the train step is hl_jax/less_is_more/input_pipeline.py's job.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, Iterator

from absl import logging
import ml_collections
import numpy as np

from hl_jax.core import files
from hl_jax.data import benchmarks


@dataclasses.dataclass
class Corpus:
  """An opened duration-bucketed corpus.

  Attributes:
    name: "duration_corpus/<builder config>" (and the domain, for Ours-S).
    train_source: random-access source of training examples (one video each,
      or a pair group's videos as one item: `GroupedSource`).
    feature_dim: D.
    eval_videos: the labelled split (`corpus.eval_split`); empty if none.
    heldout: training-split videos kept away from training
      (`corpus.holdout_fraction`); empty if none.
  """

  name: str
  train_source: Any
  feature_dim: int
  eval_videos: list[benchmarks.Video]
  heldout: list[HeldoutVideo] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True, eq=False)
class HeldoutVideo:
  """One training-split video kept away from training; no labels are read.

  Attributes:
    video_id: the video's id.
    domain: its domain.
    bucket: 0 short, 1 long, 2 rest (the duration_corpus ClassLabel).
    features: [T, D] float32 segment features.
  """

  video_id: str
  domain: str
  bucket: int
  features: np.ndarray


def load_corpus(config: ml_collections.ConfigDict) -> Corpus:
  """Builds the configured duration_corpus if needed and opens its splits."""
  builder = _corpus_builder(config)
  feature_dim = int(builder.info.features["features"].shape[-1])
  name = f"duration_corpus/{config.corpus.builder_config}"
  train_source = builder.as_data_source(split=config.corpus.train_split)
  eval_videos = []
  split = config.corpus.eval_split
  if split and split in builder.info.splits:
    eval_videos = labelled_videos(builder.as_data_source(split=split))
  if _has_pair_groups(builder, train_source):
    # Sides of one video split by a per-segment signal: keep them together so
    # that their pairs are drawn within the video.
    train_source = GroupedSource(train_source)
  fraction = config.corpus.get("train_fraction", 1.0)
  if fraction < 1.0:  # The corpus-size study: a nested, stratified part of the corpus.
    train_source = NestedFraction(
        train_source, fraction, cache_key=f"{builder.data_dir}:{config.corpus.train_split}"
    )
    name += f" ({fraction:g} of its training videos)"
  domain = config.corpus.domain
  if domain:  # Ours-S: one model per domain, trained on that domain only.
    train_source = DomainSubset(train_source, domain)
    if not len(train_source):
      raise ValueError(f"{name} has no training video of domain {domain!r}")
    eval_videos = [v for v in eval_videos if v.group == domain]
    name += f" (domain {domain})"
  tag = config.corpus.get("tag", "")
  if tag:  # Video-level tags: videos tagged `tag` preferred over the others.
    train_source = TagPairs(train_source, tag, config.corpus.get("tag_pairs", "tag"), name)
    eval_videos = [v for v in eval_videos if tag in tags_of(v.group)]
    name += f" (tag {tag}, {config.corpus.get('tag_pairs', 'tag')} pairs)"
  heldout = []
  fraction = config.corpus.holdout_fraction
  if fraction > 0:  # After the domain filter: Ours-S holds out its own domain.
    train_source = TrainingPart(train_source, fraction)
    heldout = train_source.heldout_videos(name)
    if tag:  # Tag pairs cross domains: held-out pairs too, as one group.
      heldout = [dataclasses.replace(v, domain=f"tag:{tag}") for v in heldout]
  return Corpus(
      name=name,
      train_source=train_source,
      feature_dim=feature_dim,
      eval_videos=eval_videos,
      heldout=heldout,
  )


def examples_of(item: Any) -> list[Any]:
  """The examples of a corpus item: one example, or a pair group's list."""
  return item if isinstance(item, list) else [item]


def _has_pair_groups(builder: Any, source: Any) -> bool:
  """Whether a corpus's examples come in pair groups (sides of one video).

  Its config says so (`segment_signal`) when it is at hand; a corpus opened
  from its folder (a `<name>_d<D>` build) has a plain config, so its first
  example's `pair_group` decides (a corpus has groups on every example or on
  none: the builder splits every video of a segment-signal corpus).
  """
  if getattr(builder.builder_config, "segment_signal", ""):
    return True
  return len(source) > 0 and bool(files.as_text(source[0].get("pair_group", "")))


def labelled_videos(data_source: Any) -> list[benchmarks.Video]:
  """All videos of a labelled duration_corpus split, in source order."""
  return [
      benchmarks.Video(
          video_id=files.as_text(ex["video_id"]),
          group=files.as_text(ex["domain"]),
          features=np.asarray(ex["features"], np.float32),
          labels=np.asarray(ex["labels"]),
      )
      for ex in (data_source[i] for i in range(len(data_source)))
  ]


def _corpus_builder(config: ml_collections.ConfigDict) -> Any:
  """The prepared duration_corpus builder named by `corpus.builder_config`.

  A registered config is built if needed. Any other name must be a custom
  `DurationCorpusConfig` built earlier into data_dir (with
  `dcb.get_builder(config_object, data_dir)`); it is opened from there, the
  newest version if there are several.
  """
  from etils import epath  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  from tfds_builders.duration_corpus import duration_corpus_dataset_builder as dcb  # pylint: disable=g-import-not-at-top

  name = config.corpus.builder_config
  if name in dcb.Builder.builder_configs:
    if files.is_remote(config.data_dir) and not (
        dcb.Builder(config=name, data_dir=config.data_dir, file_format="array_record").is_prepared()
    ):
      manual = f"--manual_dir={config.corpus.manual_dir}" if config.corpus.manual_dir else ""
      raise FileNotFoundError(
          benchmarks.not_built_remotely(f"duration_corpus/{name}", config.data_dir, manual)
      )
    with benchmarks._quiet_build(f"duration_corpus/{name}"):
      return dcb.get_builder(
          name, data_dir=config.data_dir or None, manual_dir=config.corpus.manual_dir or None
      )
  root = epath.Path(config.data_dir or tfds.core.constants.DATA_DIR) / "duration_corpus" / name
  versions = (
      [p for p in root.iterdir() if tfds.core.Version.is_valid(p.name)] if root.exists() else []
  )
  if not versions:
    raise ValueError(
        f"corpus.builder_config={name!r} is neither a registered duration_corpus "
        f"config ({', '.join(dcb.Builder.builder_configs)}) nor built in {root}; "
        "build a custom DurationCorpusConfig there first with duration_corpus's "
        "get_builder"
    )
  newest = max(versions, key=lambda p: tfds.core.Version(p.name))
  return tfds.builder_from_directory(newest)


class _IndexSubset:
  """Items `_indices` of `_source`, in source order (set by the subclass)."""

  _source: Any
  _indices: list[int]

  def __len__(self) -> int:
    return len(self._indices)

  def __getitem__(self, index: int) -> Any:
    return self._source[self._indices[index]]


class DomainSubset(_IndexSubset):
  """The examples of one domain of a random-access source, in source order."""

  def __init__(self, source: Any, domain: str):
    self._source = source
    self._domain = domain
    self._indices = [i for i in range(len(source)) if _domain_of(source[i]) == domain]

  def __repr__(self) -> str:  # Deterministic, as Grain checks it on restore.
    return f"DomainSubset({self._source!r}, {self._domain!r})"


def _domain_of(item: Any) -> str:
  """The domain of an example, or of a pair group's first example."""
  return files.as_text((item[0] if isinstance(item, list) else item)["domain"])


def sha1_strata(
    source: Any,
) -> tuple[dict[tuple[str, tuple[int, ...]], list[int]], list[list[int]]]:
  """The items of a source by stratum, each stratum in a stable order; their buckets.

  A stratum is (domain, sorted buckets of the item's videos); its items are in
  the order of sha1 of their pair_group (else video_id): stable across runs,
  machines and Python hash seeds.

  Returns:
    ({stratum: [item index, ...] in sha1 order}, [bucket list of each item]).
  """
  keyed: dict[tuple[str, tuple[int, ...]], list[tuple[str, int]]] = {}
  buckets: list[list[int]] = []
  for index in range(len(source)):
    examples = examples_of(source[index])
    first = examples[0]
    key = files.as_text(first.get("pair_group", "")) or files.as_text(first["video_id"])
    buckets.append([int(e["bucket"]) for e in examples])
    stratum = (files.as_text(first["domain"]), tuple(sorted(buckets[-1])))
    keyed.setdefault(stratum, []).append((hashlib.sha1(key.encode()).hexdigest(), index))
  return {k: [index for _, index in sorted(v)] for k, v in keyed.items()}, buckets


class NestedFraction(_IndexSubset):
  """A share of a source's items, the same strata in proportion, in source order.

  In each stratum of `sha1_strata` (domain x duration buckets), the first
  max(1, round(fraction * n)) items in sha1 order are kept. The kept items of
  a smaller fraction are among those of any larger one (the corpus-size
  study's nested corpora), and the choice is stable across runs and machines.
  With a `cache_key` naming the source's data (load_corpus: the prepared
  dataset's folder and split), its strata are read once per process: the
  runs of a size study read a corpus of 100k videos once, not once per run.
  """

  _cached: tuple[str, dict] | None = None  # (cache_key, strata) of the newest source.

  def __init__(self, source: Any, fraction: float, cache_key: str = ""):
    if not 0 < fraction <= 1:
      raise ValueError(f"corpus.train_fraction={fraction} must be in (0, 1]")
    self._source = source
    self._fraction = fraction
    cached = NestedFraction._cached
    if cache_key and cached and cached[0] == cache_key:
      strata = cached[1]
    else:
      strata, _ = sha1_strata(source)
      if cache_key:
        NestedFraction._cached = (cache_key, strata)
    kept = {
        index
        for members in strata.values()
        for index in members[: max(1, int(fraction * len(members) + 0.5))]
    }
    self._indices = sorted(kept)

  def __repr__(self) -> str:  # Deterministic, as Grain checks it on restore.
    return f"NestedFraction({self._source!r}, train_fraction={self._fraction!r})"


class TrainingPart(_IndexSubset):
  """The items of a source left for training by a hold-out, in source order.

  Items (videos, or whole pair groups of a `GroupedSource`) are held out per
  stratum, (domain, buckets of the item's videos): in each, the
  round(fraction * n) items that come first in the order of sha1 of their
  pair_group (else video_id). Stable across runs, machines and Python hash
  seeds; and as fraction < 0.5, every stratum keeps a training item.
  """

  def __init__(self, source: Any, fraction: float):
    if not 0 < fraction < 0.5:
      raise ValueError(f"holdout fraction {fraction} must be in (0, 0.5)")
    self._source = source
    self._fraction = fraction
    strata, self._buckets = sha1_strata(source)
    held = set()
    for members in strata.values():
      held.update(members[: int(fraction * len(members) + 0.5)])
    self._heldout = sorted(held)
    self._indices = [i for i in range(len(source)) if i not in held]

  def __repr__(self) -> str:  # Deterministic, as Grain checks it on restore.
    return f"TrainingPart({self._source!r}, holdout_fraction={self._fraction!r})"

  def heldout_videos(self, corpus_name: str) -> list[HeldoutVideo]:
    """The held-out videos (features read now), after checking both sides.

    Raises:
      ValueError: the held-out videos, or the training ones, lack a short or
        a long video.
    """
    held = _bucket_counts(self._buckets[i] for i in self._heldout)
    kept = _bucket_counts(self._buckets[i] for i in self._indices)
    if min(held[:2] + kept[:2]) == 0:
      raise ValueError(
          f"{corpus_name}: corpus.holdout_fraction={self._fraction} holds out {held[0]} "
          f"short and {held[1]} long videos and leaves {kept[0]} short and {kept[1]} "
          "long for training; both sides need at least one of each"
      )
    logging.info(
        "%s: held out %d of %d training items (corpus.holdout_fraction=%g): "
        "%d short, %d long, %d rest videos",
        corpus_name,
        len(self._heldout),
        len(self._buckets),
        self._fraction,
        *held,
    )
    return [
        HeldoutVideo(
            video_id=files.as_text(e["video_id"]),
            domain=files.as_text(e["domain"]),
            bucket=int(e["bucket"]),
            features=np.asarray(e["features"], np.float32),
        )
        for i in self._heldout
        for e in examples_of(self._source[i])
    ]


def _bucket_counts(buckets: Iterator[list[int]]) -> list[int]:
  """[short, long, rest] video counts of the items' bucket lists."""
  counts = [0, 0, 0]
  for item in buckets:
    for bucket in item:
      counts[bucket] += 1
  return counts


class GroupedSource:
  """Examples of one `pair_group` as one item, so that they stay together.

  Shards, shuffles and windows then move whole groups: the two sides of a
  video split by a per-segment signal always share a window. Examples without
  a group are items of their own.
  """

  def __init__(self, source: Any):
    self._source = source
    groups: dict[str, list[int]] = {}
    self._items: list[list[int]] = []
    for index in range(len(source)):
      group = files.as_text(source[index].get("pair_group", ""))
      if not group:
        self._items.append([index])
      elif group in groups:
        groups[group].append(index)
      else:
        groups[group] = [index]
        self._items.append(groups[group])

  def __len__(self) -> int:
    return len(self._items)

  def __getitem__(self, index: int) -> list[Any]:
    return [self._source[i] for i in self._items[index]]

  def __repr__(self) -> str:  # Deterministic, as Grain checks it on restore.
    return f"GroupedSource({self._source!r})"


# ----------------------------------------------------------------------------
# Video-level tags as the weak signal.


def tags_of(domain: str | bytes) -> list[str]:
  """A video's tags: its `domain` field, '|'-separated ("dog|pets": two tags)."""
  return [t.strip() for t in files.as_text(domain).split("|") if t.strip()]


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
      raise ValueError(
          f"{corpus_name}: corpus.tag={tag!r} (tag_pairs={pairs!r}) leaves "
          f"{counts[0]} tagged and {counts[1]} untagged training videos; "
          "both sides need one"
      )

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
