"""Meta-RL task families (bandits, tabular MDPs, 2D navigation, gridworld, CartPole, MuJoCo, Meta-World).

Importing this package registers every gymnasium id ``fastadapt/<Name>-v0``::

    import gymnasium as gym
    import fastadapt.tasks.rl  # noqa: F401  (registers the envs)
    env = gym.make("fastadapt/Navigation2D-v0")
    obs, info = env.reset(seed=0, options={"task": task})

(``gym.make("fastadapt.tasks.rl:fastadapt/Navigation2D-v0")`` works without the import.) MuJoCo and
Meta-World are imported only when such an env is made.

Actions (:mod:`fastadapt.tasks.rl.action_checks`): discrete envs reject anything but a valid integer index
(out of range, float, NaN, bool, wrong shape) and continuous envs clip finite out-of-bounds actions to the
action space and reject NaN/Inf and wrong shapes, with an ``EnvError`` naming the env and the action; a
rejected action leaves the env unchanged.
"""

from fastadapt.tasks.rl import (  # noqa: F401  (import for their gymnasium registrations)
    bandit,
    cartpole,
    gridworld,
    metaworld,
    mujoco,
    navigation2d,
    tabular_mdp,
)
