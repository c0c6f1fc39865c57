"""Phase 0, vision (tiny ``all`` runs only): pretrain the random-init tiny CLIP and face encoder on facial expressions.

The real Nano-EmoX freezes encoders that arrive pretrained: CLIP on image-text pairs, the face encoder
(FaceXFormer) on face tasks that include expression recognition. No such weights exist offline, and random frozen
tiny encoders turned out to carry no usable expression information: a linear probe of the quickstart's frozen
features (192 training clips -> 48 held-out) read the emotion from HuBERT's time means at 58 % (83-100 % on the
clips whose voice shows it), but from CLIP's CLS states at 21 % and from the face features at 12 % (chance 17 %),
even with 576 training clips; the drawn expressions are plain to see at 32x32, but the random towers average them
away. Phase 1b then had nothing to adapt, and the visual branch was dead weight in every later phase.

So, as a stand-in for that pretraining, the tiny CLIP tower (a linear head on the CLS state of every layer the
branches read) and the face encoder (a linear head on its per-frame features) are trained to classify what the
face in each frame shows: one of the six emotions, or ``absent`` (head turned away), on a corpus of drawn faces
of their own (``face_corpus``: EmoSynth's face painter with its own seed, no EmoSynth clip, no task label), so the
encoders learn perception, not the task. The heads are dropped; the trained towers go into the base model and
stay frozen through P2E as usual. HuBERT is left random: its features already carry the voice cues. Measured
(600 steps, lr 5e-3, 1200 faces): 71 % / 44 % per-frame accuracy (CLIP / face encoder) on 200 other faces.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn

from data_pipelines.vocab import EMOTIONS
from emox_jax.models.clip_vit import ClipVision, clip_preprocess
from emox_jax.models.face_encoder import FaceEncoder
from emox_jax.models.nano_emox import NanoEmoXConfig, backbone_layers
from emox_jax.train.optim import OptimConfig, make_optimizer

FACE_CLASSES = (*EMOTIONS, "absent")


class ExpressionProbe(nn.Module):
    """``frames [B, T, S, S, 3] uint8 -> (clip_logits [nLv, B, T, K], face_logits [B, T, K])``; the towers are
    named ``clip`` / ``face_encoder`` as in ``NanoEmoX``, so their params drop into its tree unchanged."""

    config: NanoEmoXConfig
    num_classes: int = len(FACE_CLASSES)

    @nn.compact
    def __call__(self, frames: jax.Array) -> tuple[jax.Array, jax.Array]:
        c = self.config
        layers = backbone_layers(c)[0]
        cls = ClipVision(c.clip, name="clip")(clip_preprocess(frames, c.clip.image_size), layers=layers)["cls"]
        clip_logits = jnp.stack([nn.Dense(self.num_classes, name=f"clip_head_{i}")(cls[i]) for i in layers])
        face = FaceEncoder(c.face, name="face_encoder")(frames, deterministic=True)
        return clip_logits, nn.Dense(self.num_classes, name="face_head")(face)


def face_labels(cues: Sequence[str]) -> np.ndarray:
    """Face cues (an emotion or ``"absent"``) -> class ids of ``FACE_CLASSES``; an unknown cue is named."""
    bad = sorted({c for c in cues if c not in FACE_CLASSES})
    if bad:
        raise ValueError(f"unknown face cues {bad}; expected one of {FACE_CLASSES}")
    return np.asarray([FACE_CLASSES.index(c) for c in cues], np.int32)


def pretrain_vision(model_cfg: NanoEmoXConfig, frames: np.ndarray, labels: np.ndarray, *, steps: int, lr: float,
                    batch_size: int, seed: int = 0, log: Callable[[str], None] = print) -> tuple[dict, list[float]]:
    """Train the tiny CLIP tower and face encoder on ``frames [N, T, S, S, 3] uint8`` with per-clip face classes
    ``labels [N]``; returns (the ``ExpressionProbe`` params: towers ``clip`` / ``face_encoder`` + heads, per-step
    losses).
    Single process, one device: the data is a few MB and the run takes under a minute on CPU."""
    from tqdm import tqdm

    if frames.ndim != 5 or len(frames) != len(labels):
        raise ValueError(f"pretrain_vision: frames {frames.shape} must be [N, T, S, S, 3] with N = len(labels) "
                         f"({len(labels)})")
    model = ExpressionProbe(model_cfg)
    params = nn.meta.unbox(jax.jit(model.init)(jax.random.key(seed), jnp.asarray(frames[:1]))["params"])
    # phase 0's LM recipe (warmup from lr/100 over a tenth of the steps, cosine to lr/10, clip 1.0, wd 0.01), with
    # weight decay on every param (biases and norm scales too).
    tx, _ = make_optimizer(OptimConfig(lr=lr, min_lr=lr / 10, warmup_init_lr=lr / 100, warmup_steps=max(1, steps // 10),
                                       total_steps=max(steps, 2), weight_decay=0.01, grad_clip_norm=1.0,
                                       no_decay_regexes=()))
    opt = tx.init(params)

    def loss_fn(p, x, y):
        clip_logits, face_logits = model.apply({"params": p}, x)
        yy = jnp.broadcast_to(y[:, None], face_logits.shape[:2])
        ce = optax.softmax_cross_entropy_with_integer_labels
        return ce(clip_logits, jnp.broadcast_to(yy, clip_logits.shape[:3])).mean() + ce(face_logits, yy).mean()

    @jax.jit
    def step(p, o, x, y):
        loss, g = jax.value_and_grad(loss_fn)(p, x, y)
        u, o = tx.update(g, o, p)
        return optax.apply_updates(p, u), o, loss

    rng = np.random.default_rng(seed)
    order, pos, losses = rng.permutation(len(frames)), 0, []
    main = jax.process_index() == 0
    bar = tqdm(range(steps), desc="phase0 (vision)", dynamic_ncols=True) if main else range(steps)
    for i in bar:
        if pos + batch_size > len(order):
            order, pos = rng.permutation(len(frames)), 0
        idx = order[pos:pos + batch_size]
        pos += batch_size
        params, opt, loss = step(params, opt, jnp.asarray(frames[idx]), jnp.asarray(labels[idx]))
        losses.append(float(loss))
        if main and (i + 1) % 10 == 0:
            bar.set_postfix_str(f"loss={np.mean(losses[-10:]):.3f}")
    return jax.device_get(params), losses


def expression_accuracy(model_cfg: NanoEmoXConfig, params, frames: np.ndarray, labels: np.ndarray,
                        batch_size: int = 32) -> dict[str, float]:
    """Per-frame accuracy of the probe's heads (CLIP: the deepest layer read) on ``frames`` with class ``labels``."""
    model = ExpressionProbe(model_cfg)
    f = jax.jit(lambda p, x: tuple(jnp.argmax(lo, -1) for lo in model.apply({"params": p}, x)))
    hits = {"clip": [], "face": []}
    for i in range(0, len(frames), batch_size):
        c, fa = f(params, jnp.asarray(frames[i:i + batch_size]))
        y = np.asarray(labels[i:i + batch_size])[:, None]
        hits["clip"].append(np.asarray(c[-1]) == y)
        hits["face"].append(np.asarray(fa) == y)
    return {k: float(np.concatenate(v).mean()) for k, v in hits.items()}


def drawn_faces(n: int, seed: int, *, render_size: int = 64, render_frames: int = 16) -> tuple[list, np.ndarray]:
    """The painter's side of ``face_corpus``: ``n`` rendered clips (``[render_frames, render_size, render_size, 3]``
    uint8 each, before any codec) and their class ids; the first k of n are ``drawn_faces(k, seed)``."""
    from data_pipelines.emosynth import faces

    rng = np.random.default_rng([seed, 0xFACE])
    clips, ys = [], []
    for _ in range(n):
        y = int(rng.integers(len(FACE_CLASSES)))
        style = faces.sample_style(rng)
        clips.append(faces.render_face(FACE_CLASSES[y], "high" if rng.random() < 0.5 else "low", style,
                                       render_frames, render_size))
        ys.append(y)
    return clips, np.asarray(ys, np.int32)


def face_corpus(n: int, seed: int, *, num_frames: int, size: int, render_size: int = 64,
                render_frames: int = 16, fps: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """A pretraining corpus of ``n`` drawn faces, separate from any EmoSynth split (its own seed): each a random
    face style showing a random cue of ``FACE_CLASSES`` at a random intensity, rendered by EmoSynth's face painter,
    encoded to mp4 and decoded as the pipeline decodes clips. Returns (frames ``[n, num_frames, size, size, 3]``
    uint8, class ids ``[n]``)."""
    from data_pipelines import media
    from data_pipelines.emosynth import video

    clips, ys = drawn_faces(n, seed, render_size=render_size, render_frames=render_frames)
    out = [media.decode_frames(video.encode_mp4(clip, fps), num_frames=num_frames, size=size) for clip in clips]
    return np.stack(out).astype(np.uint8), ys
