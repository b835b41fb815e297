"""Development sweep: one algorithm/config on several seeds in-process (the headline numbers use
run_rl_bench.py through the CLI; these sweeps only choose the shipped settings).

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/rl/sweep_trial.py MODULE CLASS ENV_ID BUDGET \
        '{json config}' SEED [SEED ...]

Per seed: prints a 20-episode deterministic evaluation (eval seed 0) at 50%, 75%, 90% and 100% of BUDGET
env steps, the final one last, plus the process CPU seconds used so far.
"""
import importlib
import json
import sys
import time

import torch

torch.set_num_threads(1)
from fastadapt.tasks.rl.gym_env import make_gym_factory  # noqa: E402

algo, cls, env, budget = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
kw = json.loads(sys.argv[5])
seeds = [int(s) for s in sys.argv[6:]] or [0]
mod = importlib.import_module(f"fastadapt.algos.rl.{algo}")
task = make_gym_factory(env)
print("==", json.dumps(kw), "seeds", seeds, flush=True)
finals = []
for seed in seeds:
    learner = getattr(mod, cls)(getattr(mod, cls + "Config")(**kw), task, seed)
    checkpoints = [int(budget * f) for f in (0.5, 0.75, 0.9)]
    evals, it = [], 0
    while learner.env_steps < budget:
        it += 1
        m = learner.train_step(it)
        if checkpoints and learner.env_steps >= checkpoints[0]:
            checkpoints.pop(0)
            evals.append((int(learner.env_steps), learner.evaluate(None, 0)[0].mean))
    final = learner.evaluate(None, 0)[0].mean
    finals.append(final)
    print(f"seed {seed}: evals {evals} final@{int(learner.env_steps)} {final:.1f} train_return "
          f"{m.get('episode_return', float('nan')):.1f} cpu {time.process_time():.0f}s", flush=True)
print("finals", finals, flush=True)
