"""Which release of a benchmark a manual_dir holds, and where it keeps its files.

The YouTube Highlights and TVSum builders read three layouts of the same data
(<name> is the release's own name for the benchmark):

  staged      our re-layout (../shared/data/<benchmark>/, see its PROVENANCE.txt):
              labels/umt_<name>_anno.json, splits/umt_<name>_splits.json,
              features_umt_f16/<kind>/<vid>.npz (key "features", or <vid>.npy).
  umt         UMT's data release (TencentARC/UMT README): <name>_anno.json,
              video_features/<vid>_rgb.npy and <vid>_opt.npy (I3D),
              audio_features/<vid>.npy (PANN), TVSum also query_features/<vid>.npz
              (CLIP title), in manual_dir or manual_dir/data/<name>/. UMT ships no
              split file: the split is UMT's code, copied in `umt_splits`.
  lighthouse  a line/lighthouse checkout with its feature download: the
              annotations data/<name>/<name>_{train,val}_release.jsonl (the
              split) and features/<name>/<kind>/<vid>.npz (key "features").

`open_release` picks one: "auto" detects it (exactly one layout's marker file
must be present), "staged" / "umt" / "lighthouse" insists on one. The choice
is a builder argument (`Builder(layout=...)`, default "auto"), not a
BuilderConfig: configs are feature sets, a layout is only where a release
keeps the same benchmark, and configs per (feature set, layout) pair would
multiply names and data folders. Built from any layout, a config's examples
are the same except where a release lacks data (lighthouse lists fewer
YouTube Highlights videos and no TVSum fps / frames); the layout a dataset
was built from is recorded in its DatasetInfo metadata (`METADATA_KEY`).
Both builders are `ReleaseBuilder`s: the layout argument, opening the release
and the split ids are written once, here.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterator, Mapping, Sequence

from absl import logging
from etils import epath
import tensorflow_datasets as tfds

from tfds_builders import umt_release

LAYOUTS = ("staged", "umt", "lighthouse")
CHOICES = ("auto",) + LAYOUTS
METADATA_KEY = "layout"
# A feature file: path template (with {vid}) and npz key (None: a .npy file).
FileSpec = tuple[str, "str | None"]
UMT_KINDS = {
    "i3d_rgb": "video_features/{vid}_rgb.npy",
    "i3d_flow": "video_features/{vid}_opt.npy",
    "pann_audio": "audio_features/{vid}.npy",
}


@dataclasses.dataclass(frozen=True)
class Labels:
  """A release's annotations, in the form of UMT's *_anno.json.

  Attributes:
    entries: {video_id: annotation with UMT's keys (domain; fps, frames, clip,
      match for YouTube Highlights; title, anno, fps, frames for TVSum)}.
    sources: {video_id: the file its annotation came from}.
    splits: {group: {"train": ids, "val": ids}}, annotated ids only.
  """

  entries: dict[str, dict[str, Any]]
  sources: dict[str, epath.Path]
  splits: dict[str, dict[str, list[str]]]


@dataclasses.dataclass(frozen=True)
class Layout:
  """Where one release keeps one benchmark's files.

  Attributes:
    name: one of LAYOUTS.
    marker: a file, relative to the release's root, that identifies the layout.
    roots: where the root may be, relative to manual_dir ("": manual_dir
      itself), tried in order.
    read_labels: root -> Labels.
    kinds: {feature kind it ships: candidate files, the first present wins}.
    title: path template of the title features (.npz, keys "token" and
      "text"), or None.
    missing: annotation fields the release does not carry.
    expects: one line naming the files it expects.
  """

  name: str
  marker: str
  roots: tuple[str, ...]
  read_labels: Callable[[epath.Path], Labels]
  kinds: Mapping[str, tuple[FileSpec, ...]]
  expects: str
  title: str | None = None
  missing: tuple[str, ...] = ()

  def find_root(self, manual_dir: epath.Path) -> epath.Path | None:
    """The release's root inside `manual_dir`, or None if the marker is absent."""
    for sub in self.roots:
      root = manual_dir / sub if sub else manual_dir
      if (root / self.marker).is_file():
        return root
    return None

  def can_build(self, config: umt_release.FeatureSetConfig) -> bool:
    return all(kind in self.kinds for kind in config.kinds)


@dataclasses.dataclass(frozen=True)
class Release:
  """One benchmark's release, opened: its layout, root and annotations."""

  layout: Layout
  root: epath.Path
  labels: Labels

  def feature_paths(self, kind: str, video_id: str) -> list[epath.Path]:
    return [self.root / t.format(vid=video_id) for t, _ in self.layout.kinds[kind]]

  def feature_file(self, kind: str, video_id: str) -> tuple[epath.Path, str | None] | None:
    """(path, npz key or None) of one video's `kind` features, or None if absent."""
    for path, (_, key) in zip(
        self.feature_paths(kind, video_id), self.layout.kinds[kind], strict=True
    ):
      if path.is_file():
        return path, key
    return None

  def has_any_features(self, video_id: str) -> bool:
    """Whether the release has a feature file of any kind for this video."""
    return any(self.feature_file(kind, video_id) for kind in self.layout.kinds)

  def title_file(self, video_id: str) -> epath.Path:
    if self.layout.title is None:
      raise ValueError(f"the {self.layout.name} layout has no title features")
    return self.root / self.layout.title.format(vid=video_id)


def _umt_labels(path: epath.Path, load_splits: Callable[[], Any], where: str) -> Labels:
  """Labels from a UMT *_anno.json and a split (a parsed file, or UMT's literal)."""
  entries = umt_release.load_json(path)
  if not isinstance(entries, dict):
    raise ValueError(
        f"{path}: expected {{video_id: annotation}}, not a JSON " f"{type(entries).__name__}"
    )
  return Labels(
      entries=entries,
      sources={v: path for v in entries},
      splits=umt_release.check_splits(load_splits(), where, set(entries)),
  )


def staged(name: str, kinds: Sequence[str], title_dir: str | None = None) -> Layout:
  """Our re-layout: UMT's annotations and split as files, features as float16 npz."""
  anno, splits = f"labels/umt_{name}_anno.json", f"splits/umt_{name}_splits.json"

  def read_labels(root: epath.Path) -> Labels:
    return _umt_labels(
        root / anno, lambda: umt_release.load_json(root / splits), str(root / splits)
    )

  files = {
      k: (
          (f"features_umt_f16/{k}/{{vid}}.npz", "features"),
          (f"features_umt_f16/{k}/{{vid}}.npy", None),
      )
      for k in kinds
  }
  title = f"features_umt_f16/{title_dir}/{{vid}}.npz" if title_dir else None
  expects = f"{anno}, {splits}, features_umt_f16/{{{','.join(kinds)}}}/<vid>.npz" + (
      f", features_umt_f16/{title_dir}/<vid>.npz" if title_dir else ""
  )
  return Layout(
      name="staged",
      marker=anno,
      roots=("",),
      read_labels=read_labels,
      kinds=files,
      title=title,
      expects=expects,
  )


def umt(
    name: str, splits: Mapping[str, Mapping[str, Sequence[str]]], title: bool = False
) -> Layout:
  """UMT's release of `name` ("youtube" or "tvsum"); `splits` is UMT's literal."""
  anno = f"{name}_anno.json"

  def read_labels(root: epath.Path) -> Labels:
    return _umt_labels(root / anno, lambda: splits, "UMT's split (tfds_builders/umt_splits.py)")

  expects = (
      f"[data/{name}/]{anno}, video_features/<vid>_{{rgb,opt}}.npy, "
      "audio_features/<vid>.npy" + (", query_features/<vid>.npz" if title else "")
  )
  return Layout(
      name="umt",
      marker=anno,
      roots=("", f"data/{name}"),
      read_labels=read_labels,
      kinds={k: ((t, None),) for k, t in UMT_KINDS.items()},
      title="query_features/{vid}.npz" if title else None,
      expects=expects,
  )


def lighthouse(
    name: str,
    to_entry: Callable[[dict[str, Any], str, epath.Path], dict[str, Any]],
    i3d: bool = False,
    title: bool = False,
    missing: tuple[str, ...] = (),
) -> Layout:
  """lighthouse's release of `name` ("youtube_highlight" or "tvsum").

  Args:
    name: lighthouse's dataset name (its data/ and features/ folders).
    to_entry: (jsonl row, video id, file) -> annotation in UMT's form.
    i3d: whether features/<name>/i3d/ holds UMT's I3D files (TVSum).
    title: whether features/<name>/clip_text/<vid>.npz holds the title's
      CLIP tokens in UMT's keys (TVSum).
    missing: annotation fields that lighthouse's rows lack.
  """
  jsonl = {s: f"data/{name}/{name}_{s}_release.jsonl" for s in ("train", "val")}

  def read_labels(root: epath.Path) -> Labels:
    entries, sources = {}, {}
    raw: dict[str, dict[str, list[str]]] = {}
    for split, relative in jsonl.items():
      path = root / relative
      for row in umt_release.load_jsonl(path):
        vid = umt_release.field(row, "?", "vid", path)
        if not isinstance(vid, str) or row.get("qid", vid) != vid:
          raise ValueError(
              f"{path}: row of vid {vid!r} has qid {row.get('qid')!r}; "
              "expected one row per video, qid = vid"
          )
        if vid in entries:
          raise ValueError(f"video {vid}: listed in {sources[vid]} and again in {path}")
        entries[vid], sources[vid] = to_entry(row, vid, path), path
        domain = umt_release.field(entries[vid], vid, "domain", path)
        raw.setdefault(domain, {"train": [], "val": []})[split].append(vid)
    where = " and ".join(str(root / p) for p in jsonl.values())
    return Labels(
        entries=entries, sources=sources, splits=umt_release.check_splits(raw, where, set(entries))
    )

  kinds = {
      k: ((f"features/{name}/i3d/{{vid}}_{suffix}.npy", None),)
      for k, suffix in (("i3d_rgb", "rgb"), ("i3d_flow", "opt"))
      if i3d
  }
  kinds.update(
      {k: ((f"features/{name}/{k}/{{vid}}.npz", "features"),) for k in ("clip", "slowfast")}
  )
  expects = (
      f"data/{name}/{name}_{{train,val}}_release.jsonl, "
      + (f"features/{name}/i3d/<vid>_{{rgb,opt}}.npy, " if i3d else "")
      + f"features/{name}/{{clip,slowfast{',clip_text' if title else ''}}}/<vid>.npz"
  )
  return Layout(
      name="lighthouse",
      marker=jsonl["train"],
      roots=("",),
      read_labels=read_labels,
      kinds=kinds,
      title=f"features/{name}/clip_text/{{vid}}.npz" if title else None,
      missing=missing,
      expects=expects,
  )


def check_choice(choice: str) -> None:
  """Raises a one-line ValueError unless `choice` is one of CHOICES."""
  if choice not in CHOICES:
    raise ValueError(f"unknown layout {choice!r}; expected one of {list(CHOICES)}")


def describe(layouts: Mapping[str, Layout]) -> str:
  """One line: the files each layout expects."""
  return "; ".join(f"{name}: {layout.expects}" for name, layout in layouts.items())


def check_buildable(
    layout: Layout,
    config: umt_release.FeatureSetConfig,
    dataset: str,
    feature_sets: Sequence[umt_release.FeatureSetConfig],
) -> None:
  """Raises a one-line ValueError if `layout` lacks a feature kind of `config`."""
  lacking = [k for k in config.kinds if k not in layout.kinds]
  if lacking:
    can = [c.name for c in feature_sets if layout.can_build(c)]
    raise ValueError(
        f"{dataset}/{config.name} cannot be built from the {layout.name} "
        f"layout: it has no {', '.join(lacking)} features (it ships "
        f"{', '.join(layout.kinds)}; configs it can build: {', '.join(can)})"
    )


def open_release(
    layouts: Mapping[str, Layout],
    manual_dir: epath.PathLike,
    choice: str,
    config: umt_release.FeatureSetConfig,
    dataset: str,
    feature_sets: Sequence[umt_release.FeatureSetConfig],
) -> Release:
  """Finds the layout of `manual_dir` (or checks `choice`) and reads its annotations.

  Args:
    layouts: the benchmark's layouts by name.
    manual_dir: the folder the user points at.
    choice: "auto" or one of LAYOUTS.
    config: the feature set to build.
    dataset: the benchmark's name, for messages.
    feature_sets: every config, to say which ones the layout can build.

  Returns:
    The opened release.

  Raises:
    FileNotFoundError: no layout found, or not the chosen one (one line
      naming the files each layout expects).
    ValueError: files of several layouts (with "auto"), or a layout that
      lacks a feature kind of `config`.
  """
  check_choice(choice)
  manual_dir = epath.Path(manual_dir)
  found = {
      n: root for n, layout in layouts.items() if (root := layout.find_root(manual_dir)) is not None
  }
  if choice == "auto":
    if not found:
      raise FileNotFoundError(
          f"{manual_dir} holds no {dataset} layout that this builder "
          f"reads; it expects one of: {describe(layouts)}"
      )
    if len(found) > 1:
      raise ValueError(
          f"{manual_dir} holds files of several {dataset} layouts "
          f"({', '.join(found)}); choose one with layout=..."
      )
    choice = next(iter(found))
  elif choice not in found:
    raise FileNotFoundError(
        f"{manual_dir} is not {dataset}'s {choice} layout, which "
        f"expects {layouts[choice].expects}"
    )
  layout = layouts[choice]
  check_buildable(layout, config, dataset, feature_sets)
  logging.info("%s/%s: reading the %s layout in %s", dataset, config.name, choice, found[choice])
  return Release(layout=layout, root=found[choice], labels=layout.read_labels(found[choice]))


def built_from(builder: Any) -> str | None:
  """The layout a prepared dataset was built from, or None if it is not built.

  Datasets built before the layout was recorded could only come from the
  staged layout.
  """
  if not builder.is_prepared():
    return None
  return (builder.info.metadata or {}).get(METADATA_KEY, "staged")


def check_prepared(builder: Any, choice: str) -> None:
  """Raises if `builder`'s data_dir holds the dataset built from another chosen layout."""
  recorded = built_from(builder)
  if choice != "auto" and recorded not in (None, choice):
    raise ValueError(
        f"{builder.data_dir} holds {builder.name}/{builder.builder_config.name} "
        f"built from the {recorded} layout, not {choice}: read it with "
        f"layout='auto' or build into another data_dir"
    )


class ReleaseBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """A benchmark's builder that reads whichever of its `LAYOUTS` manual_dir holds.

  A subclass sets `LAYOUTS` ({name: Layout}) and `BUILDER_CONFIGS` (feature
  sets), gets a release from `_open_release` and its split ids from
  `_split_ids`, and turns a video of it into an example with `_example`.
  """

  LAYOUTS: Mapping[str, Layout] = {}

  def __init__(self, *, layout: str = "auto", **kwargs: Any):
    """A builder that reads the release in manual_dir.

    Args:
      layout: "auto" (detect it from manual_dir's files) or one of
        `LAYOUTS`; a data_dir that holds this config built from
        another layout is refused.
      **kwargs: DatasetBuilder's (config, data_dir, file_format, version).
    """
    check_choice(layout)
    super().__init__(**kwargs)
    self._original_state["layout"] = layout  # survives pickling
    self.layout = layout
    check_prepared(self, layout)

  def _open_release(self, manual_dir: epath.PathLike) -> Release:
    """The release in `manual_dir`; its layout is recorded in the dataset's metadata."""
    release = open_release(
        self.LAYOUTS,
        manual_dir,
        self.layout,
        self.builder_config,
        self.name,
        self.BUILDER_CONFIGS,
    )
    self.info.metadata[METADATA_KEY] = release.layout.name
    return release

  def _split_ids(self, release: Release) -> dict[str, list[str]]:
    """{"train", "val": the split's ids; "other": annotated videos outside it}."""
    labels = release.labels
    umt_release.check_groups(labels.splits, labels.entries, "domain", labels.sources)
    ids = {s: [v for group in labels.splits.values() for v in group[s]] for s in ("train", "val")}
    # TFDS's split="all" is train+val+other.
    ids["other"] = sorted(set(labels.entries) - set(ids["train"]) - set(ids["val"]))
    return ids

  def _generate_examples(
      self, release: Release, video_ids: list[str]
  ) -> Iterator[tuple[str, dict[str, Any]]]:
    for vid in video_ids:
      yield vid, self._example(release, vid)

  def _example(self, release: Release, vid: str) -> dict[str, Any]:
    raise NotImplementedError
