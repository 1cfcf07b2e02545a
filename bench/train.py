"""One training loop; the method supplies the loss.

Data live in memory as uint8 tensors and batches are cut by index, so an epoch is a seeded
permutation and augmentation is a seeded, batched crop-and-flip: the same seed gives the same
model. Twins (baseline and distilled, same architecture and seed) share initial weights, data
order and augmentation draws, so their difference is the loss alone.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .methods import Method
from .methods.base import Batch, Teachers
from .progress import bar
from .seeding import generator

PAD = 4  # torchvision RandomCrop(32, padding=4), zero padding


def augment(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random 32x32 crop of the zero-padded image, then a horizontal flip with p = 0.5, per image."""
    b, _, h, w = images.shape
    offsets = torch.randint(0, 2 * PAD + 1, (b, 2), generator=gen)
    flips = torch.rand(b, generator=gen) < 0.5
    padded = F.pad(images, (PAD, PAD, PAD, PAD))
    rows = (offsets[:, :1] + torch.arange(h)).to(images.device)  # (B, H)
    cols = (offsets[:, 1:] + torch.arange(w)).to(images.device)  # (B, W)
    cols = torch.where(flips.to(images.device)[:, None], cols.flip(1), cols)
    batch = torch.arange(b, device=images.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()


def make_optimizer(params, recipe) -> torch.optim.Optimizer:
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov, weight_decay=recipe.weight_decay)
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
        out.append(torch.cat([m(images[i : i + batch_size].to(device).float().div_(255)) for i in range(0, len(images), batch_size)]))
    return torch.stack(out)


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
) -> list[dict]:
    """Train `net` in place; returns one row of mean losses and accuracy per epoch.

    `teacher_logits` (K, N, C) are precomputed teacher outputs for un-augmented training; with
    augmentation on, the teachers are run on each augmented batch instead.
    """
    net.to(device).train()
    for t in teachers:
        t.to(device).eval()
    # cached outputs hold for un-augmented images only
    sources = Teachers(teachers, teacher_logits if teacher_logits is not None and not recipe.augment else None)
    opt = make_optimizer(net.parameters(), recipe)
    order_gen, aug_gen = generator(seed, "order"), generator(seed, "augment")
    n = len(images)
    steps_per_epoch = math.ceil(n / recipe.batch_size)
    labels = labels.to(device)
    history, step = [], 0
    for epoch in range(recipe.epochs):
        progress = epoch / max(1, recipe.epochs - 1)
        perm = torch.randperm(n, generator=order_gen)
        sums: dict[str, float] = {}
        correct = 0
        for start in bar(range(0, n, recipe.batch_size), desc=f"{desc} epoch {epoch + 1}/{recipe.epochs}"):
            idx = perm[start : start + recipe.batch_size]
            x = images[idx]
            if recipe.augment:
                x = augment(x, aug_gen)
            x = x.to(device, non_blocking=True).float().div_(255)
            y = labels[idx.to(device)]
            for group in opt.param_groups:
                group["lr"] = recipe.lr * lr_factor(recipe, step, steps_per_epoch)
            logits, losses = method.forward_train(net, sources, Batch(x, y, idx, progress, seed, step))
            total = sum(losses.values())
            if not torch.isfinite(total):
                raise FloatingPointError(f"{desc}: loss is {total.item()} at epoch {epoch + 1}; lower the learning rate")
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            step += 1
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + v.item() * len(idx)
            correct += int((logits.argmax(1) == y).sum())
        row = {"epoch": epoch + 1, **{k: v / n for k, v in sums.items()}, "train_accuracy": correct / n}
        history.append(row)
        log(row)
    net.eval()
    return history
