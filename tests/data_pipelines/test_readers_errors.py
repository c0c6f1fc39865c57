"""Malformed annotation files raise `AnnotationError` naming the file and the line / item / field."""

from __future__ import annotations

import json
import re

import pytest

from data_pipelines import sources
from data_pipelines.readers import AnnotationError
from tests.data_pipelines.reader_layouts import LAYOUTS, chat, write_csv, write_json, write_npz


def prepare_fails(name, manual, tmp_path, pattern):
    with pytest.raises(AnnotationError, match=pattern):
        sources.prepare(name, manual, tmp_path / "tfds")


def test_truncated_json_names_file_and_line(tmp_path):
    m = tmp_path / "m"
    LAYOUTS["mintrec"](m)
    text = (m / "train_MIntRec_ann.json").read_text()
    (m / "train_MIntRec_ann.json").write_text(text[: len(text) // 2])
    lines = text[: len(text) // 2].count("\n") + 1
    prepare_fails("mintrec", m, tmp_path, rf"train_MIntRec_ann\.json: line {lines}, column \d+: invalid JSON")


def test_unknown_intent_names_item(tmp_path):
    m = tmp_path / "m"
    write_json(m / "train_MIntRec_ann.json", [
        chat("hi", "Greet", "videos", "/a/video/S1_E1_1.mp4"), chat("hm", "Ponder", "videos", "/a/video/S1_E1_2.mp4")])
    prepare_fails("mintrec", m, tmp_path, r"train_MIntRec_ann\.json: item 1: label 'Ponder' is not one of")


def test_chat_item_without_media_names_field(tmp_path):
    m = tmp_path / "m"
    write_json(m / "crema_d_annotations.json", [{"messages": [{"role": "assistant", "content": "sad"}]}])
    prepare_fails("crema_d", m, tmp_path, r"crema_d_annotations\.json: item 0: field 'audios'")


def test_csv_missing_column_and_bad_row(tmp_path):
    m = tmp_path / "m"
    write_csv(m / "gt-eng.csv", ["names", "emotions", "subtitles"], [["s1", "sad", "x"]])
    prepare_fails("emer", m, tmp_path, r"gt-eng\.csv: line 1: missing column\(s\) \['reasons'\]")
    (m / "gt-eng.csv").write_text("names,emotions,subtitles,reasons\ns1,sad,x,y\ns2,sad,unquoted, comma,z\n")
    prepare_fails("emer", m, tmp_path, r"gt-eng\.csv: line 3: 5 fields, expected 4")


def test_unterminated_label_list_names_line_and_field(tmp_path):
    m = tmp_path / "m"
    write_csv(m / "ovlabel.csv", ["name", "openset"], [["a", "['happy']"], ["b", "['sad', 'tired'"]])
    prepare_fails("ovmerd_plus", m, tmp_path, r"ovlabel\.csv: line 3, field 'openset': unterminated label list")


def test_npz_missing_key_and_bad_entries(tmp_path):
    m = tmp_path / "m"
    write_npz(m / "label.npz", train_corpus={"d0_u0": {"emo": 1}})
    prepare_fails("meld", m, tmp_path, r"label\.npz: missing key 'test_corpus'; keys are \['train_corpus'\]")
    write_npz(m / "label.npz", train_corpus={"d0_u0": {"emo": 9}}, test_corpus={})
    prepare_fails("meld", m, tmp_path, re.escape("label.npz['train_corpus']['d0_u0']: emotion index 9 outside 0..6"))
    write_npz(m / "label.npz", train_corpus={"c1": {"val": "high"}}, test_corpus={})
    prepare_fails("cmu_mosi", m, tmp_path, re.escape("label.npz['train_corpus']['c1']['val']: expected a number"))
    write_npz(m / "label.npz", train_corpus={"c1": {"emo": "sad"}}, test_corpus={})
    prepare_fails("cmu_mosi", m, tmp_path, re.escape("['c1']: missing field 'val'"))
    (m / "label.npz").write_bytes(b"not a zip")
    prepare_fails("cmu_mosi", m, tmp_path, r"label\.npz: cannot read as \.npz")


def test_iemocap_name_without_session(tmp_path):
    m = tmp_path / "m"
    write_npz(m / "label_4way.npz", whole_corpus={"clip9": {"emo": 0}})
    prepare_fails("iemocap", m, tmp_path, r"\['clip9'\]: cannot read the session")


def test_avamerg_missing_coe_field_names_conversation_and_turn(tmp_path):
    m = tmp_path / "m"
    LAYOUTS["avamerg"](m)
    data = json.loads((m / "train.json").read_text())
    del data[0]["turns"][1]["chain_of_empathy"]["emotion_cause"]
    write_json(m / "train.json", data)
    prepare_fails("avamerg", m, tmp_path,
                  r"train\.json: conversation 0, turns\[1\], chain_of_empathy: missing field 'emotion_cause'")


def test_merr_entry_with_wrong_type(tmp_path):
    m = tmp_path / "m"
    write_json(m / "MERR_fine_grained.json", {"s1": {"pseu_emotion": "sad", "text": "x", "smp_reason_caption": 3}})
    prepare_fails("merr_fine", m, tmp_path, r"entry 's1': field 'smp_reason_caption' should be str, got int")


def test_duplicate_ids_are_rejected(tmp_path):
    m = tmp_path / "m"
    write_json(m / "train_MIntRec_ann.json", [chat("a", "Greet", "videos", "/x/video/S1_E1_1.mp4"),
                                              chat("b", "Thank", "videos", "/x/video/S1_E1_1.mp4")])
    prepare_fails("mintrec", m, tmp_path, r"mintrec/train .*: duplicate id '[^']*S1_E1_1'")


def test_empty_corpus_leaves_its_split_out(tmp_path):
    m = tmp_path / "m"
    write_npz(m / "label.npz", train_corpus={"c1": {"val": 0.5}}, test_corpus={})
    b = sources.prepare("ch_sims", m, tmp_path / "tfds")
    # The empty test corpus is left out (TFDS cannot write an empty split).
    assert b.info.splits["train"].num_examples == 1 and "test" not in b.info.splits


def test_no_records_at_all_is_an_error(tmp_path):
    m = tmp_path / "m"
    write_npz(m / "label.npz", train_corpus={}, test_corpus={})
    prepare_fails("cmu_mosei", m, tmp_path, r"cmu_mosei: no records in any split under")
