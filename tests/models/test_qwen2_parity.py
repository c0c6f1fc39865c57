"""Parity of our Qwen2 with transformers' Qwen2ForCausalLM (fp32): logits over 320 positions and greedy decoding."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from emox_jax.convert.qwen2 import load_hf  # noqa: E402
from emox_jax.infer.generate import GenerateConfig, generate, pad_prompts  # noqa: E402
from emox_jax.models.qwen2 import Qwen2ForCausalLM  # noqa: E402

SEQ = 320


def make_hf_qwen2(path, *, tied=True, theta=10_000.0, vocab=256, hidden=64, layers=2, heads=4, kv_heads=2,
                  inter=128, seed=0, std=0.08, save=True, **save_kw):
    """A tiny random HF Qwen2 with *every* tensor randomised (HF inits biases to 0 and norms to 1, which
    would leave the bias and norm conversion untested). Saved with ``save_pretrained`` when ``save``."""
    torch.manual_seed(seed)
    cfg = transformers.Qwen2Config(vocab_size=vocab, hidden_size=hidden, intermediate_size=inter,
                                   num_hidden_layers=layers, num_attention_heads=heads,
                                   num_key_value_heads=kv_heads, tie_word_embeddings=tied, rope_theta=theta,
                                   max_position_embeddings=1024, rms_norm_eps=1e-6)
    model = transformers.Qwen2ForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            else:
                p.normal_(0.0, std)
    if save:
        model.save_pretrained(path, **save_kw)
    return model


@pytest.fixture(scope="module", params=[(True, 10_000.0), (False, 1_000_000.0)], ids=["tied-theta1e4",
                                                                                      "untied-theta1e6"])
def hf_pair(request, tmp_path_factory):
    tied, theta = request.param
    path = tmp_path_factory.mktemp("qwen2")
    hf = make_hf_qwen2(path, tied=tied, theta=theta)
    config, params = load_hf(path)
    return hf, config, params, path


def test_config_read_from_hf(hf_pair):
    hf, config, _, _ = hf_pair
    assert config.tie_word_embeddings == hf.config.tie_word_embeddings
    assert config.rope_theta == hf.config.rope_parameters["rope_theta"]
    assert (config.num_heads, config.num_kv_heads, config.head_dim) == (4, 2, 16)


@pytest.mark.slow
def test_logits_match_transformers_over_320_positions(hf_pair):
    hf, config, params, _ = hf_pair
    ids = np.random.default_rng(1).integers(0, config.vocab_size, (2, SEQ))
    with jax.default_matmul_precision("highest"):
        ours = np.asarray(jax.jit(Qwen2ForCausalLM(config).apply)({"params": params}, jnp.asarray(ids)))
    with torch.no_grad():
        ref = hf(torch.as_tensor(ids)).logits.numpy()
    assert ours.dtype == np.float32 and ours.shape == ref.shape
    assert np.abs(ref).max() > 0.5  # random weights give non-trivial logits, so the bound below means something
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_greedy_generation_matches_transformers_generate(tmp_path):
    hf = make_hf_qwen2(tmp_path, tied=True, theta=10_000.0)
    config, params = load_hf(tmp_path)
    rng = np.random.default_rng(2)
    prompts = [rng.integers(0, config.vocab_size, n).tolist() for n in (7, 12, 3)]
    ids, lengths = pad_prompts(prompts)
    gen = GenerateConfig(max_new_tokens=32)  # greedy, no stop tokens
    with jax.default_matmul_precision("highest"):
        out = generate(params, jnp.asarray(ids), jnp.asarray(lengths), jax.random.key(0), model_config=config,
                       gen_config=gen)
    tokens = np.asarray(out.tokens)
    np.testing.assert_array_equal(np.asarray(out.lengths), [32, 32, 32])
    for row, prompt in enumerate(prompts):
        with torch.no_grad():
            ref = hf.generate(torch.as_tensor([prompt]), max_new_tokens=32, min_new_tokens=32, do_sample=False,
                              eos_token_id=None, pad_token_id=0)
        np.testing.assert_array_equal(tokens[row], ref[0, len(prompt):].numpy(), err_msg=f"prompt {row}")
