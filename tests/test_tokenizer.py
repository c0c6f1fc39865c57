"""Tokenizers: round trips, single-token placeholders, determinism of the tiny model, load_tokenizer specs."""

import json

import pytest

from emox_jax import tokenizer as tk
from emox_jax.assets.corpus import CORPUS_FILE, generate_corpus, read_corpus

TEXTS = [
    "Anna smiles widely and speaks in a light, rising voice.",
    "###Human: <ImageHere> <AudioHere> What emotion does the person show? ###Assistant: happy",
    "<think> The cues: a frown, a loud voice. </think> I am sorry.",
    "Unseen words: Zyxwvut qoph 12345, émotion, 😀 and tabs\tok,  two spaces.",
]


def _train_byte_level_bpe(path):
    """A small Qwen-like tokenizer.json trained offline: byte-level BPE + Qwen's three special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(read_corpus()[:500], trainer=trainer)
    tok.save(str(path))
    return tok.get_vocab_size(with_added_tokens=True)


@pytest.fixture(scope="module")
def hf_tok(tmp_path_factory):
    path = tmp_path_factory.mktemp("qwen_tok") / "tokenizer.json"
    base = _train_byte_level_bpe(path)
    return tk.load_tokenizer(str(path.parent)), base


@pytest.fixture(scope="module")
def tiny():
    return tk.tiny_tokenizer()


def _check_common(tok):
    assert isinstance(tok, tk.Tokenizer)
    for text in TEXTS:
        ids = tok.encode(text)
        assert all(0 <= i < tok.vocab_size for i in ids)
        assert tok.decode(ids) == text
    # Each placeholder is exactly one token, distinct from each other and from bos/eos.
    ids = list(tok.placeholder_ids.values())
    assert list(tok.placeholder_ids) == list(tk.PLACEHOLDER_TOKENS)
    assert len(set(ids)) == 5 and tok.bos_id not in ids and tok.eos_id not in ids
    for name, idx in tok.placeholder_ids.items():
        assert tok.encode(name) == [idx]
        assert tok.token_to_id(name) == idx
    assert tok.pad_id == tok.eos_id  # the reference's convention
    # encode never adds bos/eos.
    assert tok.bos_id not in tok.encode("hello") and tok.eos_id not in tok.encode("hello")
    with pytest.raises(KeyError, match="not a single token"):
        tok.token_to_id("<NoSuchToken>")


def test_hf_tokenizer_round_trip_and_placeholders(hf_tok):
    tok, base = hf_tok
    _check_common(tok)
    # Placeholders are appended after the base vocabulary, in order (151665… on the real Qwen2.5 vocab).
    assert list(tok.placeholder_ids.values()) == list(range(base, base + 5))
    assert tok.vocab_size == base + 5
    assert tok.bos_id == tok.token_to_id("<|im_start|>") and tok.eos_id == tok.token_to_id("<|im_end|>")
    text = "<|im_start|>user <FaceHere> hi<|im_end|>"
    assert tok.encode(text)[0] == tok.bos_id and tok.encode(text)[-1] == tok.eos_id
    assert tok.decode(tok.encode(text)) == text


def test_hf_tokenizer_keeps_existing_placeholders(hf_tok, tmp_path):
    tok, base = hf_tok
    # Re-loading a tokenizer.json that already has the placeholders must not add them twice.
    tok._tok.save(str(tmp_path / "tokenizer.json"))
    again = tk.HFTokenizer(tmp_path)
    assert again.placeholder_ids == tok.placeholder_ids and again.vocab_size == tok.vocab_size


def test_hf_tokenizer_rejects_non_qwen(tmp_path):
    from tokenizers import Tokenizer, models

    Tokenizer(models.BPE()).save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(ValueError, match="<\\|im_start\\|>"):
        tk.HFTokenizer(tmp_path / "tokenizer.json")


def test_tiny_tokenizer(tiny):
    _check_common(tiny)
    assert tiny.vocab_size == tk.TINY_VOCAB_SIZE
    for sym in ("###", "<think>", "</think>"):
        assert tiny.encode(sym) == [tiny.token_to_id(sym)]
    # The vocabulary fits the corpus: typical text is much shorter in tokens than in characters.
    line = read_corpus()[0]
    assert len(tiny.encode(line)) < len(line) / 3


def test_tiny_tokenizer_deterministic(tiny, tmp_path):
    # Same corpus + settings -> byte-identical model, and the shipped corpus is what the generator makes.
    assert read_corpus(CORPUS_FILE) == generate_corpus()
    lines = tk.tiny_training_lines()
    assert lines[:len(read_corpus())] == read_corpus() and lines == tk.tiny_training_lines()
    assert tk.train_sentencepiece(lines) == tk.train_sentencepiece(lines)
    path = tk.build_tiny_tokenizer(directory=tmp_path)
    assert path.read_bytes() == tk.train_sentencepiece(lines)
    assert tk.build_tiny_tokenizer(directory=tmp_path) == path  # cached, keyed by corpus hash
    assert tk.SentencePieceTokenizer(path).encode(TEXTS[1]) == tiny.encode(TEXTS[1])


def test_load_tokenizer_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither"):
        tk.load_tokenizer(str(tmp_path / "nope"))


def test_cli_build(capsys):
    tk.main(["--build"])
    out = json.loads(capsys.readouterr().out)
    assert out["vocab_size"] == tk.TINY_VOCAB_SIZE and out["placeholder_ids"]["<ImageHere>"] > 2
