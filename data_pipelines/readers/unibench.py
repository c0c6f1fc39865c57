"""MER-UniBench processed folders (AffectGPT's release): MER2023, MER2024, MELD, IEMOCAP (discrete emotion) and
CMU-MOSI, CMU-MOSEI, CH-SIMS, CH-SIMS v2 (valence).

Common layout of a dataset root (evaluation-and-data.md §4)::

    <root>/<label npz>                       pickled dicts name -> {'emo': str|int, 'val': float}
    <root>/<transcript csv>                  columns name, chinese, english
    <root>/<video dir>/<name>.mp4 | .avi
    <root>/<audio dir>/<name>.wav

`manual_dir` is the root or its parent (holding the conventional folder, e.g. `mer2023-dataset-process/`).
"""

from __future__ import annotations

import abc
import pathlib
from typing import Any, Iterator

import numpy as np

from data_pipelines.readers.base import (
    AnnotationError, ReaderBuilder, as_float, load_npz_corpus, read_csv, text_or_empty)


class UniBenchReader(ReaderBuilder, skip_registration=True):
    """One npz of per-split corpora + one transcript CSV + video/audio folders."""

    CORPORA: dict[str, str] = {}            # split -> npz key
    TRANSCRIPT = "transcription-engchi-polish.csv"
    TEXT_COLUMN = "english"
    VIDEO_DIR = "video"
    VIDEO_EXTS = (".mp4", ".avi")
    AUDIO_DIR = "audio"

    def splits(self, root: pathlib.Path) -> list[str]:
        return list(self.CORPORA)

    def corpus(self, root: pathlib.Path, split: str) -> dict[str, dict[str, Any]]:
        return load_npz_corpus(root / self.ANNOTATION, self.CORPORA[split])

    def transcripts(self, root: pathlib.Path) -> dict[str, str]:
        path = root / self.TRANSCRIPT
        if not path.is_file():  # the text modality is then empty; labels stay usable
            return {}
        return {row["name"]: text_or_empty(row[self.TEXT_COLUMN])
                for _, row in read_csv(path, ["name", self.TEXT_COLUMN])}

    def candidates(self, root: pathlib.Path) -> list[str]:
        """The label candidates shared by every record of the dataset."""
        return []

    @abc.abstractmethod
    def labels(self, entry: dict[str, Any], where: str, candidates: list[str]) -> dict[str, Any]:
        """Schema label fields of one npz entry; `where` names the file/key/sample for errors."""

    def read_split(self, root: pathlib.Path, split: str) -> Iterator[dict[str, Any]]:
        corpus = self.corpus(root, split)
        subtitles = self.transcripts(root)
        candidates = self.candidates(root)
        where_file = root / self.ANNOTATION
        for name in sorted(corpus):
            video, video_path = self.read_media([f"{self.VIDEO_DIR}/{name}{e}" for e in self.VIDEO_EXTS])
            audio, audio_path = self.read_media([f"{self.AUDIO_DIR}/{name}.wav"])
            fields = self.labels(corpus[name], f"{where_file}[{self.CORPORA[split]!r}][{name!r}]", candidates)
            yield dict(id=str(name), video=video, video_path=video_path, audio=audio, audio_path=audio_path,
                       subtitle=subtitles.get(name, ""), **fields)


# --- discrete emotion (MER) -----------------------------------------------------------------------------------


class EmotionReader(UniBenchReader, skip_registration=True):
    """`emo` is a label string, or an int index into EMOTIONS. Candidates: EMOTIONS when fixed, else the sorted
    set of labels in the label file (all corpora, so train and test share one list).
    Fills: id, video(+_path), audio(+_path), subtitle, emotion, candidates, label_types (onehot_w_candidates,
    onehot_wo_candidates), and sentiment when an entry also has a `val`."""

    EMOTIONS: tuple[str, ...] = ()
    LABEL_TYPES = ("onehot_w_candidates", "onehot_wo_candidates")

    def emotion_of(self, entry: dict[str, Any], where: str) -> str:
        if "emo" not in entry:
            raise AnnotationError(f"{where}: missing field 'emo' (has {sorted(entry)})")
        emo = entry["emo"]
        if isinstance(emo, (int, np.integer)):
            if not 0 <= int(emo) < len(self.EMOTIONS):
                raise AnnotationError(f"{where}: emotion index {int(emo)} outside 0..{len(self.EMOTIONS) - 1} "
                                      f"of {list(self.EMOTIONS)}")
            return self.EMOTIONS[int(emo)]
        if not isinstance(emo, str) or not emo.strip():
            raise AnnotationError(f"{where}: field 'emo' should be a label or an index, got {emo!r}")
        if self.EMOTIONS and emo not in self.EMOTIONS:
            raise AnnotationError(f"{where}: unknown emotion {emo!r}; expected one of {list(self.EMOTIONS)}")
        return emo

    def labels(self, entry, where, candidates):
        out = dict(emotion=self.emotion_of(entry, where), candidates=list(candidates))
        if "val" in entry:  # MER2023/2024 entries may carry a valence too: kept as annotated, not prompted
            out["sentiment"] = as_float(entry["val"], f"{where}['val']")
        return out

    def candidates(self, root):
        if self.EMOTIONS:
            return list(self.EMOTIONS)
        found = set()
        for s in self.splits(root):
            for name, entry in self.corpus(root, s).items():
                found.add(self.emotion_of(entry, f"{root / self.ANNOTATION}[{self.CORPORA[s]!r}][{name!r}]"))
        return sorted(found)


class Mer2023(EmotionReader):
    """MER2023 (`mer2023-dataset-process/`): label-6way.npz (train_corpus → train, test1_corpus → test; `emo` a
    string), transcription-engchi-polish.csv (english), video/ (.mp4|.avi), audio/."""

    name = "emox_mer2023"
    READER = "mer2023"
    ANNOTATION = "label-6way.npz"
    FOLDERS = ("mer2023-dataset-process",)
    CORPORA = {"train": "train_corpus", "test": "test1_corpus"}


class Mer2024(EmotionReader):
    """MER2024 (`mer2024-dataset-process/`): like MER2023, transcripts transcription_merge.csv, **chinese**."""

    name = "emox_mer2024"
    READER = "mer2024"
    ANNOTATION = "label-6way.npz"
    FOLDERS = ("mer2024-dataset-process",)
    CORPORA = {"train": "train_corpus", "test": "test1_corpus"}
    TRANSCRIPT = "transcription_merge.csv"
    TEXT_COLUMN = "chinese"


class Meld(EmotionReader):
    """MELD (`meld-process/`): label.npz (train_corpus, test_corpus; `emo` an index into anger, joy, sadness,
    neutral, disgust, fear, surprise), transcription-engchi-polish.csv, subvideo/, subaudio/."""

    name = "emox_meld"
    READER = "meld"
    ANNOTATION = "label.npz"
    FOLDERS = ("meld-process",)
    CORPORA = {"train": "train_corpus", "test": "test_corpus"}
    EMOTIONS = ("anger", "joy", "sadness", "neutral", "disgust", "fear", "surprise")
    VIDEO_DIR = "subvideo"
    AUDIO_DIR = "subaudio"


class Iemocap(EmotionReader):
    """IEMOCAP 4-way (`iemocap-process/`): label_4way.npz `whole_corpus` (`emo` an index into happy, sad, neutral,
    anger); sessions 1–4 → train, session 5 → test (session = 5th character of the name, `Ses0X…`);
    transcription-engchi-polish.csv, subvideo-tgt/ (.avi|.mp4), subaudio/."""

    name = "emox_iemocap"
    READER = "iemocap"
    ANNOTATION = "label_4way.npz"
    FOLDERS = ("iemocap-process",)
    CORPORA = {"train": "whole_corpus", "test": "whole_corpus"}
    EMOTIONS = ("happy", "sad", "neutral", "anger")
    VIDEO_DIR = "subvideo-tgt"
    VIDEO_EXTS = (".avi", ".mp4")
    AUDIO_DIR = "subaudio"

    def corpus(self, root, split):
        whole = super().corpus(root, split)
        out = {}
        for name, entry in whole.items():
            if not (name.startswith("Ses") and name[3:5].isdigit()):
                raise AnnotationError(f"{root / self.ANNOTATION}['whole_corpus'][{name!r}]: cannot read the "
                                      "session from the name (expected 'Ses0X...')")
            if (int(name[3:5]) == 5) == (split == "test"):
                out[name] = entry
        return out


# --- valence (MSA) -------------------------------------------------------------------------------------------


class ValenceReader(UniBenchReader, skip_registration=True):
    """`val` is a float valence. Fills: id, video(+_path), audio(+_path), subtitle, sentiment (= val),
    candidates (negative, neutral, positive), label_types (valence, sentiment)."""

    CORPORA = {"train": "train_corpus", "test": "test_corpus"}
    ANNOTATION = "label.npz"
    LABEL_TYPES = ("valence", "sentiment")
    VIDEO_DIR = "subvideo"
    AUDIO_DIR = "subaudio"

    def candidates(self, root):
        return ["negative", "neutral", "positive"]

    def labels(self, entry, where, candidates):
        if "val" not in entry:
            raise AnnotationError(f"{where}: missing field 'val' (has {sorted(entry)})")
        return dict(sentiment=as_float(entry["val"], f"{where}['val']"), candidates=list(candidates))


class CmuMosi(ValenceReader):
    """CMU-MOSI (`cmumosi-process/`): label.npz (train_corpus, test_corpus; `val` float), subvideo/, subaudio/,
    transcription-engchi-polish.csv."""

    name = "emox_cmu_mosi"
    READER = "cmu_mosi"
    FOLDERS = ("cmumosi-process",)


class CmuMosei(ValenceReader):
    """CMU-MOSEI (`cmumosei-process/`): as CMU-MOSI with videos in subvideo_new/."""

    name = "emox_cmu_mosei"
    READER = "cmu_mosei"
    FOLDERS = ("cmumosei-process",)
    VIDEO_DIR = "subvideo_new"


class ChSims(ValenceReader):
    """CH-SIMS (`sims-process/`): label.npz (`val` in [-1, 1]), video/, audio/, transcription-engchi-polish.csv."""

    name = "emox_ch_sims"
    READER = "ch_sims"
    FOLDERS = ("sims-process",)
    VIDEO_DIR = "video"
    AUDIO_DIR = "audio"


class ChSimsV2(ValenceReader):
    """CH-SIMS v2 (`simsv2-process/`): as CH-SIMS with videos in video_new/."""

    name = "emox_ch_sims_v2"
    READER = "ch_sims_v2"
    FOLDERS = ("simsv2-process",)
    VIDEO_DIR = "video_new"
    AUDIO_DIR = "audio"
