"""A self-contained HTML page per predicted video: player, timeline, moments, reel.

  result = json.load(open("out/clip.json"))              # hl_jax.predict
  page.write_page("out/clip.html", result)               # the first video
  page.write_pages("out/clip.json", result)              # one page per video

The page plays the source video (an HTML5 <video>, by a path relative to the
page, else a file:// URL); draws its scores as an inline SVG (one point per
segment, at its centre; the moments shaded and numbered by rank; a playhead
that follows the video; a click seeks there); lists the moments (a click
seeks to the moment's start and plays it to its end); shows the highlight
reel as a second <video> when predict wrote one (saying so when it is
shorter than the length asked: only moments go in); and heads it all with the
workdir, checkpoint step, model family, extractor, feature space (a
warning when the features were scored unchecked or despite a mismatch) and
moment rule, saying why when fewer than top_k moments came back ("moments_note" of the video or
of the result, else the rule's reason).

Everything is inline (CSS, JS, SVG): no server, no network. Media files are
referenced where they lie. Text from the JSON (ids, paths) is HTML-escaped.
Pages are written to `<name>.partial` and renamed into place.
"""

from __future__ import annotations

import html
import math
import numbers
import os
import pathlib
from typing import Any, Mapping, Sequence
import urllib.parse

import numpy as np

# The timeline's SVG user units: the plot box sits inside these margins.
SVG_WIDTH, SVG_HEIGHT = 1000, 230
_LEFT, _RIGHT, _TOP, _BOTTOM = 60, 16, 34, 34
_CURVE, _MOMENT = "#1f77b4", "#ff7f0e"  # matplotlib's tab:blue and tab:orange, as the PNG.
# Axis steps: 1, 2 or 5 times a power of ten; on a time axis whole minutes or hours.
_STEPS = (1, 2, 5, 10)
_TIME_STEPS = (15, 30, 60, 120, 300, 600, 900, 1800, 3600)


def _e(value: Any) -> str:
  return html.escape(str(value), quote=True)


def _num(value: float) -> str:
  """A number for an SVG attribute: 2 decimals, no trailing zeros."""
  return f"{value:.2f}".rstrip("0").rstrip(".")


def clock(seconds: float) -> str:
  """`seconds` as m:ss.s (h:mm:ss.s from an hour on)."""
  minutes, tenths = divmod(round(seconds * 10), 600)
  hours, minutes = divmod(minutes, 60)
  secs = f"{tenths / 10:04.1f}"
  return f"{hours}:{minutes:02d}:{secs}" if hours else f"{minutes}:{secs}"


def _ticks(lo: float, hi: float, count: int, time: bool = False) -> np.ndarray:
  """About `count` round values in [lo, hi] (see _STEPS)."""
  raw = (hi - lo) / count
  power = 10.0 ** math.floor(math.log10(raw))
  steps = [m * power for m in _STEPS]
  if time and raw > 10:
    steps = list(_TIME_STEPS) + [3600 * math.ceil(raw / 3600)]
  step = next(s for s in steps if s >= raw)
  return np.arange(math.ceil(lo / step - 1e-9) * step, hi + step * 1e-9, step)


def media_url(target: str | os.PathLike[str], page_dir: str | os.PathLike[str] | None) -> str:
  """How a page in `page_dir` refers to the file `target` (not yet HTML-escaped).

  A relative URL when `page_dir` is given and one exists (always on POSIX),
  else an absolute file:// URL. A relative `target` counts from the current
  directory, as predict wrote it.
  """
  absolute = os.path.abspath(target)
  if page_dir is not None:
    try:
      relative = os.path.relpath(absolute, os.path.abspath(page_dir))
    except ValueError:  # Windows: another drive.
      pass
    else:
      return urllib.parse.quote(relative.replace(os.sep, "/"))
  return pathlib.Path(absolute).as_uri()


def _checked_record(
    result: Mapping[str, Any], video_index: int
) -> tuple[str, np.ndarray, np.ndarray, list[dict[str, float]]]:
  """(video_id, segments [T, 2], scores [T], moments) of one video; ValueError names it."""
  videos = result.get("videos")
  if not isinstance(videos, Sequence) or not videos:
    raise ValueError("result has no 'videos' list; pass what hl_jax.predict returned")
  if not 0 <= video_index < len(videos):
    raise ValueError(f"video_index={video_index} but the result has {len(videos)} videos")
  record = videos[video_index]
  missing = {"video_id", "segments_s", "scores", "moments"} - set(record)
  if missing:
    raise ValueError(
        f"video {video_index} of the result has no {sorted(missing)} " f"(keys: {sorted(record)})"
    )
  video_id = str(record["video_id"])
  try:
    segments = np.asarray(record["segments_s"], np.float64).reshape(-1, 2)
    scores = np.asarray(record["scores"], np.float64).reshape(-1)
  except (TypeError, ValueError) as e:
    raise ValueError(
        f"video {video_id}: segments_s must be [[start, end]] and scores " f"numbers ({e})"
    ) from e
  if not len(scores) or len(segments) != len(scores):
    raise ValueError(
        f"video {video_id}: {len(segments)} segments_s for {len(scores)} "
        "scores, expected the same number > 0"
    )
  if not (np.isfinite(segments).all() and np.isfinite(scores).all()):
    raise ValueError(f"video {video_id}: non-finite segment time or score")
  chosen = [{k: m.get(k) for k in ("start_s", "end_s", "score")} for m in record["moments"]]
  for rank, moment in enumerate(chosen, start=1):
    for key, value in moment.items():
      if not (isinstance(value, numbers.Real) and math.isfinite(value)):
        raise ValueError(
            f"video {video_id}: moment {rank}'s {key} is {value!r}, " "expected a finite number"
        )
      moment[key] = float(value)
  return video_id, segments, scores, chosen


def timeline_svg(
    segments: np.ndarray, scores: np.ndarray, chosen: Sequence[Mapping[str, float]]
) -> str:
  """The inline SVG: score curve, ranked moment spans, axes and a playhead.

  Args:
    segments: [T, 2] start and end seconds of each segment.
    scores: [T] segment scores.
    chosen: moments with "start_s", "end_s" (rank = position + 1).

  Returns:
    An <svg id="timeline"> element whose polyline has T points (segment
    centres); data-t0/t1 (seconds) and data-left/width (SVG units) map time
    to x for the page's script.
  """
  t0 = float(segments[:, 0].min())
  t1 = max(float(segments[:, 1].max()), t0 + 1e-3)
  pad = 0.08 * np.ptp(scores) or 1.0
  lo, hi = float(scores.min()) - pad, float(scores.max()) + pad
  width, height = SVG_WIDTH - _LEFT - _RIGHT, SVG_HEIGHT - _TOP - _BOTTOM

  def x_of(t):
    return _LEFT + (np.asarray(t) - t0) / (t1 - t0) * width

  def y_of(s):
    return _TOP + (hi - np.asarray(s)) / (hi - lo) * height

  parts = [
      f'<svg id="timeline" viewBox="0 0 {SVG_WIDTH} {SVG_HEIGHT}" role="img" '
      f'aria-label="scores over time" data-t0="{t0!r}" data-t1="{t1!r}" '
      f'data-left="{_LEFT}" data-width="{width}">',
      f'<rect class="plot" x="{_LEFT}" y="{_TOP}" width="{width}" height="{height}"/>',
  ]
  for value in _ticks(lo, hi, 4):
    y = _num(float(y_of(value)))
    parts.append(
        f'<line class="grid" x1="{_LEFT}" x2="{_LEFT + width}" y1="{y}" y2="{y}"/>'
        f'<text class="ylabel" x="{_LEFT - 6}" y="{y}">{value:.3g}</text>'
    )
  bottom = _TOP + height
  for value in _ticks(t0, t1, 8, time=True):
    x = _num(float(x_of(value)))
    label = clock(value).rsplit(".", 1)[0] if t1 - t0 >= 60 else f"{value:g} s"
    parts.append(
        f'<line class="tick" x1="{x}" x2="{x}" y1="{bottom}" y2="{bottom + 5}"/>'
        f'<text class="xlabel" x="{x}" y="{bottom + 19}">{_e(label)}</text>'
    )
  for rank, moment in enumerate(chosen, start=1):
    x, x_end = float(x_of(moment["start_s"])), float(x_of(moment["end_s"]))
    # Alternate heights so the labels of neighbouring moments do not collide.
    label_y = _TOP - 6 - 12 * (rank % 2)
    parts.append(
        f'<g class="moment-span" data-rank="{rank}"><title>moment {rank}: '
        f'{clock(moment["start_s"])}-{clock(moment["end_s"])}, score {moment["score"]:.3f}'
        f'</title><rect x="{_num(x)}" y="{_TOP}" width="{_num(max(x_end - x, 1.0))}" '
        f'height="{height}"/>'
        f'<text x="{_num((x + x_end) / 2)}" y="{label_y}">{rank}</text></g>'
    )
  centres = segments.mean(axis=1)
  points = " ".join(
      f"{_num(float(x))},{_num(float(y))}" for x, y in zip(x_of(centres), y_of(scores))
  )
  parts += [
      f'<polyline id="curve" points="{points}"/>',
      f'<line id="playhead" x1="{_LEFT}" x2="{_LEFT}" y1="{_TOP}" y2="{bottom}"/>',
      f'<text class="axis" x="{_LEFT + width / 2}" y="{SVG_HEIGHT - 2}">time</text>',
      f'<text class="axis" transform="translate(14 {_TOP + height / 2}) rotate(-90)">'
      "score f(x)</text></svg>",
  ]
  return "\n".join(parts)


def _moment_list(chosen: Sequence[Mapping[str, float]]) -> str:
  if not chosen:
    return '<p class="empty">No moments.</p>'
  items = [
      f'<li><button type="button" class="moment" data-rank="{rank}" '
      f'data-start="{moment["start_s"]!r}" data-end="{moment["end_s"]!r}">'
      f'<span class="rank">{rank}</span>'
      f'<span class="span">{clock(moment["start_s"])} &ndash; {clock(moment["end_s"])}'
      f'</span><span class="score">{moment["score"]:.3f}</span></button></li>'
      for rank, moment in enumerate(chosen, start=1)
  ]
  return '<ol id="moments">\n' + "\n".join(items) + "\n</ol>"


def _moments_note(result: Mapping[str, Any], record: Mapping[str, Any], count: int) -> str | None:
  """Why fewer than top_k moments came back: the JSON's note, else the rule's reason."""
  note = record.get("moments_note") or result.get("moments_note")
  if note:
    return str(note)
  rule = result.get("rule") or {}
  top_k = rule.get("top_k")
  if top_k is None or count >= int(top_k):
    return None
  return (
      f"{count} of top_k = {top_k} moments: every other segment lies within "
      f"min_gap_seconds = {rule.get('min_gap_seconds', '?')} s of a chosen moment, "
      f"or cannot grow to min_moment_seconds = {rule.get('min_moment_seconds', '?')} "
      "s between them."
  )


def _feature_space(result: Mapping[str, Any]) -> tuple[str | None, str | None]:
  """(header row, warning) of the result's "feature_space" record, if it has one.

  The record, {"model", "features", "status", "note"}, names the space the
  model was trained in and that of the scored features; "status" is "same",
  "unchecked" (a space unknown) or "override" (scored despite a mismatch),
  and the latter two are shown as a warning.
  """
  space = result.get("feature_space")
  if not isinstance(space, Mapping):
    return None, None
  features, model = space.get("features"), space.get("model")
  row = f"{features}" if model in (None, features) else f"{features} (model trained on {model})"
  status = space.get("status")
  warning = None
  if status in ("override", "unchecked"):
    warning = f"Feature space {status}: {space.get('note') or 'see the JSON'}."
  return row, warning


def _header(
    result: Mapping[str, Any],
    record: Mapping[str, Any],
    video_id: str,
    video_path: str | None,
    count: int,
) -> str:
  source = result.get("source") or {}
  rule = result.get("rule") or {}
  benchmark = " ".join(str(source[k]) for k in ("benchmark", "split") if source.get(k))
  rows = [
      ("workdir", result.get("workdir")),
      ("checkpoint step", result.get("checkpoint_step")),
      ("model family", result.get("model_family")),
      ("extractor", source.get("extractor")),
      ("benchmark", benchmark or None),
      ("feature set", source.get("feature_set")),
      ("feature space", _feature_space(result)[0]),
      ("video", video_path),
      ("segments", len(record["scores"])),
      ("rule", ", ".join(f"{k} = {v}" for k, v in rule.items()) or None),
  ]
  items = "".join(
      f"<dt>{_e(name)}</dt><dd>{_e(value)}</dd>" for name, value in rows if value is not None
  )
  note = _moments_note(result, record, count)
  note_html = f'\n<p id="moments-note" class="note">{_e(note)}</p>' if note else ""
  warning = _feature_space(result)[1]
  if warning:
    note_html = f'\n<p id="feature-space-note" class="note warn">{_e(warning)}</p>' + note_html
  return (
      f'<header>\n<h1>Highlights of <span class="id">{_e(video_id)}</span></h1>\n'
      f'<dl class="meta">{items}</dl>{note_html}\n</header>'
  )


def _reel_section(reel: Mapping[str, Any] | None, page_dir: str | None) -> str:
  if not reel or not reel.get("reel"):
    return ""
  spans = ", ".join(f"{clock(a)}&ndash;{clock(b)}" for a, b in reel.get("spans_s", []))
  duration, asked = reel.get("duration_s"), reel.get("asked_s")
  if duration and asked and float(duration) < float(asked) - 0.05:
    # Only the moments go in: shorter than asked rather than padded.
    length = f"{float(duration):.1f} s of the {float(asked):g} s asked (the moments last no longer)"
  else:
    length = f"{float(duration):.1f} s" if duration else None
  facts = [
      length,
      f"from {spans}" if spans else None,
      _e(reel.get("codec") or ""),
      "with sound" if reel.get("audio") else None,
  ]
  caveat = (
      (
          ' <span class="warn">(MPEG-4 Part 2: browsers do not play it; open the file '
          "in a media player)</span>"
      )
      if reel.get("codec") == "mpeg4"
      else ""
  )
  url = _e(media_url(reel["reel"], page_dir))
  return (
      '<section class="reel">\n<h2>Highlight reel</h2>\n'
      f'<video id="reel" controls preload="metadata" src="{url}"></video>\n'
      f'<p class="caption"><a href="{url}">{_e(os.path.basename(reel["reel"]))}</a>: '
      f'{", ".join(f for f in facts if f)}{caveat}</p>\n</section>'
  )


_CSS = """
:root { color-scheme: light dark; --fg: #1b1f24; --muted: #5b6470; --bg: #fff;
  --panel: #f4f6f8; --line: #d5dae0; --curve: CURVE; --moment: MOMENT; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6e8eb; --muted: #9aa3ad;
  --bg: #15181c; --panel: #1f242a; --line: #39414a; } }
body { margin: 0 auto; max-width: 1180px; padding: 16px 20px 40px; color: var(--fg);
  background: var(--bg); font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; }
h1 { font-size: 20px; margin: 0 0 8px; } h1 .id { font-family: ui-monospace, monospace; }
h2 { font-size: 15px; margin: 18px 0 8px; } .list h2 { margin-top: 0; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 0;
  color: var(--muted); } dl.meta dt { font-weight: 600; } dl.meta dd { margin: 0;
  overflow-wrap: anywhere; font-family: ui-monospace, monospace; font-size: 12.5px; }
.note { margin: 10px 0 0; padding: 6px 10px; border-left: 3px solid var(--moment);
  background: var(--panel); } h2 a { font-weight: normal; font-size: 13px; }
.top { display: grid; grid-template-columns: minmax(0, 2fr) minmax(240px, 1fr); gap: 18px;
  align-items: start; margin-top: 16px; }
@media (max-width: 760px) { .top { grid-template-columns: 1fr; } }
video { width: 100%; max-height: 60vh; background: #000; border-radius: 4px; }
.missing, .status { color: var(--muted); background: var(--panel); padding: 10px; }
.status:empty { display: none; } .caption { color: var(--muted); } .warn { color: #d62728; }
.reel video { max-width: 640px; } ol#moments { list-style: none; margin: 0; padding: 0; }
button.moment { display: grid; grid-template-columns: 2.2em 1fr auto; width: 100%;
  align-items: center; gap: 8px; margin: 0 0 6px; padding: 7px 10px; cursor: pointer;
  font: inherit; color: inherit; text-align: left; background: var(--panel);
  border: 1px solid var(--line); border-radius: 4px; font-variant-numeric: tabular-nums; }
button.moment:hover, button.moment.active { border-color: var(--moment); }
button.moment.active { box-shadow: inset 3px 0 0 var(--moment); }
button.moment .rank { font-weight: 700; color: var(--moment); }
button.moment .score { color: var(--muted); }
svg#timeline { width: 100%; height: auto; display: block; cursor: crosshair; }
svg .plot { fill: var(--panel); stroke: var(--line); } svg .tick { stroke: var(--muted); }
svg .grid { stroke: var(--line); stroke-dasharray: 2 3; }
svg text { fill: var(--muted); font-size: 12px; } svg .xlabel, svg .axis { text-anchor: middle; }
svg .ylabel { text-anchor: end; dominant-baseline: middle; }
svg .moment-span rect { fill: var(--moment); fill-opacity: 0.25; cursor: pointer; }
svg .moment-span.active rect { fill-opacity: 0.45; } * { box-sizing: border-box; }
svg .moment-span text { fill: var(--fg); font-weight: 700; text-anchor: middle; }
svg #curve { fill: none; stroke: var(--curve); stroke-width: 1.6; stroke-linejoin: round; }
svg #playhead { stroke: #d62728; stroke-width: 2; pointer-events: none; }
""".replace("CURVE", _CURVE).replace("MOMENT", _MOMENT)

# Seeks and plays moments, follows the video with the playhead. Works without a
# video too (benchmark runs): then clicks only move the playhead.
_JS = """
(() => {
  "use strict";
  const [video, svg, playhead, status] = ["video", "timeline", "playhead", "status"].map(
      id => document.getElementById(id));
  const buttons = Array.from(document.querySelectorAll("button.moment"));
  const spans = Array.from(svg.querySelectorAll(".moment-span"));
  const t0 = parseFloat(svg.dataset.t0), t1 = parseFloat(svg.dataset.t1);
  const left = parseFloat(svg.dataset.left), width = parseFloat(svg.dataset.width);
  let moment = null;  // {start, end} being played: pause at its end.

  function showTime(t) {
    const x = (left + (Math.min(Math.max(t, t0), t1) - t0) / (t1 - t0) * width).toFixed(2);
    for (const end of ["x1", "x2"]) playhead.setAttribute(end, x);
  }
  function mark(rank) {
    for (const el of buttons.concat(spans)) el.classList.toggle("active", el.dataset.rank === rank);
  }
  function tick() {
    const t = video.currentTime;
    // A seek outside the moment (the user's) ends it.
    if (moment && (t < moment.start - 0.5 || t > moment.end + 0.5)) moment = null;
    if (moment && t >= moment.end) { video.pause(); moment = null; }
    showTime(t);
  }
  function seek(t, end) {
    showTime(t);
    if (!video) return;
    moment = end === null ? null : {start: t, end: end};
    video.currentTime = t;
    if (end !== null) video.play().catch(err => { status.textContent = "Cannot play: " + err; });
  }
  function playMoment(rank) {
    const button = buttons.find(b => b.dataset.rank === rank);
    mark(rank);
    seek(parseFloat(button.dataset.start), parseFloat(button.dataset.end));
  }
  for (const b of buttons) b.addEventListener("click", () => playMoment(b.dataset.rank));
  for (const s of spans) {
    s.addEventListener("click", event => { event.stopPropagation(); playMoment(s.dataset.rank); });
  }
  svg.addEventListener("click", event => {
    const point = svg.createSVGPoint();
    [point.x, point.y] = [event.clientX, event.clientY];
    const x = point.matrixTransform(svg.getScreenCTM().inverse()).x;
    mark(null);
    seek(t0 + Math.min(Math.max((x - left) / width, 0), 1) * (t1 - t0), null);
  });
  if (!video) return;
  const frame = () => { tick(); if (!video.paused) requestAnimationFrame(frame); };
  video.addEventListener("play", () => requestAnimationFrame(frame));
  for (const name of ["timeupdate", "seeked", "loadedmetadata"]) video.addEventListener(name, tick);
  video.addEventListener("error", () => {
    status.textContent = "Cannot load the video " + video.getAttribute("src") +
        " (moved, or in a format this browser does not play).";
  });
})();
"""


def render(
    result: Mapping[str, Any],
    video_index: int = 0,
    *,
    page_dir: str | os.PathLike[str] | None = None,
    video_path: str | os.PathLike[str] | None = None,
) -> str:
  """The HTML page of one video of a `hl_jax.predict` result.

  Args:
    result: what `hl_jax.predict.run` returned or wrote ("workdir",
      "checkpoint_step", "rule", "source", "videos": [{"video_id",
      "segments_s" [T, 2], "scores" [T], "moments", optional "reel",
      "timeline_png", "moments_note"}]).
    video_index: which of result["videos"].
    page_dir: the folder the page will be in: media are referenced relative
      to it (None: absolute file:// URLs).
    video_path: the video to play (None: result["source"]["videos"][video_index]
      when predict read videos, else no player).

  Returns:
    The page, one self-contained HTML document.

  Raises:
    ValueError: naming the video, for a video_index out of range, missing
      keys, lengths that disagree or non-finite numbers.
  """
  video_id, segments, scores, chosen = _checked_record(result, video_index)
  record = result["videos"][video_index]
  source_videos = (result.get("source") or {}).get("videos") or []
  if video_path is None and video_index < len(source_videos):
    video_path = source_videos[video_index]
  video_path = None if video_path is None else os.fspath(video_path)
  if video_path is not None:
    player = (
        f'<video id="video" controls preload="auto" '
        f'src="{_e(media_url(video_path, page_dir))}"></video>'
    )
  else:
    player = (
        '<p class="missing">No video file for this run (it scored features): '
        "clicks move the playhead only.</p>"
    )
  png = record.get("timeline_png")
  png_link = f' <a class="png" href="{_e(media_url(png, page_dir))}">(PNG)</a>' if png else ""
  return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(video_id)}: highlights</title>
<style>{_CSS}</style>
</head>
<body>
{_header(result, record, video_id, video_path, len(chosen))}
<div class="top">
<section class="player">\n{player}\n<p id="status" class="status"></p>\n</section>
<section class="list">\n<h2>Moments, by rank</h2>\n{_moment_list(chosen)}\n</section>
</div>
<section class="scores">\n<h2>Scores over time{png_link}</h2>
{timeline_svg(segments, scores, chosen)}\n</section>
{_reel_section(record.get("reel"), page_dir)}
<script>{_JS}</script>
</body>
</html>
"""


def write_page(
    path: str | os.PathLike[str],
    result: Mapping[str, Any],
    video_index: int = 0,
    *,
    video_path: str | os.PathLike[str] | None = None,
) -> pathlib.Path:
  """Writes `render`'s page for one video to `path` (atomically); returns the path.

  Media are referenced relative to `path`'s folder (see `render`).
  """
  path = pathlib.Path(path)
  if path.suffix not in (".html", ".htm"):
    raise ValueError(f"page {path} must end in .html")
  text = render(result, video_index, page_dir=path.parent, video_path=video_path)
  path.parent.mkdir(parents=True, exist_ok=True)
  partial = path.with_name(path.name + ".partial")
  partial.write_text(text, encoding="utf-8")
  os.replace(partial, path)
  return path


def page_path(output: str | os.PathLike[str], video_id: str, num_videos: int) -> pathlib.Path:
  """Named like predict's reels: out/clip.json -> out/clip.html, or out/<stem>_<id>.html."""
  output = pathlib.Path(output)
  if num_videos == 1:
    return output.with_suffix(".html")
  return output.with_name(f"{output.stem}_{video_id}.html")


def write_pages(
    output: str | os.PathLike[str], result: Mapping[str, Any], *, max_pages: int | None = None
) -> list[pathlib.Path]:
  """Pages of the first `max_pages` (None: all) videos beside predict's JSON `output`."""
  videos = result.get("videos") or []
  count = len(videos) if max_pages is None else min(max_pages, len(videos))
  return [
      write_page(page_path(output, str(videos[i]["video_id"]), len(videos)), result, i)
      for i in range(count)
  ]
