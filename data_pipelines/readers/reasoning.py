"""Emotion-reasoning readers: EMER (evaluation, gt-eng.csv) and MERR fine-grained (Emotion-LLaMA, training)."""

from __future__ import annotations

import pathlib
from typing import Any, Iterator

from data_pipelines.readers.base import (
    AnnotationError, ReaderBuilder, read_csv, read_json, require, text_or_empty)


class Emer(ReaderBuilder):
    """EMER v1 (100 MER2023 clips), split "test":

        gt-eng.csv   columns names, emotions, subtitles, reasons
        <name>.mp4|.avi and <name>.wav in the root, or in video/ and audio/

    Fills: id, video(+_path), audio(+_path), subtitle (subtitles), emotion (emotions), reason (reasons);
    label_types: description.
    """

    name = "emox_emer"
    READER = "emer"
    ANNOTATION = "gt-eng.csv"
    FOLDERS = ("EMER", "emer")
    LABEL_TYPES = ("description",)

    def splits(self, root):
        return ["test"]

    def read_split(self, root: pathlib.Path, split: str) -> Iterator[dict[str, Any]]:
        path = root / self.ANNOTATION
        for line, row in read_csv(path, ["names", "emotions", "subtitles", "reasons"]):
            name = row["names"].strip()
            if not name:
                raise AnnotationError(f"{path}: line {line}: empty 'names'")
            video, video_path = self.read_media([f"{d}{name}{e}" for d in ("", "video/") for e in (".mp4", ".avi")])
            audio, audio_path = self.read_media([f"{name}.wav", f"audio/{name}.wav"])
            yield dict(id=name, video=video, video_path=video_path, audio=audio, audio_path=audio_path,
                       subtitle=text_or_empty(row["subtitles"]), emotion=row["emotions"].strip(),
                       reason=text_or_empty(row["reasons"]))


class MerrFine(ReaderBuilder):
    """MERR fine-grained (Emotion-LLaMA; NX config folder `data/MER2023/`), split "train":

        MERR_fine_grained.json   {name: {AU_list, visual_prior_list, audio_prior_list, peak_index,
                                         peak_AU_list, pseu_emotion, text, smp_reason_caption}}
        test3/<name>.mp4|.avi, audio/<name>.wav

    Fills: id, video(+_path), audio(+_path), subtitle (text), reason (smp_reason_caption),
    emotion and emotions (pseu_emotion); label_types: description, ovlabel.
    """

    name = "emox_merr_fine"
    READER = "merr_fine"
    ANNOTATION = "MERR_fine_grained.json"
    FOLDERS = ("MER2023", "MERR", "merr")
    LABEL_TYPES = ("description", "ovlabel")

    def splits(self, root):
        return ["train"]

    def read_split(self, root: pathlib.Path, split: str) -> Iterator[dict[str, Any]]:
        path = root / self.ANNOTATION
        data = read_json(path)
        if not isinstance(data, dict):
            raise AnnotationError(f"{path}: expected an object name -> annotation, got {type(data).__name__}")
        for name in sorted(data):
            where = f"{path}: entry {name!r}"
            entry = data[name]
            emotion = require(entry, "pseu_emotion", where).strip()
            video, video_path = self.read_media([f"test3/{name}.mp4", f"test3/{name}.avi"])
            audio, audio_path = self.read_media([f"audio/{name}.wav"])
            yield dict(id=name, video=video, video_path=video_path, audio=audio, audio_path=audio_path,
                       subtitle=text_or_empty(require(entry, "text", where)),
                       reason=require(entry, "smp_reason_caption", where),
                       emotion=emotion, emotions=[emotion] if emotion else ["neutral"])
