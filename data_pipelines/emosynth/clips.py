"""One EmoSynth clip: its frames, waveform and text, and the schema record built from them."""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator

import numpy as np

from data_pipelines import schema
from data_pipelines.emosynth import faces, labels, text, video, voice
from data_pipelines.vocab import EMOTIONS


@dataclasses.dataclass(frozen=True)
class SynthConfig:
    """Media shape: 16 frames at 8 fps = 2 s of video, 2 s of 16 kHz audio, 112x112 frames.

    The pipeline resizes frames to 224 (`media.decode_frames`), so the small size only saves time.
    """

    size: int = 112
    num_frames: int = 16
    fps: int = 8
    sample_rate: int = 16000
    test_fraction: float = 0.2

    @property
    def seconds(self) -> float:
        return self.num_frames / self.fps

    def validate(self) -> None:
        if self.size % 2 or self.size < 32:
            raise ValueError(f"SynthConfig.size must be even and >= 32, got {self.size}")
        if self.num_frames < 8:
            raise ValueError(f"SynthConfig.num_frames must be >= 8 (the pipeline samples 8), got {self.num_frames}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"SynthConfig.test_fraction must be in (0, 1), got {self.test_fraction}")


@dataclasses.dataclass(frozen=True)
class ClipText:
    subtitle: str
    reason: str
    coe: list[str]          # [event scenario, emotion word (AvaMERG style), cause, goal]
    response: str
    topic: str


def clip_text(spec: labels.ClipSpec) -> ClipText:
    rng = np.random.default_rng([spec.render_seed, 1])
    sub = text.subtitle(spec.text_emotion, spec.intent, rng)
    coe, reply, topic = text.empathy(spec.emotion, rng)
    why = text.reason(spec.face_cue, spec.voice_cue, spec.text_emotion, spec.emotion, spec.openset)
    return ClipText(subtitle=sub, reason=why, coe=coe, response=reply, topic=topic)


def render_media(spec: labels.ClipSpec, cfg: SynthConfig = SynthConfig()) -> tuple[np.ndarray, np.ndarray]:
    """(frames uint8 [num_frames, size, size, 3], waveform float32 [seconds * sample_rate]) of a clip."""
    rng = np.random.default_rng([spec.render_seed, 0])
    style = faces.sample_style(rng)
    frames = faces.render_face(spec.face_cue, spec.intensity, style, cfg.num_frames, cfg.size)
    wave = voice.render_voice(spec.voice_cue, spec.intensity, rng, cfg.seconds, cfg.sample_rate)
    return frames, wave


def encode_media(spec: labels.ClipSpec, cfg: SynthConfig = SynthConfig()) -> tuple[bytes, bytes]:
    """(mp4 bytes, wav bytes) of a clip."""
    frames, wave = render_media(spec, cfg)
    return video.encode_mp4(frames, cfg.fps), video.encode_wav(wave, cfg.sample_rate)


ALL_LABEL_TYPES = ("onehot_w_candidates", "onehot_wo_candidates", "ovlabel", "sentiment", "valence",
                   "description", "intent_recognition", "empathic_response_with_coe")


def to_example(spec: labels.ClipSpec, cfg: SynthConfig = SynthConfig(), *, media: bool = True,
               name: str | None = None) -> dict[str, Any]:
    """The schema record of a clip with every task's label (`schema.make_example`).

    `candidates` holds the six emotions (the MER candidate list); intents are in `vocab.INTENTS`.
    """
    t = clip_text(spec)
    mp4, wav = encode_media(spec, cfg) if media else (b"", b"")
    name = name or f"emosynth_{spec.index:06d}"
    return schema.make_example(
        id=name, dataset="emosynth", split=spec.split,
        video=mp4, video_path=f"video/{name}.mp4" if media else "",
        audio=wav, audio_path=f"audio/{name}.wav" if media else "",
        subtitle=t.subtitle, emotion=spec.emotion, emotions=list(spec.openset), sentiment=spec.sentiment,
        intent=spec.intent, reason=t.reason, response=t.response, coe=list(t.coe),
        candidates=list(EMOTIONS), label_types=list(ALL_LABEL_TYPES),
    )


def iter_examples(clips: int, seed: int, cfg: SynthConfig = SynthConfig(), *, split: str | None = None,
                  media: bool = True) -> Iterator[dict[str, Any]]:
    """Schema records of an EmoSynth corpus of `clips` clips, in memory (no files), optionally one split."""
    cfg.validate()
    for spec in labels.sample_clips(clips, seed, cfg.test_fraction):
        if split is None or spec.split == split:
            yield to_example(spec, cfg, media=media)
