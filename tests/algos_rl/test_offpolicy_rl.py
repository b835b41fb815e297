"""DQN, DDPG, TD3, SAC: resume equality, determinism, improvement on tiny bandits, config errors."""

from __future__ import annotations

import numpy as np
import pytest
import rl_test_envs
import torch
from rl_test_envs import single_thread  # noqa: F401 (autouse fixture)

from fastadapt.algos.rl.common import NStepAccumulator, RLEvalConfig
from fastadapt.algos.rl.ddpg import DDPG, DDPGConfig
from fastadapt.algos.rl.dqn import DQN, DQNConfig
from fastadapt.algos.rl.sac import SAC, SACConfig
from fastadapt.algos.rl.td3 import TD3, TD3Config
from fastadapt.core.errors import CheckpointError, ConfigError
from fastadapt.tasks.rl.gym_env import make_gym_factory

TINY = {"num_envs": 2, "steps_per_iter": 20, "batch_size": 8, "learning_starts": 20, "hidden": (16,)}


@pytest.mark.parametrize(
    "cls,cfg_cls,env_id,kw",
    [
        (DQN, DQNConfig, "CartPole-v1", {"target_update_interval": 3}),
        (DQN, DQNConfig, "CartPole-v1", {"target_update_interval": 3, "lr_final": 0.0, "lr_anneal_steps": 100}),
        (DQN, DQNConfig, "CartPole-v1", {"target_update_interval": 1, "tau": 0.05, "keep_best_train": True}),
        (DQN, DQNConfig, "CartPole-v1", {"target_update_interval": 3, "n_step": 3}),  # windows checkpointed
        (DQN, DQNConfig, "CartPole-v1", {"target_update_interval": 3, "select_every": 2, "select_episodes": 2}),
        (DQN, DQNConfig, "CartPole-v1", {"target_update_interval": 3, "ensemble_iterations": (2, 4)}),
        (DDPG, DDPGConfig, "Pendulum-v1", {}),
        (DDPG, DDPGConfig, "Pendulum-v1", {"noise": "ou"}),
        (TD3, TD3Config, "Pendulum-v1", {}),
        (SAC, SACConfig, "Pendulum-v1", {"policy_frequency": 2}),
    ],
)
def test_resume_and_determinism(cls, cfg_cls, env_id, kw) -> None:
    task = make_gym_factory(env_id)
    cfg = cfg_cls(**TINY, **kw)
    rl_test_envs.check_resume(lambda: cls(cfg, task, 5))


def test_dqn_lr_decays_linearly_to_lr_final() -> None:
    task = make_gym_factory("CartPole-v1")
    cfg = DQNConfig(**TINY, lr=1e-3, lr_final=1e-4, lr_anneal_steps=100)
    learner = DQN(cfg, task, 0)
    m = learner.train_step(1)  # 20 env steps; updates happen at env_steps = 20
    assert m["lr"] == pytest.approx(1e-3 + (1e-4 - 1e-3) * 0.2)
    assert learner.opt.param_groups[0]["lr"] == pytest.approx(m["lr"])
    for i in range(2, 8):
        m = learner.train_step(i)
    assert m["lr"] == pytest.approx(1e-4)  # clipped at lr_final after lr_anneal_steps
    const = DQN(DQNConfig(**TINY, lr=1e-3), task, 0).train_step(1)
    assert const["lr"] == pytest.approx(1e-3)


def test_dqn_improves_on_context_bandit() -> None:
    task = make_gym_factory("fastadapt-test/ContextBandit-v0")
    cfg = DQNConfig(num_envs=1, steps_per_iter=100, batch_size=32, learning_starts=100, hidden=(32,),
                    exploration_steps=300, gamma=0.0, target_update_interval=20, lr=3e-3)
    learner = DQN(cfg, task, 0)
    ev = RLEvalConfig(episodes=20)
    before = learner.evaluate(ev, 0)[0].mean
    for i in range(1, 6):
        m = learner.train_step(i)
    after = learner.evaluate(ev, 0)[0].mean
    assert after >= 7.5 and after > before + 1.0, (before, after)
    assert m["env_steps"] == 500


def test_dqn_keep_best_train_snapshots_best_training_window() -> None:
    """The evaluation network is the live network of the iteration with the highest full-window training
    return (ties -> later), and evaluation uses it even after the live network is ruined."""
    task = make_gym_factory("CartPole-v1")
    cfg = DQNConfig(num_envs=1, steps_per_iter=60, batch_size=8, learning_starts=20, hidden=(16,),
                    target_update_interval=1, tau=0.05, keep_best_train=True)
    learner = DQN(cfg, task, 0)
    best, best_state = -float("inf"), None
    for i in range(1, 12):
        m = learner.train_step(i)
        full = len(learner.stats.returns) == learner.stats.returns.maxlen
        if full and m["episode_return"] >= best:
            best = m["episode_return"]
            best_state = {k: v.clone() for k, v in learner.q.state_dict().items()}
        if full:
            assert m["best_train_return"] == best
    assert best_state is not None and learner.best_score == best
    for k, v in learner.q_best.state_dict().items():
        assert torch.equal(v, best_state[k]), k
    ev = RLEvalConfig(episodes=3)
    before = learner.evaluate(ev, 1)[0].mean
    with torch.no_grad():
        for p in learner.q.parameters():
            p.zero_()
    assert learner.evaluate(ev, 1)[0].mean == before
    # without the option the live network is evaluated
    assert "q_best" not in DQN(DQNConfig(**TINY), task, 0).modules()


@pytest.mark.parametrize("cls,cfg_cls", [(DDPG, DDPGConfig), (TD3, TD3Config), (SAC, SACConfig)])
def test_continuous_control_improves_on_bandit(cls, cfg_cls) -> None:
    """Return on the continuous contextual bandit (reward -(a - c)^2) moves towards the optimum 0."""
    task = make_gym_factory("fastadapt-test/ContinuousBandit-v0")
    cfg = cfg_cls(num_envs=1, steps_per_iter=100, batch_size=32, learning_starts=100, hidden=(32,),
                  gamma=0.0)
    learner = cls(cfg, task, 0)
    ev = RLEvalConfig(episodes=20)
    before = learner.evaluate(ev, 0)[0].mean
    for i in range(1, 7):
        learner.train_step(i)
    after = learner.evaluate(ev, 0)[0].mean
    assert after > -0.8 and after > before + 0.5, (before, after)


def test_action_space_mismatch_is_config_error() -> None:
    with pytest.raises(ConfigError, match="task.env_id"):
        DQN(DQNConfig(), make_gym_factory("Pendulum-v1"), 0)
    with pytest.raises(ConfigError, match="task.env_id"):
        SAC(SACConfig(), make_gym_factory("CartPole-v1"), 0)


def _naive_n_step(rewards, obs, term, n, gamma):
    """Reference: for every t of one episode of length T (obs has T + 1 states), the n-step transition."""
    T = len(rewards)
    out = []
    for t in range(T):
        k = min(n, T - t)
        ret = sum(gamma**i * rewards[t + i] for i in range(k))
        out.append((obs[t], ret, obs[t + k], float(term and t + k == T), gamma**k))
    return out


@pytest.mark.parametrize("n,end", [(1, "terminated"), (3, "terminated"), (3, "truncated"), (5, "truncated")])
@pytest.mark.parametrize("length", [2, 7])
def test_n_step_transitions_equal_a_naive_loop(n, end, length) -> None:
    rng = np.random.default_rng(length)
    gamma = 0.9
    obs = rng.normal(size=(length + 1, 2)).astype(np.float32)
    rew = rng.normal(size=length)
    acc = NStepAccumulator(n, gamma, 1)
    got = []
    for t in range(length):
        done = t == length - 1
        out = acc.push(torch.tensor(obs[t:t + 1]), torch.tensor([t]), rew[t:t + 1], torch.tensor(obs[t + 1:t + 2]),
                       np.array([done and end == "terminated"]), np.array([done]))
        if out is not None:
            for k in range(out["obs"].shape[0]):
                got.append((out["obs"][k].numpy(), float(out["rewards"][k]), out["next_obs"][k].numpy(),
                            float(out["terminated"][k]), float(out["discount"][k])))
    want = _naive_n_step(rew, obs, end == "terminated", n, gamma)
    assert len(got) == len(want) == length
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g[0], w[0])
        assert g[1] == pytest.approx(w[1], rel=1e-6)
        np.testing.assert_array_equal(g[2], w[2])
        assert g[3] == w[3] and g[4] == pytest.approx(w[4], rel=1e-6)
    assert acc.windows == [[]]  # flushed at the episode end


def test_n_step_accumulator_steps_envs_independently() -> None:
    """Two envs in one push: env 0 ends at step 2 (flush), env 1 keeps its window; windows never mix."""
    acc = NStepAccumulator(2, 0.5, 2)
    o = torch.zeros(2, 1)
    acc.push(o, torch.tensor([0, 1]), np.array([1.0, 10.0]), o + 1, np.array([False, False]), np.array([False, False]))
    out = acc.push(o + 1, torch.tensor([2, 3]), np.array([2.0, 20.0]), o + 2, np.array([True, False]),
                   np.array([True, False]))
    # env 0: flush of both steps (terminated); env 1: its full window emits step 0
    assert out["actions"].tolist() == [0, 2, 1]
    assert out["rewards"].tolist() == [2.0, 2.0, 20.0]
    assert out["terminated"].tolist() == [1.0, 1.0, 0.0]
    assert out["discount"].tolist() == [0.25, 0.5, 0.25]
    assert len(acc.windows[0]) == 0 and len(acc.windows[1]) == 1


def test_dqn_n_step_buffer_holds_discounts_and_checkpoint_mismatch_is_named() -> None:
    task = make_gym_factory("CartPole-v1")
    learner = DQN(DQNConfig(**TINY, n_step=3), task, 0)
    learner.train_step(1)
    b = learner.buffer.sample(16, torch.Generator().manual_seed(0))
    # CartPole pays 1 per step: an n-step return with discount gamma^k has sum_{i<k} gamma^i = (1 - d) / (1 - g)
    g = learner.cfg.gamma
    assert torch.allclose(b["rewards"], (1 - b["discount"]) / (1 - g), rtol=1e-5)
    assert all(any(abs(d - g**k) < 1e-6 for k in (1, 2, 3)) for d in b["discount"].tolist())
    one_step = DQN(DQNConfig(**TINY), task, 0)
    with pytest.raises(CheckpointError, match="discount"):
        learner.buffer.load_state_dict(one_step.buffer.state_dict())


def test_dqn_validation_selection_keeps_best_checked_network_and_counts_its_steps() -> None:
    task = make_gym_factory("CartPole-v1")
    kw = {**TINY, "target_update_interval": 3}
    plain = DQN(DQNConfig(**kw), task, 0)
    sel = DQN(DQNConfig(**kw, select_every=2, select_start=2, select_episodes=3), task, 0)
    best, best_state, val_steps = float("-inf"), None, 0
    for it in range(1, 8):
        mp, ms = plain.train_step(it), sel.train_step(it)
        # selection never changes training
        assert {k: v for k, v in ms.items() if k in mp} == mp
        if it in (2, 4, 6):
            lengths: list[int] = []
            rets = rl_test_envs_eval(sel, lengths)
            assert ms["validation_return"] == pytest.approx(sum(rets) / 3)
            val_steps += sum(lengths)
            if ms["validation_return"] >= best:
                best, best_state = ms["validation_return"], {k: v.clone() for k, v in sel.q.state_dict().items()}
        else:
            assert "validation_return" not in ms
        assert ms["best_validation_return"] == (best if best_state is not None else 0.0)  # 0 before a check
        assert ms["total_env_steps"] == ms["env_steps"] + val_steps
    for k, v in sel.q_best.state_dict().items():
        assert torch.equal(v, best_state[k])
    row = sel.evaluate(RLEvalConfig(episodes=2), 0)[0]
    assert row.extra["total_env_steps"] == sel.env_steps + val_steps and row.extra["validation_env_steps"] == val_steps
    with pytest.raises(ConfigError, match="select_every"):
        DQN(DQNConfig(**kw, select_every=2, keep_best_train=True), task, 0)


def rl_test_envs_eval(learner: DQN, lengths: list[int]) -> list[float]:
    """The validation episodes of ``learner``'s live network, replayed independently (same seed stream)."""
    from fastadapt.algos.rl.common import evaluate_policy

    return evaluate_policy(learner.task.make, lambda o: learner.q(o).argmax(-1), learner.obs_fn,
                           learner.cfg.select_episodes, learner.seed, "select-episodes", lengths)


def test_dqn_snapshot_ensemble_acts_on_mean_q_of_the_listed_iterations() -> None:
    task = make_gym_factory("CartPole-v1")
    kw = {**TINY, "target_update_interval": 3}
    plain = DQN(DQNConfig(**kw), task, 0)
    ens = DQN(DQNConfig(**kw, ensemble_iterations=(2, 4, 99)), task, 0)  # 99 is never reached
    obs = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    saved = {}
    for it in range(1, 6):
        assert ens.train_step(it) == plain.train_step(it)  # snapshots never change training
        if it == 1:
            assert torch.equal(ens.greedy(obs), ens.q(obs).argmax(-1))  # no snapshot yet: live network
        if it in (2, 4):
            saved[it] = ens.q(obs).detach()
    want = ((saved[2] + saved[4]) / 2).argmax(-1)
    assert torch.equal(ens.greedy(obs), want)
    row = ens.evaluate(RLEvalConfig(episodes=2), 0)[0]
    assert row.extra["ensemble_of_iterations"] == [2, 4]
    with pytest.raises(ConfigError, match="ensemble_iterations"):
        DQN(DQNConfig(**kw, ensemble_iterations=(3, 3)), task, 0)
    with pytest.raises(ConfigError, match="choose one"):
        DQN(DQNConfig(**kw, ensemble_iterations=(3,), select_every=2), task, 0)
