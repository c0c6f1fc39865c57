"""Label sampling for EmoSynth: which emotion each clip shows in which modality, and its six-task labels.

The cue rule (how the true label is decided when modalities disagree)
-------------------------------------------------------------------
Every clip has a true emotion `e`. Each modality either *shows* an emotion or is *absent*:
face absent = the head is turned away from the camera (no features drawn); voice absent = whispered,
unpitched speech with emotion-independent loudness and tempo. Text is never absent; matter-of-fact words
show `neutral`. `deciding_modality` says which cues carry `e`:

| deciding_modality | face   | voice  | text                      | share |
|-------------------|--------|--------|---------------------------|-------|
| `all`             | e      | e      | e                         | 8/20  |
| `face`            | e      | absent | neutral                   | 3/20  |
| `voice`           | absent | e      | neutral                   | 3/20  |
| `text`            | absent | absent | e                         | 3/20  |
| `face+voice`      | e      | e      | c != e, c not neutral     | 3/20  |

So: the label is the emotion the *present* cues agree on; when words contradict a face and voice that
agree with each other (sarcasm, polite masking), face+voice win. A model that ignores the face cannot get
the `face` clips (it sees an absent voice and neutral words), likewise for voice and text; a text-only
model loses the `face+voice` clips too.

Sentiment (valence in [-3, 3]) follows the true emotion (`vocab.VALENCE_RANGE`). The intent is carried by
the words only (`vocab.INTENTS_BY_TEXT_EMOTION[text_emotion]`), as in MIntRec.

Balance (exact, per split): clip i of a split of n gets emotion `EMOTIONS[i % 6]` and deciding modality
`DECIDING_PATTERN[(i // 6) % 20]`, then the order is shuffled with the seed. Hence each emotion count is
floor(n/6) or ceil(n/6), and within each emotion the deciding modalities follow the shares above (exact
when n is a multiple of 120; the pattern interleaves the modalities, so any first k groups are spread as
evenly as k allows: a 48-clip split has 3 groups of `all` and at least one of each other). Intents are assigned
round-robin within each text emotion, so intents sharing a tone are balanced; matter-of-fact text is ~42 % of
clips (face/voice clips + neutral clips), which makes its four intents ~10.5 % each vs ~5.8 % for the other eight.
Intensity (low/high) is a fair coin per clip.
The held-out split is `test` (`round(test_fraction * n)` clips, default 20 %), balanced the same way.
"""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np

from data_pipelines.vocab import EMOTIONS, INTENTS_BY_TEXT_EMOTION, OV_WORDS, VALENCE_RANGE

DECIDING_MODALITIES = ("all", "face", "voice", "text", "face+voice")
# The shares above, interleaved so that every prefix is spread too: small splits (the quickstart's 48 held-out
# clips = 8 groups of 6) take only the first groups. Grouped as ("all",)*8 + the rest (as before), a 48-clip split
# held only `all` clips, so a held-out evaluation never saw a contradicted or absent cue.
DECIDING_PATTERN = ("all", "face", "voice", "all", "text", "face+voice") * 3 + ("all", "all")
SPLITS = ("train", "test")
ABSENT = "absent"


@dataclasses.dataclass(frozen=True)
class ClipSpec:
    """Everything that defines one clip: labels, per-modality cues and the seeds of its rendering."""

    index: int              # global clip number (train first, then test)
    split: str              # "train" / "test"
    emotion: str            # true discrete emotion
    deciding_modality: str  # one of DECIDING_MODALITIES
    face_cue: str           # emotion shown by the face, or "absent"
    voice_cue: str          # emotion shown by the voice, or "absent"
    text_emotion: str       # emotional tone of the words ("neutral" = matter-of-fact)
    intensity: str          # "low" / "high"
    intent: str             # MIntRec-style intent label (capitalised)
    sentiment: float        # valence in [-3, 3], 3 decimals
    openset: tuple[str, ...]  # open-vocabulary emotion words (wheel vocabulary)
    render_seed: int        # seed for appearance, voice and template choices


def _clip_rng(seed: int, *keys: int | str) -> np.random.Generator:
    """A generator keyed by (seed, keys...): independent of how many clips are generated or in what order."""
    words = [int(seed) & 0xFFFFFFFF]
    for k in keys:
        words.append(zlib.crc32(k.encode()) if isinstance(k, str) else int(k) & 0xFFFFFFFF)
    return np.random.default_rng(words)


def split_sizes(clips: int, test_fraction: float = 0.2) -> dict[str, int]:
    if clips < 2:
        raise ValueError(f"EmoSynth needs at least 2 clips (one train, one test); got clips={clips}")
    n_test = min(max(1, round(test_fraction * clips)), clips - 1)
    return {"train": clips - n_test, "test": n_test}


def sample_clips(clips: int, seed: int, test_fraction: float = 0.2) -> list[ClipSpec]:
    """The labels of `clips` clips (train then test), balanced as documented in the module docstring."""
    sizes = split_sizes(clips, test_fraction)
    specs: list[ClipSpec] = []
    for split in SPLITS:
        n = sizes[split]
        order = _clip_rng(seed, "order", split).permutation(n)
        intent_counter: dict[str, int] = {}
        base = len(specs)
        for pos in range(n):
            i = int(order[pos])  # balanced slot -> shuffled position
            emotion = EMOTIONS[i % len(EMOTIONS)]
            deciding = DECIDING_PATTERN[(i // len(EMOTIONS)) % len(DECIDING_PATTERN)]
            rng = _clip_rng(seed, "clip", split, pos)
            face, voice, text = _cues(emotion, deciding, rng)
            tone_intents = INTENTS_BY_TEXT_EMOTION[text]
            k = intent_counter.get(text, 0)
            intent_counter[text] = k + 1
            intensity = "high" if rng.random() < 0.5 else "low"
            lo, hi = VALENCE_RANGE[emotion]
            specs.append(ClipSpec(
                index=base + pos, split=split, emotion=emotion, deciding_modality=deciding,
                face_cue=face, voice_cue=voice, text_emotion=text, intensity=intensity,
                intent=tone_intents[k % len(tone_intents)],
                sentiment=round(float(rng.uniform(lo, hi)), 3),
                openset=_openset(emotion, intensity, rng),
                render_seed=int(rng.integers(0, 2**31 - 1)),
            ))
    return specs


def _cues(emotion: str, deciding: str, rng: np.random.Generator) -> tuple[str, str, str]:
    """(face cue, voice cue, text emotion) for a clip, per the cue rule."""
    if deciding == "all":
        return emotion, emotion, emotion
    if deciding == "face":
        return emotion, ABSENT, "neutral"
    if deciding == "voice":
        return ABSENT, emotion, "neutral"
    if deciding == "text":
        return ABSENT, ABSENT, emotion
    if deciding == "face+voice":
        others = [e for e in EMOTIONS if e not in (emotion, "neutral")]
        return emotion, emotion, others[int(rng.integers(len(others)))]
    raise ValueError(f"unknown deciding_modality {deciding!r}; expected one of {DECIDING_MODALITIES}")


def _openset(emotion: str, intensity: str, rng: np.random.Generator) -> tuple[str, ...]:
    """Core word + one intensity word (+ a second one for a third of the clips), wheel vocabulary only."""
    core, low, high = OV_WORDS[emotion]
    pool = high if intensity == "high" else low
    picks = rng.permutation(len(pool))[: 2 if rng.random() < 1 / 3 else 1]
    return (core, *(pool[int(j)] for j in picks))


def label_distribution(specs: list[ClipSpec]) -> dict[str, dict[str, dict[str, int]]]:
    """Counts per split of emotion, deciding modality, intent and intensity (for docs, manifest and tests)."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for split in SPLITS:
        sub = [s for s in specs if s.split == split]
        dist: dict[str, dict[str, int]] = {}
        for field in ("emotion", "deciding_modality", "intent", "intensity", "text_emotion"):
            counts: dict[str, int] = {}
            for s in sub:
                v = getattr(s, field)
                counts[v] = counts.get(v, 0) + 1
            dist[field] = dict(sorted(counts.items()))
        out[split] = dist
    return out
