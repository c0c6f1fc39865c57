"""LLM judge: reply parsing on fixed strings, ChatML prompt construction, and a real (random, tiny) Qwen2 run
through our decoder from a save_pretrained dir + a byte-level BPE tokenizer.json built here."""

import math

import jax
import jax.numpy as jnp
import pytest

from emox_jax.assets.corpus import read_corpus
from emox_jax.eval import llm_judge as J


@pytest.mark.parametrize("reply, expected", [
    ("Score: 7", 7.0), ("The clues overlap a lot.\nScore: 8.5", 8.5), ("I'd say 6/10.", 6.0),
    ("Both mention a smile (1) ... Score: 9", 9.0),  # the labelled score wins over earlier numbers
    ("4", 4.0), ("score=10", 10.0),
    ("", None), ("no idea", None), ("Score: 11", None), ("0", None), (None, None),
])
def test_parse_score(reply, expected):
    assert J.parse_score(reply) == expected


@pytest.mark.parametrize("reply, expected", [
    ("[happy, relieved]", ["happy", "relieved"]),
    ("Answer: ['Angry', \"impatient\", angry]", ["angry", "impatient"]),
    ("Thinking... [sad]. Final: [worried, tense]", ["worried", "tense"]),
    ("[]", []),
    ("happy, excited", ["happy", "excited"]),
    ("The character seems to be quite happy about the outcome of the meeting today: joyful!", None),
    ("[he is clearly very upset about the news]", None),
    ("", None), (None, None),
])
def test_parse_label_list(reply, expected):
    assert J.parse_label_list(reply) == expected


@pytest.fixture(scope="module")
def judge_dir(tmp_path_factory):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from emox_jax.convert.qwen2 import save_hf
    from emox_jax.models.qwen2 import Qwen2Config, Qwen2ForCausalLM

    d = tmp_path_factory.mktemp("judge")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=360, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(read_corpus()[:300], trainer=trainer)
    tok.save(str(d / "tokenizer.json"))
    cfg = Qwen2Config.tiny(vocab_size=384, hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=16,
                           intermediate_size=128, lora_rank=0)
    params = Qwen2ForCausalLM(cfg).init(jax.random.key(0), jnp.zeros((1, 8), jnp.int32))["params"]
    save_hf(params, cfg, d)
    return d


@pytest.mark.slow
def test_chat_prompt_construction(judge_dir):
    judge = J.LLMJudge.load(judge_dir, max_new_tokens=6, batch_size=2)
    t = judge.tokenizer
    ids = judge.chat_ids("Rate this.")
    assert ids.count(t.bos_id) == 3 and ids.count(t.eos_id) == 2
    text = t.decode(ids)
    assert text == (f"<|im_start|>system\n{J.SYSTEM}<|im_end|>\n<|im_start|>user\nRate this.<|im_end|>\n"
                    "<|im_start|>assistant\n")
    p = J.EXTRACT_PROMPT.format(text="She laughs.")
    assert p.endswith("Description: She laughs.\nAnswer:") and "[angry, impatient]" in p
    c = J.CLUE_PROMPT.format(gt="G text", pred="P text")
    assert "Reference: G text" in c and "Prediction: P text" in c and "Score: N" in c


@pytest.mark.slow
def test_generation_runs_and_scores_are_counted(judge_dir):
    judge = J.LLMJudge.load(judge_dir, max_new_tokens=6, batch_size=2)
    replies = judge.generate(["hello", "how are you", "third prompt"])
    assert len(replies) == 3 and all(isinstance(r, str) for r in replies)
    assert judge.generate(["hello"]) == replies[:1]   # greedy: deterministic, independent of batch mates
    out = judge.score_eri(["He is happy.", "She is sad."], ["He smiles, happy.", "She cries."])
    assert out["n_scored"] == 2
    assert 0 <= out["n_unparsable_clue"] <= 2 and 0 <= out["n_unparsable_labels"] <= 2
    # A random model almost surely gives no readable score: unparsable replies are counted, never defaulted.
    if out["n_unparsable_clue"] == 2:
        assert math.isnan(out["llm_clue_overlap"])


class _RecordingJudge:
    """A judge double with fixed replies: checks WHICH answers `scoring` routes to the LLM and how it uses the
    lists (the real model's path is covered by the CLI test below)."""

    def __init__(self, replies):
        self.replies, self.seen = replies, []

    def extract_labels(self, texts):
        self.seen.extend(texts)
        return [self.replies.get(t) for t in texts]


def test_llm_extractor_reads_only_what_templates_cannot():
    from emox_jax.eval.scoring import ScoringInputError, score

    gt = {"a": {"label": "happy, grateful"}, "b": {"label": "sad"}, "c": {"label": "angry"}, "d": {"label": "sad"}}
    preds = {"a": "The emotional state is happy, grateful.",        # template: never sent to the judge
             "b": "She sobs quietly after the call.",               # free text: the judge reads "sad"
             "c": "He slams the door.",                             # the judge's reply is unreadable (None)
             "d": ""}                                               # empty: unparsable, not sent
    judge = _RecordingJudge({"She sobs quietly after the call.": ["Sad "], "He slams the door.": None})
    out = score("ovmer", preds, gt, extractor="llm", judge=judge)
    assert judge.seen == ["She sobs quietly after the call.", "He slams the door."]
    assert out["n_llm_extracted"] == 1 and out["n_unparsable"] == 2 and out["extractor"] == "llm"
    template = score("ovmer", preds, gt)
    assert template["n_unparsable"] == 3 and "n_llm_extracted" not in template
    assert out["recall"] > template["recall"]   # "b" now counts as a hit
    with pytest.raises(ScoringInputError, match="needs a judge"):
        score("mer", preds, gt, extractor="llm")
    with pytest.raises(ScoringInputError, match="not 'msa'"):
        score("msa", {"a": "1"}, {"a": {"label": "1"}}, extractor="llm", judge=judge)


@pytest.mark.slow
def test_score_cli_with_a_local_judge(judge_dir, tmp_path):
    import csv
    import json
    import pathlib
    import subprocess
    import sys

    repo = pathlib.Path(__file__).resolve().parents[2]
    gt, pred = tmp_path / "gt.csv", tmp_path / "pred.csv"
    with open(gt, "w", newline="") as f:
        csv.writer(f).writerows([["id", "label", "emotion"], ["1", "He smiles because he passed.", "happy"],
                                 ["2", "She cries over the loss.", "sad"]])
    with open(pred, "w", newline="") as f:
        csv.writer(f).writerows([["id", "answer"], ["1", "The emotional state is happy."],
                                 ["2", "Tears run down her face."]])

    def run(*args):
        return subprocess.run([sys.executable, "-m", "launch.score", "--pred", pred, "--gt", gt, *args], cwd=repo,
                              capture_output=True, text=True, timeout=600)

    res = run("--task", "eri", "--extractor", "llm", "--judge", judge_dir, "--judge-max-new-tokens", "4",
              "--judge-batch-size", "2")
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout)
    assert {"llm_clue_overlap", "llm_label_overlap", "llm_overall", "n_unparsable_clue"} <= set(out)
    assert 0 <= out["n_unparsable_clue"] <= 2 and out["extractor"] == "llm"
    res = run("--task", "mer", "--extractor", "llm", "--judge", judge_dir, "--judge-max-new-tokens", "4")
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout)
    # Row 1 is read by the template; row 2 went to the (random) judge: read by it or counted unparsable.
    assert out["n_llm_extracted"] + out["n_unparsable"] == 1
    bad = run("--task", "mer", "--extractor", "llm")
    assert bad.returncode == 2 and "needs --judge" in bad.stderr
    bad = run("--task", "msa", "--extractor", "llm", "--judge", judge_dir)
    assert bad.returncode == 2 and "not 'msa'" in bad.stderr
    bad = run("--task", "mer", "--extractor", "llm", "--judge", tmp_path / "nope")
    assert bad.returncode == 2 and "nope" in bad.stderr
