"""Media decoding with PyAV: frames for the visual and facial branches, audio clips for the audio branch.

Every decoder accepts a path (str / PathLike) or the encoded bytes of a file (as stored in the records;
pass `name=` the record's `video_path` / `audio_path` so errors name the file) and raises
`MediaDecodeError(path, reason)` for a missing, empty or corrupt file, a missing stream or zero frames.

Frames (`decode_frames`), matching the reference `load_video` (reference-architecture.md §10.1):
* resize: **direct resize to size x size, aspect ratio not preserved**, bicubic (the reference's decord
  `VideoReader(height=224, width=224)` scales in the decoder with FFmpeg's default bicubic `scale`; we use
  FFmpeg's swscale bicubic through `VideoFrame.to_ndarray`);
* sampling: with `vlen` decoded frames and `n` requested, indices `floor(i * vlen / n)` for i < n when
  vlen >= n (the reference's `arange(0, vlen, vlen / n)` in exact integer form: its float version can yield
  n + 1 indices, reference defect §12.16); when vlen < n, indices 0..vlen-1 then the last index repeated.
* output uint8 [n, size, size, 3], RGB, values 0-255 (the reference's `raw_frames`, channel-last).

Audio (`decode_audio`, `audio_clips`), following `load_audio` / the clip sampler (§10.3):
* decode, resample to `sample_rate` with `av.AudioResampler` (FFmpeg swresample; the reference uses
  torchaudio's sinc resampler, so resampled values differ slightly), all channels averaged to mono (the
  reference averages exactly-2-channel audio; we average any channel count);
* `audio_clips`: n clips of `seconds` each, clip k starting at sample floor(k * max(N - L, 0) / (n - 1))
  (the reference's `k * max(D - 2, 0) / 7` seconds), zero-padded at the end when the waveform is shorter
  than one clip; then **normalised per clip** to zero mean / unit variance over its real (unpadded) samples,
  padding kept at 0, eps 1e-7 as HF's Wav2Vec2FeatureExtractor. The reference normalises jointly over all
  clips of the batch (a quirk, reference-architecture.md §2.4 / §12.3); per clip is the fix the blueprint
  asks for. `normalize=False` returns the raw clips.

Facial branch (`face_frames`): the reference feeds the whole raw frame (no face crop). `face_crop_fn` is the
hook for a detector: a function frames uint8 [T, H, W, 3] -> frames uint8 [T, H', W', 3]; its output is
resized back to `size` x `size`. `center_crop(fraction)` is a detector-free crop usable as the hook.
"""

from __future__ import annotations

import io
import os
from typing import Callable, Union

import av
import numpy as np
from PIL import Image

Source = Union[str, os.PathLike, bytes, bytearray, memoryview]


class MediaDecodeError(ValueError):
    """A media file could not be decoded. `path` names the file (or `<bytes>`), `reason` says why."""

    def __init__(self, path: str, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def _source(src: Source, name: str | None) -> tuple[object, str]:
    """(what av.open accepts, the name used in errors); checks existence and emptiness first."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        label = name or "<bytes>"
        if len(src) == 0:
            raise MediaDecodeError(label, "empty file (0 bytes)")
        return io.BytesIO(bytes(src)), label
    if isinstance(src, (str, os.PathLike)):
        path = os.fspath(src)
        label = name or path
        if not os.path.exists(path):
            raise MediaDecodeError(label, "file not found")
        if os.path.getsize(path) == 0:
            raise MediaDecodeError(label, "empty file (0 bytes)")
        return path, label
    raise TypeError(f"media source must be a path or bytes, got {type(src).__name__}")


def _open(src: Source, name: str | None):
    target, label = _source(src, name)
    try:
        return av.open(target, mode="r"), label
    except (av.FFmpegError, OSError, ValueError) as e:
        raise MediaDecodeError(label, f"cannot open container ({type(e).__name__}: {e})") from e


def frame_indices(vlen: int, num_frames: int) -> np.ndarray:
    """Uniform frame indices int64 [num_frames] over `vlen` frames (see the module docstring)."""
    if vlen <= 0:
        raise ValueError(f"frame_indices: vlen must be positive, got {vlen}")
    if vlen >= num_frames:
        return (np.arange(num_frames, dtype=np.int64) * vlen) // num_frames
    return np.concatenate([np.arange(vlen), np.full(num_frames - vlen, vlen - 1)]).astype(np.int64)


class _FramePicker:
    """Converts the frames whose indices are wanted to RGB at size x size while a stream is decoded."""

    def __init__(self, num_frames: int, size: int, wanted: set[int] | None = None):
        self.num_frames, self.size = num_frames, size
        self.wanted = wanted
        self.picked: dict[int, np.ndarray] = {}

    def start(self, declared: int) -> None:
        if self.wanted is None:  # first pass: trust the container's frame count when it has one
            self.wanted = set(frame_indices(declared, self.num_frames).tolist()) if declared > 0 else set()

    def __call__(self, i: int, frame, label: str) -> None:
        if i in self.wanted:
            try:
                self.picked[i] = frame.to_ndarray(format="rgb24", width=self.size, height=self.size,
                                                  interpolation="BICUBIC")
            except (av.FFmpegError, ValueError) as e:
                raise MediaDecodeError(label, f"cannot convert frame {i} to RGB ({e})") from e


def _iter_video(src: Source, name: str | None, picker: _FramePicker | None) -> int:
    """Decode every frame of the first video stream, feeding `picker`; returns the number decoded."""
    container, label = _open(src, name)
    count = 0
    with container:
        if not container.streams.video:
            raise MediaDecodeError(label, "no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if picker is not None:
            picker.start(int(stream.frames or 0))
        try:
            for frame in container.decode(stream):
                if picker is not None:
                    picker(count, frame, label)
                count += 1
        except MediaDecodeError:
            raise
        except (av.FFmpegError, ValueError) as e:
            if count == 0:
                raise MediaDecodeError(label, f"corrupt video stream ({type(e).__name__}: {e})") from e
            # a damaged tail: keep the frames that decoded (decord does the same)
    if count == 0:
        raise MediaDecodeError(label, "video has zero decodable frames")
    return count


def decode_frames(src: Source, num_frames: int = 8, size: int = 224, *, name: str | None = None) -> np.ndarray:
    """uint8 [num_frames, size, size, 3] RGB frames sampled uniformly over the clip, resized to size x size.

    One decoding pass converts only the sampled frames, chosen from the container's frame count; if the
    stream holds a different number of frames than declared (or declares none), a second pass converts the
    frames sampled from the true count. Only the sampled frames are ever kept in memory.
    """
    picker = _FramePicker(num_frames, size)
    count = _iter_video(src, name, picker)
    idx = frame_indices(count, num_frames).tolist()
    if not set(idx) <= set(picker.picked):
        picker = _FramePicker(num_frames, size, wanted=set(idx))
        _iter_video(src, name, picker)
    return np.stack([picker.picked[i] for i in idx])


def count_frames(src: Source, *, name: str | None = None) -> int:
    """Number of decodable video frames."""
    return _iter_video(src, name, None)


def decode_audio(src: Source, sample_rate: int = 16000, *, name: str | None = None) -> np.ndarray:
    """float32 [N] mono waveform in [-1, 1] at `sample_rate` (first audio stream, channels averaged)."""
    container, label = _open(src, name)
    chunks: list[np.ndarray] = []
    with container:
        if not container.streams.audio:
            raise MediaDecodeError(label, "no audio stream")
        stream = container.streams.audio[0]
        resampler = None
        try:
            for frame in container.decode(stream):
                if resampler is None:  # keep the channel layout; we average channels ourselves
                    resampler = av.AudioResampler(format="fltp", layout=frame.layout.name, rate=sample_rate)
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())
            if resampler is not None:
                for out in resampler.resample(None):
                    chunks.append(out.to_ndarray())
        except MediaDecodeError:
            raise
        except (av.FFmpegError, ValueError) as e:
            raise MediaDecodeError(label, f"corrupt audio stream ({type(e).__name__}: {e})") from e
    if not chunks or sum(c.shape[-1] for c in chunks) == 0:
        raise MediaDecodeError(label, "audio has zero samples")
    wave = np.concatenate(chunks, axis=-1)  # [channels, N] (planar float)
    return wave.mean(axis=0).astype(np.float32)


def audio_clips(wave: np.ndarray, num_clips: int = 8, seconds: float = 2.0, sample_rate: int = 16000,
                *, normalize: bool = True, eps: float = 1e-7) -> np.ndarray:
    """float32 [num_clips, round(seconds * sample_rate)] evenly spaced clips of a mono waveform [N]."""
    x = np.asarray(wave, np.float32)
    if x.ndim != 1:
        raise ValueError(f"audio_clips: expected a mono waveform [N], got shape {x.shape}")
    length = int(round(seconds * sample_rate))
    valid = min(len(x), length)
    if len(x) < length:
        x = np.pad(x, (0, length - len(x)))
    span = len(x) - length
    starts = [(k * span) // (num_clips - 1) if num_clips > 1 else 0 for k in range(num_clips)]
    clips = np.stack([x[s:s + length] for s in starts]).astype(np.float32)
    if not normalize:
        return clips
    real = clips[:, :valid]
    mean = real.mean(axis=1, keepdims=True)
    var = real.var(axis=1, keepdims=True)
    out = np.zeros_like(clips)
    out[:, :valid] = (real - mean) / np.sqrt(var + eps)
    return out


def decode_audio_clips(src: Source, num_clips: int = 8, seconds: float = 2.0, sample_rate: int = 16000, *,
                       name: str | None = None, normalize: bool = True) -> np.ndarray:
    """decode_audio + audio_clips: float32 [num_clips, seconds * sample_rate]."""
    return audio_clips(decode_audio(src, sample_rate, name=name), num_clips, seconds, sample_rate,
                       normalize=normalize)


FaceCropFn = Callable[[np.ndarray], np.ndarray]


def center_crop(fraction: float = 0.8) -> FaceCropFn:
    """A face-crop hook keeping the central `fraction` of each frame's height and width."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"center_crop: fraction must be in (0, 1], got {fraction}")

    def crop(frames: np.ndarray) -> np.ndarray:
        h, w = frames.shape[1:3]
        ch, cw = max(1, round(h * fraction)), max(1, round(w * fraction))
        top, left = (h - ch) // 2, (w - cw) // 2
        return frames[:, top:top + ch, left:left + cw]

    return crop


def face_frames(frames: np.ndarray, face_crop_fn: FaceCropFn | None = None, size: int = 224) -> np.ndarray:
    """Input of the facial branch: uint8 [T, size, size, 3].

    Default (no hook) = the reference behaviour: the whole raw frame. With a hook, its crops are resized back
    to size x size (bicubic). Normalisation (/255, ImageNet mean/std) belongs to the model, not here.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"face_frames: expected uint8 frames [T, H, W, 3], got {frames.dtype} {frames.shape}")
    if face_crop_fn is None:
        crops = frames
    else:
        crops = np.asarray(face_crop_fn(frames))
        if crops.ndim != 4 or crops.shape[0] != frames.shape[0] or crops.shape[-1] != 3 or crops.dtype != np.uint8:
            raise ValueError(f"face_crop_fn {getattr(face_crop_fn, '__name__', face_crop_fn)!r} must return uint8 "
                             f"[{frames.shape[0]}, H, W, 3], got {crops.dtype} {crops.shape}")
    if crops.shape[1:3] == (size, size):
        return crops
    return np.stack([np.asarray(Image.fromarray(f).resize((size, size), Image.BICUBIC)) for f in crops])
