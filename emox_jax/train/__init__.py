"""Training: optimizer (``optim``), sharded train state and step (``lm_step``), Orbax checkpoints
(``checkpoint``), host-side metric logging (``metrics``) and the packed text data of the LM job (``lm_data``)."""
