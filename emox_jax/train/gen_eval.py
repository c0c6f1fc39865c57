"""End-of-phase task evaluation: greedy generation on held-out EmoSynth, scored by ``emox_jax.eval.scoring``.

For each of the six tasks the held-out records are rendered with that task's label type (first question
paraphrase) in the modality mode of what the phase trained (``eval_mode``: phase 1a = audio + words, 1b = face
+ frames + words, 2 and 3 = every branch; a branch whose adapter is still at its random init would only feed
the frozen LM noise); the prompt is the sequence up to the first supervised token; modality tokens
are spliced in (``NanoEmoX.embed_inputs``) and the decoder generates greedily (``generate_from_embeds``) until
``###`` / EOS. Chance level per task = the score of the ground-truth answers shuffled across samples (right
format, label marginals kept, no information about the clip), averaged over a few permutations.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from emox_jax.models.nano_emox import MODALITIES, NanoEmoX, NanoEmoXConfig

TASK_LABEL_TYPES = {"msa": "sentiment", "mer": "onehot_w_candidates", "ovmer": "ovlabel", "eri": "description",
                    "mir": "intent_recognition", "erg": "empathic_response_with_coe"}
PRIMARY = {"msa": "weighted_f1", "mer": "hit_rate", "ovmer": "f", "eri": "wheel_f", "mir": "accuracy",
           "erg": "emotion_accuracy"}
MAIN_MODE = "multiface_audio_face_frame_text"


def eval_mode(modalities: Sequence[str]) -> str:
    """The modality mode holding exactly ``modalities`` (a phase's trained branches) plus the words."""
    from data_pipelines.prompts import MODE_MODALITIES

    want = set(modalities) | {"text"}
    for mode, mods in MODE_MODALITIES.items():
        if set(mods) == want:
            return mode
    return MAIN_MODE


def gt_row(task: str, r: Mapping) -> dict[str, str]:
    """The ground-truth row ``scoring.score`` expects for an EmoSynth record."""
    if task == "mer":
        return {"label": r["emotion"]}
    if task == "ovmer":
        return {"label": ", ".join(r["emotions"])}
    if task == "msa":
        return {"label": str(r["sentiment"])}
    if task == "mir":
        return {"label": r["intent"]}
    if task == "erg":
        return {"label": r["coe"][1] if len(r["coe"]) > 1 else r["emotion"], "response": r["response"]}
    return {"label": r["reason"], "emotion": r["emotion"]}


def chance_level(task: str, targets: Mapping[str, str], gt: Mapping[str, Mapping], seeds=(0, 1, 2)) -> float:
    from emox_jax.eval import scoring

    ids = list(targets)
    vals = []
    for s in seeds:
        perm = np.random.default_rng(s).permutation(len(ids))
        preds = {ids[i]: targets[ids[j]] for i, j in enumerate(perm)}
        vals.append(float(scoring.score(task, preds, gt)[PRIMARY[task]]))
    return float(np.mean(vals))


@dataclasses.dataclass
class TaskBatch:
    """Host arrays of one task's held-out prompts (answers included, for prompt lengths)."""
    arrays: dict
    ids: list
    targets: dict
    gt: dict
    modalities: tuple = MODALITIES   # the branches the prompts hold placeholders for


def prepare(records: Sequence[Mapping], data_cfg, tokenizer, tasks: Sequence[str] = tuple(TASK_LABEL_TYPES),
            per_task: int = 24, mode: str = MAIN_MODE) -> dict[str, TaskBatch]:
    """Tokenised held-out prompts per task in modality ``mode``, at most ``per_task`` each."""
    from data_pipelines.pipeline import DatasetSpec, make_eval_iterator
    from data_pipelines.prompts import MODE_MODALITIES

    mods = tuple(m for m in MODALITIES if m in MODE_MODALITIES[mode])
    out = {}
    for task in tasks:
        spec = DatasetSpec(name=f"emosynth_{task}", split="test", modality_mode=mode,
                           label_type=TASK_LABEL_TYPES[task])
        cfg = dataclasses.replace(data_cfg, datasets=(spec,), batch_size=per_task)
        it = make_eval_iterator(cfg, tokenizer, sources={spec.name: list(records)}, process_index=0,
                                process_count=1)
        b = next(iter(it))
        keep = np.asarray(b["valid"]).astype(bool)
        ids = [str(x) for x in np.asarray(b["id"])[keep]]
        by_id = {r["id"]: r for r in records}
        arrays = {k: np.asarray(v)[keep] for k, v in b.items() if np.asarray(v).dtype.kind in "iuf"}
        out[task] = TaskBatch(arrays=arrays, ids=ids,
                              targets={i: str(t) for i, t in zip(ids, np.asarray(b["target"])[keep])},
                              gt={i: gt_row(task, by_id[i]) for i in ids}, modalities=mods)
    return out


def _stop_ids(tokenizer) -> tuple[int, ...]:
    ids = [tokenizer.eos_id]
    try:
        ids.append(tokenizer.token_to_id("###"))
    except Exception:  # noqa: BLE001 - a tokenizer without a single-token "###" stops on EOS only
        pass
    return tuple(i for i in ids if i is not None and i >= 0)


def generate_answers(model_cfg: NanoEmoXConfig, params, tb: TaskBatch, tokenizer,
                     max_new_tokens: int = 96) -> dict[str, str]:
    """Greedy answers ``{id: text}`` for one task's prompts."""
    from emox_jax.infer.generate import GenerateConfig, generate_from_embeds
    from emox_jax.infer.sampling import SamplingConfig

    a = tb.arrays
    lm = np.asarray(a["loss_mask"])
    plen = (lm.argmax(axis=1) + 1).astype(np.int32)   # labels are shifted: first target at argmax+1
    a = trim_to_prompts(a, int(plen.max()))
    embeds = _embed(model_cfg, params, {k: jnp.asarray(v) for k, v in a.items()}, tuple(tb.modalities))
    gen = GenerateConfig(max_new_tokens=max_new_tokens, sampling=SamplingConfig(greedy=True),
                         stop_token_ids=_stop_ids(tokenizer), pad_id=tokenizer.pad_id)
    out = generate_from_embeds(params["decoder"], embeds, jnp.asarray(plen), jax.random.key(0),
                               model_config=model_cfg.llm, gen_config=gen)
    toks, lens = np.asarray(out.tokens), np.asarray(out.lengths)
    res = {}
    for i, k in enumerate(tb.ids):
        ids = [int(t) for t in toks[i, :lens[i]] if int(t) not in (tokenizer.eos_id, tokenizer.pad_id)]
        res[k] = tokenizer.decode(ids).replace("###", "").strip()
    return res


TOKEN_FIELDS = ("input_ids", "labels", "loss_mask", "attention_mask", "positions")   # the [B, T] fields


def trim_to_prompts(arrays: Mapping[str, np.ndarray], longest_prompt: int, multiple: int = 64) -> dict:
    """Cut the token axis of ``arrays``' ``TOKEN_FIELDS`` to the longest prompt, rounded up to ``multiple``.

    The prepared batches hold prompt + answer padded to a length bucket (384 for ERI / ERG), but generation
    only reads the prompts: the prefill and every decode step's attention over the KV cache (prompt + new
    tokens) scale with this length. Rounding keeps the number of compiled shapes small. Measured (tiny
    quickstart model, 48 ERI prompts of <= 192 tokens, 144 new tokens, 2 CPU cores): one decode step 61 -> 38 ms.
    """
    keep = min(arrays["input_ids"].shape[1], -(-longest_prompt // multiple) * multiple)
    return {k: (v[:, :keep] if k in TOKEN_FIELDS else v) for k, v in arrays.items()}


_EMBED_CACHE: dict = {}


def _embed(model_cfg, params, a, modalities):
    key = (model_cfg, modalities)
    if key not in _EMBED_CACHE:
        model = NanoEmoX(model_cfg)

        def f(p, a):
            starts = {m: a[f"{m}_pos"] for m in modalities}
            need_frames = bool({"frame", "face", "multi"} & set(modalities))
            need_audio = bool({"audio", "multi"} & set(modalities))
            return model.apply({"params": p}, a["input_ids"], frames=a.get("frames") if need_frames else None,
                               audio=a.get("audio") if need_audio else None,
                               starts=starts, modalities=modalities, method=NanoEmoX.embed_inputs)

        _EMBED_CACHE[key] = jax.jit(f)
    return _EMBED_CACHE[key](params, a)


def evaluate_tasks(model_cfg: NanoEmoXConfig, params, batches: Mapping[str, TaskBatch], tokenizer,
                   max_new_tokens: int = 96) -> dict[str, dict]:
    """{task: {"score", "metric", "chance", "n", "examples"}} with the primary metric per task."""
    from emox_jax.eval import scoring

    out = {}
    for task, tb in batches.items():
        preds = generate_answers(model_cfg, params, tb, tokenizer, max_new_tokens)
        s = scoring.score(task, preds, tb.gt)
        out[task] = {"score": float(s[PRIMARY[task]]), "metric": PRIMARY[task],
                     "chance": chance_level(task, tb.targets, tb.gt), "n": len(tb.ids),
                     "examples": [(k, preds[k], tb.targets[k]) for k in tb.ids[:2]]}
    return out
