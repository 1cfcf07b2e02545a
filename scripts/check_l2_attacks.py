"""kdbench's L2 attacks against torchattacks and pyautoattack on a real model, from the same starts.

    python scripts/check_l2_attacks.py --data-root DIR [--n 200] [--eps 0.5]

Loads the CIFAR-10 ResNet-18 shipped in pyautoattack, takes n seeded, class-stratified test images,
and prints, per attack, the robust accuracy by kdbench and by the reference, how many examples
agree, and the largest pixel difference of the adversarial images (torchattacks averages the loss
over the batch where kdbench sums it: the same steps up to rounding, which PGD's iterations can
grow on a deep network). The starts are the references'
own draws, passed to kdbench's attack (tests/test_l2.py does the same on a small network).
"""

from __future__ import annotations

import argparse

import torch
import torchattacks

from kdbench.config import TeacherSpec
from kdbench.data import load_split
from kdbench.data.subsets import stratified_subset
from kdbench.evaluation.conditions import CONDITIONS
from kdbench.models.teachers import load_checkpoint_teacher


class Given:
    def __init__(self, start):
        self.start = start

    def __call__(self, like, *extra, rows=None):
        return self.start if rows is None else self.start[rows.cpu()]

    def in_ball(self, like):
        return self.start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--eps", type=float, default=0.5)
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()
    from pyautoattack.autopgd_base import APGDAttack

    model = load_checkpoint_teacher(
        TeacherSpec(checkpoint="pkg:pyautoattack/examples/model_test.pt", arch="resnet18", normalize="none")
    )
    model.eval().requires_grad_(False)
    test, _, _ = load_split("cifar10", args.data_root, "test")
    test = test.subset(stratified_subset(test.labels, args.n, 0))
    x, y, eps, steps = test.images.float() / 255, test.labels, args.eps, args.steps

    def build(name, **params):
        cls = CONDITIONS.get(name)
        return cls.build(cls.Params(norm="L2", eps=[eps], **params), 0)[0]

    def robust(adv):
        with torch.no_grad():
            return (model(adv).argmax(1) == y) & (model(x).argmax(1) == y)

    rows = []
    torch.manual_seed(7)
    delta = torch.empty_like(x).normal_()
    radius = torch.zeros(len(x), 1, 1, 1).uniform_(0, 1)
    start = delta * (radius / delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1))
    ours = build("pgd", steps=steps).run_once(model, x, y, eps, Given(start))
    torch.manual_seed(7)
    theirs = torchattacks.PGDL2(model, eps=eps, alpha=2.5 * eps / steps, steps=steps)(x, y)
    rows.append(("pgd (torchattacks.PGDL2)", ours, theirs))
    ours = build("fgsm").attack(model, x, y, test.indices, eps)
    theirs = torchattacks.PGDL2(model, eps=eps, alpha=eps, steps=1, random_start=False)(x, y)
    rows.append(("fgsm (one PGDL2 step)", ours, theirs))
    with torch.no_grad():
        y_pred = model(x).argmax(1)
    for loss in ("ce", "dlr"):
        torch.manual_seed(5)
        start = torch.randn(x.shape)
        ours = build("apgd", steps=100, loss=loss).run_once(model, x, y_pred, eps, Given(start))
        theirs = APGDAttack(
            model, n_iter=100, norm="L2", n_restarts=1, eps=eps, seed=5, loss=loss, eot_iter=1, rho=0.75, device="cpu"
        ).perturb(x, y_pred)
        rows.append((f"apgd {loss} (pyautoattack APGDAttack, labels = predictions)", ours, theirs))
    print(f"pyautoattack's ResNet-18, {len(y)} CIFAR-10 test images, L2 eps {eps:g}")
    for name, ours, theirs in rows:
        ours, theirs = ours.detach(), theirs.detach()
        a, b = robust(ours), robust(theirs)
        print(
            f"{name:<58} kdbench {a.float().mean():.2%}  reference {b.float().mean():.2%}  "
            f"agree {int((a == b).sum())}/{len(y)}  max |Δ| {float((ours - theirs).abs().max()):.2e}  "
            f"max L2 {float((ours - x).flatten(1).norm(dim=1).max()):.4f}"
        )


if __name__ == "__main__":
    main()
