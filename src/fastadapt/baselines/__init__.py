"""Non-learned reference methods for the meta-RL benchmarks (RL² Tables 1 and 2, Duan et al. 2016).

- :mod:`fastadapt.baselines.bandits` — Bernoulli bandits: exact Bayes-optimal DP, Gittins index, UCB1,
  Thompson sampling, optimistic Thompson sampling, eps-greedy, greedy, random.
- :mod:`fastadapt.baselines.gittins` — Gittins indices of Beta-Bernoulli arms by calibration.
- :mod:`fastadapt.baselines.mdp` — random tabular MDPs: PSRL, OPSRL, UCRL2, BEB, eps-greedy, greedy,
  random and the value-iteration oracle.

All are simulated for every trial at once with numpy; ``fastadapt bench bandits`` / ``tabular-mdp`` run them.
"""
