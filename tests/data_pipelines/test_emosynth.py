"""EmoSynth: determinism, layouts, media round trip, balance, the cue rule, learnability of every modality."""

from __future__ import annotations

import csv
import io
import json
import pathlib
import subprocess
import sys
import wave

import av
import numpy as np
import pytest
from PIL import Image

from data_pipelines import media, schema
from data_pipelines.emosynth import faces, labels, layouts, voice
from data_pipelines.emosynth import clips as clips_lib
from data_pipelines.emosynth import generate, iter_examples, sample_clips
from data_pipelines.vocab import EMOTIONS, INTENTS, INTENTS_BY_TEXT_EMOTION, all_ov_words

REPO = pathlib.Path(__file__).resolve().parents[2]
N, SEED = 30, 3


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("emosynth")
    return out, generate(out, N, SEED, "all")


def _files(root: pathlib.Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _label_files(root: pathlib.Path) -> dict[str, bytes]:
    return {k: v for k, v in _files(root).items() if not k.endswith((".mp4", ".wav"))}


def _read_csv(path: pathlib.Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as f:
        r = csv.DictReader(f)
        return list(r.fieldnames), list(r)


@pytest.mark.slow
def test_same_seed_is_byte_identical_and_workers_do_not_matter(corpus, tmp_path):
    out, _ = corpus
    generate(tmp_path, N, SEED, "all", workers=2)
    a, b = _files(out), _files(tmp_path)
    assert a.keys() == b.keys()
    differing = [k for k in a if a[k] != b[k]]
    assert not differing, f"files differ for the same seed: {differing[:5]}"
    assert any(k.endswith(".mp4") for k in a) and any(k.endswith(".wav") for k in a)


def test_different_seed_gives_different_labels():
    def label_bytes(seed):
        specs = sample_clips(60, seed)
        pairs = [(s, clips_lib.clip_text(s)) for s in specs]
        return {n: layouts.plan(n, pairs).label_files for n in layouts.LAYOUTS}

    a, a2, b = label_bytes(0), label_bytes(0), label_bytes(1)
    assert a == a2
    for name in layouts.LAYOUTS:
        assert a[name]["emosynth_meta.csv"] != b[name]["emosynth_meta.csv"], name


def test_manifest_lists_every_label_file_with_its_hash(corpus):
    out, m = corpus
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk["seed"] == SEED and on_disk["clips"] == N
    assert on_disk["splits"] == {"train": 24, "test": 6}
    assert "seconds" in m and m["clips_per_second"] > 0
    import hashlib
    for name, entry in on_disk["layouts"].items():
        for rel, sha in entry["label_files"].items():
            assert hashlib.sha256((out / entry["root"] / rel).read_bytes()).hexdigest() == sha, (name, rel)


def test_mer2023_layout(corpus):
    root = corpus[0] / "mer2023-dataset-process"
    data = np.load(root / "label-6way.npz", allow_pickle=True)
    assert sorted(data.files) == ["test1_corpus", "train_corpus"]
    train, test = data["train_corpus"].tolist(), data["test1_corpus"].tolist()
    assert len(train) == 24 and len(test) == 6 and not set(train) & set(test)
    for name, lab in {**train, **test}.items():
        assert name.startswith("sample_") and len(name) == len("sample_00000648")
        assert lab["emo"] in EMOTIONS and -3 <= lab["val"] <= 3
        assert (root / "video" / f"{name}.mp4").is_file() and (root / "audio" / f"{name}.wav").is_file()
    cols, rows = _read_csv(root / "transcription-engchi-polish.csv")
    assert cols == ["name", "chinese", "english"] and {r["name"] for r in rows} == set(train) | set(test)
    assert all(r["english"] for r in rows)


def test_mercaptionplus_layout(corpus):
    root = corpus[0] / "MER2025"
    ov_words = set(all_ov_words())
    names = {}
    for tag, n in (("mercaptionplus", 24), ("ovmerd", 6)):
        cols, rows = _read_csv(root / f"track2_train_{tag}.csv")
        assert cols == ["name", "openset"] and len(rows) == n
        for r in rows:
            words = [w.strip().strip("'\"") for w in r["openset"].strip("[]").split(",")]
            assert words and set(words) <= ov_words, r
            assert (root / "video" / "video" / f"{r['name']}.mp4").is_file()
            assert (root / "audio" / f"{r['name']}.wav").is_file()
        cols3, rows3 = _read_csv(root / f"track3_train_{tag}.csv")
        assert cols3 == ["name", "reason"] and [r["name"] for r in rows3] == [r["name"] for r in rows]
        assert all("Therefore, it is inferred that the emotional state is" in r["reason"] for r in rows3)
        names[tag] = {r["name"] for r in rows}
    assert not names["mercaptionplus"] & names["ovmerd"]
    assert _read_csv(root / "subtitle_chieng.csv")[0] == ["name", "chinese", "english"]


def test_mintrec_layout_matches_the_real_annotation_format(corpus, shared_data):
    root = corpus[0] / "MIntRec"
    real = json.loads((shared_data / "mintrec" / "train.json").read_text())[0]
    for split, n in (("train", 24), ("test", 6)):
        items = json.loads((root / f"{split}_MIntRec_ann.json").read_text())
        assert len(items) == n
        for it in items:
            assert it.keys() == real.keys()
            assert [m["role"] for m in it["messages"]] == [m["role"] for m in real["messages"]]
            assert it["messages"][1]["content"] in INTENTS
            name = pathlib.PurePosixPath(it["videos"][0]).stem
            assert (root / "video" / f"{name}.mp4").is_file() and (root / "audio" / f"{name}.wav").is_file()
    # the same JSON style as the real file (2-space indent)
    assert (root / "train_MIntRec_ann.json").read_text().startswith('[\n  {\n    "messages": [')


def test_avamerg_layout(corpus):
    root = corpus[0] / "AvaMERG"
    train = json.loads((root / "train.json").read_text())
    test = json.loads((root / "v_test_v5_0.json").read_text())
    media_turns = 0
    for convs, vdir, adir, is_test in ((train, "video", "audio", False), (test, "test_video", "test_audio", True)):
        for c in convs:
            assert {"conversation_id", "speaker_profile", "listener_profile", "topic", "turns"} <= c.keys()
            for t in c["turns"]:
                assert set(t["chain_of_empathy"]) == {"speaker_emotion", "emotion_cause", "event_scenario",
                                                      "goal_to_response"}
                assert t["dialogue_history"][-1]["role"] == "speaker" and t["response"]
                name = f"dia{c['conversation_id']}utt{2 * t['turn_id']}_{c['speaker_profile']['ID']}"
                has = (root / vdir / f"{name}.mp4").is_file()
                assert has == (root / adir / f"{name}.wav").is_file()
                if is_test:  # media only for the last turn of a test conversation
                    assert has == (t is c["turns"][-1]), name
                else:
                    assert has, name
                media_turns += has
    assert media_turns == N and len(test) == 6


def test_mosi_layout(corpus):
    root = corpus[0] / "cmumosi-process"
    data = np.load(root / "label.npz", allow_pickle=True)
    assert sorted(data.files) == ["test_corpus", "train_corpus"]
    for name, lab in {**data["train_corpus"].tolist(), **data["test_corpus"].tolist()}.items():
        assert set(lab) == {"val"} and -3 <= lab["val"] <= 3
        assert (root / "subvideo" / f"{name}.mp4").is_file() and (root / "subaudio" / f"{name}.wav").is_file()


def test_media_decode_back_with_expected_shape_duration_and_rate(corpus):
    root = corpus[0] / "mer2023-dataset-process"
    cfg = clips_lib.SynthConfig()
    for v in sorted((root / "video").glob("*.mp4"))[:3]:
        with av.open(str(v)) as c:
            s = c.streams.video[0]
            assert s.codec_context.name == "h264" and s.average_rate == cfg.fps
            assert (s.width, s.height) == (cfg.size, cfg.size)
            assert abs(float(s.duration * s.time_base) - cfg.seconds) < 1e-6
        assert media.count_frames(v) == cfg.num_frames
        assert media.decode_frames(v, num_frames=8, size=224).shape == (8, 224, 224, 3)
        a = root / "audio" / f"{v.stem}.wav"
        with wave.open(str(a)) as w:
            assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
            assert w.getnframes() == int(cfg.seconds * 16000)
        assert media.decode_audio(a).shape == (32000,)


def test_encoding_keeps_the_drawn_frames():
    spec = sample_clips(12, 0)[0]
    frames, wave_ = clips_lib.render_media(spec)
    mp4, wav = clips_lib.encode_media(spec)
    decoded = media.decode_frames(mp4, num_frames=16, size=frames.shape[1])
    assert np.abs(decoded.astype(int) - frames.astype(int)).mean() < 4.0
    assert np.abs(media.decode_audio(wav) - wave_).max() < 1e-4


def test_labels_are_balanced_as_documented():
    specs = sample_clips(600, 11)  # 480 train + 120 test: both multiples of 6 * 20, so shares are exact
    dist = labels.label_distribution(specs)
    for split, n in (("train", 480), ("test", 120)):
        d = dist[split]
        assert d["emotion"] == {e: n // 6 for e in sorted(EMOTIONS)}
        assert d["deciding_modality"] == {"all": n * 8 // 20, "face": n * 3 // 20, "face+voice": n * 3 // 20,
                                          "text": n * 3 // 20, "voice": n * 3 // 20}
        sub = [s for s in specs if s.split == split]
        for e in EMOTIONS:  # deciding modalities balanced within each emotion
            per = {}
            for s in sub:
                if s.emotion == e:
                    per[s.deciding_modality] = per.get(s.deciding_modality, 0) + 1
            assert per["all"] == 8 * n // 120 and per["face"] == 3 * n // 120
        for tone, intents in INTENTS_BY_TEXT_EMOTION.items():  # intents round-robin within a tone
            counts = [d["intent"].get(i, 0) for i in intents]
            assert max(counts) - min(counts) <= 1, (tone, counts)
        assert abs(d["intensity"]["high"] / n - 0.5) < 0.15
    small = labels.label_distribution(sample_clips(50, 0))["train"]["emotion"]
    assert max(small.values()) - min(small.values()) <= 1
    # A small held-out split (the quickstart's: 240 clips -> 48 test) still has every deciding modality, so the
    # held-out scores include clips whose words contradict or lack the emotion (it once held only `all` clips).
    held_out = labels.label_distribution(sample_clips(240, 7))["test"]["deciding_modality"]
    assert held_out == {"all": 18, "face": 12, "voice": 6, "text": 6, "face+voice": 6}


def test_cue_rule_and_deciding_modality_column(corpus):
    for s in sample_clips(240, 5):
        face, voice_, text = s.face_cue, s.voice_cue, s.text_emotion
        shown = {"all": (s.emotion,) * 3, "face": (s.emotion, "absent", "neutral"),
                 "voice": ("absent", s.emotion, "neutral"), "text": ("absent", "absent", s.emotion)}
        if s.deciding_modality == "face+voice":
            assert face == voice_ == s.emotion and text not in (s.emotion, "neutral")
        else:
            assert (face, voice_, text) == shown[s.deciding_modality]
        assert s.intent in INTENTS_BY_TEXT_EMOTION[text]
        assert s.openset[0] == {"surprise": "surprised", "neutral": "calm"}.get(s.emotion, s.emotion)
    cols, rows = _read_csv(corpus[0] / "mer2023-dataset-process" / "emosynth_meta.csv")
    assert cols == list(layouts.META_COLUMNS)
    assert {r["deciding_modality"] for r in rows} <= set(labels.DECIDING_MODALITIES)
    npz = np.load(corpus[0] / "mer2023-dataset-process" / "label-6way.npz", allow_pickle=True)
    gt = {**npz["train_corpus"].tolist(), **npz["test1_corpus"].tolist()}
    assert all(gt[r["name"]]["emo"] == r["emotion"] for r in rows)


def test_open_vocabulary_words_are_emotion_wheel_words(shared_data):
    wheel = set()
    for f in sorted((shared_data / "emotion_wheel").glob("wheel*.csv")):
        with open(f, newline="") as fh:
            for row in csv.DictReader(fh):
                wheel.update(v.strip().lower() for v in row.values() if v and v.strip())
    assert len(wheel) == 253
    missing = set(all_ov_words()) - wheel
    assert not missing, f"not in the emotion-wheel vocabulary: {sorted(missing)}"


def _branch_token(texts_by_emotion: dict, prefix: str) -> dict:
    """Tokenise prefix + each text; check they share one prefix and then part at a single token whose value
    depends on the emotion only (greedy decoding then picks an emotion there, not a group of emotions).
    Returns {emotion: branch token}."""
    from emox_jax.tokenizer import tiny_tokenizer

    tok = tiny_tokenizer()
    seqs = {e: [tok.encode(prefix + t) for t in texts] for e, texts in texts_by_emotion.items()}
    flat = [s for ss in seqs.values() for s in ss]
    n = 0
    while all(len(s) > n and s[n] == flat[0][n] for s in flat):
        n += 1
    branch = {e: {s[n] for s in ss} for e, ss in seqs.items()}
    assert all(len(b) == 1 for b in branch.values()), branch
    tokens = {e: b.pop() for e, b in branch.items()}
    assert len(set(tokens.values())) == len(tokens), tokens
    return tokens


def test_empathy_scenarios_part_six_ways_at_one_token():
    """A Chain-of-Empathy answer states the scenario before the emotion (text.py, EMPATHY)."""
    from data_pipelines.emosynth.text import EMPATHY

    assert len(_branch_token({e: [o[0] for o in opts] for e, opts in EMPATHY.items()},
                             "<think>Firstly, the event scenario: ")) == 6


def test_face_and_voice_cues_part_six_ways_at_one_token():
    from data_pipelines.emosynth.text import FACE_CUES, VOICE_CUES

    assert len(_branch_token({e: [c] for e, c in FACE_CUES.items()}, "; in the video, ")) == 6
    assert len(_branch_token({e: [c] for e, c in VOICE_CUES.items()}, "; in the audio, ")) == 6


def test_reason_names_each_cue_and_ends_with_the_open_set():
    from data_pipelines.emosynth.text import FACE_CUES, reason

    r = reason("happy", "absent", "sad", "happy", ("happy", "cheerful"))
    assert r.startswith("The words sound sorrowful, but they contradict the face and the voice")
    assert "in the video, " + FACE_CUES["happy"] in r
    assert "the speech is whispered, so the tone of voice gives no clue" in r
    assert r.endswith("Therefore, it is inferred that the emotional state is happy, cheerful.")
    assert "the person's face is turned away" in reason("absent", "sad", "neutral", "sad", ("sad",))


def test_iter_examples_yields_schema_records():
    recs = list(iter_examples(8, 0, split="test"))
    assert len(recs) == 2
    for r in recs:
        assert set(r) == set(schema.EXAMPLE_FIELDS) and r["split"] == "test"
        assert r["emotion"] in EMOTIONS and r["emotions"] and r["intent"] in INTENTS
        assert len(r["coe"]) == 4 and r["response"] and r["reason"] and r["subtitle"]
        assert all(lt in schema.LABEL_TYPES for lt in r["label_types"])
        assert media.decode_frames(r["video"], name=r["video_path"]).shape == (8, 224, 224, 3)
        assert media.decode_audio(r["audio"], name=r["audio_path"]).shape == (32000,)
    assert all(r["video"] == b"" for r in iter_examples(4, 0, media=False))


def _fit_ridge_accuracy(x, y, train, test, lam):
    xb = np.c_[x, np.ones(len(x))]
    w = np.linalg.solve(xb[train].T @ xb[train] + lam * np.eye(xb.shape[1]), xb[train].T @ np.eye(6)[y[train]])
    return float(((xb[test] @ w).argmax(1) == y[test]).mean())


def _audio_features(w: np.ndarray, sr: int = 16000) -> np.ndarray:
    """log RMS, zero-crossing rate, spectral centroid, median f0 (autocorrelation), syllable onsets."""
    frames = w[: len(w) // 400 * 400].reshape(-1, 400)
    energy = np.sqrt((frames**2).mean(1))
    act = energy > 0.3 * energy.max()
    f = frames[act] * np.hanning(400)
    spec = np.abs(np.fft.rfft(f, axis=1))
    cent = (spec * np.fft.rfftfreq(400, 1 / sr)).sum(1) / (spec.sum(1) + 1e-9)
    ac = np.fft.irfft(np.abs(np.fft.rfft(f, 800, axis=1)) ** 2, axis=1)[:, : sr // 70]
    lo = sr // 400
    f0 = sr / (lo + ac[:, lo:].argmax(1))
    zcr = (np.abs(np.diff(np.sign(frames[act]), axis=1)) > 0).mean()
    onsets = (np.diff(act.astype(int)) == 1).sum()
    return np.array([np.log(energy[act].mean()), zcr, cent.mean() / 1000, np.log(np.median(f0)), onsets])


@pytest.mark.slow
def test_each_emotion_is_learnable_from_face_and_from_voice():
    """A linear read-out separates the emotions from face crops and from voice features when the cue is
    present, and is near chance when it is absent: the information is where the cue rule says it is."""
    specs = sample_clips(240, 0)
    y = np.array([EMOTIONS.index(s.emotion) for s in specs])
    face_x, voice_x = [], []
    for s in specs:
        rng = np.random.default_rng([s.render_seed, 0])
        style = faces.sample_style(rng)  # same draw order as clips.render_media
        fr = faces.render_face(s.face_cue, s.intensity, style, 16, 112)
        r, cx, cy = style.radius * 112, style.cx * 112, style.cy * 112  # a perfect face detector
        crop = Image.fromarray(fr[-1]).convert("L").crop((int(cx - r), int(cy - r), int(cx + r), int(cy + r)))
        g = np.asarray(crop.resize((24, 24)), np.float32).ravel()
        face_x.append((g - g.mean()) / (g.std() + 1e-6))
        voice_x.append(_audio_features(voice.render_voice(s.voice_cue, s.intensity, rng, 2.0)))
    face_x, voice_x = np.array(face_x), np.array(voice_x)
    voice_x = (voice_x - voice_x.mean(0)) / (voice_x.std(0) + 1e-9)
    train = np.arange(len(y)) < 170
    face_on = np.array([s.face_cue != "absent" for s in specs])
    voice_on = np.array([s.voice_cue != "absent" for s in specs])
    assert _fit_ridge_accuracy(face_x, y, train & face_on, ~train & face_on, 10.0) > 0.6
    assert _fit_ridge_accuracy(voice_x, y, train & voice_on, ~train & voice_on, 1.0) > 0.6
    # class means of the present cues differ for every pair of emotions
    for x, on in ((face_x, face_on), (voice_x, voice_on)):
        means = np.stack([x[on & (y == k)].mean(0) for k in range(6)])
        d = np.linalg.norm(means[:, None] - means[None], axis=-1)
        assert d[~np.eye(6, dtype=bool)].min() > 0.3
    assert _fit_ridge_accuracy(voice_x, y, train & ~voice_on, ~train & ~voice_on, 1.0) < 0.45


def test_cli_runs_as_a_subprocess(tmp_path):
    cmd = [sys.executable, "-m", "data_pipelines.emosynth", "--out", str(tmp_path), "--clips", "8", "--seed", "1",
           "--layout", "mintrec,mosi", "--workers", "1"]
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout.strip().splitlines()[-1])
    assert set(summary["layouts"]) == {"mintrec", "mosi"} and summary["clips"] == 8
    assert len(list((tmp_path / "MIntRec" / "video").glob("*.mp4"))) == 8
    assert (tmp_path / "cmumosi-process" / "label.npz").is_file() and not (tmp_path / "AvaMERG").exists()
    bad = subprocess.run(cmd[:-4] + ["--layout", "meld"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "unknown EmoSynth layout 'meld'" in bad.stderr
