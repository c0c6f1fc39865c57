"""The real annotation files in ../shared/data load through the same readers as a user's copy would:
MIntRec / MIntRec2.0 (chat JSONs), EMER (gt-eng.csv) and MERR fine-grained (JSON). Each test lays out a
manual_dir like the published dataset, with the shared files linked in under their published names."""

from __future__ import annotations

import collections
import os

import pytest

from data_pipelines import sources


def link(src, dst):
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(src, dst)


def records(name, split, data_dir):
    src = sources.data_source(name, split, data_dir)
    return [src[i] for i in range(len(src))]


def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


@pytest.mark.slow
def test_mintrec_real_annotations(shared_data, tmp_path):
    manual = tmp_path / "MIntRec"
    link(shared_data / "mintrec" / "train.json", manual / "train_MIntRec_ann.json")
    link(shared_data / "mintrec" / "test.json", manual / "test_MIntRec_ann.json")
    b = sources.prepare("mintrec", manual, tmp_path / "tfds")
    assert {s: b.info.splits[s].num_examples for s in b.info.splits} == {"train": 1779, "test": 445}
    train, test = records("mintrec", "train", tmp_path / "tfds"), records("mintrec", "test", tmp_path / "tfds")
    for recs in (train, test):
        intents = collections.Counter(text(r["intent"]) for r in recs)
        assert len(intents) == 20
        assert {i.lower() for i in intents} == {text(c) for c in recs[0]["candidates"]}
    assert collections.Counter(text(r["intent"]) for r in train).most_common(2) == [("Complain", 229), ("Inform", 227)]
    # The author paths' basenames name the clips; no videos are shipped, so media are empty with their path.
    r = train[0]
    assert text(r["video_path"]) == f"video/{text(r['id'])}.mp4" and r["video"] == b""
    assert text(r["audio_path"]) == f"audio/{text(r['id'])}.wav" and r["audio"] == b""
    assert all(text(r["subtitle"]) for r in train)
    assert not {text(r["id"]) for r in train} & {text(r["id"]) for r in test}


@pytest.mark.slow
def test_mintrec2_real_annotations(shared_data, tmp_path):
    manual = tmp_path / "MIntRec2.0"
    link(shared_data / "mintrec2" / "train.json", manual / "train_MIntRec2_ann.json")
    b = sources.prepare("mintrec2", manual, tmp_path / "tfds")
    assert {s: b.info.splits[s].num_examples for s in b.info.splits} == {"train": 5644}  # no test file shared
    train = records("mintrec2", "train", tmp_path / "tfds")
    intents = collections.Counter(text(r["intent"]) for r in train)
    assert len(intents) == 30 and intents.most_common(1) == [("Inform", 577)]
    assert all(text(r["id"]).startswith("dia") and "_utt" in text(r["id"]) for r in train)


@pytest.mark.slow
def test_emer_real_ground_truth(shared_data, tmp_path):
    manual = tmp_path / "EMER"
    link(shared_data / "emer" / "gt-eng.csv", manual / "gt-eng.csv")
    sources.prepare("emer", manual, tmp_path / "tfds")
    recs = records("emer", "test", tmp_path / "tfds")
    assert len(recs) == 100
    assert collections.Counter(text(r["emotion"]) for r in recs) == {
        "angry": 36, "happy": 32, "worried": 17, "sad": 11, "surprise": 4}
    by_id = {text(r["id"]): r for r in recs}
    assert text(by_id["sample_00000648"]["subtitle"]) == "Don't talk to me about feelings anymore."
    assert text(by_id["sample_00000648"]["reason"]).endswith("his emotional state is anger.")
    assert all(len(text(r["reason"]).split()) > 10 for r in recs)


@pytest.mark.slow
def test_merr_fine_real_descriptions(shared_data, tmp_path):
    manual = tmp_path / "MER2023"
    link(shared_data / "merr" / "MERR_fine_grained.json", manual / "MERR_fine_grained.json")
    sources.prepare("merr_fine", manual, tmp_path / "tfds")
    recs = records("merr_fine", "train", tmp_path / "tfds")
    assert len(recs) == 4487
    emotions = collections.Counter(text(r["emotion"]) for r in recs)
    assert emotions.most_common(3) == [("neutral", 1352), ("sad", 1091), ("angry", 874)]
    assert all(text(r["reason"]) for r in recs)
    assert all([text(x) for x in r["emotions"]] == [text(r["emotion"])] for r in recs)
    assert sum(text(r["id"]).startswith("samplenew_") for r in recs) > 0  # MER2024 clips are in it too
