"""Label vocabularies EmoSynth draws from (embedded constants: nothing is read from disk at run time).

* `EMOTIONS`: the six discrete classes of MER2023/MER2024 (MER-UniBench `label-6way.npz`).
* `OV_WORDS`: open-vocabulary words per emotion and intensity, chosen from the 253 words of the five
  emotion wheels used by the MER-UniBench metrics (`../shared/data/emotion_wheel/wheel*.csv`; the tables
  come from AffectGPT, redistributed by Nano-EmoX under MIT). Every word here is a wheel word, so the
  emotion-wheel metric maps each one to a cluster (a test checks this against the shared tables).
  `neutral` is not in the wheel vocabulary at all, so neutral clips are labelled with calm-type words.
* `INTENTS`: 12 of the 20 MIntRec intents, capitalised as MIntRec annotates them (`Ask for help`).
* `AVAMERG_EMOTION`: the EmpatheticDialogues-style word AvaMERG's `chain_of_empathy.speaker_emotion` uses
  for each discrete emotion (ED has no `neutral`; AvaMERG's 8-class hit-rate map does, so it is kept).
"""

from __future__ import annotations

EMOTIONS = ("neutral", "happy", "sad", "angry", "worried", "surprise")

# Sentiment (MOSI-style valence in [-3, 3]) range per emotion: uniform within [lo, hi].
VALENCE_RANGE = {
    "neutral": (-0.4, 0.4),
    "happy": (1.2, 3.0),
    "sad": (-3.0, -1.2),
    "angry": (-3.0, -1.4),
    "worried": (-1.8, -0.4),
    "surprise": (0.4, 1.8),
}

# emotion -> (core word, low-intensity words, high-intensity words). The core word is always in the
# open-vocabulary list; one intensity word is added (and sometimes a second).
OV_WORDS = {
    "neutral": ("calm", ("relaxed", "focused", "indifferent", "thoughtful"), ("peaceful", "serene", "content", "attentive")),
    "happy": ("happy", ("content", "cheerful", "satisfied", "relieved"), ("joyful", "thrilled", "excited", "enthusiastic")),
    "sad": ("sad", ("disappointed", "lonely", "hurt", "tired"), ("heartbroken", "miserable", "depressed", "despair")),
    "angry": ("angry", ("annoyed", "irritated", "frustrated", "resentful"), ("furious", "outraged", "infuriated", "hostile")),
    "worried": ("worried", ("nervous", "uneasy", "tense", "hesitant"), ("anxious", "scared", "panicked", "stressed")),
    "surprise": ("surprised", ("curious", "confused", "perplexed", "interested"), ("astonished", "amazed", "shocked", "stunned")),
}

# Intents carried by the words of the transcript: two per emotional tone, four for matter-of-fact text.
INTENTS_BY_TEXT_EMOTION = {
    "neutral": ("Inform", "Arrange", "Introduce", "Leave"),
    "happy": ("Praise", "Thank"),
    "sad": ("Apologise", "Ask for help"),
    "angry": ("Complain", "Criticize"),
    "worried": ("Prevent", "Care"),
    "surprise": ("Oppose", "Greet"),
}
INTENTS = tuple(i for e in EMOTIONS for i in INTENTS_BY_TEXT_EMOTION[e])

AVAMERG_EMOTION = {
    "neutral": "neutral",
    "happy": "joyful",
    "sad": "sad",
    "angry": "angry",
    "worried": "anxious",
    "surprise": "surprised",
}


def all_ov_words() -> tuple[str, ...]:
    """Every open-vocabulary word EmoSynth can emit (sorted)."""
    words = set()
    for core, low, high in OV_WORDS.values():
        words.update((core, *low, *high))
    return tuple(sorted(words))
