"""What students try, injected into a real backend: each family of mechanisms (another optimizer, a learning
rate schedule, a gradient over the nominal minibatch, transformed targets, another loss, rows or features
left out) is located at its exact first diverging step and named by its rule, with the parameters the
student typed, fitted on the first updates and then reproducing the rest of the span."""

from __future__ import annotations

import math

import msgspec
import pytest
import torch
import torch.nn.functional as F

from adaline_repro.backends.manual import ManualBackend
from adaline_repro.backends.module import ModuleBackend
from adaline_repro.comparison import compare, first_divergence, sentence
from tests.unit.comparison.conftest import locate, only_cause, outputs, records


def optimizer(make):
    """module with its torch.optim.SGD replaced by make(parameters, lr)."""

    class Student(ModuleBackend):
        def __init__(self, n_features: int, lr: float, dtype: torch.dtype, device: torch.device) -> None:
            super().__init__(n_features, lr, dtype, device)
            self.optimizer = make(self.linear.parameters(), lr)

    return Student


OPTIMIZERS = [
    # (torch.optim call, first diverging step, rule, the evidence's fitted parameters)
    (lambda p, lr: torch.optim.Adam(p, lr=lr), 1, "adaptive_optimizer",
     "updates with Adam: learning rate 0.01, β1 0.9, β2 0.999 "),
    (lambda p, lr: torch.optim.Adam(p, lr=0.05, betas=(0.8, 0.99)), 1, "adaptive_optimizer",
     "updates with Adam: learning rate 0.05, β1 0.8, β2 0.99 "),
    (lambda p, lr: torch.optim.AdamW(p, lr=lr), 1, "adaptive_optimizer",
     "updates with AdamW: learning rate 0.01, β1 0.9, β2 0.999, weight decay 0.01 "),
    (lambda p, lr: torch.optim.Adamax(p, lr=0.002), 1, "adaptive_optimizer",
     "updates with Adamax: learning rate 0.002, β1 0.9, β2 0.999 "),
    (lambda p, lr: torch.optim.RMSprop(p, lr=lr), 1, "adaptive_optimizer",
     "updates with RMSprop: learning rate 0.01, alpha 0.99 "),
    (lambda p, lr: torch.optim.Adagrad(p, lr=0.1), 1, "adaptive_optimizer", "updates with Adagrad: learning rate 0.1 "),
    (lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9, nesterov=True), 1, "nesterov",
     "updates with Nesterov momentum 0.9 "),
    (lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9, dampening=0.5), 2, "momentum",
     "updates with momentum 0.9 and dampening 0.5 "),
]  # fmt: skip


class L2OnTheWeights(ManualBackend):
    """An L2 penalty 0.01 ||w||^2 written into the loss: its gradient 0.02 w, the bias left alone."""

    def gradients(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        grad_w, grad_b = super().gradients(x, y)
        return grad_w + 0.02 * self.weight.view(-1), grad_b


def test_an_l2_penalty_on_the_weights_alone_is_weight_decay_without_the_bias(
    tmp_path, monkeypatch, train_table, params, lecture
):
    """Nothing to decay at step 1 (the weights start at 0): the penalty shows from step 2."""
    found = locate(tmp_path, monkeypatch, train_table, params, lecture, faulty={"manual": L2OnTheWeights})
    cause = only_cause(found, 2, "weight_decay", "manual")
    assert cause.evidence.startswith("manual adds weight decay 0.02 x its weights (not the bias) to the gradient (an "
                                     "L2 penalty 0.01 x the weights' squares in the loss)")  # fmt: skip


@pytest.mark.parametrize(("make", "step", "rule", "fitted"), OPTIMIZERS)
def test_another_optimizer_is_named_with_the_settings_the_student_typed(
    make, step, rule, fitted, tmp_path, monkeypatch, train_table, params, lecture
):
    found = locate(tmp_path, monkeypatch, train_table, params, lecture, faulty={"module": optimizer(make)})
    cause = only_cause(found, step, rule, "module")
    assert cause.evidence.startswith(f"module {fitted}")
    assert f"this reproduces module's updates at steps {step}-7" in cause.evidence  # to the end of epoch 1


def scheduled(make, every_epoch: bool = False, restart: bool = False, per_epoch: int = 7):
    """module with a torch.optim.lr_scheduler on its SGD, stepped after every update, or once an epoch
    (`per_epoch` updates: 70 rows in minibatches of 10), or made anew at each epoch's start (`restart`)."""

    class Student(ModuleBackend):
        def __init__(self, n_features: int, lr: float, dtype: torch.dtype, device: torch.device) -> None:
            super().__init__(n_features, lr, dtype, device)
            self.lr, self.updates = lr, 0
            self.scheduler = make(self.optimizer)

        def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
            if restart and self.updates and self.updates % per_epoch == 0:
                self.optimizer = torch.optim.SGD(self.linear.parameters(), lr=self.lr)
                self.scheduler = make(self.optimizer)
            super().step(x, y)
            self.updates += 1
            if not every_epoch or self.updates % per_epoch == 0:
                self.scheduler.step()

    return Student


SCHEDULES = [
    # (scheduler, stepped once an epoch, restarted every epoch, first diverging step, the evidence)
    (lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5), True, False, 22,
     "learning rate is x 0.5 every 3 epochs from step 22 (epoch 4, batch 1) on (StepLR(step_size=3, gamma=0.5) "
     "stepped per epoch, or a learning rate changed once there)"),
    (lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=10, gamma=0.1), False, False, 11,
     "learning rate is x 0.1 every 10 updates from step 11 (epoch 2, batch 4) on (StepLR(step_size=10, gamma=0.1) "
     "stepped per update)"),
    (lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.9), True, False, 8,
     "learning rate x 0.9 per epoch (ExponentialLR(gamma=0.9) stepped per epoch)"),
    (lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.99), False, False, 2,
     "learning rate x 0.99 per update (ExponentialLR(gamma=0.99) stepped per update)"),
    (lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.9), False, True, 2,
     "learning rate x 0.9 per update (ExponentialLR(gamma=0.9) stepped restarting every epoch)"),
    (lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=140), False, False, 2,
     "learning rate annealed on a cosine to 0 over 140 updates (CosineAnnealingLR(T_max=140) stepped per update)"),
    (lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=10), False, False, 1,
     "learning rate warmed up linearly from 0.1 x to 1 x over 10 updates"),
    (lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=20), True, False, 8,
     "learning rate annealed on a cosine to 0 over 20 epochs (CosineAnnealingLR(T_max=20) stepped per epoch)"),
    (lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=0.5, total_iters=3), True, False, 1,
     "learning rate warmed up linearly from 0.5 x to 1 x over 3 epochs (LinearLR(start_factor=0.5, total_iters=3) "
     "stepped per epoch)"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "every_epoch", "restart", "step", "evidence"), SCHEDULES)
def test_a_learning_rate_schedule_is_named_with_its_shape_clock_and_parameters(
    make, every_epoch, restart, step, evidence, tmp_path, monkeypatch, train_table, params, lecture
):
    """A schedule must reproduce the updates to the end of the next epoch: that is where one that restarts,
    or steps once an epoch, differs from one that does not."""
    bug = scheduled(make, every_epoch, restart)
    found = locate(tmp_path, monkeypatch, train_table, params, lecture, faulty={"module": bug})
    cause = only_cause(found, step, "lr_schedule", "module")
    assert cause.evidence.startswith(f"module's {evidence}")


class NominalBatch(ManualBackend):
    """The squared errors summed and divided by batch_size (8), also over the epoch's last minibatch of 6."""

    def gradients(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        grad_w, grad_b = super().gradients(x, y)
        return grad_w * len(y) / 8, grad_b * len(y) / 8


def test_a_gradient_over_the_nominal_minibatch_size_parts_at_the_first_short_minibatch(
    tmp_path, monkeypatch, train_table, params, lecture
):
    """70 rows in minibatches of 8: the ninth of each epoch has 6 rows, and there the update is 6/8 of the
    lecture's; the rule must also reproduce the next epoch's short minibatch (step 18)."""
    eights = msgspec.structs.replace(params, train=msgspec.structs.replace(params.train, batch_size=8))
    found = locate(tmp_path, monkeypatch, train_table, eights, lecture, faulty={"manual": NominalBatch})
    cause = only_cause(found, 9, "nominal_batch", "manual")
    assert cause.evidence.startswith("manual divides the minibatch's gradient by the nominal size 8, not by the 6 rows")
    assert "at steps 9-18" in cause.evidence


def targets(a: float, b: float):
    class Student(ManualBackend):
        def gradients(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return super().gradients(x, a * y + b)

    return Student


def loss(fn):
    class Student(ModuleBackend):
        def _backward(self, x: torch.Tensor, y: torch.Tensor) -> None:
            self.optimizer.zero_grad()
            fn(self.forward(x), y).backward()

    return Student


OBJECTIVES = [
    # (backend, first diverging step, rule, evidence)
    (targets(2, -1), 1, "targets", "module trains on targets recoded to ±1 (2y - 1, as a perceptron's labels)"),
    (targets(3, 0), 1, "targets", "module trains on targets scaled by 3 "),
    (targets(1, 0.5), 1, "targets", "module trains on targets shifted by 0.5 "),
    (loss(F.l1_loss), 1, "loss_function", "module's loss is the mean absolute error (torch.nn.L1Loss)"),
    (loss(lambda a, b: F.huber_loss(a, b, delta=0.5)), 1, "loss_function",
     "module's loss is torch.nn.HuberLoss(delta=0.5), not the MSE"),
    (loss(lambda a, b: F.smooth_l1_loss(a, b, beta=0.25)), 1, "loss_function",
     "module's loss is torch.nn.SmoothL1Loss(beta=0.25), not the MSE"),
]  # fmt: skip


class LastRowLeftOut(ManualBackend):
    """`x[:-1]`: the minibatch's last row never reaches the gradient."""

    def gradients(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return super().gradients(x[:-1], y[:-1])


class FeatureLeftOut(ManualBackend):
    """`x[:, :1]` in the gradient: the second feature's weight never moves."""

    def gradients(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        grad_w, grad_b = super().gradients(x, y)
        return grad_w * torch.tensor([1.0, 0.0], dtype=grad_w.dtype), grad_b


def test_rows_or_a_feature_left_out_of_the_update_are_named(tmp_path, monkeypatch, train_table, params, lecture):
    rows = locate(tmp_path, monkeypatch, train_table, params, lecture, faulty={"manual": LastRowLeftOut})
    cause = only_cause(rows, 1, "rows_left_out", "manual")
    assert cause.evidence.startswith("manual leaves its last row out of every minibatch's update, averaging over "
                                     "the rows kept")  # fmt: skip
    feature = locate(tmp_path, monkeypatch, train_table, params, lecture, faulty={"manual": FeatureLeftOut})
    cause = only_cause(feature, 1, "parameter_factor", "manual")
    assert cause.evidence.startswith(f"manual's update of weight[{train_table.features[1]}] 0 x the lecture's")


def test_every_named_mechanism_reproduces_the_span_it_claims(tmp_path, monkeypatch, train_table, params, lecture):
    """The mechanism behind a named cause is kept with it: replayed again, it gives every update of its span
    within the tolerances, and the lecture's plain update misses more than one of them."""
    found = records(tmp_path, monkeypatch, train_table, params.train, faulty={"module": scheduled(
        lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.99))})  # fmt: skip
    (cause,) = first_divergence(found, params.compare, lecture).causes
    assert cause.mechanism.holds(found["module"], params.compare)
    assert len(cause.mechanism.steps) >= 4
    assert not cause.mechanism.holds(found["manual"], params.compare)


def shared_loop(wrap):
    """A bug of the loop every backend shares: each registered class wrapped alike."""
    return lambda cls: wrap(cls)


def every_backend_on(a: float, b: float):
    def wrap(cls):
        class Fed(cls):
            def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
                super().step(x, a * y + b)

        return Fed

    return wrap


def every_backend_with_lr_times(c: float):
    def wrap(cls):
        class Built(cls):
            def __init__(self, n_features: int, lr: float, dtype: torch.dtype, device: torch.device) -> None:
                super().__init__(n_features, c * lr, dtype, device)

        return Built

    return wrap


SHARED = [
    # (the shared loop's bug, rule, evidence)
    (every_backend_on(2, -1), "targets", "each backend trains on targets recoded to ±1"),
    (every_backend_with_lr_times(3), "learning_rate", "each backend's learning rate is 3 x the configured one"),
    (every_backend_with_lr_times(0.5), "learning_rate", "each backend's learning rate is 0.5 x the configured one"),
    (every_backend_on(1, 0.2), "targets", "each backend trains on targets shifted by 0.2"),
]


@pytest.mark.parametrize(("wrap", "rule", "evidence"), SHARED)
def test_a_bug_all_backends_share_fails_compare_against_the_lecture_with_no_backend_blamed_alone(
    wrap, rule, evidence, tmp_path, monkeypatch, train_table, params, lecture
):
    """The backends agree at every step, so no pair parts; the lecture's update, replayed from each one's
    own parameters, parts from all three at step 1, and one cause names the mechanism they share."""
    found = records(tmp_path, monkeypatch, train_table, params.train, shared=wrap)
    assert first_divergence(found, params.compare, lecture) is None
    report = compare(outputs(found), params.compare, lecture)
    assert (report.agree, report.follows_lecture, report.passed) == (True, False, False)
    assert report.divergence.step == 1
    assert [f"{a}~{b}" for a, b in report.divergence.apart] == [f"lecture~{n}" for n in found]
    (cause,) = report.divergence.causes
    assert (cause.rule, cause.backend, cause.shared) == (rule, None, tuple(found))
    assert cause.evidence.startswith(evidence)
    assert cause.text() == f"manual, autograd and module alike: {cause.title}"
    assert sentence(report.divergence).startswith("At step 1 (epoch 1, batch 1), every backend's update (manual, "
                                                  "autograd, module) is ")  # fmt: skip
    assert report.failure_line().startswith("the backends agree with each other, not with the lecture's update; ")


def test_the_lecture_settings_follow_the_lecture_within_a_fraction_of_the_tolerance(
    tmp_path, monkeypatch, train_table, params, lecture
):
    report = compare(outputs(records(tmp_path, monkeypatch, train_table, params.train)), params.compare, lecture)
    assert (report.passed, report.follows_lecture, report.divergence) == (True, True, None)
    assert 0 < report.lecture_ratio < 0.5
    assert math.isfinite(report.lecture_ratio)


def every_backend_rewriting(rewrite):
    """A bug of the loop every backend shares: after each backend's own step, the loop rewrites its
    parameters, new, state = rewrite(state, before, step), where step = before - after (the learning rate
    times the gradient the backend computed)."""

    def wrap(cls):
        class Rewritten(cls):
            state = None

            def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
                before = torch.cat([t.detach().view(-1) for t in self.tensors()]).clone()
                super().step(x, y)
                after = torch.cat([t.detach().view(-1) for t in self.tensors()])
                new, self.state = rewrite(self.state, before, before - after)
                weight, bias = self.tensors()
                with torch.no_grad():
                    weight.view(-1).copy_(new[:-1])
                    bias.view(-1).copy_(new[-1:])

        return Rewritten

    return wrap


def velocity(mu: float):
    """The shared loop keeps a velocity v = mu v + step (v = step at first) and applies it: momentum mu. (With
    mu 1, a zero_grad() the loop never calls, the parameters grow until float32 rounding parts the backends:
    not a shared bug the backends agree on.)"""

    def rewrite(v, before, step):
        v = step if v is None else mu * v + step
        return before - v, v

    return rewrite


SHARED_STATE = [
    (velocity(0.9), "momentum", "each backend updates with momentum 0.9 "),
    (velocity(0.5), "momentum", "each backend updates with momentum 0.5 "),
]


@pytest.mark.parametrize(("rewrite", "rule", "evidence"), SHARED_STATE)
def test_a_shared_optimizer_state_is_replayed_from_each_backend_s_own_gradients(
    rewrite, rule, evidence, tmp_path, monkeypatch, train_table, params, lecture
):
    """A momentum in the shared loop: the mechanism fitted on the first backend holds for the others only when
    replayed from their own gradients, and all three are named together."""
    found = records(tmp_path, monkeypatch, train_table, params.train, shared=every_backend_rewriting(rewrite))
    report = compare(outputs(found), params.compare, lecture)
    assert (report.agree, report.passed, report.divergence.step) == (True, False, 2)
    (cause,) = report.divergence.causes
    assert (cause.rule, cause.backend, cause.shared) == (rule, None, tuple(found))
    assert cause.evidence.startswith(evidence)


def test_a_weak_shared_bug_is_not_blamed_on_the_backend_that_crosses_the_tolerance_first(
    tmp_path, monkeypatch, train_table, params, lecture
):
    """A weight decay so weak that rounding decides at which update each backend leaves the tolerance (module,
    in float64, a step after the float32 ones): the cause, named or unexplained, is all three's, not one's."""
    lam, lr = 1.15e-4, params.train.lr
    shared = every_backend_rewriting(lambda state, before, step: (before - step - lr * lam * before, None))
    found = records(tmp_path, monkeypatch, train_table, params.train, ("manual", "autograd"), shared=shared)
    as64 = msgspec.structs.replace(params.train, dtype="float64")
    found |= records(tmp_path, monkeypatch, train_table, as64, ("module",), shared=shared)
    departures = {name: lecture.departure(rec, params.compare) for name, rec in found.items()}
    assert len(set(departures.values())) > 1, departures  # the case this test is about
    report = compare(outputs(found), params.compare, lecture)
    assert report.agree
    assert not report.passed
    (cause,) = report.divergence.causes
    assert (cause.backend, cause.shared) == (None, ("manual", "autograd", "module"))


class MiddleRowLeftOut(ManualBackend):
    """`np.delete(rows, 3)`: the fourth row of each minibatch never reaches the gradient."""

    def gradients(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keep = [i for i in range(len(y)) if i != 3]
        return super().gradients(x[keep], y[keep])


def test_a_row_left_out_by_its_place_applies_to_the_shorter_last_minibatch_too(
    tmp_path, monkeypatch, train_table, params, lecture
):
    """70 rows in minibatches of 8: the ninth has 6, and losing its fourth row too, it is still predicted."""
    eights = msgspec.structs.replace(params, train=msgspec.structs.replace(params.train, batch_size=8))
    found = locate(tmp_path, monkeypatch, train_table, eights, lecture, faulty={"manual": MiddleRowLeftOut})
    cause = only_cause(found, 1, "rows_left_out", "manual")
    assert cause.evidence.startswith("manual leaves its row 4 out of every minibatch's update, averaging over the "
                                     "rows kept")  # fmt: skip
    assert "at steps 1-9" in cause.evidence


class FirstRowLeftOut(ManualBackend):
    """`x[1:]`: the minibatch's first row never reaches the gradient."""

    def gradients(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return super().gradients(x[1:], y[1:])


OTHER_SETTINGS = [
    # (the faulty module, first diverging step, rule, how the evidence starts): values no other test uses
    (optimizer(lambda p, lr: torch.optim.Adam(p, lr=0.003, betas=(0.95, 0.9999))), 1, "adaptive_optimizer",
     "module updates with Adam: learning rate 0.003, β1 0.95, β2 0.9999 "),
    (optimizer(lambda p, lr: torch.optim.AdamW(p, lr=lr, weight_decay=0.1)), 1, "adaptive_optimizer",
     "module updates with AdamW: learning rate 0.01, β1 0.9, β2 0.999, weight decay 0.1 "),
    (optimizer(lambda p, lr: torch.optim.RMSprop(p, lr=0.001, alpha=0.9)), 1, "adaptive_optimizer",
     "module updates with RMSprop: learning rate 0.001, alpha 0.9 "),
    (optimizer(lambda p, lr: torch.optim.Adagrad(p, lr=0.01)), 1, "adaptive_optimizer",
     "module updates with Adagrad: learning rate 0.01 "),
    (optimizer(lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.5, nesterov=True)), 1, "nesterov",
     "module updates with Nesterov momentum 0.5 "),
    (optimizer(lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.99, dampening=0.1)), 2, "momentum",
     "module updates with momentum 0.99 and dampening 0.1 "),
    (scheduled(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.3), True), 15, "lr_schedule",
     "module's learning rate is x 0.3 every 2 epochs from step 15 (epoch 3, batch 1) on"),
    (scheduled(lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.95)), 2, "lr_schedule",
     "module's learning rate x 0.95 per update (ExponentialLR(gamma=0.95) stepped per update)"),
    (scheduled(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=50)), 2, "lr_schedule",
     "module's learning rate annealed on a cosine to 0 over 50 updates (CosineAnnealingLR(T_max=50) "
     "stepped per update)"),
    (scheduled(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=7), False, True), 2, "lr_schedule",
     "module's learning rate annealed on a cosine to 0 over 7 updates (CosineAnnealingLR(T_max=7) "
     "stepped restarting every epoch)"),
    (scheduled(lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=0.25, total_iters=4)), 1, "lr_schedule",
     "module's learning rate warmed up linearly from 0.25 x to 1 x over 4 updates"),
    (targets(-1, 1), 1, "targets", "module trains on targets -1 y + 1 instead"),
    (targets(0.9, 0.05), 1, "targets", "module trains on targets 0.9 y + 0.05 instead"),  # label smoothing
    (loss(lambda a, b: F.huber_loss(a, b, delta=0.3)), 1, "loss_function",
     "module's loss is torch.nn.HuberLoss(delta=0.3)"),
    (loss(lambda a, b: F.smooth_l1_loss(a, b, beta=0.5)), 1, "loss_function",
     "module's loss is torch.nn.SmoothL1Loss(beta=0.5)"),
    (loss(F.huber_loss), 1, "learning_rate",  # delta 1: no residual clipped yet, an alias the evidence states
     "module's learning rate is 0.5 x the configured one (or its gradient lost the 2 of d/dw (y - yhat)^2, or a "
     "Huber loss whose delta"),
    (FirstRowLeftOut, 1, "rows_left_out", "module leaves its first row out of every minibatch's update"),
]  # fmt: skip


@pytest.mark.parametrize(("bug", "step", "rule", "evidence"), OBJECTIVES + OTHER_SETTINGS)
def test_other_targets_losses_and_settings_are_named_with_their_own_values(
    bug, step, rule, evidence, tmp_path, monkeypatch, train_table, params, lecture
):
    """Other targets and losses, and each family again with values the family tests do not use: each is
    fitted anew and named with the values the student typed."""
    found = locate(tmp_path, monkeypatch, train_table, params, lecture, faulty={"module": bug})
    cause = only_cause(found, step, rule, "module")
    assert cause.evidence.startswith(evidence)
