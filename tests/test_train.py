"""The training loop: the same arithmetic as a plain loop on the CPU, recipes' precision and torch
schedulers, and the checks that do not cost a device sync per step."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from kdbench.config import SuiteError, TrainRecipe
from kdbench.models import create_model, wrap
from kdbench.training.batches import PAD
from kdbench.training.loop import train
from kdbench.training.methods import METHODS, build_method
from kdbench.util.seeding import generator


def _data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g), torch.randint(
        0, 10, (n,), generator=g
    )


def _net():
    torch.manual_seed(0)
    return wrap(create_model("cnn_tiny"), "cifar10")


def _plain_loop(net, images, labels, recipe, seed):
    """Training written out per image and per step, as the docstrings define it: a seeded
    permutation; per batch, offsets (B, 2) in [0, 2*PAD] then flips (B,) from the augment
    generator; crop of the zero-padded image; SGD at lr * cos schedule."""
    opt = torch.optim.SGD(net.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    order, aug = generator(seed, "order"), generator(seed, "augment")
    n, bs = len(images), recipe.batch_size
    total, step, losses = recipe.epochs * math.ceil(n / bs), 0, []
    net.train()
    for _ in range(recipe.epochs):
        perm = torch.randperm(n, generator=order)
        epoch_sum = 0.0
        for start in range(0, n, bs):
            idx = perm[start : start + bs]
            off = torch.randint(0, 2 * PAD + 1, (len(idx), 2), generator=aug)
            flip = torch.rand(len(idx), generator=aug) < 0.5
            crops = []
            for i, j in enumerate(idx.tolist()):
                padded = F.pad(images[j], (PAD, PAD, PAD, PAD))
                c = padded[:, off[i, 0] : off[i, 0] + 32, off[i, 1] : off[i, 1] + 32]
                crops.append(c.flip(2) if flip[i] else c)
            x = torch.stack(crops).float().div_(255)
            for group in opt.param_groups:
                group["lr"] = recipe.lr * 0.5 * (1 + math.cos(math.pi * step / total))
            loss = F.cross_entropy(net(x), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            epoch_sum += loss.item() * len(idx)
        losses.append(epoch_sum / n)
    return losses


def test_the_loop_is_a_plain_loop_bit_for_bit_on_the_cpu():
    images, labels = _data()
    recipe = TrainRecipe(epochs=2, batch_size=40, lr=0.05)
    ours, plain = _net(), _net()
    history = train(ours, images, labels, recipe, build_method(METHODS.get("baseline").Params()), seed=3)
    losses = _plain_loop(plain, images, labels, recipe, seed=3)
    assert [row["ce"] for row in history] == losses  # the epoch sums too, not only the weights
    for (k, a), b in zip(ours.state_dict().items(), plain.state_dict().values()):
        assert torch.equal(a, b), k


def test_bf16_trains_under_autocast_and_keeps_fp32_weights():
    images, labels = _data()
    method = build_method(METHODS.get("baseline").Params())
    fp32, bf16 = _net(), _net()
    train(fp32, images, labels, TrainRecipe(epochs=1, batch_size=32, lr=0.05), method, seed=0)
    h = train(bf16, images, labels, TrainRecipe(epochs=1, batch_size=32, lr=0.05, precision="bf16"), method, seed=0)
    assert math.isfinite(h[0]["ce"])
    assert all(p.dtype == torch.float32 for p in bf16.parameters())
    # the same steps in another precision: close, not equal
    a, b = torch.cat([p.flatten() for p in fp32.parameters()]), torch.cat([p.flatten() for p in bf16.parameters()])
    assert not torch.equal(a, b) and (a - b).abs().max() < 0.05


def test_precision_compile_and_layout_enter_the_hash_only_when_they_are_not_the_default():
    later = ("precision", "compile", "channels_last")
    assert not set(later) & set(TrainRecipe().hash_spec())
    assert TrainRecipe().hash_spec() == {
        k: v for k, v in TrainRecipe().model_dump(mode="json").items() if k not in later
    }
    assert TrainRecipe(precision="bf16").hash_spec()["precision"] == "bf16"
    assert TrainRecipe(compile="reduce-overhead").hash_spec()["compile"] == "reduce-overhead"
    assert TrainRecipe(channels_last=True).hash_spec()["channels_last"] is True


def test_channels_last_on_the_cpu_trains_nearly_the_same_network():
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 10, (64,))
    method = build_method(METHODS.get("baseline").Params())
    nets = []
    for layout in (False, True):
        torch.manual_seed(0)
        net = create_model("cnn_tiny")
        train(net, images, labels, TrainRecipe(epochs=2, batch_size=16, lr=0.05, channels_last=layout), method, seed=0)
        assert net.features[0][0].weight.is_contiguous()  # saved in the usual layout
        nets.append(torch.cat([p.detach().flatten() for p in net.parameters()]))
    assert (nets[0] - nets[1]).abs().max() < 1e-3  # the same steps, rounded in another order


def _lrs(recipe, n=96):
    """The learning rate each step ran at, read from inside the method."""
    seen = []
    base = build_method(METHODS.get("baseline").Params())

    class Spy(type(base)):
        def forward_train(self, student, teachers, batch):
            seen.append(opt_ref[0].param_groups[0]["lr"])
            return super().forward_train(student, teachers, batch)

    opt_ref = []
    real = torch.optim.SGD

    def capture(*a, **k):
        opt_ref.append(real(*a, **k))
        return opt_ref[0]

    images, labels = _data(n)
    torch.optim.SGD, saved = capture, torch.optim.SGD
    try:
        train(_net(), images, labels, recipe, Spy(base.params), seed=0)
    finally:
        torch.optim.SGD = saved
    return seen


def test_a_torch_scheduler_steps_as_torch_documents():
    recipe = TrainRecipe(epochs=3, batch_size=32, lr=0.05, schedule={"name": "OneCycleLR", "args": {"max_lr": 0.2}})
    got = _lrs(recipe)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.05, momentum=0.9)
    ref = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.2, total_steps=9)
    want = []
    for _ in range(9):  # per optimisation step, over the recipe's whole length
        want.append(opt.param_groups[0]["lr"])
        opt.step()
        ref.step()
    assert got == pytest.approx(want, rel=1e-12)
    assert got[0] == pytest.approx(0.2 / 25) and max(got) > 0.19  # from max_lr / div_factor up towards max_lr

    per_epoch = _lrs(
        TrainRecipe(
            epochs=3, batch_size=32, lr=0.1, schedule={"name": "StepLR", "args": {"step_size": 1, "gamma": 0.5}}
        )
    )
    assert per_epoch == pytest.approx([0.1] * 3 + [0.05] * 3 + [0.025] * 3)


def test_torch_schedulers_are_checked_when_the_suite_is_read(tmp_path):
    from kdbench.config import load_suite

    base = "name: s\ndataset: {name: synthetic}\nteachers: {}\nstudents: {b: {arch: cnn_tiny, method: baseline}}\n"
    cases = {
        "{name: OneCycleLR, args: {maxlr: 0.1}}": "unexpected keyword argument 'maxlr'",
        "{name: LambdaLR}": "OneCycleLR",  # not one a recipe may name: the message lists those
        "linear": "'constant', 'cosine' or 'multistep'",
    }
    for value, expect in cases.items():
        path = tmp_path / "s.yaml"
        path.write_text(base + f"train: {{schedule: {value}}}\n")
        with pytest.raises(SuiteError) as err:
            load_suite(path)
        assert "train.schedule" in str(err.value) and expect in str(err.value)
    path.write_text(base + "train: {warmup_epochs: 1, schedule: {name: StepLR, args: {step_size: 2}}}\n")
    with pytest.raises(SuiteError, match="warms up by itself"):
        load_suite(path)


def test_a_non_finite_loss_stops_training_with_the_epoch_named():
    images, labels = _data()

    class Bad(type(build_method(METHODS.get("baseline").Params()))):
        def losses(self, student_logits, teacher_logits, labels, progress):
            return {"ce": F.cross_entropy(student_logits, labels) * (float("nan") if progress > 0 else 1.0)}

    with pytest.raises(
        FloatingPointError, match=r"not finite .* in epoch 2, in the term\(s\) ce; likely causes: the method.s weights"
    ):
        train(
            _net(),
            images,
            labels,
            TrainRecipe(epochs=2, batch_size=32),
            Bad(METHODS.get("baseline").Params()),
            seed=0,
            desc="s",
        )
