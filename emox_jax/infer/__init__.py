"""Autoregressive decoding: explicit KV cache (`kv_cache`), samplers (`sampling`), prefill + while-loop decode (`generate`)."""
