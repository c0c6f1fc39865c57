"""`python -m launch.score` as a subprocess on small CSV/JSONL files for every task, and its bad-input errors."""

import csv
import json
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def _csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _jsonl(path, rows):
    path.write_text("".join(json.dumps({"id": i, "answer": a}) + "\n" for i, a in rows), encoding="utf-8")
    return path


def _run(*args):
    return subprocess.run([sys.executable, "-m", "launch.score", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def _score(tmp_path, task, gt_header, gt_rows, pred_rows, mode="clean", jsonl=False):
    gt = _csv(tmp_path / f"{task}_gt.csv", gt_header, gt_rows)
    pred = _jsonl(tmp_path / f"{task}.jsonl", pred_rows) if jsonl else _csv(tmp_path / f"{task}.csv", ["id", "answer"], pred_rows)
    res = _run("--task", task, "--pred", pred, "--gt", gt, "--mode", mode)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


@pytest.mark.slow
def test_mer_and_ovmer(tmp_path):
    gt = [("a", "happy"), ("b", "neutral"), ("c", "sad"), ("d", "angry")]
    pred = [("a", "The character's emotional state is joyful, excited."), ("b", "The character's emotional state is sad."),
            ("c", "no idea"), ("e", "The character's emotional state is sad.")]
    out = _score(tmp_path, "mer", ["id", "label"], gt, pred, jsonl=True)
    # a hit; b neutral skipped; c unparsable -> miss; d missing -> miss (clean) => 1/3 in every wheel
    assert out["hit_rate"] == pytest.approx(100 / 3)
    assert (out["n_unparsable"], out["n_missing_pred"], out["n_missing_gt"]) == (1, 1, 1)
    par = _score(tmp_path, "mer", ["id", "label"], gt, pred, mode="parity", jsonl=True)
    assert par["hit_rate"] == pytest.approx(50.0) and "score_intersection_only" in par["parity_quirks"]
    ov = _score(tmp_path, "ovmer", ["id", "label"], [("a", "happy, sad"), ("b", "")],
                [("a", "The character's emotional state is happy."), ("b", "The character's emotional state is happy.")])
    # a: P=1, R=1/2 (b's empty GT = neutral, skipped) -> F = 2/3
    assert ov["f"] == pytest.approx(100 * 2 / 3) and ov["precision"] == pytest.approx(100.0)


def test_msa(tmp_path):
    gt = [("a", "1.5"), ("b", "-0.8"), ("c", "0"), ("d", "-2")]
    pred = [("a", "The valence score is 0.60."), ("b", "garbled"), ("c", "positive"),
            ("d", "The character's sentiment state is negative.")]
    clean = _score(tmp_path, "msa", ["id", "label"], gt, pred)
    par = _score(tmp_path, "msa", ["id", "label"], gt, pred, mode="parity")
    # clean: b is a miss -> 2/3 correct; parity (unparsable_as_neutral): b counts as "not positive" -> 3/3
    assert clean["accuracy"] == pytest.approx(100 * 2 / 3) and par["accuracy"] == pytest.approx(100.0)
    assert clean["n_unparsable"] == 1 and clean["n_gt_zero_skipped"] == 1


def test_mir(tmp_path):
    gt = [("a", "Inform"), ("b", "Ask for help"), ("c", "Complain"), ("d", "Thank")]
    pred = [("a", "inform."), ("b", "Ask for help"), ("c", "Complain"), ("d", "I have no clue")]
    clean = _score(tmp_path, "mir", ["id", "label"], gt, pred)
    par = _score(tmp_path, "mir", ["id", "label"], gt, pred, mode="parity")
    assert clean["accuracy"] == pytest.approx(75.0) and par["accuracy"] == pytest.approx(50.0)
    assert clean["n_unparsable"] == 1 and "macro_f1" in clean and "weighted_precision" in clean


def test_erg(tmp_path):
    coe = "<think>Firstly, x\nSecondly, the emotion of the speaker is {}\nThirdly, y\nFourthly, z</think>\n {}"
    gt = [("a", "sad", "I am sorry to hear that."), ("b", "joyful", "That is great news!")]
    pred = [("a", coe.format("sad", "I am so sorry to hear that.")), ("b", coe.format("proud", "Great news indeed!"))]
    out = _score(tmp_path, "erg", ["id", "label", "response"], gt, pred)
    assert out["emotion_accuracy"] == pytest.approx(50.0) and out["hit_rate"] == pytest.approx(100.0)  # proud, joyful -> happy
    for k in ("dist1_per_response", "dist2_per_response", "dist1_corpus", "dist2_corpus", "rougeL_response_f"):
        assert 0 < out[k] <= 100, k


def test_eri(tmp_path):
    gt = [("a", "He shouts. Therefore, his emotional state is anger.", "angry")]
    pred = [("a", "He looks furious and annoyed.")]
    out = _score(tmp_path, "eri", ["id", "label", "emotion"], gt, pred)
    assert out["hit_rate"] == pytest.approx(100.0) and out["wheel_precision"] > 0 and "rougeL_f" in out


@pytest.mark.parametrize("case", ["unknown_task", "missing_column", "unreadable", "bad_number", "bad_jsonl"])
def test_bad_input_exits_2_naming_it(tmp_path, case):
    gt = _csv(tmp_path / "gt.csv", ["id", "label"], [("a", "happy")])
    pred = _csv(tmp_path / "p.csv", ["id", "answer"], [("a", "happy")])
    task = "mer"
    if case == "unknown_task":
        task, needle = "foo", "foo"
    elif case == "missing_column":
        pred, needle = _csv(tmp_path / "p2.csv", ["id", "text"], [("a", "x")]), "answer"
    elif case == "unreadable":
        pred, needle = tmp_path / "nope.csv", "nope.csv"
    elif case == "bad_number":
        task, needle = "msa", "signed number"
    else:
        pred = tmp_path / "p.jsonl"
        pred.write_text('{"id": "a", "answer": "x"}\n{not json\n')
        needle = "line 2"
    res = _run("--task", task, "--pred", pred, "--gt", gt)
    assert res.returncode == 2 and needle in res.stderr and res.stdout == ""
