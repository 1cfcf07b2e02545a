"""The robust half of reference_values.py: one training step of IAD and of AdaAD on a fixed batch,
run with the authors' own code as written (IAD-I.py's AttackPGD and the statements of its training
loop; AdaAD's AT_helper.adaad_inner_loss and the AdaAD branch of main.py's loop), on two tiny
seeded networks. Their random starts are given kdbench's draws for the batch's (seed, step), so
the test can ask kdbench for the same step. Images lie in [0.05, 0.95]: the authors' starts are
not clipped to [0, 1] before the first gradient and kdbench's are, which images away from the box's
edges make the same.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from kdbench.training.methods.inner_attack import NORMAL_START
from kdbench.util.seeding import generator

SEED, STEP = 3, 7


def tiny(seed: int) -> nn.Module:
    """A convolution, BatchNorm (the training mode matters), ReLU, pooling and a linear head."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 10),
    )


def batch():
    g = torch.Generator().manual_seed(5)
    return 0.05 + 0.9 * torch.rand(6, 3, 8, 8, generator=g), torch.randint(0, 10, (6,), generator=g)


class _Patched:
    """kdbench's start for (SEED, STEP) in place of the authors' draws, and .cuda() a no-op."""

    def __init__(self, x):
        gen = generator(SEED, "inner_attack", STEP)
        self.u = torch.rand(x.shape, generator=gen).mul_(2).sub_(1)
        gen = generator(SEED, "inner_attack", STEP)
        self.n = torch.randn(x.shape, generator=gen)

    def __enter__(self):
        self.saved = torch.Tensor.uniform_, torch.randn, torch.Tensor.cuda
        torch.Tensor.uniform_ = lambda t, a, b: t.copy_(self.u * b)
        torch.randn = lambda *a, **k: self.n.clone()
        torch.Tensor.cuda = lambda t, *a, **k: t

    def __exit__(self, *exc):
        torch.Tensor.uniform_, torch.randn, torch.Tensor.cuda = self.saved


class _NoOptimizer:
    def zero_grad(self):
        pass


def _tree(path: Path):
    return ast.parse(path.read_text())


def _exec(nodes, namespace):
    exec(compile(ast.Module(body=list(nodes), type_ignores=[]), "<authors' code>", "exec"), namespace)


def _state(model):
    return {k: v.tolist() for k, v in model.state_dict().items()}


def _outcome(loss, x_adv, student):
    grads = torch.autograd.grad(loss, list(student.parameters()))
    return {
        "loss": float(loss),
        "x_adv": x_adv.flatten().tolist(),
        "grad": torch.cat([g.flatten() for g in grads]).tolist(),
    }


def iad_case(repo: Path, alpha: float, temp: float, epoch: int) -> dict:
    tree = _tree(repo / "IAD-I.py")
    ns = {"torch": torch, "nn": nn, "F": F, "argparse": argparse}
    top = [n for n in tree.body if isinstance(n, (ast.ClassDef, ast.Assign, ast.Expr))]
    keep = []
    for n in top:
        text = ast.unparse(n)
        if isinstance(n, ast.ClassDef) and n.name == "AttackPGD":
            keep.append(n)
        elif text.startswith(("parser = ", "parser.add_argument", "config_train = ", "KL_loss = ", "XENT_loss = ")):
            keep.append(n)
    _exec(keep, ns)
    args = ns["parser"].parse_args([])
    args.alpha, args.temp = alpha, temp
    student, teacher = tiny(0), tiny(1).eval()
    x, y = batch()
    weights = {"student": _state(student), "teacher": _state(teacher)}
    train = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "train")
    loop = next(n for n in train.body if isinstance(n, ast.For))
    body = []
    for n in loop.body:
        if ast.unparse(n).startswith("loss.backward"):
            break
        body.append(n)
    student.train()
    ns.update(
        inputs=x.clone(),
        targets=y.clone(),
        device="cpu",
        optimizer=_NoOptimizer(),
        epoch=epoch,
        args=args,
        basic_net=student,
        teacher_net=teacher,
        net=ns["AttackPGD"](student, ns["config_train"]),
    )
    with _Patched(x):
        _exec(body, ns)
    return {
        "params": {"alpha": alpha, "temperature": temp, "beta": args.beta},
        "introspection": epoch >= args.begin,
        "attack": ns["config_train"],
        **weights,
        **_outcome(ns["loss"], ns["pert_inputs"], student),
    }


def adaad_case(repo: Path, alpha: float, dataset: str) -> dict:
    ns = {"torch": torch, "nn": nn, "F": F}
    _exec(_tree(repo / "AT_helper.py").body, ns)
    main = _tree(repo / "main.py")
    branch = next(
        n for n in ast.walk(main) if isinstance(n, ast.If) and ast.unparse(n.test) == "args.method == 'AdaAD'"
    )
    student, teacher = tiny(0), tiny(1).eval()
    x, y = batch()
    weights = {"student": _state(student), "teacher": _state(teacher)}
    args = argparse.Namespace(epsilon=8, step_size=2, num_steps=10, AdaAD_alpha=alpha, dataset=dataset)
    student.train()
    ns.update(
        inputs=x.clone(), targets=y.clone(), net=student, teacher_net=teacher, optimizer=_NoOptimizer(), args=args
    )
    with _Patched(x):
        _exec(branch.body, ns)
    return {
        "params": {"alpha": alpha, "reduction": "mean" if dataset == "CIFAR10" else "batchmean"},
        "attack": {"epsilon": 8 / 255, "step_size": 2 / 255, "num_steps": 10, "start": NORMAL_START},
        **weights,
        **_outcome(ns["loss"], ns["adv_inputs"], student),
    }


def robust_cases(iad: Path | None, adaad: Path | None) -> dict:
    x, y = batch()
    out = {
        "source": "ZFancy/IAD IAD-I.py; boyellow/AdaAD AT_helper.py, main.py",
        "seed": SEED,
        "step": STEP,
        "x": x.flatten().tolist(),
        "y": y.tolist(),
        "cases": {},
    }
    if iad:
        out["cases"]["iad/defaults"] = iad_case(iad, alpha=1.0, temp=1.0, epoch=0)
        out["cases"]["iad/introspecting"] = iad_case(iad, alpha=0.7, temp=4.0, epoch=60)
    if adaad:
        out["cases"]["adaad/cifar10"] = adaad_case(adaad, alpha=1.0, dataset="CIFAR10")
        out["cases"]["adaad/cifar100"] = adaad_case(adaad, alpha=0.7, dataset="CIFAR100")
    return out
