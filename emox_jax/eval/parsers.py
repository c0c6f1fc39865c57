"""Answer parsers: raw model text -> a typed `ParsedAnswer` per task, or an explicit "unparsable".

Answer formats our model is trained on (reference-architecture.md §7.1):
  ovlabel / onehot_wo   "The character's emotional state is {a, b, c}."
  onehot_w_candidates   "The most likely label is {X}."
  emotion_recognition   "The emotion of the speaker is {X}."
  mer_w_think           "<think>...</think><answer>{a, b}</answer>."
  valence               "The valence score is {v:.2f}."
  sentiment             "The character's sentiment state is {positive|negative|neutral}."
  intent_recognition    the bare intent label, e.g. "Ask for help"
  CoE response          "<think>Firstly, ...\\nSecondly, the emotion of the speaker is X\\n...</think>\\n {reply}"

Parsers tolerate case, punctuation, brackets, quotes and extra words around the template. When nothing matches
they return status "unparsable" — never a guessed class; metrics count those answers and score them as misses.
Free-form text (peers' answers, ERI descriptions) can go through `extract_emotion_words`, a deterministic lexicon
scan over the emotion-wheel vocabulary, but only where the caller asks for it (extractor="lexicon").
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

from emox_jax.eval.emotion_wheel import WHEELS, EmotionWheels, load_wheels

PARSED = "parsed"
UNPARSABLE = "unparsable"

# Intent label sets (reference-architecture.md §7.1; capitalisation as annotated in the data files).
MINTREC_INTENTS = (
    "Complain", "Praise", "Apologise", "Thank", "Criticize", "Agree", "Taunt", "Flaunt", "Joke", "Oppose",
    "Comfort", "Care", "Inform", "Advise", "Arrange", "Introduce", "Leave", "Prevent", "Greet", "Ask for help",
)
MINTREC2_INTENTS = MINTREC_INTENTS + (
    "Acknowledge", "Asking for opinions", "Confirm", "Doubt", "Emphasize", "Explain", "Invite", "Plan",
    "Refuse", "Warn",
)


@dataclasses.dataclass(frozen=True)
class ParsedAnswer:
    """One parsed answer.

    Attributes:
      status: "parsed" or "unparsable".
      value: task-specific — list[str] of emotion words (mer/ovmer/eri), float score (msa: valence, or
        +1/0/-1 for a sentiment word or emotion polarity), str intent as spelled in the candidates (mir),
        `ErgAnswer` (erg; present even when its emotion is unparsable, for the Dist-n of the reply).
        None when unparsable (except erg).
      how: which rule produced the value (e.g. "ov_template", "valence", "lexicon"), or why it failed.
      raw: the input text.
    """

    status: str
    value: Any
    how: str
    raw: str

    @property
    def parsed(self) -> bool:
        return self.status == PARSED


@dataclasses.dataclass(frozen=True)
class ErgAnswer:
    """An empathic response with its Chain-of-Empathy block.

    emotion: the lower-cased word after "the emotion of the speaker is", or None.
    response: the reply outside <think>...</think>, stripped.
    think: the text inside <think>...</think>, or None when there is no closed block.
    steps: CoE steps found, keys among "event", "emotion", "cause", "goal".
    """

    emotion: str | None
    response: str
    think: str | None
    steps: dict[str, str]


def _unparsable(text: str, why: str, value: Any = None) -> ParsedAnswer:
    return ParsedAnswer(UNPARSABLE, value, why, text)


# ----------------------------------------------------------------------------------------------- emotion lists
# Template openers; the clause after the *last* opener is the answer (a concluding sentence wins).
_LIST_OPENERS = re.compile(
    r"(?:emotional\s+states?|emotions?\s+state|emotions?)\s+(?:of\s+the\s+\w+\s+)?(?:is|are|was|were|:)\s*"
    r"|most\s+likely\s+(?:label|emotion|class|category)\s+(?:is|would\s+be|:)\s*"
    r"|emotion\s+of\s+the\s+(?:speaker|character|person|subject)\s+(?:is|was|:)\s*",
    re.IGNORECASE,
)
_ANSWER_TAG = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.IGNORECASE | re.DOTALL)
_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.IGNORECASE | re.DOTALL)
# A clause ends at a sentence stop (period/!/? not inside a number) or a line break.
_CLAUSE_END = re.compile(r"(?<!\d)[.!?](?!\d)|\n|</answer>", re.IGNORECASE)
_ITEM_SPLIT = re.compile(r"\s*(?:,|;|/|&|\band\b|\bor\b|\bas\s+well\s+as\b|\bplus\b)\s*", re.IGNORECASE)
# Hedges and fillers that precede an emotion word in otherwise well-formed lists ("slightly anxious").
_MODIFIERS = re.compile(
    r"^(?:(?:a\s+bit\s+of|a\s+bit|a\s+little(?:\s+bit)?|a\s+sense\s+of|a\s+touch\s+of|feelings\s+of|"
    r"a|an|the|some|very|really|quite|rather|slightly|somewhat|mildly|extremely|highly|deeply|feeling|likely|probably|"
    r"possibly|mostly|mainly|primarily|also|both|either|more|most|kind\s+of|sort\s+of)\s+)+",
    re.IGNORECASE,
)


def _clean_item(item: str) -> str:
    item = item.strip().strip("{}[]()<>\"'`*_").strip()
    item = re.sub(r"\s+", " ", item).lower()
    item = _MODIFIERS.sub("", item)
    return item.strip(" .!?:-\"'")


def split_emotion_list(clause: str) -> list[str]:
    """"{Happy, grateful and shy}." -> ["happy", "grateful", "shy"] (lower-cased, de-duplicated in order)."""
    out: list[str] = []
    for part in _ITEM_SPLIT.split(clause):
        item = _clean_item(part)
        if item and item not in out:
            out.append(item)
    return out


def _template_clause(text: str) -> str | None:
    last = None
    for m in _LIST_OPENERS.finditer(text):
        last = m
    if last is None:
        return None
    rest = text[last.end():]
    end = _CLAUSE_END.search(rest)
    return rest[: end.start()] if end else rest


# Non-emotional words that the word-form table maps into the wheels through GPT inflections
# (evaluation-and-data.md §1.2: might -> mighty -> powerful, person -> personal -> intimate, facial -> faced,
# speaking -> speechless, sense -> senseless). Curated from the forms that fire on the EMER descriptions
# (ground truth and model outputs): description, speech and action words, not emotional states.
LEXICON_STOP_FORMS = frozenset("""
might mighty person personal personally sense senses sensed facial face faces faced facing cheeks speech speak
speaks speaking spoke spoken emotion emotions emotional emotionally sentiment feeling feelings positive negative
go goes going went gone quick quickly hurry current currently see seen seeing evaluation certain low lower lowers
lowered lowering leave leaves leaving left slight bit question questions questioning questioned here attention
including include includes information thinking thought thoughts considering contemplating busy use uses used
using rest clear reflect reflects reflected reflecting challenge challenging move moves moving moved touching
avoid avoiding test represent represents responding respond response involve involved direction direct directed
member members please value values valuable related determine responsibility demand less push pushed pushing
open opened closed closing soft received receive fired heat creating realized ignores true substantial
importance important significant regarding connected familiar aware knowledge sauce play played spending
influence casual heavy strong stronger strongly trivial shaking shook shakes lack lacks lacking believe believes
forget forgot misses lose help helping participate engage engaged engagement focus focused concentration
observation assert defend defense defending accept accepting agrees agreement informing throwing imagining
wonder succeed successfully broke broken tight poor sharp bright escape welcome thank thanks revealing
""".split())
_NEGATORS = frozenset({"not", "no", "never", "without", "n't", "hardly", "nor", "neither", "lack", "lacks"})
_CONTENT_AS_NOUN = frozenset({"caption", "text", "the", "its", "this", "that", "video", "audio", "subtitle"})
_WORD = re.compile(r"[a-z]+(?:[-'][a-z]+)*")


def extract_emotion_words(text: str, wheels: EmotionWheels | None = None, max_ngram: int = 3) -> list[str]:
    """Deterministic lexicon scan: emotion-wheel surface forms named in free text, in order of appearance.

    Longest match first over 1..max_ngram word n-grams; forms in LEXICON_STOP_FORMS are skipped, as is a
    word preceded (within 3 words) by a negator ("not happy"). Used for ERI and, when asked, for free-form
    MER/OV-MER answers. It is a proxy for the reference's LLM extraction, not a reproduction of it.
    """
    wheels = wheels or load_wheels()
    words = _WORD.findall(text.lower().replace("’", "'"))
    out: list[str] = []
    i = 0
    while i < len(words):
        matched = 0
        for n in range(min(max_ngram, len(words) - i), 0, -1):
            cand = " ".join(words[i:i + n])
            if n == 1 and cand in LEXICON_STOP_FORMS:
                continue
            if n == 1 and cand == "content" and i and words[i - 1] in _CONTENT_AS_NOUN:
                continue  # "caption content", "the content": the noun, not the emotion
            if wheels.is_known(cand):
                negated = any(w in _NEGATORS or w.endswith("n't") for w in words[max(0, i - 3):i])
                if not negated and cand not in out:
                    out.append(cand)
                matched = n
                break
        i += matched or 1
    return out


def parse_emotion_list(text: str, *, extractor: str = "template",
                       wheels: EmotionWheels | None = None) -> ParsedAnswer:
    """MER / OV-MER answers -> list of emotion words.

    Order of rules: an <answer>...</answer> block (its content is the list); the last template clause
    ("emotional state is ...", "most likely label is ...", "emotion of the speaker is ..."); a bare list whose
    items are all emotion-wheel surface forms ("Happy." / "sad, worried"); then, only with
    extractor="lexicon", a lexicon scan of the whole text (minus any <think> block).
    """
    if extractor not in ("template", "lexicon"):
        raise ValueError(f"unknown extractor {extractor!r}; expected 'template' or 'lexicon'")
    text = text if isinstance(text, str) else ""
    wheels = wheels or load_wheels()
    answers = _ANSWER_TAG.findall(text)
    if answers:
        inner = answers[-1]
        clause = _template_clause(inner)
        items = split_emotion_list(clause if clause is not None else inner)
        if items:
            return ParsedAnswer(PARSED, items, "answer_tag", text)
    body = _THINK_BLOCK.sub(" ", text)
    clause = _template_clause(body)
    if clause is not None:
        items = split_emotion_list(clause)
        if items:
            return ParsedAnswer(PARSED, items, "template", text)
    bare = body.strip()
    if bare and len(bare) <= 80 and "\n" not in bare:
        items = split_emotion_list(bare.rstrip(".!"))
        if items and all(wheels.is_known(x) or x == "neutral" for x in items):
            return ParsedAnswer(PARSED, items, "bare_list", text)
    if extractor == "lexicon":
        items = extract_emotion_words(body, wheels)
        if items:
            return ParsedAnswer(PARSED, items, "lexicon", text)
        return _unparsable(text, "no emotion word found")
    return _unparsable(text, "no emotion-list template")


# ------------------------------------------------------------------------------------------------- sentiment
_VALENCE = re.compile(r"(?:valence|sentiment|polarity)(?:\s+(?:score|value|intensity))?\s*(?:is|=|:|of)\s*:?\s*"
                      r"([-+−]?\s*\d+(?:\.\d+)?|[-+−]?\.\d+)", re.IGNORECASE)
_SENTIMENT = re.compile(r"sentiment(?:al)?(?:\s+(?:state|polarity|label|orientation))?\s*(?:is|:|=|would\s+be)\s*"
                        r"(?:\w+\s+){0,2}?(positive|negative|neutral)\b", re.IGNORECASE)
_SENTIMENT_WORD = {"positive": 1.0, "negative": -1.0, "neutral": 0.0}
# Polarity of level-1 clusters across the five wheels (evaluation-and-data.md §1.9).
CLUSTER_POLARITY = {
    "happy": 1, "joy": 1, "joyful": 1, "peaceful": 1, "powerful": 1,
    "mad": -1, "angry": -1, "anger": -1, "sad": -1, "scared": -1, "fearful": -1, "fear": -1,
    "disgusted": -1, "disgust": -1, "bad": -1,
    "surprised": 0, "genius": 0,
}


def emotion_polarity(words: Sequence[str], wheels: EmotionWheels | None = None) -> float | None:
    """Sign of the summed level-1 cluster polarities of `words` over the 5 wheels; "neutral" votes 0.

    Returns +1.0 / -1.0 / 0.0 (tie -> neutral), or None when no word maps to any wheel and none is "neutral".
    """
    wheels = wheels or load_wheels()
    total, voted = 0, False
    for w in words:
        if w == "neutral":
            voted = True
            continue
        for wheel in WHEELS:
            c = wheels.cluster(w, wheel)
            if c is not None:
                total += CLUSTER_POLARITY[c]
                voted = True
    if not voted:
        return None
    return float((total > 0) - (total < 0))


def parse_sentiment(text: str, *, extractor: str = "template",
                    wheels: EmotionWheels | None = None) -> ParsedAnswer:
    """MSA answers -> a signed score: the valence value, +1/0/-1 for a sentiment word, or the polarity of an
    emotion-list answer (the OV prompt the reference uses on MSA sets)."""
    text = text if isinstance(text, str) else ""
    body = _THINK_BLOCK.sub(" ", text)
    ms = list(_VALENCE.finditer(body))
    if ms:
        num = ms[-1].group(1).replace("−", "-").replace(" ", "")
        return ParsedAnswer(PARSED, float(num), "valence", text)
    ms = list(_SENTIMENT.finditer(body))
    if ms:
        return ParsedAnswer(PARSED, _SENTIMENT_WORD[ms[-1].group(1).lower()], "sentiment", text)
    bare = body.strip().strip(".!\"' ").lower()
    if bare in _SENTIMENT_WORD:
        return ParsedAnswer(PARSED, _SENTIMENT_WORD[bare], "sentiment_bare", text)
    emo = parse_emotion_list(text, extractor=extractor, wheels=wheels)
    if emo.parsed:
        pol = emotion_polarity(emo.value, wheels)
        if pol is not None:
            return ParsedAnswer(PARSED, pol, f"emotion_polarity:{emo.how}", text)
        return _unparsable(text, "emotion words map to no wheel")
    return _unparsable(text, "no valence, sentiment or emotion template")


# ---------------------------------------------------------------------------------------------------- intent
def _intent_key(s: str) -> str:
    s = re.sub(r"[^a-z ]+", " ", s.lower())
    s = re.sub(r"\s+", " ", s).strip()
    # British/American spellings are the same intent (apologise/apologize, criticise/criticize).
    return re.sub(r"is(e|ed|es|ing)\b", r"iz\1", s)


def parse_intent(text: str, candidates: Sequence[str] = MINTREC2_INTENTS) -> ParsedAnswer:
    """MIR answers -> one of `candidates` (returned as spelled there).

    Case, punctuation, British/American -ise/-ize and extra words are tolerated: the whole answer equal to a
    candidate wins; otherwise the candidates named in the answer as whole words, longest first, and the
    answer is parsed only if exactly one candidate (after removing those contained in a longer match) is named.
    """
    text = text if isinstance(text, str) else ""
    keys: dict[str, str] = {}
    for c in candidates:
        keys.setdefault(_intent_key(c), c)
    body = _intent_key(_THINK_BLOCK.sub(" ", text))
    body = re.sub(r"^(?:the )?(?:(?:most likely|speaker s|predicted) )?(?:intent(?:ion)?|label|answer)"
                  r"(?: label)?(?: of the speaker)? (?:is|would be) ", "", body)
    if body in keys:
        return ParsedAnswer(PARSED, keys[body], "exact", text)
    spans = []
    for k in sorted(keys, key=len, reverse=True):
        for m in re.finditer(rf"\b{re.escape(k)}\b", body):
            if not any(a <= m.start() and m.end() <= b for a, b, _ in spans):
                spans.append((m.start(), m.end(), k))
    named = {k for _, _, k in spans}
    if len(named) == 1:
        return ParsedAnswer(PARSED, keys[named.pop()], "contains", text)
    return _unparsable(text, "no candidate named" if not named else f"several candidates named: {sorted(named)}")


# ------------------------------------------------------------------------------------------------------- ERG
_THINK_INNER = re.compile(r"<think>(.*?)</think>", re.IGNORECASE | re.DOTALL)
_SPEAKER_EMOTION = re.compile(r"emotion\s+of\s+the\s+speaker\s+(?:is|was)\s*:?\s*([a-z]+)")
_COE_STEP = re.compile(r"\b(firstly|secondly|thirdly|fourthly)\b[,:]?\s*(.*?)(?=\b(?:firstly|secondly|thirdly|"
                       r"fourthly)\b|$)", re.IGNORECASE | re.DOTALL)
_STEP_NAMES = {"firstly": "event", "secondly": "emotion", "thirdly": "cause", "fourthly": "goal"}


def parse_erg(text: str) -> ParsedAnswer:
    """CoE answers -> `ErgAnswer`. Status is "parsed" when the speaker emotion is found (in the <think> block,
    else anywhere, e.g. the emotion_recognition answer "The emotion of the speaker is X.")."""
    text = text if isinstance(text, str) else ""
    thinks = _THINK_INNER.findall(text)
    think = thinks[0] if thinks else None
    if think is not None:
        response = _THINK_BLOCK.sub(" ", text).strip()
    elif re.search(r"<think>", text, re.IGNORECASE):
        response = ""  # an unclosed reasoning block: there is no reply
    else:
        response = text.strip()
    response = re.sub(r"</?answer>", " ", response, flags=re.IGNORECASE).strip()
    steps = {}
    for m in _COE_STEP.finditer(think or ""):
        steps.setdefault(_STEP_NAMES[m.group(1).lower()], m.group(2).strip())
    emotion = None
    for scope in ([think] if think else []) + [text]:
        m = _SPEAKER_EMOTION.search(scope.lower())
        if m:
            emotion = m.group(1)
            break
    ans = ErgAnswer(emotion=emotion, response=response, think=think, steps=steps)
    if emotion is None:
        return _unparsable(text, "no 'the emotion of the speaker is' phrase", ans)
    return ParsedAnswer(PARSED, ans, "coe" if think else "emotion_sentence", text)


# ------------------------------------------------------------------------------------------------------- ERI
def parse_eri(text: str, wheels: EmotionWheels | None = None) -> ParsedAnswer:
    """ERI descriptions (free text) -> emotion words: the concluding "emotional state is ..." clause when
    present (EMER's ground truth and our training targets end with one), else a lexicon scan."""
    return parse_emotion_list(text, extractor="lexicon", wheels=wheels)


def parse_answer(task: str, text: str, **kw) -> ParsedAnswer:
    """Dispatch on task name: mer/ovmer -> emotion list, msa -> score, mir -> intent, erg -> CoE, eri -> words."""
    if task in ("mer", "ovmer"):
        return parse_emotion_list(text, **kw)
    if task == "msa":
        return parse_sentiment(text, **kw)
    if task == "mir":
        return parse_intent(text, **kw)
    if task == "erg":
        return parse_erg(text)
    if task == "eri":
        return parse_eri(text, **kw)
    raise ValueError(f"unknown task {task!r}; expected one of mer, msa, ovmer, eri, mir, erg")
