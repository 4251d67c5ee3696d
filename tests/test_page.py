"""hl_jax.highlights.page: the HTML page of a prediction, in Python and in a real browser.

The browser tests drive headless Chromium with Selenium and its ChromeDriver
(Debian: packages chromium and chromium-driver; .ci/run installs them when it
can) and skip, saying why, without them. They load the page from disk
(file://, no server), check that no script or resource error occurs, that
the timeline has one point per segment, that clicking the second moment
seeks the video to its start and plays it to its end (the frame on screen
then is read back from its picture), and that the reel plays as a second
video. The end-to-end test loads the page that hl_jax.predict writes for a
generated video scored by a tiny model trained in the test, and checks the
errors, the timeline, the seek of the second moment and the reel.
Screenshots go to the tests' tmp folders and, from the end-to-end test, to
the file $HL_JAX_PAGE_SCREENSHOT names when it is set.
"""

from __future__ import annotations

import base64
import fractions
import io
import json
import math
import os
import pathlib
import re
import shutil
import tempfile

import numpy as np
import pytest

from hl_jax.highlights import page

import videos

SCREENSHOT_ENV = "HL_JAX_PAGE_SCREENSHOT"
FPS = 10
SEGMENTS = 12  # 1-s segments of a 12-s clip
SCORES = [0.1, 0.3, 0.9, 1.2, 0.8, 0.2, -0.1, 1.5, 1.9, 0.4, 1.0, 0.6]
MOMENTS = [  # rank order, as predict writes them
    {"start_s": 7.0, "end_s": 9.0, "score": 1.7, "start_segment": 7, "end_segment": 9},
    {"start_s": 2.0, "end_s": 4.0, "score": 1.05, "start_segment": 2, "end_segment": 4},
    {"start_s": 10.0, "end_s": 11.0, "score": 1.0, "start_segment": 10, "end_segment": 11},
]


def make_result(video: str | None = None, reel: str | None = None) -> dict:
  """A predict result for one 12-s video, shaped as hl_jax.predict.run writes it."""
  record = {
      "video_id": "clip",
      "num_segments": SEGMENTS,
      "segments_s": [[float(i), float(i + 1)] for i in range(SEGMENTS)],
      "scores": list(SCORES),
      "moments": [dict(m) for m in MOMENTS],
      "timeline_png": "/nonexistent/clip.png",
  }
  if reel is not None:
    record["reel"] = {
        "reel": reel,
        "duration_s": 4.0,
        "spans_s": [[2.0, 4.0], [7.0, 9.0]],
        "codec": "libx264",
        "frames": 40,
        "audio": False,
        "fps": 10.0,
        "size": [320, 180],
    }
  source = {"features": ["/x/clip.i3d.npz"], "extractor": "i3d"}
  if video is not None:
    source["videos"] = [os.path.abspath(video)]
  return {
      "workdir": "/runs/lim",
      "checkpoint_step": 1200,
      "rule": {
          "top_k": 5,
          "min_moment_seconds": 0.0,
          "max_moment_seconds": 10.0,
          "merge_quantile": 0.75,
          "min_gap_seconds": 2.0,
      },
      "videos": [record],
      "source": source,
  }


def polyline_points(text: str) -> np.ndarray:
  """[N, 2] points of the page's score curve."""
  points = re.search(r'<polyline id="curve" points="([^"]*)"', text).group(1)
  return np.array([[float(v) for v in p.split(",")] for p in points.split()])


# ----------------------------------------------------------------------------
# The page as text.


def test_curve_has_one_point_per_segment_at_its_centre():
  text = page.render(make_result())
  points = polyline_points(text)
  assert points.shape == (SEGMENTS, 2)
  # x: segment centres 0.5 .. 11.5 s over the plot box [60, 984] spanning 0 .. 12 s.
  width = page.SVG_WIDTH - 60 - 16
  np.testing.assert_allclose(points[:, 0], 60 + (np.arange(SEGMENTS) + 0.5) / 12 * width, atol=0.01)
  # y grows downwards: the best segment (8) is highest, the worst (6) lowest.
  assert points[:, 1].argmin() == 8 and points[:, 1].argmax() == 6
  assert text.count('class="moment-span"') == 3
  assert text.count('<button type="button" class="moment"') == 3


def test_text_from_the_json_is_escaped():
  result = make_result(video="/v/a<b>.mp4")
  result["videos"][0]["video_id"] = '<script>alert("id")</script>'
  result["workdir"] = "/runs/x&y<z>"
  result["videos"][0]["moments_note"] = "<i>only three</i>"
  text = page.render(result, page_dir="/v")
  assert "<script>alert" not in text and "<i>only" not in text
  assert "&lt;script&gt;alert(&quot;id&quot;)&lt;/script&gt;" in text
  assert "/runs/x&amp;y&lt;z&gt;" in text
  assert "&lt;i&gt;only three&lt;/i&gt;" in text
  assert 'src="a%3Cb%3E.mp4"' in text  # a URL, percent-encoded


def test_media_urls_are_relative_to_the_page_else_file_urls(tmp_path):
  video = tmp_path / "media" / "my clip#1.mp4"
  assert page.media_url(video, tmp_path / "out") == "../media/my%20clip%231.mp4"
  assert (
      page.media_url(video, None)
      == "file://" + str(tmp_path).replace(" ", "%20") + "/media/my%20clip%231.mp4"
  )
  text = page.render(make_result(video=str(video)), page_dir=tmp_path / "out")
  assert '<video id="video" controls preload="auto" src="../media/my%20clip%231.mp4">' in text


def test_fewer_moments_than_top_k_say_why():
  text = page.render(make_result())
  note = re.search(r'<p id="moments-note" class="note">([^<]*)</p>', text).group(1)
  assert note.startswith("3 of top_k = 5 moments") and "min_gap_seconds = 2.0 s" in note
  result = make_result()
  result["videos"][0]["moments_note"] = "the video is too short for more"
  assert '<p id="moments-note" class="note">the video is too short for more</p>' in page.render(
      result
  )
  result = make_result()
  result["rule"]["top_k"] = 3
  assert 'id="moments-note"' not in page.render(result)


def test_header_names_the_run():
  result = make_result()
  result["model_family"] = "less_is_more"
  text = page.render(result)
  for name, value in (
      ("workdir", "/runs/lim"),
      ("checkpoint step", "1200"),
      ("model family", "less_is_more"),
      ("extractor", "i3d"),
  ):
    assert f"<dt>{name}</dt><dd>{value}</dd>" in text


def test_a_reel_shorter_than_asked_says_so():
  result = make_result(reel="/v/clip.reel.mp4")
  result["videos"][0]["reel"]["asked_s"] = 6.0  # the reel lasts 4.0 s
  assert "4.0 s of the 6 s asked (the moments last no longer)" in page.render(result)
  result["videos"][0]["reel"]["asked_s"] = 4.0
  text = page.render(result)
  assert "asked" not in text and "clip.reel.mp4</a>: 4.0 s, from" in text


def test_feature_space_record_is_shown_and_an_override_warned():
  assert "feature space" not in page.render(make_result())
  result = make_result()
  result["feature_space"] = {
      "model": "video_features/i3d_rgb_imagenet",
      "features": "video_features/i3d_rgb_imagenet",
      "status": "same",
      "note": "",
  }
  text = page.render(result)
  assert "<dt>feature space</dt><dd>video_features/i3d_rgb_imagenet</dd>" in text
  assert 'id="feature-space-note"' not in text
  result["feature_space"] |= {
      "features": "hl_jax/i3d_rgb_scratch",
      "status": "override",
      "note": "scored despite the mismatch",
  }
  text = page.render(result)
  assert (
      "<dt>feature space</dt><dd>hl_jax/i3d_rgb_scratch (model trained on "
      "video_features/i3d_rgb_imagenet)</dd>"
  ) in text
  assert (
      '<p id="feature-space-note" class="note warn">Feature space override: scored '
      "despite the mismatch.</p>"
  ) in text


def test_without_a_video_there_is_no_player_but_a_reason():
  text = page.render(make_result())
  assert '<video id="video"' not in text and 'class="missing"' in text
  assert '<video id="reel"' not in text


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: r["videos"][0]["scores"].pop(), "12 segments_s for 11 scores"),
        (lambda r: r["videos"][0]["scores"].__setitem__(3, math.nan), "non-finite"),
        (
            lambda r: r["videos"][0]["moments"][1].__setitem__("start_s", None),
            "moment 2's start_s is None",
        ),
        (lambda r: r["videos"][0].pop("scores"), r"has no \['scores'\]"),
    ],
)
def test_bad_records_are_named(change, message):
  result = make_result()
  change(result)
  with pytest.raises(ValueError, match=message):
    page.render(result)


def test_video_index_out_of_range():
  with pytest.raises(ValueError, match="video_index=1 but the result has 1 videos"):
    page.render(make_result(), 1)


def test_write_page_is_atomic_and_names_pages_like_reels(tmp_path):
  result = make_result()
  written = page.write_page(tmp_path / "out" / "clip.html", result)
  assert written.read_text(encoding="utf-8") == page.render(result, page_dir=written.parent)
  assert sorted(p.name for p in written.parent.iterdir()) == ["clip.html"]
  with pytest.raises(ValueError, match=r"must end in \.html"):
    page.write_page(tmp_path / "clip.json", result)
  second = make_result()["videos"][0] | {"video_id": "other"}
  result["videos"].append(second)
  pages = page.write_pages(tmp_path / "out" / "val.json", result)
  assert [p.name for p in pages] == ["val_clip.html", "val_other.html"]
  assert 'Highlights of <span class="id">other</span>' in pages[1].read_text()
  assert page.write_pages(tmp_path / "one.json", make_result()) == [tmp_path / "one.html"]


# ----------------------------------------------------------------------------
# The page in a real browser.


def _browser_paths() -> tuple[str, str]:
  browser = next(
      filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None
  )
  driver = shutil.which("chromedriver")
  if not browser or not driver:
    pytest.skip(
        "no headless browser: install Debian's chromium and chromium-driver "
        f"(found browser={browser}, chromedriver={driver})"
    )
  return browser, driver


@pytest.fixture(scope="module")
def browser():
  """A headless Chromium driven by Selenium; skips without one."""
  webdriver = pytest.importorskip("selenium.webdriver")
  from selenium.webdriver.chrome import service  # pylint: disable=g-import-not-at-top

  binary, driver_path = _browser_paths()
  options = webdriver.ChromeOptions()
  options.binary_location = binary
  profile = tempfile.mkdtemp(prefix="hl_jax_chromium_")
  # Without the networking flags, Chromium tries to reach Google's hosts; a
  # fresh profile keeps runs apart.
  for flag in (
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--mute-audio",
      "--window-size=1280,1000",
      f"--user-data-dir={profile}",
  ):
    options.add_argument(flag)
  options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
  driver = webdriver.Chrome(options=options, service=service.Service(driver_path))
  # Errors of scripts, promises and resources (capture: they do not bubble).
  driver.execute_cdp_cmd(
      "Page.addScriptToEvaluateOnNewDocument",
      {"source": """
      window.__errors = [];
      addEventListener("error", e => __errors.push(e.message ||
          ("resource " + (e.target && (e.target.src || e.target.href)))), true);
      addEventListener("unhandledrejection", e => __errors.push("rejection " + e.reason));
  """},
  )
  yield driver
  driver.quit()
  shutil.rmtree(profile, ignore_errors=True)


def _encode_clip(stem: pathlib.Path, seconds: float, playable: dict[str, str]) -> pathlib.Path:
  """A clip whose frame n shows n as gray bars (`videos.bars`), in a codec Chromium plays."""
  av = pytest.importorskip("av")
  for codec, suffix, options in (
      ("libx264", ".mp4", {"crf": "18", "preset": "ultrafast"}),
      ("libvpx-vp9", ".webm", {"crf": "20", "b": "0"}),
  ):
    try:
      av.Codec(codec, "w")
    except ValueError:  # UnknownCodecError: this FFmpeg lacks the encoder
      continue
    if playable.get(suffix) != "probably":
      continue
    path = stem.with_name(stem.name + suffix)
    width, height = 320, 180
    with av.open(str(path), "w") as container:
      stream = container.add_stream(codec, rate=FPS)
      stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
      stream.options = options
      stream.codec_context.gop_size = FPS  # a keyframe a second: quick seeks
      for n in range(round(seconds * FPS)):
        frame = av.VideoFrame.from_ndarray(videos.bars(n, width, height), format="rgb24")
        frame.pts, frame.time_base = n, fractions.Fraction(1, FPS)
        container.mux(stream.encode(frame))
      container.mux(stream.encode())
    return path
  pytest.skip(f"this FFmpeg has no encoder for what Chromium plays ({playable})")


def _wait(driver, script: str, what: str, *args, timeout: float = 30):
  from selenium.common import exceptions  # pylint: disable=g-import-not-at-top
  from selenium.webdriver.support import ui  # pylint: disable=g-import-not-at-top

  try:
    return ui.WebDriverWait(driver, timeout, poll_frequency=0.05).until(
        lambda d: d.execute_script(script, *args)
    )
  except exceptions.TimeoutException:
    state = driver.execute_script(
        "const v = document.getElementById('video'); return v && {t: v.currentTime, "
        "ready: v.readyState, paused: v.paused, error: v.error && v.error.message, "
        "status: document.getElementById('status').textContent}"
    )
    pytest.fail(f"timed out after {timeout} s waiting for {what}; video: {state}")


def _click_moment(driver, index: int):
  """Clicks moment button `index`: (the button, the video's seek times since, once it seeked)."""
  driver.execute_script("""
      window.__seeks = [];
      const v = document.getElementById('video');
      v.addEventListener('seeked', () => __seeks.push(v.currentTime));""")
  button = driver.find_elements("css selector", "button.moment")[index]
  button.click()
  return button, _wait(driver, "return __seeks.length && __seeks", "the seek")


def _screenshot(driver, path: pathlib.Path) -> None:
  """The whole page (beyond the window) as a PNG."""
  size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
  shot = driver.execute_cdp_cmd(
      "Page.captureScreenshot",
      {
          "format": "png",
          "captureBeyondViewport": True,
          "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
      },
  )
  path.write_bytes(base64.b64decode(shot["data"]))


def _shown_frame(element) -> int:
  """The frame index `videos.bars` drew, read from a screenshot of the element."""
  from matplotlib import image  # pylint: disable=g-import-not-at-top

  rgb = image.imread(io.BytesIO(element.screenshot_as_png), format="png")[..., :3]
  return videos.frame_index((rgb * 255).round().astype(np.uint8))


def _playable(driver) -> dict[str, str]:
  """{suffix: canPlayType} of the codecs `_encode_clip` can write."""
  driver.get("data:text/html,<video id=v></video>")
  return {
      suffix: driver.execute_script(
          "return document.getElementById('v').canPlayType(arguments[0])", mime
      )
      for suffix, mime in (
          (".mp4", 'video/mp4; codecs="avc1.64000d"'),
          (".webm", 'video/webm; codecs="vp09.00.10.08"'),
      )
  }


def test_page_in_a_browser(browser, tmp_path):
  driver = browser
  playable = _playable(driver)
  media = tmp_path / "media"
  media.mkdir()
  clip = _encode_clip(media / "my clip", SEGMENTS, playable)
  reel = _encode_clip(media / "my clip.reel", 4, playable)
  result = make_result(video=str(clip), reel=str(reel))
  html_path = page.write_page(tmp_path / "out" / "clip.html", result)
  driver.get(html_path.as_uri())
  driver.get_log("browser")  # drop the probe page's messages
  driver.execute_script("window.scrollTo(0, 0)")

  _wait(driver, "return document.getElementById('video').readyState >= 2", "the video")
  duration = driver.execute_script("return document.getElementById('video').duration")
  assert duration == pytest.approx(SEGMENTS, abs=0.15)

  # The timeline as the browser parsed and laid it out.
  curve = driver.execute_script("""
      const c = document.getElementById('curve'), box = c.getBBox();
      return {n: c.points.numberOfItems, width: box.width, height: box.height,
              x0: c.points.getItem(0).x, spans: document.querySelectorAll(
                  '#timeline .moment-span rect').length};""")
  assert curve["n"] == SEGMENTS
  assert curve["width"] > 800 and curve["height"] > 100
  assert curve["x0"] == pytest.approx(60 + 0.5 / 12 * (page.SVG_WIDTH - 76), abs=0.01)
  assert curve["spans"] == len(MOMENTS)

  # Click the second moment: a seek to its start, then play until its end.
  second, seeks = _click_moment(driver, 1)
  start, end = MOMENTS[1]["start_s"], MOMENTS[1]["end_s"]
  assert seeks[0] == pytest.approx(start, abs=0.05)
  assert "active" in second.get_attribute("class")
  _wait(
      driver,
      "const v = document.getElementById('video'); "
      "return !v.paused && v.currentTime > arguments[0] + 0.2",
      "playback",
      start,
      timeout=20,
  )
  _wait(
      driver, "return document.getElementById('video').paused", "the pause at the end", timeout=30
  )
  state = driver.execute_script("""
      const v = document.getElementById('video'), p = document.getElementById('playhead');
      const s = document.getElementById('timeline').dataset;
      return {t: v.currentTime, x: parseFloat(p.getAttribute('x1')),
              left: parseFloat(s.left), width: parseFloat(s.width)};""")
  assert end - 0.05 <= state["t"] <= end + 0.6
  assert (state["x"] - state["left"]) / state["width"] * 12 == pytest.approx(state["t"], abs=0.05)
  # The picture on screen is the frame at that time.
  shown = _shown_frame(driver.find_element("id", "video"))
  assert abs(shown - state["t"] * FPS) <= 1.5, (shown, state["t"])

  # The reel: a second video that loads.
  _wait(driver, "return document.getElementById('reel').readyState >= 1", "the reel")
  assert driver.execute_script("return document.getElementById('reel').duration") == pytest.approx(
      4, abs=0.15
  )

  errors = driver.execute_script("return window.__errors")
  severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
  assert not errors and not severe, (errors, severe)
  _screenshot(driver, tmp_path / "page.png")


def test_page_that_predict_writes_in_a_browser(browser, tiny_workdir, tmp_path):
  """End to end: a video through hl_jax.predict.run to its page, clicked in Chromium."""
  from hl_jax.highlights import moments  # pylint: disable=g-import-not-at-top
  from hl_jax.highlights import predict  # pylint: disable=g-import-not-at-top

  driver = browser
  (tmp_path / "media").mkdir()
  clip = _encode_clip(tmp_path / "media" / "ride", SEGMENTS, _playable(driver))
  out = tmp_path / "out" / "ride.json"
  # Half the segments are high (merge_quantile 0.5), moments at most 2 s with no
  # gap: the 6 high segments cannot all join one moment, so at least two come back.
  result = predict.run(
      tiny_workdir,
      out,
      videos=[str(clip)],
      extractor="untrained",
      extractor_options={"feature_dim": 16, "frame_size": 16},
      segment_seconds=1.0,
      reel_seconds=3,
      rule=moments.MomentRule(top_k=3, max_moment_seconds=2, merge_quantile=0.5, min_gap_seconds=0),
  )
  (record,) = result["videos"]
  assert record["page"] == str(out.with_suffix(".html"))
  assert len(record["moments"]) >= 2 and record["num_segments"] == SEGMENTS
  assert json.loads(out.read_text())["videos"][0]["page"] == record["page"]
  driver.get(pathlib.Path(record["page"]).as_uri())
  driver.get_log("browser")
  driver.execute_script("window.scrollTo(0, 0)")
  _wait(driver, "return document.getElementById('video').readyState >= 2", "the video")

  curve = driver.execute_script("""
      const c = document.getElementById('curve'), box = c.getBBox();
      return {n: c.points.numberOfItems, width: box.width, height: box.height,
              spans: document.querySelectorAll('#timeline .moment-span rect').length};""")
  assert curve["n"] == SEGMENTS and curve["width"] > 800 and curve["height"] > 0
  assert curve["spans"] == len(record["moments"])

  second, seeks = _click_moment(driver, 1)
  assert seeks[0] == pytest.approx(record["moments"][1]["start_s"], abs=0.05)
  assert "active" in second.get_attribute("class")
  if record.get("reel"):
    _wait(driver, "return document.getElementById('reel').readyState >= 1", "the reel")

  errors = driver.execute_script("return window.__errors")
  severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
  assert not errors and not severe, (errors, severe)
  _screenshot(driver, tmp_path / "page.png")
  if os.environ.get(SCREENSHOT_ENV):
    shutil.copyfile(tmp_path / "page.png", os.environ[SCREENSHOT_ENV])


def test_page_without_a_video_in_a_browser(browser, tmp_path):
  """A features or benchmark run: moments and timeline clicks move the playhead."""
  from selenium.webdriver.common import action_chains  # pylint: disable=g-import-not-at-top

  driver = browser
  html_path = page.write_page(tmp_path / "clip.html", make_result())
  driver.get(html_path.as_uri())
  driver.get_log("browser")
  assert driver.find_elements("id", "video") == []

  def playhead_seconds():
    return (
        (float(driver.find_element("id", "playhead").get_attribute("x1")) - 60)
        / (page.SVG_WIDTH - 76)
        * 12
    )

  driver.find_elements("css selector", "button.moment")[1].click()
  assert playhead_seconds() == pytest.approx(MOMENTS[1]["start_s"], abs=0.01)
  # A click on the timeline at 5.5 s, between moments, halfway up the plot.
  svg = driver.find_element("id", "timeline")
  scale = svg.rect["width"] / page.SVG_WIDTH
  x = 60 + 5.5 / 12 * (page.SVG_WIDTH - 76)
  y = 34 + (page.SVG_HEIGHT - 68) / 2
  action_chains.ActionChains(driver).move_to_element_with_offset(
      svg, round((x - page.SVG_WIDTH / 2) * scale), round((y - page.SVG_HEIGHT / 2) * scale)
  ).click().perform()
  assert playhead_seconds() == pytest.approx(5.5, abs=0.05)
  assert driver.find_elements("css selector", "button.moment.active") == []
  errors = driver.execute_script("return window.__errors")
  severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
  assert not errors and not severe, (errors, severe)


def test_time_axis_and_clock_read_like_a_player():
  result = make_result()
  result["videos"][0]["segments_s"] = [[2.0 * i, 2.0 * i + 2] for i in range(SEGMENTS)]
  result["videos"][0]["segments_s"][-1][1] = 200.0  # a 200-s video
  labels = re.findall(r'class="xlabel"[^>]*>([^<]*)<', page.render(result))
  assert labels == ["0:00", "0:30", "1:00", "1:30", "2:00", "2:30", "3:00"]
  assert [page.clock(t) for t in (0.04, 59.96, 61.25, 3600.0, 3725.5)] == [
      "0:00.0",
      "1:00.0",
      "1:01.2",
      "1:00:00.0",
      "1:02:05.5",
  ]
