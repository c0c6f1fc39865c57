"""Parsers: golden answers per task, tolerance to case/punctuation/extra words, malformed -> unparsable."""

import pytest

from emox_jax.eval import parsers as P


@pytest.mark.parametrize("text, words", [
    ("The character's emotional state is {happy, grateful, shy}.", ["happy", "grateful", "shy"]),
    ("the CHARACTER'S emotional state is Happy, grateful and shy!", ["happy", "grateful", "shy"]),
    ("The character's emotional state is slightly anxious, and a bit sad.", ["anxious", "sad"]),
    ("The character's emotional state is sad, sad, Sad.", ["sad"]),                     # duplicates collapse
    ("The most likely label is Angry.", ["angry"]),
    ("Hmm. THE MOST LIKELY LABEL IS: worried", ["worried"]),
    ("The emotion of the speaker is sad.", ["sad"]),
    ("<think>He smiles widely.</think><answer>happy, surprised</answer>.", ["happy", "surprised"]),
    ("He frowns. The character's emotional state is neutral.", ["neutral"]),
    ("Happy.", ["happy"]),                                                              # bare label
])
def test_emotion_list_golden(text, words):
    r = P.parse_emotion_list(text)
    assert r.parsed and r.value == words


@pytest.mark.parametrize("text", ["", "I think he is fine", "The character's emotional state is .",
                                  "<think>the emotional state is happy</think>", "happy birthday to you my friend"])
def test_emotion_list_malformed_is_unparsable(text):
    r = P.parse_emotion_list(text)
    assert not r.parsed and r.value is None


def test_lexicon_extractor_only_when_asked():
    text = "He yells and looks angry, but he might not be happy."
    assert not P.parse_emotion_list(text).parsed
    r = P.parse_emotion_list(text, extractor="lexicon")
    # "might" is a stop form (might -> mighty -> powerful); "happy" is negated by "not".
    assert r.parsed and r.how == "lexicon" and r.value == ["angry"]


@pytest.mark.parametrize("text, score", [
    ("The valence score is 0.50.", 0.5),
    ("The valence score is -1.25", -1.25),
    ("the VALENCE score is: −0.3.", -0.3),
    ("The character's sentiment state is positive.", 1.0),
    ("The character's sentiment state is Negative", -1.0),
    ("neutral.", 0.0),
    ("The character's emotional state is happy, excited.", 1.0),   # polarity of wheel clusters
    ("The character's emotional state is angry and sad.", -1.0),
    ("The character's emotional state is neutral.", 0.0),
])
def test_sentiment_golden(text, score):
    r = P.parse_sentiment(text)
    assert r.parsed and r.value == pytest.approx(score)


@pytest.mark.parametrize("text", ["", "no idea", "The valence score is high.", "The character's emotional state is blorp."])
def test_sentiment_malformed(text):
    assert not P.parse_sentiment(text).parsed


@pytest.mark.parametrize("text, label", [
    ("Ask for help", "Ask for help"), ("ask for help.", "Ask for help"), ("INFORM", "Inform"),
    ("The intent is: Apologize.", "Apologise"), ("criticise", "Criticize"),
    ("The speaker wants to complain about it.", "Complain"), ("Asking for opinions", "Asking for opinions"),
])
def test_intent_golden(text, label):
    r = P.parse_intent(text)
    assert r.parsed and r.value == label


@pytest.mark.parametrize("text", ["", "blah", "complain or praise", "Inform"])
def test_intent_malformed_or_out_of_candidates(text):
    r = P.parse_intent(text, candidates=P.MINTREC_INTENTS[:5])  # Inform is not among the first 5
    assert not r.parsed


COE = ("<think>Firstly, the event scenario of this conversation is: discussing fatigue\n"
       "Secondly, the emotion of the speaker is Anxious\nThirdly, the emotion cause is declining health\n"
       "Fourthly, the goal to response is to validate feelings</think>\n That sounds really tough.")


def test_erg_golden():
    r = P.parse_erg(COE)
    assert r.parsed and r.how == "coe"
    a = r.value
    assert a.emotion == "anxious" and a.response == "That sounds really tough."
    assert a.steps["event"].startswith("the event scenario") and a.steps["goal"].endswith("validate feelings")
    r2 = P.parse_erg("The emotion of the speaker is sad.")
    assert r2.parsed and r2.value.emotion == "sad" and r2.how == "emotion_sentence"


def test_erg_malformed_keeps_reply():
    r = P.parse_erg("<think>Firstly, something happened</think> I am here for you.")
    assert not r.parsed and r.value.emotion is None and r.value.response == "I am here for you."
    r2 = P.parse_erg("<think>the emotion of the speaker is")  # truncated, unclosed
    assert not r2.parsed and r2.value.response == ""


def test_eri_template_then_lexicon():
    gt = "He roared and stared. Therefore, it is inferred that his emotional state is anger."
    assert P.parse_eri(gt).value == ["anger"] and P.parse_eri(gt).how == "template"
    free = "The caption content suggests he is frustrated and not calm."
    r = P.parse_eri(free)
    assert r.how == "lexicon" and r.value == ["frustrated"]  # "content" as a noun and negated "calm" skipped


def test_parse_answer_dispatch_and_unknown_task():
    assert P.parse_answer("mir", "Inform").value == "Inform"
    with pytest.raises(ValueError, match="unknown task 'foo'"):
        P.parse_answer("foo", "x")
