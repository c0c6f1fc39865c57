"""The phase-3 P2E train step built from transformers + peft modules in PyTorch (the reference's stack), for
comparison with ``benchmarks/p2e_step.py`` at the same shapes.

    python benchmarks/torch_p2e_step.py                                     # CPU smoke (tiny shapes, fp32)
    python benchmarks/torch_p2e_step.py --preset nano_emox --dtype bfloat16  # GPU: reference shapes

Graph: CLIPVisionModel (hidden states 12/16/22/23, CLS) and HubertModel (layers 16/18/22 and mean of 21..24,
time-mean per clip) and SwinModel + FaceXFormer head (per-frame GAP), all frozen under ``no_grad``; two
Blip2QFormerModel adapters (32 queries, cross-attention every layer) + Linear projections, 4-query
MultiheadAttention facial pooling + MLP, the multiscale fusion (3 cross-attention experts + gate), spliced into
Qwen2ForCausalLM's input embeddings; LoRA r16/α32 on q,k,v,o,gate,up,down via peft; AdamW on the trainable
params; bf16 autocast (``--dtype bfloat16``), fp32 master weights for trainables, bf16 frozen weights.
Requires ``peft`` (in the GPU image; NOT installed in the CPU dev venv): without it the script prints a clear
message, or with ``--allow-no-peft`` runs the same graph with the LM fully frozen (CPU testing only).
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

SHAPES = {
    "nano_emox": dict(clip=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                                patch_size=14, image_size=224, hidden_act="quick_gelu"),
                      hubert=dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                                  intermediate_size=4096, feat_extract_norm="layer", do_stable_layer_norm=True,
                                  conv_bias=False),
                      swin=dict(image_size=224, embed_dim=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32],
                                window_size=7),
                      qformer=dict(hidden_size=768, num_hidden_layers=2, num_attention_heads=12,
                                   intermediate_size=3072, encoder_hidden_size=1024, cross_attention_frequency=1),
                      llm="1.5b", queries=32, face_dim=256, fusion_dim=512, frames=8, clips=8, samples=32000,
                      clip_layers=(12, 16, 22), frame_layer=23, hubert_layers=(16, 18, 22), main=(21, 22, 23, 24)),
    "tiny": dict(clip=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                           patch_size=8, image_size=32, hidden_act="quick_gelu"),
                 hubert=dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128,
                             feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=False,
                             conv_dim=(32, 32, 32), conv_kernel=(10, 3, 3), conv_stride=(5, 2, 2),
                             num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4),
                 swin=dict(image_size=32, patch_size=4, embed_dim=16, depths=[2, 2], num_heads=[2, 4], window_size=4),
                 qformer=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                              encoder_hidden_size=64, cross_attention_frequency=1),
                 llm="tiny", queries=8, face_dim=16, fusion_dim=32, frames=8, clips=4, samples=4000,
                 clip_layers=(1, 2, 3), frame_layer=3, hubert_layers=(1, 2, 3), main=(1, 2, 3, 4)),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="tiny", choices=sorted(SHAPES))
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16"])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=None)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--allow-no-peft", action="store_true", help="run without LoRA when peft is missing (CPU test)")
    p.add_argument("--smoke", action="store_true")
    return p.parse_args(argv)


def build(sh, dtype, use_lora: bool, device):
    import torch
    from torch import nn
    from transformers import (Blip2QFormerConfig, Blip2QFormerModel, CLIPVisionConfig, CLIPVisionModel, HubertConfig,
                              HubertModel, Qwen2Config, Qwen2ForCausalLM, SwinConfig, SwinModel)

    if sh["llm"] == "1.5b":
        lcfg = Qwen2Config(vocab_size=151936, hidden_size=1536, num_hidden_layers=28, num_attention_heads=12,
                           num_key_value_heads=2, intermediate_size=8960, rms_norm_eps=1e-6, rope_theta=1e6,
                           tie_word_embeddings=True)
    else:
        lcfg = Qwen2Config(vocab_size=1024, hidden_size=128, num_hidden_layers=4, num_attention_heads=4,
                           num_key_value_heads=2, head_dim=32, intermediate_size=384, tie_word_embeddings=True)
    frozen_dtype = torch.bfloat16 if dtype == "bfloat16" else torch.float32
    with torch.device(device):  # initialise on the device: a 1.5B decoder's random init on the host takes minutes
        clip = CLIPVisionModel(CLIPVisionConfig(**sh["clip"])).to(device, frozen_dtype).eval()
        hubert = HubertModel(HubertConfig(**sh["hubert"])).to(device, frozen_dtype).eval()
        swin = SwinModel(SwinConfig(**sh["swin"])).to(device, frozen_dtype).eval()
        llm = Qwen2ForCausalLM(lcfg).to(device, frozen_dtype)
    for m in (clip, hubert, swin, llm):
        m.requires_grad_(False)
    if use_lora:
        from peft import LoraConfig, get_peft_model

        llm = get_peft_model(llm, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, task_type="CAUSAL_LM",
                                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                             "up_proj", "down_proj"]))  # adapters fp32 (autocast)
    d, q, fd, hd = lcfg.hidden_size, sh["queries"], sh["face_dim"], sh["fusion_dim"]
    qf = sh["qformer"]
    stage_dims = [sh["swin"]["embed_dim"] * 2 ** i for i in range(len(sh["swin"]["depths"]))]
    ew = qf["encoder_hidden_size"]

    class Adapters(nn.Module):
        def __init__(self):
            super().__init__()
            self.vq, self.aq = (Blip2QFormerModel(Blip2QFormerConfig(**qf)) for _ in range(2))
            self.vquery, self.aquery = nn.Parameter(torch.randn(1, q, qf["hidden_size"]) * .02), \
                nn.Parameter(torch.randn(1, q, qf["hidden_size"]) * .02)
            self.vpos, self.apos = nn.Embedding(32, ew), nn.Embedding(8, ew)
            self.vproj, self.aproj = nn.Linear(qf["hidden_size"], d), nn.Linear(qf["hidden_size"], d)
            self.face_head = nn.ModuleList(nn.Linear(c, fd) for c in stage_dims)
            self.face_fuse = nn.Conv2d(fd * len(stage_dims), fd, 1, bias=False)
            self.face_query = nn.Parameter(torch.randn(1, 4, fd))
            self.face_attn = nn.MultiheadAttention(fd, 4, batch_first=True)
            self.face_proj = nn.Sequential(nn.Linear(fd, 3 * fd), nn.GELU(), nn.Dropout(0.1), nn.Linear(3 * fd, d))
            self.a_in, self.v_in = nn.Linear(ew, hd), nn.Linear(ew, hd)
            self.experts = nn.ModuleList(nn.MultiheadAttention(hd, 8 if hd % 8 == 0 else 4, dropout=0.1,
                                                               batch_first=True) for _ in range(3))
            self.ffn = nn.ModuleList(nn.Sequential(nn.LayerNorm(hd), nn.Linear(hd, hd), nn.GELU(), nn.Dropout(0.1),
                                                   nn.Linear(hd, hd)) for _ in range(3))
            self.gate = nn.Sequential(nn.Linear(3 * hd, hd), nn.GELU(), nn.Dropout(0.1), nn.Linear(hd, 3))
            self.multi_proj = nn.Linear(hd, d)

    with torch.device(device):
        ad = Adapters().to(device)
    return clip, hubert, swin, llm, ad


def step_fn(models, batch, sh, opt, dtype, device):
    import torch
    import torch.nn.functional as F

    clip, hubert, swin, llm, ad = models
    b, t = batch["frames"].shape[:2]
    ac = torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bfloat16")
    with torch.no_grad(), ac:   # frozen encoders: no graph
        px = batch["frames"].flatten(0, 1)
        hs = clip(pixel_values=px.to(clip.dtype), output_hidden_states=True).hidden_states
        cls = {i: hs[i][:, 0].float().view(b, t, -1) for i in (*sh["clip_layers"], sh["frame_layer"])}
        ah = hubert(batch["audio"].flatten(0, 1).to(hubert.dtype), output_hidden_states=True).hidden_states
        c = batch["audio"].shape[1]
        am = {i: ah[i].float().mean(1).view(b, c, -1) for i in (*sh["hubert_layers"], *sh["main"])}
        # HF Swin reports stage outputs after patch merging; states 0..n-1 have the per-stage widths C*2^i the
        # FaceXFormer head reads (same FLOPs as the pre-merging maps).
        so = swin(px.to(swin.dtype), output_hidden_states=True).reshaped_hidden_states[:len(ad.face_head)]
        size = so[0].shape[-2:]
    with ac:
        maps = [F.interpolate(lin(m.float().permute(0, 2, 3, 1)).permute(0, 3, 1, 2), size=size, mode="bilinear")
                for lin, m in zip(ad.face_head, so)]
        face = ad.face_fuse(torch.cat(maps[::-1], 1)).mean((2, 3)).view(b, t, -1)
        fq, _ = ad.face_attn(ad.face_query.expand(b, -1, -1), face, face)
        face_tok = ad.face_proj(fq)
        vfeat = cls[sh["frame_layer"]] + ad.vpos.weight[:t]
        vt = ad.vproj(ad.vq(query_embeds=ad.vquery.expand(b, -1, -1), encoder_hidden_states=vfeat).last_hidden_state)
        afeat = torch.stack([am[i] for i in sh["main"]]).mean(0) + ad.apos.weight[:c]
        at = ad.aproj(ad.aq(query_embeds=ad.aquery.expand(b, -1, -1), encoder_hidden_states=afeat).last_hidden_state)
        fs = []
        for k, (att, ffn) in enumerate(zip(ad.experts, ad.ffn)):
            a_s, v_s = ad.a_in(am[sh["hubert_layers"][k]]), ad.v_in(cls[sh["clip_layers"][k]])
            r = att(a_s, v_s, v_s)[0] + a_s
            fs.append(r + ffn(r))
        g = torch.softmax(ad.gate(torch.cat([f.mean(1) for f in fs], -1)).float(), -1)
        fused = sum(g[:, k, None, None] * fs[k] for k in range(3))
        multi = ad.multi_proj(fused.mean(1))[:, None]
        emb = llm.get_input_embeddings()(batch["input_ids"]).clone()
        pos = 1
        for tok in (multi, at, face_tok, vt):  # prompt order: multi, audio, face, frame
            emb[:, pos:pos + tok.shape[1]] = tok.to(emb.dtype)
            pos += tok.shape[1]
        logits = llm(inputs_embeds=emb).logits.float()
        loss = F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=-100)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


def main(argv=None) -> None:
    args = parse_args(argv)
    from benchmarks.common import emit

    try:
        import peft  # noqa: F401
        have_peft = True
    except ImportError:
        have_peft = False
    if not have_peft and not args.allow_no_peft:
        emit("torch_p2e_phase3_step_time", None, "ms", "n/a",
             {"error": "peft is not installed: the PyTorch reference step needs peft (LoRA). Install it in the "
                       "GPU image (pip install peft), or pass --allow-no-peft to time the graph without LoRA."})
        return
    import torch

    if args.smoke:
        args.steps, args.warmup = 2, 1
    sh = SHAPES[args.preset]
    dtype = args.dtype or ("bfloat16" if args.preset == "nano_emox" else "float32")
    seq = args.seq or (1024 if args.preset == "nano_emox" else 320)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    models = build(sh, dtype, have_peft, device)
    trainable = [p for m in models for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=8e-6, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05,
                            fused=device.type == "cuda")
    g = torch.Generator().manual_seed(0)
    img = sh["clip"]["image_size"]
    vocab = models[3].config.vocab_size
    labels = torch.randint(0, vocab, (args.batch, seq), generator=g)
    labels[:, :seq // 2] = -100
    batch = {"frames": torch.randn(args.batch, sh["frames"], 3, img, img, generator=g),
             "audio": torch.randn(args.batch, sh["clips"], sh["samples"], generator=g),
             "input_ids": torch.randint(0, vocab, (args.batch, seq), generator=g), "labels": labels}
    batch = {k: v.to(device) for k, v in batch.items()}
    times = []
    for i in range(args.warmup + args.steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        loss = step_fn(models, batch, sh, opt, dtype, device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - t)
    times.sort()
    med = times[len(times) // 2]
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    cfg = dict(preset=args.preset, dtype=dtype, batch=args.batch, seq=seq, lora=have_peft,
               trainable_params=sum(p.numel() for p in trainable), loss=float(loss.detach()))
    emit("torch_p2e_phase3_step_time", round(med * 1e3, 3), "ms", name, cfg)
    emit("torch_p2e_phase3_samples_per_s", round(args.batch / med, 3), "samples/s", name, cfg)


if __name__ == "__main__":
    main()
