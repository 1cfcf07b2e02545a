"""One-off: the reference values of the feature losses torchdistill does not implement, computed
with RepDistiller's own code (https://github.com/HobbitLong/RepDistiller, distiller_zoo/), which
kdbench does not vendor. The tests compare kdbench's losses and their gradients with the fixture
this writes:

    python scripts/reference_values.py PATH/TO/RepDistiller -o tests/fixtures/feature_references.json
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
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=0))
    print(f"wrote {args.output} ({len(out['cases'])} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
