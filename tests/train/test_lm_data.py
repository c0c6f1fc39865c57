"""Packed LM windows: targets are inputs shifted by one, lines are segments, cross-line targets unsupervised."""

import numpy as np
import pytest

from emox_jax.tokenizer import tiny_tokenizer
from emox_jax.train import lm_data

LINES = ["Anna smiles widely.", "Ben frowns hard and looks down.", "###Human: <FaceHere> Why? ###Assistant: ok",
         "Chloe laughs softly."] * 3


def test_pack_lines_layout():
    tok = tiny_tokenizer()
    a = lm_data.pack_lines(LINES, tok, seq_len=16)
    n = a["input_ids"].shape[0]
    assert all(v.shape == (n, 16) for v in a.values())
    # Windows tile the token stream with stride 16: row i+1 starts where row i's targets end.
    np.testing.assert_array_equal(a["targets"][:, :-1], a["input_ids"][:, 1:])
    np.testing.assert_array_equal(a["input_ids"][1:, 0], a["targets"][:-1, -1])
    flat = [tok.bos_id, *tok.encode(LINES[0]), tok.eos_id]
    np.testing.assert_array_equal(a["input_ids"][0, :len(flat)], flat[:16])
    # Segments number lines from 1 per window; a target in the next line is not supervised.
    seg, mask = a["segment_ids"], a["loss_mask"]
    assert seg.min() == 1 and np.all(np.diff(seg, axis=1) >= 0)
    boundary = np.where(a["targets"] == tok.bos_id)
    assert len(boundary[0]) > 0 and np.all(mask[boundary] == 0)
    assert mask.mean() > 0.8


def test_batches_deterministic_and_errors():
    arrays = {"input_ids": np.arange(24, dtype=np.int32).reshape(6, 4)}
    first = [b["input_ids"] for b, _ in zip(lm_data.lm_batches(arrays, 2, seed=1, num_epochs=2), range(6))]
    again = [b["input_ids"] for b, _ in zip(lm_data.lm_batches(arrays, 2, seed=1, num_epochs=2), range(6))]
    assert all(np.array_equal(x, y) for x, y in zip(first, again)) and len(first) == 6
    # Two epochs: every window appears exactly twice.
    rows = np.concatenate(first)[:, 0]
    assert sorted(rows.tolist()) == sorted(list(range(0, 24, 4)) * 2)
    with pytest.raises(ValueError, match="too short"):
        lm_data.pack_lines(["hi"], tiny_tokenizer(), seq_len=64)
    with pytest.raises(ValueError, match="only 6 windows"):
        lm_data.lm_batches(arrays, 8)


def test_pack_whole_keeps_every_line_in_one_window():
    tok = tiny_tokenizer()
    segs = [[tok.bos_id, *tok.encode(x), tok.eos_id] for x in LINES]
    seq_len = max(len(s) for s in segs) + 3
    a = lm_data.pack_lines([np.asarray(s) for s in segs], tok, seq_len=seq_len, whole=True)
    ids, seg, mask = a["input_ids"], a["segment_ids"], a["loss_mask"]
    # Each line starts at a window position with its own segment and position 0, never straddles a window.
    found = 0
    for r in range(ids.shape[0]):
        full = np.concatenate([ids[r], a["targets"][r, -1:]])
        fseg = np.concatenate([seg[r], [0]])   # the last target's segment: padding or the same line
        for k in range(1, fseg.max() + 1):
            where = np.where(fseg == k)[0]
            assert np.all(np.diff(where) == 1)
            assert full[where].tolist() == segs[found], (r, k)
            found += 1
    assert found == len(segs)
    # Padding (segment 0) and next-line bos are never targets; everything inside a line is.
    assert np.all(mask[a["targets"] == tok.bos_id] == 0)
    assert mask.sum() == sum(len(s) - 1 for s in segs)
    # A line longer than a window keeps its head.
    long = lm_data.pack_lines([list(range(5, 100))], tok, seq_len=16, whole=True)
    assert long["input_ids"].tolist() == [list(range(5, 21))] and long["targets"][0, -1] == 21
