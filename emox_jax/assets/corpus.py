"""Deterministic generator of the small English corpus the repository ships (``tiny_corpus.txt``).

The `tiny` sentencepiece tokenizer and the temporary LM main job train on this text. Nothing is downloaded:
sentences are built from the hand-written templates and word lists below with a seeded ``random.Random``,
so ``generate_corpus(seed)`` always returns the same lines (a test checks the shipped file against it).

Line kinds: emotion descriptions (face, voice, words), intents, scenes, short reasons, and
"###Human: ... ###Assistant: ..." exchanges, some with a ``<think>`` block and a media placeholder, so that
the tokenizer sees every special symbol the project prompts use.

Regenerate the shipped file with ``python -m emox_jax.assets.corpus``.
"""

from __future__ import annotations

import pathlib
import random

CORPUS_FILE = pathlib.Path(__file__).with_name("tiny_corpus.txt")
DEFAULT_SEED = 20260
DEFAULT_LINES = 4000

NAMES = ["Anna", "Ben", "Chloe", "David", "Elena", "Farid", "Grace", "Hiro", "Isla", "Jonas", "Kemi", "Liam",
         "Maya", "Nico", "Olga", "Priya", "Quinn", "Rosa", "Sam", "Tariq", "Uma", "Victor", "Wen", "Yusuf", "Zoe"]
RELATIONS = ["friend", "sister", "brother", "neighbour", "colleague", "teacher", "manager", "mother", "father",
             "roommate", "coach", "grandmother", "partner", "classmate", "doctor"]
EMOTIONS = {
    "happy": ["smiles widely", "laughs softly", "raises both cheeks", "has bright, wrinkled eyes"],
    "sad": ["looks down", "lets the corners of the mouth droop", "blinks slowly", "has heavy eyelids"],
    "angry": ["frowns hard", "presses the lips together", "lowers the brows", "stares without blinking"],
    "surprised": ["opens the eyes wide", "raises the eyebrows", "drops the jaw", "leans back suddenly"],
    "worried": ["bites the lip", "knits the brows", "glances around", "rubs the forehead"],
    "neutral": ["keeps a calm face", "looks straight ahead", "nods once", "rests the hands quietly"],
    "disgusted": ["wrinkles the nose", "pulls the upper lip up", "turns the head away", "squints"],
    "fearful": ["freezes in place", "holds the breath", "widens the eyes", "steps backwards"],
    "excited": ["bounces on the toes", "claps the hands", "grins from ear to ear", "talks very fast"],
    "calm": ["breathes slowly", "sits with relaxed shoulders", "speaks in an even tone", "smiles faintly"],
}
VOICES = {
    "happy": "a light, rising voice", "sad": "a low, quiet voice", "angry": "a loud, sharp voice",
    "surprised": "a high, sudden voice", "worried": "a shaky, hesitant voice", "neutral": "a flat, steady voice",
    "disgusted": "a clipped, dismissive voice", "fearful": "a trembling whisper", "excited": "a quick, bright voice",
    "calm": "a soft, even voice",
}
SENTIMENT = {"happy": "positive", "excited": "positive", "calm": "positive", "neutral": "neutral",
             "surprised": "neutral", "sad": "negative", "angry": "negative", "worried": "negative",
             "disgusted": "negative", "fearful": "negative"}
INTENTS = {
    "complain": "complains about {thing}", "praise": "praises {thing}", "apologise": "apologises for {thing}",
    "thank": "thanks the {rel} for {thing}", "ask for help": "asks the {rel} for help with {thing}",
    "inform": "explains {thing} to the {rel}", "agree": "agrees with the {rel} about {thing}",
    "criticize": "criticizes {thing}", "joke": "makes a joke about {thing}", "comfort": "comforts the {rel}",
    "invite": "invites the {rel} to {event}", "refuse": "refuses to talk about {thing}",
    "flaunt": "shows off {thing}", "taunt": "teases the {rel} about {thing}", "oppose": "argues against {thing}",
    "care": "asks whether the {rel} is feeling better", "greet": "greets the {rel} at {place}",
    "leave": "says goodbye and walks out of {place}",
}
THINGS = ["the late train", "the new job", "the broken phone", "the birthday cake", "the exam results",
          "the noisy party", "the lost keys", "the rainy weekend", "the surprise gift", "the long meeting",
          "the burnt dinner", "the football match", "the moving boxes", "the old photographs", "the hospital visit",
          "the unpaid bill", "the painting", "the holiday plans", "the missed call", "the concert tickets"]
EVENTS = ["dinner on Friday", "a walk by the river", "the wedding", "a movie night", "the school play",
          "a picnic", "the graduation", "a game of chess", "the book club", "a coffee tomorrow"]
PLACES = ["a busy kitchen", "a quiet library", "a crowded bus", "a small office", "a sunny park",
          "a hospital corridor", "a living room", "a train station", "a school hallway", "a rainy street",
          "a cafe", "a supermarket", "a dark bedroom", "a football pitch", "a restaurant"]
TIMES = ["in the morning", "late at night", "after lunch", "on a cold evening", "during the holidays",
         "before the meeting", "on a Sunday", "at dawn", "after work", "in the middle of the day"]
SAYINGS = {
    "positive": ["This is the best news I have heard all week.", "I cannot believe it worked out!",
                 "Thank you, that means a lot to me.", "We did it, we really did it.",
                 "What a lovely surprise.", "I feel so lucky today."],
    "neutral": ["I will be there at six.", "Can you pass me the folder?", "It is on the second shelf.",
                "Let me check the schedule first.", "Okay, I understand.", "So that is how it works."],
    "negative": ["Why does this always happen to me?", "I told you not to do that.", "I just want to be alone.",
                 "This is not fair at all.", "I am so tired of waiting.", "Please leave me alone."],
}
REPLIES = {
    "positive": ["That is wonderful, you earned it.", "I am really happy for you.", "Let us celebrate tonight."],
    "neutral": ["Thanks for letting me know.", "Sure, I can help with that.", "Sounds like a plan."],
    "negative": ["I am sorry you are going through this.", "That sounds really hard, I am here for you.",
                 "Take your time, we can talk when you are ready."],
}
MEDIA = ["<ImageHere>", "<AudioHere>", "<FrameHere>", "<FaceHere>", "<MultiHere>"]
QUESTIONS = ["What emotion does the person show?", "What is the sentiment of this clip?",
             "Why does the speaker feel this way?", "What does the speaker intend?",
             "How would you respond to the speaker?", "Describe the facial expression.",
             "Which cues reveal the emotion?"]


def _emotion_line(r: random.Random) -> str:
    emo = r.choice(list(EMOTIONS))
    who = r.choice(NAMES)
    kind = r.randrange(5)
    if kind == 0:
        return f"{who} {r.choice(EMOTIONS[emo])} and speaks in {VOICES[emo]}, so {who} seems {emo}."
    if kind == 1:
        return (f"In {r.choice(PLACES)} {r.choice(TIMES)}, {who} {r.choice(EMOTIONS[emo])} "
                f"while talking about {r.choice(THINGS)}.")
    if kind == 2:
        return f"The overall sentiment is {SENTIMENT[emo]}: {who} says \"{r.choice(SAYINGS[SENTIMENT[emo]])}\""
    if kind == 3:
        other = r.choice([e for e in EMOTIONS if e != emo])
        return (f"Although the words sound {SENTIMENT[other]}, {who} {r.choice(EMOTIONS[emo])}, "
                f"which shows that {who} is actually {emo}.")
    return f"When {r.choice(THINGS)} comes up, {who} feels {emo} and {r.choice(EMOTIONS[emo])}."


def _intent_line(r: random.Random) -> str:
    intent = r.choice(list(INTENTS))
    act = INTENTS[intent].format(thing=r.choice(THINGS), rel=r.choice(RELATIONS), event=r.choice(EVENTS),
                                 place=r.choice(PLACES))
    who = r.choice(NAMES)
    if r.random() < 0.5:
        return f"{who} {act}. The intent is {intent}."
    return f"{r.choice(TIMES).capitalize()}, {who} {act}, and the {r.choice(RELATIONS)} listens."


def _scene_line(r: random.Random) -> str:
    a, b = r.sample(NAMES, 2)
    return (f"{a} and {b} are in {r.choice(PLACES)} {r.choice(TIMES)}; {a} {r.choice(EMOTIONS[r.choice(list(EMOTIONS))])} "
            f"and {b} {r.choice(EMOTIONS[r.choice(list(EMOTIONS))])}.")


def _reason_line(r: random.Random) -> str:
    emo = r.choice(list(EMOTIONS))
    who = r.choice(NAMES)
    return (f"{who} is {emo} because of {r.choice(THINGS)}; the person {r.choice(EMOTIONS[emo])}, "
            f"{who} speaks in {VOICES[emo]}, and the words are {SENTIMENT[emo]}.")


def _dialogue_line(r: random.Random) -> str:
    emo = r.choice(list(EMOTIONS))
    sent = SENTIMENT[emo]
    media = " ".join(r.sample(MEDIA, r.randint(1, 3)))
    question = r.choice(QUESTIONS)
    saying = r.choice(SAYINGS[sent])
    answer = r.choice([f"The person is {emo}.", f"The sentiment is {sent}.",
                       f"The speaker seems {emo} and the tone is {sent}."])
    if r.random() < 0.35:
        think = (f"<think> The speaker says \"{saying}\" and {r.choice(EMOTIONS[emo])}. "
                 f"They likely feel {emo}. </think> {r.choice(REPLIES[sent])}")
        return f"###Human: {media} The speaker says \"{saying}\" {question} ###Assistant: {think}"
    return f"###Human: {media} {question} ###Assistant: {answer}"


_KINDS = (_emotion_line, _intent_line, _scene_line, _reason_line, _dialogue_line)


def generate_corpus(num_lines: int = DEFAULT_LINES, seed: int = DEFAULT_SEED) -> list[str]:
    """``num_lines`` distinct sentences, deterministic for ``seed`` (duplicates are skipped, so the
    generator draws until it has enough distinct lines)."""
    r = random.Random(seed)
    seen: set[str] = set()
    lines: list[str] = []
    attempts = 0
    while len(lines) < num_lines:
        attempts += 1
        if attempts > 50 * num_lines:
            raise RuntimeError(f"could not draw {num_lines} distinct lines (got {len(lines)})")
        line = r.choice(_KINDS)(r)
        if line not in seen:
            seen.add(line)
            lines.append(line)
    return lines


def read_corpus(path: str | pathlib.Path = CORPUS_FILE) -> list[str]:
    """The shipped corpus as a list of non-empty lines."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"corpus file {path} is missing; regenerate it with "
                                "`python -m emox_jax.assets.corpus`")
    return [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


if __name__ == "__main__":
    CORPUS_FILE.write_text("\n".join(generate_corpus()) + "\n", encoding="utf-8")
    print(f"wrote {DEFAULT_LINES} lines to {CORPUS_FILE}")
