"""Readers of the NX chat-style annotation JSONs: CREMA-D, M3ED, CAER+FERV39k (phase-1 emotion data); the
intent datasets (MIntRec, MIntRec2.0) share the parser and live in `intent.py`.

Annotation schema (reference-architecture.md §10.5)::

    [{"messages": [{"role": "user", "content": <utterance or "">},
                   {"role": "assistant", "content": <label>}],
      "videos" | "audios": ["/author/abs/path/<...>/<name>.<ext>"]}, ...]

Messages written as {"user": text} / {"assistant": text} are accepted too. The stored media path is an author
path: only its tail is used. The media file is looked up as `<MEDIA_DIR>/<id><ext>` first, then as the tails of
the stored path (longest first) relative to the dataset root. The record id is the shortest tail (without
extension) that is unique in the file: the basename stem for MIntRec/CREMA-D, more parents where stems repeat.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass
from typing import Any, Iterator

from data_pipelines.readers.base import (
    AnnotationError, ReaderBuilder, existing, media_suffix_candidates, read_json, unique_suffix_ids)


@dataclass(frozen=True)
class ChatItem:
    index: int
    user: str
    assistant: str
    media: str       # the stored media path
    id: str          # unique tail of `media` without extension


def _message(msg: Any, where: str) -> tuple[str, str]:
    if isinstance(msg, dict) and "role" in msg:
        content = msg.get("content")
        if not isinstance(content, str):
            raise AnnotationError(f"{where}: field 'content' should be a string, got {content!r}")
        return str(msg["role"]), content
    if isinstance(msg, dict) and len(msg) == 1:
        (role, content), = msg.items()
        if isinstance(content, str):
            return str(role), content
    raise AnnotationError(f"{where}: expected {{'role': ..., 'content': str}}, got {msg!r}")


def read_chat_items(path: pathlib.Path, media_key: str) -> list[ChatItem]:
    """Parses a chat annotation file; every problem raises AnnotationError naming the file, item and field."""
    data = read_json(path)
    if not isinstance(data, list):
        raise AnnotationError(f"{path}: expected a list of items, got {type(data).__name__}")
    raw = []
    for i, item in enumerate(data):
        where = f"{path}: item {i}"
        if not isinstance(item, dict):
            raise AnnotationError(f"{where}: expected an object, got {type(item).__name__}")
        msgs = item.get("messages")
        if not isinstance(msgs, list):
            raise AnnotationError(f"{where}: missing or non-list field 'messages'")
        roles: dict[str, str] = {}
        for j, m in enumerate(msgs):
            role, content = _message(m, f"{where}, messages[{j}]")
            roles.setdefault(role, content)
        if "assistant" not in roles:
            raise AnnotationError(f"{where}: field 'messages' has no assistant message (the label)")
        media = item.get(media_key)
        if not (isinstance(media, list) and media and isinstance(media[0], str) and media[0].strip()):
            raise AnnotationError(f"{where}: field {media_key!r} should be a non-empty list of paths, got {media!r}")
        raw.append((i, roles.get("user", ""), roles["assistant"].strip(), media[0].strip()))
    ids = unique_suffix_ids([m for *_, m in raw])
    return [ChatItem(i, u, a, m, x) for (i, u, a, m), x in zip(raw, ids)]


def media_candidates(item: ChatItem, media_dir: str) -> list[str]:
    """Where an item's media may lie: `<media_dir>/<id><ext>` (canonical, reported when missing), then the tails
    of the stored author path, longest first, no shorter than the id (shorter tails are ambiguous)."""
    ext = pathlib.PurePosixPath(item.media.replace("\\", "/")).suffix
    id_parts = item.id.count("/") + 1
    cands = [f"{media_dir}/{item.id}{ext}"] + media_suffix_candidates(item.media, min_parts=id_parts)
    return list(dict.fromkeys(cands))


class ChatReader(ReaderBuilder, skip_registration=True):
    """Label = assistant message (checked against CANDIDATES when VALIDATE), subtitle = user message."""

    SPLIT_FILES: dict[str, tuple[str, ...]] = {}   # split -> candidate annotation file names
    MEDIA_KEY = "videos"                            # or "audios"
    MEDIA_DIR = "video"
    CANDIDATES: tuple[str, ...] = ()
    VALIDATE = True

    def markers(self):
        return tuple(n for names in self.SPLIT_FILES.values() for n in names)

    def splits(self, root):
        return list(existing(root, self.SPLIT_FILES))

    def check_label(self, label: str, item: ChatItem, path: pathlib.Path) -> None:
        if not label:
            raise AnnotationError(f"{path}: item {item.index}: empty assistant message (the label)")
        if self.VALIDATE and self.CANDIDATES and label.lower() not in self.CANDIDATES:
            raise AnnotationError(f"{path}: item {item.index}: label {label!r} is not one of {list(self.CANDIDATES)}")

    def fields(self, root: pathlib.Path, item: ChatItem) -> dict[str, Any]:
        media, media_path = self.read_media(media_candidates(item, self.MEDIA_DIR))
        if self.MEDIA_KEY == "videos":
            return dict(video=media, video_path=media_path)
        return dict(audio=media, audio_path=media_path)

    def labels(self, item: ChatItem) -> dict[str, Any]:
        return dict(emotion=item.assistant, subtitle=item.user, candidates=list(self.CANDIDATES))

    def read_split(self, root: pathlib.Path, split: str) -> Iterator[dict[str, Any]]:
        path = existing(root, self.SPLIT_FILES)[split]
        for item in read_chat_items(path, self.MEDIA_KEY):
            self.check_label(item.assistant, item, path)
            yield dict(id=item.id, **self.fields(root, item), **self.labels(item))


class CremaD(ChatReader):
    """CREMA-D (audio only), split "train":

        crema_d_annotations.json   chat items with "audios"; user text empty, assistant = emotion word
        audio/<Emotion>_<ActorID>_<Sentence>_<EMO>_<Level>.wav

    Fills: id, audio(+_path), emotion, candidates (anger, disgust, fear, happy, neutral, sad);
    label_types: emotion_recognition (asked with candidates, = onehot_w_candidates).
    """

    name = "emox_crema_d"
    READER = "crema_d"
    FOLDERS = ("crema_d", "CREMA-D")
    SPLIT_FILES = {"train": ("crema_d_annotations.json",)}
    MEDIA_KEY = "audios"
    MEDIA_DIR = "audio"
    CANDIDATES = ("anger", "disgust", "fear", "happy", "neutral", "sad")
    LABEL_TYPES = ("emotion_recognition",)


class M3ed(ChatReader):
    """M3ED (audio only), split "train":

        m3ed_annotaton.json (sic; m3ed_annotation.json accepted)   chat items with "audios";
            user = Chinese utterance (→ subtitle), assistant = emotion word
        audio/<name>.wav

    The label set is not fixed (the file is not public): any non-empty label is accepted and candidates stay
    empty. Fills: id, audio(+_path), subtitle, emotion; label_types: emotion_recognition (asked without
    candidates, = onehot_wo_candidates).
    """

    name = "emox_m3ed"
    READER = "m3ed"
    FOLDERS = ("M3ED", "m3ed")
    SPLIT_FILES = {"train": ("m3ed_annotaton.json", "m3ed_annotation.json")}
    MEDIA_KEY = "audios"
    MEDIA_DIR = "audio"
    LABEL_TYPES = ("emotion_recognition",)


class CaerFerv39k(ChatReader):
    """CAER + FERV39k (video only), split "train":

        caer_ferv39k_ann.json   chat items with "videos" (CAER clips .avi, FERV39k clips .mp4)
        video/<id>.<ext>, or the tail of the stored path relative to the root (e.g. CAER/train/Anger/0001.avi)

    Fills: id, video(+_path), emotion, candidates (anger, disgust, fear, happy, neutral, sad, surprise);
    label_types: emotion_recognition (with candidates).
    """

    name = "emox_caer_ferv39k"
    READER = "caer_ferv39k"
    FOLDERS = ("CAER_FERV39K", "caer_ferv39k")
    SPLIT_FILES = {"train": ("caer_ferv39k_ann.json",)}
    CANDIDATES = ("anger", "disgust", "fear", "happy", "neutral", "sad", "surprise")
    LABEL_TYPES = ("emotion_recognition",)
