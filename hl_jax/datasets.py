"""What the data is: the training corpus and the labelled videos, opened from TFDS.

  corpus = datasets.load_corpus(config)          # duration_corpus, for training
  videos = datasets.load_benchmark("tvsum", "val", manual_dir="../shared/data/tvsum")

Every labelled video, whether of a corpus's labelled split or of a benchmark,
is a `Video`; `hl_jax.evaluation` scores lists of them. How the training
videos reach the train step is `hl_jax.input_pipeline`'s job.

`corpus.holdout_fraction` > 0 keeps a deterministic, bucket-stratified part of
the training split away from training (`Corpus.heldout`, `HeldoutVideo`), for
label-free model selection (`hl_jax.heldout`).

The builders are imported inside the functions, so that hl_jax imports without
their dependencies (and the builders import nothing from hl_jax).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import io
import os
import pathlib
from typing import Any, Iterator, Sequence

from absl import logging
import ml_collections
import numpy as np

from hl_jax import tags

BENCHMARKS = ("youtube_highlights", "tvsum")
FEATURE_SETS = ("i3d_rgb", "i3d_rgb_flow", "i3d_rgb_flow_audio")
FEATURE_DIMS = {"i3d_rgb": 1024, "i3d_rgb_flow": 2048, "i3d_rgb_flow_audio": 4096}
SPLITS = ("train", "val", "other", "all")
# Per benchmark: (group field, label field) of its TFDS examples.
_FIELDS = {"youtube_highlights": ("domain", "match"), "tvsum": ("category", "scores")}


@dataclasses.dataclass(frozen=True, eq=False)
class Video:
  """One labelled video.

  Attributes:
    video_id: the video's id.
    group: what the headline metric averages over: domain (corpus, YouTube
      Highlights) or category (TVSum).
    features: [T, D] float32 clip features.
    labels: corpus: [T] 0/1 highlight; youtube_highlights: [T] int match in
      {-1, 0, 1}; tvsum: [T, 20] float annotator scores 1..5.
    text: [L, 512] float32 title tokens (TVSum: CLIP tokens of the title);
      None where the benchmark has no text (YouTube Highlights, corpus videos).
  """
  video_id: str
  group: str
  features: np.ndarray
  labels: np.ndarray
  text: np.ndarray | None = None

  @property
  def num_clips(self) -> int:
    return len(self.labels)


def check_choice(name: str, value: str, choices: Sequence[str]) -> None:
  """Raises a one-line ValueError unless `value` is one of `choices`."""
  if value not in choices:
    raise ValueError(f"unknown {name} {value!r}; expected one of {list(choices)}")


@contextlib.contextmanager
def _quiet_build(what: str) -> Iterator[None]:
  """One log line when TFDS builds `what`; TFDS's own prints at --verbosity=1."""
  printed = io.StringIO()
  with contextlib.redirect_stdout(printed):
    yield
  if printed.getvalue().strip():
    logging.info("Built %s (first use; later runs read it)", what)
    logging.vlog(1, "%s", printed.getvalue().strip())


# ----------------------------------------------------------------------------
# The labelled benchmarks: YouTube Highlights and TVSum.


def load_benchmark(benchmark: str, split: str, *,
                   manual_dir: str | os.PathLike[str] | None,
                   data_dir: str | os.PathLike[str] | None = None,
                   feature_set: str = "i3d_rgb") -> list[Video]:
  """Loads one split of a benchmark, building its TFDS dataset first if needed.

  Args:
    benchmark: "youtube_highlights" or "tvsum".
    split: "train", "val" (the standard split), "other" (annotated videos
      outside it) or "all".
    manual_dir: the raw data, laid out like ../shared/data/<benchmark>; only
      read when the dataset is not built yet (None is fine then).
    data_dir: TFDS data_dir (None: TFDS's default, $TFDS_DATA_DIR or
      ~/tensorflow_datasets).
    feature_set: builder config: "i3d_rgb" (D=1024), "i3d_rgb_flow" (2048) or
      "i3d_rgb_flow_audio" (4096).

  Returns:
    The split's videos, sorted by (group, video_id).
  """
  check_choice("benchmark", benchmark, BENCHMARKS)
  check_choice("split", split, SPLITS)
  check_choice("feature_set", feature_set, FEATURE_SETS)
  builder = _prepared_benchmark(benchmark, feature_set, data_dir, manual_dir)
  if split not in builder.info.splits and split != "all":
    return []  # e.g. "other" of TVSum, where every video is in the split
  group_key, label_key = _FIELDS[benchmark]
  videos = [
      Video(video_id=tags.as_text(ex["video_id"]), group=tags.as_text(ex[group_key]),
            features=np.asarray(ex["features"], np.float32),
            labels=np.asarray(ex[label_key]),
            text=(np.asarray(ex["title_tokens"], np.float32) if benchmark == "tvsum"
                  else None))
      for ex in builder.as_data_source(split=split)
  ]
  return sorted(videos, key=lambda v: (v.group, v.video_id))


def _prepared_benchmark(benchmark: str, feature_set: str, data_dir: Any,
                        manual_dir: Any) -> Any:
  """The benchmark's builder, built from `manual_dir` if it is not yet."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from tfds_builders.tvsum import tvsum_dataset_builder  # pylint: disable=g-import-not-at-top
  from tfds_builders.youtube_highlights import youtube_highlights_dataset_builder  # pylint: disable=g-import-not-at-top
  builder_class = {"youtube_highlights": youtube_highlights_dataset_builder.Builder,
                   "tvsum": tvsum_dataset_builder.Builder}[benchmark]
  if data_dir is not None:
    data_dir = os.path.expanduser(os.fspath(data_dir))
  if manual_dir is not None:
    manual_dir = os.path.expanduser(os.fspath(manual_dir))
  make = functools.partial(builder_class, config=feature_set, data_dir=data_dir,
                           file_format="array_record")
  builder = make()
  if builder.is_prepared():
    return builder
  if manual_dir is None or not pathlib.Path(manual_dir).is_dir():
    raise FileNotFoundError(
        f"{benchmark}/{feature_set} is not built in {builder.data_dir} and manual_dir "
        f"{manual_dir} is not a directory:{builder.MANUAL_DOWNLOAD_INSTRUCTIONS}")
  try:
    with _quiet_build(f"{benchmark}/{feature_set} in {builder.data_dir}"):
      builder.download_and_prepare(
          download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  except OSError:
    # Processes building the same data_dir at once (the hosts of one job) race
    # to rename their finished copy into place; the loser reads the winner's.
    builder = make()
    if not builder.is_prepared():
      raise
  return builder


# ----------------------------------------------------------------------------
# The training corpus: duration_corpus.


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
  eval_videos: list[Video]
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
  domain = config.corpus.domain
  if domain:  # Ours-S: one model per domain, trained on that domain only.
    train_source = DomainSubset(train_source, domain)
    if not len(train_source):
      raise ValueError(f"{name} has no training video of domain {domain!r}")
    eval_videos = [v for v in eval_videos if v.group == domain]
    name += f" (domain {domain})"
  tag = config.corpus.get("tag", "")
  if tag:  # Video-level tags: videos tagged `tag` preferred over the others.
    train_source = tags.TagPairs(train_source, tag, config.corpus.get("tag_pairs", "tag"),
                                 name)
    eval_videos = [v for v in eval_videos if tag in tags.tags_of(v.group)]
    name += f" (tag {tag}, {config.corpus.get('tag_pairs', 'tag')} pairs)"
  heldout = []
  fraction = config.corpus.holdout_fraction
  if fraction > 0:  # After the domain filter: Ours-S holds out its own domain.
    train_source = TrainingPart(train_source, fraction)
    heldout = train_source.heldout_videos(name)
    if tag:  # Tag pairs cross domains: held-out pairs too, as one group.
      heldout = [dataclasses.replace(v, domain=f"tag:{tag}") for v in heldout]
  return Corpus(name=name, train_source=train_source, feature_dim=feature_dim,
                eval_videos=eval_videos, heldout=heldout)


def _has_pair_groups(builder: Any, source: Any) -> bool:
  """Whether a corpus's examples come in pair groups (sides of one video).

  Its config says so (`segment_signal`) when it is at hand; a corpus opened
  from its folder (a `<name>_d<D>` build) has a plain config, so its first
  example's `pair_group` decides (a corpus has groups on every example or on
  none: the builder splits every video of a segment-signal corpus).
  """
  if getattr(builder.builder_config, "segment_signal", ""):
    return True
  return len(source) > 0 and bool(tags.as_text(source[0].get("pair_group", "")))


def labelled_videos(data_source: Any) -> list[Video]:
  """All videos of a labelled duration_corpus split, in source order."""
  return [Video(video_id=tags.as_text(ex["video_id"]), group=tags.as_text(ex["domain"]),
                features=np.asarray(ex["features"], np.float32),
                labels=np.asarray(ex["labels"]))
          for ex in (data_source[i] for i in range(len(data_source)))]


def _corpus_builder(config: ml_collections.ConfigDict) -> Any:
  """The prepared duration_corpus builder named by `corpus.builder_config`.

  A registered config is built if needed. Any other name must be a custom
  `DurationCorpusConfig` built earlier into corpus.data_dir (with
  `dcb.get_builder(config_object, data_dir)`); it is opened from there, the
  newest version if there are several.
  """
  from etils import epath  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from tfds_builders.duration_corpus import duration_corpus_dataset_builder as dcb  # pylint: disable=g-import-not-at-top
  name = config.corpus.builder_config
  if name in dcb.Builder.builder_configs:
    with _quiet_build(f"duration_corpus/{name}"):
      return dcb.get_builder(name, data_dir=config.corpus.data_dir or None,
                             manual_dir=config.corpus.manual_dir or None)
  root = (epath.Path(config.corpus.data_dir or tfds.core.constants.DATA_DIR)
          / "duration_corpus" / name)
  versions = [p for p in root.iterdir()
              if tfds.core.Version.is_valid(p.name)] if root.exists() else []
  if not versions:
    raise ValueError(
        f"corpus.builder_config={name!r} is neither a registered duration_corpus "
        f"config ({', '.join(dcb.Builder.builder_configs)}) nor built in {root}; "
        "build a custom DurationCorpusConfig there first with duration_corpus's "
        "get_builder")
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
    self._indices = [i for i in range(len(source))
                     if _domain_of(source[i]) == domain]

  def __repr__(self) -> str:  # Deterministic, as Grain checks it on restore.
    return f"DomainSubset({self._source!r}, {self._domain!r})"


def _domain_of(item: Any) -> str:
  """The domain of an example, or of a pair group's first example."""
  return tags.as_text((item[0] if isinstance(item, list) else item)["domain"])


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
    strata: dict[tuple[str, tuple[int, ...]], list[tuple[str, int]]] = {}
    self._buckets: list[list[int]] = []
    for index in range(len(source)):
      examples = tags.examples_of(source[index])
      first = examples[0]
      key = tags.as_text(first.get("pair_group", "")) or tags.as_text(first["video_id"])
      self._buckets.append([int(e["bucket"]) for e in examples])
      stratum = (tags.as_text(first["domain"]), tuple(sorted(self._buckets[-1])))
      strata.setdefault(stratum, []).append((hashlib.sha1(key.encode()).hexdigest(), index))
    held = set()
    for members in strata.values():
      members.sort()
      held.update(index for _, index in members[:int(fraction * len(members) + 0.5)])
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
          "long for training; both sides need at least one of each")
    logging.info("%s: held out %d of %d training items (corpus.holdout_fraction=%g): "
                 "%d short, %d long, %d rest videos", corpus_name, len(self._heldout),
                 len(self._buckets), self._fraction, *held)
    return [HeldoutVideo(video_id=tags.as_text(e["video_id"]), domain=tags.as_text(e["domain"]),
                         bucket=int(e["bucket"]),
                         features=np.asarray(e["features"], np.float32))
            for i in self._heldout for e in tags.examples_of(self._source[i])]


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
      group = tags.as_text(source[index].get("pair_group", ""))
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
