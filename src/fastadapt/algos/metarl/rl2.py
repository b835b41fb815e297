"""RL²: fast reinforcement learning via slow reinforcement learning (Duan et al. 2016, arXiv 1611.02779).

A GRU agent (:class:`fastadapt.nn.recurrent.RecurrentActorCritic`) acts over *trials*: ``episodes`` episodes
of the same task played back to back, its hidden state carried across episode boundaries and reset between
trials. The "slow" outer learner is a policy-gradient method applied to the trial as one long episode; the
objective is the total reward per trial. Duan et al. used TRPO with GAE; here the outer learner is PPO
(Schulman et al. 2017) with GAE (Schulman et al. 2016), batched over many trials at once: each time step is
one batched env step and one batched GRU step for every trial.

Implementation details that matter for getting close to the Bayes-optimal line on bandits:

- a large batch of trials per iteration (thousands), trial-level minibatches, full-sequence recomputation of
  the GRU in the update (no truncated backprop through time);
- a separate value GRU by default, value targets normalised with running return statistics;
- advantages normalised per batch; learning rate and entropy bonus annealed linearly to their final values
  over ``anneal_iterations``; undiscounted returns (``gamma = 1``) since the objective is the trial total.

Trials: the env is built once as ``task.batched_env(trials_per_iter, 1)``; a trial is ``episodes_per_trial``
env episodes (default ``task.episodes_per_task`` or 1: the bandit and tabular-MDP envs already play a whole
trial as one env episode and flag the inner episode ends in ``info["episode_done"]``). The network input is
``[obs, one_hot(prev action), prev reward, prev done]``; where the env's observation already contains these
(bandit, tabular MDP) they simply appear twice, which is harmless.

Two optional, clearly non-standard training aids (off by default, not in Duan et al. 2016; both use task
parameters that only the meta-trainer knows, never the policy): ``critic_task_info`` gives the value GRU the
true task parameters (an asymmetric critic, Pinto et al. 2018), and ``learning_reward="expected"`` computes
returns from ``E[r | task, action]`` (the env's ``info["expected_reward"]``) instead of the sampled reward,
which leaves the policy gradient unbiased and lowers its variance. On k=5, n=10 bandits neither beat the
plain algorithm at the same budget (benchmarks/rl2/README.md).

Metrics of one ``train_step``: cumulative ``env_steps``, ``reward_per_trial`` (mean total reward per trial of
the batch just collected), ``entropy``, ``approx_kl``, ``clip_frac``, ``value_loss``, ``lr``, ``ent_coef``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field

from fastadapt.algos.common import linear_schedule, load_optimizer_state, optimizer_state, ppo_clip_update
from fastadapt.core.config import Section
from fastadapt.core.errors import CheckpointError, ConfigError, EnvError, NumericError
from fastadapt.core.registry import register_algo
from fastadapt.core.seeding import get_state, np_rng, set_state, torch_gen
from fastadapt.core.types import Row
from fastadapt.nn.recurrent import RecurrentActorCritic


class RL2Config(Section):
    """The ``algo:`` section of RL² (PPO over trials). Defaults = the tuned k=5, n=10 bandit settings."""

    trials_per_iter: int = Field(2048, ge=2, description="trials (tasks) collected per iteration")
    episodes_per_trial: int | None = Field(
        None,
        ge=1,
        description="env episodes (resets) per trial; default: the task's `episodes_per_task`, else 1 (bandit "
        "and tabular-MDP envs play a whole trial as one env episode)",
    )
    hidden: int = Field(64, ge=1, description="GRU hidden units")
    shared: bool = Field(False, description="one GRU for policy and value (default: separate GRUs)")
    lr: float = Field(3e-3, gt=0)
    lr_final: float = Field(1e-4, gt=0, description="learning rate reached after anneal_iterations")
    ent_coef: float = Field(0.01, ge=0)
    ent_coef_final: float = Field(0.0, ge=0)
    anneal_iterations: int = Field(150, ge=1, description="iterations over which lr and ent_coef anneal")
    gamma: float = Field(1.0, gt=0, le=1)
    gae_lambda: float = Field(0.5, ge=0, le=1)
    clip: float = Field(0.2, gt=0)
    epochs: int = Field(4, ge=1)
    minibatches: int = Field(4, ge=1)
    vf_coef: float = Field(0.5, gt=0)
    max_grad_norm: float = Field(1.0, gt=0)
    target_kl: float | None = Field(None, gt=0, description="stop the epochs early above this KL")
    normalize_returns: bool = Field(True, description="value head predicts normalised returns")
    critic_task_info: bool = Field(
        False,
        description="asymmetric critic: the value GRU also sees the true task parameters (privileged, "
        "training only; the policy never sees them). Not in Duan et al. 2016.",
    )
    learning_reward: Literal["observed", "expected"] = Field(
        "observed",
        description="'expected': returns use the env's info['expected_reward'] (E[r | task, action]) instead "
        "of the sampled reward (unbiased, lower variance; privileged, training only). The agent always "
        "observes the sampled reward. Not in Duan et al. 2016.",
    )
    adv_norm: Literal["batch", "per_step", "none"] = "batch"


class RL2EvalConfig(Section):
    """The ``eval:`` section: meta-test on held-out trials (total reward per trial)."""

    trials: int = Field(20000, ge=2, description="held-out test trials (tasks)")
    batch_trials: int = Field(5000, ge=1, description="trials run at once")
    greedy: bool = Field(False, description="act with argmax of the policy instead of sampling")


def _flat_obs_dim(space: Any) -> tuple[int, int | None]:
    """``(obs_dim, n_discrete)``: a Box is flattened, a Discrete(n) is one-hot encoded (n_discrete = n)."""
    import gymnasium as gym

    if isinstance(space, gym.spaces.Discrete):
        return int(space.n), int(space.n)
    if isinstance(space, gym.spaces.Box):
        return int(math.prod(space.shape)) if space.shape else 1, None
    raise ConfigError(f"task: RL² needs a Box or Discrete observation space, got {type(space).__name__}")


def _setting_of(task: Any, episodes: int) -> dict[str, Any]:
    """The ``setting`` of result rows: bandits ``{arms, pulls}``, MDPs ``{episodes, ...}``."""
    if hasattr(task, "arms") and hasattr(task, "pulls"):
        return {"arms": int(task.arms), "pulls": int(task.pulls)}
    setting: dict[str, Any] = {"episodes": int(getattr(task, "episodes", episodes))}
    for key in ("states", "actions", "horizon"):
        if hasattr(task, key) and isinstance(getattr(task, key), (int, np.integer)):
            setting[key] = int(getattr(task, key))
    return setting


def gae_trial(
    rewards: torch.Tensor, values: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE (Schulman et al. 2016) over whole trials that end (terminally) after the last step.

    ``rewards, values: [B, T]`` -> ``(advantages [B, T], returns [B, T])``. Episode boundaries inside a
    trial are not cut: in RL² the trial is the episode of the recurrent agent.
    """
    b, t = rewards.shape
    adv = torch.zeros_like(rewards)
    last = torch.zeros(b, dtype=rewards.dtype)
    next_v = torch.zeros(b, dtype=rewards.dtype)
    for i in range(t - 1, -1, -1):
        delta = rewards[:, i] + gamma * next_v - values[:, i]
        last = delta + gamma * lam * last
        adv[:, i] = last
        next_v = values[:, i]
    return adv, adv + values


class _RunningStats:
    """Running mean/variance of value targets (parallel Welford update), for value normalisation."""

    def __init__(self) -> None:
        self.count = 0.0
        self.mean = 0.0
        self.var = 1.0

    def update(self, x: torch.Tensor) -> None:
        n = float(x.numel())
        m = float(x.mean())
        v = float(x.var(unbiased=False))
        if self.count == 0:
            self.count, self.mean, self.var = n, m, v
            return
        tot = self.count + n
        delta = m - self.mean
        self.mean += delta * n / tot
        self.var = (self.var * self.count + v * n + delta**2 * self.count * n / tot) / tot
        self.count = tot

    @property
    def std(self) -> float:
        return math.sqrt(max(self.var, 1e-8))


class RL2:
    """RL² learner (PPO over trials) on a task distribution with a batched environment.

    ``task`` must offer ``sample(n, seed, split) -> tasks`` and ``batched_env(num_tasks, num_envs)`` returning
    a :class:`fastadapt.core.protocols.BatchedEnv` with fixed-length episodes (``max_episode_steps``).
    """

    key_metric = "reward_per_trial"

    def __init__(self, cfg: RL2Config, task: Any, seed: int) -> None:
        if not hasattr(task, "sample") or not hasattr(task, "batched_env"):
            raise ConfigError("task: RL² needs a task distribution with sample() and batched_env()")
        self.cfg = cfg
        self.task = task
        self.seed = int(seed)
        episodes = cfg.episodes_per_trial or getattr(task, "episodes_per_task", None) or 1
        self.episodes = int(episodes)  # env resets per trial
        self.env = task.batched_env(cfg.trials_per_iter, 1)
        self.horizon = int(self.env.max_episode_steps)
        self.trial_len = self.episodes * self.horizon
        self.obs_dim, self._obs_onehot = _flat_obs_dim(self.env.observation_space)
        import gymnasium as gym

        if not isinstance(self.env.action_space, gym.spaces.Discrete):
            raise ConfigError("task: RL² here supports Discrete action spaces only")
        self.n_actions = int(self.env.action_space.n)
        extra_dim = 0
        if cfg.critic_task_info:
            if cfg.shared:
                raise ConfigError("algo.critic_task_info needs algo.shared=false (a separate value GRU)")
            extra_dim = int(self._task_features_dim(task))
        self.model = RecurrentActorCritic(
            self.obs_dim,
            self.n_actions,
            cfg.hidden,
            shared=cfg.shared,
            critic_extra_dim=extra_dim,
            generator=torch_gen(self.seed, "rl2-init"),
        )
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, eps=1e-5)
        self.rng = np_rng(self.seed, "rl2-tasks")
        self.gen = torch_gen(self.seed, "rl2-actions")
        self.ret_stats = _RunningStats()
        self.env_steps = 0
        self.iterations_done = 0

    # ------------------------------------------------------------------ helpers
    def _task_features_dim(self, task: Any) -> int:
        return int(self._task_features(task.sample(1, 0, "train")).shape[1])

    def _obs(self, obs: torch.Tensor) -> torch.Tensor:
        """``[B, 1, *obs_shape]`` from the env -> ``[B, obs_dim]``."""
        obs = obs[:, 0]
        if self._obs_onehot is not None:
            return torch.nn.functional.one_hot(obs.long().reshape(-1), self._obs_onehot).float()
        return obs.reshape(obs.shape[0], -1).float()

    @staticmethod
    def _task_features(tasks: Sequence[Any]) -> torch.Tensor:
        """Privileged task parameters ``[B, F]`` for the asymmetric critic, read from the task objects:
        bandit arm ``means``; tabular-MDP ``P`` and ``R`` (flattened); a gridworld ``goal``."""
        rows = []
        for task in tasks:
            if hasattr(task, "means"):
                parts = [np.asarray(task.means, dtype=np.float32).ravel()]
            elif hasattr(task, "P") and hasattr(task, "R"):
                parts = [np.asarray(task.P, np.float32).ravel(), np.asarray(task.R, np.float32).ravel()]
            elif hasattr(task, "goal"):
                parts = [np.asarray(task.goal, dtype=np.float32).ravel()]
            else:
                raise ConfigError(
                    f"algo.critic_task_info: cannot read task parameters from {type(task).__name__}"
                )
            rows.append(np.concatenate(parts))
        return torch.from_numpy(np.stack(rows))

    def _check_finite(self, name: str, t: torch.Tensor) -> None:
        if not bool(torch.isfinite(t).all()):
            raise NumericError(name, self.iterations_done)

    @torch.no_grad()
    def rollout(
        self,
        env: Any,
        tasks: Sequence[Any],
        env_seed: int,
        gen: torch.Generator,
        greedy: bool = False,
        record: bool = True,
    ) -> dict[str, torch.Tensor]:
        """Play one trial per task, all trials at once (one batched env step + one batched GRU step per
        time step); the GRU state carries across the episodes of a trial and starts from zeros.

        Returns ``rewards [B, T]`` and, if ``record``, ``x [B, T, in_dim]`` (network inputs), ``actions,
        log_probs, values, dones [B, T]`` (dones = 1 at the last step of each episode), ``expected [B, T]``
        (the env's ``info["expected_reward"]`` if it reports it) and ``task_features [B, F]`` (if the
        critic uses them), with ``T = episodes * horizon``.
        """
        model = self.model
        env.set_tasks(tasks)
        b = len(tasks)
        h = torch.zeros(b, model.hidden)
        prev_a = torch.zeros(b, dtype=torch.long)
        prev_r = torch.zeros(b)
        prev_d = torch.zeros(b)
        first = torch.ones(b, dtype=torch.bool)
        xs, acts, logps, rews, dones, expected = [], [], [], [], [], []
        for ep in range(self.episodes):
            obs = env.reset(seed=int(env_seed + ep))
            for t in range(self.horizon):
                x = model.make_input(self._obs(obs), prev_a, prev_r, prev_d, first)
                logits, h = model.policy_step(x, h)
                a = model.mode((logits,)) if greedy else model.sample((logits,), gen)
                obs, r, term, trunc, info = env.step(a.view(b, 1))
                r = r[:, 0].float()
                done = (term | trunc)[:, 0]
                ep_done = done
                if isinstance(info, dict) and "episode_done" in info:  # episodes inside one env episode
                    ep_done = torch.as_tensor(info["episode_done"])[:, 0].bool() | done
                last = t == self.horizon - 1
                if bool(done.any()) and not (last and bool(done.all())):
                    raise EnvError(
                        f"task: RL² needs fixed-length episodes of {self.horizon} steps; an episode "
                        f"ended at step {t + 1}"
                    )
                if last and not bool(done.all()):
                    raise EnvError(f"task: episodes did not end after max_episode_steps={self.horizon}")
                if record:
                    xs.append(x)
                    acts.append(a)
                    logps.append(model.log_prob((logits,), a))
                    dones.append(ep_done.float())
                    if isinstance(info, dict) and "expected_reward" in info:
                        expected.append(torch.as_tensor(info["expected_reward"])[:, 0].float())
                rews.append(r)
                prev_a, prev_r, prev_d = a, r, ep_done.float()
                first = torch.zeros(b, dtype=torch.bool)
        out = {"rewards": torch.stack(rews, 1)}
        if record:
            out.update(
                x=torch.stack(xs, 1),
                actions=torch.stack(acts, 1),
                log_probs=torch.stack(logps, 1),
                dones=torch.stack(dones, 1),
            )
            if expected:
                out["expected"] = torch.stack(expected, 1)
            feats = self._task_features(tasks) if self.cfg.critic_task_info else None
            if feats is not None:
                out["task_features"] = feats
            out["values"] = model(out["x"], critic_extra=feats)[1]
        return out

    # ------------------------------------------------------------------ training
    def train_step(self, iteration: int) -> dict[str, float]:
        """One PPO iteration: collect ``trials_per_iter`` trials, then ``epochs`` x ``minibatches`` updates."""
        cfg = self.cfg
        it = self.iterations_done
        lr = linear_schedule(cfg.lr, cfg.lr_final, it, cfg.anneal_iterations)
        ent_coef = linear_schedule(cfg.ent_coef, cfg.ent_coef_final, it, cfg.anneal_iterations)
        for g in self.opt.param_groups:
            g["lr"] = lr
        task_seed = int(self.rng.integers(2**31 - 1))
        env_seed = int(self.rng.integers(2**31 - 1 - self.episodes))
        tasks = self.task.sample(cfg.trials_per_iter, task_seed, "train")
        batch = self.rollout(self.env, tasks, env_seed, self.gen)
        rewards = batch["rewards"]
        self._check_finite("reward", rewards)
        signal = rewards
        if cfg.learning_reward == "expected":
            if "expected" not in batch:
                raise ConfigError("algo.learning_reward=expected: the env reports no info['expected_reward']")
            signal = batch["expected"]
        b, t = rewards.shape

        # value predictions are normalised; unnormalise for GAE
        scale, shift = (self.ret_stats.std, self.ret_stats.mean) if cfg.normalize_returns else (1.0, 0.0)
        values = batch["values"] * scale + shift
        adv, ret = gae_trial(signal, values, cfg.gamma, cfg.gae_lambda)
        if cfg.normalize_returns:
            self.ret_stats.update(ret)
            scale, shift = self.ret_stats.std, self.ret_stats.mean
        ret_n = (ret - shift) / scale
        if cfg.adv_norm == "batch":
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        elif cfg.adv_norm == "per_step":
            adv = (adv - adv.mean(0, keepdim=True)) / (adv.std(0, keepdim=True) + 1e-8)

        x, actions, old_logp = batch["x"], batch["actions"], batch["log_probs"]
        feats = batch.get("task_features")
        def evaluate(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            logits, v, _ = self.model(x[idx], critic_extra=None if feats is None else feats[idx])
            out = (logits,)
            return self.model.log_prob(out, actions[idx]), self.model.entropy(out).mean(), v

        stats = ppo_clip_update(
            evaluate, old_logp, adv, ret_n, self.opt, self.model.parameters(), clip=cfg.clip, epochs=cfg.epochs,
            minibatches=cfg.minibatches, ent_coef=ent_coef, vf_coef=cfg.vf_coef, max_grad_norm=cfg.max_grad_norm,
            generator=self.gen, iteration=self.iterations_done, target_kl=cfg.target_kl,
        )

        self.env_steps += b * t
        self.iterations_done += 1
        metrics = {
            "env_steps": float(self.env_steps),
            "reward_per_trial": float(rewards.sum(1).mean()),
            **stats,
            "lr": float(lr),
            "ent_coef": float(ent_coef),
        }
        for k, v in metrics.items():
            if not math.isfinite(v):
                raise NumericError(k, iteration)
        return metrics

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def eval_returns(
        self, cfg: RL2EvalConfig | None = None, seed: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Play ``cfg.trials`` held-out trials (``split="test"``, tasks and actions drawn from ``seed``).

        Returns ``(totals [trials], per_episode [trials, episodes])`` (float64): the total reward of each
        trial and the summed reward of each env episode of it (``episodes`` = env resets per trial; 1 for the
        bandit and tabular-MDP envs, which play a whole trial as one env episode).
        """
        cfg = cfg or RL2EvalConfig()
        rng = np_rng(int(seed), "rl2-eval")
        gen = torch_gen(int(seed), "rl2-eval-actions")
        totals: list[torch.Tensor] = []
        per_ep: list[torch.Tensor] = []
        done = 0
        env = None
        while done < cfg.trials:
            n = min(cfg.batch_trials, cfg.trials - done)
            if env is None or env.num_tasks != n:
                env = self.task.batched_env(n, 1)
            tasks = self.task.sample(n, int(rng.integers(2**31 - 1)), "test")
            out = self.rollout(env, tasks, int(rng.integers(2**31 - 1 - self.episodes)), gen, cfg.greedy, False)
            totals.append(out["rewards"].sum(1).double())
            per_ep.append(out["rewards"].reshape(n, self.episodes, self.horizon).sum(-1).double())
            done += n
        return torch.cat(totals), torch.cat(per_ep)

    @torch.no_grad()
    def evaluate(self, cfg: RL2EvalConfig | None = None, seed: int = 0) -> list[Row]:
        """Meta-test: total reward per trial on ``cfg.trials`` held-out tasks (``split="test"``).

        The first row is ``method="rl2"`` with ``setting`` from the task (``arms``/``pulls`` or ``episodes``),
        ``mean`` total reward per trial, ``se`` = std / sqrt(n) (ddof 1), ``n`` = trials. For trials of
        several env episodes (``episodes > 1``, e.g. the gridworld: 4 resets per trial) one row per episode
        follows, ``setting={"episode": i}`` (i = 1..episodes), ``mean`` = return of the i-th episode of the
        trial, as VariBAD's eval reports them. Bandit and tabular-MDP trials are one env episode: one row.
        """
        cfg = cfg or RL2EvalConfig()
        start = time.perf_counter()
        tot, per_ep = self.eval_returns(cfg, seed)
        n_tot = int(tot.numel())

        def _se(x: torch.Tensor) -> float:
            return float(x.std(unbiased=True) / math.sqrt(n_tot)) if n_tot > 1 else float("nan")

        extra = {"greedy": bool(cfg.greedy), "train_env_steps": int(self.env_steps),
                 "train_iterations": int(self.iterations_done)}
        rows = [
            Row(
                method="rl2",
                setting=_setting_of(self.task, self.episodes),
                mean=float(tot.mean()),
                se=_se(tot),
                n=n_tot,
                extra={**extra, "wall_s": round(time.perf_counter() - start, 3)},
            )
        ]
        if self.episodes > 1:
            for i in range(self.episodes):
                col = per_ep[:, i]
                rows.append(Row("rl2", {"episode": i + 1}, float(col.mean()), _se(col), n_tot, dict(extra)))
        return rows

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Weights, optimizer, RNG states, counters and return statistics."""
        return {
            "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            "optimizer": optimizer_state(self.opt),
            "rng_tasks": get_state(self.rng),
            "rng_actions": get_state(self.gen),
            "env_steps": int(self.env_steps),
            "iterations_done": int(self.iterations_done),
            "ret_stats": {
                "count": float(self.ret_stats.count),
                "mean": float(self.ret_stats.mean),
                "var": float(self.ret_stats.var),
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output; CheckpointError naming the missing/bad key otherwise."""
        try:
            self.model.load_state_dict(state["model"])
            load_optimizer_state(self.opt, state["optimizer"])
            set_state(self.rng, state["rng_tasks"])
            set_state(self.gen, state["rng_actions"])
            self.env_steps = int(state["env_steps"])
            self.iterations_done = int(state["iterations_done"])
            rs = state["ret_stats"]
            self.ret_stats.count = float(rs["count"])
            self.ret_stats.mean = float(rs["mean"])
            self.ret_stats.var = float(rs["var"])
        except KeyError as e:
            raise CheckpointError(f"RL² checkpoint: missing key {e.args[0]!r}") from None
        except (RuntimeError, ValueError, TypeError) as e:
            raise CheckpointError(f"RL² checkpoint: incompatible state ({str(e).splitlines()[0]})") from None


@register_algo("rl2", family="metarl", config=RL2Config, eval_config=RL2EvalConfig)
def build_rl2(cfg: RL2Config, task: object, seed: int) -> RL2:
    """RL² (Duan et al. 2016): GRU agent over multi-episode trials, trained with PPO."""
    return RL2(cfg, task, seed)


__all__ = ["RL2", "RL2Config", "RL2EvalConfig", "build_rl2", "gae_trial"]
