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
