"""Quick in-process trial of one algorithm (development sweeps; the headline numbers use run_rl_bench.py).

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/rl/quick_trial.py MODULE CLASS ENV_ID BUDGET '{json config}' SEED

Prints metrics and a 20-episode deterministic evaluation (seed 0) every BUDGET/10 env steps.
"""
import time, sys, json, importlib, torch
torch.set_num_threads(1)
from fastadapt.tasks.rl.gym_env import make_gym_factory
algo, cls, env, budget = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
kw = json.loads(sys.argv[5]); seed = int(sys.argv[6]) if len(sys.argv) > 6 else 0
mod = importlib.import_module(f"fastadapt.algos.rl.{algo}")
task = make_gym_factory(env)
cfg = getattr(mod, cls + "Config")(**kw)
l = getattr(mod, cls)(cfg, task, seed)
t=time.time(); it=0; nxt = budget // 10
while l.env_steps < budget:
    it += 1
    m = l.train_step(it)
    if l.env_steps >= nxt:
        nxt += budget // 10
        print(it, {k: round(v, 3) for k, v in m.items()}, round(time.time()-t,1), l.evaluate(None, 0)[0].mean, flush=True)
print(l.evaluate(None, 0), round(time.time()-t,1))
