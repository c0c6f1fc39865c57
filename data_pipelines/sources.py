"""Preparing real datasets and opening them as random-access sources for Grain.

    builder = prepare("mintrec", manual_dir="/data/MIntRec", data_dir="/data/tfds")   # once: writes ArrayRecord
    src = data_source("mintrec", "train", data_dir="/data/tfds")                      # len(src), src[i]
    ds = grain.MapDataset.source(src)

Records come back from TFDS as dicts of the schema fields with Text as UTF-8 bytes, lists as lists of bytes,
media as bytes and `sentiment` as a float32 (`data_pipelines.pipeline.normalize_record` turns one into the
schema's Python types).
"""

from __future__ import annotations

import pathlib

import tensorflow_datasets as tfds

from data_pipelines.readers import get_reader
from data_pipelines.readers.base import ReaderBuilder

tfds.disable_progress_bar()


def builder(name: str, data_dir: str | pathlib.Path) -> ReaderBuilder:
    """The TFDS builder of reader `name` rooted at `data_dir` (ArrayRecord files)."""
    return get_reader(name)(data_dir=str(data_dir), file_format="array_record")


def prepare(name: str, manual_dir: str | pathlib.Path, data_dir: str | pathlib.Path,
            *, overwrite: bool = False) -> ReaderBuilder:
    """Reads reader `name`'s layout from `manual_dir` and writes it under `data_dir`; returns the builder.

    A prepared dataset is reused unless `overwrite` (TFDS then regenerates it from `manual_dir`).
    """
    manual_dir = pathlib.Path(manual_dir)
    if not manual_dir.is_dir():
        raise FileNotFoundError(f"{name}: manual_dir {manual_dir} does not exist")
    b = builder(name, data_dir)
    mode = tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS
    if overwrite:
        mode = tfds.download.GenerateMode.FORCE_REDOWNLOAD
    b.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir), download_mode=mode))
    return b


def data_source(name: str, split: str, data_dir: str | pathlib.Path):
    """Random-access source (`len`, `__getitem__`) of a prepared split, for `grain.MapDataset.source`."""
    b = builder(name, data_dir)
    if not b.is_prepared():
        raise FileNotFoundError(f"{name} is not prepared under {data_dir}; run "
                                f"data_pipelines.sources.prepare({name!r}, manual_dir, {str(data_dir)!r}) first")
    available = sorted(b.info.splits.keys())
    if split not in available:
        raise KeyError(f"{name} under {data_dir} has no split {split!r}; available: {available}")
    return b.as_data_source(split=split)
