"""The divergence locator: each likely-cause rule, injected into a real backend, names the first diverging
update step exactly and the right cause; anything no rule reproduces is "unexplained"."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from adaline_repro import backends
from adaline_repro.backends.autograd import AutogradBackend
from adaline_repro.backends.manual import ManualBackend
from adaline_repro.backends.module import ModuleBackend
from adaline_repro.comparison import first_divergence, likely_causes, sentence, summary
from adaline_repro.comparison.tolerance import close
from adaline_repro.core.params import CompareParams
from adaline_repro.core.results import read_steps
from adaline_repro.stages.train import shuffle_orders
from tests.conftest import pairs_with
from tests.unit.comparison.conftest import locate, only_cause


class NoZeroGrad(ModuleBackend):
    """module without optimizer.zero_grad(): gradients accumulate from the first step on."""

    def _backward(self, x: torch.Tensor, y: torch.Tensor) -> None:
        F.mse_loss(self.forward(x), y).backward()


class TripleLearningRate(ManualBackend):
    def __init__(self, n_features: int, lr: float, dtype: torch.dtype, device: torch.device) -> None:
        super().__init__(n_features, 3 * lr, dtype, device)


class SummedLoss(AutogradBackend):
    """autograd with the squared errors summed over the minibatch instead of averaged."""

    def gradients(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loss = torch.sum((self.forward(x) - y) ** 2)
        grad_w, grad_b = torch.autograd.grad(loss, [self.weight, self.bias])
        return grad_w.view(-1), grad_b[0]


class NonzeroBias(ManualBackend):
    def __init__(self, n_features: int, lr: float, dtype: torch.dtype, device: torch.device) -> None:
        super().__init__(n_features, lr, dtype, device)
        self.bias += 0.01


class HalfBiasGradient(ManualBackend):
    """A bug no rule describes: the bias alone moves half as far."""

    def gradients(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        grad_w, grad_b = super().gradients(x, y)
        return grad_w, grad_b / 2


class NeverApplied(ManualBackend):
    """The update is computed and thrown away (`self.weight - self.lr * grad_w` without the assignment)."""

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        grad_w, grad_b = self.gradients(x, y)
        _ = self.weight - self.lr * grad_w.view(-1, 1), self.bias - self.lr * grad_b


class SkipsThirdMinibatch(ManualBackend):
    """A stray `continue`: the third minibatch of the run makes no update."""

    calls = 0

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.calls += 1
        if self.calls != 3:
            super().step(x, y)


class GradientAscent(ManualBackend):
    """`+=` for `-=`: every update goes up the gradient."""

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        grad_w, grad_b = self.gradients(x, y)
        self.weight += self.lr * grad_w.view(-1, 1)
        self.bias += self.lr * grad_b


class CreepingBias(ManualBackend):
    """The bias creeps by 3e-8 an update, below the tolerance each time: the records part only once the
    creep adds up, at an update that itself matches."""

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        super().step(x, y)
        self.bias -= 3e-8


class ClippedGradient(ModuleBackend):
    """torch.nn.utils.clip_grad_norm_(..., max_norm=0.5) before each step: a factor that changes from update
    to update, which fits one update as "a learning rate" and predicts none of the next."""

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self._backward(x, y)
        torch.nn.utils.clip_grad_norm_(self.linear.parameters(), max_norm=0.5)
        self.optimizer.step()


class MissingTwo(ManualBackend):
    """The hand-derived gradient without the 2 of d/dw (y - yhat)^2: every update half the lecture's."""

    def gradients(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        grad_w, grad_b = super().gradients(x, y)
        return grad_w / 2, grad_b / 2


class BiasNeverUpdated(ManualBackend):
    """The bias line of the update left out: the weights move, the bias stays at 0."""

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        grad_w, _ = self.gradients(x, y)
        self.weight -= self.lr * grad_w.view(-1, 1)


class WithMomentum(ModuleBackend):
    """torch.optim.SGD(..., momentum=0.9) copied from a tutorial."""

    def __init__(self, n_features: int, lr: float, dtype: torch.dtype, device: torch.device) -> None:
        super().__init__(n_features, lr, dtype, device)
        self.optimizer = torch.optim.SGD(self.linear.parameters(), lr=lr, momentum=0.9)


class WithWeightDecay(ModuleBackend):
    """torch.optim.SGD(..., weight_decay=0.01): an L2 penalty the lecture does not have."""

    def __init__(self, n_features: int, lr: float, dtype: torch.dtype, device: torch.device) -> None:
        super().__init__(n_features, lr, dtype, device)
        self.optimizer = torch.optim.SGD(self.linear.parameters(), lr=lr, weight_decay=0.01)


def test_the_backends_as_written_never_diverge(tmp_path, monkeypatch, train_table, params, lecture):
    """float32 rounding between the three backends stays within the tolerances at every one of the 140 steps."""
    assert locate(tmp_path, monkeypatch, train_table, params, lecture) is None


def test_missing_zero_grad_is_gradient_accumulation_from_step_2(tmp_path, monkeypatch, train_table, params, lecture):
    """Step 1 starts from zeroed gradients, so the first diverging update is step 2, and it equals the sum of
    the fresh gradients of steps 1 and 2."""
    found = locate(tmp_path, monkeypatch, train_table, params, lecture, faulty={"module": NoZeroGrad})
    assert (found.step, found.epoch, found.batch) == (2, 1, 2)
    assert [f"{a}~{b}" for a, b in found.apart] == pairs_with("module", params.train.backends)
    (cause,) = found.causes
    assert (cause.rule, cause.backend, cause.pair) == ("missing_zero_grad", "module", ("manual", "module"))
    manual, module = found.backends["manual"], found.backends["module"]
    assert list(module.before) == pytest.approx(list(manual.before), abs=1e-7)
    first_update = manual.before  # the parameters after step 1, which started from zeros
    summed = [a + b for a, b in zip(first_update, manual.update, strict=True)]
    assert list(module.update) == pytest.approx(summed, abs=1e-7)


RATIO_BUGS = [
    # autograd's update over manual's, per parameter: manual's is 3 x
    ("manual", TripleLearningRate, "learning_rate", 1 / 3, "manual's learning rate is 3 x the configured one; "),
    # every minibatch has 10 rows, so the sum is 10 x the mean (the report says it could be a learning rate)
    ("autograd", SummedLoss, "sum_not_mean", 10, "autograd's loss sums over the minibatch instead of averaging (or "),
]


@pytest.mark.parametrize(("backend", "bug", "rule", "ratio", "evidence"), RATIO_BUGS)
def test_a_constant_update_ratio_from_the_first_step_names_its_rule(
    backend, bug, rule, ratio, evidence, tmp_path, monkeypatch, train_table, params, lecture
):
    found = locate(tmp_path, monkeypatch, train_table, params, lecture, faulty={backend: bug})
    assert (found.step, found.epoch, found.batch) == (1, 1, 1)
    (cause,) = found.causes
    assert (cause.rule, cause.backend) == (rule, backend)
    assert list(found.update_ratios["manual", "autograd"]) == pytest.approx([ratio] * 3, rel=1e-5)
    assert cause.evidence.startswith(evidence)


def test_another_shuffle_order_is_different_rows_at_the_first_diverging_step(
    tmp_path, monkeypatch, train_table, params, lecture
):
    """Epochs 1-3 shuffled alike and epoch 4 not: the first diverging step is epoch 4's first, step 22."""
    orders = shuffle_orders(len(train_table.y), params.train.epochs, params.train.seed)
    orders[3] = shuffle_orders(len(train_table.y), 1, params.train.seed + 1)[0]
    found = locate(tmp_path, monkeypatch, train_table, params, lecture, orders={"autograd": orders})
    assert (found.step, found.epoch, found.batch) == (22, 4, 1)
    (cause,) = found.causes
    assert (cause.rule, cause.backend) == ("shuffle_order", "autograd")
    position = {int(r): i for i, r in enumerate(train_table.rows)}
    assert [position[r] for r in found.backends["autograd"].rows] == orders[3][:10].tolist()
    assert found.backends["autograd"].rows != found.backends["manual"].rows


def test_a_different_initialisation_diverges_before_the_first_step(tmp_path, monkeypatch, train_table, params, lecture):
    found = locate(tmp_path, monkeypatch, train_table, params, lecture, faulty={"manual": NonzeroBias})
    assert found.step == 0
    assert found.label == "step 0 (before the first update)"
    (cause,) = found.causes
    assert (cause.rule, cause.backend) == ("initialisation", "manual")
    assert list(found.backends["manual"].after) == pytest.approx([0, 0, 0.01])


FACTOR_BUGS = [
    # per-parameter factors 1, 1, 0.5 that predict the rest of the epoch: the bias's update is half
    (HalfBiasGradient, "parameter_factor", "manual's update of bias 0.5 x the lecture's, the other parameters' right"),
    # two mechanisms, one signature: the report names both
    (MissingTwo, "learning_rate", "manual's learning rate is 0.5 x the configured one (or its gradient lost the 2"),
]


@pytest.mark.parametrize(("bug", "rule", "evidence"), FACTOR_BUGS)
def test_an_update_off_by_a_factor_names_the_factor_and_its_mechanism(
    bug, rule, evidence, tmp_path, monkeypatch, train_table, params, lecture
):
    found = locate(tmp_path, monkeypatch, train_table, params, lecture, faulty={"manual": bug})
    cause = only_cause(found, 1, rule, "manual")
    assert cause.evidence.startswith(evidence)


class InputDropout(ModuleBackend):
    """Dropout (p 0.2, seeded) on the inputs: a random mask no mechanism models."""

    def __init__(self, n_features: int, lr: float, dtype: torch.dtype, device: torch.device) -> None:
        super().__init__(n_features, lr, dtype, device)
        self.masks = torch.Generator().manual_seed(0)

    def _backward(self, x: torch.Tensor, y: torch.Tensor) -> None:
        kept = (torch.rand(x.shape, generator=self.masks) > 0.2).to(x.dtype) / 0.8
        self.optimizer.zero_grad()
        F.mse_loss(self.linear(x * kept).view(-1), y).backward()


@pytest.mark.parametrize("bug", [ClippedGradient, InputDropout])
def test_a_bug_no_rule_reproduces_is_unexplained_with_the_numbers(
    bug, tmp_path, monkeypatch, train_table, params, lecture
):
    """Clipping scales each update by its own factor: one update fits a learning rate, the next ones do not,
    so no rule claims it; a random mask fits nothing."""
    found = locate(tmp_path, monkeypatch, train_table, params, lecture, faulty={"module": bug})
    assert found.step == 1  # the first gradient already exceeds clipping's norm of 0.5; the first mask bites
    (cause,) = found.causes
    assert (cause.rule, cause.backend) == ("unexplained", "module")
    assert f"no rule's mechanism reproduces module at steps {found.step}-" in cause.evidence
    assert sentence(found).endswith("; no rule fits (the per-parameter evidence is below).")
    assert summary(found) == f"first divergence at {found.label}; likely cause: module: unexplained"


def test_with_two_backends_the_replay_says_which_one_is_wrong(tmp_path, monkeypatch, train_table, params, lecture):
    """No majority: the lecture's update, replayed, reproduces one record and not the other, and that one is
    blamed; without the training data the records alone cannot tell a learning-rate factor's side."""
    pair = ("manual", "module")
    lr = locate(tmp_path, monkeypatch, train_table, params, lecture, pair, faulty={"module": TripleLearningRate})
    assert [(c.rule, c.backend) for c in lr.causes] == [("learning_rate", "module")]
    assert likely_causes(lr) == "module: learning rate off by a factor"
    records = {name: read_steps(tmp_path / f"{name}.csv") for name in pair}
    alone = first_divergence(records, params.compare)
    assert [(c.rule, c.backend) for c in alone.causes] == [("unexplained", None)]
    summed = locate(tmp_path, monkeypatch, train_table, params, lecture, pair, faulty={"manual": SummedLoss})
    assert [(c.rule, c.backend) for c in summed.causes] == [("sum_not_mean", "manual")]
    accumulated = locate(tmp_path, monkeypatch, train_table, params, lecture, pair, faulty={"manual": NoZeroGrad})
    assert [(c.rule, c.backend, accumulated.step) for c in accumulated.causes] == [("missing_zero_grad", "manual", 2)]


def test_looser_tolerances_move_the_first_divergence_later_or_away(tmp_path, monkeypatch, train_table, params, lecture):
    """The locator uses the compare tolerances: a learning rate off by 0.1 % parts at step 1 under the
    defaults and nowhere when the tolerance is wider than the whole effect."""

    class SlightlyFaster(ManualBackend):
        def __init__(self, n_features: int, lr: float, dtype: torch.dtype, device: torch.device) -> None:
            super().__init__(n_features, 1.001 * lr, dtype, device)

    found = locate(tmp_path, monkeypatch, train_table, params, lecture, faulty={"manual": SlightlyFaster})
    assert found.step == 1
    assert found.causes[0].rule == "learning_rate"
    records = {name: read_steps(tmp_path / f"{name}.csv") for name in backends.BACKENDS}
    assert first_divergence(records, CompareParams(atol=1e-2, rtol=0.0)) is None


@pytest.mark.parametrize("bug", [NeverApplied, SkipsThirdMinibatch])
def test_an_update_not_applied_is_named_and_never_crashes(bug, tmp_path, monkeypatch, train_table, params, lecture):
    """A zero update fits a zero factor: it is its own rule, not a learning rate (whose inverse crashed)."""
    found = locate(tmp_path, monkeypatch, train_table, params, lecture, faulty={"manual": bug})
    assert found.step == (1 if bug is NeverApplied else 3)
    (cause,) = found.causes
    assert (cause.rule, cause.backend) == ("no_update", "manual")
    assert found.backends["manual"].update == (0.0, 0.0, 0.0)


def test_an_update_with_the_wrong_sign_is_named(tmp_path, monkeypatch, train_table, params, lecture):
    found = locate(tmp_path, monkeypatch, train_table, params, lecture, faulty={"manual": GradientAscent})
    only_cause(found, 1, "sign", "manual")
    assert list(found.update_ratios["manual", "autograd"]) == pytest.approx([-1.0] * 3, rel=1e-5)


def test_a_slow_drift_names_no_factor_when_the_diverging_update_matches(
    tmp_path, monkeypatch, train_table, params, lecture
):
    """Not "learning rate 0.99999 x": the update at the first diverging step is the reference's within the
    tolerances, so the difference is the drift that came before it."""
    found = locate(tmp_path, monkeypatch, train_table, params, lecture, faulty={"manual": CreepingBias})
    assert found.step == 5  # where 5 x 3e-8 of creep passes atol 1e-7 plus rtol times the bias
    (cause,) = found.causes
    assert (cause.rule, cause.backend) == ("drift", "manual")
    manual, autograd = found.backends["manual"], found.backends["autograd"]
    assert close(np.array(manual.update), np.array(autograd.update), params.compare).all()


def test_a_bias_never_updated_is_a_zero_factor_on_the_bias(tmp_path, monkeypatch, train_table, params, lecture):
    found = locate(tmp_path, monkeypatch, train_table, params, lecture, faulty={"manual": BiasNeverUpdated})
    cause = only_cause(found, 1, "parameter_factor", "manual")
    assert cause.evidence.startswith("manual's update of bias 0 x the lecture's")
    weights, bias = found.update_ratios["manual", "autograd"][:2], found.update_ratios["manual", "autograd"][2]
    assert list(weights) == pytest.approx([1.0, 1.0], rel=1e-5)
    assert bias is None  # autograd's bias update over manual's, which is 0


OPTIMIZER_BUGS = [(WithMomentum, "momentum", "momentum 0.9 "), (WithWeightDecay, "weight_decay", "weight decay 0.01 x")]


@pytest.mark.parametrize(("bug", "rule", "text"), OPTIMIZER_BUGS)
def test_an_optimizer_setting_the_lecture_lacks_is_named_with_its_value_from_step_2(
    bug, rule, text, tmp_path, monkeypatch, train_table, params, lecture
):
    """Momentum and weight decay change nothing at step 1 (no velocity yet; the weights start at 0); from
    step 2 the fitted value, replayed, reproduces the rest of the epoch."""
    found = locate(tmp_path, monkeypatch, train_table, params, lecture, faulty={"module": bug})
    assert found.step == 2
    (cause,) = found.causes
    assert (cause.rule, cause.backend) == (rule, "module")
    assert text in cause.evidence
    assert "reproduces module's updates at steps 2-7" in cause.evidence


def test_the_same_order_every_epoch_is_a_shuffle_order_at_epoch_2(tmp_path, monkeypatch, train_table, params, lecture):
    """A shuffle drawn once, not per epoch."""
    orders = shuffle_orders(len(train_table.y), params.train.epochs, params.train.seed)
    found = locate(tmp_path, monkeypatch, train_table, params, lecture, orders={"module": [orders[0]] * len(orders)})
    assert (found.step, found.epoch, found.batch) == (8, 2, 1)
    (cause,) = found.causes
    assert (cause.rule, cause.backend) == ("shuffle_order", "module")
