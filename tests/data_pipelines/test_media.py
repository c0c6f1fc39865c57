"""Media decoding: frame sampling and resize, audio resampling/mono/clips/normalisation, typed errors."""

from __future__ import annotations

import numpy as np
import pytest

from data_pipelines import media
from data_pipelines.emosynth.video import encode_mp4, encode_wav


def _gray_clip(num_frames: int, h: int = 64, w: int = 64) -> np.ndarray:
    """Frame t is uniformly gray at level 10 + 14 t, so the decoded level identifies the frame index."""
    levels = 10 + 14 * np.arange(num_frames)
    return np.broadcast_to(levels[:, None, None, None], (num_frames, h, w, 3)).astype(np.uint8)


def _frame_ids(frames: np.ndarray) -> list[int]:
    return [int(round((f.mean() - 10) / 14)) for f in frames]


def test_frame_indices_match_the_reference_sampling():
    assert media.frame_indices(16, 8).tolist() == [0, 2, 4, 6, 8, 10, 12, 14]
    assert media.frame_indices(5, 8).tolist() == [0, 1, 2, 3, 4, 4, 4, 4]
    # np.arange(0, vlen, vlen / 8) (the reference) where it does not overshoot
    for vlen in (8, 9, 30, 75, 301):
        ref = np.floor(np.arange(0, vlen, vlen / 8)).astype(int)[:8]
        assert media.frame_indices(vlen, 8).tolist() == ref.tolist(), vlen
    assert len(media.frame_indices(7 * 13, 8)) == 8
    with pytest.raises(ValueError, match="vlen"):
        media.frame_indices(0, 8)


@pytest.mark.parametrize("num_frames, expected", [(16, [0, 2, 4, 6, 8, 10, 12, 14]), (5, [0, 1, 2, 3, 4, 4, 4, 4])])
def test_decode_frames_samples_uniformly(num_frames, expected, tmp_path):
    mp4 = encode_mp4(_gray_clip(num_frames))
    frames = media.decode_frames(mp4, num_frames=8, size=224)
    assert frames.shape == (8, 224, 224, 3) and frames.dtype == np.uint8
    assert _frame_ids(frames) == expected
    path = tmp_path / "clip.mp4"
    path.write_bytes(mp4)
    np.testing.assert_array_equal(media.decode_frames(path), frames)  # path and bytes decode alike


def test_decode_frames_resizes_directly_without_cropping():
    # 64 x 128 (h x w) frames whose left quarter is red: a direct resize keeps it in the left quarter of the
    # 224 x 224 output; a shortest-side resize + centre crop would cut it away.
    f = np.full((8, 64, 128, 3), 255, np.uint8)
    f[:, :, :32] = (255, 0, 0)
    out = media.decode_frames(encode_mp4(f), num_frames=8, size=224)
    left, right = out[:, 20:-20, 5:45].astype(int), out[:, 20:-20, 70:].astype(int)
    assert (left[..., 0] > 200).all() and (left[..., 1] < 60).all()
    assert (right > 200).all()


def test_decode_audio_resamples_and_averages_channels():
    import av
    import io

    sr_in, n = 8000, 8000
    t = np.arange(n) / sr_in
    left = 0.8 * np.sin(2 * np.pi * 200 * t)
    buf = io.BytesIO()  # a stereo wav at 8 kHz: left = sine, right = silence
    with av.open(buf, "w", format="wav") as c:
        s = c.add_stream("pcm_s16le", rate=sr_in, layout="stereo")
        frame = av.AudioFrame.from_ndarray(np.stack([left, 0 * left]).astype(np.float32), format="fltp",
                                           layout="stereo")
        frame.sample_rate = sr_in
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode():
            c.mux(p)
    wave = media.decode_audio(buf.getvalue(), sample_rate=16000)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(len(wave) - 16000) <= 64
    mid = wave[2000:14000]
    assert abs(np.abs(mid).max() - 0.4) < 0.02  # the mean of (0.8 sin, 0)
    spectrum = np.abs(np.fft.rfft(mid))
    assert abs(np.fft.rfftfreq(len(mid), 1 / 16000)[spectrum.argmax()] - 200) < 3


def test_decode_audio_roundtrips_pcm16_wav():
    x = (0.5 * np.sin(np.linspace(0, 200, 16000))).astype(np.float32)
    np.testing.assert_allclose(media.decode_audio(encode_wav(x)), x, atol=1 / 32767 + 1e-6)


def test_audio_clips_evenly_spaced_without_normalisation():
    wave = np.arange(48000, dtype=np.float32)  # 3 s
    clips = media.audio_clips(wave, num_clips=8, seconds=2.0, normalize=False)
    assert clips.shape == (8, 32000) and clips.dtype == np.float32
    starts = clips[:, 0].astype(int).tolist()
    assert starts == [(k * 16000) // 7 for k in range(8)]
    assert starts[0] == 0 and clips[-1, -1] == 47999


def test_audio_clips_pad_short_audio_and_normalise_per_clip():
    rng = np.random.default_rng(0)
    short = (3.0 + 0.5 * rng.standard_normal(16000)).astype(np.float32)  # 1 s, offset mean
    clips = media.audio_clips(short, num_clips=8, seconds=2.0)
    assert clips.shape == (8, 32000)
    assert (clips[:, 16000:] == 0).all()  # padding stays zero
    np.testing.assert_allclose(clips[:, :16000].mean(1), 0, atol=1e-4)
    np.testing.assert_allclose(clips[:, :16000].std(1), 1, atol=1e-3)
    # per clip, not joint: a quiet clip and a loud clip both come out at unit variance
    long = np.concatenate([0.01 * rng.standard_normal(32000), 5 * rng.standard_normal(32000)]).astype(np.float32)
    c2 = media.audio_clips(long, num_clips=2, seconds=2.0)
    np.testing.assert_allclose(c2.std(1), [1, 1], atol=1e-3)
    silent = media.audio_clips(np.zeros(40000, np.float32))
    assert np.isfinite(silent).all() and (silent == 0).all()
    with pytest.raises(ValueError, match="mono"):
        media.audio_clips(np.zeros((2, 100), np.float32))


def test_corrupt_and_missing_media_raise_errors_naming_the_file(tmp_path):
    mp4 = encode_mp4(_gray_clip(16))
    with pytest.raises(media.MediaDecodeError, match="clips/bad.mp4") as e:
        media.decode_frames(mp4[: len(mp4) // 2], name="clips/bad.mp4")
    assert e.value.path == "clips/bad.mp4" and e.value.reason
    bad = tmp_path / "truncated.mp4"
    bad.write_bytes(mp4[:200])
    with pytest.raises(media.MediaDecodeError, match="truncated.mp4"):
        media.decode_frames(bad)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(media.MediaDecodeError, match="empty.wav: empty file"):
        media.decode_audio(empty)
    with pytest.raises(media.MediaDecodeError, match="missing.wav: file not found"):
        media.decode_audio(tmp_path / "missing.wav")
    with pytest.raises(media.MediaDecodeError, match="video.mp4: no audio stream"):
        media.decode_audio(mp4, name="video.mp4")
    with pytest.raises(media.MediaDecodeError, match="a.wav: no video stream"):
        media.decode_frames(encode_wav(np.zeros(1600, np.float32)), name="a.wav")
    with pytest.raises(media.MediaDecodeError, match="header.wav: audio has zero samples"):
        media.decode_audio(encode_wav(np.zeros(0, np.float32)), name="header.wav")
    with pytest.raises(media.MediaDecodeError, match="<bytes>"):
        media.decode_audio(b"RIFF\x00\x00garbage")
    assert issubclass(media.MediaDecodeError, ValueError)


def test_face_frames_default_is_the_raw_frame_and_hooks_are_resized():
    frames = np.random.default_rng(0).integers(0, 256, (8, 224, 224, 3), dtype=np.uint8)
    assert media.face_frames(frames) is frames  # reference behaviour: the whole raw frame
    cropped = media.face_frames(frames, media.center_crop(0.5))
    assert cropped.shape == (8, 224, 224, 3) and cropped.dtype == np.uint8
    small = frames[:, 56:168, 56:168]
    np.testing.assert_allclose(cropped[:, 100:124, 100:124].mean(), small[:, 50:62, 50:62].mean(), atol=25)
    with pytest.raises(ValueError, match="must return uint8"):
        media.face_frames(frames, lambda f: f[:4])
    with pytest.raises(ValueError, match="fraction"):
        media.center_crop(0.0)
