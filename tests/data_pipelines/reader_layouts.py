"""Tiny copies of each real dataset's published layout, written by the reader tests.

Each `make_<reader>(root)` writes a few annotation rows and a couple of media files under `root` (the
`manual_dir`) and returns the expectation {split: {id: {field: value}}}. Media present on disk hold
`b"media:<path>"` (or a real tiny wav); missing media are expected as b"" with their canonical path.
"""

from __future__ import annotations

import csv
import io
import json
import pathlib
import wave

import numpy as np


def put(root: pathlib.Path, rel: str, data: bytes | None = None) -> bytes:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    data = f"media:{rel}".encode() if data is None else data
    path.write_bytes(data)
    return data


def tiny_wav(samples: int = 160, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.arange(samples, dtype=np.int16).tobytes())
    return buf.getvalue()


def write_csv(path: pathlib.Path, header: list[str], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def write_npz(path: pathlib.Path, **corpora: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{k: np.array(v, dtype=object) for k, v in corpora.items()})


def write_json(path: pathlib.Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")


def media(video=b"", video_path="", audio=b"", audio_path="") -> dict:
    return dict(video=video, video_path=video_path, audio=audio, audio_path=audio_path)


# --- MER-UniBench processed folders -------------------------------------------------------------------------


def _transcripts(root, names_texts, column="english"):
    write_csv(root / ("transcription_merge.csv" if column == "chinese" else "transcription-engchi-polish.csv"),
              ["name", "chinese", "english"],
              [[n, f"zh {t}", t] if column == "english" else [n, t, f"en {t}"] for n, t in names_texts])


def make_mer2023(manual: pathlib.Path, folder="mer2023-dataset-process", column="english") -> dict:
    root = manual / folder  # exercises the parent-of-root lookup
    write_npz(root / "label-6way.npz",
              train_corpus={"sample_00000001": {"emo": "happy", "val": 1.5}, "sample_00000002": {"emo": "angry"}},
              test1_corpus={"sample_00000003": {"emo": "sad"}})
    _transcripts(root, [("sample_00000001", "I won, really"), ("sample_00000003", "oh no")], column)
    v1 = put(root, "video/sample_00000001.mp4")
    v2 = put(root, "video/sample_00000002.avi")
    a1 = put(root, "audio/sample_00000001.wav", tiny_wav())
    cands = ["angry", "happy", "sad"]
    return {
        "train": {
            # subtitle: the english (MER2023) or chinese (MER2024) column
            "sample_00000001": dict(emotion="happy", sentiment=1.5, subtitle="I won, really", candidates=cands,
                                    **media(v1, "video/sample_00000001.mp4", a1, "audio/sample_00000001.wav"),
                                    label_types=["onehot_w_candidates", "onehot_wo_candidates"]),
            "sample_00000002": dict(emotion="angry", subtitle="", **media(
                v2, "video/sample_00000002.avi", b"", "audio/sample_00000002.wav")),
        },
        "test": {"sample_00000003": dict(emotion="sad", subtitle="oh no", **media(
            b"", "video/sample_00000003.mp4", b"", "audio/sample_00000003.wav"))},
    }


def make_mer2024(manual):
    return make_mer2023(manual, folder="mer2024-dataset-process", column="chinese")


def make_meld(manual):
    write_npz(manual / "label.npz", train_corpus={"dia0_utt0": {"emo": 1}, "dia0_utt1": {"emo": np.int64(6)}},
              test_corpus={"dia9_utt2": {"emo": 0}})
    _transcripts(manual, [("dia0_utt0", "Yay!"), ("dia0_utt1", "What?"), ("dia9_utt2", "Stop it.")])
    v = put(manual, "subvideo/dia0_utt0.mp4")
    a = put(manual, "subaudio/dia9_utt2.wav")
    cands = ["anger", "joy", "sadness", "neutral", "disgust", "fear", "surprise"]
    return {"train": {"dia0_utt0": dict(emotion="joy", subtitle="Yay!", candidates=cands,
                                        **media(v, "subvideo/dia0_utt0.mp4", b"", "subaudio/dia0_utt0.wav")),
                      "dia0_utt1": dict(emotion="surprise", subtitle="What?")},
            "test": {"dia9_utt2": dict(emotion="anger", **media(b"", "subvideo/dia9_utt2.mp4", a,
                                                                "subaudio/dia9_utt2.wav"))}}


def make_iemocap(manual):
    write_npz(manual / "label_4way.npz", whole_corpus={
        "Ses01F_impro01_F000": {"emo": 0}, "Ses04M_script02_M010": {"emo": 3}, "Ses05F_impro03_F001": {"emo": 1}})
    _transcripts(manual, [("Ses05F_impro03_F001", "I lost it.")])
    v = put(manual, "subvideo-tgt/Ses01F_impro01_F000.avi")
    return {"train": {"Ses01F_impro01_F000": dict(emotion="happy", video=v,
                                                  video_path="subvideo-tgt/Ses01F_impro01_F000.avi"),
                      "Ses04M_script02_M010": dict(emotion="anger")},
            "test": {"Ses05F_impro03_F001": dict(emotion="sad", subtitle="I lost it.",
                                                 candidates=["happy", "sad", "neutral", "anger"])}}


def _make_valence(manual, video_dir, audio_dir):
    write_npz(manual / "label.npz", train_corpus={"clipA": {"val": 2.2}, "clipB": {"val": -0.6}},
              test_corpus={"clipC": {"val": np.float32(0.0)}})
    _transcripts(manual, [("clipA", "great movie"), ("clipB", "boring"), ("clipC", "it is a film")])
    v = put(manual, f"{video_dir}/clipA.mp4")
    a = put(manual, f"{audio_dir}/clipB.wav", tiny_wav())
    lt = ["valence", "sentiment"]
    return {"train": {"clipA": dict(sentiment=2.2, subtitle="great movie", label_types=lt,
                                    candidates=["negative", "neutral", "positive"],
                                    **media(v, f"{video_dir}/clipA.mp4", b"", f"{audio_dir}/clipA.wav")),
                      "clipB": dict(sentiment=-0.6, **media(b"", f"{video_dir}/clipB.mp4", a,
                                                            f"{audio_dir}/clipB.wav"))},
            "test": {"clipC": dict(sentiment=0.0, subtitle="it is a film")}}


def make_cmu_mosi(manual):
    return _make_valence(manual, "subvideo", "subaudio")


def make_cmu_mosei(manual):
    return _make_valence(manual, "subvideo_new", "subaudio")


def make_ch_sims(manual):
    return _make_valence(manual, "video", "audio")


def make_ch_sims_v2(manual):
    return _make_valence(manual, "video_new", "audio")


# --- open vocabulary / reasoning ----------------------------------------------------------------------------


def make_ovmerd_plus(manual):
    write_csv(manual / "ovlabel.csv", ["name", "openset"],
              [["samplenew_1", "['happy', 'excited']"], ["samplenew_2", "[]"], ["samplenew_3", "[worried, sad]"]])
    write_csv(manual / "subtitle_eng.csv", ["name", "sentence"], [["samplenew_1", "We did it, finally!"]])
    v = put(manual, "video/samplenew_1.mp4")
    return {"test": {"samplenew_1": dict(emotions=["happy", "excited"], subtitle="We did it, finally!",
                                         label_types=["ovlabel"], **media(v, "video/samplenew_1.mp4", b"",
                                                                          "audio/samplenew_1.wav")),
                     "samplenew_2": dict(emotions=["neutral"], subtitle=""),
                     "samplenew_3": dict(emotions=["worried", "sad"])}}


def _make_mer2025(manual, suffix):
    root = manual / "MER2025"
    write_csv(root / f"track2_train_{suffix}.csv", ["name", "openset"],
              [["s1", "['angry', 'annoyed']"], ["s2", "[]"]])
    write_csv(root / f"track3_train_{suffix}.csv", ["name", "reason"],
              [["s1", "He frowns and shouts, so he is angry."], ["s3", "Calm voice, neutral face."]])
    write_csv(root / "subtitle_chieng.csv", ["name", "chinese", "english"], [["s1", "别说了", "Stop talking."]])
    v = put(root, "video/video/s1.mp4")
    a = put(root, "audio/s3.wav", tiny_wav())
    return {"train": {
        "s1": dict(emotions=["angry", "annoyed"], reason="He frowns and shouts, so he is angry.",
                   subtitle="Stop talking.", label_types=["ovlabel", "description"],
                   **media(v, "video/video/s1.mp4", b"", "audio/s1.wav")),
        "s2": dict(emotions=["neutral"], reason="", label_types=["ovlabel"]),
        "s3": dict(emotions=[], reason="Calm voice, neutral face.", label_types=["description"],
                   **media(b"", "video/video/s3.mp4", a, "audio/s3.wav"))}}


def make_ovmerd(manual):
    return {"test": _make_mer2025(manual, "ovmerd")["train"]}  # OV-MERD is an evaluation set


def make_mer_caption_plus(manual):
    return _make_mer2025(manual, "mercaptionplus")


def make_emer(manual):
    write_csv(manual / "gt-eng.csv", ["names", "emotions", "subtitles", "reasons"], [
        ["sample_00000648", "angry", "Don't talk to me, ever.", "He roared, so: anger, clearly."],
        ["sample_00000680", "happy", "", "She smiles."]])
    v = put(manual, "sample_00000648.mp4")
    a = put(manual, "audio/sample_00000680.wav", tiny_wav())
    return {"test": {"sample_00000648": dict(emotion="angry", subtitle="Don't talk to me, ever.",
                                             reason="He roared, so: anger, clearly.", label_types=["description"],
                                             **media(v, "sample_00000648.mp4", b"", "sample_00000648.wav")),
                     "sample_00000680": dict(emotion="happy", subtitle="", reason="She smiles.",
                                             **media(b"", "sample_00000680.mp4", a, "audio/sample_00000680.wav"))}}


def make_merr_fine(manual):
    def entry(emo, text, reason):
        return {"AU_list": ["AU04"], "visual_prior_list": ["Frowns furrowed"], "audio_prior_list": "negative tone.",
                "peak_index": "3", "peak_AU_list": ["AU04"], "pseu_emotion": emo, "text": text,
                "smp_reason_caption": reason}
    write_json(manual / "MER2023" / "MERR_fine_grained.json", {
        "sample_00000023": entry("angry", "I was trying to be quiet.", "A bald man frowns; likely anger."),
        "samplenew_00000009": entry("neutral", "Okay.", "Flat tone.")})
    v = put(manual / "MER2023", "test3/sample_00000023.avi")
    return {"train": {"sample_00000023": dict(emotion="angry", emotions=["angry"], subtitle="I was trying to be quiet.",
                                              reason="A bald man frowns; likely anger.",
                                              label_types=["description", "ovlabel"],
                                              **media(v, "test3/sample_00000023.avi", b"",
                                                      "audio/sample_00000023.wav")),
                      "samplenew_00000009": dict(emotion="neutral", reason="Flat tone.")}}


# --- chat JSONs ---------------------------------------------------------------------------------------------


def chat(user, label, key, path):
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": label}], key: [path]}


def make_mintrec(manual):
    write_json(manual / "train_MIntRec_ann.json", [
        chat("we are the manager.", "Introduce", "videos", "/home/lab/dataset/MIntRec/video/S06_E06_589.mp4"),
        chat("thank you so much.", "Ask for help", "videos", "/home/lab/dataset/MIntRec/video/S05_E16_329.mp4")])
    write_json(manual / "test_MIntRec_ann.json", [
        chat("great job, everyone.", "Praise", "videos", "/home/lab/dataset/MIntRec/video/S04_E01_12.mp4")])
    v = put(manual, "video/S06_E06_589.mp4")
    a = put(manual, "audio/S04_E01_12.wav", tiny_wav())
    from data_pipelines.readers.intent import MINTREC_INTENTS
    return {"train": {"S06_E06_589": dict(intent="Introduce", subtitle="we are the manager.",
                                          candidates=list(MINTREC_INTENTS), label_types=["intent_recognition"],
                                          **media(v, "video/S06_E06_589.mp4", b"", "audio/S06_E06_589.wav")),
                      "S05_E16_329": dict(intent="Ask for help")},
            "test": {"S04_E01_12": dict(intent="Praise", **media(b"", "video/S04_E01_12.mp4", a,
                                                                  "audio/S04_E01_12.wav"))}}


def make_mintrec2(manual):
    write_json(manual / "train_MIntRec2_ann.json", [
        chat("are you sure about that?", "Doubt", "videos", "/home/lab/MIntRec2.0/video/dia0_utt3.mp4"),
        chat("what do you think?", "Asking for opinions", "videos", "/home/lab/MIntRec2.0/video/dia2_utt0.mp4")])
    v = put(manual, "video/dia0_utt3.mp4")
    from data_pipelines.readers.intent import MINTREC2_INTENTS
    return {"train": {"dia0_utt3": dict(intent="Doubt", candidates=list(MINTREC2_INTENTS),
                                        **media(v, "video/dia0_utt3.mp4", b"", "audio/dia0_utt3.wav")),
                      "dia2_utt0": dict(intent="Asking for opinions", subtitle="what do you think?")}}


def _turn(turn_id, history, response, emotion):
    return {"turn_id": turn_id, "context": "sentimental",
            "dialogue_history": [{"role": r, "utterance": u} for r, u in history], "response": response,
            "chain_of_empathy": {"speaker_emotion": emotion, "emotion_cause": f"cause {turn_id}",
                                 "event_scenario": f"event {turn_id}", "goal_to_response": f"goal {turn_id}"}}


def make_avamerg(manual):
    conv = {"conversation_id": "00012", "speaker_profile": {"ID": 7, "age": "young"}, "listener_profile": {"ID": 3},
            "topic": "pets", "turns": [
                _turn(1, [("speaker", "My dog died today.")], "I'm so sorry.", "sad"),
                _turn(2, [("speaker", "My dog died today."), ("listener", "I'm so sorry."),
                          ("speaker", "He was 14.")], "That is a long, loved life.", "devastated")]}
    write_json(manual / "train.json", [conv])
    test_conv = {"conversation_id": "5", "speaker_profile": {"ID": "2"}, "listener_profile": {}, "topic": "work",
                 "turns": [_turn(1, [("speaker", "I got promoted!")], "Congrats!", "proud"),
                           _turn(2, [("speaker", "I got promoted!"), ("listener", "Congrats!"),
                                     ("speaker", "I start Monday.")], "You will do great.", "excited")]}
    write_json(manual / "v_test_v5_0.json", [test_conv])
    v = put(manual, "video/dia00012utt4_7.mp4")
    a = put(manual, "test_audio/dia5utt4_2.wav", tiny_wav())
    lt = ["empathic_response_with_coe", "emotion_recognition"]
    return {"train": {
        "dia00012utt2_7": dict(subtitle="My dog died today.", history="", emotion="sad", response="I'm so sorry.",
                               coe=["event 1", "sad", "cause 1", "goal 1"], label_types=lt,
                               **media(b"", "video/dia00012utt2_7.mp4", b"", "audio/dia00012utt2_7.wav")),
        "dia00012utt4_7": dict(subtitle="He was 14.", history="speaker: My dog died today.\nlistener: I'm so sorry.",
                               emotion="devastated", response="That is a long, loved life.",
                               **media(v, "video/dia00012utt4_7.mp4", b"", "audio/dia00012utt4_7.wav"))},
        "test": {"dia5utt4_2": dict(subtitle="I start Monday.", emotion="excited", response="You will do great.",
                                    history="speaker: I got promoted!\nlistener: Congrats!",
                                    coe=["event 2", "excited", "cause 2", "goal 2"],
                                    **media(b"", "test_video/dia5utt4_2.mp4", a, "test_audio/dia5utt4_2.wav"))}}


def make_crema_d(manual):
    write_json(manual / "crema_d_annotations.json", [
        chat("", "anger", "audios", "/data/crema_d/audio/Anger_1001_DFA_ANG_XX.wav"),
        chat("", "neutral", "audios", "/data/crema_d/audio/Neutral_1002_IEO_NEU_XX.wav")])
    a = put(manual, "audio/Anger_1001_DFA_ANG_XX.wav", tiny_wav())
    cands = ["anger", "disgust", "fear", "happy", "neutral", "sad"]
    return {"train": {"Anger_1001_DFA_ANG_XX": dict(emotion="anger", subtitle="", candidates=cands,
                                                    label_types=["emotion_recognition"],
                                                    **media(b"", "", a, "audio/Anger_1001_DFA_ANG_XX.wav")),
                      "Neutral_1002_IEO_NEU_XX": dict(emotion="neutral", audio=b"",
                                                      audio_path="audio/Neutral_1002_IEO_NEU_XX.wav")}}


def make_m3ed(manual):
    write_json(manual / "m3ed_annotaton.json", [  # sic: the reference's file name
        {"messages": [{"user": "你怎么又迟到了"}, {"assistant": "anger"}], "audios": ["/x/M3ED/audio/A_1_2.wav"]},
        {"messages": [{"user": "太好了"}, {"assistant": "happy"}], "audios": ["/x/M3ED/audio/B_3_4.wav"]}])
    a = put(manual, "audio/B_3_4.wav", tiny_wav())
    return {"train": {"A_1_2": dict(emotion="anger", subtitle="你怎么又迟到了", candidates=[],
                                    **media(b"", "", b"", "audio/A_1_2.wav")),
                      "B_3_4": dict(emotion="happy", subtitle="太好了", **media(b"", "", a, "audio/B_3_4.wav"))}}


def make_caer_ferv39k(manual):
    write_json(manual / "caer_ferv39k_ann.json", [
        chat("", "Anger", "videos", "/home/u/CAER/train/Anger/0001.avi"),
        chat("", "happy", "videos", "/home/u/CAER/train/Happy/0001.avi"),
        chat("", "surprise", "videos", "/home/u/FERV39k/Surprise/clip_77.mp4")])
    v1 = put(manual, "CAER/train/Anger/0001.avi")     # found through the tail of the stored author path
    v3 = put(manual, "video/clip_77.mp4")             # found as <MEDIA_DIR>/<id><ext>
    return {"train": {"Anger/0001": dict(emotion="Anger", **media(v1, "CAER/train/Anger/0001.avi", b"", "")),
                      "Happy/0001": dict(emotion="happy", **media(b"", "video/Happy/0001.avi", b"", "")),
                      "clip_77": dict(emotion="surprise", label_types=["emotion_recognition"],
                                      candidates=["anger", "disgust", "fear", "happy", "neutral", "sad", "surprise"],
                                      **media(v3, "video/clip_77.mp4", b"", ""))}}


LAYOUTS = {name[len("make_"):]: fn for name, fn in globals().items() if name.startswith("make_")}
