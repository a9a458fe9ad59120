"""Neural network modules (policies, discriminators, diffusion backbones)."""
