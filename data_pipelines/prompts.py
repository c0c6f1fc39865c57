"""Six-task prompt builder: schema record + label_type + modality mode -> prompt and target segments.

Template (`reference-architecture.md` §3.1), for the default ``template="vicuna"``::

    <BOS> "###Human: " <modality clauses> <subtitle | history clause> <instruction> " " [utterance line]
          <question> " ###Assistant: "  ||  <answer> "###" <EOS>

``template="qwen_chat"`` wraps the same content in Qwen's chat markup instead (system / user / assistant
turns; BOS = ``<|im_start|>``, EOS = ``<|im_end|>``) and the target is ``answer <EOS>`` (no ``###``).

A prompt is kept *structured* (`PromptSpec`: the variable text fields plus what to render around them) so the
tokenizer can shorten one field and re-render without ever touching a placeholder run. Rendering yields
segments: ``("text", str)``, ``("ph", modality)`` (one run of placeholder ids, expanded to the configured
count at tokenization), ``("special", "bos" | "eos")``.

REFERENCE DEFECT (§12.15): the reference omits ``###Human: `` for modes ``audio_text``, ``face_frame_text``,
``face_text`` and ``frame_text`` (so phase-1a prompts differ from every other phase). We build the same
template for every mode; ``PromptConfig.parity=True`` reproduces the omission.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from data_pipelines import schema
from data_pipelines import task_templates as tt

# Modality clauses each mode renders, in prompt order; "text" = the subtitle (or dialogue history) clause.
MODE_MODALITIES: dict[str, tuple[str, ...]] = {
    "multiface_audio_face_frame_text": ("multi", "audio", "face", "frame", "text"),
    "audio_text": ("audio", "text"),
    "face_frame": ("face", "frame"),
    "face_frame_text": ("face", "frame", "text"),
    "face_text": ("face", "text"),
    "frame_text": ("frame", "text"),
    "text": ("text",),
}
assert set(MODE_MODALITIES) == set(schema.MODALITY_MODES)
PLACEHOLDER_MODALITIES = ("frame", "face", "audio", "multi")  # splice order of the reference
_NO_HUMAN_PREFIX_MODES = frozenset({"audio_text", "face_frame_text", "face_text", "frame_text"})
HYBRID = ("hybird", "hybrid")  # the reference's spelling and the English one
TEMPLATES = ("vicuna", "qwen_chat")


class PromptError(ValueError):
    """A record lacks what its label type needs (e.g. no intent for intent_recognition)."""


@dataclasses.dataclass(frozen=True)
class PromptConfig:
    template: str = "vicuna"      # "vicuna" (the reference's ###Human/###Assistant) or "qwen_chat"
    parity: bool = False          # reproduce the reference's missing "###Human: " in phase-1a-style modes
    chat_system: str = tt.CHAT_SYSTEM

    def validate(self) -> None:
        if self.template not in TEMPLATES:
            raise ValueError(f"template must be one of {TEMPLATES}, got {self.template!r}")


@dataclasses.dataclass
class PromptSpec:
    """A prompt before tokenization. ``fields`` hold the shortenable texts: subtitle, history, utterance,
    question, answer. ``uses_history``: the history clause replaces the subtitle clause (dialogue data)."""

    label_type: str
    mode: str
    fields: dict[str, str]
    uses_history: bool
    config: PromptConfig = PromptConfig()
    utterance_line: str = ""      # "current user input: {utterance}\n" for dialogue label types
    task: str = ""

    @property
    def task_id(self) -> int:
        return schema.TASKS.index(self.task)

    def replace_fields(self, **fields: str) -> "PromptSpec":
        return dataclasses.replace(self, fields={**self.fields, **fields})

    @property
    def modalities(self) -> tuple[str, ...]:
        """The placeholder modalities this prompt carries (subset of PLACEHOLDER_MODALITIES)."""
        return tuple(m for m in MODE_MODALITIES[self.mode] if m != "text")


# ------------------------------------------------------------------------------------------ label types
def choose_label_type(record: dict[str, Any], configured: str, rng: np.random.Generator | None,
                      candidates: tuple[str, ...] = ()) -> str:
    """The label type for this sample. ``configured`` is a LABEL_TYPES key or "hybird": then one of
    ``candidates`` (default: the record's own ``label_types``) is drawn uniformly with ``rng`` (the first
    one when ``rng`` is None, for deterministic evaluation)."""
    if configured not in HYBRID:
        if configured not in schema.LABEL_TYPES:
            raise PromptError(f"unknown label_type {configured!r}; known: {sorted(schema.LABEL_TYPES)} "
                              f"or 'hybird'")
        return configured
    pool = tuple(candidates) or tuple(record.get("label_types") or ())
    if candidates and record.get("label_types"):
        pool = tuple(c for c in candidates if c in record["label_types"]) or pool
    if not pool:
        raise PromptError(f"record {record.get('id')!r} of {record.get('dataset')!r}: label_type 'hybird' "
                          f"but the record lists no label_types and no candidates were configured")
    return pool[0] if rng is None else pool[int(rng.integers(len(pool)))]


def _pick(options: tuple[str, ...], rng: np.random.Generator | None) -> str:
    return options[0] if rng is None else options[int(rng.integers(len(options)))]


def _need(record: dict[str, Any], field: str, label_type: str) -> Any:
    value = record.get(field)
    empty = value is None or (isinstance(value, float) and math.isnan(value)) or (
        not isinstance(value, float) and len(value) == 0)
    if empty:
        raise PromptError(f"record {record.get('id')!r} of {record.get('dataset')!r}: label_type "
                          f"{label_type!r} needs field {field!r}, which is empty")
    return value


def _candidates(record: dict[str, Any], label_type: str) -> str:
    cands = list(record.get("candidates") or ())
    if not cands and label_type == "intent_recognition":
        name = str(record.get("dataset", "")).lower()
        cands = list(tt.MINTREC2_INTENTS if "mintrec2" in name else tt.MINTREC_INTENTS)
    if not cands:
        raise PromptError(f"record {record.get('id')!r} of {record.get('dataset')!r}: label_type "
                          f"{label_type!r} needs a candidate list (field 'candidates' is empty)")
    return ", ".join(cands)


def _is_dialogue(record: dict[str, Any]) -> bool:
    return bool(record.get("history")) or "avamerg" in str(record.get("dataset", "")).lower()


def sentiment_label(score: float) -> str:
    return "positive" if score > 0 else "negative" if score < 0 else "neutral"


def build_answer(record: dict[str, Any], label_type: str) -> str:
    """The target text (without the trailing ``###``) for ``label_type``; PromptError when unlabelled."""
    if label_type == "description":
        return str(_need(record, "reason", label_type)).strip()
    if label_type == "ovlabel":
        labels = [str(x).strip() for x in (record.get("emotions") or ()) if str(x).strip()]
        return tt.ANSWERS["ovlabel"].format(labels=", ".join(labels) or "neutral")
    if label_type in ("onehot_w_candidates", "onehot_wo_candidates"):
        return tt.ANSWERS[label_type].format(label=_need(record, "emotion", label_type))
    if label_type == "emotion_recognition":
        return build_answer(record, _emotion_variant(record))
    if label_type == "emotion_recognition_dialogue":
        return tt.ANSWERS[label_type].format(label=_need(record, "emotion", label_type))
    if label_type == "valence":
        return tt.ANSWERS["valence"].format(value=float(_need(record, "sentiment", label_type)))
    if label_type == "sentiment":
        return tt.ANSWERS["sentiment"].format(label=sentiment_label(float(_need(record, "sentiment",
                                                                                 label_type))))
    if label_type == "intent_recognition":
        intent = str(_need(record, "intent", label_type)).strip()
        return intent[:1].upper() + intent[1:]   # as annotated, capitalised (MIR is exact-match scored)
    if label_type == "empathic_response_with_coe":
        coe = list(_need(record, "coe", label_type))
        if len(coe) != 4:
            raise PromptError(f"record {record.get('id')!r}: field 'coe' must hold 4 steps "
                              f"[event, emotion, cause, goal], got {len(coe)}")
        event, emotion, cause, goal = (str(c).strip() for c in coe)
        emotion = emotion or str(_need(record, "emotion", label_type))
        lines = "\n".join(line.format(event=event, emotion=emotion, cause=cause, goal=goal)
                          for line in tt.COE_LINES)
        return tt.COE_TARGET.format(lines=lines, response=str(_need(record, "response", label_type)).strip())
    raise PromptError(f"unknown label_type {label_type!r}")


def _emotion_variant(record: dict[str, Any]) -> str:
    """`emotion_recognition` is AvaMERG's dialogue question, CREMA/CAER's w_candidates, M3ED's wo_candidates."""
    if _is_dialogue(record):
        return "emotion_recognition_dialogue"
    return "onehot_w_candidates" if record.get("candidates") else "onehot_wo_candidates"


def build_question(record: dict[str, Any], label_type: str, rng: np.random.Generator | None,
                   valence_range: tuple[float, float] = (-3.0, 3.0)) -> str:
    kind = _emotion_variant(record) if label_type == "emotion_recognition" else label_type
    text = _pick(tt.QUESTIONS[kind], rng)
    if "{candidates}" in text:
        text = text.replace("{candidates}", _candidates(record, kind))
    if "{vmin" in text:
        text = text.format(vmin=valence_range[0], vmax=valence_range[1])
    return text


def build_prompt(record: dict[str, Any], label_type: str, mode: str, config: PromptConfig = PromptConfig(),
                 rng: np.random.Generator | None = None,
                 valence_range: tuple[float, float] = (-3.0, 3.0)) -> PromptSpec:
    """The structured prompt of ``record`` for ``label_type`` (a LABEL_TYPES key, not "hybird") in ``mode``.

    ``rng`` draws the question paraphrase (None → the first paraphrase, for evaluation and golden tests).
    Raises PromptError when the record lacks the label this label type needs.
    """
    if mode not in MODE_MODALITIES:
        raise PromptError(f"unknown modality mode {mode!r}; known: {list(MODE_MODALITIES)}")
    if label_type not in schema.LABEL_TYPES:
        raise PromptError(f"unknown label_type {label_type!r}; known: {sorted(schema.LABEL_TYPES)}")
    kind = _emotion_variant(record) if label_type == "emotion_recognition" else label_type
    answer = build_answer(record, label_type)
    question = build_question(record, label_type, rng, valence_range)
    has_text = "text" in MODE_MODALITIES[mode]
    uses_history = has_text and _is_dialogue(record)
    utterance_line = tt.UTTERANCE_LINES.get(kind, "")
    fields = {
        "subtitle": "" if uses_history else str(record.get("subtitle") or ""),
        "history": str(record.get("history") or "") if uses_history else "",
        "utterance": str(record.get("subtitle") or "") if utterance_line else "",
        "question": question,
        "answer": answer,
    }
    return PromptSpec(label_type=label_type, mode=mode, fields=fields, uses_history=uses_history,
                      config=config, utterance_line=utterance_line, task=schema.LABEL_TYPES[label_type])


# ------------------------------------------------------------------------------------------- rendering
Segment = tuple[str, str]


def _content(spec: PromptSpec) -> list[Segment]:
    """The human turn's content: modality clauses, subtitle/history clause, instruction, question."""
    segs: list[Segment] = []
    text = ""
    for modality in MODE_MODALITIES[spec.mode]:
        if modality == "text":
            continue
        before, after = tt.MODALITY_CLAUSES[modality]
        segs += [("text", text + before), ("ph", modality)]
        text = after
    has_text = "text" in MODE_MODALITIES[spec.mode]
    if spec.uses_history:
        text += tt.HISTORY_CLAUSE.format(history=spec.fields["history"]) + tt.HISTORY_INSTRUCTION
    else:
        if has_text:
            text += tt.SUBTITLE_CLAUSE.format(subtitle=spec.fields["subtitle"])
        text += tt.INSTRUCTION + " "
    if spec.utterance_line:
        text += spec.utterance_line.format(utterance=spec.fields["utterance"])
    text += spec.fields["question"]
    segs.append(("text", text))
    return segs


def render(spec: PromptSpec) -> tuple[list[Segment], list[Segment]]:
    """(prompt segments, target segments). Text segments never straddle a placeholder run."""
    content = _content(spec)
    if spec.config.template == "qwen_chat":
        prompt: list[Segment] = [("special", "bos"), ("text", f"system\n{spec.config.chat_system}"),
                                 ("special", "eos"), ("text", "\n"), ("special", "bos")]
        content[0] = ("text", "user\n" + content[0][1])
        prompt += content + [("special", "eos"), ("text", "\n"), ("special", "bos"), ("text", "assistant\n")]
        target = [("text", spec.fields["answer"]), ("special", "eos")]
    else:
        prefix = "" if (spec.config.parity and spec.mode in _NO_HUMAN_PREFIX_MODES) else tt.HUMAN
        content[0] = ("text", prefix + content[0][1])
        content[-1] = ("text", content[-1][1] + tt.ASSISTANT)
        prompt = [("special", "bos")] + content
        target = [("text", spec.fields["answer"] + tt.STOP), ("special", "eos")]
    return _merge_text(prompt), target


def _merge_text(segs: list[Segment]) -> list[Segment]:
    out: list[Segment] = []
    for kind, value in segs:
        if kind == "text" and out and out[-1][0] == "text":
            out[-1] = ("text", out[-1][1] + value)
        elif not (kind == "text" and value == ""):
            out.append((kind, value))
    return out


def render_text(spec: PromptSpec, counts: dict[str, int] | None = None, bos: str = "<|im_start|>",
                eos: str = "<|im_end|>") -> tuple[str, str]:
    """(prompt, target) as display strings, placeholders expanded to ``counts`` copies (default 1 each)."""
    names = {"frame": "<FrameHere>", "face": "<FaceHere>", "audio": "<AudioHere>", "multi": "<MultiHere>"}

    def join(segs: list[Segment]) -> str:
        parts = []
        for kind, value in segs:
            if kind == "text":
                parts.append(value)
            elif kind == "ph":
                parts.append(names[value] * (counts or {}).get(value, 1))
            else:
                parts.append(bos if value == "bos" else eos)
        return "".join(parts)

    prompt, target = render(spec)
    return join(prompt), join(target)
