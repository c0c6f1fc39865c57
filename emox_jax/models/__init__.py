"""Model definitions, one per file (Qwen2 decoder, encoders, adapters, Nano-EmoX assembly)."""
