"""Intent readers: MIntRec (20 intents, Superstore) and MIntRec2.0 (30 intents; Superstore, The Big Bang Theory,
Friends), in NX's chat-JSON form (`chat.py` has the parser)::

    <root>/train_MIntRec_ann.json, test_MIntRec_ann.json        (MIntRec; "train" = official train + dev)
    <root>/train_MIntRec2_ann.json, test_MIntRec2_ann.json      (MIntRec2.0)
    <root>/video/<name>.mp4, <root>/audio/<name>.wav

Items: user message = the utterance (→ subtitle), assistant message = the intent as annotated, capitalised
(→ intent), "videos" = an author path whose basename names the clip (`S05_E16_329`, `dia0_utt3`). A split is
present when its file is. Intents are checked (case-insensitively) against the reference candidate lists, so an
unknown intent raises naming the file and item.

Fills: id, video(+_path), audio(+_path), subtitle, intent, candidates (the reference's lower-case list; the
prompt shows them, the answer is the capitalised label); label_types: intent_recognition.
"""

from __future__ import annotations

import pathlib
from typing import Any

from data_pipelines.readers.chat import ChatItem, ChatReader

_LAYOUT = __doc__  # both readers document the shared layout above

MINTREC_INTENTS = (
    "complain", "praise", "apologise", "thank", "criticize", "agree", "taunt", "flaunt", "joke", "oppose",
    "comfort", "care", "inform", "advise", "arrange", "introduce", "leave", "prevent", "greet", "ask for help")
MINTREC2_INTENTS = MINTREC_INTENTS + (
    "acknowledge", "asking for opinions", "confirm", "doubt", "emphasize", "explain", "invite", "plan",
    "refuse", "warn")


class _IntentReader(ChatReader, skip_registration=True):
    MEDIA_KEY = "videos"
    MEDIA_DIR = "video"
    LABEL_TYPES = ("intent_recognition",)

    def fields(self, root: pathlib.Path, item: ChatItem) -> dict[str, Any]:
        out = super().fields(root, item)
        out["audio"], out["audio_path"] = self.read_media([f"audio/{item.id}.wav"])
        return out

    def labels(self, item: ChatItem) -> dict[str, Any]:
        return dict(intent=item.assistant, subtitle=item.user, candidates=list(self.CANDIDATES))


class MIntRec(_IntentReader):
    __doc__ = "MIntRec (20 intents). " + _LAYOUT
    name = "emox_mintrec"
    READER = "mintrec"
    FOLDERS = ("MIntRec", "mintrec")
    SPLIT_FILES = {"train": ("train_MIntRec_ann.json",), "test": ("test_MIntRec_ann.json",)}
    CANDIDATES = MINTREC_INTENTS


class MIntRec2(_IntentReader):
    __doc__ = "MIntRec2.0 (30 intents). " + _LAYOUT
    name = "emox_mintrec2"
    READER = "mintrec2"
    FOLDERS = ("MIntRec2", "MIntRec2.0", "mintrec2")
    SPLIT_FILES = {"train": ("train_MIntRec2_ann.json",), "test": ("test_MIntRec2_ann.json",)}
    CANDIDATES = MINTREC2_INTENTS
