"""The training data as batches on the device: images kept as uint8 where they fit, seeded
crop-and-flip augmentation drawn per epoch, and the teachers' outputs on the whole set in batches."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

PAD = 4  # torchvision RandomCrop(32, padding=4), zero padding


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


def epoch_batches(images, recipe, order_gen, aug_gen, device, layout):
    """One epoch's batches, (images as floats in [0, 1] on `device` in `layout`, their indices):
    the data in an order drawn from `order_gen`, cropped and flipped with draws from `aug_gen`
    where the recipe augments."""
    n = len(images)
    perm = torch.randperm(n, generator=order_gen).to(images.device)
    if recipe.augment:
        offsets, flips = (t.to(images.device) for t in augment_draws(aug_gen, n, recipe.batch_size))
    for start in range(0, n, recipe.batch_size):
        sl = slice(start, start + recipe.batch_size)
        idx = perm[sl]
        x = images[idx]
        if recipe.augment:
            x = crop_flip(x, offsets[sl], flips[sl])
        x = x.to(device, non_blocking=True).float().div_(255).contiguous(memory_format=layout)
        yield x, idx.to(device)
