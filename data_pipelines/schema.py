"""The one example schema every dataset reader produces and every pipeline consumes.

Readers (TFDS builders with `manual_dir`, EmoSynth) write one record per clip/utterance with the fields of
`EXAMPLE_FIELDS`; media are stored as *encoded bytes* (mp4 / wav) so no TensorFlow is needed and decoding
happens in the Grain map. Absent fields hold their empty value (b"", "", [], NaN) — never a missing key —
so records of every dataset batch together.
"""

from __future__ import annotations

import math
from typing import Any

# The six tasks on three levels (perception, understanding, interaction).
TASKS = ("msa", "mer", "ovmer", "eri", "mir", "erg")

# label_type -> the task whose metric scores it (reference-architecture.md §7.1).
LABEL_TYPES = {
    "sentiment": "msa",
    "valence": "msa",
    "onehot_w_candidates": "mer",
    "onehot_wo_candidates": "mer",
    "emotion_recognition": "mer",
    "ovlabel": "ovmer",
    "description": "eri",
    "intent_recognition": "mir",
    "empathic_response_with_coe": "erg",
}

# Which modalities a prompt carries ("face_or_frame" in the reference).
MODALITY_MODES = (
    "multiface_audio_face_frame_text",  # main mode: fusion + audio + face + frames + subtitle
    "audio_text",                       # phase 1a
    "face_frame",                       # phase 1b
    "face_frame_text",
    "face_text",
    "frame_text",
    "text",
)

# name -> (python type, empty value). Strings are UTF-8 text; lists are lists of str.
EXAMPLE_FIELDS: dict[str, tuple[type, Any]] = {
    "id": (str, ""),                 # unique within the dataset, e.g. "sample_00012" or "dia3_utt7"
    "dataset": (str, ""),            # reader name, e.g. "mer2023", "mintrec", "emosynth_mer"
    "split": (str, ""),              # "train" / "validation" / "test"
    "video": (bytes, b""),           # encoded video file (mp4/avi/...), b"" when the dataset has none
    "video_path": (str, ""),         # path relative to manual_dir, for error messages
    "audio": (bytes, b""),           # encoded audio file (wav/...), b"" when absent
    "audio_path": (str, ""),
    "subtitle": (str, ""),           # transcript of the utterance
    "history": (str, ""),            # dialogue context (AvaMERG, MELD, M3ED), "" when none
    "emotion": (str, ""),            # one discrete emotion label (MER); "" when not annotated
    "emotions": (list, []),          # open-vocabulary emotion labels (OV-MER)
    "sentiment": (float, math.nan),  # signed valence / sentiment score (MSA); NaN when not annotated
    "intent": (str, ""),             # intent label as annotated (MIR)
    "reason": (str, ""),             # emotion-reasoning description (ERI)
    "response": (str, ""),           # empathetic reply (ERG)
    "coe": (list, []),               # Chain-of-Empathy steps [event, emotion, cause, goal] (ERG)
    "candidates": (list, []),        # label candidates for *_w_candidates / intent prompts
    "label_types": (list, []),       # label types this record supports (one is drawn per sample)
}


def empty_example() -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, list) else v) for k, (_, v) in EXAMPLE_FIELDS.items()}


def make_example(**fields: Any) -> dict[str, Any]:
    """An example with every schema field; unknown fields raise ValueError naming them."""
    unknown = sorted(set(fields) - set(EXAMPLE_FIELDS))
    if unknown:
        raise ValueError(f"unknown example field(s) {unknown}; schema fields: {sorted(EXAMPLE_FIELDS)}")
    ex = empty_example()
    ex.update(fields)
    for lt in ex["label_types"]:
        if lt not in LABEL_TYPES:
            raise ValueError(f"example {ex['id']!r}: unknown label_type {lt!r}; known: {sorted(LABEL_TYPES)}")
    return ex
