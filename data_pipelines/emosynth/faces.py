"""Drawn faces whose expression encodes the emotion (PIL drawing; no assets).

Expression = (mouth curve, mouth opening, brow tilt, brow height, eye opening), interpolated from a neutral
face to the emotion's apex over the first quarter of the clip (an onset) and held. `low` intensity reaches
60 % of the apex. Per clip: skin tone, hair colour, background colour, head position and size, and a small
head bob (sinusoidal drift of 1-3 px) are random. An *absent* face cue is the back of the head (hair-coloured
oval, no features): it carries no emotion and looks the same for every emotion.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image, ImageDraw

# (mouth_curve, mouth_open, brow_tilt, brow_raise, eye_open); neutral = (0, 0, 0, 0, 1).
# mouth_curve > 0: corners up (smile); brow_tilt > 0: inner ends down (frown), < 0: inner ends up (distress).
EXPRESSIONS = {
    "neutral": (0.0, 0.0, 0.0, 0.0, 1.0),
    "happy": (1.0, 0.35, 0.0, 0.15, 0.6),
    "sad": (-0.9, 0.0, -0.8, -0.1, 0.55),
    "angry": (-0.45, 0.2, 1.0, -0.45, 0.55),
    "worried": (-0.3, 0.1, -0.9, 0.35, 1.3),
    "surprise": (0.0, 1.0, 0.0, 0.9, 1.6),
}
SKIN_TONES = ((255, 224, 196), (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36), (92, 56, 38))
HAIR_COLOURS = ((30, 20, 15), (90, 60, 30), (200, 170, 90), (120, 40, 20), (60, 60, 60))


@dataclasses.dataclass(frozen=True)
class FaceStyle:
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    background: tuple[int, int, int]
    cx: float          # head centre, fraction of the width
    cy: float
    radius: float      # head radius, fraction of the width
    bob_amp: float     # head bob amplitude in pixels
    bob_phase: float


def sample_style(rng: np.random.Generator) -> FaceStyle:
    skin = np.array(SKIN_TONES[int(rng.integers(len(SKIN_TONES)))]) + rng.integers(-12, 13, 3)
    hair = HAIR_COLOURS[int(rng.integers(len(HAIR_COLOURS)))]
    background = rng.integers(40, 216, 3)
    return FaceStyle(
        skin=tuple(int(v) for v in np.clip(skin, 0, 255)), hair=hair,
        background=tuple(int(v) for v in background),
        cx=float(rng.uniform(0.42, 0.58)), cy=float(rng.uniform(0.45, 0.58)),
        radius=float(rng.uniform(0.30, 0.36)), bob_amp=float(rng.uniform(1.0, 3.0)),
        bob_phase=float(rng.uniform(0, 2 * np.pi)),
    )


def render_face(cue: str, intensity: str, style: FaceStyle, num_frames: int, size: int) -> np.ndarray:
    """Frames uint8 [num_frames, size, size, 3] of a face showing `cue` (an emotion or "absent")."""
    if cue != "absent" and cue not in EXPRESSIONS:
        raise ValueError(f"unknown face cue {cue!r}; expected 'absent' or one of {sorted(EXPRESSIONS)}")
    apex = np.array(EXPRESSIONS.get(cue, EXPRESSIONS["neutral"]))
    neutral = np.array(EXPRESSIONS["neutral"])
    scale = 1.0 if intensity == "high" else 0.6
    onset = max(1, num_frames // 4)
    frames = np.empty((num_frames, size, size, 3), np.uint8)
    for t in range(num_frames):
        w = scale * min(1.0, (t + 1) / onset)
        expr = neutral + w * (apex - neutral)
        dy = style.bob_amp * np.sin(style.bob_phase + 2 * np.pi * t / max(num_frames, 1))
        dx = 0.5 * style.bob_amp * np.cos(style.bob_phase + 2 * np.pi * t / max(num_frames, 1))
        frames[t] = _draw(expr, cue == "absent", style, size, dx, dy)
    return frames


def _draw(expr: np.ndarray, absent: bool, st: FaceStyle, size: int, dx: float, dy: float) -> np.ndarray:
    img = Image.new("RGB", (size, size), st.background)
    d = ImageDraw.Draw(img)
    r = st.radius * size
    cx, cy = st.cx * size + dx, st.cy * size + dy
    # neck/shoulders, so the head does not float
    d.rectangle([cx - 0.35 * r, cy + 0.8 * r, cx + 0.35 * r, size], fill=st.skin)
    d.ellipse([cx - 1.4 * r, cy + 1.35 * r, cx + 1.4 * r, cy + 3.0 * r], fill=tuple(v // 2 for v in st.background))
    if absent:  # back of the head: hair only, no emotion cue at all
        d.ellipse([cx - r, cy - 1.15 * r, cx + r, cy + 1.05 * r], fill=st.hair)
        return np.asarray(img)
    d.ellipse([cx - r, cy - 1.15 * r, cx + r, cy + 0.35 * r], fill=st.hair)  # hair cap behind the face
    d.ellipse([cx - 0.9 * r, cy - 0.95 * r, cx + 0.9 * r, cy + 1.05 * r], fill=st.skin)
    curve, mouth_open, tilt, raise_, eye_open = (float(v) for v in expr)
    lw = max(2, round(size / 48))
    ink = (35, 25, 25)
    # eyes: white ellipse + pupil; height follows eye_open
    ex, ey = 0.38 * r, cy - 0.15 * r
    eh = 0.13 * r * eye_open
    for sx in (-1, 1):
        x = cx + sx * ex
        d.ellipse([x - 0.2 * r, ey - eh, x + 0.2 * r, ey + eh], fill=(250, 250, 250), outline=ink)
        pr = min(0.09 * r, eh)
        d.ellipse([x - pr, ey - pr, x + pr, ey + pr], fill=ink)
    # brows: inner end lowered by tilt, whole brow raised by raise_
    by = ey - 0.3 * r - raise_ * 0.2 * r
    for sx in (-1, 1):
        inner = (cx + sx * 0.15 * r, by + tilt * 0.14 * r)
        outer = (cx + sx * 0.6 * r, by - tilt * 0.1 * r)
        d.line([inner, outer], fill=ink, width=lw + 1)
    # mouth: upper lip is a parabola with corners at curve * h; an open mouth adds a lower lip below it
    my = cy + 0.5 * r
    mw = 0.38 * r * (1.0 - 0.8 * max(0.0, mouth_open - 0.5))  # a wide-open mouth narrows into an "O"
    xs = np.linspace(-1.0, 1.0, 15)
    upper = [(cx + x * mw, my - curve * 0.22 * r * x * x) for x in xs]
    if mouth_open > 0.05:
        lower = [(cx + x * mw, my - curve * 0.22 * r * x * x + mouth_open * 0.35 * r * (1 - x * x))
                 for x in xs[::-1]]
        d.polygon(upper + lower, fill=(120, 30, 40), outline=ink)
    else:
        d.line(upper, fill=ink, width=lw)
    return np.asarray(img)
