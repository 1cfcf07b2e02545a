"""Stands in for a team's own training pipeline: plain PyTorch, no kdbench in the loop. It trains the
team's network twice per seed, on hard labels (the baseline twin) and distilled from a teacher, and
saves one state_dict each: the checkpoints the suite scores.

    python examples/gate-your-model/train_team_models.py --out examples/gate-your-model/checkpoints

The data here is kdbench's built-in synthetic set (a team would use its own). `--bug` is a worse
release: the distilled students' data pipeline loses every image of one class, so they no longer
recognise it; the gate, run against the baseline blessed from the good release, trips on it.
"""

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from team_net import teamnet  # noqa: E402

from kdbench.data import load_dataset  # noqa: E402  (only to get the same synthetic images)


def train(model, x, y, teacher=None, epochs=8, seed=0, temperature=4.0, alpha=0.5):
    torch.manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(x)).split(50):
            z = model(x[idx])
            loss = F.cross_entropy(z, y[idx])
            if teacher is not None:
                with torch.no_grad():
                    zt = teacher(x[idx])
                kl = F.kl_div(
                    F.log_softmax(z / temperature, 1),
                    F.log_softmax(zt / temperature, 1),
                    reduction="batchmean",
                    log_target=True,
                )
                loss = alpha * loss + (1 - alpha) * temperature**2 * kl
            opt.zero_grad()
            loss.backward()
            opt.step()
        schedule.step()
    return model.eval()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--bug", action="store_true", help="the distilled students never see class 0 (a worse release)")
    p.add_argument("--only", choices=("base", "kd"), help="train only these students (and keep the teacher there is)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    data = load_dataset("synthetic", n_train=800, n_test=300, seed=0)
    x, y = data.train.images.float() / 255, data.train.labels  # the nets see [0, 1] images: normalize: none
    args.out.mkdir(parents=True, exist_ok=True)
    if args.only and (args.out / "teacher.pt").is_file():
        teacher = teamnet()
        teacher.load_state_dict(torch.load(args.out / "teacher.pt", weights_only=True))
        teacher.eval()
    else:
        torch.manual_seed(100)
        teacher = train(teamnet(), x, y, epochs=args.epochs, seed=100)
        torch.save(teacher.state_dict(), args.out / "teacher.pt")
    for seed in args.seeds:
        for name, t in (("base", None), ("kd", teacher)):
            if args.only and name != args.only:
                continue
            keep = (y != 0) if name == "kd" and args.bug else torch.ones_like(y, dtype=torch.bool)
            torch.manual_seed(seed)  # twins start from the same weights
            model = train(teamnet(), x[keep], y[keep], teacher=t, epochs=args.epochs, seed=seed)
            torch.save(model.state_dict(), args.out / f"{name}_s{seed}.pt")
    print(f"wrote {'the teacher and ' if not args.only else ''}the students to {args.out}")


if __name__ == "__main__":
    main()
