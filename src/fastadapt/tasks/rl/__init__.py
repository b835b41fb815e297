"""Meta-RL task families (bandits, tabular MDPs, 2D navigation, gridworld, CartPole, MuJoCo, Meta-World)."""
