"""Writers for the on-disk layouts of the real datasets (evaluation-and-data.md §4), fed with EmoSynth clips.

Each layout is planned in memory first: `plan_<layout>(clips)` returns a `LayoutPlan` with the label files as
bytes (relative path -> bytes) and, per clip index, where its mp4 and wav go. The generator then writes the
label files once and each clip's media to every layout that uses it. Every root also gets
`emosynth_meta.csv` (EmoSynth-only; real readers ignore it): the hidden cue metadata of each media clip.

| layout          | root                          | label files                                                  | media |
|-----------------|-------------------------------|--------------------------------------------------------------|-------|
| mer2023         | `mer2023-dataset-process/`    | `label-6way.npz` (`train_corpus`, `test1_corpus`: name -> {'emo', 'val'}), `transcription-engchi-polish.csv` (name, chinese, english) | `video/{name}.mp4`, `audio/{name}.wav` |
| mercaptionplus  | `MER2025/`                    | train: `track2_train_mercaptionplus.csv` (name, openset), `track3_train_mercaptionplus.csv` (name, reason); test: `track2_train_ovmerd.csv`, `track3_train_ovmerd.csv`; `subtitle_chieng.csv` (name, chinese, english) | `video/video/{name}.mp4`, `audio/{name}.wav` |
| mintrec         | `MIntRec/`                    | `train_MIntRec_ann.json`, `test_MIntRec_ann.json`: [{messages: [{role: user, content}, {role: assistant, content: Intent}], videos: ["/dataset/MIntRec/video/{name}.mp4"]}] | `video/{name}.mp4`, `audio/{name}.wav` |
| avamerg         | `AvaMERG/`                    | `train.json`, `v_test_v5_0.json` (conversations, see `plan_avamerg`) | train `video/`, `audio/`; test `test_video/`, `test_audio/`; `dia{cid}utt{2*turn_id}_{speaker ID}.mp4/.wav` |
| mosi            | `cmumosi-process/`            | `label.npz` (`train_corpus`, `test_corpus`: name -> {'val'}), `transcription-engchi-polish.csv` | `subvideo/{name}.mp4`, `subaudio/{name}.wav` |

Names: MER-style `sample_{index:08d}`; MOSI-style `{video}_{segment}` = `esyn{index // 8:05d}_{index % 8 + 1}`;
MIntRec-style `S{season:02d}_E{episode:02d}_{n}`. EmoSynth has no Chinese transcript: `chinese` is empty.
The MIntRec `videos` entries are absolute paths that do not exist (like the real files, which hold the
authors' paths): readers must use the basename. `openset` is the Python list repr (`['happy', 'joyful']`),
which both the reference's and AffectGPT's `string_to_list` parse. The `.npz` files are written with fixed
zip timestamps so that the same seed gives byte-identical files; load them with
`np.load(path, allow_pickle=True)['train_corpus'].tolist()` as the reference does.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import zipfile

import numpy as np

from data_pipelines.emosynth import text
from data_pipelines.emosynth.clips import ClipText
from data_pipelines.emosynth.labels import ClipSpec
from data_pipelines.vocab import AVAMERG_EMOTION, EMOTIONS, INTENTS_BY_TEXT_EMOTION

LAYOUTS = ("mer2023", "mercaptionplus", "mintrec", "avamerg", "mosi")
ROOTS = {
    "mer2023": "mer2023-dataset-process",
    "mercaptionplus": "MER2025",
    "mintrec": "MIntRec",
    "avamerg": "AvaMERG",
    "mosi": "cmumosi-process",
}
META_COLUMNS = ("name", "split", "emotion", "deciding_modality", "face_cue", "voice_cue", "text_emotion",
                "intensity", "sentiment", "intent", "openset", "subtitle")

Clip = tuple[ClipSpec, ClipText]


@dataclasses.dataclass
class LayoutPlan:
    root: str
    label_files: dict[str, bytes]                    # relative to root -> content
    media: dict[int, tuple[str, str]]                # clip index -> (mp4 path, wav path), relative to root


def _csv(header, rows) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode("utf-8")


def _json(obj) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _npz(arrays: dict[str, dict]) -> bytes:
    """An np.savez-compatible archive of 0-d object arrays holding dicts, with fixed zip timestamps."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for key, value in arrays.items():
            arr = np.empty((), dtype=object)
            arr[()] = value
            member = io.BytesIO()
            np.lib.format.write_array(member, arr, allow_pickle=True)
            zf.writestr(zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0)), member.getvalue())
    return buf.getvalue()


def _openset(spec: ClipSpec) -> str:
    return repr(list(spec.openset))


def _meta_rows(named: list[tuple[str, Clip]]) -> bytes:
    rows = []
    for name, (s, t) in named:
        rows.append((name, s.split, s.emotion, s.deciding_modality, s.face_cue, s.voice_cue, s.text_emotion,
                     s.intensity, f"{s.sentiment:.3f}", s.intent, _openset(s), t.subtitle))
    return _csv(META_COLUMNS, rows)


def mer_name(index: int) -> str:
    return f"sample_{index:08d}"


def mosi_name(index: int) -> str:
    return f"esyn{index // 8:05d}_{index % 8 + 1}"


def mintrec_name(index: int) -> str:
    return f"S{index // 1000 + 1:02d}_E{(index // 100) % 10 + 1:02d}_{index % 100}"


def plan_mer2023(clips: list[Clip]) -> LayoutPlan:
    named = [(mer_name(s.index), (s, t)) for s, t in clips]
    corpora = {"train_corpus": {}, "test1_corpus": {}}
    for name, (s, _) in named:
        corpora["train_corpus" if s.split == "train" else "test1_corpus"][name] = {"emo": s.emotion,
                                                                                     "val": s.sentiment}
    return LayoutPlan(
        root=ROOTS["mer2023"],
        label_files={
            "label-6way.npz": _npz(corpora),
            "transcription-engchi-polish.csv": _csv(("name", "chinese", "english"),
                                                    [(n, "", t.subtitle) for n, (_, t) in named]),
            "emosynth_meta.csv": _meta_rows(named),
        },
        media={s.index: (f"video/{n}.mp4", f"audio/{n}.wav") for n, (s, _) in named},
    )


def plan_mercaptionplus(clips: list[Clip]) -> LayoutPlan:
    named = [(mer_name(s.index), (s, t)) for s, t in clips]
    files = {"subtitle_chieng.csv": _csv(("name", "chinese", "english"), [(n, "", t.subtitle) for n, (_, t) in named])}
    for split, tag in (("train", "mercaptionplus"), ("test", "ovmerd")):
        sub = [(n, c) for n, c in named if c[0].split == split]
        files[f"track2_train_{tag}.csv"] = _csv(("name", "openset"), [(n, _openset(s)) for n, (s, _) in sub])
        files[f"track3_train_{tag}.csv"] = _csv(("name", "reason"), [(n, t.reason) for n, (_, t) in sub])
    files["emosynth_meta.csv"] = _meta_rows(named)
    return LayoutPlan(root=ROOTS["mercaptionplus"], label_files=files,
                      media={s.index: (f"video/video/{n}.mp4", f"audio/{n}.wav") for n, (s, _) in named})


def plan_mintrec(clips: list[Clip]) -> LayoutPlan:
    named = [(mintrec_name(s.index), (s, t)) for s, t in clips]
    files = {}
    for split in ("train", "test"):
        files[f"{split}_MIntRec_ann.json"] = _json([
            {"messages": [{"role": "user", "content": t.subtitle}, {"role": "assistant", "content": s.intent}],
             "videos": [f"/dataset/MIntRec/video/{n}.mp4"]}
            for n, (s, t) in named if s.split == split])
    files["emosynth_meta.csv"] = _meta_rows(named)
    return LayoutPlan(root=ROOTS["mintrec"], label_files=files,
                      media={s.index: (f"video/{n}.mp4", f"audio/{n}.wav") for n, (s, _) in named})


def plan_mosi(clips: list[Clip]) -> LayoutPlan:
    named = [(mosi_name(s.index), (s, t)) for s, t in clips]
    corpora = {"train_corpus": {}, "test_corpus": {}}
    for name, (s, _) in named:
        corpora[f"{s.split}_corpus"][name] = {"val": s.sentiment}
    return LayoutPlan(
        root=ROOTS["mosi"],
        label_files={
            "label.npz": _npz(corpora),
            "transcription-engchi-polish.csv": _csv(("name", "chinese", "english"),
                                                    [(n, "", t.subtitle) for n, (_, t) in named]),
            "emosynth_meta.csv": _meta_rows(named),
        },
        media={s.index: (f"subvideo/{n}.mp4", f"subaudio/{n}.wav") for n, (s, _) in named},
    )


def _turn(turn_id: int, context: str, history: list[dict], response: str, coe: list[str], emotion: str) -> dict:
    return {
        "turn_id": turn_id,
        "context": context,
        "dialogue_history": history,
        "response": response,
        "chain_of_empathy": {"speaker_emotion": AVAMERG_EMOTION[emotion], "emotion_cause": coe[2],
                             "event_scenario": coe[0], "goal_to_response": coe[3]},
    }


def plan_avamerg(clips: list[Clip]) -> LayoutPlan:
    """AvaMERG conversations. Train: clips of one emotion paired into 2-turn conversations (both turns have
    media). Test: each clip is the last turn (turn 1) of its own conversation, after a text-only turn 0, and
    only that last turn has media (`test_video/`, `test_audio/`), as in the real `v_test_v5_0.json`.
    Within a conversation, context / event / cause / goal come from its first clip; the dialogue history
    lists every earlier utterance and ends with the current speaker utterance (the clip's transcript)."""
    convs: dict[str, list[list[Clip]]] = {"train": [], "test": []}
    for e in EMOTIONS:
        group = [c for c in clips if c[0].split == "train" and c[0].emotion == e]
        convs["train"] += [group[i:i + 2] for i in range(0, len(group), 2)]
    convs["train"].sort(key=lambda conv: conv[0][0].index)
    convs["test"] = [[c] for c in clips if c[0].split == "test"]
    files, media, named = {}, {}, []
    cid = 0
    for split, fname in (("train", "train.json"), ("test", "v_test_v5_0.json")):
        out = []
        for conv in convs[split]:
            first_spec, first_text = conv[0]
            speaker, listener = str(cid % 50 + 1), str(cid % 50 + 51)
            coe, context = first_text.coe, first_text.coe[0]
            history: list[dict] = []
            turns = []
            turn_clips: list[Clip | None] = list(conv)
            if split == "test":  # a text-only opening turn before the clip
                turn_clips = [None, conv[0]]
            for turn_id, clip in enumerate(turn_clips):
                emotion = first_spec.emotion
                if clip is None:
                    rng = np.random.default_rng([first_spec.render_seed, 2])
                    utterance = text.subtitle(emotion, INTENTS_BY_TEXT_EMOTION[emotion][0], rng)
                else:
                    utterance = clip[1].subtitle
                    name = f"dia{cid}utt{2 * turn_id}_{speaker}"
                    folder = ("video", "audio") if split == "train" else ("test_video", "test_audio")
                    media[clip[0].index] = (f"{folder[0]}/{name}.mp4", f"{folder[1]}/{name}.wav")
                    named.append((name, clip))
                history = history + [{"role": "speaker", "utterance": utterance}]
                response = first_text.response if turn_id == 0 else text.follow_up(emotion)
                turns.append(_turn(turn_id, context, list(history), response, coe, emotion))
                history = history + [{"role": "listener", "utterance": response}]
            out.append({"conversation_id": str(cid), "speaker_profile": {"ID": speaker},
                        "listener_profile": {"ID": listener}, "topic": first_text.topic, "turns": turns})
            cid += 1
        files[fname] = _json(out)
    files["emosynth_meta.csv"] = _meta_rows(named)
    return LayoutPlan(root=ROOTS["avamerg"], label_files=files, media=media)


PLANNERS = {"mer2023": plan_mer2023, "mercaptionplus": plan_mercaptionplus, "mintrec": plan_mintrec,
            "avamerg": plan_avamerg, "mosi": plan_mosi}


def plan(layout: str, clips: list[Clip]) -> LayoutPlan:
    if layout not in PLANNERS:
        raise ValueError(f"unknown EmoSynth layout {layout!r}; expected one of {LAYOUTS} or 'all'")
    return PLANNERS[layout](clips)
