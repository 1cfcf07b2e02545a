"""One training loop; the method supplies the loss.

Data live in memory as uint8 tensors and batches are cut by index, so an epoch is a seeded
permutation and augmentation is a seeded, batched crop-and-flip: the same seed gives the same
model. Twins (baseline and distilled, same architecture and seed) share initial weights, data
order and augmentation draws, so their difference is the loss alone.
"""

from __future__ import annotations

import functools
import math
import operator
from typing import Callable, Optional, Sequence

import torch
from torch import nn

from kdbench.models.compiled import Compiled, eager_reason
from kdbench.training.batches import epoch_batches, free_memory, place_data
from kdbench.training.methods import Method
from kdbench.training.methods.base import Batch, FeatureCache, Teachers
from kdbench.util.contracts import check_logits, check_losses
from kdbench.util.errors import UserError
from kdbench.util.exit_codes import ExitCode
from kdbench.util.progress import bar
from kdbench.util.seeding import generator


def make_optimizer(params, recipe) -> torch.optim.Optimizer:
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov, weight_decay=recipe.weight_decay
        )
    cls = torch.optim.Adam if recipe.optimizer == "adam" else torch.optim.AdamW
    return cls(params, lr=recipe.lr, weight_decay=recipe.weight_decay)


def lr_factor(recipe, step: int, steps_per_epoch: int) -> float:
    """The learning-rate multiplier at an optimisation step: linear warm-up, then the schedule."""
    total = recipe.epochs * steps_per_epoch
    warm = recipe.warmup_epochs * steps_per_epoch
    if step < warm:
        return (step + 1) / warm
    if recipe.schedule == "constant":
        return 1.0
    if recipe.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * (step - warm) / max(1, total - warm)))
    epoch = step // steps_per_epoch
    return recipe.gamma ** sum(epoch >= round(m * recipe.epochs) for m in recipe.milestones)


# Non-finite losses are looked for every this many steps on a GPU (a check is a host sync), every
# step on the CPU (where it is free); a bad step is caught before the epoch ends either way.
CHECK_EVERY = 50


def train(
    net: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    recipe,
    method: Method,
    seed: int,
    *,
    teachers: Sequence[nn.Module] = (),
    teacher_logits: Optional[torch.Tensor] = None,
    device="cpu",
    desc: str = "train",
    log: Callable[[dict], None] = lambda row: None,
    say: Callable[[str], None] = lambda line: None,
) -> list[dict]:
    """Train `net` in place; returns one row of mean losses and accuracy per epoch.

    `teacher_logits` (K, N, C) are precomputed teacher outputs for un-augmented training; with
    augmentation on, the teachers are run on each augmented batch instead.

    On a GPU the loop never waits for the device within an epoch, except to look for a non-finite
    loss every CHECK_EVERY steps: data and labels sit on the device, the epoch's order and
    augmentation draws travel once, and loss sums and accuracy are accumulated there and read at
    the epoch's end. Conv nets run channels_last there, and on the CPU with the recipe's
    `channels_last`. On the CPU the arithmetic is otherwise the same as a plain loop's, in the same
    order, so results do not depend on these choices.

    With the recipe's `compile`, the student (and teachers run on each batch) are called through
    torch.compile on a GPU (models/compiled.py); `say` receives the line when that falls back.
    """
    device = torch.device(device)
    cuda = device.type == "cuda"
    net.to(device).train()
    channels_last = cuda or recipe.channels_last
    if channels_last:
        net.to(memory_format=torch.channels_last)
    for t in teachers:
        t.to(device).eval()
    # cached outputs hold for un-augmented images only
    cached = teacher_logits if teacher_logits is not None and not recipe.augment else None
    images = place_data(images, device)
    if cached is not None and images.device.type == device.type:
        cached = cached.to(images.device)
    sources = Teachers(teachers, cached)
    if method.uses_features and teachers and not recipe.augment:
        # a quarter of what is free, as for the images: the rest is the training's
        sources.feature_cache = FeatureCache(len(images), free_memory(device) // 4, lambda m: say(f"{desc}: {m}"))
    # the method's own trainable parts (a connector, say) learn with the student and are then dropped
    extra = method.setup(net, sources, labels)
    if method.pretrain_epochs():
        pretrain(net, images, labels.to(device), recipe, method, seed, sources, device, desc, say)
    step_net, mode = net, recipe.compile
    why = f"{method.name} reads the networks' stages through hooks" if method.uses_features else eager_reason(device)
    if mode and why:
        say(f"{desc}: compile {mode!r} runs eager: {why}")
    elif mode:
        step_net = Compiled(net, mode, desc, say)
        if cached is None and teachers:
            sources = Teachers([Compiled(t, mode, f"{desc} teacher", say) for t in teachers], None)
    params = list(net.parameters())
    if extra is not None:
        extra.to(device).train()
        params += list(extra.parameters())
    opt = make_optimizer(params, recipe)
    steps_per_epoch = math.ceil(len(images) / recipe.batch_size)
    torch_schedule = recipe.schedule if not isinstance(recipe.schedule, str) else None
    scheduler = torch_schedule.build(opt, recipe.epochs, steps_per_epoch) if torch_schedule else None
    order_gen, aug_gen = generator(seed, "order"), generator(seed, "augment")
    n = len(images)
    labels = labels.to(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=recipe.precision == "bf16")
    check_every = CHECK_EVERY if cuda else 1
    layout = torch.channels_last if channels_last else torch.contiguous_format
    history, step = [], 0
    what = f"{desc}: method '{method.name}', forward_train"
    for epoch in range(recipe.epochs):
        progress = epoch / max(1, recipe.epochs - 1)
        sums: dict[str, torch.Tensor] = {}
        correct = torch.zeros((), dtype=torch.long, device=device)
        batches = epoch_batches(images, recipe, order_gen, aug_gen, device, layout)
        for i, (x, idx) in enumerate(bar(batches, f"{desc} epoch {epoch + 1}/{recipe.epochs}", steps_per_epoch)):
            y = labels[idx]
            if scheduler is None:
                for group in opt.param_groups:
                    group["lr"] = recipe.lr * lr_factor(recipe, step, steps_per_epoch)
            with autocast:
                logits, losses = method.forward_train(
                    step_net, sources, Batch(x, y, idx, progress, seed, step, epoch + 1)
                )
            if step == 0:
                check_logits(logits, len(idx), None, what, method)  # the classes: the network's own check
                check_losses(losses, what, method)
            total = functools.reduce(operator.add, losses.values())
            b = len(idx)
            for k, v in losses.items():
                # float64, like Python's floats, so CPU sums match a loop that reads each loss;
                # a non-finite loss makes its sum non-finite, which is what the check looks at
                sums[k] = sums.get(k, 0.0) + v.detach().double() * b
            correct += (logits.argmax(1) == y).sum()
            if (step + 1) % check_every == 0 or i == steps_per_epoch - 1:
                _check_finite(sums, desc, epoch)
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            if scheduler is not None and torch_schedule.every == "step":
                scheduler.step()
            step += 1
        if scheduler is not None and torch_schedule.every == "epoch":
            scheduler.step()
        row = {"epoch": epoch + 1, **{k: float(v) / n for k, v in sums.items()}, "train_accuracy": int(correct) / n}
        row["lr"] = float(opt.param_groups[0]["lr"])  # the epoch's last step's: the report's curves
        history.append(row)
        log(row)
    if channels_last:
        net.to(memory_format=torch.contiguous_format)
    net.eval()
    return history


def pretrain(net, images, labels, recipe, method: Method, seed: int, sources: Teachers, device, desc: str, say) -> None:
    """The stage some methods run before training (AB, FSP: the student's layers on the feature
    loss alone; FT: the teacher's paraphraser), as RepDistiller's `init` does: `pretrain_epochs()`
    epochs over the training data at a constant learning rate (`pretrain_lr()`, else the recipe's),
    with the recipe's optimiser, batch size and augmentation. Its own data order and augmentation
    draws, so that the student's training afterwards draws what its twin's does."""
    module = method.pretrain_setup(net)
    module.to(device).train()
    opt = make_optimizer(list(module.parameters()), recipe)
    for group in opt.param_groups:
        group["lr"] = method.pretrain_lr() or recipe.lr
    order_gen, aug_gen = generator(seed, "pretrain_order"), generator(seed, "pretrain_augment")
    n, epochs, step = len(images), method.pretrain_epochs(), 0
    what = f"{desc}: method '{method.name}', pretrain_losses"
    for epoch in range(epochs):
        sums: dict[str, torch.Tensor] = {}
        batches = epoch_batches(images, recipe, order_gen, aug_gen, device, torch.contiguous_format)
        for x, idx in bar(batches, f"{desc} pre-training {epoch + 1}/{epochs}", math.ceil(n / recipe.batch_size)):
            losses = method.pretrain_losses(net, sources, Batch(x, labels[idx], idx, 0.0, seed, step, epoch + 1))
            if step == 0:
                check_losses(losses, what, method)
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + v.detach().double() * len(idx)
            opt.zero_grad(set_to_none=True)
            functools.reduce(operator.add, losses.values()).backward()
            opt.step()
            step += 1
        _check_finite(sums, f"{desc} (pre-training)", epoch)
        terms = ", ".join(f"{k} {float(v) / n:.4g}" for k, v in sums.items())
        say(f"{desc}: pre-training epoch {epoch + 1}/{epochs}: {terms}")
    module.eval()
    net.train()


def epoch_metrics(row: dict) -> dict[str, float]:
    """An epoch's row of history.json as the curves name it (training.csv, the report, tracking):
    each loss term, `loss` (their sum, the objective), then train_accuracy and lr where recorded."""
    terms = {k: v for k, v in row.items() if k not in ("epoch", "train_accuracy", "lr")}
    return {**terms, "loss": sum(terms.values()), **{k: row[k] for k in ("train_accuracy", "lr") if k in row}}


class TrainingDiverged(UserError, FloatingPointError):
    """A loss that became NaN or infinite: the run stops (exit 1), naming the job and the terms."""

    exit_code = ExitCode.FAIL


def _check_finite(sums: dict[str, torch.Tensor], desc: str, epoch: int) -> None:
    values = torch.stack(list(sums.values()))
    if not bool(torch.isfinite(values).all()):
        bad = [k for k, v in zip(sums, values.tolist()) if not math.isfinite(v)]
        raise TrainingDiverged(
            f"{desc}: the loss is not finite (nan or inf) in epoch {epoch + 1}, in the term(s) {', '.join(bad)}; "
            "likely causes: the method's weights or temperature (a term that overflows), a method's own loss that "
            "can produce NaN (log of 0, inf - inf), or a learning rate too high for this recipe"
        )
