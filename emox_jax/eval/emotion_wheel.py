"""Emotion-wheel machinery of the MER-UniBench metrics (the "case3" path), reimplemented from the definition.

Three frozen tables (vendored in `emox_jax/assets/emotion_wheel/`, see ATTRIBUTION.md):

- `format.csv`  surface form -> names that list it (plus name -> itself): 7,386 forms over 1,255 names.
- `synonym.csv` name -> wheel words (8 GPT runs merged by union; each wheel word maps to itself): 1,255 keys.
- `wheelK.csv`  wheel word -> its level-1 (or level-2) cluster in wheel K.

Mapping one word w to a cluster of wheel K (evaluation-and-data.md §1.2):
  1. w is lower-cased and stripped; unknown forms are dropped (-> None);
  2. every wheel word reachable form -> names -> synonym table is collected;
  3. they are sorted alphabetically and the first one present in wheel K gives the cluster;
  4. none present -> None.
Level 1 returns the top category; at level 2 a level-1 word maps to the alphabetically first level-2 child,
and a word under two parents keeps the later row (the wheel is read top to bottom, later rows overwrite).

Known consequences of the tables that every faithful implementation keeps (both metric modes): `neutral` maps
to nothing; `fear` maps to *positive* clusters in wheels 2-5 (it is listed as a form of "fearless").
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import pathlib
from collections.abc import Iterable

ASSET_DIR = pathlib.Path(__file__).resolve().parents[1] / "assets" / "emotion_wheel"
WHEELS = ("wheel1", "wheel2", "wheel3", "wheel4", "wheel5")
LEVELS = ("level1", "level2")


def _norm(word: str) -> str:
    return word.strip().lower()


def split_table_list(cell: str | None) -> list[str]:
    """A comma list cell of the tables -> items; `[ ]` and quotes stripped, empties dropped (NaN -> [])."""
    if cell is None:
        return []
    text = cell.strip().strip("[]")
    items = (_norm(x).strip("'\"").strip() for x in text.split(","))
    return [x for x in items if x]


def _read_csv(path: pathlib.Path, required: Iterable[str]) -> list[dict[str, str]]:
    if not path.is_file():
        raise FileNotFoundError(f"emotion-wheel table not found: {path}")
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; found {reader.fieldnames}")
        return list(reader)


def read_wheel(path: pathlib.Path) -> dict[str, dict[str, list[str]]]:
    """wheelK.csv -> {level1: {level2: [level3, ...]}} with blank cells forward-filled, insertion-ordered."""
    tree: dict[str, dict[str, list[str]]] = {}
    l1 = l2 = l3 = ""
    for row in _read_csv(path, ("level1", "level2", "level3")):
        # A blank cell means "same as the row above" (merged cells in the original spreadsheet).
        l1 = _norm(row["level1"]) or l1
        l2 = _norm(row["level2"]) or l2
        l3 = _norm(row["level3"]) or l3
        tree.setdefault(l1, {}).setdefault(l2, []).append(l3)
    return tree


def wheel_cluster_map(tree: dict[str, dict[str, list[str]]], level: str) -> dict[str, str]:
    """Wheel word -> cluster at `level`. Later assignments win (the reference's dict-overwrite order)."""
    if level not in LEVELS:
        raise ValueError(f"unknown wheel level {level!r}; expected one of {LEVELS}")
    out: dict[str, str] = {}
    for l1, children in tree.items():
        out[l1] = l1 if level == "level1" else sorted(children)[0]
        for l2, leaves in children.items():
            out[l2] = l1 if level == "level1" else l2
            for l3 in leaves:
                out[l3] = l1 if level == "level1" else l2
    return out


@dataclasses.dataclass(frozen=True, eq=False)
class EmotionWheels:
    """The loaded tables. Use `load_wheels()` (cached) rather than constructing this directly.

    Attributes:
      form_to_names: surface form -> names (format.csv; each name also maps to itself).
      name_to_wheel_words: name -> wheel words (synonym.csv, 8 runs merged).
      clusters: (wheel, level) -> {wheel word: cluster}.
      wheel_words: the set of all words appearing in any wheel (253).
    """

    form_to_names: dict[str, tuple[str, ...]]
    name_to_wheel_words: dict[str, tuple[str, ...]]
    clusters: dict[tuple[str, str], dict[str, str]]
    wheel_words: frozenset[str]
    # word -> candidates memo (the tables are immutable, so this is safe to share).
    _cache: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict, repr=False)

    def candidates(self, word: str) -> tuple[str, ...]:
        """Sorted wheel words reachable from `word` (form -> names -> synonyms); () for unknown words."""
        word = _norm(word)
        hit = self._cache.get(word)
        if hit is None:
            found: set[str] = set()
            for name in self.form_to_names.get(word, ()):
                found.update(self.name_to_wheel_words.get(name, ()))
            hit = self._cache[word] = tuple(sorted(found))
        return hit

    def cluster(self, word: str, wheel: str, level: str = "level1") -> str | None:
        """The cluster of `word` in `wheel` at `level`, or None when the word does not map (e.g. "neutral")."""
        try:
            cmap = self.clusters[(wheel, level)]
        except KeyError:
            raise ValueError(f"unknown wheel/level {wheel!r}/{level!r}; wheels {WHEELS}, levels {LEVELS}") from None
        for cand in self.candidates(word):
            if cand in cmap:
                return cmap[cand]
        return None

    def map_words(self, words: Iterable[str], wheel: str, level: str = "level1") -> set[str]:
        """A word list -> the set of its clusters in `wheel` (words that do not map are dropped)."""
        out = set()
        for w in words:
            c = self.cluster(w, wheel, level)
            if c is not None:
                out.add(c)
        return out

    def is_known(self, word: str) -> bool:
        """True when `word` is one of the 7,386 surface forms."""
        return _norm(word) in self.form_to_names


@functools.lru_cache(maxsize=4)
def load_wheels(root: str | None = None) -> EmotionWheels:
    """Load (once per root) the five wheels, the synonym table and the form table.

    Args:
      root: folder holding wheel1-5.csv, synonym.csv, format.csv; default the vendored package copy.
    Raises:
      FileNotFoundError / ValueError naming the file and column when a table is missing or malformed.
    """
    base = pathlib.Path(root) if root is not None else ASSET_DIR
    trees = {w: read_wheel(base / f"{w}.csv") for w in WHEELS}
    clusters = {(w, lv): wheel_cluster_map(trees[w], lv) for w in WHEELS for lv in LEVELS}
    wheel_words = frozenset(word for (w, lv), m in clusters.items() if lv == "level1" for word in m)

    # Synonym table: every run maps the wheel word to itself and each synonym to the wheel word (union of runs).
    syn_path = base / "synonym.csv"
    rows = _read_csv(syn_path, ("word_run1", "synonym_run1"))
    runs = sorted({k[len("word_"):] for k in rows[0] if k.startswith("word_")}) if rows else []
    name_to_wheel: dict[str, set[str]] = {}
    for i, row in enumerate(rows):
        for run in runs:
            raw = _norm(row.get(f"word_{run}") or "")
            if not raw:
                continue
            if raw not in wheel_words:
                raise ValueError(f"{syn_path} row {i + 2} column word_{run}: {raw!r} is not a wheel word")
            name_to_wheel.setdefault(raw, set()).add(raw)
            for syn in split_table_list(row.get(f"synonym_{run}")):
                name_to_wheel.setdefault(syn, set()).add(raw)

    # Form table: each listed form, and the name itself, maps to the names that list it.
    form_to_names: dict[str, set[str]] = {}
    for row in _read_csv(base / "format.csv", ("name", "format")):
        name = _norm(row["name"])
        for form in split_table_list(row["format"]):
            form_to_names.setdefault(form, set()).add(name)
        form_to_names.setdefault(name, set()).add(name)

    return EmotionWheels(
        form_to_names={k: tuple(sorted(v)) for k, v in form_to_names.items()},
        name_to_wheel_words={k: tuple(sorted(v)) for k, v in name_to_wheel.items()},
        clusters=clusters,
        wheel_words=wheel_words,
    )
