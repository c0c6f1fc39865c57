"""Generation on a tiny random model: padding invariance, embeds entry, stop tokens/sequences, determinism,
and agreement of the while-loop decode with step-by-step argmax of the full forward."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emox_jax.infer.generate import GenerateConfig, generate, generate_from_embeds, pad_prompts
from emox_jax.infer.sampling import SamplingConfig
from emox_jax.models.qwen2 import Qwen2Config, Qwen2ForCausalLM
from tests.models.test_qwen2 import random_params

CFG = Qwen2Config.tiny(vocab_size=61, hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=8,
                       intermediate_size=64)
N_NEW = 10


@pytest.fixture(scope="module")
def setup():
    params = random_params(CFG, seed=3, std=0.3)  # peaky logits: greedy choices are far from ties
    rng = np.random.default_rng(0)
    prompts = [rng.integers(1, CFG.vocab_size, n).tolist() for n in (5, 9, 2)]
    ids, lengths = pad_prompts(prompts)
    out = generate(params, ids, lengths, jax.random.key(0), model_config=CFG,
                   gen_config=GenerateConfig(max_new_tokens=N_NEW))
    return params, prompts, ids, lengths, out


def test_greedy_equals_argmax_of_full_forward_and_ignores_padding(setup):
    params, prompts, _, _, out = setup
    tokens = np.asarray(out.tokens)
    assert tokens.shape == (3, N_NEW) and np.asarray(out.lengths).tolist() == [N_NEW] * 3
    fwd = jax.jit(lambda p, x: Qwen2ForCausalLM(CFG).apply({"params": p}, x))
    for row, prompt in enumerate(prompts):
        seq = list(prompt)
        for _ in range(N_NEW):  # the slow way: whole causal forward each step, no cache (trailing filler
            # after the last real token cannot affect it, so one fixed shape serves every step)
            x = np.zeros((1, 20), np.int32)
            x[0, :len(seq)] = seq
            seq.append(int(np.argmax(np.asarray(fwd(params, jnp.asarray(x)))[0, len(seq) - 1])))
        assert tokens[row].tolist() == seq[len(prompt):], f"row {row}"


def test_generate_from_embeds_equals_generate_from_ids(setup):
    params, _, ids, lengths, out = setup
    emb = Qwen2ForCausalLM(CFG).apply({"params": params}, jnp.asarray(ids), method="embed")
    out_e = generate_from_embeds(params, emb, lengths, jax.random.key(0), model_config=CFG,
                                 gen_config=GenerateConfig(max_new_tokens=N_NEW))
    np.testing.assert_array_equal(out_e.tokens, out.tokens)


def test_stop_token_and_stop_sequence_end_rows_and_pad_the_rest(setup):
    params, _, ids, lengths, out = setup
    tokens = np.asarray(out.tokens)
    stop = int(tokens[1, 3])
    seq = (int(tokens[2, 4]), int(tokens[2, 5]))  # a two-token stop sequence taken from row 2's output
    gen = GenerateConfig(max_new_tokens=N_NEW, stop_token_ids=(stop,), stop_sequences=(seq,), pad_id=0)
    res = generate(params, ids, lengths, jax.random.key(0), model_config=CFG, gen_config=gen)
    for row in range(3):
        r = tokens[row].tolist()
        ends = [i + 1 for i in range(N_NEW) if r[i] == stop or (i > 0 and (r[i - 1], r[i]) == seq)]
        n = min(ends, default=N_NEW)  # the stop token / the sequence's last token is kept
        assert int(res.lengths[row]) == n, f"row {row}"
        np.testing.assert_array_equal(res.tokens[row, :n], tokens[row, :n])
        assert np.all(np.asarray(res.tokens[row, n:]) == 0)
    assert int(res.lengths[1]) <= 4 and int(res.lengths[2]) <= 6


def test_sampling_is_deterministic_given_the_rng(setup):
    params, _, ids, lengths, _ = setup
    gen = GenerateConfig(max_new_tokens=N_NEW, sampling=SamplingConfig(temperature=1.5, top_k=20, top_p=0.95))
    a = generate(params, ids, lengths, jax.random.key(7), model_config=CFG, gen_config=gen)
    b = generate(params, ids, lengths, jax.random.key(7), model_config=CFG, gen_config=gen)
    c = generate(params, ids, lengths, jax.random.key(8), model_config=CFG, gen_config=gen)
    np.testing.assert_array_equal(a.tokens, b.tokens)
    assert not np.array_equal(a.tokens, c.tokens)
