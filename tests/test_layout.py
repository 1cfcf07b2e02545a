"""The package's shape: named as the project, no import cycles, registries filled one way, the
docs' reference generated from them."""

import ast
import importlib.util
from pathlib import Path

import pytest

from kdbench.registry import Registry

ROOT = Path(__file__).resolve().parent.parent


def test_the_import_name_is_the_projects():
    assert not (ROOT / "bench").exists() and not (ROOT / "kdbench.py").exists()
    assert importlib.util.find_spec("bench") is None
    assert Path(importlib.util.find_spec("kdbench").origin) == ROOT / "kdbench" / "__init__.py"


def _import_graph() -> dict[str, set[str]]:
    """Module -> the kdbench modules it imports (at any depth, lazily too; not under TYPE_CHECKING)."""
    files = {
        ".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): f
        for f in (ROOT / "kdbench").rglob("*.py")
    }

    def resolve(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for module, file in files.items():
        tree = ast.parse(file.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                node.body = []
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kdbench"):
                targets |= {resolve(f"{node.module}.{a.name}") for a in node.names}
            elif isinstance(node, ast.Import):
                targets |= {resolve(a.name) for a in node.names if a.name.startswith("kdbench")}
            elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "lazy" and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and str(arg.value).startswith("kdbench"):
                    targets.add(resolve(arg.value))
        graph[module] = {t for t in targets if t and t != module}
    return graph


def test_no_import_cycles():
    graph = _import_graph()
    assert len(graph) > 100
    state: dict[str, int] = {}  # 1 on the path, 2 done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                pytest.fail("import cycle: " + " -> ".join(path[path.index(target) :] + [module, target]))
            if target not in state:
                visit(target, path + [module])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


# The layers, lowest first: a module imports from its own layer or below, never above, so data flow
# one way (suite -> plan -> jobs -> results -> analysis -> reports). docs/contributing.md lists them.
LAYERS = [
    ("util", "version"),
    ("registry",),
    ("results", "data", "models"),
    ("evaluation",),
    ("training",),
    ("config",),
    ("executors",),
    ("pipeline",),
    ("analysis",),
    ("reports",),
    ("exports", "index", "tracking"),
    ("api",),
    ("cli", "__main__", "kdbench"),  # kdbench: the package's __init__
]


def _layer_of(module: str) -> int:
    top = module.split(".")[1] if "." in module else module
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module}: its package {top!r} is in no layer of LAYERS")


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{m} (layer {_layer_of(m)}) imports {t} (layer {_layer_of(t)})"
        for m, targets in graph.items()
        for t in targets
        if _layer_of(t) > _layer_of(m)
    )


def test_data_flow_one_way_through_the_layers():
    assert upward_imports(_import_graph()) == []


def test_the_layer_check_fails_on_an_upward_import():
    graph = _import_graph()
    graph["kdbench.executors.store"] = graph["kdbench.executors.store"] | {"kdbench.pipeline.plan"}
    graph["kdbench.util.format"] = graph["kdbench.util.format"] | {"kdbench.reports.tables"}
    assert upward_imports(graph) == [
        "kdbench.executors.store (layer 6) imports kdbench.pipeline.plan (layer 7)",
        "kdbench.util.format (layer 0) imports kdbench.reports.tables (layer 9)",
    ]


def test_no_module_is_longer_than_300_lines_but_the_corruption_kernels():
    """One idea per module: the corruption kernels (the reference's parameters, one function per
    corruption, kept together as the reference keeps them) are the one exception."""
    long = {
        str(f.relative_to(ROOT)): n
        for f in (ROOT / "kdbench").rglob("*.py")
        if (n := len(f.read_text().splitlines())) > 300
    }
    assert set(long) <= {"kdbench/evaluation/conditions/corruptions/kernels.py"}, long


def test_condition_order_is_pinned():
    """The conditions' order enters every evaluation's hash (the evaluation specification lists them
    in registry order): a new condition goes last, and none moves."""
    from kdbench.evaluation.conditions import CONDITIONS

    assert [n for n, _ in CONDITIONS.items()] == [
        "clean",
        "gaussian_noise",
        "fgsm",
        "pgd",
        "cw",
        "apgd",
        "apgd_t",
        "square",
        "autoattack",
        "transfer",
        "robust",
        "corruptions",
    ]


def test_every_registry_is_declared_from_the_sources_and_complete():
    """Each registry knows its built-in names before importing anything, and importing them adds no
    name the sources did not declare."""
    from kdbench.data import DATASETS
    from kdbench.evaluation.conditions import CONDITIONS
    from kdbench.evaluation.model_metrics import MODEL_METRICS
    from kdbench.exports import EXPORTERS
    from kdbench.models import MODELS
    from kdbench.training.methods import METHODS

    for registry, some in (
        (MODELS, "resnet20"),
        (METHODS, "kd"),
        (CONDITIONS, "pgd"),
        (DATASETS, "cifar10"),
        (MODEL_METRICS, "ece"),
        (EXPORTERS, "latex"),
    ):
        declared = list(registry._declared)
        assert some in declared, registry.kind
        assert [n for n, _ in registry.items()] == declared, registry.kind
        assert all(registry.doc(n) for n in declared), registry.kind


def test_a_name_registered_twice_names_both_origins(tmp_path):
    from kdbench.registry import registering_from

    reg = Registry("thing")

    def first():
        pass

    def second():
        pass

    with registering_from("plugin file a.py"):
        reg.register("x")(first)
        reg.register("x")(first)  # the same object again is no conflict
    with (
        registering_from("plugin file b.py"),
        pytest.raises(
            ValueError, match=r"thing 'x' registered twice: by plugin file a.py \(test_layout\) and by plugin file b.py"
        ),
    ):
        reg.register("x")(second)
    with registering_from("plugin file a.py"):  # the same plugin again, edited: its new definition wins
        reg.register("x")(second)
    assert reg.get("x") is second and reg.origin("x") == "plugin file a.py"
    reg.forget("plugin file a.py")
    assert "x" not in reg


def test_the_docs_reference_lists_every_registered_name():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    from kdbench.data import DATASETS
    from kdbench.evaluation.conditions import CONDITIONS
    from kdbench.evaluation.model_metrics import MODEL_METRICS
    from kdbench.exports import EXPORTERS
    from kdbench.models import MODELS
    from kdbench.training.methods import METHODS

    registries = (
        ("methods", METHODS),
        ("conditions", CONDITIONS),
        ("architectures", MODELS),
        ("datasets", DATASETS),
        ("metrics", MODEL_METRICS),
        ("exports", EXPORTERS),
    )
    for kind, registry in registries:
        table = hooks.reference(kind)
        for name in registry.names():
            assert f"| `{name}` |" in table, (kind, name)
    page = (ROOT / "docs" / "reference.md").read_text()
    rendered = hooks.on_page_markdown(page)
    assert rendered.count("\n| `") == sum(len(r.names()) for _, r in registries) and "<!-- reference:" not in rendered
    methods = hooks.reference("methods")
    assert "`temperature` (`4.0`)" in methods and "`alpha` (`0.1`)" in methods  # kd's defaults, from its Params
