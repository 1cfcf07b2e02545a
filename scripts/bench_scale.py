"""Speed at scale, in figures (a benchmark that prints, not a test):

    jobs       N resnet20 students at once, through `kdbench run --jobs N` and through Ray's
               fractional GPUs (--gpus-per-job 1/N): total training images/s against one at a time
    compile    kdbench's training loop with the recipe's compile off, default and reduce-overhead,
               per architecture and batch size: images/s after the first (compiling) epoch
    autoattack AutoAttack (standard) on a student through kdbench's evaluation, evaluate.compile
               off against on: images/s
    flagship   the flagship suite's dry-run estimate on this device, then a slice of it (one seed,
               EPOCHS epochs) run end to end, extrapolated to the whole suite

    python scripts/bench_scale.py jobs --data-root /tmp/cifar10 --device cuda --counts 1 2 4 8
    python scripts/bench_scale.py compile --device cuda --arch resnet20 wrn_40_2 --batch-size 64 128
    python scripts/bench_scale.py autoattack --device cuda --n 1000
    python scripts/bench_scale.py flagship --data-root /tmp/cifar10 --device cuda --epochs 10

Everything also runs on a CPU, smaller (where compile runs eager: both columns then match).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def kdbench(*args, env=None) -> tuple[float, str]:
    """Run the CLI in its own process; (wall seconds, stderr). A failure prints its end and stops."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "kdbench", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, KDBENCH_PROGRESS="0", **(env or {})),
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"kdbench {' '.join(map(str, args))}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    return wall, proc.stderr


# ----------------------------------------------------------------------------------------- jobs
def jobs_suite(students: int, n_train: int, epochs: int, batch: int, synthetic: bool) -> str:
    data = (
        f"{{name: synthetic, params: {{n_train: {n_train}, n_test: 200}}}}"
        if synthetic
        else f"{{name: cifar10, train_subset: {n_train}}}"
    )
    return (
        f"name: bench_jobs\ndataset: {data}\n"
        f"train: {{epochs: {epochs}, batch_size: {batch}, lr: 0.05, schedule: cosine}}\n"
        f"students:\n  s: {{arch: resnet20, method: baseline, seeds: {list(range(students))}}}\n"
        "evaluate: {n: 200, batch_size: 200, diagnostics: {enabled: false}, saliency: 0}\n"
    )


def bench_jobs(a) -> None:
    print(f"{'students':>8} {'how':<26} {'wall s':>8} {'images/s':>10} {'x one':>7}")
    one = None
    for count in a.counts:
        ways = [("--jobs", ["--jobs", count])]
        if a.ray and count > 1 and a.device.startswith("cuda"):
            ways.append(("ray --gpus-per-job", ["--executor", "ray", "--gpus-per-job", f"{1 / count:.4f}"]))
        for label, flags in ways:
            with tempfile.TemporaryDirectory() as tmp:
                suite = Path(tmp) / "suite.yaml"
                suite.write_text(jobs_suite(count, a.n, a.epochs, a.batch_size, a.data_root is None))
                args = ["run", suite, "--out", tmp, "--device", a.device, *flags]
                if a.data_root:
                    args += ["--data-root", a.data_root]
                if a.threads:
                    args += ["--threads", a.threads]
                wall, _ = kdbench(*args)
            # the whole run's wall time (worker start-up and the short evaluation included): what a user waits
            rate = count * a.n * a.epochs / wall
            one = one or rate
            print(f"{count:>8} {label + ' ' + str(count):<26} {wall:>8.1f} {rate:>10.0f} {rate / one:>7.2f}")


# -------------------------------------------------------------------------------------- compile
def bench_compile(a) -> None:
    import torch

    from kdbench.config import TrainRecipe
    from kdbench.models import create_model, wrap
    from kdbench.training.loop import train
    from kdbench.training.methods import METHODS, build_method

    device = torch.device(a.device)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (a.n, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (a.n,), generator=g)
    method = build_method(METHODS.get("baseline").Params())
    print(f"{'arch':<10} {'batch':>5} {'compile':<16} {'first epoch s':>13} {'images/s':>10} {'x eager':>8}")
    for arch in a.arch:
        for bs in a.batch_size:
            eager = None
            for mode in a.modes:
                mode = False if mode == "false" else mode
                torch._dynamo.reset()
                torch.manual_seed(0)
                net = wrap(create_model(arch), "cifar10")
                recipe = TrainRecipe(epochs=1 + a.epochs, batch_size=bs, lr=0.05, compile=mode)
                stamps = []

                def log(row, stamps=stamps):
                    if device.type == "cuda":
                        torch.cuda.synchronize(device)
                    stamps.append(time.perf_counter())

                start = time.perf_counter()
                train(net, images, labels, recipe, method, 0, device=device, log=log, say=print)
                first = stamps[0] - start  # compiling happens in the first epoch
                rate = a.epochs * a.n / (stamps[-1] - stamps[0])
                eager = eager or rate
                print(f"{arch:<10} {bs:>5} {str(mode):<16} {first:>13.1f} {rate:>10.0f} {rate / eager:>8.2f}")


# ----------------------------------------------------------------------------------- autoattack
def bench_autoattack(a) -> None:
    import torch

    from kdbench.evaluation.conditions import CONDITIONS
    from kdbench.evaluation.evaluate import evaluate
    from kdbench.models import create_model, wrap
    from kdbench.models.compiled import compiled

    device = torch.device(a.device)
    cls = CONDITIONS.get("autoattack")
    cond = cls.build(cls.Params(eps=["8/255"], version="standard"), seed=0)[0]
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (a.n, 3, 32, 32), dtype=torch.uint8, generator=g)
    torch.manual_seed(0)
    net = wrap(create_model(a.arch), "cifar10").to(device).eval()
    with torch.no_grad():  # labels the model gets right: every example is attacked
        labels = torch.cat(
            [net(images[i : i + 500].to(device).float() / 255).argmax(1).cpu() for i in range(0, a.n, 500)]
        )
    print(f"{'arch':<10} {'compile':<16} {'seconds':>8} {'images/s':>10} {'x eager':>8}")
    eager = None
    for mode in a.modes:
        mode = False if mode == "false" else mode
        torch._dynamo.reset()
        model = compiled(net, mode, device, a.arch, print)
        start = time.perf_counter()
        evaluate({"m": model}, [cond], images, labels, torch.arange(a.n), batch_size=a.batch_size, device=device)
        wall = time.perf_counter() - start
        eager = eager or a.n / wall
        print(f"{a.arch:<10} {str(mode):<16} {wall:>8.1f} {a.n / wall:>10.1f} {a.n / wall / eager:>8.2f}")


# ------------------------------------------------------------------------------------- flagship
def bench_flagship(a) -> None:
    import yaml

    suite = ROOT / "suites" / "cifar_noise_gpu.yaml"
    spec = yaml.safe_load(suite.read_text())
    data = ["--data-root", a.data_root] if a.data_root else []
    _, err = kdbench("run", suite, "--dry-run", "--device", a.device, "--out", tempfile.mkdtemp(), *data)
    print("dry-run estimate of the whole suite:", [line for line in err.splitlines() if line.startswith("estimate")])
    full_epochs = spec["train"]["epochs"]
    seeds = {name: len(s.get("seeds", [0])) for name, s in spec["students"].items()}
    overrides = [f"train.epochs={a.epochs}"] + [f"students.{name}.seeds=[0]" for name in spec["students"]]
    with tempfile.TemporaryDirectory() as tmp:
        sets = [x for o in overrides for x in ("--set", o)]
        wall, _ = kdbench("run", suite, "--device", a.device, "--out", tmp, *data, *sets, *a.extra)
        m = json.loads(next(Path(tmp).glob("cifar_noise_gpu/*/manifest.json")).read_text())
    by_kind: dict[str, float] = {}
    for j in m["jobs"]:
        by_kind[j["kind"]] = by_kind.get(j["kind"], 0.0) + j["wall_s"]
    students = sum(seeds.values())
    # training scales with epochs and images; students and their evaluations with seeds; the teacher trains once
    per_epoch = full_epochs / a.epochs * a.full_train / a.train_images
    full = (
        by_kind.get("teacher", 0.0) * per_epoch
        + by_kind.get("student", 0.0) * per_epoch * students / len(seeds)
        + by_kind.get("evaluate", 0.0) * (students + 1) / (len(seeds) + 1)
    )
    print(f"slice: {len(seeds)} students x 1 seed, {a.epochs} epochs, run end to end in {wall:.0f} s; per kind (s):")
    print("  " + ", ".join(f"{k} {v:.0f}" for k, v in by_kind.items()))
    print(
        f"extrapolated to the suite ({students} students, {full_epochs} epochs of {a.full_train:,} images): "
        f"{full / 3600:.2f} h"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    j = sub.add_parser("jobs")
    j.add_argument("--counts", type=int, nargs="+", default=[1, 2, 4, 8])
    j.add_argument("--n", type=int, default=10000, help="training images per student")
    j.add_argument("--epochs", type=int, default=2)
    j.add_argument("--batch-size", type=int, default=128)
    j.add_argument("--no-ray", dest="ray", action="store_false", help="--jobs only")
    c = sub.add_parser("compile")
    c.add_argument("--arch", nargs="+", default=["resnet20", "wrn_40_2"])
    c.add_argument("--batch-size", type=int, nargs="+", default=[64, 128])
    c.add_argument("--modes", nargs="+", default=["false", "default", "reduce-overhead"])
    c.add_argument("--n", type=int, default=10000)
    c.add_argument("--epochs", type=int, default=2, help="timed epochs after the first")
    aa = sub.add_parser("autoattack")
    aa.add_argument("--arch", default="resnet20")
    aa.add_argument("--modes", nargs="+", default=["false", "default"])
    aa.add_argument("--n", type=int, default=1000)
    aa.add_argument("--batch-size", type=int, default=500)
    f = sub.add_parser("flagship")
    f.add_argument("--epochs", type=int, default=10)
    f.add_argument("--train-images", type=int, default=50000, help="training images the slice's data holds")
    f.add_argument("--full-train", type=int, default=50000, help="training images of the full suite's data")
    f.add_argument("extra", nargs="*", help="more kdbench run flags, after --")
    for p in (j, c, aa, f):
        p.add_argument("--device", default="cpu")
        p.add_argument("--data-root")
        p.add_argument("--threads", type=int)
    a = ap.parse_args()
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    {"jobs": bench_jobs, "compile": bench_compile, "autoattack": bench_autoattack, "flagship": bench_flagship}[a.what](
        a
    )


if __name__ == "__main__":
    main()
