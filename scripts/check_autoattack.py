"""kdbench's `autoattack` against pyautoattack.AutoAttack called directly, on a real model.

    python scripts/check_autoattack.py --data-root DIR [--n 500] [--eps 8/255] [--version standard]
    python scripts/check_autoattack.py --data-root DIR --norm L2 --eps 0.5

Loads the CIFAR-10 ResNet-18 shipped in pyautoattack (examples/model_test.pt), takes the suite's
way of choosing `n` test examples (seeded, class-stratified), scores it through kdbench's
evaluation loop and through AutoAttack's own call with the same seed and batch size, and prints
both robust accuracies and whether the per-example results are identical.
"""

from __future__ import annotations

import argparse
import time

import torch

from kdbench.config import TeacherSpec
from kdbench.data import load_split
from kdbench.data.subsets import stratified_subset
from kdbench.evaluation.conditions import CONDITIONS
from kdbench.evaluation.evaluate import evaluate
from kdbench.models.teachers import load_checkpoint_teacher
from kdbench.util.levels import parse_fraction


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--eps", default="8/255")
    ap.add_argument("--version", default="standard", choices=["standard", "rand"])
    ap.add_argument("--norm", default="Linf", choices=["Linf", "L2"])
    ap.add_argument("--batch-size", type=int, default=250)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--images", action="store_true", help="also compare the adversarial images (one more AutoAttack run)"
    )
    args = ap.parse_args()
    eps = parse_fraction(args.eps)

    from pyautoattack import AutoAttack

    model = load_checkpoint_teacher(
        TeacherSpec(checkpoint="pkg:pyautoattack/examples/model_test.pt", arch="resnet18", normalize="none")
    )
    model.eval().requires_grad_(False)
    test, _, _ = load_split("cifar10", args.data_root, "test")
    test = test.subset(stratified_subset(test.labels, args.n, args.seed))
    x, y = test.images.float() / 255, test.labels

    conds = [
        c
        for name, params in (("clean", {}), ("autoattack", {"eps": [eps], "version": args.version, "norm": args.norm}))
        for c in CONDITIONS.get(name).build(CONDITIONS.get(name).Params(**params), args.seed)
    ]
    t0 = time.perf_counter()
    result = evaluate({"m": model}, conds, test.images, test.labels, test.indices, batch_size=args.batch_size)["m"]
    t1 = time.perf_counter()
    ours = result.correct[[c.condition for c in result.cells].index(conds[1].name)]
    if args.images:  # the adversarial images themselves, from the condition evaluate() calls
        conds[1].batch_size = args.batch_size
        x_ours = conds[1].attack(model, x, y, test.indices, eps)
    t1b = time.perf_counter()

    reference = AutoAttack(model, norm=args.norm, eps=eps, version=args.version, seed=args.seed, device="cpu")
    x_adv, _ = reference.run_standard_evaluation(x, y, batch_size=args.batch_size)
    t2 = time.perf_counter()
    with torch.no_grad():
        clean = torch.cat([model(x[i : i + args.batch_size]).argmax(1) for i in range(0, len(x), args.batch_size)]) == y
        adv = (
            torch.cat([model(x_adv[i : i + args.batch_size]).argmax(1) for i in range(0, len(x), args.batch_size)]) == y
        )
    theirs = clean & adv
    print(f"examples {len(y)}, {args.norm} eps {eps:.6g}, version {args.version}, seed {args.seed}")
    print(f"clean accuracy            {clean.float().mean():.2%}")
    print(f"kdbench autoattack        {ours.float().mean():.2%}  ({t1 - t0:.0f} s)")
    print(f"pyautoattack directly     {theirs.float().mean():.2%}  ({t2 - t1b:.0f} s)")
    print(f"per-example identical     {bool(torch.equal(ours, theirs))}")
    if args.images:
        print(f"adversarial images equal  {bool(torch.equal(x_ours, x_adv))}")


if __name__ == "__main__":
    main()
