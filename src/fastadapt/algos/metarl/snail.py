"""SNAIL for meta-RL (Mishra et al. 2018, "A Simple Neural Attentive Meta-Learner", arXiv 1707.03141).

Same trial structure as RL² (a trial = several episodes of one task, the agent conditions on the whole
trial history ``[obs, prev action, prev reward, prev done]``), but the memory is a causal temporal-
convolution + attention network over the history (:class:`fastadapt.nn.attention.SNAILActorCritic`)
instead of a GRU. Trained with PPO + GAE (the paper used TRPO/PPO with GAE), batched over many trials: each
time step is one batched env step and one batched forward over the (zero-padded, causally masked) history.

The ``setting`` of evaluation rows follows RL² (``arms``/``pulls`` for bandits, ``episodes`` for MDPs).
Status: implemented and unit-tested (causality, resume, learning on 2-arm bandits); NOT benchmarked on the
paper's grid (see benchmarks/rl2/README.md).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import torch
from pydantic import Field

from fastadapt.algos.common import linear_schedule, load_optimizer_state, optimizer_state, ppo_clip_update
from fastadapt.core.config import Section
from fastadapt.core.errors import CheckpointError, ConfigError, EnvError, NumericError
from fastadapt.core.registry import register_algo
from fastadapt.core.seeding import get_state, np_rng, set_state, torch_gen
from fastadapt.core.types import Row
from fastadapt.nn.attention import SNAILActorCritic
from fastadapt.ops.returns import gae


class SNAILConfig(Section):
    """The ``algo:`` section of SNAIL (PPO over trials)."""

    trials_per_iter: int = Field(2048, ge=2)
    episodes_per_trial: int | None = Field(None, ge=1, description="env resets per trial (default as RL²)")
    embed: int = Field(32, ge=1)
    filters: int = Field(32, ge=1)
    key_size: int = Field(32, ge=1)
    value_size: int = Field(32, ge=1)
    lr: float = Field(1e-3, gt=0)
    lr_final: float = Field(1e-4, gt=0)
    ent_coef: float = Field(0.01, ge=0)
    ent_coef_final: float = Field(0.0, ge=0)
    anneal_iterations: int = Field(150, ge=1)
    gamma: float = Field(1.0, gt=0, le=1)
    gae_lambda: float = Field(0.5, ge=0, le=1)
    clip: float = Field(0.2, gt=0)
    epochs: int = Field(4, ge=1)
    minibatches: int = Field(4, ge=1)
    vf_coef: float = Field(0.5, gt=0)
    max_grad_norm: float = Field(1.0, gt=0)


class SNAILEvalConfig(Section):
    """The ``eval:`` section: total reward per trial on held-out trials."""

    trials: int = Field(20000, ge=2)
    batch_trials: int = Field(5000, ge=1)
    greedy: bool = Field(False, description="act with argmax of the policy")


class SNAIL:
    """SNAIL learner; ``task`` offers ``sample(n, seed, split)`` and ``batched_env(num_tasks, num_envs)``."""

    key_metric = "reward_per_trial"

    def __init__(self, cfg: SNAILConfig, task: Any, seed: int) -> None:
        import gymnasium as gym

        if not hasattr(task, "sample") or not hasattr(task, "batched_env"):
            raise ConfigError("task: SNAIL needs a task distribution with sample() and batched_env()")
        self.cfg, self.task, self.seed = cfg, task, int(seed)
        self.episodes = int(cfg.episodes_per_trial or getattr(task, "episodes_per_task", None) or 1)
        self.env = task.batched_env(cfg.trials_per_iter, 1)
        self.horizon = int(self.env.max_episode_steps)
        self.trial_len = self.episodes * self.horizon
        space = self.env.observation_space
        if not isinstance(space, gym.spaces.Box) or not isinstance(self.env.action_space, gym.spaces.Discrete):
            raise ConfigError("task: SNAIL here needs a Box observation and Discrete action space")
        self.obs_dim = int(math.prod(space.shape))
        self.n_actions = int(self.env.action_space.n)
        self.model = SNAILActorCritic(
            self.obs_dim, self.n_actions, self.trial_len, embed=cfg.embed, filters=cfg.filters,
            key_size=cfg.key_size, value_size=cfg.value_size, generator=torch_gen(self.seed, "snail-init"),
        )
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, eps=1e-5)
        self.rng = np_rng(self.seed, "snail-tasks")
        self.gen = torch_gen(self.seed, "snail-actions")
        self.env_steps = 0
        self.iterations_done = 0

    @torch.no_grad()
    def rollout(
        self, env: Any, tasks: Sequence[Any], env_seed: int, gen: torch.Generator, greedy: bool = False
    ) -> dict[str, torch.Tensor]:
        """One trial per task, all at once. Returns ``x [B, T, in_dim]``, ``actions, log_probs, values,
        rewards [B, T]``. Step ``t`` runs the model over the history prefix ``x[:, :t+1]`` (causal)."""
        model = self.model
        env.set_tasks(tasks)
        b, big_t = len(tasks), self.trial_len
        x = torch.zeros(b, big_t, model.in_dim)
        acts = torch.zeros(b, big_t, dtype=torch.long)
        logps, rews = torch.zeros(b, big_t), torch.zeros(b, big_t)
        prev_a, prev_r, prev_d = torch.zeros(b, dtype=torch.long), torch.zeros(b), torch.zeros(b)
        first = torch.ones(b, dtype=torch.bool)
        k = 0
        for ep in range(self.episodes):
            obs = env.reset(seed=int(env_seed + ep))
            for t in range(self.horizon):
                x[:, k] = model.make_input(obs[:, 0].reshape(b, -1), prev_a, prev_r, prev_d, first)
                logits = model(x[:, : k + 1])[0][:, k]
                a = model.mode((logits,)) if greedy else model.sample((logits,), gen)
                obs, r, term, trunc, info = env.step(a.view(b, 1))
                done = (term | trunc)[:, 0]
                if bool(done.any()) != (t == self.horizon - 1) or (bool(done.any()) and not bool(done.all())):
                    raise EnvError(f"task: SNAIL needs fixed-length episodes of {self.horizon} steps")
                ep_done = done
                if isinstance(info, dict) and "episode_done" in info:
                    ep_done = torch.as_tensor(info["episode_done"])[:, 0].bool() | done
                acts[:, k], logps[:, k], rews[:, k] = a, model.log_prob((logits,), a), r[:, 0].float()
                prev_a, prev_r, prev_d = a, r[:, 0].float(), ep_done.float()
                first = torch.zeros(b, dtype=torch.bool)
                k += 1
        values = model(x)[1]
        return {"x": x, "actions": acts, "log_probs": logps, "rewards": rews, "values": values}

    def train_step(self, iteration: int) -> dict[str, float]:
        """One PPO iteration over ``trials_per_iter`` fresh trials."""
        cfg, it = self.cfg, self.iterations_done
        lr = linear_schedule(cfg.lr, cfg.lr_final, it, cfg.anneal_iterations)
        ent_coef = linear_schedule(cfg.ent_coef, cfg.ent_coef_final, it, cfg.anneal_iterations)
        for g in self.opt.param_groups:
            g["lr"] = lr
        tasks = self.task.sample(cfg.trials_per_iter, int(self.rng.integers(2**31 - 1)), "train")
        batch = self.rollout(self.env, tasks, int(self.rng.integers(2**31 - 1 - self.episodes)), self.gen)
        rewards, values = batch["rewards"], batch["values"]
        if not bool(torch.isfinite(rewards).all()):
            raise NumericError("reward", iteration)
        adv = gae(rewards, values, cfg.gamma, cfg.gae_lambda)
        ret = adv + values
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        x, actions = batch["x"], batch["actions"]

        def evaluate(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            logits, v = self.model(x[idx])
            return self.model.log_prob((logits,), actions[idx]), self.model.entropy((logits,)).mean(), v

        stats = ppo_clip_update(
            evaluate, batch["log_probs"], adv, ret, self.opt, self.model.parameters(), clip=cfg.clip,
            epochs=cfg.epochs, minibatches=cfg.minibatches, ent_coef=ent_coef, vf_coef=cfg.vf_coef,
            max_grad_norm=cfg.max_grad_norm, generator=self.gen, iteration=iteration,
        )
        self.env_steps += int(rewards.numel())
        self.iterations_done += 1
        out = {"env_steps": float(self.env_steps), "reward_per_trial": float(rewards.sum(1).mean()),
               **stats, "lr": float(lr), "ent_coef": float(ent_coef)}
        for key, val in out.items():
            if not math.isfinite(val):
                raise NumericError(key, iteration)
        return out

    @torch.no_grad()
    def evaluate(self, cfg: SNAILEvalConfig | None = None, seed: int = 0) -> list[Row]:
        """Total reward per trial on ``cfg.trials`` held-out tasks; one row ``method="snail"``."""
        cfg = cfg or SNAILEvalConfig()
        t0 = time.perf_counter()
        rng, gen = np_rng(int(seed), "snail-eval"), torch_gen(int(seed), "snail-eval-actions")
        totals, done, env = [], 0, None
        while done < cfg.trials:
            n = min(cfg.batch_trials, cfg.trials - done)
            if env is None or env.num_tasks != n:
                env = self.task.batched_env(n, 1)
            tasks = self.task.sample(n, int(rng.integers(2**31 - 1)), "test")
            out = self.rollout(env, tasks, int(rng.integers(2**31 - 1 - self.episodes)), gen, cfg.greedy)
            totals.append(out["rewards"].sum(1).double())
            done += n
        tot = torch.cat(totals)
        if hasattr(self.task, "arms") and hasattr(self.task, "pulls"):
            setting: dict[str, Any] = {"arms": int(self.task.arms), "pulls": int(self.task.pulls)}
        else:
            setting = {"episodes": int(getattr(self.task, "episodes", self.episodes))}
        return [Row("snail", setting, float(tot.mean()), float(tot.std() / math.sqrt(tot.numel())),
                    int(tot.numel()), {"greedy": bool(cfg.greedy), "wall_s": round(time.perf_counter() - t0, 3),
                                       "train_env_steps": int(self.env_steps)})]

    def state_dict(self) -> dict[str, Any]:
        """Weights, optimizer (string keys, cloned tensors), RNG states and counters."""
        return {
            "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            "optimizer": optimizer_state(self.opt),
            "rng_tasks": get_state(self.rng),
            "rng_actions": get_state(self.gen),
            "env_steps": int(self.env_steps),
            "iterations_done": int(self.iterations_done),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (CheckpointError naming the culprit otherwise)."""
        try:
            self.model.load_state_dict(state["model"])
            load_optimizer_state(self.opt, state["optimizer"])
            set_state(self.rng, state["rng_tasks"])
            set_state(self.gen, state["rng_actions"])
            self.env_steps = int(state["env_steps"])
            self.iterations_done = int(state["iterations_done"])
        except KeyError as e:
            raise CheckpointError(f"SNAIL checkpoint: missing key {e.args[0]!r}") from None
        except (RuntimeError, ValueError, TypeError) as e:
            raise CheckpointError(f"SNAIL checkpoint: incompatible state ({str(e).splitlines()[0]})") from None


@register_algo("snail", family="metarl", config=SNAILConfig, eval_config=SNAILEvalConfig)
def build_snail(cfg: SNAILConfig, task: object, seed: int) -> SNAIL:
    """SNAIL (Mishra et al. 2018): TC + causal attention policy over the trial history, trained with PPO."""
    return SNAIL(cfg, task, seed)


__all__ = ["SNAIL", "SNAILConfig", "SNAILEvalConfig", "build_snail"]
