"""Data for EmoX-JAX: EmoSynth, real-dataset readers (TFDS, ArrayRecord), media decoding, six-task prompts,
Grain curriculum pipelines. The record schema every reader produces is in `schema.py`."""
