"""Open-vocabulary readers: OV-MERD+ (AffectGPT's MER-UniBench folder) and the MER2025 layout shared by
NX's OV-MERD and MER-Caption+ (evaluation-and-data.md §4, reference-architecture.md §10.5).

Label lists are strings such as "['happy', 'excited']" (parsed by `parse_label_list`); the reference turns an
empty list into ['neutral'], and so do we.
"""

from __future__ import annotations

import pathlib
from typing import Any, Iterator

from data_pipelines.readers.base import (
    AnnotationError, ReaderBuilder, parse_label_list, read_csv, text_or_empty)


def _labels(cell: str, where: str) -> list[str]:
    return parse_label_list(cell, where) or ["neutral"]


class OvMerdPlus(ReaderBuilder):
    """OV-MERD+ (AG-new, `ovmerdplus-process/`), an evaluation set (532 clips) → split "test":

        ovlabel.csv       columns name, openset (a string list)
        subtitle_eng.csv  columns name, sentence
        video/<name>.mp4|.avi, audio/<name>.wav

    Fills: id, video(+_path), audio(+_path), subtitle, emotions; label_types: ovlabel.
    """

    name = "emox_ovmerd_plus"
    READER = "ovmerd_plus"
    ANNOTATION = "ovlabel.csv"
    FOLDERS = ("ovmerdplus-process",)
    LABEL_TYPES = ("ovlabel",)

    def splits(self, root):
        return ["test"]

    def read_split(self, root: pathlib.Path, split: str) -> Iterator[dict[str, Any]]:
        sub_path = root / "subtitle_eng.csv"
        subtitles = ({r["name"]: text_or_empty(r["sentence"]) for _, r in read_csv(sub_path, ["name", "sentence"])}
                     if sub_path.is_file() else {})
        path = root / self.ANNOTATION
        for line, row in read_csv(path, ["name", "openset"]):
            name = row["name"].strip()
            if not name:
                raise AnnotationError(f"{path}: line {line}: empty 'name'")
            video, video_path = self.read_media([f"video/{name}.mp4", f"video/{name}.avi"])
            audio, audio_path = self.read_media([f"audio/{name}.wav"])
            yield dict(id=name, video=video, video_path=video_path, audio=audio, audio_path=audio_path,
                       subtitle=subtitles.get(name, ""),
                       emotions=_labels(row["openset"], f"{path}: line {line}, field 'openset'"))


class Mer2025Layout(ReaderBuilder, skip_registration=True):
    """The MER2025 folder (NX `data/MER2025/`), one split (SPLIT):

        track2_train_<SUFFIX>.csv   columns name, openset   (open-vocabulary labels; [] → ['neutral'])
        track3_train_<SUFFIX>.csv   columns name, reason    (emotion-reasoning description)
        subtitle_chieng.csv         columns name, chinese, english   (english → subtitle)
        video/video/<name>.mp4      (note the nested folder), audio/<name>.wav

    One record per name in track2 ∪ track3. Fills: id, video(+_path), audio(+_path), subtitle, emotions,
    reason; label_types: ovlabel where track2 has the name, description where track3 has it.
    """

    SUFFIX = ""
    SPLIT = "train"
    FOLDERS = ("MER2025", "mer2025")

    def splits(self, root):
        return [self.SPLIT]

    def read_split(self, root: pathlib.Path, split: str) -> Iterator[dict[str, Any]]:
        labels: dict[str, list[str]] = {}
        reasons: dict[str, str] = {}
        track2 = root / f"track2_train_{self.SUFFIX}.csv"
        track3 = root / f"track3_train_{self.SUFFIX}.csv"
        if track2.is_file():
            for line, row in read_csv(track2, ["name", "openset"]):
                labels[row["name"].strip()] = _labels(row["openset"], f"{track2}: line {line}, field 'openset'")
        if track3.is_file():
            for line, row in read_csv(track3, ["name", "reason"]):
                reasons[row["name"].strip()] = text_or_empty(row["reason"])
        if not labels and not reasons:
            raise FileNotFoundError(f"{self.READER}: neither {track2} nor {track3} holds any row")
        if "" in labels or "" in reasons:
            raise AnnotationError(f"{track2 if '' in labels else track3}: a row has an empty 'name'")
        sub_path = root / "subtitle_chieng.csv"
        subtitles = ({r["name"]: text_or_empty(r["english"]) for _, r in read_csv(sub_path, ["name", "english"])}
                     if sub_path.is_file() else {})
        for name in sorted(set(labels) | set(reasons)):
            video, video_path = self.read_media([f"video/video/{name}.mp4", f"video/{name}.mp4"])
            audio, audio_path = self.read_media([f"audio/{name}.wav"])
            label_types = (["ovlabel"] if name in labels else []) + (["description"] if name in reasons else [])
            yield dict(id=name, video=video, video_path=video_path, audio=audio, audio_path=audio_path,
                       subtitle=subtitles.get(name, ""), emotions=labels.get(name, []),
                       reason=reasons.get(name, ""), label_types=label_types)

    def markers(self):
        # Either track file identifies the root (a user may hold only one of them).
        return (f"track2_train_{self.SUFFIX}.csv", f"track3_train_{self.SUFFIX}.csv")


class MerCaptionPlus(Mer2025Layout):
    """MER-Caption+ in the MER2025 layout (track*_train_mercaptionplus.csv), training data → split "train".
    label_types: ovlabel, description."""

    name = "emox_mer_caption_plus"
    READER = "mer_caption_plus"
    SUFFIX = "mercaptionplus"
    ANNOTATION = "track2_train_mercaptionplus.csv"
    LABEL_TYPES = ("ovlabel", "description")


class OvMerd(Mer2025Layout):
    """NX's OV-MERD in the MER2025 layout (track*_train_ovmerd.csv), an OV-MER *evaluation* set
    (reference-architecture.md §7.2), hence split "test" despite the file names. label_types: ovlabel
    (+ description where track3 has the name)."""

    name = "emox_ovmerd"
    READER = "ovmerd"
    SUFFIX = "ovmerd"
    SPLIT = "test"
    ANNOTATION = "track2_train_ovmerd.csv"
    LABEL_TYPES = ("ovlabel", "description")
