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
import torch.nn.functional as F
from torch import nn

from kdbench.models.compiled import Compiled, eager_reason
from kdbench.training.methods import Method
from kdbench.training.methods.base import Batch, FeatureCache, Teachers
from kdbench.util.contracts import check_logits, check_losses
from kdbench.util.errors import UserError
from kdbench.util.exit_codes import ExitCode
from kdbench.util.progress import bar
from kdbench.util.seeding import generator

PAD = 4  # torchvision RandomCrop(32, padding=4), zero padding


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


@torch.no_grad()
def predict_logits(models: Sequence[nn.Module], images: torch.Tensor, batch_size: int, device) -> torch.Tensor:
    """(K, N, C) logits of K models in eval mode over uint8 images."""
    out = []
    for m in models:
        m.eval()
        out.append(
            torch.cat(
                [m(images[i : i + batch_size].to(device).float().div_(255)) for i in range(0, len(images), batch_size)]
            )
        )
    return torch.stack(out)


def place_data(images: torch.Tensor, device) -> torch.Tensor:
    """The uint8 training images on the device when they fit in a quarter of its free memory
    (CIFAR-10: 150 MB), so batches are cut and augmented there; else they stay in host memory."""
    device = torch.device(device)
    if device.type != "cuda":
        return images
    return images.to(device) if images.numel() * images.element_size() < free_memory(device) // 4 else images


def free_memory(device) -> int:
    """Bytes free on the device: the GPU's, or the host's available memory (Linux), else 4 GiB."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        for line in open("/proc/meminfo", encoding="ascii"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 * 2**30


def augment_draws(gen: torch.Generator, n: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """An epoch's crop offsets (N, 2) and flips (N,), drawn batch by batch (each batch's offsets,
    then its flips), so a whole epoch travels to the device in one copy and the numbers do not
    depend on where the batch is augmented."""
    offsets, flips = [], []
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        offsets.append(torch.randint(0, 2 * PAD + 1, (b, 2), generator=gen))
        flips.append(torch.rand(b, generator=gen) < 0.5)
    return torch.cat(offsets), torch.cat(flips)


def crop_flip(images: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Crop each zero-padded image at its offset and flip it where `flips` says, on the images' device.
    The result is (B, C, H, W) laid out channels-last in memory: the caller picks the layout."""
    b, _, h, w = images.shape
    dev = images.device
    padded = F.pad(images, (PAD, PAD, PAD, PAD))
    rows = offsets[:, :1].to(dev) + torch.arange(h, device=dev)  # (B, H)
    cols = offsets[:, 1:].to(dev) + torch.arange(w, device=dev)  # (B, W)
    cols = torch.where(flips.to(dev)[:, None], cols.flip(1), cols)
    batch = torch.arange(b, device=dev)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2)


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
        perm = torch.randperm(n, generator=order_gen)
        perm_d = perm.to(images.device)
        if recipe.augment:
            offsets, flips = (t.to(images.device) for t in augment_draws(aug_gen, n, recipe.batch_size))
        sums: dict[str, torch.Tensor] = {}
        correct = torch.zeros((), dtype=torch.long, device=device)
        for start in bar(range(0, n, recipe.batch_size), desc=f"{desc} epoch {epoch + 1}/{recipe.epochs}"):
            sl = slice(start, start + recipe.batch_size)
            idx = perm_d[sl]
            x = images[idx]
            if recipe.augment:
                x = crop_flip(x, offsets[sl], flips[sl])
            x = x.to(device, non_blocking=True).float().div_(255).contiguous(memory_format=layout)
            idx = idx.to(device)
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
            if (step + 1) % check_every == 0 or start + recipe.batch_size >= n:
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
