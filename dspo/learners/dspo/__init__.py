"""DSPO's own parts, in pipeline order: the safety discriminator (`safety_transformer`, `vclub`,
`discriminator`), the conditional trajectory diffusion (`diffusion/`: model, sampling, trainer)
and the BC distillation onto D^S ∪ D^G (`distill`)."""
