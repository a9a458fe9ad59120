"""Conditional trajectory diffusion split the Diffuser way: `model` (the temporal U-Net),
`sampling` (noise schedules, classifier-free guidance, the reverse process) and `trainer`
(segment dataset, normalizers, resumable training, checkpoints)."""
