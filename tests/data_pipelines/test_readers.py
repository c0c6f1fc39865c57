"""Every reader parses a tiny copy of its published layout (made by `reader_layouts`) into schema records,
written as ArrayRecord and read back through `sources.data_source`."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest

from data_pipelines import sources
from data_pipelines.readers import READERS, get_reader
from data_pipelines.schema import EXAMPLE_FIELDS, LABEL_TYPES
from tests.data_pipelines.reader_layouts import LAYOUTS


def as_python(record) -> dict:
    """A TFDS record (Text as bytes) → schema Python types, to compare with expectations."""
    out = {}
    for key, (typ, _) in EXAMPLE_FIELDS.items():
        v = record[key]
        if typ is str:
            out[key] = v.decode() if isinstance(v, bytes) else str(v)
        elif typ is bytes:
            out[key] = v.item() if isinstance(v, np.ndarray) else bytes(v)
        elif typ is list:
            out[key] = [x.decode() if isinstance(x, bytes) else str(x) for x in v]
        else:
            out[key] = float(v)
    return out


def load_all(name, data_dir) -> dict[str, dict[str, dict]]:
    b = sources.builder(name, data_dir)
    out = {}
    for split in b.info.splits.keys():
        src = sources.data_source(name, split, data_dir)
        recs = [as_python(src[i]) for i in range(len(src))]
        out[split] = {r["id"]: r for r in recs}
        assert len(out[split]) == len(src), f"duplicate ids in {name}/{split}"
    return out


def test_registry_covers_every_dataset_and_layout():
    assert set(READERS) == set(LAYOUTS)
    assert len(READERS) == 19
    for name, cls in READERS.items():
        assert cls.name == f"emox_{name}" and cls.READER == name
        assert cls.LABEL_TYPES and set(cls.LABEL_TYPES) <= set(LABEL_TYPES), name
        assert cls.MANUAL_DOWNLOAD_INSTRUCTIONS == cls.__doc__  # the docstring states the layout
    assert get_reader("emox_mintrec") is get_reader("mintrec")
    with pytest.raises(KeyError, match="unknown reader 'mosi'.*cmu_mosi"):
        get_reader("mosi")


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_reader_parses_its_layout(name, tmp_path):
    manual, data = tmp_path / "manual", tmp_path / "tfds"
    expected = LAYOUTS[name](manual)
    b = sources.prepare(name, manual, data)
    assert b.info.file_format.value == "array_record"
    got = load_all(name, data)
    assert set(got) == set(expected), f"{name}: splits"
    for split, exp_records in expected.items():
        assert set(got[split]) == set(exp_records), f"{name}/{split}: ids"
        for rid, exp in exp_records.items():
            rec = got[split][rid]
            assert rec["dataset"] == name and rec["split"] == split
            assert rec["label_types"] and set(rec["label_types"]) <= set(b.LABEL_TYPES)
            for field, value in exp.items():
                if field == "sentiment":
                    assert rec[field] == pytest.approx(value, abs=1e-6), f"{name}/{split}/{rid}.{field}"
                else:
                    assert rec[field] == value, f"{name}/{split}/{rid}.{field}"
            if "sentiment" not in exp:
                assert math.isnan(rec["sentiment"]) or "valence" in rec["label_types"]


def test_prepare_reuses_and_data_source_errors(tmp_path):
    LAYOUTS["mintrec"](tmp_path / "m")
    sources.prepare("mintrec", tmp_path / "m", tmp_path / "d")
    (tmp_path / "m" / "test_MIntRec_ann.json").unlink()  # reused as prepared, not regenerated
    assert len(sources.prepare("mintrec", tmp_path / "m", tmp_path / "d").as_data_source("test")) == 1
    # The builders are registered with TFDS, so its own name-based API finds them too.
    import tensorflow_datasets as tfds
    assert {k: len(v) for k, v in tfds.data_source("emox_mintrec", data_dir=tmp_path / "d").items()} == {
        "train": 2, "test": 1}
    b = sources.prepare("mintrec", tmp_path / "m", tmp_path / "d", overwrite=True)  # regenerated: no test file
    assert list(b.info.splits) == ["train"]
    with pytest.raises(KeyError, match=r"no split 'validation'; available: \['train'\]"):
        sources.data_source("mintrec", "validation", tmp_path / "d")
    with pytest.raises(FileNotFoundError, match="emer is not prepared"):
        sources.data_source("emer", "test", tmp_path / "d")
    with pytest.raises(FileNotFoundError, match="manual_dir .* does not exist"):
        sources.prepare("emer", tmp_path / "nowhere", tmp_path / "d")
    # A dataset root with no annotation file names what it expected and where.
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="expected 'gt-eng.csv'"):
        sources.prepare("emer", tmp_path / "empty", tmp_path / "d")


def test_grain_reads_a_prepared_source(tmp_path):
    grain = pytest.importorskip("grain")
    LAYOUTS["cmu_mosi"](tmp_path / "m")
    sources.prepare("cmu_mosi", tmp_path / "m", tmp_path / "d")
    ds = grain.MapDataset.source(sources.data_source("cmu_mosi", "train", tmp_path / "d"))
    vals = sorted(float(r["sentiment"]) for r in ds)
    assert vals == pytest.approx([-0.6, 2.2])


def test_reimporting_a_reader_module_does_not_reregister():
    import data_pipelines.readers.intent as intent
    importlib.reload(intent)  # would raise "Dataset with name emox_mintrec already registered" without the guard
    import tensorflow_datasets as tfds
    assert tfds.builder_cls("emox_mintrec").READER == "mintrec"
