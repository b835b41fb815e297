"""Single-task RL: VPG, A2C, PPO, TRPO (on-policy), DQN, DDPG, TD3, SAC (off-policy), tabular Q-learning
and SARSA. Each trains on the ``gym`` task (any gymnasium env id) through ``fastadapt train``; shared
rollout / replay / evaluation code lives in :mod:`fastadapt.algos.rl.common`."""
