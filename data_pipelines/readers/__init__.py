"""Real-dataset readers: TFDS builders (ArrayRecord, media as encoded bytes, no TensorFlow) reading each
dataset's published layout from `manual_dir` into the one record schema of `data_pipelines.schema`.

`READERS` maps the reader name (also each record's `dataset` field) to its builder class; the TFDS builder name
is `emox_<reader name>` so it never clashes with TFDS's own catalog. Use `data_pipelines.sources.prepare` /
`data_source` rather than the classes directly.
"""

from __future__ import annotations

from data_pipelines.readers.avamerg import AvaMerg
from data_pipelines.readers.base import AnnotationError, ReaderBuilder
from data_pipelines.readers.chat import CaerFerv39k, CremaD, M3ed
from data_pipelines.readers.intent import MIntRec, MIntRec2
from data_pipelines.readers.openset import MerCaptionPlus, OvMerd, OvMerdPlus
from data_pipelines.readers.reasoning import Emer, MerrFine
from data_pipelines.readers.unibench import (
    ChSims, ChSimsV2, CmuMosei, CmuMosi, Iemocap, Meld, Mer2023, Mer2024)

_CLASSES: tuple[type[ReaderBuilder], ...] = (
    Mer2023, Mer2024, Meld, Iemocap, CmuMosi, CmuMosei, ChSims, ChSimsV2, OvMerdPlus, OvMerd, Emer,
    MerCaptionPlus, MerrFine, MIntRec, MIntRec2, AvaMerg, CremaD, M3ed, CaerFerv39k)

READERS: dict[str, type[ReaderBuilder]] = {cls.READER: cls for cls in _CLASSES}
assert len(READERS) == len(_CLASSES), "two readers share a name"


def get_reader(name: str) -> type[ReaderBuilder]:
    """The builder class of reader `name` (e.g. "mintrec"); the TFDS name "emox_mintrec" is accepted too."""
    key = name[len("emox_"):] if name.startswith("emox_") else name
    if key not in READERS:
        raise KeyError(f"unknown reader {name!r}; known readers: {sorted(READERS)}")
    return READERS[key]


__all__ = ["READERS", "get_reader", "AnnotationError", "ReaderBuilder"] + [c.__name__ for c in _CLASSES]
