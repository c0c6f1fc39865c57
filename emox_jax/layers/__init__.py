"""Shared building blocks: attention, norms, dense helpers, scanned stacks (and, per model, MLP/LoRA/RoPE)."""
