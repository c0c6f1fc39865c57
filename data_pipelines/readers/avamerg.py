"""AvaMERG reader (empathetic response generation with a Chain of Empathy)."""

from __future__ import annotations

import pathlib
from typing import Any, Iterator

from data_pipelines.readers.base import AnnotationError, ReaderBuilder, existing, read_json, require

COE_FIELDS = ("event_scenario", "speaker_emotion", "emotion_cause", "goal_to_response")  # schema `coe` order


class AvaMerg(ReaderBuilder):
    """AvaMERG (`data/AvaMERG/`):

        train.json         list of conversations → split "train", one record per turn
        v_test_v5_0.json   same schema → split "test", the last turn of each conversation only
        video/, audio/             training media   dia{conversation_id}utt{2·turn_id}_{speaker ID}.mp4 / .wav
        test_video/, test_audio/   test media, same naming

    Conversation: {conversation_id, speaker_profile{ID, ...}, listener_profile, topic, turns: [{turn_id,
    context, dialogue_history: [{role, utterance}], response, chain_of_empathy: {speaker_emotion,
    emotion_cause, event_scenario, goal_to_response}}]}.

    Fills: id, video(+_path), audio(+_path), subtitle (the current user input = the last utterance of the
    dialogue history), history (the earlier utterances, one `role: utterance` line each), emotion
    (speaker_emotion, as annotated; the ED projection belongs to evaluation), response, coe ([event scenario,
    speaker emotion, emotion cause, response goal]); label_types: empathic_response_with_coe,
    emotion_recognition. The turn's `context` field is not used (neither does the reference's prompt text).
    """

    name = "emox_avamerg"
    READER = "avamerg"
    ANNOTATION = "train.json"
    FOLDERS = ("AvaMERG", "avamerg")
    SPLIT_FILES = {"train": ("train.json",), "test": ("v_test_v5_0.json",)}
    MEDIA_DIRS = {"train": ("video", "audio"), "test": ("test_video", "test_audio")}
    LABEL_TYPES = ("empathic_response_with_coe", "emotion_recognition")

    def markers(self):
        return ("train.json", "v_test_v5_0.json")

    def splits(self, root):
        return list(existing(root, self.SPLIT_FILES))

    def read_split(self, root: pathlib.Path, split: str) -> Iterator[dict[str, Any]]:
        path = existing(root, self.SPLIT_FILES)[split]
        data = read_json(path)
        if not isinstance(data, list):
            raise AnnotationError(f"{path}: expected a list of conversations, got {type(data).__name__}")
        video_dir, audio_dir = self.MEDIA_DIRS[split]
        for c, conv in enumerate(data):
            where = f"{path}: conversation {c}"
            conv_id = require(conv, "conversation_id", where, (str, int))
            speaker = require(require(conv, "speaker_profile", where, dict), "ID", f"{where}, speaker_profile",
                              (str, int))
            turns = require(conv, "turns", where, list)
            if not turns:
                raise AnnotationError(f"{where}: field 'turns' is empty")
            chosen = list(enumerate(turns)) if split == "train" else [(len(turns) - 1, turns[-1])]
            for t, turn in chosen:
                yield self._record(root, turn, f"{where}, turns[{t}]", conv_id, speaker, video_dir, audio_dir)

    def _record(self, root, turn, where, conv_id, speaker, video_dir, audio_dir) -> dict[str, Any]:
        turn_id = require(turn, "turn_id", where, (str, int))
        try:
            turn_no = int(turn_id)
        except ValueError:
            raise AnnotationError(f"{where}: field 'turn_id' should be an integer, got {turn_id!r}") from None
        history = require(turn, "dialogue_history", where, list)
        lines = []
        for h, msg in enumerate(history):
            role = require(msg, "role", f"{where}, dialogue_history[{h}]")
            lines.append((role, require(msg, "utterance", f"{where}, dialogue_history[{h}]")))
        coe = require(turn, "chain_of_empathy", where, dict)
        steps = [require(coe, k, f"{where}, chain_of_empathy") for k in COE_FIELDS]
        name = f"dia{conv_id}utt{2 * turn_no}_{speaker}"
        video, video_path = self.read_media([f"{video_dir}/{name}.mp4"])
        audio, audio_path = self.read_media([f"{audio_dir}/{name}.wav"])
        return dict(id=name, video=video, video_path=video_path, audio=audio, audio_path=audio_path,
                    subtitle=lines[-1][1] if lines else "",
                    history="\n".join(f"{r}: {u}" for r, u in lines[:-1]),
                    emotion=steps[1].strip(), response=require(turn, "response", where), coe=steps)
