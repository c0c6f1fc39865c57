"""EmoSynth: the embedded default dataset (blueprint §5).

A deterministic generator of a small multimodal affect corpus written in the on-disk layouts of the real
datasets (MER2023, MER-Caption+/OV-MERD, MIntRec, AvaMERG, CMU-MOSI; see `layouts.py`), so the real readers
parse it with the same code. Each clip is a real H.264 mp4 of a drawn face (`faces.py`) plus a separate
16 kHz mono PCM16 wav of a synthetic voice (`voice.py`), with a templated transcript (`text.py`) and labels
for all six tasks (`labels.py`, which also documents the cue rule that decides the true label when
modalities disagree, and the label balance).

API:
    generate(out_dir, clips, seed, layouts="all", cfg=SynthConfig(), workers=1) -> manifest dict
    iter_examples(clips, seed, cfg=SynthConfig(), split=None, media=True) -> schema records, in memory
    sample_clips(clips, seed) -> [ClipSpec]; render_media(spec) -> (frames, wave); to_example(spec)
CLI:
    python -m data_pipelines.emosynth --out DIR --clips N --seed S --layout mer2023|mintrec|avamerg|mosi|...|all
"""

from data_pipelines.emosynth.clips import (ALL_LABEL_TYPES, SynthConfig, clip_text, encode_media, iter_examples,
                                           render_media, to_example)
from data_pipelines.emosynth.generator import generate, resolve_layouts
from data_pipelines.emosynth.labels import DECIDING_MODALITIES, ClipSpec, label_distribution, sample_clips
from data_pipelines.emosynth.layouts import LAYOUTS, ROOTS

__all__ = [
    "ALL_LABEL_TYPES", "DECIDING_MODALITIES", "LAYOUTS", "ROOTS", "ClipSpec", "SynthConfig", "clip_text",
    "encode_media", "generate", "iter_examples", "label_distribution", "render_media", "resolve_layouts",
    "sample_clips", "to_example",
]
