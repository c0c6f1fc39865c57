"""Grain pipelines: mixture weights, exact resume, per-process shards, bad samples skipped and counted."""

import io
import logging

import av
import numpy as np
import pytest

from data_pipelines import batching, pipeline, schema
from emox_jax.tokenizer import tiny_tokenizer

WEIGHTS = {"mercaptionplus": 0.55, "avamerg": 0.35, "merrfine": 0.05, "mintrec2": 0.03, "mintrec": 0.02}


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def _text_records(name, n):
    return [schema.make_example(id=f"{name}_{i}", dataset=name, subtitle=f"{name} clip {i}", intent="inform",
                                label_types=["intent_recognition"]) for i in range(n)]


def _cfg(names, weights=None, **kw):
    ds = [dict(name=n, modality_mode="text", label_type="intent_recognition",
               weight=(weights or {}).get(n, 1.0)) for n in names]
    base = dict(datasets=ds, batch_size=8, max_length=256, length_buckets=[96, 128], num_frames=2, image_size=8,
                num_audio_clips=2, clip_seconds=0.01, num_threads=1, seed=3)
    return {**base, **kw}


@pytest.mark.slow
def test_mixture_matches_weights_over_10k_draws(tok):
    # cheap records (short prompt, no media): this test is about the sampling, not the processing
    sources = {n: [dict(r, candidates=["inform"]) for r in _text_records(n, 40 + 7 * i)]
               for i, n in enumerate(WEIGHTS)}
    it = pipeline.make_train_iterator(_cfg(WEIGHTS, WEIGHTS, batch_size=100, max_length=128, length_buckets=[]),
                                      tok, sources=sources,
                                      process_index=0, process_count=1)
    draws = np.concatenate([next(it)["dataset"] for _ in range(100)])
    assert draws.shape == (10_000,)
    for i, (name, w) in enumerate(WEIGHTS.items()):
        frac = float(np.mean(draws == i))
        assert abs(frac - w) < 4 * np.sqrt(w * (1 - w) / draws.size), (name, frac, w)


def test_reference_subsample_flag_draws_uniformly(tok):
    sources = {"a": _text_records("a", 200), "b": _text_records("b", 200)}
    cfg = _cfg(["a", "b"], {"a": 0.5, "b": 0.05}, mixture="reference_subsample", batch_size=50)
    it = pipeline.make_train_iterator(cfg, tok, sources=sources, process_index=0, process_count=1)
    batches = [next(it) for _ in range(8)]
    draws = np.concatenate([b["dataset"] for b in batches])
    assert abs(np.mean(draws == 1) - 0.5) < 0.05        # uniform over datasets, whatever the ratio
    subtitles = {tok.decode(r[m == 1]) for b in batches for r, m in zip(b["input_ids"], b["attention_mask"])}
    b_clips = {s.split("<Subtitle>")[1].split("</Subtitle>")[0] for s in subtitles if "b clip" in s}
    assert len(b_clips) == 10                            # int(200 * 0.05) kept records, revisited


def test_batch_format_and_buckets(tok):
    recs = _text_records("a", 30)
    recs[5] = dict(recs[5], subtitle=" ".join(["long"] * 120))
    it = pipeline.make_train_iterator(_cfg(["a"], batch_size=4, max_length=512, length_buckets=[240, 300]),
                                      tok, sources={"a": recs},
                                      process_index=0, process_count=1)
    shapes = set()
    for _ in range(12):
        b = next(it)
        B, L = b["input_ids"].shape
        shapes.add(L)
        assert B == 4 and L in (240, 300, 512)
        for k in ("labels", "loss_mask", "attention_mask", "positions"):
            assert b[k].shape == (4, L) and b[k].dtype == np.int32
        assert b["frames"].shape == (4, 2, 8, 8, 3) and b["frames"].dtype == np.uint8
        assert b["audio"].shape == (4, 2, 160) and b["audio"].dtype == np.float32
        for k in ("frame_pos", "face_pos", "audio_pos", "multi_pos", "task_id", "dataset", "length", "valid"):
            assert b[k].shape == (4,) and b[k].dtype == np.int32
        assert (b["frame_pos"] == -1).all() and (b["task_id"] == schema.TASKS.index("mir")).all()
        assert np.array_equal(b["attention_mask"].sum(1), b["length"]) and b["valid"].all()
        assert not (b["loss_mask"] & (1 - b["attention_mask"])).any()
    assert len(shapes) >= 2                              # the long sample lands in a bigger bucket


def test_restore_state_continues_with_same_batches(tok):
    sources = {"a": _text_records("a", 23), "b": _text_records("b", 17)}
    cfg = _cfg(["a", "b"], {"a": 2.0, "b": 1.0}, batch_size=5)
    it = pipeline.make_train_iterator(cfg, tok, sources=sources, process_index=0, process_count=1)
    for _ in range(6):   # past an epoch of b, so reshuffled epochs are covered
        next(it)
    _assert_resume_is_exact(cfg, tok, sources, it, 4)


def _assert_resume_is_exact(cfg, tok, sources, it, n):
    """A fresh iterator given ``it``'s state yields exactly ``it``'s next ``n`` batches."""
    state = it.get_state()
    expected = [next(it) for _ in range(n)]
    it2 = pipeline.make_train_iterator(cfg, tok, sources=sources, process_index=0, process_count=1)
    it2.set_state(state)
    for e in expected:
        got = next(it2)
        assert got.keys() == e.keys()
        for k in e:
            np.testing.assert_array_equal(got[k], e[k], err_msg=k)


def test_batch_mix_unit_one_dataset_per_batch_by_weight_with_own_bucket_and_exact_resume(tok):
    # b's subtitles are long, so its batches need the bigger bucket; a's fit the small one.
    sources = {"a": _text_records("a", 23),
               "b": [dict(r, subtitle=" ".join(["long"] * 60)) for r in _text_records("b", 17)]}
    cfg = _cfg(["a", "b"], {"a": 3.0, "b": 1.0}, batch_size=4, max_length=384, length_buckets=[160, 384],
               mix_unit="batch")
    it = pipeline.make_train_iterator(cfg, tok, sources=sources, process_index=0, process_count=1)
    batches = [next(it) for _ in range(40)]
    per_batch = [set(b["dataset"].tolist()) for b in batches]
    assert all(len(d) == 1 for d in per_batch)                       # never mixed within a batch
    picks = np.array([d.pop() for d in per_batch])
    assert abs(np.mean(picks == 0) - 0.75) <= 0.05                   # the weights pick whole batches
    lengths = {int(p): {b["input_ids"].shape[1] for b, q in zip(batches, picks) if q == p} for p in (0, 1)}
    assert lengths == {0: {160}, 1: {384}}   # a: ~150 tokens, b: ~320
    # the other process draws the same dataset at the same step (deterministic interleave), from its own shard
    it1 = pipeline.make_train_iterator(cfg, tok, sources=sources, process_index=1, process_count=2)
    it0 = pipeline.make_train_iterator(cfg, tok, sources=sources, process_index=0, process_count=2)
    for _ in range(8):
        b0, b1 = next(it0), next(it1)
        assert set(b0["dataset"].tolist()) == set(b1["dataset"].tolist())
    _assert_resume_is_exact(cfg, tok, sources, it, 5)   # the mixed batch streams' state is whole
    with pytest.raises(Exception, match="mix_unit"):
        pipeline.data_config(_cfg(["a"], mix_unit="task"))


def test_orbax_checkpoint_of_iterator_state(tok, tmp_path):
    import grain
    import orbax.checkpoint as ocp

    sources = {"a": _text_records("a", 20)}
    cfg = _cfg(["a"], batch_size=3)
    it = pipeline.make_train_iterator(cfg, tok, sources=sources, process_index=0, process_count=1)
    next(it), next(it)
    with ocp.CheckpointManager(tmp_path, item_names=("data_iter",)) as mngr:
        mngr.save(2, args=ocp.args.Composite(data_iter=grain.checkpoint.CheckpointSave(it)))
        mngr.wait_until_finished()
        expected = next(it)
        it2 = pipeline.make_train_iterator(cfg, tok, sources=sources, process_index=0, process_count=1)
        mngr.restore(2, args=ocp.args.Composite(data_iter=grain.checkpoint.CheckpointRestore(it2)))
    np.testing.assert_array_equal(next(it2)["input_ids"], expected["input_ids"])


def test_two_processes_see_disjoint_shards(tok):
    sources = {"a": _text_records("a", 21), "b": _text_records("b", 10)}
    cfg = _cfg(["a", "b"], batch_size=4)
    ids = []
    for p in (0, 1):
        ev = pipeline.make_eval_iterator(cfg, tok, sources=sources, process_index=p, process_count=2)
        got = [i for b in ev for i, v in zip(b["id"], b["valid"]) if v]
        assert len(got) == len(set(got))
        ids.append(set(got))
    assert not ids[0] & ids[1]
    assert ids[0] | ids[1] == {r["id"] for s in sources.values() for r in s}
    # training streams too: the subtitles each process sees are disjoint
    seen = []
    for p in (0, 1):
        it = pipeline.make_train_iterator(cfg, tok, sources=sources, process_index=p, process_count=2)
        seen.append({tok.decode(r[m == 1]).split("<Subtitle>")[1].split("<")[0]
                     for b in (next(it) for _ in range(5)) for r, m in zip(b["input_ids"], b["attention_mask"])})
    assert seen[0] and seen[1] and not seen[0] & seen[1]


def test_eval_is_deterministic_and_keeps_targets(tok):
    sources = {"a": _text_records("a", 10)}
    cfg = _cfg(["a"], batch_size=4)
    runs = [list(pipeline.make_eval_iterator(cfg, tok, sources=sources, process_index=0, process_count=1))
            for _ in range(2)]
    assert len(runs[0]) == 3 and runs[0][-1]["valid"].tolist() == [1, 1, 0, 0]
    assert runs[0][-1]["id"].tolist() == ["a_8", "a_9", "", ""]
    assert runs[0][0]["target"].tolist() == ["Inform"] * 4
    for b0, b1 in zip(*runs):
        np.testing.assert_array_equal(b0["input_ids"], b1["input_ids"])


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match=r"data.datasets\[0\].labl_type"):
        pipeline.data_config({"datasets": [{"name": "a", "labl_type": "ovlabel"}]})
    with pytest.raises(ValueError, match="modality_mode"):
        pipeline.data_config({"datasets": [{"name": "a", "modality_mode": "faceonly"}]})


# ------------------------------------------------------------------------------------------ real media
def _mp4(frames=8, size=32, seed=0) -> bytes:
    buf = io.BytesIO()
    rng = np.random.default_rng(seed)
    with av.open(buf, "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=8)
        s.width = s.height = size
        s.pix_fmt = "yuv420p"
        for _ in range(frames):
            img = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return buf.getvalue()


def _wav(seconds=1.0, rate=16000) -> bytes:
    buf = io.BytesIO()
    t = np.arange(int(seconds * rate)) / rate
    pcm = (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype(np.int16)
    with av.open(buf, "w", format="wav") as c:
        s = c.add_stream("pcm_s16le", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(pcm[None, :], format="s16", layout="mono")
        frame.sample_rate = rate
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode():
            c.mux(p)
    return buf.getvalue()


def test_bad_media_skipped_counted_and_named(tok, caplog):
    mp4, wav = _mp4(), _wav()
    recs = [schema.make_example(id=f"clip{i}", dataset="mintrec", subtitle=f"line {i}", intent="greet",
                                video=mp4, audio=wav, video_path=f"video/clip{i}.mp4",
                                audio_path=f"audio/clip{i}.wav", label_types=["intent_recognition"])
            for i in range(6)]
    recs[1]["video"] = b"\x00\x00\x00\x18ftypmp42 this is not a video"     # corrupt mp4
    recs[4]["audio"] = b""                                                   # missing wav
    cfg = dict(_cfg(["mintrec"], batch_size=2), num_frames=8, image_size=32, num_audio_clips=8,
               clip_seconds=2.0, max_length=512, length_buckets=[256])
    cfg["datasets"][0]["modality_mode"] = "multiface_audio_face_frame_text"
    with caplog.at_level(logging.WARNING, logger="data_pipelines.pipeline"):
        ev = pipeline.make_eval_iterator(cfg, tok, sources={"mintrec": recs}, process_index=0, process_count=1)
        batches = list(ev)
    ids = [i for b in batches for i, v in zip(b["id"], b["valid"]) if v]
    assert ids == ["clip0", "clip2", "clip3", "clip5"]                      # the run went on
    assert ev.skipped == 2 and ev.skip_counts == {"media_decode": 1, "missing_media": 1}
    assert "video/clip1.mp4" in caplog.text and "audio/clip4.wav" in caplog.text
    assert any("clip1" in m for m in ev.recent_skips) and ev.get_state()["skipped"] == 2
    b = batches[0]
    assert b["frames"].shape == (2, 8, 32, 32, 3) and b["frames"].dtype == np.uint8 and b["frames"].any()
    assert b["audio"].shape == (2, 8, 32000) and b["audio"].dtype == np.float32 and np.abs(b["audio"]).sum() > 0
    L = b["input_ids"].shape[1]
    for m, n in (("multi", 1), ("audio", 32), ("face", 4), ("frame", 32)):
        pid = tok.placeholder_ids[f"<{m.capitalize()}Here>"]
        for row, pos in zip(b["input_ids"], b[f"{m}_pos"]):
            assert 0 <= pos <= L - n and (row[pos:pos + n] == pid).all() and (row == pid).sum() == n


def test_all_bad_samples_raise_instead_of_hanging(tok):
    recs = [schema.make_example(id=f"c{i}", dataset="d", subtitle="x", intent="greet", video_path=f"v{i}.mp4",
                                label_types=["intent_recognition"]) for i in range(5)]
    cfg = _cfg(["d"], batch_size=2, max_consecutive_skips=20)
    cfg["datasets"][0]["modality_mode"] = "frame_text"
    it = pipeline.make_train_iterator(cfg, tok, sources={"d": recs}, process_index=0, process_count=1)
    with pytest.raises(batching.TooManySkipsError, match="missing_media"):
        next(it)
