"""Real-dataset readers: TFDS builders (ArrayRecord, media as encoded bytes, no TensorFlow) reading each
dataset's published layout from `manual_dir` into the one record schema of `data_pipelines.schema`.

`READERS` maps the reader name (also each record's `dataset` field) to its builder class; the TFDS builder name
is `emox_<reader name>` so it never clashes with TFDS's own catalog. Use `data_pipelines.sources.prepare` /
`data_source` rather than the classes directly. `manual_dir` is the dataset folder, or a parent holding it
under its conventional name (second column). Each class docstring details its layout and fields.

| reader           | folder / identifying file                          | splits      | label_types                      |
|------------------|----------------------------------------------------|-------------|----------------------------------|
| mer2023          | mer2023-dataset-process/label-6way.npz             | train, test | onehot_w/wo_candidates           |
| mer2024          | mer2024-dataset-process/label-6way.npz             | train, test | onehot_w/wo_candidates           |
| meld             | meld-process/label.npz                             | train, test | onehot_w/wo_candidates           |
| iemocap          | iemocap-process/label_4way.npz                     | train, test | onehot_w/wo_candidates           |
| cmu_mosi         | cmumosi-process/label.npz                          | train, test | valence, sentiment               |
| cmu_mosei        | cmumosei-process/label.npz                         | train, test | valence, sentiment               |
| ch_sims          | sims-process/label.npz                             | train, test | valence, sentiment               |
| ch_sims_v2       | simsv2-process/label.npz                           | train, test | valence, sentiment               |
| ovmerd_plus      | ovmerdplus-process/ovlabel.csv                     | test        | ovlabel                          |
| ovmerd           | MER2025/track{2,3}_train_ovmerd.csv                | test        | ovlabel, description             |
| mer_caption_plus | MER2025/track{2,3}_train_mercaptionplus.csv        | train       | ovlabel, description             |
| emer             | EMER/gt-eng.csv                                    | test        | description                      |
| merr_fine        | MER2023/MERR_fine_grained.json                     | train       | description, ovlabel             |
| mintrec          | MIntRec/{train,test}_MIntRec_ann.json              | train, test | intent_recognition (20)          |
| mintrec2         | MIntRec2/{train,test}_MIntRec2_ann.json            | train, test | intent_recognition (30)          |
| avamerg          | AvaMERG/train.json, v_test_v5_0.json               | train, test | empathic_response_with_coe, emotion_recognition |
| crema_d          | crema_d/crema_d_annotations.json                   | train       | emotion_recognition (6, audio)   |
| m3ed             | M3ED/m3ed_annotaton.json                           | train       | emotion_recognition (audio)      |
| caer_ferv39k     | CAER_FERV39K/caer_ferv39k_ann.json                 | train       | emotion_recognition (7, video)   |

A split whose annotation file is absent (or that has no records) is left out.
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
