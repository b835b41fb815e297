"""Task families: meta-RL task distributions and environments (``tasks.rl``) and few-shot datasets (``tasks.fewshot``)."""
