"""Six-task prompt builder: golden prompts per task, label-type sampling, template options, bad records."""

import numpy as np
import pytest

from data_pipelines import prompts, schema

COUNTS = dict(frame=2, face=1, audio=2, multi=1)
MAIN = "multiface_audio_face_frame_text"
HEAD = ("<|im_start|>###Human: The merged audio-video information is <Multi><MultiHere></Multi>. The audio "
        "content is <Audio><AudioHere><AudioHere></Audio>. The facial information uniformly extracted from the "
        "video is <Video><FaceHere></Video>. The raw frames uniformly sampled from the video are "
        "<Video><FrameHere><FrameHere></Video>. ")
ASK = "Please answer the question using all the information provided above. "


def _ex(**kw):
    return schema.make_example(**kw)


SENT = _ex(id="s1", dataset="cmumosi", subtitle="It was fine.", sentiment=-1.4, label_types=["sentiment", "valence"])
CREMA = _ex(id="m1", dataset="cremad", emotion="anger", candidates=["anger", "happy"],
            label_types=["emotion_recognition"])
OV = _ex(id="o1", dataset="mercaptionplus", subtitle="Leave me alone.", emotions=["angry", "annoyed"],
         reason="Her brows are lowered and she shouts.", label_types=["ovlabel", "description"])
ERI = _ex(id="e1", dataset="merrfine", subtitle="I won!", reason="She smiles widely and her voice rises.",
          label_types=["description"])
MIR = _ex(id="i1", dataset="mintrec", subtitle="thanks a lot", intent="thank", candidates=["thank", "greet"],
          label_types=["intent_recognition"])
ERG = _ex(id="g1", dataset="avamerg", subtitle="I failed my exam.", history="user: hi\nassistant: hey, how are you?",
          emotion="sad", response="That sounds hard; I'm here for you.",
          coe=["an exam went badly", "sad", "failing the exam", "comfort the user"],
          label_types=["empathic_response_with_coe", "emotion_recognition"])

GOLDEN = [
    # (task, record, label_type, mode, prompt, target)
    ("msa", SENT, "sentiment", "audio_text",
     "<|im_start|>###Human: The audio content is <Audio><AudioHere><AudioHere></Audio>. The subtitle of this video "
     "is <Subtitle>It was fine.</Subtitle>. " + ASK + "Is the character's sentiment positive, negative or "
     "neutral? ###Assistant: ",
     "The character's sentiment state is negative.###<|im_end|>"),
    ("msa", SENT, "valence", "text",
     "<|im_start|>###Human: The subtitle of this video is <Subtitle>It was fine.</Subtitle>. " + ASK + "Rate the "
     "overall emotional polarity of the character as a floating-point number between -3.00 (most negative) and "
     "3.00 (most positive). ###Assistant: ",
     "The valence score is -1.40.###<|im_end|>"),
    ("mer", CREMA, "emotion_recognition", "face_frame",
     "<|im_start|>###Human: The facial information uniformly extracted from the video is <Video><FaceHere></Video>. "
     "The raw frames uniformly sampled from the video are <Video><FrameHere><FrameHere></Video>. " + ASK +
     "[Recognition] Choose the label that best describes the character's emotional state from: anger, happy. "
     "###Assistant: ",
     "The most likely label is anger.###<|im_end|>"),
    ("ovmer", OV, "ovlabel", MAIN,
     HEAD + "The subtitle of this video is <Subtitle>Leave me alone.</Subtitle>. " + ASK + "[Recogn_OV] Please "
     "recognise all possible emotional states of the character. ###Assistant: ",
     "The character's emotional state is angry, annoyed.###<|im_end|>"),
    ("eri", ERI, "description", "frame_text",
     "<|im_start|>###Human: The raw frames uniformly sampled from the video are <Video><FrameHere><FrameHere>"
     "</Video>. The subtitle of this video is <Subtitle>I won!</Subtitle>. " + ASK + "[Inference] Give a "
     "comprehensive assessment of the character's emotional state, grounded in the visual scene, the tone and "
     "pitch of the voice and the facial action units you observe. ###Assistant: ",
     "She smiles widely and her voice rises.###<|im_end|>"),
    ("mir", MIR, "intent_recognition", MAIN,
     HEAD + "The subtitle of this video is <Subtitle>thanks a lot</Subtitle>. " + ASK + "[Intent] Recognise the "
     "speaker's intention. Choose one of: thank, greet. ###Assistant: ",
     "Thank###<|im_end|>"),
    ("erg", ERG, "empathic_response_with_coe", MAIN,
     HEAD + "The dialogue history is <Dialogue History>user: hi\nassistant: hey, how are you?</Dialogue History>. "
     "Use the dialogue history and all the information provided above; the current turn follows.\ncurrent user "
     "input: I failed my exam.\n[Interaction] You are an empathetic listener. Reason step by step with a Chain of "
     "Empathy inside <think></think>: first the event scenario, second the user's emotion, third the cause of "
     "that emotion, fourth the goal of your response. Then reply to the user. ###Assistant: ",
     "<think>Firstly, the event scenario: an exam went badly\nSecondly, the emotion of the speaker is sad.\n"
     "Thirdly, the cause of the emotion: failing the exam\nFourthly, the goal of the response: comfort the user"
     "</think>\n That sounds hard; I'm here for you.###<|im_end|>"),
    ("mer", ERG, "emotion_recognition", MAIN,
     HEAD + "The dialogue history is <Dialogue History>user: hi\nassistant: hey, how are you?</Dialogue History>. "
     "Use the dialogue history and all the information provided above; the current turn follows.\ncurrent "
     "speaker input: I failed my exam.\nAnalyse the emotion of the speaker in the current turn. ###Assistant: ",
     "The emotion of the speaker is sad.###<|im_end|>"),
]


@pytest.mark.parametrize("task,record,label_type,mode,prompt,target", GOLDEN,
                         ids=[f"{g[0]}-{g[2]}-{g[3]}" for g in GOLDEN])
def test_golden_prompts(task, record, label_type, mode, prompt, target):
    spec = prompts.build_prompt(record, label_type, mode)
    assert spec.task == task and spec.task_id == schema.TASKS.index(task)
    assert prompts.render_text(spec, COUNTS) == (prompt, target)


def test_every_task_has_a_golden_prompt():
    assert {g[0] for g in GOLDEN} == set(schema.TASKS)


def test_wo_candidates_and_ov_empty_list():
    m3ed = _ex(id="x", dataset="m3ed", emotion="happy", label_types=["emotion_recognition"])
    spec = prompts.build_prompt(m3ed, "emotion_recognition", "audio_text")
    assert spec.fields["question"] == "[Recognition] What is the most likely emotional state of the character?"
    assert spec.fields["answer"] == "The character's emotional state is happy."
    spec = prompts.build_prompt(_ex(id="y", emotions=[]), "ovlabel", "text")
    assert spec.fields["answer"] == "The character's emotional state is neutral."


def test_parity_flag_reproduces_missing_human_prefix():
    consistent = prompts.render_text(prompts.build_prompt(SENT, "sentiment", "audio_text"))[0]
    parity = prompts.render_text(prompts.build_prompt(SENT, "sentiment", "audio_text",
                                                      prompts.PromptConfig(parity=True)))[0]
    assert consistent.startswith("<|im_start|>###Human: The audio content")
    assert parity.startswith("<|im_start|>The audio content")   # REFERENCE DEFECT §12.15
    # face_frame (phase 1b) keeps the prefix in the reference too.
    pf = prompts.render_text(prompts.build_prompt(CREMA, "emotion_recognition", "face_frame",
                                                  prompts.PromptConfig(parity=True)))[0]
    assert pf.startswith("<|im_start|>###Human: ")


def test_qwen_chat_template():
    spec = prompts.build_prompt(MIR, "intent_recognition", "text", prompts.PromptConfig(template="qwen_chat"))
    p, t = prompts.render_text(spec)
    assert p == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nThe subtitle of this "
                 "video is <Subtitle>thanks a lot</Subtitle>. " + ASK + "[Intent] Recognise the speaker's intention. "
                 "Choose one of: thank, greet.<|im_end|>\n<|im_start|>assistant\n")
    assert t == "Thank<|im_end|>"


def test_mode_clauses_and_placeholders():
    for mode, mods in prompts.MODE_MODALITIES.items():
        spec = prompts.build_prompt(OV, "ovlabel", mode)
        segs, _ = prompts.render(spec)
        assert [v for k, v in segs if k == "ph"] == [m for m in mods if m != "text"]
        text = "".join(v for k, v in segs if k == "text")
        assert ("<Subtitle>Leave me alone.</Subtitle>" in text) == ("text" in mods)


def test_hybird_sampling_is_deterministic_and_uniform():
    draws = [prompts.choose_label_type(OV, "hybird", np.random.default_rng(i)) for i in range(400)]
    again = [prompts.choose_label_type(OV, "hybird", np.random.default_rng(i)) for i in range(400)]
    assert draws == again
    frac = draws.count("ovlabel") / len(draws)
    assert 0.4 < frac < 0.6
    assert prompts.choose_label_type(OV, "hybird", None) == "ovlabel"
    assert prompts.choose_label_type(OV, "hybird", np.random.default_rng(0), ("description",)) == "description"
    # paraphrases: several distinct questions are drawn for OV
    qs = {prompts.build_question(OV, "ovlabel", np.random.default_rng(i)) for i in range(50)}
    assert len(qs) == 5 and all(q.startswith("[Recogn_OV] ") for q in qs)


def test_every_label_type_builds():
    full = _ex(id="f", dataset="x", subtitle="hi", emotion="sad", emotions=["sad"], sentiment=0.0, intent="greet",
               reason="r.", response="ok.", coe=["e", "sad", "c", "g"], candidates=["sad", "happy"])
    for lt in schema.LABEL_TYPES:
        spec = prompts.build_prompt(full, lt, "text", rng=np.random.default_rng(0))
        assert spec.fields["answer"] and spec.task == schema.LABEL_TYPES[lt]
    assert prompts.build_answer(full, "sentiment") == "The character's sentiment state is neutral."


@pytest.mark.parametrize("label_type,field", [("intent_recognition", "intent"), ("description", "reason"),
                                              ("valence", "sentiment"), ("empathic_response_with_coe", "coe"),
                                              ("onehot_w_candidates", "emotion")])
def test_missing_label_raises_naming_field(label_type, field):
    rec = _ex(id="bad7", dataset="d", emotion="", candidates=["a"])
    with pytest.raises(prompts.PromptError, match=rf"bad7.*{field}"):
        prompts.build_prompt(rec, label_type, "text")


def test_unknown_mode_and_label_type():
    with pytest.raises(prompts.PromptError, match="modality mode"):
        prompts.build_prompt(OV, "ovlabel", "faceonly")
    with pytest.raises(prompts.PromptError, match="label_type"):
        prompts.choose_label_type(OV, "mer_w_think", None)
