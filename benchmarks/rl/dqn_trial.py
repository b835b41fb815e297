"""DQN development trial (session 3): one config, several seeds, in-process.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/rl/dqn_trial.py BUDGET '{json DQNConfig}' SEED [SEED ...]

Per seed prints the 20-episode deterministic evaluation (eval seed 0) of the live Q-network at 50/75/90/100%
of BUDGET env steps, how the failed final-evaluation episodes ended (|x| > 2.4 = cart off the track, else
pole angle), and with ``keep_best_train`` the evaluation of the best-training-return snapshot (the policy
that ``evaluate`` reports) together with the iteration it was taken at. Only the development of the shipped
config uses this; the headline numbers come from run_rl_bench.py through the CLI.
"""
import json
import sys
import time

import torch

torch.set_num_threads(1)
from fastadapt.algos.rl.common import evaluate_policy  # noqa: E402
from fastadapt.algos.rl.dqn import DQN, DQNConfig  # noqa: E402
from fastadapt.core.seeding import np_rng  # noqa: E402
from fastadapt.tasks.rl.gym_env import make_gym_factory  # noqa: E402


def live_eval(learner: DQN) -> float:
    rets = evaluate_policy(learner.task.make, lambda o: learner.q(o).argmax(-1), learner.obs_fn, 20, 0,
                           "eval-episodes")
    return sum(rets) / len(rets)


def failure_modes(learner: DQN, q: torch.nn.Module) -> str:
    rng = np_rng(0, "eval-episodes")
    env = learner.task.make()
    modes = {"x": 0, "angle": 0, "500": 0}
    for _ in range(20):
        o, _ = env.reset(seed=int(rng.integers(0, 2**31 - 1)))
        done, te = False, False
        while not done:
            with torch.no_grad():
                a = int(q(learner.obs_fn([o])).argmax(-1)[0])
            o, _, te, tr, _ = env.step(a)
            done = te or tr
        modes["x" if te and abs(o[0]) > 2.4 else "angle" if te else "500"] += 1
    env.close()
    return json.dumps(modes)


budget = int(sys.argv[1])
kw = json.loads(sys.argv[2])
seeds = [int(s) for s in sys.argv[3:]] or [0]
task = make_gym_factory("CartPole-v1")
print("==", json.dumps(kw), "seeds", seeds, flush=True)
finals = []
for seed in seeds:
    t0 = time.process_time()
    learner = DQN(DQNConfig(**kw), task, seed)
    checkpoints = [int(budget * f) for f in (0.5, 0.75, 0.9)]
    evals, it, best_it = [], 0, None
    while learner.env_steps < budget:
        it += 1
        prev = learner.best_score
        m = learner.train_step(it)
        if learner.best_score != prev:
            best_it = it
        if checkpoints and learner.env_steps >= checkpoints[0]:
            checkpoints.pop(0)
            evals.append((int(learner.env_steps), live_eval(learner)))
    final = live_eval(learner)
    line = (f"seed {seed}: live evals {evals} final@{int(learner.env_steps)} {final:.1f} "
            f"modes {failure_modes(learner, learner.q)} train_return {m.get('episode_return', float('nan')):.1f} "
            f"q_mean {m.get('q_mean', float('nan')):.1f}")
    if learner.q_best is not None:
        best = learner.evaluate(None, 0)[0].mean
        line += f" | best-train snapshot (iter {best_it}, train {learner.best_score:.1f}): {best:.1f}"
        finals.append(best)
    else:
        finals.append(final)
    print(line + f" cpu {time.process_time() - t0:.0f}s", flush=True)
print("finals (reported policy)", finals, flush=True)
