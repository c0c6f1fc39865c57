"""Stop conditions: stop token ids, and stop strings turned into token-id sequences matched inside the loop.

The reference stops on ``###`` (its one-token form, or the two-token splits ``##``+``#`` / ``#``+``##``).
``stop_sequences_for_strings`` generalises that: given each token's decoded text (``pieces[i]``) it lists every
way to spell a stop string as consecutive whole tokens, plus every single token that contains it. Those
sequences are matched on the generated ids in the jitted loop (no host callback). What it cannot see (a stop
string that starts or ends in the middle of a multi-character token, e.g. ``"a###"`` as ``"a#"``+``"##"``)
is caught after decoding by ``truncate_at_stop_strings``, which callers apply to the decoded text anyway.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence


def stop_sequences_for_strings(stop_strings: Sequence[str], pieces: Sequence[str], *,
                               max_sequences: int = 256) -> tuple[tuple[int, ...], ...]:
    """Token-id sequences that spell any of ``stop_strings`` exactly, plus single tokens containing one.

    ``pieces[i]`` is the text of token ``i`` decoded alone. Raises ValueError if a string has no spelling at
    all or the enumeration exceeds ``max_sequences``.
    """
    by_text: dict[str, list[int]] = defaultdict(list)
    for i, piece in enumerate(pieces):
        if piece:
            by_text[piece].append(i)
    out: list[tuple[int, ...]] = []
    for s in stop_strings:
        if not s:
            raise ValueError("empty stop string")
        found = []
        n = len(s)
        for cuts in itertools.product((False, True), repeat=n - 1):
            parts, start = [], 0
            for j, cut in enumerate(cuts, start=1):
                if cut:
                    parts.append(s[start:j])
                    start = j
            parts.append(s[start:])
            if all(p in by_text for p in parts):
                found.extend(itertools.product(*(by_text[p] for p in parts)))
            if len(found) > max_sequences:
                raise ValueError(f"stop string {s!r} has more than {max_sequences} token spellings")
        found.extend((i,) for i, piece in enumerate(pieces) if s in piece and piece != s)
        if not found:
            raise ValueError(f"stop string {s!r} cannot be spelled with this vocabulary")
        out.extend(found)
    return tuple(dict.fromkeys(out))  # de-duplicate, keep order


def truncate_at_stop_strings(text: str, stop_strings: Sequence[str]) -> str:
    """Cut ``text`` at the first occurrence of any stop string (the stop string itself is dropped)."""
    cut = len(text)
    for s in stop_strings:
        i = text.find(s)
        if i >= 0:
            cut = min(cut, i)
    return text[:cut]
