"""EmoX-JAX: a JAX/Flax (Linen) reimplementation of Nano-EmoX.

Subpackages: `layers` (attention, norms, MLP, LoRA, scan), `models` (one model per file), `sharding`,
`train`, `infer`, `eval`, `convert`. See README.md for the two commands that set up and run everything.
"""

__version__ = "0.1.0"
