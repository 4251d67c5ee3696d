"""Features of video files, extracted once and cached by what made them.

`hl_jax.predict --video` scores raw videos through this: the features of
video V are written next to the predictions as `<V's stem>.<extractor>.npz`
(the `hl_jax.video_features` format) and reused on the next run when the
extractor and decoding that wrote them are the ones asked for
(`features_file.read_signature` equals `Extractor.signature()`); otherwise,
or when the file is missing, the video is extracted again. All videos to
extract go through one `video_features.extract_many` (batches across videos).
"""

from __future__ import annotations

import os
import pathlib
import time
from typing import Any, Sequence

from absl import logging

from hl_jax.core import cli
from hl_jax.data import features_file
from hl_jax.video import extraction
from hl_jax.video import extractors


def features_for_videos(
    videos: Sequence[str],
    folder: str | os.PathLike[str],
    *,
    extractor: str = extractors.DEFAULT_EXTRACTOR,
    segment_seconds: float | None = None,
    extractor_options: dict[str, Any] | None = None,
) -> list[pathlib.Path]:
  """Features files of video files, extracted once and cached in `folder`.

  The cache of video V is `<folder>/<V's stem>.<extractor>.npz`; it is
  reused when the extractor and decoding that wrote it are the ones asked for
  (`features_file.read_signature`), else the video is extracted again. Videos
  not in the cache are extracted together (`video_features.extract_many`).

  Returns:
    The features file of each video, in order.
  """
  stems = [pathlib.Path(v).stem for v in videos]
  if len(set(stems)) != len(stems):
    raise ValueError(f"videos with the same file stem: {sorted(stems)}")
  for video in videos:
    if not os.path.isfile(video):
      raise FileNotFoundError(f"--video={video}: no such file")
  options = dict(extractor_options or {})
  if segment_seconds is not None:
    options["segment_seconds"] = segment_seconds
  caches = [pathlib.Path(folder) / f"{stem}.{extractor}.npz" for stem in stems]
  todo = [i for i, cache in enumerate(caches) if not cache.is_file()]
  made = None
  if len(todo) < len(videos):  # some cached: are they of this extractor?
    made = extractors.make_extractor(extractor, **options)
    signature = made.signature()
    todo = [i for i, cache in enumerate(caches) if features_file.read_signature(cache) != signature]
  if todo:
    made = made or extractors.make_extractor(extractor, **options)
    logging.info("extracting %s features of %d videos (%s)", extractor, len(todo), made.description)
    start, segments = time.perf_counter(), 0
    for done, result in enumerate(extraction.extract_many([videos[i] for i in todo], made)):
      index = todo[result.index]
      segments += 0 if result.features is None else len(result.features)
      elapsed = time.perf_counter() - start
      logging.info(
          "%d/%d videos extracted (%s), %d segments, %.2f segments/s",
          done + 1,
          len(todo),
          videos[index],
          segments,
          segments / max(elapsed, 1e-9),
      )
      if result.error is not None:
        raise ValueError(f"{videos[index]}: {cli.message(result.error)}") from result.error
      extraction.write_features(caches[index], result, made, videos[index])
  return caches
