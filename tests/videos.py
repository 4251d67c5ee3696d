"""Synthetic test videos whose pictures and sound say what time it is.

`make_video` writes a video (PyAV, lossless H.264 when FFmpeg has libx264)
whose frame n shows n as three gray bars, the base-16 digits of n from left to
right (digit d is gray level 16 d + 8, so it survives compression, scaling and
chroma subsampling). `frame_index` reads the number back from a decoded RGB
frame of any size. The optional audio track is a sine whose frequency says
which second it is: `tone_hz(t)` = 250 (1 + floor(t)) Hz; `dominant_hz` finds
it again in decoded samples.

Tests import this module by name (pytest puts tests/ on sys.path, as tests are
not a package):

  import videos
  videos.make_video(tmp_path / "v.mp4", seconds=10, fps=fractions.Fraction(30000, 1001))
"""

from __future__ import annotations

import fractions
import math
import os

import av
import numpy as np

BASE = 16
DIGITS = 3  # frame indices up to 16**3 - 1 = 4095
AUDIO_RATE = 16000
PATTERNS = ("bars",)


def tone_hz(seconds: float) -> float:
  """The audio track's frequency at `seconds`: 250 Hz times the second's number."""
  return 250.0 * (1 + math.floor(seconds))


def _rate(fps: float | fractions.Fraction) -> fractions.Fraction:
  # 12.5 -> 25/2, Fraction(30000, 1001) stays, 29.97 -> 2997/100.
  return fractions.Fraction(fps).limit_denominator(1001)


def bars(index: int, width: int, height: int) -> np.ndarray:
  """[H, W, 3] uint8: frame `index` as DIGITS gray bars (base-16 digits)."""
  if not 0 <= index < BASE**DIGITS:
    raise ValueError(f"frame index {index} does not fit {DIGITS} base-{BASE} digits")
  image = np.empty((height, width, 3), np.uint8)
  edges = np.linspace(0, width, DIGITS + 1).round().astype(int)
  for k in range(DIGITS):
    digit = index // BASE ** (DIGITS - 1 - k) % BASE
    image[:, edges[k] : edges[k + 1]] = 16 * digit + 8
  return image


def frame_index(rgb: np.ndarray) -> int:
  """The frame index that `bars` drew into [H, W, 3] `rgb` (any size)."""
  height, width = rgb.shape[:2]
  index = 0
  for k in range(DIGITS):
    x = int((k + 0.5) * width / DIGITS)
    level = float(rgb[height // 2, x].mean())
    index = index * BASE + int(np.clip(round((level - 8) / 16), 0, BASE - 1))
  return index


def _video_encoder() -> tuple[str, dict[str, str]]:
  try:
    av.Codec("libx264", "w")
    return "libx264", {"qp": "0", "preset": "ultrafast"}
  except ValueError:  # UnknownCodecError: this FFmpeg has no libx264
    return "mpeg4", {"qscale": "1"}


def _sine(seconds: float) -> np.ndarray:
  """[1, N] float32 samples of the `tone_hz` sine, N = seconds * AUDIO_RATE."""
  t = np.arange(round(seconds * AUDIO_RATE)) / AUDIO_RATE
  freq = 250.0 * (1 + np.floor(t))
  # Phase continuous across the changes of frequency.
  phase = 2 * np.pi * np.cumsum(freq) / AUDIO_RATE
  return (0.5 * np.sin(phase)).astype(np.float32)[None]


def make_video(
    path: str | os.PathLike[str],
    *,
    seconds: float,
    fps: float | fractions.Fraction,
    size: tuple[int, int] = (96, 64),
    audio: bool = False,
    audio_seconds: float | None = None,
    pattern: str = "bars",
    keyframe_every: int | None = None,
    container_format: str | None = None,
) -> str:
  """Encodes a synthetic video: frame n shows `bars(n)`, optional sine audio.

  Args:
    path: output file (.mp4, .mkv, ...; a raw stream with container_format).
    seconds: video length; round(seconds * fps) frames, frame n at n / fps.
    fps: frame rate (float, int or Fraction, e.g. Fraction(30000, 1001)).
    size: (width, height), even numbers.
    audio: add a mono AAC track of `tone_hz` sines.
    audio_seconds: its length (default: `seconds`).
    pattern: what frames show; "bars" (the index's digits) is the only one.
    keyframe_every: frames per group of pictures (default: the encoder's).
    container_format: FFmpeg format name (default: from the file name).

  Returns:
    The path, as a string.
  """
  if pattern not in PATTERNS:
    raise ValueError(f"pattern={pattern!r}; expected one of {PATTERNS}")
  rate = _rate(fps)
  width, height = size
  codec, options = _video_encoder()
  with av.open(os.fspath(path), "w", format=container_format) as container:
    video = container.add_stream(codec, rate=rate)
    video.width, video.height, video.pix_fmt = width, height, "yuv420p"
    video.options = options
    if keyframe_every:
      video.codec_context.gop_size = keyframe_every
    sound = None
    if audio:
      sound = container.add_stream("aac", rate=AUDIO_RATE, layout="mono")
    for n in range(round(seconds * rate)):
      frame = av.VideoFrame.from_ndarray(bars(n, width, height), format="rgb24")
      frame.pts, frame.time_base = n, 1 / rate
      container.mux(video.encode(frame))
    container.mux(video.encode())
    if sound is not None:
      samples = _sine(seconds if audio_seconds is None else audio_seconds)
      frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
      frame.sample_rate, frame.pts = AUDIO_RATE, 0
      frame.time_base = fractions.Fraction(1, AUDIO_RATE)
      chunker = av.AudioResampler("fltp", "mono", AUDIO_RATE, frame_size=1024)
      for chunk in chunker.resample(frame) + chunker.resample(None):
        container.mux(sound.encode(chunk))
      container.mux(sound.encode())
  return os.fspath(path)


def decode_frames(path: str | os.PathLike[str]) -> list[tuple[float, int]]:
  """[(time in seconds, frame_index)] of every frame of the video, in order."""
  with av.open(os.fspath(path)) as container:
    return [
        (float(frame.time), frame_index(frame.to_ndarray(format="rgb24")))
        for frame in container.decode(video=0)
    ]


def decode_audio(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
  """(mono float32 samples of the first audio track, sample rate)."""
  with av.open(os.fspath(path)) as container:
    stream = container.streams.audio[0]
    chunks = [
        frame.to_ndarray().reshape(frame.layout.nb_channels, -1).mean(0)
        if frame.format.is_planar
        else frame.to_ndarray().reshape(-1, frame.layout.nb_channels).mean(1)
        for frame in container.decode(stream)
    ]
    return np.concatenate(chunks).astype(np.float32), stream.rate


def dominant_hz(samples: np.ndarray, rate: int) -> float:
  """The frequency of the strongest sine in `samples` (Hann window, FFT peak)."""
  spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
  return float(np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()])


def make_audio_only(path: str | os.PathLike[str]) -> str:
  """A file with one silent AAC track and no video stream."""
  with av.open(str(path), "w") as container:
    stream = container.add_stream("aac", rate=8000)
    frame = av.AudioFrame.from_ndarray(
        np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
    )
    frame.sample_rate = 8000
    for packet in list(stream.encode(frame)) + list(stream.encode()):
      container.mux(packet)
  return str(path)
