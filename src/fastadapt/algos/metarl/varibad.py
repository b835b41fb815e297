"""VariBAD: variational Bayes-adaptive deep RL (Zintgraf et al. 2020, ICLR; arXiv 1910.08348).

A trajectory VAE (:class:`fastadapt.nn.trajectory_vae.TrajectoryVAE`) maintains a belief
``q(m | tau_{:t}) = N(mu_t, diag(exp(logvar_t)))`` over a latent task description ``m``: its GRU encoder
consumes every transition ``(a_t, r_{t+1}, s_{t+1})`` of a *trial* (all ``episodes`` episodes of one task
played back to back; the encoder state carries across episode boundaries and is reset between trials), and
its decoder reconstructs the rewards of the whole trial (past and future) from ``m``. The policy is a
feed-forward network acting on ``[s_t, mu_t, logvar_t]`` (paper sec. 4, "the policy conditions on the
posterior"), trained with PPO (Schulman et al. 2017) on the BAMDP return over the whole trial. As in the
paper's default, the RL loss does not backpropagate into the encoder (beliefs are stored detached) and the
VAE is trained separately on trajectories sampled from a buffer of recent trials (``buffer_trials``),
``vae_updates`` Adam steps of ``vae_batch_trials`` trajectories per iteration.

Defaults follow the official gridworld config (lmzintgraf/varibad ``config/gridworld/args_grid_varibad.py``):
latent 5, GRU 64, state/reward embeddings 32/8, no action input to the encoder, multi-head Bernoulli reward
decoder (one output per cell, layers 32x32), KL weight 1 with KL to the previous posterior, VAE lr 1e-3,
3 VAE updates of 25 trajectories per iteration, policy 32x32 tanh, gamma 0.95, GAE lambda 0.95, entropy 0.1.
Deviation: the official gridworld run uses A2C (16 processes x 60 steps per update, 1e8 frames budget); here
the policy learner is PPO over ``trials_per_iter`` parallel trials with normalised advantages (the shipped
config ``varibad-gridworld`` therefore uses a smaller entropy bonus, 0.01 -> 0.001, and lr 1e-3 -> 3e-4).

Metrics of one ``train_step``: cumulative ``env_steps``; ``return_per_trial`` (mean total reward of the
trials just collected) and ``return_ep{i}`` per episode; PPO's ``entropy``, ``approx_kl``, ``clip_frac``,
``value_loss``; the VAE's ``vae_loss``, ``vae_reward_nll``, ``vae_kl`` (per trajectory, summed over t);
``lr``, ``ent_coef``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from pydantic import Field, field_validator

from fastadapt.algos.common import linear_schedule, load_optimizer_state, optimizer_state, ppo_clip_update
from fastadapt.core.config import Section
from fastadapt.core.errors import CheckpointError, ConfigError, EnvError, NumericError
from fastadapt.core.registry import register_algo
from fastadapt.core.seeding import get_state, np_rng, set_state, torch_gen
from fastadapt.core.types import Row
from fastadapt.nn.mlp import MLP
from fastadapt.nn.policies import CategoricalMLPPolicy
from fastadapt.nn.trajectory_vae import TrajectoryVAE
from fastadapt.ops.returns import gae


def _wrap(v: Any) -> Any:
    return (v,) if isinstance(v, int) else v


class VariBADConfig(Section):
    """The ``algo:`` section of VariBAD (defaults: the paper's gridworld setup, PPO as the policy learner)."""

    trials_per_iter: int = Field(64, ge=2, description="trials (tasks) collected in parallel per iteration")
    episodes_per_trial: int | None = Field(
        None, ge=1, description="episodes per trial (BAMDP horizon); default: the task's episodes_per_task"
    )
    # policy (PPO)
    policy_hidden: tuple[int, ...] = Field((32, 32), description="policy and value MLP widths")
    activation: Literal["tanh", "relu", "elu", "gelu", "silu"] = "tanh"
    belief_input: Literal["meanvar", "mean", "sample"] = Field(
        "meanvar", description="what the policy sees of the belief: [mu, logvar] (paper default), mu, or m~q"
    )
    policy_time_input: bool = Field(
        False, description="also give the policy the step within the episode / horizon (not in the paper)"
    )
    lr: float = Field(7e-4, gt=0)
    lr_final: float | None = Field(None, gt=0, description="lr reached after anneal_iterations (None: constant)")
    ent_coef: float = Field(0.1, ge=0)
    ent_coef_final: float | None = Field(None, ge=0, description="entropy coefficient after anneal_iterations")
    anneal_iterations: int = Field(500, ge=1)
    gamma: float = Field(0.95, gt=0, le=1)
    gae_lambda: float = Field(0.95, ge=0, le=1)
    clip: float = Field(0.2, gt=0)
    epochs: int = Field(4, ge=1)
    minibatches: int = Field(4, ge=1)
    vf_coef: float = Field(0.5, gt=0)
    max_grad_norm: float = Field(0.5, gt=0)
    # VAE
    latent_dim: int = Field(5, ge=1)
    encoder_hidden: int = Field(64, ge=1)
    state_embed: int = Field(32, ge=1)
    reward_embed: int = Field(8, ge=1)
    action_embed: int = Field(0, ge=0, description="0: the encoder does not see actions (paper gridworld)")
    reward_decoder: tuple[int, ...] = (32, 32)
    reward_head: Literal["multihead", "conditional"] = "multihead"
    likelihood: Literal["bernoulli", "gaussian"] = "bernoulli"
    reward_threshold: float = Field(
        0.0, description="Bernoulli decoder target = 1[r > reward_threshold] (gridworld: the goal reward)"
    )
    decode_state: bool = False
    state_coef: float = Field(1.0, ge=0)
    kl_weight: float = Field(1.0, ge=0)
    vae_lr: float = Field(1e-3, gt=0)
    vae_updates: int = Field(3, ge=0, description="VAE Adam steps per iteration")
    vae_batch_trials: int = Field(25, ge=1, description="trajectories per VAE step")
    buffer_trials: int = Field(10000, ge=1, description="recent trials kept for VAE training")

    @field_validator("policy_hidden", "reward_decoder", mode="before")
    @classmethod
    def _wrap_tuple(cls, v: Any) -> Any:
        return _wrap(v)


class VariBADEvalConfig(Section):
    """The ``eval:`` section: return of every episode of a trial on test-split tasks."""

    trials: int = Field(2000, ge=2, description="test trials (tasks)")
    batch_trials: int = Field(1000, ge=1, description="trials run at once")
    greedy: bool = Field(False, description="argmax actions instead of sampling")


def _state_indexer(space: Any) -> tuple[int, Any] | None:
    """``(n_states, index_fn)`` for a discrete grid observation space (a Discrete, or an integer Box with
    small bounds, indexed in mixed radix), else ``None``. ``index_fn(obs [..., d]) -> [...]`` int64."""
    if isinstance(space, gym.spaces.Discrete):
        n = int(space.n)
        return n, lambda o: o.reshape(o.shape[:-1]).long() if o.dim() > 1 else o.long()
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        lo, hi = np.asarray(space.low, float), np.asarray(space.high, float)
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            return None
        if not (np.allclose(lo, np.round(lo)) and np.allclose(hi, np.round(hi))):
            return None
        sizes = (hi - lo + 1).astype(int)
        n = int(np.prod(sizes))
        if n > 100_000:
            return None
        radix = torch.tensor(np.concatenate([np.cumprod(sizes[::-1])[::-1][1:], [1]]), dtype=torch.long)
        low = torch.tensor(lo, dtype=torch.float32)

        def index(o: torch.Tensor) -> torch.Tensor:
            return ((o - low).round().long() * radix).sum(-1)

        return n, index
    return None


class VariBAD:
    """VariBAD learner on a task distribution with a batched env (discrete actions, fixed-length episodes).

    ``task`` must offer ``sample(n, seed, split)`` and ``batched_env(num_tasks, num_envs)``; the trial is
    ``episodes_per_trial`` env episodes of ``max_episode_steps`` steps each.
    """

    key_metric = "return_per_trial"

    def __init__(self, cfg: VariBADConfig, task: Any, seed: int) -> None:
        if not hasattr(task, "sample") or not hasattr(task, "batched_env"):
            raise ConfigError("task: VariBAD needs a task distribution with sample() and batched_env()")
        self.cfg = cfg
        self.task = task
        self.seed = int(seed)
        self.episodes = int(cfg.episodes_per_trial or getattr(task, "episodes_per_task", None) or 1)
        self.env = task.batched_env(cfg.trials_per_iter, 1)
        self.horizon = int(self.env.max_episode_steps)
        self.trial_len = self.episodes * self.horizon
        obs_space, act_space = self.env.observation_space, self.env.action_space
        if not isinstance(act_space, gym.spaces.Discrete):
            raise ConfigError("task: VariBAD here supports Discrete action spaces only")
        if not (isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) == 1):
            raise ConfigError("task: VariBAD here needs a flat Box observation space")
        self.obs_dim = int(obs_space.shape[0])
        self.n_actions = int(act_space.n)
        self._index = None
        n_states = None
        if cfg.reward_head == "multihead":
            found = _state_indexer(obs_space)
            if found is None:
                raise ConfigError(
                    "algo.reward_head=multihead needs a small discrete (integer-grid) observation space; "
                    "use reward_head=conditional"
                )
            n_states, self._index = found
        g = torch_gen(self.seed, "varibad-init")
        self.vae = TrajectoryVAE(
            self.obs_dim,
            self.n_actions,
            cfg.latent_dim,
            cfg.encoder_hidden,
            state_embed=cfg.state_embed,
            reward_embed=cfg.reward_embed,
            action_embed=cfg.action_embed,
            reward_decoder=cfg.reward_decoder,
            reward_head=cfg.reward_head,
            n_states=n_states,
            likelihood=cfg.likelihood,
            decode_state=cfg.decode_state,
            generator=g,
        )
        belief_dim = 2 * cfg.latent_dim if cfg.belief_input == "meanvar" else cfg.latent_dim
        self.policy_in = self.obs_dim + belief_dim + (1 if cfg.policy_time_input else 0)
        self.policy = CategoricalMLPPolicy(
            self.policy_in, self.n_actions, cfg.policy_hidden, cfg.activation, generator=g
        )
        self.value = MLP(self.policy_in, 1, cfg.policy_hidden, cfg.activation, 1.0, g)
        self.ac_params = list(self.policy.parameters()) + list(self.value.parameters())
        self.opt = torch.optim.Adam(self.ac_params, lr=cfg.lr, eps=1e-5)
        self.vae_opt = torch.optim.Adam(self.vae.parameters(), lr=cfg.vae_lr)
        self.rng = np_rng(self.seed, "varibad-tasks")
        self.gen = torch_gen(self.seed, "varibad-actions")
        self.vae_gen = torch_gen(self.seed, "varibad-vae")
        n, t, d = cfg.buffer_trials, self.trial_len, self.obs_dim
        self.buf = {
            "obs": torch.zeros(n, t, d),
            "actions": torch.zeros(n, t, dtype=torch.long),
            "rewards": torch.zeros(n, t),
            "next_obs": torch.zeros(n, t, d),
        }
        self.buf_ptr = 0
        self.buf_count = 0
        self.env_steps = 0
        self.iterations_done = 0

    # ------------------------------------------------------------------ acting
    def _policy_input(
        self, obs: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, step: int, gen: torch.Generator
    ) -> torch.Tensor:
        """``[obs, belief(, step / horizon)]``: ``obs [B, d], mu/logvar [B, L] -> [B, policy_in]``."""
        if self.cfg.belief_input == "meanvar":
            belief = torch.cat([mu, logvar], -1)
        elif self.cfg.belief_input == "mean":
            belief = mu
        else:
            belief = mu + torch.randn(mu.shape, generator=gen) * torch.exp(0.5 * logvar)
        parts = [obs, belief]
        if self.cfg.policy_time_input:
            parts.append(torch.full((obs.shape[0], 1), step / self.horizon))
        return torch.cat(parts, -1)

    @torch.no_grad()
    def rollout(
        self, env: Any, tasks: Sequence[Any], env_seed: int, gen: torch.Generator, greedy: bool = False,
        record: bool = True,
    ) -> dict[str, torch.Tensor]:
        """Play one trial per task, all at once; the belief is updated after every transition and carries
        across the episodes of the trial (reset to the prior between trials).

        Returns ``rewards [B, T]`` (``T = episodes * horizon``) and, if ``record``, ``obs, next_obs [B, T, d]``,
        ``actions, log_probs, values [B, T]``, ``pin [B, T, policy_in]`` (policy inputs, detached beliefs).
        """
        env.set_tasks(tasks)
        b = len(tasks)
        mu, logvar, h = self.vae.prior(b)
        rec: dict[str, list[torch.Tensor]] = {k: [] for k in ("obs", "next_obs", "actions", "logp", "pin")}
        rews: list[torch.Tensor] = []
        for ep in range(self.episodes):
            obs = env.reset(seed=int(env_seed + ep))[:, 0].float()
            for t in range(self.horizon):
                pin = self._policy_input(obs, mu, logvar, t, gen)
                out = self.policy(pin)
                a = self.policy.mode(out) if greedy else self.policy.sample(out, gen)
                nobs, r, term, trunc, _ = env.step(a.view(b, 1))
                nobs = nobs[:, 0].float()
                r = r[:, 0].float()
                done = (term | trunc)[:, 0]
                last = t == self.horizon - 1
                if bool(done.any()) != last or (last and not bool(done.all())):
                    raise EnvError(
                        f"task: VariBAD needs fixed-length episodes of {self.horizon} steps (step {t + 1})"
                    )
                if record:
                    rec["obs"].append(obs)
                    rec["next_obs"].append(nobs)
                    rec["actions"].append(a)
                    rec["logp"].append(self.policy.log_prob(out, a))
                    rec["pin"].append(pin)
                rews.append(r)
                mu, logvar, h = self.vae.encode_step(a, r, nobs, h)
                obs = nobs
        res = {"rewards": torch.stack(rews, 1)}
        if record:
            res.update({k if k != "logp" else "log_probs": torch.stack(v, 1) for k, v in rec.items()})
            res["values"] = self.value(res["pin"]).squeeze(-1)
        return res

    # ------------------------------------------------------------------ VAE
    def _reward_targets(self, rewards: torch.Tensor) -> torch.Tensor:
        if self.cfg.likelihood == "bernoulli":
            return (rewards > self.cfg.reward_threshold).float()
        return rewards

    def vae_terms(self, batch: dict[str, torch.Tensor], gen: torch.Generator) -> dict[str, torch.Tensor]:
        """ELBO terms of a batch of trajectories ``{obs, actions, rewards, next_obs}`` (``[B, T, ...]``)."""
        idx = self._index(batch["next_obs"]) if self._index is not None else None
        return self.vae.elbo_terms(
            batch["obs"], batch["actions"], batch["rewards"], batch["next_obs"], gen,
            reward_targets=self._reward_targets(batch["rewards"]), next_state_idx=idx,
        )

    def _add_to_buffer(self, batch: dict[str, torch.Tensor]) -> None:
        n = self.cfg.buffer_trials
        b = batch["rewards"].shape[0]
        keep = min(b, n)
        pos = (self.buf_ptr + torch.arange(keep)) % n
        for k in self.buf:
            self.buf[k][pos] = batch[k][b - keep :].to(self.buf[k].dtype)
        self.buf_ptr = int((self.buf_ptr + keep) % n)
        self.buf_count = int(min(n, self.buf_count + keep))

    def _vae_update(self, iteration: int) -> dict[str, float]:
        cfg = self.cfg
        losses, nlls, kls = [], [], []
        for _ in range(cfg.vae_updates):
            idx = torch.randint(0, self.buf_count, (cfg.vae_batch_trials,), generator=self.vae_gen)
            terms = self.vae_terms({k: v[idx] for k, v in self.buf.items()}, self.vae_gen)
            loss = self.vae.loss(terms, cfg.kl_weight, 1.0, cfg.state_coef)
            if not bool(torch.isfinite(loss)):
                raise NumericError("vae_loss", iteration)
            self.vae_opt.zero_grad(set_to_none=True)
            loss.backward()
            self.vae_opt.step()
            losses.append(float(loss.detach()))
            nlls.append(float(terms["reward_nll"].detach().mean()))
            kls.append(float(terms["kl"].detach().mean()))
        if not losses:
            return {"vae_loss": 0.0, "vae_reward_nll": 0.0, "vae_kl": 0.0}
        return {"vae_loss": float(np.mean(losses)), "vae_reward_nll": float(np.mean(nlls)),
                "vae_kl": float(np.mean(kls))}

    # ------------------------------------------------------------------ training
    def train_step(self, iteration: int) -> dict[str, float]:
        """Collect ``trials_per_iter`` trials, one PPO update of the policy, ``vae_updates`` VAE steps."""
        cfg = self.cfg
        it = self.iterations_done
        lr = linear_schedule(cfg.lr, cfg.lr_final if cfg.lr_final is not None else cfg.lr, it,
                             cfg.anneal_iterations)
        ent_coef = linear_schedule(
            cfg.ent_coef, cfg.ent_coef_final if cfg.ent_coef_final is not None else cfg.ent_coef, it,
            cfg.anneal_iterations,
        )
        for grp in self.opt.param_groups:
            grp["lr"] = lr
        tasks = self.task.sample(cfg.trials_per_iter, int(self.rng.integers(2**31 - 1)), "train")
        env_seed = int(self.rng.integers(2**31 - 1 - self.episodes))
        batch = self.rollout(self.env, tasks, env_seed, self.gen)
        rewards = batch["rewards"]
        if not bool(torch.isfinite(rewards).all()):
            raise NumericError("reward", iteration)
        self._add_to_buffer(batch)

        b, t = rewards.shape
        adv = gae(rewards, batch["values"], cfg.gamma, cfg.gae_lambda)
        ret = adv + batch["values"]
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        pin = batch["pin"].reshape(b * t, -1)
        actions = batch["actions"].reshape(b * t)

        def evaluate(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            out = self.policy(pin[idx])
            return (self.policy.log_prob(out, actions[idx]), self.policy.entropy(out).mean(),
                    self.value(pin[idx]).squeeze(-1))

        stats = ppo_clip_update(
            evaluate, batch["log_probs"].reshape(b * t), adv.reshape(b * t), ret.reshape(b * t), self.opt,
            self.ac_params, clip=cfg.clip, epochs=cfg.epochs, minibatches=cfg.minibatches,
            ent_coef=ent_coef, vf_coef=cfg.vf_coef, max_grad_norm=cfg.max_grad_norm, generator=self.gen,
            iteration=iteration,
        )
        vae_stats = self._vae_update(iteration)
        self.env_steps += b * t
        self.iterations_done += 1
        per_ep = rewards.reshape(b, self.episodes, self.horizon).sum(-1).mean(0)
        metrics = {
            "env_steps": float(self.env_steps),
            "return_per_trial": float(rewards.sum(1).mean()),
            **{f"return_ep{i + 1}": float(per_ep[i]) for i in range(self.episodes)},
            **stats,
            **vae_stats,
            "lr": float(lr),
            "ent_coef": float(ent_coef),
        }
        for k, v in metrics.items():
            if not math.isfinite(v):
                raise NumericError(k, iteration)
        return metrics

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def episode_returns(self, trials: int, seed: int, batch_trials: int = 1000, greedy: bool = False,
                        split: str = "test") -> torch.Tensor:
        """Returns ``[trials, episodes]`` (float64) of trials on ``split`` tasks drawn with ``seed``."""
        rng = np_rng(int(seed), "varibad-eval")
        gen = torch_gen(int(seed), "varibad-eval-actions")
        out: list[torch.Tensor] = []
        done = 0
        env = None
        while done < trials:
            n = min(batch_trials, trials - done)
            if env is None or env.num_tasks != n:
                env = self.task.batched_env(n, 1)
            tasks = self.task.sample(n, int(rng.integers(2**31 - 1)), split)
            res = self.rollout(env, tasks, int(rng.integers(2**31 - 1 - self.episodes)), gen, greedy, False)
            out.append(res["rewards"].reshape(n, self.episodes, self.horizon).sum(-1).double())
            done += n
        return torch.cat(out)

    def evaluate(self, cfg: VariBADEvalConfig | None = None, seed: int = 0) -> list[Row]:
        """Meta-test on ``cfg.trials`` test-split tasks: one row per episode ``{"episode": i}`` (return of the
        i-th episode of the trial, i = 1..episodes) and one row ``{"episodes": E}`` with the trial total;
        ``se`` = std / sqrt(n) (ddof 1)."""
        cfg = cfg or VariBADEvalConfig()
        start = time.perf_counter()
        ret = self.episode_returns(cfg.trials, seed, cfg.batch_trials, cfg.greedy)
        n = int(ret.shape[0])
        extra = {"greedy": bool(cfg.greedy), "train_env_steps": int(self.env_steps),
                 "train_iterations": int(self.iterations_done)}
        rows = []
        for i in range(self.episodes):
            col = ret[:, i]
            rows.append(Row("varibad", {"episode": i + 1}, float(col.mean()),
                            float(col.std() / math.sqrt(n)), n, dict(extra)))
        tot = ret.sum(1)
        extra["wall_s"] = round(time.perf_counter() - start, 3)
        rows.append(Row("varibad", {"episodes": self.episodes}, float(tot.mean()),
                        float(tot.std() / math.sqrt(n)), n, extra))
        return rows

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Weights, both optimizers, RNG states, the VAE buffer and counters."""
        return {
            "policy": {k: v.detach().clone() for k, v in self.policy.state_dict().items()},
            "value": {k: v.detach().clone() for k, v in self.value.state_dict().items()},
            "vae": {k: v.detach().clone() for k, v in self.vae.state_dict().items()},
            "optimizer": optimizer_state(self.opt),
            "vae_optimizer": optimizer_state(self.vae_opt),
            "rng_tasks": get_state(self.rng),
            "rng_actions": get_state(self.gen),
            "rng_vae": get_state(self.vae_gen),
            "buffer": {k: v[: self.buf_count].clone() for k, v in self.buf.items()},
            "buffer_ptr": int(self.buf_ptr),
            "buffer_count": int(self.buf_count),
            "env_steps": int(self.env_steps),
            "iterations_done": int(self.iterations_done),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output; CheckpointError naming the missing/bad key otherwise."""
        try:
            self.policy.load_state_dict(state["policy"])
            self.value.load_state_dict(state["value"])
            self.vae.load_state_dict(state["vae"])
            load_optimizer_state(self.opt, state["optimizer"])
            load_optimizer_state(self.vae_opt, state["vae_optimizer"])
            set_state(self.rng, state["rng_tasks"])
            set_state(self.gen, state["rng_actions"])
            set_state(self.vae_gen, state["rng_vae"])
            count = int(state["buffer_count"])
            for k, v in self.buf.items():
                src = torch.as_tensor(state["buffer"][k])
                if src.shape[0] != count or src.shape[1:] != v.shape[1:]:
                    raise ValueError(f"buffer {k}: shape {tuple(src.shape)} does not fit {tuple(v.shape)}")
                v.zero_()
                v[:count] = src.to(v.dtype)
            self.buf_count = count
            self.buf_ptr = int(state["buffer_ptr"])
            self.env_steps = int(state["env_steps"])
            self.iterations_done = int(state["iterations_done"])
        except KeyError as e:
            raise CheckpointError(f"VariBAD checkpoint: missing key {e.args[0]!r}") from None
        except (RuntimeError, ValueError, TypeError) as e:
            raise CheckpointError(f"VariBAD checkpoint: incompatible state ({str(e).splitlines()[0]})") from None


@register_algo("varibad", family="metarl", config=VariBADConfig, eval_config=VariBADEvalConfig)
def build_varibad(cfg: VariBADConfig, task: object, seed: int) -> VariBAD:
    """VariBAD (Zintgraf et al. 2020): trajectory-VAE belief + PPO policy on [state, belief]."""
    return VariBAD(cfg, task, seed)


__all__ = ["VariBAD", "VariBADConfig", "VariBADEvalConfig", "build_varibad"]
