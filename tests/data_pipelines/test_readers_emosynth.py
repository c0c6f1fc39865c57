"""The real-dataset readers parse EmoSynth's output in the MER2023, MER-Caption+/OV-MERD, MIntRec, AvaMERG and
CMU-MOSI layouts: record counts per split, media bytes present (real mp4/wav), and labels that agree with
EmoSynth's own per-clip metadata (`emosynth_meta.csv`, which the readers ignore)."""

from __future__ import annotations

import ast
import csv

import pytest

from data_pipelines import sources

emosynth = pytest.importorskip("data_pipelines.emosynth")

# reader -> (EmoSynth layout, its root folder inside EmoSynth's output)
CASES = {
    "mer2023": ("mer2023", "mer2023-dataset-process"),
    "mer_caption_plus": ("mercaptionplus", "MER2025"),
    "ovmerd": ("mercaptionplus", "MER2025"),
    "mintrec": ("mintrec", "MIntRec"),
    "avamerg": ("avamerg", "AvaMERG"),
    "cmu_mosi": ("mosi", "cmumosi-process"),
}


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("emosynth")
    cfg = emosynth.SynthConfig(size=32, num_frames=8, fps=8)
    manifest = emosynth.generate(out, clips=20, seed=3, layouts="mer2023,mercaptionplus,mintrec,avamerg,mosi",
                                 cfg=cfg, workers=1)
    return out, manifest


def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def meta(root):
    with open(root / "emosynth_meta.csv", newline="", encoding="utf-8") as f:
        return {r["name"]: r for r in csv.DictReader(f)}


@pytest.mark.parametrize("reader", sorted(CASES))
def test_reader_parses_emosynth_layout(reader, synth, tmp_path):
    out, manifest = synth
    layout, folder = CASES[reader]
    # manual_dir is EmoSynth's output folder: the reader finds its dataset folder inside it.
    b = sources.prepare(reader, out, tmp_path / "tfds")
    info = meta(out / folder)
    counts = {s: b.info.splits[s].num_examples for s in b.info.splits}
    n_train, n_test = manifest["splits"]["train"], manifest["splits"]["test"]
    expected = {"mer_caption_plus": {"train": n_train}, "ovmerd": {"test": n_test}}.get(
        reader, {"train": n_train, "test": n_test})
    assert counts == expected
    for split in counts:
        src = sources.data_source(reader, split, tmp_path / "tfds")
        for i in range(len(src)):
            r = src[i]
            rid = text(r["id"])
            m = info[rid]
            assert r["video"][4:8] == b"ftyp", f"{reader}/{rid}: not an mp4 ({text(r['video_path'])})"
            assert r["audio"][:4] == b"RIFF" and r["audio"][8:12] == b"WAVE", f"{reader}/{rid}: not a wav"
            if reader == "mer2023":
                assert text(r["emotion"]) == m["emotion"]
                assert float(r["sentiment"]) == pytest.approx(float(m["sentiment"]), abs=1e-3)
            elif reader in ("mer_caption_plus", "ovmerd"):
                assert [text(x) for x in r["emotions"]] == (ast.literal_eval(m["openset"]) or ["neutral"])
                assert text(r["reason"]) and set(map(text, r["label_types"])) == {"ovlabel", "description"}
            elif reader == "mintrec":
                assert text(r["intent"]) == m["intent"] and text(r["subtitle"]) == m["subtitle"]
            elif reader == "avamerg":
                assert text(r["subtitle"]) == m["subtitle"]
                assert len(r["coe"]) == 4 and text(r["response"])
            elif reader == "cmu_mosi":
                assert float(r["sentiment"]) == pytest.approx(float(m["sentiment"]), abs=1e-3)
            if reader != "avamerg":
                assert text(r["subtitle"]) == m["subtitle"]
