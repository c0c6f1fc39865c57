"""Tokenizers: one small interface, two backends.

* ``HFTokenizer`` wraps Qwen's byte-level BPE ``tokenizer.json`` (HF ``tokenizers``). As in the reference
  (``reference-architecture.md`` §2.1): bos = ``<|im_start|>``, pad = eos = ``<|im_end|>``, and the five media
  placeholders are appended as special tokens in the order ``PLACEHOLDER_TOKENS`` (ids 151665…151669 on the real
  Qwen2.5 vocabulary), each a single token.
* ``SentencePieceTokenizer`` is the `tiny` preset's tokenizer: a BPE sentencepiece model (vocab
  ``TINY_VOCAB_SIZE``) trained from the corpus the package ships (``emox_jax/assets/tiny_corpus.txt``) plus
  the project's prompts rendered over EmoSynth clips (``data_pipelines.emosynth.tokenizer_text``), with the
  placeholders, ``###``, ``<think>`` and ``</think>`` as user-defined symbols and byte fallback. The same
  bos/eos/pad convention holds (``<|im_start|>`` / ``<|im_end|>`` as control symbols, pad = eos).

Both satisfy ``Tokenizer``: ``encode(text) -> list[int]`` (never adds special tokens), ``decode(ids) -> str``,
``vocab_size``, ``bos_id``, ``eos_id``, ``pad_id``, ``token_to_id(token)``, ``placeholder_ids``.

``tiny_tokenizer()`` trains on first use and caches the model under ``<repo>/build/tokenizers`` (a source
checkout) or ``~/.cache/emox_jax/tokenizers`` (``$EMOX_JAX_CACHE`` overrides), keyed by a hash of the corpus
and the trainer settings. ``python -m emox_jax.tokenizer --build`` does it ahead of time (the setup step).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import pathlib
import tempfile
from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

PLACEHOLDER_TOKENS: tuple[str, ...] = ("<ImageHere>", "<AudioHere>", "<FrameHere>", "<FaceHere>", "<MultiHere>")
BOS_TOKEN = "<|im_start|>"
EOS_TOKEN = "<|im_end|>"
# Symbols the prompts use that must stay single tokens in the tiny vocabulary (the reference stops on "###").
TINY_USER_SYMBOLS: tuple[str, ...] = PLACEHOLDER_TOKENS + ("###", "<think>", "</think>")
TINY_VOCAB_SIZE = 1024

_REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


@runtime_checkable
class Tokenizer(Protocol):
    """What the data pipelines, trainers and generation code rely on."""

    vocab_size: int
    bos_id: int
    eos_id: int
    pad_id: int
    placeholder_ids: dict[str, int]

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def token_to_id(self, token: str) -> int: ...


class HFTokenizer:
    """Qwen-style byte-level BPE from a ``tokenizer.json`` (a file path, a directory holding one, or a
    ``tokenizers.Tokenizer`` object)."""

    def __init__(self, source: str | os.PathLike | "object"):
        from tokenizers import Tokenizer as _Tok

        if isinstance(source, (str, os.PathLike)):
            path = pathlib.Path(source)
            if path.is_dir():
                path = path / "tokenizer.json"
            if not path.is_file():
                raise FileNotFoundError(f"no tokenizer.json at {path}")
            self.source = str(path)
            self._tok = _Tok.from_file(str(path))
        else:
            self.source = "<in-memory tokenizers.Tokenizer>"
            self._tok = source
        for tok in (BOS_TOKEN, EOS_TOKEN):
            if self._tok.token_to_id(tok) is None:
                raise ValueError(f"tokenizer {self.source} has no {tok!r} token (expected a Qwen2 tokenizer.json)")
        # Placeholders already present keep their ids; missing ones are appended in PLACEHOLDER_TOKENS order.
        missing = [t for t in PLACEHOLDER_TOKENS if self._tok.token_to_id(t) is None]
        if missing:
            self._tok.add_special_tokens(missing)
        self.bos_id = self._tok.token_to_id(BOS_TOKEN)
        self.eos_id = self._tok.token_to_id(EOS_TOKEN)
        self.pad_id = self.eos_id  # the reference sets pad = eos
        self.placeholder_ids = {t: self._tok.token_to_id(t) for t in PLACEHOLDER_TOKENS}
        self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: Sequence[int]) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=False)

    def token_to_id(self, token: str) -> int:
        idx = self._tok.token_to_id(token)
        if idx is None:
            raise KeyError(f"{token!r} is not a single token of {self.source}")
        return idx


class SentencePieceTokenizer:
    """A sentencepiece model (serialized proto bytes or a ``.model`` path) with the project's conventions."""

    def __init__(self, model: bytes | str | os.PathLike):
        import sentencepiece as spm

        if isinstance(model, bytes):
            self.source = "<in-memory sentencepiece model>"
            self._sp = spm.SentencePieceProcessor(model_proto=model)
        else:
            self.source = str(model)
            if not pathlib.Path(model).is_file():
                raise FileNotFoundError(f"no sentencepiece model at {model}")
            self._sp = spm.SentencePieceProcessor(model_file=str(model))
        self.vocab_size = self._sp.get_piece_size()
        self.bos_id = self.token_to_id(BOS_TOKEN)
        self.eos_id = self.token_to_id(EOS_TOKEN)
        self.pad_id = self.eos_id
        self.placeholder_ids = {t: self.token_to_id(t) for t in PLACEHOLDER_TOKENS}

    def encode(self, text: str) -> list[int]:
        return list(self._sp.encode(text, out_type=int))

    def decode(self, ids: Sequence[int]) -> str:
        return self._sp.decode([int(i) for i in ids])

    def token_to_id(self, token: str) -> int:
        idx = self._sp.piece_to_id(token)
        # piece_to_id maps every unknown piece to unk; only the real "<unk>" may legitimately map there.
        if idx == self._sp.unk_id() and token != self._sp.id_to_piece(idx):
            raise KeyError(f"{token!r} is not a single token of {self.source}")
        return idx


# Trainer settings of the tiny model (part of the cache key, so changing one retrains).
_SPM_SETTINGS = dict(
    model_type="bpe", character_coverage=1.0, byte_fallback=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
    unk_piece="<unk>", bos_piece=BOS_TOKEN, eos_piece=EOS_TOKEN, num_threads=1, input_sentence_size=0,
    shuffle_input_sentence=False, split_digits=True, max_sentence_length=8192, minloglevel=2,
    # Exact round trips (tabs, repeated spaces, unicode forms): no NFKC, no whitespace folding, no dummy prefix.
    normalization_rule_name="identity", remove_extra_whitespaces=False, add_dummy_prefix=False)


def train_sentencepiece(lines: Iterable[str], vocab_size: int = TINY_VOCAB_SIZE,
                        user_symbols: Sequence[str] = TINY_USER_SYMBOLS) -> bytes:
    """Train a BPE sentencepiece model in memory; returns the serialized model proto.

    Text is not normalised and gets no dummy-prefix space, so ``decode(encode(s)) == s`` for any string and a
    placeholder alone encodes to one id. Deterministic: one thread, no input sampling or shuffling. Ids: 0 ``<unk>``, 1 ``<|im_start|>`` (bos),
    2 ``<|im_end|>`` (eos, also pad), then the user symbols, then the 256 byte-fallback pieces and merges.
    """
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(list(lines)), model_writer=buf, vocab_size=vocab_size,
                                   user_defined_symbols=list(user_symbols), **_SPM_SETTINGS)
    return buf.getvalue()


def cache_dir() -> pathlib.Path:
    """Where trained tokenizer models are cached (see module docstring)."""
    if os.environ.get("EMOX_JAX_CACHE"):
        return pathlib.Path(os.environ["EMOX_JAX_CACHE"]) / "tokenizers"
    if (_REPO_ROOT / "pyproject.toml").is_file() and os.access(_REPO_ROOT, os.W_OK):
        return _REPO_ROOT / "build" / "tokenizers"
    return pathlib.Path.home() / ".cache" / "emox_jax" / "tokenizers"


def _tiny_key(lines: Sequence[str], vocab_size: int) -> str:
    import sentencepiece as spm

    h = hashlib.sha256()
    h.update(json.dumps({"vocab_size": vocab_size, "symbols": TINY_USER_SYMBOLS, "spm": spm.__version__,
                         **_SPM_SETTINGS}, sort_keys=True).encode())
    for line in lines:
        h.update(line.encode("utf-8") + b"\n")
    return h.hexdigest()[:16]


def tiny_training_lines(corpus: str | os.PathLike | None = None) -> list[str]:
    """The tiny tokenizer's training text: the shipped corpus, then the project's prompts rendered over EmoSynth
    clips of a seed of their own (without them the prompts tokenise ~2x longer; see ``tokenizer_text``)."""
    from data_pipelines.emosynth.tokenizer_text import prompt_lines
    from emox_jax.assets.corpus import CORPUS_FILE, read_corpus

    return read_corpus(corpus or CORPUS_FILE) + list(prompt_lines())


def build_tiny_tokenizer(vocab_size: int = TINY_VOCAB_SIZE, directory: str | os.PathLike | None = None,
                         corpus: str | os.PathLike | None = None) -> pathlib.Path:
    """Train (unless cached) the tiny tokenizer; returns the path of the cached ``.model`` file.

    The file is written atomically (temp file + rename) so concurrent test workers never read half a model.
    """
    lines = tiny_training_lines(corpus)
    directory = pathlib.Path(directory) if directory is not None else cache_dir()
    path = directory / f"tiny_spm_v{vocab_size}_{_tiny_key(lines, vocab_size)}.model"
    if path.is_file():
        return path
    proto = train_sentencepiece(lines, vocab_size)
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(proto)
    os.replace(tmp, path)
    return path


def tiny_tokenizer(vocab_size: int = TINY_VOCAB_SIZE) -> SentencePieceTokenizer:
    """The `tiny` preset's tokenizer (trained on first use from ``tiny_training_lines()``, then cached)."""
    return SentencePieceTokenizer(build_tiny_tokenizer(vocab_size))


def load_tokenizer(spec: str) -> HFTokenizer | SentencePieceTokenizer:
    """``"tiny"`` → the tiny sentencepiece tokenizer; a ``tokenizer.json`` file or a directory holding one →
    ``HFTokenizer``; a ``.model`` file → ``SentencePieceTokenizer``."""
    if spec == "tiny":
        return tiny_tokenizer()
    path = pathlib.Path(spec)
    if path.suffix == ".model" and path.is_file():
        return SentencePieceTokenizer(path)
    if path.is_file() or (path.is_dir() and (path / "tokenizer.json").is_file()):
        return HFTokenizer(path)
    raise FileNotFoundError(f"tokenizer spec {spec!r} is neither 'tiny', a tokenizer.json file, a directory "
                            "holding tokenizer.json, nor a sentencepiece .model file")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build (train and cache) the tiny sentencepiece tokenizer.")
    parser.add_argument("--build", action="store_true", help="train the tiny tokenizer unless it is cached")
    parser.add_argument("--vocab-size", type=int, default=TINY_VOCAB_SIZE)
    args = parser.parse_args(argv)
    if not args.build:
        parser.error("nothing to do; pass --build")
    path = build_tiny_tokenizer(args.vocab_size)
    tok = SentencePieceTokenizer(path)
    print(json.dumps({"tokenizer": str(path), "vocab_size": tok.vocab_size, "placeholder_ids": tok.placeholder_ids}))


if __name__ == "__main__":
    main()
