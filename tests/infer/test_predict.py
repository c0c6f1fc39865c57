"""Predict on clips: determinism, folder mode with failures, and the bad-input messages (tiny model, CPU).

The checkpoint is written the way the P2E job writes one (``emox_jax.train.checkpoint.Checkpointer`` with a
``params`` item and ``model``/``tokenizer``/``data`` metadata). Only the frame branch + decoder are initialised
(mode ``frame_text``) to keep compile time small; the multimodal splice path is the same for every branch.
"""

import json
import pathlib

import flax.linen as nn
import jax
import numpy as np
import pytest

from configs.nano_emox import tiny
from data_pipelines.emosynth import iter_examples
from emox_jax.config_utils import to_dict
from emox_jax.infer import predict as P
from emox_jax.models.nano_emox import NanoEmoX, dummy_inputs
from emox_jax.train.checkpoint import Checkpointer
from launch import predict as cli

MODE = "frame_text"
DATA = {"num_frames": 8, "image_size": 32, "num_audio_clips": 8, "clip_seconds": 0.1, "sample_rate": 16000,
        "max_length": 512, "template": "vicuna", "batch_size": 3}


def init_frame_model(cfg, seed=0):
    inputs = {**dummy_inputs(cfg, batch=1, length=32), "modalities": ("frame",)}
    model = NanoEmoX(cfg)
    return jax.jit(lambda r: nn.unbox(model.init({"params": r, "dropout": r}, **inputs)["params"]))(
        jax.random.key(seed))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    cfg = tiny()
    params = init_frame_model(cfg)
    assert set(params) == {"decoder", "clip", "video_qformer", "video_proj"}
    ckpt = root / "work" / "phase3" / "checkpoints"
    with Checkpointer(ckpt, async_save=False) as ck:
        ck.save(7, {"params": params}, metadata={"model": to_dict(cfg), "preset": "tiny", "tokenizer": "tiny",
                                                 "data": DATA, "phase": "phase3"})
    # A phase-1b-like checkpoint: its metadata says which branches its phase trained.
    with Checkpointer(root / "phase1b" / "checkpoints", async_save=False) as ck:
        ck.save(3, {"params": params}, metadata={"model": to_dict(cfg), "tokenizer": "tiny", "data": DATA,
                                                 "phase": "phase1b", "modalities": ["frame"]})
    clips = root / "clips"
    clips.mkdir()
    for ex in iter_examples(3, seed=3):
        stem = ex["id"]
        (clips / f"{stem}.mp4").write_bytes(ex["video"])
        (clips / f"{stem}.wav").write_bytes(ex["audio"])
        (clips / f"{stem}.txt").write_text(ex["subtitle"])
    (clips / "broken.mp4").write_bytes(b"this is not an mp4 file at all" * 10)
    return {"root": root, "work": root / "work", "clips": clips, "cfg": cfg}


def test_prompt_spec_matches_training_prompt_without_answer():
    from data_pipelines import prompts
    rec = {"id": "x", "dataset": "d", "subtitle": "I got the job!", "emotion": "happy",
           "candidates": ["neutral", "happy"], "intent": "Inform"}
    for task, lt in P.TASK_LABEL_TYPES.items():
        if task in ("eri", "erg", "msa", "ovmer"):
            continue
        ours = P.prompt_spec(rec, task, MODE)
        train = prompts.build_prompt(rec, lt, MODE)
        assert prompts.render(ours)[0] == prompts.render(train)[0], task


@pytest.mark.slow
def test_greedy_predict_is_deterministic_and_loads_workdir(setup):
    pred = P.load_predictor(setup["work"], mode=MODE, batch_size=4, max_new_tokens=8)
    assert pred.media.image_size == 32 and pred.media.clip_seconds == 0.1
    assert "step 7" in pred.source
    clips = [P.Clip(id=p.stem, video=str(p), subtitle="hello there")
             for p in sorted(setup["clips"].glob("emosynth_*.mp4"))]
    a = pred.predict(clips, ["mer", "mir"])
    b = pred.predict(clips, ["mer", "mir"])
    assert [(x.id, x.task) for x in a] == [(c.id, t) for c in clips for t in ("mer", "mir")]
    assert [x.answer for x in a] == [x.answer for x in b]
    assert all(isinstance(x.answer, str) and x.parsed.status in ("parsed", "unparsable") for x in a)
    # A row's answer does not depend on which other rows share its batch (padding rows are dropped).
    single = pred.predict(clips[1:2], ["mer"])
    assert single[0].answer == a[2].answer


def test_cli_folder_mode_lists_failures_and_runs_the_rest(setup, capsys):
    rc = cli.main(["--checkpoint", str(setup["work"]), "--input-dir", str(setup["clips"]), "--task", "msa",
                   "--mode", MODE, "--batch-size", "4", "--max-new-tokens", "8", "--json"])
    out, err = capsys.readouterr()
    assert rc == 0
    rows = [json.loads(line) for line in out.strip().splitlines()]
    assert sorted(r["id"] for r in rows) == sorted(p.stem for p in setup["clips"].glob("emosynth_*.mp4"))
    assert all(set(r) >= {"id", "task", "answer", "parsed", "status"} and r["task"] == "msa" for r in rows)
    assert "1 of 4 clip(s) failed" in err and "broken" in err and "unreadable video" in err


def test_cli_single_unreadable_video(setup, capsys):
    rc = cli.main(["--checkpoint", str(setup["work"]), "--video", str(setup["clips"] / "broken.mp4"),
                   "--task", "mer", "--mode", MODE, "--batch-size", "4", "--max-new-tokens", "8"])
    err = capsys.readouterr().err
    assert rc == 1 and "broken.mp4" in err and "unreadable video" in err


def test_unknown_task_is_named(setup):
    with pytest.raises(SystemExit, match="unknown task 'emotion'"):
        cli.main(["--checkpoint", str(setup["work"]), "--video", "x.mp4", "--task", "emotion"])
    with pytest.raises(P.PredictError, match="unknown task 'foo'"):
        P.check_task("foo")


def test_checkpoint_without_needed_modules_is_named(setup, capsys):
    # The default mode needs every branch; this checkpoint holds only the frame branch.
    rc = cli.main(["--checkpoint", str(setup["work"]), "--video", str(next(setup["clips"].glob("emosynth_*.mp4"))),
                   "--task", "mer"])
    err = capsys.readouterr().err
    assert rc == 1
    for module in ("hubert", "face_encoder", "fusion", "audio_qformer"):
        assert module in err
    assert "phase3/checkpoints" in err


def test_checkpoint_whose_phase_did_not_train_the_branch(setup):
    with pytest.raises(P.PredictError, match=r"phase1b\) trained only the \['frame'\] branch.*'audio_text' also "
                                             r"needs \['audio'\].*audio_proj"):
        P.load_predictor(setup["root"] / "phase1b", mode="audio_text")


def test_missing_checkpoint_dir(tmp_path):
    with pytest.raises(P.PredictError, match="no Orbax checkpoint"):
        P.load_predictor(tmp_path)
