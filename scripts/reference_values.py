"""One-off: reference values computed with the authors' own code, which kdbench does not vendor,
for what torchdistill does not implement (or implements otherwise): NST and FSP from RepDistiller
(https://github.com/HobbitLong/RepDistiller, distiller_zoo/), and, with --iad and --adaad, a
fixed batch's inner attack and loss from IAD's (https://github.com/ZFancy/IAD, IAD-I.py) and
AdaAD's (https://github.com/boyellow/AdaAD, AT_helper.py and main.py) training code, run as
written. The tests compare kdbench's values with the fixtures this writes:

    python scripts/reference_values.py PATH/TO/RepDistiller -o tests/fixtures/feature_references.json \
        --iad PATH/TO/IAD --adaad PATH/TO/AdaAD --robust-output tests/fixtures/robust_references.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import torch

# the inputs: float64, seeded, post-ReLU like the stages the losses read
CASES = {
    "nst": [((4, 6, 8, 8), (4, 10, 8, 8), 0), ((3, 5, 8, 8), (3, 7, 4, 4), 1)],
}
# FSP: chains of features (the stem's output, then stages), the same channels in both networks,
# sizes that halve (pooled in the loss) and that do not
FSP_CASES = [([(3, 4, 8, 8), (3, 4, 8, 8), (3, 6, 4, 4), (3, 8, 2, 2)], 2), ([(2, 3, 4, 4), (2, 5, 4, 4)], 3)]


def chain(shapes, seed):
    g = torch.Generator().manual_seed(seed)
    s = [torch.randn(*shape, generator=g, dtype=torch.float64).relu() for shape in shapes]
    t = [torch.randn(*shape, generator=g, dtype=torch.float64).relu() for shape in shapes]
    return s, t


def inputs(shape_s, shape_t, seed):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(*shape_s, generator=g, dtype=torch.float64).relu()
    t = torch.randn(*shape_t, generator=g, dtype=torch.float64).relu()
    return s, t


def load(repo: Path, name: str):
    spec = importlib.util.spec_from_file_location(f"repdistiller_{name}", repo / "distiller_zoo" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repdistiller", type=Path, help="a checkout of HobbitLong/RepDistiller")
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--iad", type=Path, help="a checkout of ZFancy/IAD")
    parser.add_argument("--adaad", type=Path, help="a checkout of boyellow/AdaAD")
    parser.add_argument("--robust-output", type=Path, default=Path("tests/fixtures/robust_references.json"))
    args = parser.parse_args(argv)
    nst = load(args.repdistiller, "NST").NSTLoss()
    out = {"source": "HobbitLong/RepDistiller distiller_zoo", "cases": {}}
    for i, (shape_s, shape_t, seed) in enumerate(CASES["nst"]):
        s, t = inputs(shape_s, shape_t, seed)
        s.requires_grad_(True)
        (value,) = nst([s], [t])
        (grad,) = torch.autograd.grad(value, s)
        out["cases"][f"nst/{i}"] = {
            "shape_s": shape_s,
            "shape_t": shape_t,
            "seed": seed,
            "value": float(value.detach()),
            "grad": grad.flatten().tolist(),
        }
    fsp = load(args.repdistiller, "FSP").FSP
    for i, (shapes, seed) in enumerate(FSP_CASES):
        s, t = chain(shapes, seed)
        for f in s:
            f.requires_grad_(True)
        value = sum(fsp.compute_loss(a, b) for a, b in zip(fsp.compute_fsp(s), fsp.compute_fsp(t)))
        grads = torch.autograd.grad(value, s)
        out["cases"][f"fsp/{i}"] = {
            "shapes": shapes,
            "seed": seed,
            "value": float(value.detach()),
            "grad": torch.cat([g.flatten() for g in grads]).tolist(),
        }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=0))
    print(f"wrote {args.output} ({len(out['cases'])} cases)")
    if args.iad or args.adaad:
        from robust_reference_values import robust_cases  # noqa: PLC0415 - beside this script

        robust = robust_cases(args.iad, args.adaad)
        args.robust_output.write_text(json.dumps(robust, indent=0))
        print(f"wrote {args.robust_output} ({len(robust['cases'])} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
