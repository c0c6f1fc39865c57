"""Model FLOPs counted on the jaxpr (``emox_jax/train/flops.py``): exact counts on small programs, scans times
their length (where XLA's cost analysis counts a loop body once), autodiff's backward as built (no weight
gradient for what is not differentiated), the tiny decoder against its closed form, and MFU in the trainer."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emox_jax.train.flops import traced_flops

M, K, N = 8, 16, 32
MATMUL = 2 * M * K * N


def _xw():
    return jnp.ones((M, K)), jnp.ones((K, N))


def test_matmul_batched_matmul_and_jit_nesting():
    x, w = _xw()
    assert traced_flops(jnp.dot, x, w) == MATMUL
    assert traced_flops(jax.jit(lambda a, b: jnp.dot(a, b) @ jnp.ones((N, 4))), x, w) == MATMUL + 2 * M * N * 4
    a, b = jnp.ones((3, 5, M, K)), jnp.ones((3, 5, K, N))   # two batch dims
    assert traced_flops(jnp.matmul, a, b) == 15 * MATMUL


def test_scan_counts_body_times_length_and_cond_its_costliest_branch():
    x, w = _xw()

    def scanned(x, w):
        return jax.lax.scan(lambda c, _: (c @ jnp.eye(K), None), x, None, length=7)[0] @ w

    # (XLA's cost analysis of this program counts the loop body once: why flops.py exists.)
    assert traced_flops(scanned, x, w) == 7 * 2 * M * K * K + MATMUL

    def branchy(p, x, w):
        return jax.lax.cond(p, lambda: (x @ w) @ jnp.ones((N, N)), lambda: x @ w)

    assert traced_flops(branchy, True, x, w) == MATMUL + 2 * M * N * N


def test_backward_as_autodiff_builds_it():
    x, w = _xw()
    loss = lambda x, w: jnp.sum(jnp.tanh(x @ w))  # noqa: E731
    assert traced_flops(jax.grad(loss), x, w) == 2 * MATMUL                    # frozen w: forward + dx only
    assert traced_flops(jax.grad(loss, argnums=(0, 1)), x, w) == 3 * MATMUL   # + the weight gradient
    # A tower under stop_gradient is forward only.
    frozen_tower = lambda x, w: jnp.sum(jnp.tanh(jax.lax.stop_gradient(x @ w) @ jnp.ones((N, 2))))  # noqa: E731
    assert traced_flops(jax.grad(frozen_tower), x, w) == MATMUL + 2 * M * N * 2


def test_shard_map_body_counts_once_per_device():
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    mesh = jax.make_mesh((jax.device_count(),), ("x",))
    x = jax.device_put(jnp.ones((jax.device_count() * 2, K)), NamedSharding(mesh, P("x")))
    w = jax.device_put(jnp.ones((K, N)), NamedSharding(mesh, P()))
    f = jax.shard_map(lambda a, b: a @ b, mesh=mesh, in_specs=(P("x"), P()), out_specs=P("x"))
    assert traced_flops(f, x, w) == 2 * (jax.device_count() * 2) * K * N   # the global matmul


def test_countable_model_has_no_remat_and_xla_attention():
    from configs.p2e import get_config
    from emox_jax.train.flops import countable
    from emox_jax.train.p2e_job import build_job

    c = get_config("phase3,nano_emox")
    m = build_job(c).model
    assert m.llm.remat_policy != "none"   # the real preset rematerialises
    k = countable(m)
    assert k.llm.remat_policy == "none" and k.clip.remat_policy == "none" and k.face.swin.remat == "none"
    assert {k.llm.attention_impl, k.clip.attention_impl, k.hubert.attention_impl} == {"xla"}
    assert k.llm.lora_rank == m.llm.lora_rank and k.llm.num_layers == m.llm.num_layers


def test_convolution_matches_its_closed_form():
    x = jnp.ones((2, 3, 10, 12))        # NCHW
    k = jnp.ones((6, 3, 3, 3))          # OIHW, stride 1, SAME padding -> out 2 x 6 x 10 x 12
    got = traced_flops(lambda a, b: jax.lax.conv_general_dilated(a, b, (1, 1), "SAME"), x, k)
    assert got == 2 * (2 * 6 * 10 * 12) * (3 * 3 * 3)
    # Grouped (depthwise): each output sees in/groups channels.
    kg = jnp.ones((6, 1, 3, 3))
    got = traced_flops(lambda a, b: jax.lax.conv_general_dilated(a, b, (1, 1), "SAME", feature_group_count=3),
                       jnp.ones((2, 3, 10, 12)), kg)
    assert got == 2 * (2 * 6 * 10 * 12) * (1 * 3 * 3)


def test_tiny_decoder_forward_matches_the_closed_form():
    """Scanned Qwen2 decoder (LoRA on): 2 x matmul weights x tokens + full-length QK^T and AV per layer (einsum)."""
    from configs.nano_emox import preset
    from emox_jax.models.qwen2 import Qwen2ForCausalLM

    c = preset("tiny").llm
    b, t = 2, 24
    model = Qwen2ForCausalLM(c)
    ids = jnp.ones((b, t), jnp.int32)
    params = jax.eval_shape(lambda: model.init(jax.random.key(0), ids))
    got = traced_flops(lambda p: model.apply(p, ids), params)
    n, k, h, d, f = c.num_heads, c.num_kv_heads, c.head_dim, c.hidden_size, c.intermediate_size
    per_layer = d * n * h * 2 + d * k * h * 2 + 3 * d * f
    # LoRA on the 7 projections: A (in x r) and B (r x out) per projection.
    per_layer += c.lora_rank * ((d + n * h) * 2 + (d + k * h) * 2 + (d + f) * 3)
    matmul = c.num_layers * per_layer + c.vocab_size * d
    attention = c.num_layers * 2 * (2 * t * t * n * h)
    assert got == pytest.approx(2 * matmul * b * t + attention * b, rel=0, abs=0.5)


@pytest.mark.slow
def test_trainer_reports_mfu_with_a_known_peak(tmp_path):
    from emox_jax import sharding as shd
    from emox_jax.train import loop
    from tests.train.p2e_testlib import synthetic_batch, tiny_job

    # With remat the count traces a twin step built without it (loop.py), so this covers that path too.
    job = tiny_job("phase1a", steps=2, remat="dots_no_batch", peak_flops_per_device=1e12)
    res = loop.train_phase(job, tmp_path / "mfu", batch_source=lambda s: synthetic_batch(job, s),
                           mesh=shd.make_mesh((1, -1, 1)), log_fn=lambda s: None)
    mfu = [h["mfu"] for h in res.history]
    assert len(mfu) == 2 and all(np.isfinite(m) and m > 0 for m in mfu)
