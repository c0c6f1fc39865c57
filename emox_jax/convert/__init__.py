"""Weight import/export between public PyTorch checkpoints and EmoX-JAX param trees."""
