"""Encoding EmoSynth media to the files the real datasets ship: H.264 mp4 (PyAV) and a separate PCM16 wav.

mp4: libx264, yuv420p, `preset=ultrafast`, CRF 18, one encoder thread. With a fixed x264 build the bytes
are a function of the frames only (one thread keeps x264 deterministic; the mp4 muxer writes no wall-clock
time unless asked), which a test checks. Video only: like the MER-UniBench "process" folders, the audio is
the separate wav.

wav: 16 kHz mono PCM16, written with the standard library `wave` module rather than PyAV's wav muxer,
because FFmpeg's muxer adds a LIST/INFO chunk naming its own version, which would make the bytes depend on
the installed FFmpeg. The result is the canonical 44-byte-header RIFF/WAVE file.
"""

from __future__ import annotations

import io
import wave

import av
import numpy as np


def encode_mp4(frames: np.ndarray, fps: int = 8) -> bytes:
    """H.264 mp4 bytes of frames uint8 [T, H, W, 3] (H and W even) at `fps` frames per second."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"encode_mp4: expected uint8 frames [T, H, W, 3], got {frames.dtype} {frames.shape}")
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"encode_mp4: yuv420p needs even height and width, got {frames.shape[1:3]}")
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = int(frames.shape[2]), int(frames.shape[1])
        stream.pix_fmt = "yuv420p"
        stream.codec_context.options = {"preset": "ultrafast", "crf": "18"}
        stream.codec_context.thread_count = 1
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


def encode_wav(wave_f32: np.ndarray, sample_rate: int = 16000) -> bytes:
    """16-bit PCM mono wav bytes of a float waveform in [-1, 1] (values outside are clipped)."""
    x = np.asarray(wave_f32, np.float32)
    if x.ndim != 1:
        raise ValueError(f"encode_wav: expected a mono waveform [N], got shape {x.shape}")
    pcm = np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(pcm.tobytes())
    return buf.getvalue()
