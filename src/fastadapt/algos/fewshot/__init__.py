"""Few-shot supervised meta-learners (MAML family, Reptile, metric-based, learned optimisers, memory)."""
