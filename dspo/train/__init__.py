"""Training loops, one per learner, each readable top to bottom (CleanRL style)."""
