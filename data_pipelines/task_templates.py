"""Wording of the six-task prompts: task tags, question paraphrases, answer skeletons, modality clauses.

The reference (`reference-architecture.md` §3.1, §7.1) fixes the tags, the answer skeletons and the
Chain-of-Empathy `<think>` structure (evaluators parse them); the exact question wording is free, so the
sentences below are our own. One paraphrase is drawn per sample with the pipeline's deterministic rng.
"""

from __future__ import annotations

# Task tags the reference prefixes to questions (evaluators and the inference CLI key on them).
TAG_RECOGNITION = "[Recognition]"
TAG_OV = "[Recogn_OV]"
TAG_INFERENCE = "[Inference]"
TAG_INTENT = "[Intent]"
TAG_INTERACTION = "[Interaction]"

# ---------------------------------------------------------------------------------------------- questions
# {candidates} is a comma-separated candidate list, {vmin}/{vmax} the valence range.
QUESTIONS: dict[str, tuple[str, ...]] = {
    "description": (
        f"{TAG_INFERENCE} Give a comprehensive assessment of the character's emotional state, grounded in "
        "the visual scene, the tone and pitch of the voice and the facial action units you observe.",
        f"{TAG_INFERENCE} Using the visual, vocal and facial evidence, explain in detail what the character "
        "feels and why.",
        f"{TAG_INFERENCE} Describe the emotional state of the person, citing the cues from the video frames, "
        "the speech and the facial movements that support your judgement.",
        f"{TAG_INFERENCE} Analyse the clues in the scene, the voice and the facial expressions, and infer the "
        "character's emotional state with evidence.",
    ),
    "ovlabel": (
        f"{TAG_OV} Please recognise all possible emotional states of the character.",
        f"{TAG_OV} List every emotion the character may be experiencing.",
        f"{TAG_OV} Which emotional states does the character show? Give all that apply.",
        f"{TAG_OV} Identify all of the character's possible emotions.",
        f"{TAG_OV} What emotions could the character be feeling? Name all of them.",
    ),
    "onehot_w_candidates": (
        f"{TAG_RECOGNITION} Choose the label that best describes the character's emotional state from: "
        "{candidates}.",
    ),
    "onehot_wo_candidates": (
        f"{TAG_RECOGNITION} What is the most likely emotional state of the character?",
    ),
    "valence": (
        "Rate the overall emotional polarity of the character as a floating-point number between "
        "{vmin:.2f} (most negative) and {vmax:.2f} (most positive).",
    ),
    "sentiment": (
        "Is the character's sentiment positive, negative or neutral?",
    ),
    "intent_recognition": (
        f"{TAG_INTENT} Recognise the speaker's intention. Choose one of: {{candidates}}.",
    ),
    # AvaMERG: the history goes in the history clause, the current utterance in UTTERANCE_LINES.
    "emotion_recognition_dialogue": (
        "Analyse the emotion of the speaker in the current turn.",
    ),
    "empathic_response_with_coe": (
        f"{TAG_INTERACTION} You are an empathetic listener. Reason step by step with a Chain of Empathy "
        "inside <think></think>: first the event scenario, second the user's emotion, third the cause of "
        "that emotion, fourth the goal of your response. Then reply to the user.",
    ),
}

# The current dialogue turn, put in front of the question for the dialogue (AvaMERG) label types.
UTTERANCE_LINES = {
    "emotion_recognition_dialogue": "current speaker input: {utterance}\n",
    "empathic_response_with_coe": "current user input: {utterance}\n",
}

# ---------------------------------------------------------------------------------------------- answers
ANSWERS = {
    "ovlabel": "The character's emotional state is {labels}.",
    "onehot_w_candidates": "The most likely label is {label}.",
    "onehot_wo_candidates": "The character's emotional state is {label}.",
    "valence": "The valence score is {value:.2f}.",
    "sentiment": "The character's sentiment state is {label}.",
    "emotion_recognition_dialogue": "The emotion of the speaker is {label}.",
}

# Chain of Empathy: evaluators regex `the emotion of the speaker is (\w+)` inside <think>.
COE_LINES = (
    "Firstly, the event scenario: {event}",
    "Secondly, the emotion of the speaker is {emotion}.",
    "Thirdly, the cause of the emotion: {cause}",
    "Fourthly, the goal of the response: {goal}",
)
COE_TARGET = "<think>{lines}</think>\n {response}"

# ---------------------------------------------------------------------------------------------- clauses
# One placeholder per clause here; the tokenizer expands it to the configured count of ids.
MODALITY_CLAUSES = {
    "multi": ("The merged audio-video information is <Multi>", "</Multi>. "),
    "audio": ("The audio content is <Audio>", "</Audio>. "),
    "face": ("The facial information uniformly extracted from the video is <Video>", "</Video>. "),
    "frame": ("The raw frames uniformly sampled from the video are <Video>", "</Video>. "),
}
SUBTITLE_CLAUSE = "The subtitle of this video is <Subtitle>{subtitle}</Subtitle>. "
HISTORY_CLAUSE = "The dialogue history is <Dialogue History>{history}</Dialogue History>. "
INSTRUCTION = "Please answer the question using all the information provided above."
HISTORY_INSTRUCTION = ("Use the dialogue history and all the information provided above; the current "
                       "turn follows.\n")

HUMAN = "###Human: "
ASSISTANT = " ###Assistant: "
STOP = "###"
CHAT_SYSTEM = "You are a helpful assistant."

# --------------------------------------------------------------------------------------- candidate sets
MINTREC_INTENTS = ("complain", "praise", "apologise", "thank", "criticize", "agree", "taunt", "flaunt",
                   "joke", "oppose", "comfort", "care", "inform", "advise", "arrange", "introduce", "leave",
                   "prevent", "greet", "ask for help")
MINTREC2_INTENTS = MINTREC_INTENTS + ("acknowledge", "asking for opinions", "confirm", "doubt", "emphasize",
                                      "explain", "invite", "plan", "refuse", "warn")
