"""Metric unit tests against hand-computed values (empty predictions, unknown words, duplicates, neutral)."""

import math

import pytest

from emox_jax.eval.classification import classification_scores
from emox_jax.eval.emotion_wheel import WHEELS, load_wheels
from emox_jax.eval.metrics_erg import distinct_n, erg_scores
from emox_jax.eval.metrics_eri import eri_scores, lcs_length, rouge_l
from emox_jax.eval.metrics_mer import wheel_hit_rate, wheel_set_prf
from emox_jax.eval.metrics_mir import mir_scores
from emox_jax.eval.metrics_msa import msa_scores


def test_wheel_tables_match_design_note():
    w = load_wheels()
    assert len(w.wheel_words) == 253 and len(w.name_to_wheel_words) == 1255 and len(w.form_to_names) == 7386
    # evaluation-and-data.md §1.2 fixture table (wheels 1-5, level 1).
    table = {"anger": ["mad", "angry", "mad", "anger", "mad"], "happy": ["happy", "happy", "joyful", "joy", "powerful"],
             "worried": ["scared", "fearful", "scared", "fear", "scared"],
             "surprise": ["surprised", "surprised", "powerful", "fear", None],
             "disgust": ["disgusted", "disgusted", None, "disgust", None],
             "fear": ["scared", "happy", "joyful", "genius", "joyful"],
             "contempt": [None, "angry", None, None, None], "doubt": ["mad", "angry", "mad", "anger", "mad"],
             "neutral": [None] * 5}
    for word, want in table.items():
        assert [w.cluster(word, k) for k in WHEELS] == want, word
    # level 2: a level-1 word maps to its alphabetically first level-2 child; wheel1 'mad' children sorted.
    assert w.cluster("mad", "wheel1", "level2") == "aggressive"
    assert w.cluster("furious", "wheel1", "level2") == "anger"


def test_classification_hand_values():
    # labels a,b,c,x. a: P=1 R=.5 F=2/3 (sup 2); b: P=.5 R=1 F=2/3 (sup 1); c: 0 (sup 1); x: 0 (sup 0).
    s = classification_scores(["a", "a", "b", "c"], ["a", "b", "b", "x"])
    assert s["accuracy"] == pytest.approx(0.5)
    assert s["weighted_f1"] == pytest.approx((2 * 2 / 3 + 2 / 3) / 4)          # 0.5
    assert s["weighted_precision"] == pytest.approx((2 * 1 + 0.5) / 4)         # 0.625
    assert s["weighted_recall"] == pytest.approx(0.5)
    assert s["macro_f1"] == pytest.approx((2 / 3 + 2 / 3) / 4)                 # 1/3 over 4 labels
    assert classification_scores([], [])["weighted_f1"] == 0.0


def test_mir_clean_vs_parity():
    gt = ["Inform", "Inform", "Complain", "Thank"]
    # clean: parsed labels, None = unparsable (a miss, not a label in the macro set {Inform, Complain, Thank}).
    c = mir_scores(gt, ["Inform", "Complain", "Complain", None])
    assert c["accuracy"] == pytest.approx(50.0)
    assert c["weighted_f1"] == pytest.approx(50.0) and c["weighted_precision"] == pytest.approx(62.5)
    assert c["macro_f1"] == pytest.approx(100 * 4 / 9)
    # parity (quirk exact_case_sensitive_intent): raw strings; "inform." and "Complain " != GT except after strip.
    p = mir_scores(gt, ["Inform", "inform.", "Complain ", "thank"], mode="parity")
    assert p["accuracy"] == pytest.approx(50.0)


def test_msa_hand_values_and_unparsable_quirk():
    gt = [1.2, -0.5, 0.0, 2.0, -1.0]
    pred = [0.8, None, 1.0, -1.0, 0.0]   # None = unparsable; 0.0 = neutral -> "not positive"
    # parity: y=[T,F,T,F], ŷ=[T,F,F,F] -> acc 3/4; F1(T)=2/3, F1(F)=0.8, weighted (2,2) = 0.7333.
    p = msa_scores(gt, pred, mode="parity")
    assert p["accuracy"] == pytest.approx(75.0) and p["weighted_f1"] == pytest.approx(100 * (2 / 3 + 0.8) / 2)
    assert p["n_scored"] == 4 and p["n_gt_zero_skipped"] == 1
    # clean: the unparsable answer is a miss -> ŷ=[T,T,F,F]: acc 1/2, both classes F1 = .5.
    c = msa_scores(gt, pred)
    assert c["accuracy"] == pytest.approx(50.0) and c["weighted_f1"] == pytest.approx(50.0)
    assert c["n_unparsable_scored"] == 1


def test_hit_rate_neutral_unknown_empty_duplicates():
    gt = ["happy", "neutral", "fear", "sad", "surprise"]
    pred = [["joy", "joy", "blorp"], ["neutral"], ["scared"], [], ["surprised"]]
    r = wheel_hit_rate(gt, pred)
    # neutral skipped everywhere; surprise skipped in wheel5 (maps to nothing there).
    # happy/joy: hit in all wheels. fear vs scared: fear -> [scared, happy, joyful, genius, joyful],
    # scared -> [scared, fearful, scared, fear, scared]: hit only in wheel1. sad vs []: miss.
    # surprise vs surprised: same cluster in wheels 1-4.
    want = {"wheel1": 3 / 4, "wheel2": 2 / 4, "wheel3": 2 / 4, "wheel4": 2 / 4, "wheel5": 1 / 3}
    for k, v in want.items():
        assert r["per_wheel"][k]["hit_rate"] == pytest.approx(100 * v), k
    assert r["per_wheel"]["wheel5"]["n_scored"] == 3 and r["per_wheel"]["wheel1"]["n_scored"] == 4
    assert r["hit_rate"] == pytest.approx(100 * (3 / 4 + 3 * 2 / 4 + 1 / 3) / 5)


def test_hit_rate_parity_quirks():
    # multi-label GT: clean hit = 1, parity hit = |pred ∩ gt| = 2 (hit_counts_intersection_size)
    assert wheel_hit_rate([["happy", "sad"]], [["joy", "sadness"]])["hit_rate"] == pytest.approx(100.0)
    assert wheel_hit_rate([["happy", "sad"]], [["joy", "sadness"]], mode="parity")["hit_rate"] == pytest.approx(200.0)
    # no scorable sample: clean 0, parity NaN (nan_f_score)
    assert wheel_hit_rate(["neutral"], [["happy"]])["hit_rate"] == 0.0
    assert math.isnan(wheel_hit_rate(["neutral"], [["happy"]], mode="parity")["hit_rate"])


def test_set_prf_hand_values():
    gt = [["happy"], ["neutral"], ["sad", "sadness"], ["angry", "sad"]]
    pred = [["joy", "happy", "blorp"], [], [], ["anger"]]
    r = wheel_set_prf(gt, pred)
    # row1 P=R=1 (joy, happy one cluster; blorp dropped); row2 skipped (neutral); row3 empty pred P=R=0;
    # row4 G={mad/angry.., sad}, P={mad/angry..} -> P=1, R=1/2 in every wheel.
    # P = (1+0+1)/3 = 2/3, R = (1+0+.5)/3 = 1/2, F = 2PR/(P+R) = (2/3)/(7/6) = 4/7.
    for k in WHEELS:
        assert r["per_wheel"][k]["precision"] == pytest.approx(100 * 2 / 3)
        assert r["per_wheel"][k]["recall"] == pytest.approx(50.0)
        assert r["per_wheel"][k]["f"] == pytest.approx(100 * 4 / 7)
    assert r["f"] == pytest.approx(100 * 4 / 7)
    clean, parity = wheel_set_prf([["happy"]], [["sad"]]), wheel_set_prf([["happy"]], [["sad"]], mode="parity")
    assert clean["f"] == 0.0 and math.isnan(parity["f"])  # nan_f_score


def test_distinct_n_hand_values():
    per1, corp1 = distinct_n(["a b a b", "c d", ""], 1)
    assert per1 == pytest.approx(75.0) and corp1 == pytest.approx(100 * 4 / 6)   # (.5 + 1)/2 ; 4 distinct of 6
    per2, corp2 = distinct_n(["a b a b", "c d", ""], 2)
    assert per2 == pytest.approx(100 * (2 / 3 + 1) / 2) and corp2 == pytest.approx(75.0)  # ab,ba,ab,cd
    assert distinct_n([], 1) == (0.0, 0.0)


COE = "<think>Firstly, x\nSecondly, the emotion of the speaker is {e}\nThirdly, y\nFourthly, z</think>\n {r}"


def test_erg_clean_vs_parity():
    gt = ["anxious", "embarrassed", "angry", "joyful"]
    answers = [COE.format(e="anxious", r="a b a b"), COE.format(e="ashamed", r="c d"),
               "I made a cake for you.", COE.format(e="tired", r="ok")]
    c = erg_scores(gt, answers)
    # clean: row1 exact; row2 ashamed vs embarrassed: both -> sad (hit); row3 no phrase -> unparsable miss;
    # row4 'tired' is not in the 8-class table -> miss, counted unmapped.
    assert c["emotion_accuracy"] == pytest.approx(25.0) and c["hit_rate"] == pytest.approx(50.0)
    assert c["n_unparsable"] == 1 and c["n_hit_unmapped"] == 1
    p = erg_scores(gt, answers, mode="parity")
    # parity: row3 'mad' ⊂ 'made' -> angry (keyword_substring_fallback) -> exact + hit;
    # row2 embarrassed -> disgusted != sad (embarrassed_to_disgusted).
    assert p["emotion_accuracy"] == pytest.approx(50.0) and p["hit_rate"] == pytest.approx(50.0)
    assert p["n_unparsable"] == 0
    # Dist over replies "a b a b", "c d", "I made a cake for you.", "ok"
    assert c["dist1_per_response"] == pytest.approx(100 * (0.5 + 1 + 1 + 1) / 4)


def test_rouge_l_hand_values():
    assert lcs_length("a b c d e".split(), "a c e f".split()) == 3
    p, r, f = rouge_l("the cat sat on the mat", "the cat is on the mat")
    # LCS = the cat on the mat = 5; P = 5/6, R = 5/6
    assert (p, r) == (pytest.approx(5 / 6), pytest.approx(5 / 6)) and f == pytest.approx(5 / 6)
    assert rouge_l("", "abc") == (0.0, 0.0, 0.0)


def test_eri_scores_template_gt():
    gt = ["Therefore, his emotional state is anger.", "Therefore, her emotional state is happy and grateful."]
    pred = ["Therefore, his state is angry.", "I cannot tell."]
    r = eri_scores(gt, pred, gt_emotions=["angry", "happy"])
    assert r["n_unparsable"] == 1   # "I cannot tell." names no emotion
    # row1 P=R=1 every wheel; row2 empty prediction P=R=0 -> P=R=.5, F=.5
    assert r["wheel_f"] == pytest.approx(50.0) and r["hit_rate"] == pytest.approx(50.0)
    # ROUGE-L row1: LCS(therefore his state is angry | therefore his emotional state is anger) = 4,
    # P = 4/5, R = 4/6, F = 2PR/(P+R) = 8/11; row2: 0 -> mean 4/11.
    assert r["rougeL_f"] == pytest.approx(100 * 4 / 11)
