"""Meta-reinforcement-learning algorithms (family "metarl"): RL², SNAIL, ..."""
