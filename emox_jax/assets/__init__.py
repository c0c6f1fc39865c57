"""Text and data the package ships (the tiny LM corpus and its generator)."""
