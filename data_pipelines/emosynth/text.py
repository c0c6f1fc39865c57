"""Templates for EmoSynth text: transcripts, reason descriptions, empathetic replies and Chain-of-Empathy.

Transcripts are chosen by (text emotion, intent), so the words carry both the tone and the intent. The
reason sentence names the cues the clip actually shows (face, voice, words), says which are absent or
contradicted, and ends with the EMER-style conclusion "Therefore, it is inferred that the emotional state
is {words}.". The reply and the 4-step Chain of Empathy (event scenario, emotion, cause, goal) follow the
true emotion.
"""

from __future__ import annotations

import numpy as np

from data_pipelines.vocab import AVAMERG_EMOTION

SUBTITLES = {
    ("happy", "Praise"): ("you did an amazing job on this, i love it!", "this is wonderful work, honestly the best yet.",
                          "wow, you nailed it, great work!"),
    ("happy", "Thank"): ("thank you so much, this makes my day!", "thanks a lot, i really appreciate it!",
                         "i am so grateful, thank you for everything!"),
    ("sad", "Apologise"): ("i am so sorry, i let everyone down.", "i'm sorry, it was my fault and i feel terrible.",
                           "please forgive me, i messed it all up."),
    ("sad", "Ask for help"): ("i can't do this alone anymore, can you help me?", "could you please help me, i'm lost.",
                              "i need someone to help me get through this."),
    ("angry", "Complain"): ("this is the third time it broke, this is ridiculous!", "i am sick of waiting all day for this!",
                            "nobody ever listens, this is unacceptable!"),
    ("angry", "Criticize"): ("you ruined the whole thing, how careless can you be?", "that was a terrible decision and you know it.",
                             "your work is sloppy and lazy!"),
    ("worried", "Prevent"): ("wait, don't touch that, it might be dangerous!", "please don't go out there, it isn't safe.",
                             "stop, we could get hurt if we do that."),
    ("worried", "Care"): ("are you okay? you look pale, i'm worried about you.", "did you get home safe? i was so nervous.",
                          "please take care, i keep worrying about you."),
    ("surprise", "Oppose"): ("what? no way, that can't be true!", "you're kidding, that makes no sense at all!",
                             "really? i don't believe it, that's impossible!"),
    ("surprise", "Greet"): ("oh wow, hi! i didn't expect to see you here!", "hey, what a surprise, you're back!",
                            "oh my, hello! when did you get in?"),
    ("neutral", "Inform"): ("the report is on the second shelf.", "the store closes at nine on weekdays.",
                            "the package arrived this morning."),
    ("neutral", "Arrange"): ("let's meet at three in the conference room.", "we can move the call to tuesday.",
                             "i'll book the table for six people."),
    ("neutral", "Introduce"): ("this is dana, she works in accounting.", "i'm the new manager of this floor.",
                               "meet my colleague, he handles the orders."),
    ("neutral", "Leave"): ("okay, i'm heading out now.", "i have to go, see you tomorrow.",
                           "alright, i'll leave you to it then."),
}

FACE_CUES = {
    "neutral": "the face is relaxed, with a straight mouth and level eyebrows",
    "happy": "the corners of the mouth turn up in a smile and the eyes narrow",
    "sad": "the mouth turns down, the inner eyebrows rise and the eyes droop",
    "angry": "the eyebrows are drawn down into a frown and the eyes narrow",
    "worried": "the inner eyebrows rise and the eyes open wide while the mouth tightens",
    "surprise": "the brows shoot up, the eyes open wide and the mouth drops open",
}
VOICE_CUES = {
    "neutral": "the voice is even, at a moderate pitch and pace",
    "happy": "the voice is high, bright and bouncy",
    "sad": "the voice is quiet, low and slow, falling at the end",
    "angry": "the voice is loud, fast and harsh",
    "worried": "the voice is trembling and hurried, with a breathy tone",
    "surprise": "the voice is sharp, rising suddenly in pitch",
}
TEXT_TONES = {
    "neutral": "matter-of-fact", "happy": "cheerful", "sad": "sorrowful",
    "angry": "hostile", "worried": "anxious", "surprise": "astonished",
}

# emotion -> (event scenario, emotion cause, goal to response, reply, topic) alternatives. Every scenario opens
# with "The speaker" and the next word is the emotion's own ("just", "lost", "found", "has", "never", "is"), shared
# by both of its scenarios: the scenarios part at one token, six ways, decided by the emotion alone, as a label
# token is. A Chain-of-Empathy answer states the scenario before the emotion word, and the choice between an
# emotion's two scenarios is a coin flip the clip does not show. With scenarios that part in stages, greedy decoding
# compares groups of emotions, not emotions: with "The speaker's team / old dog / neighbour / mother / friends"
# against "The speaker just / failed / has / ran / is" and "A coworker", the quickstart's tiny model wrote "The
# speaker's old dog passed away" for 27 of 48 held-out clips (ERG emotion accuracy 27 %, chance 19 %); with
# openings "The ..." (4 emotions) against "A ..." (angry) and "Out of the blue" (surprise) it never chose angry or
# surprise. The face and voice cues below part the same way ("in the video, the <word>", "the voice is <word>").
EMPATHY = {
    "happy": (
        ("The speaker just got the job offer they had hoped for.", "their long preparation finally paid off",
         "share their joy and encourage them", "That is fantastic news, congratulations! You worked so hard for this.", "career"),
        ("The speaker just saw their team win the final match.", "their effort over the whole season was rewarded",
         "celebrate with them", "What a win! You must be so proud of the team.", "sports"),
    ),
    "sad": (
        ("The speaker lost their old dog last week.", "they lost a companion of many years",
         "comfort them and acknowledge the loss", "I'm so sorry for your loss. It's clear how much you loved him.", "pets"),
        ("The speaker lost the scholarship they studied hard for.", "their effort did not bring the result they hoped for",
         "console them and restore some hope", "That must hurt a lot. One setback does not define you; you can try again.", "school"),
    ),
    "angry": (
        ("The speaker found their driveway blocked by the neighbour again.", "their repeated requests were ignored",
         "acknowledge the frustration and suggest a calm step", "That sounds infuriating. Maybe a written note would finally get through.", "neighbours"),
        ("The speaker found that a coworker took credit for their project.", "their work was not recognised",
         "validate the anger and help them plan a response", "That's really unfair. You deserve credit; it may help to talk to your manager.", "work"),
    ),
    "worried": (
        ("The speaker has to wait for their mother's test results from the hospital.", "they fear bad news about her health",
         "reassure them and offer support", "Waiting is the hardest part. I hope the results are good; I'm here for you.", "family"),
        ("The speaker has a big presentation tomorrow.", "they are afraid of making mistakes in front of everyone",
         "calm their nerves and boost confidence", "You've prepared well. A bit of nervousness is normal; you'll do great.", "work"),
    ),
    "surprise": (
        ("The speaker never expected their friends to throw them a party.", "they had no idea anything was planned",
         "share the excitement", "No way, a surprise party! Your friends really care about you.", "friends"),
        ("The speaker never expected to run into a childhood friend abroad.", "they never expected to meet them so far from home",
         "share their amazement", "What a coincidence! It's such a small world.", "travel"),
    ),
    "neutral": (
        ("The speaker is organising the schedule for next week.", "nothing unusual is happening, it is routine work",
         "respond helpfully and keep the conversation going", "Sounds like a plan. Let me know if I can help with anything.", "work"),
        ("The speaker is describing their daily commute.", "it is an ordinary part of their day",
         "show interest and keep it friendly", "I see. How long does the trip usually take you?", "daily life"),
    ),
}


def subtitle(text_emotion: str, intent: str, rng: np.random.Generator) -> str:
    options = SUBTITLES.get((text_emotion, intent))
    if options is None:
        raise ValueError(f"no transcript template for tone {text_emotion!r} and intent {intent!r}")
    return options[int(rng.integers(len(options)))]


def reason(face_cue: str, voice_cue: str, text_emotion: str, emotion: str,
           openset: tuple[str, ...]) -> str:
    """An EMER-style reasoning paragraph naming the clip's cues, ending with the open-vocabulary conclusion.

    Order: words, voice, face. A generated paragraph follows its own earlier parts (in training, the cues of
    most clips agree), so its first part steers the rest. Face first (as before), the quickstart's tiny model got
    the face right for 7-10 of 48 held-out clips, and the voice, the words and the conclusion then followed the
    wrong face (ERI wheel F 27-33, chance 24); words first (the cue it reads best), the first part is right for 22
    of 48 and ERI is 41. The words are named by their tone, not quoted: with the transcript quoted, the model
    misquoted it in most answers (a 4-layer LM copies a 10-word span poorly) and the paragraph went off the rails.
    """
    tone = TEXT_TONES[text_emotion]
    if text_emotion != emotion and text_emotion != "neutral":
        parts = [f"the words sound {tone}, but they contradict the face and the voice, which agree with each other"]
    else:
        parts = [f"the words are {tone}"]
    parts.append("the speech is whispered, so the tone of voice gives no clue"
                 if voice_cue == "absent" else f"in the audio, {VOICE_CUES[voice_cue]}")
    parts.append("the person's face is turned away from the camera, so the face gives no clue"
                 if face_cue == "absent" else f"in the video, {FACE_CUES[face_cue]}")
    body = "; ".join(parts)
    return f"{body[0].upper()}{body[1:]}. Therefore, it is inferred that the emotional state is {', '.join(openset)}."


def empathy(emotion: str, rng: np.random.Generator) -> tuple[list[str], str, str]:
    """([event, emotion word, cause, goal], reply, topic) for a clip whose speaker feels `emotion`."""
    event, cause, goal, reply, topic = EMPATHY[emotion][int(rng.integers(len(EMPATHY[emotion])))]
    return [event, AVAMERG_EMOTION[emotion], cause, goal], reply, topic


def listener_reply(emotion: str, rng: np.random.Generator) -> str:
    """A reply for a text-only earlier turn of a conversation (AvaMERG history)."""
    return EMPATHY[emotion][int(rng.integers(len(EMPATHY[emotion])))][3]

FOLLOW_UPS = {
    "happy": "I'm really happy for you. How are you going to celebrate?",
    "sad": "Take all the time you need. Do you want to talk about it?",
    "angry": "I would be upset too. What do you think you'll do next?",
    "worried": "It's understandable to feel that way. Is there anything I can do to help?",
    "surprise": "That really came out of nowhere! What did you do?",
    "neutral": "Okay, that makes sense. Anything else on your mind?",
}


def follow_up(emotion: str) -> str:
    """The listener's reply to a second turn of the same conversation."""
    return FOLLOW_UPS[emotion]
