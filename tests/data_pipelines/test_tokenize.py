"""Tokenisation: supervised-token mask, placeholder runs and positions, truncation (tiny tokenizer)."""

import numpy as np
import pytest

from data_pipelines import prompts, schema
from data_pipelines import tokenize as T
from emox_jax.tokenizer import tiny_tokenizer

from tests.data_pipelines.test_prompts import CREMA, ERG, ERI, MIR, OV, SENT

MAIN = "multiface_audio_face_frame_text"
CASES = [(SENT, "sentiment", "audio_text"), (SENT, "valence", "text"), (CREMA, "emotion_recognition", "face_frame"),
         (OV, "ovlabel", MAIN), (ERI, "description", "frame_text"), (MIR, "intent_recognition", MAIN),
         (ERG, "empathic_response_with_coe", MAIN), (ERG, "emotion_recognition", MAIN)]


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def _check_placeholders(tok, out, spec, cfg):
    ids = out["input_ids"]
    counts = cfg.counts()
    for m in prompts.PLACEHOLDER_MODALITIES:
        pid = tok.placeholder_ids[T.PLACEHOLDER_TOKENS[m]]
        where = np.flatnonzero(ids == pid)
        if m in spec.modalities:
            assert len(where) == counts[m] == out[f"{m}_count"]
            assert out[f"{m}_pos"] == where[0]
            assert np.array_equal(where, np.arange(where[0], where[0] + counts[m]))   # one contiguous run
        else:
            assert len(where) == 0 and out[f"{m}_pos"] == -1 and out[f"{m}_count"] == 0


@pytest.mark.parametrize("record,label_type,mode", CASES, ids=[f"{c[1]}-{c[2]}" for c in CASES])
def test_mask_covers_exactly_answer_stop_eos(tok, record, label_type, mode):
    cfg = T.TokenizeConfig()
    spec = prompts.build_prompt(record, label_type, mode)
    out = T.tokenize_prompt(spec, tok, cfg)
    ids, labels, mask = out["input_ids"], out["labels"], out["loss_mask"]
    n = int(out["length"])
    assert ids.shape == labels.shape == mask.shape == (n,) and ids.dtype == np.int32
    assert ids[0] == tok.bos_id and ids[-1] == tok.eos_id
    assert np.array_equal(labels[:-1], ids[1:])                       # labels are pre-shifted
    target = tok.encode(spec.fields["answer"] + "###") + [tok.eos_id]  # tokenised apart from the prompt
    assert labels[mask == 1].tolist() == target
    first = int(np.flatnonzero(mask)[0])
    assert mask[first:n - 1].all() and not mask[:first].any() and mask[n - 1] == 0
    # the prompt is what precedes the target, tokenised on its own
    assert tok.decode(ids[first + 1:n - 1]) == spec.fields["answer"] + "###"
    assert out["task_id"] == schema.TASKS.index(schema.LABEL_TYPES[label_type])
    _check_placeholders(tok, out, spec, cfg)


def test_configurable_counts_and_chat_template(tok):
    cfg = T.TokenizeConfig(frame_tokens=5, face_tokens=2, audio_tokens=3, multi_tokens=2)
    spec = prompts.build_prompt(MIR, "intent_recognition", MAIN, prompts.PromptConfig(template="qwen_chat"))
    out = T.tokenize_prompt(spec, tok, cfg)
    _check_placeholders(tok, out, spec, cfg)
    assert out["labels"][out["loss_mask"] == 1].tolist() == tok.encode("Thank") + [tok.eos_id]


def _long(words, tag):
    return " ".join(f"{tag}{i}" for i in range(words))


def test_truncation_cuts_subtitle_first_and_keeps_placeholders(tok):
    rec = dict(MIR, subtitle=_long(400, "w"))
    spec = prompts.build_prompt(rec, "intent_recognition", MAIN)
    full = T.tokenize_prompt(spec, tok, T.TokenizeConfig(max_length=4096))
    cfg = T.TokenizeConfig(max_length=400)
    out = T.tokenize_prompt(spec, tok, cfg)
    assert full["length"] > 400 >= out["length"] > 380     # cut at a word boundary, close to the limit
    _check_placeholders(tok, out, spec, cfg)
    text = tok.decode(out["input_ids"])
    assert "w0 w1 w2" in text and "w399" not in text            # subtitle keeps its head
    assert "Choose one of: thank, greet." in text                # question untouched
    assert out["labels"][out["loss_mask"] == 1].tolist() == tok.encode("Thank###") + [tok.eos_id]


def test_truncation_history_keeps_latest_then_answer_tail(tok):
    rec = dict(ERG, history="\n".join(f"user: turn{i} words here" for i in range(200)))
    spec = prompts.build_prompt(rec, "empathic_response_with_coe", MAIN)
    budget = int(T.tokenize_prompt(spec.replace_fields(history=""), tok)["length"]) + 60
    out = T.tokenize_prompt(spec, tok, T.TokenizeConfig(max_length=budget))
    text = tok.decode(out["input_ids"])
    assert "turn199 words here</Dialogue History>" in text and "turn0 " not in text   # oldest turns dropped
    assert "current user input: I failed my exam." in text and "Then reply to the user." in text
    assert budget - 10 < out["length"] <= budget
    # a long answer in a tight budget: subtitle/question gone, the answer tail cut, ### + EOS kept
    rec = dict(ERI, reason=_long(600, "r"))
    spec = prompts.build_prompt(rec, "description", "frame_text")
    cfg = T.TokenizeConfig(max_length=300, frame_tokens=32)
    out = T.tokenize_prompt(spec, tok, cfg)
    sup = out["labels"][out["loss_mask"] == 1].tolist()
    assert out["length"] <= 300 and sup[-1] == tok.eos_id
    assert tok.decode(sup[:-1]).startswith("r0 r1") and tok.decode(sup[:-1]).endswith("###")
    _check_placeholders(tok, out, spec, cfg)


def test_truncation_impossible_raises(tok):
    spec = prompts.build_prompt(OV, "ovlabel", MAIN)
    with pytest.raises(T.TruncationError, match="placeholder runs"):
        T.tokenize_prompt(spec, tok, T.TokenizeConfig(max_length=60))


def test_missing_placeholder_tokens_named():
    class NoPh:
        bos_id, eos_id, pad_id, placeholder_ids = 1, 2, 2, {"<FrameHere>": 5}

        def encode(self, text):
            return [9] * len(text)

    with pytest.raises(ValueError, match="FaceHere"):
        T.make_encoder(NoPh(), T.TokenizeConfig())
