"""Shared base of the real-dataset readers: a TFDS `GeneratorBasedBuilder` reading a `manual_dir`.

Every reader turns one published on-disk layout (evaluation-and-data.md §4, reference-architecture.md §10.5)
into records of the one schema of `data_pipelines.schema` (built with `make_example`), written as ArrayRecord.
TensorFlow is not installed, so TFDS `Image`/`Audio`/`Video` features are unavailable: media are stored as the
*encoded file bytes* (mp4/avi/wav) and decoded later in the Grain map.

Policy for bad input (the pipeline, not the reader, skips and counts bad samples):
- a media file that is missing yields a record with empty media bytes and its expected path recorded
  (`video_path` / `audio_path`, relative to the dataset root);
- a malformed annotation file (bad JSON/CSV/npz, missing column/key/field, unknown label) raises
  `AnnotationError` naming the file and the line / item / field.
"""

from __future__ import annotations

import abc
import ast
import csv
import inspect
import itertools
import json
import math
import os
import pathlib
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from tensorflow_datasets.core import registered

from data_pipelines.schema import EXAMPLE_FIELDS, make_example

# Progress bars flood logs of many tiny preparations (environment.md, "Other gotchas").
tfds.disable_progress_bar()

class AnnotationError(ValueError):
    """A malformed annotation file; the message names the file and the line / item / field."""


def schema_features() -> tfds.features.FeaturesDict:
    """TFDS features of `EXAMPLE_FIELDS`: str → Text, bytes → scalar object tensor (encoded media, no TF
    needed), list[str] → Sequence(Text), float → float32 scalar."""
    feats: dict[str, Any] = {}
    for name, (typ, _) in EXAMPLE_FIELDS.items():
        if typ is str:
            feats[name] = tfds.features.Text()
        elif typ is bytes:
            feats[name] = tfds.features.Tensor(shape=(), dtype=np.object_)
        elif typ is list:
            feats[name] = tfds.features.Sequence(tfds.features.Text())
        elif typ is float:
            feats[name] = tfds.features.Scalar(dtype=np.float32)
        else:  # a schema change must be mirrored here
            raise TypeError(f"schema field {name!r} has type {typ}, which has no TFDS feature mapping")
    return tfds.features.FeaturesDict(feats)


# ----------------------------------------------------------------------------------------------------------
# Annotation-file helpers: each raises AnnotationError naming the file and the place of the problem.


def read_json(path: pathlib.Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise AnnotationError(f"{path}: line {e.lineno}, column {e.colno}: invalid JSON ({e.msg})") from e


def read_csv(path: pathlib.Path, required: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """Rows of a CSV with a header as (line number, {column: value}); checks columns and field counts."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise AnnotationError(f"{path}: empty file, expected a header with columns {list(required)}") from None
        except csv.Error as e:
            raise AnnotationError(f"{path}: line {reader.line_num}: {e}") from e
        header = [h.strip() for h in header]
        missing = [c for c in required if c not in header]
        if missing:
            raise AnnotationError(f"{path}: line 1: missing column(s) {missing}; header is {header}")
        rows = []
        try:
            for fields in reader:
                if not fields:  # blank line
                    continue
                if len(fields) != len(header):
                    raise AnnotationError(
                        f"{path}: line {reader.line_num}: {len(fields)} fields, expected {len(header)} ({header})")
                rows.append((reader.line_num, dict(zip(header, fields))))
        except csv.Error as e:
            raise AnnotationError(f"{path}: line {reader.line_num}: {e}") from e
    return rows


def parse_label_list(text: str, where: str) -> list[str]:
    """An open-vocabulary label list written as a string: "['a', 'b']", "[a, b]" or "a, b" → ['a', 'b']."""
    s = text.strip()
    if not s or s.lower() == "nan":
        return []
    if s.startswith("["):
        if not s.endswith("]"):
            raise AnnotationError(f"{where}: unterminated label list {text!r}")
        try:
            value = ast.literal_eval(s)
        except (ValueError, SyntaxError):
            value = [p.strip().strip("'\"") for p in s[1:-1].split(",")]  # unquoted words: [a, b]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise AnnotationError(f"{where}: expected a list of strings, got {text!r}")
        items = list(value)
    else:
        items = s.split(",")
    return [w.strip() for w in items if w.strip()]


def load_npz_corpus(path: pathlib.Path, key: str) -> dict[str, dict[str, Any]]:
    """`np.load(path)[key]`, a pickled dict name → {'emo': ..., 'val': ...} (MER-UniBench label files)."""
    try:
        archive = np.load(path, allow_pickle=True)
    except Exception as e:  # zipfile/pickle errors differ by corruption kind
        raise AnnotationError(f"{path}: cannot read as .npz ({type(e).__name__}: {e})") from e
    with archive:
        if key not in archive.files:
            raise AnnotationError(f"{path}: missing key {key!r}; keys are {sorted(archive.files)}")
        corpus = archive[key]
        corpus = corpus.item() if isinstance(corpus, np.ndarray) and corpus.shape == () else corpus
    if not isinstance(corpus, dict):
        raise AnnotationError(f"{path}[{key!r}]: expected a dict name -> labels, got {type(corpus).__name__}")
    for name, entry in corpus.items():
        if not isinstance(entry, dict):
            raise AnnotationError(f"{path}[{key!r}][{name!r}]: expected a dict of labels, got {type(entry).__name__}")
    return corpus


def require(entry: Any, field: str, where: str, typ: type | tuple[type, ...] = str) -> Any:
    """`entry[field]`, checked to exist and to have type `typ`; errors name `where` and the field."""
    if not isinstance(entry, dict):
        raise AnnotationError(f"{where}: expected an object with field {field!r}, got {type(entry).__name__}")
    if field not in entry:
        raise AnnotationError(f"{where}: missing field {field!r} (has {sorted(entry)})")
    value = entry[field]
    if not isinstance(value, typ):
        names = typ.__name__ if isinstance(typ, type) else "/".join(t.__name__ for t in typ)
        raise AnnotationError(f"{where}: field {field!r} should be {names}, got {type(value).__name__} {value!r}")
    return value


def as_float(value: Any, where: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise AnnotationError(f"{where}: expected a number, got {value!r}") from None
    if not math.isfinite(out):
        raise AnnotationError(f"{where}: expected a finite number, got {value!r}")
    return out


def text_or_empty(value: Any) -> str:
    """Transcript cells: NaN / None → "" (reference-architecture.md §10.4)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    s = str(value)
    return "" if s.strip().lower() == "nan" else s


# ----------------------------------------------------------------------------------------------------------
# Media lookup.


class MediaFinder:
    """Reads media files under a dataset root, listing each directory once: real datasets hold 10^4–10^5 clips
    (often in one folder), and one `stat` per candidate path per record dominated preparation time."""

    def __init__(self, root: pathlib.Path):
        self.root = root
        self._listings: dict[str, frozenset[str]] = {}

    def _listing(self, rel_dir: str) -> frozenset[str]:
        if rel_dir not in self._listings:
            try:
                self._listings[rel_dir] = frozenset(os.listdir(self.root / rel_dir))
            except (FileNotFoundError, NotADirectoryError):
                self._listings[rel_dir] = frozenset()
        return self._listings[rel_dir]

    def read(self, candidates: Iterable[str]) -> tuple[bytes, str]:
        """Bytes of the first existing candidate (paths relative to the root, "/"-separated) and its path.

        A missing file is not an error here: the record keeps b"" and the first (canonical) candidate path, so
        the pipeline can skip it and report the path.
        """
        candidates = list(candidates)
        for rel in candidates:
            rel_dir, _, base = rel.rpartition("/")
            if base in self._listing(rel_dir) and (self.root / rel).is_file():
                return (self.root / rel).read_bytes(), rel
        return b"", candidates[0]


def media_suffix_candidates(stored: str, min_parts: int = 1) -> list[str]:
    """Relative candidates for a media path stored in an annotation (often an absolute author path such as
    /home/x/dataset/MIntRec/video/S05_E16_329.mp4): its suffixes of at least `min_parts` parts, longest first."""
    parts = [p for p in pathlib.PurePosixPath(stored.replace("\\", "/")).parts if p not in ("/", "")]
    return ["/".join(parts[i:]) for i in range(len(parts) - max(min_parts, 1) + 1)]


def unique_suffix_ids(paths: Sequence[str]) -> list[str]:
    """The shortest path suffix (without extension) that is unique among `paths`: the basename stem for
    datasets with unique file names (MIntRec), more parents where stems repeat (CAER's per-class 0001.avi)."""
    split = [[p for p in pathlib.PurePosixPath(s.replace("\\", "/")).with_suffix("").parts if p != "/"]
             for s in paths]
    depth = {i: 1 for i in range(len(paths))}
    while True:
        ids = ["/".join(parts[-depth[i]:]) for i, parts in enumerate(split)]
        counts: dict[str, list[int]] = {}
        for i, x in enumerate(ids):
            counts.setdefault(x, []).append(i)
        grow = [i for group in counts.values() if len(group) > 1 for i in group if depth[i] < len(split[i])]
        if not grow:
            return ids
        for i in grow:
            depth[i] += 1


# ----------------------------------------------------------------------------------------------------------


class ReaderBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of all readers. Subclasses set the class attributes and implement `splits` / `read_split`.

    Class attributes:
      name: the TFDS builder name (prefixed `emox_` so it never collides with TFDS's own catalog, which
        has e.g. a `crema_d`).
      READER: the registry name, also written to each record's `dataset` field.
      ANNOTATION: the file whose presence identifies the dataset root inside `manual_dir`.
      FOLDERS: conventional folder names of the dataset; `manual_dir` may be the dataset root itself or a
        parent holding one of these folders.
      LABEL_TYPES: the label types records of this reader support (a record may carry a subset).
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    READER: str = ""
    ANNOTATION: str = ""
    FOLDERS: tuple[str, ...] = ()
    LABEL_TYPES: tuple[str, ...] = ()
    MANUAL_DOWNLOAD_INSTRUCTIONS = "Place the dataset in its published layout (see the reader's docstring)."

    def __init_subclass__(cls, **kwargs):
        # Re-importing a reader module (importlib.reload, or a module also run as __main__) would register the
        # same builder name twice, which TFDS rejects; accept a re-definition of the *same* class and keep
        # rejecting a real collision between two different readers.
        if "MANUAL_DOWNLOAD_INSTRUCTIONS" not in cls.__dict__ and cls.__doc__:
            cls.MANUAL_DOWNLOAD_INSTRUCTIONS = cls.__doc__  # the docstring states the expected layout
        try:
            super().__init_subclass__(**kwargs)
        except ValueError as e:
            if "already registered" not in str(e):
                raise
            prev = registered.imported_builder_cls(cls.name)
            if (prev.__module__, prev.__qualname__) != (cls.__module__, cls.__qualname__):
                raise ValueError(f"TFDS builder name {cls.name!r} of {cls.__module__}.{cls.__qualname__} is "
                                 f"already taken by {prev.__module__}.{prev.__qualname__}") from e

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        # TFDS's own `code_path` probes `importlib_resources` (a backport that is not installed: only the
        # stdlib importlib.resources is) for builders defined inside a package; our builders are plain files.
        return epath.Path(inspect.getfile(cls))

    def __init__(self, **kwargs):
        kwargs.setdefault("file_format", "array_record")
        super().__init__(**kwargs)

    # --- to implement -----------------------------------------------------------------------------------

    @abc.abstractmethod
    def splits(self, root: pathlib.Path) -> list[str]:
        """The splits present under `root` (e.g. only "train" when the test annotation file is absent)."""

    @abc.abstractmethod
    def read_split(self, root: pathlib.Path, split: str) -> Iterator[dict[str, Any]]:
        """Yields schema fields (without dataset/split) for every record of `split`."""

    # --- TFDS plumbing ----------------------------------------------------------------------------------

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=(self.__doc__ or self.READER).strip().split("\n")[0],
            features=schema_features(),
        )

    def markers(self) -> tuple[str, ...]:
        """Files any one of which identifies the dataset root."""
        return (self.ANNOTATION,)

    def find_root(self, manual_dir: pathlib.Path) -> pathlib.Path:
        """The dataset root: `manual_dir` itself if it holds a marker file, else `manual_dir/<folder>`."""
        for folder in ("",) + tuple(self.FOLDERS):
            if any((manual_dir / folder / m).exists() for m in self.markers()):
                return manual_dir / folder if folder else manual_dir
        where = " or ".join([str(manual_dir)] + [str(manual_dir / f) for f in self.FOLDERS])
        raise FileNotFoundError(f"{self.READER}: expected {' or '.join(map(repr, self.markers()))} in {where}."
                                f"\n{self.__doc__}")

    def _split_generators(self, dl_manager):
        root = self.find_root(pathlib.Path(dl_manager.manual_dir))
        self._media = MediaFinder(root)  # shared by the splits: they live under the same root
        out = {}
        for split in self.splits(root):
            # TFDS cannot write an empty split, so a split without records (e.g. an empty corpus in a label
            # file) is left out rather than failing the whole preparation.
            gen = self._generate_examples(root=root, split=split)
            first = next(gen, None)
            if first is not None:
                out[split] = itertools.chain([first], gen)
        if not out:
            raise AnnotationError(f"{self.READER}: no records in any split under {root}")
        return out

    def read_media(self, candidates: Iterable[str]) -> tuple[bytes, str]:
        """`MediaFinder.read` under the dataset root found by `_split_generators`."""
        return self._media.read(candidates)

    def _generate_examples(self, root: pathlib.Path, split: str):
        seen: set[str] = set()
        for fields in self.read_split(root, split):
            fields.setdefault("label_types", list(self.LABEL_TYPES))
            ex = make_example(dataset=self.READER, split=split, **fields)
            if not ex["id"]:
                raise AnnotationError(f"{self.READER}/{split} under {root}: a record has an empty id")
            if ex["id"] in seen:  # TFDS would also fail, but without naming the dataset
                raise AnnotationError(f"{self.READER}/{split} under {root}: duplicate id {ex['id']!r}")
            seen.add(ex["id"])
            yield ex["id"], ex


def existing(root: pathlib.Path, split_files: dict[str, Sequence[str]]) -> dict[str, pathlib.Path]:
    """split → the first of its candidate annotation files present under root."""
    out = {}
    for split, names in split_files.items():
        for n in names:
            if (root / n).is_file():
                out[split] = root / n
                break
    return out
