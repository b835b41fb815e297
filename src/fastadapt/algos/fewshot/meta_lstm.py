"""Meta-LSTM: an LSTM meta-learner as the optimizer of a few-shot learner (Ravi & Larochelle 2017,
"Optimization as a Model for Few-Shot Learning", ICLR).

The *learner* is a small Conv4 classifier whose parameters ``theta: [P]`` (flattened) are the *cell state*
of a coordinate-wise LSTM, the *meta-learner*. On a task's support set the learner takes ``inner_steps``
updates (paper, eq. 2):

    c_t = f_t * c_{t-1} + i_t * c~_t,    c_t = theta_t,   c~_t = -grad_t,
    i_t = sigmoid(W_I [h_t, theta_{t-1}, i_{t-1}] + b_I),   f_t = sigmoid(W_F [h_t, theta_{t-1}, f_{t-1}] + b_F)

so ``i_t`` is a learned per-coordinate learning rate and ``f_t`` a learned shrinkage. ``h_t`` is the output
of the first layer, an ordinary LSTM (``hidden`` units, 20 in the paper) whose input per coordinate is the
preprocessed gradient and the preprocessed loss (Andrychowicz et al. 2016, "Learning to learn by gradient
descent by gradient descent", sec. 3.2: ``x -> (log|x| / p, sign x)`` if ``|x| >= e^-p`` else
``(-1, e^p x)``, ``p = 10``). All coordinates share the meta-learner's weights (coordinate-wise), and the
initial cell state ``c_0 = theta_0`` (the learner's initialisation) is itself meta-learned. Gate biases
start with ``f ~ 1`` and ``i`` small (``forget_bias`` / ``input_bias``), so the untrained meta-learner is
close to plain SGD with rate ``sigmoid(input_bias)``.

Meta-gradient: the query cross-entropy of ``theta_T`` is back-propagated through the LSTM updates, with
the learner's gradients and losses treated as constants (the paper's "gradient independence" assumption
that drops second derivatives: each inner gradient is taken at a detached copy of ``theta_t``).

Batch norm (paper, sec. 3.4): the learner normalises with the statistics of the current batch during the
support updates. On the query set, meta-training uses the query's own batch statistics; at meta-test time
``bn_test="support"`` (the paper's choice, no information from other query examples) normalises the
query with the statistics of the support set under the adapted parameters ``theta_T``, while
``bn_test="batch"`` uses the query batch (transductive, MAML's convention).

Any number of ways: the classifier head is one shared row (weights ``[1, d]`` and bias ``[1]``) copied to
every class before the first update (as UnicornMAML, Ye & Chao 2022), so the coordinate-wise meta-learner
runs on ``P = body + way * (d + 1)`` coordinates and one model is tested 5-way and 20-way (paper: a
separate model per setting).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn

from fastadapt.algos.fewshot.common import (
    FewShotAlgoConfig,
    FewShotEvalConfig,
    FewShotLearner,
    episode_way,
    query_accuracy,
    require_classification_task,
    torch_threads,
)
from fastadapt.core.errors import NumericError
from fastadapt.core.registry import register_algo
from fastadapt.core.seeding import torch_gen
from fastadapt.core.types import FewShotEpisode


class MetaLSTMConfig(FewShotAlgoConfig):
    """``algo:`` section of ``meta-lstm``.

    ``channels`` width of the learner's Conv4 (32 in the paper); ``hidden`` units of the first LSTM layer
    (20); ``inner_steps`` learner updates on the support set during meta-training, ``eval_inner_steps``
    at test time (default the same); ``forget_bias`` / ``input_bias`` initial gate biases (the official
    code draws them from U(4, 5) and U(-5, -4)); ``init_scale`` half-width of the uniform initialisation
    of the meta-learner's weights (0.01); ``preprocess_p`` the ``p`` of the gradient/loss preprocessing;
    ``bn_test`` the query normalisation at meta-test (module docstring); ``grad_clip`` defaults to the
    official 0.25; ``threads`` torch threads during training/evaluation (0 = unchanged).
    """

    meta_batch: int = Field(4, ge=1)
    grad_clip: float = Field(0.25, ge=0)
    channels: int = Field(32, ge=2)
    hidden: int = Field(20, ge=1)
    inner_steps: int = Field(5, ge=1, le=100)
    eval_inner_steps: int | None = Field(None, ge=1, le=1000)
    forget_bias: float = 4.5
    input_bias: float = -4.5
    init_scale: float = Field(0.01, ge=0)
    preprocess_p: float = Field(10.0, gt=0)
    bn_test: Literal["support", "batch"] = "support"
    threads: int = Field(1, ge=0, le=256)


class MetaLSTMEvalConfig(FewShotEvalConfig):
    """``eval:`` section of ``meta-lstm``: the shared protocol plus optional overrides of
    ``inner_steps`` (``adapt_steps``) and of the query batch-norm mode (``bn_test``)."""

    adapt_steps: int | None = Field(None, ge=1, le=1000)
    bn_test: Literal["support", "batch"] | None = None


def preprocess(x: torch.Tensor, p: float = 10.0) -> torch.Tensor:
    """Andrychowicz et al. (2016) preprocessing of ``x: [...]`` -> ``[..., 2]``:
    ``(log|x| / p, sign x)`` where ``|x| >= e^-p``, else ``(-1, e^p x)``."""
    big = x.abs() >= math.exp(-p)
    a = torch.where(big, torch.log(x.abs().clamp_min(math.exp(-p))) / p, torch.full_like(x, -1.0))
    b = torch.where(big, torch.sign(x), x * math.exp(p))
    return torch.stack([a, b], -1)


class FunctionalConv4:
    """The learner: Conv4 (``blocks`` x [conv 3x3, batch norm, max-pool 2, ReLU]) + linear head, evaluated
    from a flat parameter vector so every task can hold its own ``theta: [P]``.

    ``layout`` lists ``(name, shape)`` in flattening order; the head is one shared row (``head.weight:
    [1, d]``, ``head.bias: [1]``) in the meta-parameters and ``way`` rows in a task's ``theta``
    (:meth:`expand_head`). ``x: [n, C, H, W] -> logits [n, way]``.
    """

    def __init__(self, in_shape: tuple[int, ...], channels: int, blocks: int = 4) -> None:
        c, h, w = in_shape
        self.blocks = blocks
        layout: list[tuple[str, tuple[int, ...]]] = []
        cin = c
        for i in range(blocks):
            layout += [(f"conv{i}.weight", (channels, cin, 3, 3)), (f"conv{i}.bias", (channels,)),
                       (f"bn{i}.weight", (channels,)), (f"bn{i}.bias", (channels,))]
            cin = channels
            h, w = h // 2, w // 2
        if h < 1 or w < 1:
            raise ValueError(f"image {in_shape} is too small for {blocks} poolings")
        self.feat_dim = channels * h * w
        self.body_layout = layout
        self.body_size = sum(math.prod(s) for _, s in layout)

    def init_body(self, gen: torch.Generator) -> torch.Tensor:
        """PyTorch's default initialisation of the body, flat ``[body_size]`` (BN weight 1, bias 0)."""
        parts = []
        fan_in = 1
        for name, shape in self.body_layout:
            if name.startswith("conv"):
                if name.endswith("weight"):
                    fan_in = math.prod(shape[1:])
                bound = 1.0 / math.sqrt(fan_in)  # kaiming_uniform(a=sqrt(5)) and the bias rule give this
                parts.append((torch.rand(shape, generator=gen) * 2 - 1) * bound)
            elif name.endswith("weight"):
                parts.append(torch.ones(shape))
            else:
                parts.append(torch.zeros(shape))
        return torch.cat([p.flatten() for p in parts])

    def size(self, way: int) -> int:
        return self.body_size + way * (self.feat_dim + 1)

    def expand_head(self, base: torch.Tensor, way: int) -> torch.Tensor:
        """Meta-parameters ``[body + d + 1]`` (one shared head row) -> a task's ``theta: [size(way)]``."""
        body, head = base[: self.body_size], base[self.body_size:]
        hw, hb = head[: self.feat_dim], head[self.feat_dim:]
        return torch.cat([body, hw.repeat(way), hb.expand(way)])

    def forward(
        self, theta: torch.Tensor, x: torch.Tensor, way: int,
        stats: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
        record: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> torch.Tensor:
        """Logits ``[n, way]`` of ``x: [n, C, H, W]`` under ``theta: [size(way)]``. Batch norm uses the
        batch's statistics, or ``stats[i] = (mean, var)`` per block when given; ``record`` (a list)
        receives the batch statistics used (detached)."""
        off = 0
        vals: dict[str, torch.Tensor] = {}
        for name, shape in self.body_layout:
            n = math.prod(shape)
            vals[name] = theta[off: off + n].view(shape)
            off += n
        d = self.feat_dim
        hw = theta[off: off + way * d].view(way, d)
        hb = theta[off + way * d: off + way * (d + 1)]
        f = torch.nn.functional
        for i in range(self.blocks):
            x = f.conv2d(x, vals[f"conv{i}.weight"], vals[f"conv{i}.bias"], padding=1)
            if stats is None:
                mu = x.mean((0, 2, 3))
                var = x.var((0, 2, 3), unbiased=False)
            else:
                mu, var = stats[i]
            if record is not None:
                record.append((mu.detach(), var.detach()))
            x = (x - mu[:, None, None]) * torch.rsqrt(var + 1e-5)[:, None, None]
            x = x * vals[f"bn{i}.weight"][:, None, None] + vals[f"bn{i}.bias"][:, None, None]
            x = torch.relu(f.max_pool2d(x, 2))
        return f.linear(x.flatten(1), hw, hb)


class MetaLSTMNet(nn.Module):
    """Meta-parameters: the first LSTM layer, the gate weights ``W_F``/``W_I`` with biases ``b_F``/``b_I``
    and the learner's initial parameters ``theta0: [body + d + 1]`` (the cell state ``c_0``)."""

    def __init__(self, cfg: MetaLSTMConfig, in_shape: tuple[int, ...], gen: torch.Generator) -> None:
        super().__init__()
        self.learner = FunctionalConv4(tuple(in_shape), cfg.channels)
        self.lstm = nn.LSTMCell(4, cfg.hidden)
        self.gate_f = nn.Linear(cfg.hidden + 2, 1)
        self.gate_i = nn.Linear(cfg.hidden + 2, 1)
        with torch.no_grad():
            for p in list(self.lstm.parameters()) + [self.gate_f.weight, self.gate_i.weight]:
                p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) * cfg.init_scale)
            self.gate_f.bias.fill_(cfg.forget_bias)
            self.gate_i.bias.fill_(cfg.input_bias)
        body = self.learner.init_body(gen)
        head = torch.zeros(self.learner.feat_dim + 1)
        self.theta0 = nn.Parameter(torch.cat([body, head]))


class MetaLSTM(FewShotLearner):
    """Ravi & Larochelle (2017) meta-learner LSTM on N-way K-shot classification (module docstring)."""

    eval_needs_grad = True
    eval_config_cls = MetaLSTMEvalConfig

    def __init__(self, cfg: MetaLSTMConfig, task: object, seed: int) -> None:
        t = require_classification_task(task, "meta-lstm")
        net = MetaLSTMNet(cfg, tuple(t.x_shape), torch_gen(seed, "meta-lstm-init"))
        super().__init__("meta-lstm", cfg, t, seed, net)
        self.cfg: MetaLSTMConfig = cfg
        self.net = net
        self._steps: int | None = None
        self._bn_test: str | None = None

    # -- the inner loop --------------------------------------------------------------------------------
    def adapt(self, sx: torch.Tensor, sy: torch.Tensor, way: int, steps: int, meta_graph: bool
              ) -> tuple[torch.Tensor, dict[str, float]]:
        """Adapted learner parameters ``theta_T: [tasks, P]`` for support sets ``sx: [tasks, n, C, H, W]``,
        ``sy: [tasks, n]`` after ``steps`` meta-learner updates. ``meta_graph`` keeps the autograd graph
        through the LSTM updates (meta-training); the learner's gradients are constants either way.
        Also returns the mean support loss before/after and the mean input gate (diagnostics)."""
        net, learner, p = self.net, self.net.learner, self.cfg.preprocess_p
        tasks = sx.shape[0]
        ctx = contextlib.nullcontext() if meta_graph else torch.no_grad()
        with ctx:
            theta = learner.expand_head(net.theta0, way).unsqueeze(0).expand(tasks, -1)  # [T, P]
        P = theta.shape[1]
        hc: tuple[torch.Tensor, torch.Tensor] | None = None
        f_prev = torch.zeros(tasks * P, 1)
        i_prev = torch.zeros(tasks * P, 1)
        first_loss = 0.0
        gate_i = 0.0
        for step in range(steps):
            grads, losses = [], []
            for b in range(tasks):
                th = theta[b].detach().requires_grad_(True)
                with torch.enable_grad():
                    loss = torch.nn.functional.cross_entropy(learner.forward(th, sx[b], way), sy[b])
                    (g,) = torch.autograd.grad(loss, th)
                grads.append(g)
                losses.append(loss.detach())
            G = torch.stack(grads)  # [T, P]
            L = torch.stack(losses)  # [T]
            if step == 0:
                first_loss = float(L.mean())
            with ctx:
                x1 = torch.cat([preprocess(G, p), preprocess(L, p)[:, None, :].expand(tasks, P, 2)], -1)
                hc = net.lstm(x1.reshape(tasks * P, 4), hc)
                th = theta.reshape(tasks * P, 1)
                f = torch.sigmoid(net.gate_f(torch.cat([hc[0], th, f_prev], 1)))
                i = torch.sigmoid(net.gate_i(torch.cat([hc[0], th, i_prev], 1)))
                theta = (f * th - i * G.reshape(tasks * P, 1)).view(tasks, P)
                f_prev, i_prev = f, i
                gate_i = float(i.detach().mean())
        return theta, {"support_loss_before": first_loss, "input_gate": gate_i}

    def query_logits(self, theta: torch.Tensor, ep: FewShotEpisode, way: int, bn: str) -> torch.Tensor:
        """``[tasks, n_query, way]`` logits of the adapted learners ``theta: [tasks, P]``."""
        learner = self.net.learner
        out = []
        for b in range(theta.shape[0]):
            stats = None
            if bn == "support":
                rec: list[tuple[torch.Tensor, torch.Tensor]] = []
                learner.forward(theta[b].detach(), ep.support_x[b], way, record=rec)
                stats = rec
            out.append(learner.forward(theta[b], ep.query_x[b], way, stats=stats))
        return torch.stack(out)

    # -- FewShotLearner hooks ------------------------------------------------------------------------
    def loss(self, episode: FewShotEpisode) -> tuple[torch.Tensor, dict[str, float]]:
        way = episode_way(episode)
        theta, diag = self.adapt(episode.support_x, episode.support_y, way, self.cfg.inner_steps, True)
        logits = self.query_logits(theta, episode, way, "batch")
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), episode.query_y.flatten())
        if not torch.isfinite(loss):
            raise NumericError("meta-lstm query loss", self.iterations)
        diag["accuracy"] = query_accuracy(logits.detach(), episode.query_y)
        return loss, diag

    def predict(self, episode: FewShotEpisode) -> torch.Tensor:
        way = episode_way(episode)
        steps = self._steps or self.cfg.eval_inner_steps or self.cfg.inner_steps
        theta, _ = self.adapt(episode.support_x, episode.support_y, way, steps, False)
        with torch.no_grad():
            logits = self.query_logits(theta, episode, way, self._bn_test or self.cfg.bn_test)
        return torch.log_softmax(logits, -1)

    @contextlib.contextmanager
    def eval_context(self, ecfg: FewShotEvalConfig, seed: int) -> Iterator[None]:
        del seed
        assert isinstance(ecfg, MetaLSTMEvalConfig)
        self._steps, self._bn_test = ecfg.adapt_steps, ecfg.bn_test
        try:
            with torch_threads(self.cfg.threads):
                yield
        finally:
            self._steps, self._bn_test = None, None

    def train_step(self, iteration: int) -> dict[str, float]:
        with torch_threads(self.cfg.threads):
            return super().train_step(iteration)

    def evaluate(self, cfg: Any, seed: int) -> list[Any]:
        rows = super().evaluate(cfg, seed)
        ecfg = self.coerce_eval_config(cfg)
        assert isinstance(ecfg, MetaLSTMEvalConfig)
        for r in rows:
            r.extra["adapt_steps"] = ecfg.adapt_steps or self.cfg.eval_inner_steps or self.cfg.inner_steps
            r.extra["bn_test"] = ecfg.bn_test or self.cfg.bn_test
        return rows


@register_algo("meta-lstm", family="fewshot", config=MetaLSTMConfig, eval_config=MetaLSTMEvalConfig)
def build_meta_lstm(cfg: MetaLSTMConfig, task: object, seed: int) -> MetaLSTM:
    """Meta-LSTM (Ravi & Larochelle 2017): a coordinate-wise LSTM that learns the learner's updates."""
    return MetaLSTM(cfg, task, seed)
