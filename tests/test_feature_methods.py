"""The features contract (every registered architecture) and fitnets, at, rkd and crd against
their formulas written out by hand; each trains, with its trainable parts in the optimiser."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kdbench.models import MODELS, create_model, wrap
from kdbench.models.features import FeatureError, feature_shapes, features, stage_names
from kdbench.training.methods import METHODS, build_method
from kdbench.training.methods.at import attention_loss
from kdbench.training.methods.base import Batch, Teachers
from kdbench.training.methods.crd import contrast_indices, crd_modules, nce_loss, update_memory
from kdbench.training.methods.fitnets import conv_regressor
from kdbench.training.methods.rkd import angles, relative_distances

FEATURE_METHODS = ["fitnets", "at", "rkd", "crd", "sp", "pkt", "vid", "nst", "cc", "ft", "ab", "fsp"]
# AB reads pre-activations (stages that end in a ReLU) and FSP needs the teacher's widths: a ResNet
STUDENT = {"ab": "resnet8", "fsp": "resnet8"}
PARAMS = {"crd": {"nce_k": 32}, "ft": {"init_epochs": 1}, "ab": {"init_epochs": 1}, "fsp": {"init_epochs": 1}}


@pytest.mark.parametrize("arch", [name for name, _ in MODELS.items()])
def test_every_architecture_gives_its_stages_and_embedding(arch):
    torch.manual_seed(0)
    model = wrap(create_model(arch), "cifar10").eval()
    x = torch.rand(2, 3, 32, 32)
    f = features(model, x)
    assert torch.equal(f.logits, model(x))  # the same forward pass
    assert len(f.stages) == len(stage_names(model)) >= 3
    sizes = [s.shape[2] for s in f.stages]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == len(sizes)  # one stage per resolution
    head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert f.embedding.shape == (2, head.in_features)
    assert torch.allclose(head(f.embedding), f.logits)


def test_the_extractor_shares_weights_and_follows_the_mode():
    torch.manual_seed(0)
    a, b = wrap(create_model("resnet8"), "cifar10"), wrap(create_model("resnet8"), "cifar10")
    b.load_state_dict(a.state_dict())
    x = torch.rand(4, 3, 32, 32)
    a.train(), b.train()
    assert torch.equal(features(a, x).logits, b(x))  # batch statistics in train mode
    assert torch.equal(a.net.bn1.running_mean, b.net.bn1.running_mean)  # and the same running-stat update
    with torch.no_grad():
        a.net.fc.bias.add_(1.0)
    a.eval(), b.eval()
    assert torch.allclose(features(a, x).logits, b(x) + 1.0)  # a later change to the weights is seen
    shapes = feature_shapes(a)
    assert [tuple(s.shape[1:]) for s in shapes.stages] == [(16, 32, 32), (32, 16, 16), (64, 8, 8)]
    with pytest.raises(FeatureError, match="no 4-D feature maps before its head; give feature_stages"):
        stage_names(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3072, 10)))


@pytest.mark.parametrize(
    ("s", "t", "layer"),
    [
        ((8, 16, 16), (32, 8, 8), torch.nn.Conv2d),
        ((8, 8, 8), (32, 16, 16), torch.nn.ConvTranspose2d),
        ((8, 10, 10), (32, 8, 8), torch.nn.Conv2d),
        ((8, 8, 8), (32, 8, 8), torch.nn.Conv2d),
    ],
)
def test_fitnets_connector_maps_student_to_teacher_shape(s, t, layer):
    reg = conv_regressor(s, t)
    assert isinstance(reg[0], layer)
    assert reg(torch.rand(2, *s)).shape == (2, *t)


def test_fitnets_connector_refuses_what_it_cannot_map():
    with pytest.raises(ValueError, match="no connector from a 4x4 student feature to a 16x16"):
        conv_regressor((8, 4, 4), (32, 16, 16))


def feature_batch(n=6, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 32, 32, generator=g)
    return Batch(x, torch.arange(n) % classes, torch.arange(n), 0.0, seed=seed, step=0)


def test_fitnets_loss_by_hand():
    torch.manual_seed(0)
    student, teacher = wrap(create_model("cnn_tiny"), "cifar10"), wrap(create_model("resnet8"), "cifar10").eval()
    method = build_method(METHODS.get("fitnets").Params())
    reg = method.setup(student, Teachers([teacher]), torch.zeros(6, dtype=torch.long))
    batch = feature_batch()
    logits, losses = method.forward_train(student, Teachers([teacher]), batch)
    # by hand: the student's second-to-last stage (features.1: 32 x 8 x 8) through the connector,
    # against the teacher's (layer2: 32 x 16 x 16), mean squared error, weight 100
    h = student.net.features[1](student.net.features[0]((batch.x - student.mean) / student.std))
    with torch.no_grad():
        t_hint = teacher.net.layer2(
            teacher.net.layer1(F.relu(teacher.net.bn1(teacher.net.conv1((batch.x - teacher.mean) / teacher.std))))
        )
    assert isinstance(reg[0], torch.nn.ConvTranspose2d)
    assert losses["hint"].item() == pytest.approx(100 * ((reg(h) - t_hint) ** 2).mean().item(), rel=1e-5)
    assert losses["ce"].item() == pytest.approx(F.cross_entropy(logits, batch.y).item(), rel=1e-6)


def test_attention_loss_by_hand():
    g = torch.Generator().manual_seed(1)
    f_s, f_t = (
        torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64),
        torch.randn(2, 5, 2, 2, generator=g, dtype=torch.float64),
    )
    s, t = f_s.numpy(), f_t.numpy()
    # the student's 4x4 maps average-pooled to 2x2, then per image: a = mean_c f^2, flattened, unit norm
    s = s.reshape(2, 3, 2, 2, 2, 2).mean(axis=(3, 5))
    total = 0.0
    for b in range(2):
        a_s = (s[b] ** 2).mean(0).ravel()
        a_t = (t[b] ** 2).mean(0).ravel()
        a_s, a_t = a_s / np.linalg.norm(a_s), a_t / np.linalg.norm(a_t)
        total += ((a_s - a_t) ** 2).sum()
    assert attention_loss(f_s, f_t, 2.0).item() == pytest.approx(total / (2 * 4), rel=1e-12)


def test_at_pairs_stages_from_the_deepest():
    torch.manual_seed(0)
    student, teacher = wrap(create_model("cnn_tiny"), "cifar10"), wrap(create_model("resnet18"), "cifar10").eval()
    batch = feature_batch()
    _, losses = build_method(METHODS.get("at").Params()).forward_train(student, Teachers([teacher]), batch)
    f_s = features(student, batch.x)
    with torch.no_grad():
        f_t = features(teacher, batch.x)
    # cnn_tiny's three stages meet resnet18's layer2..4
    want = sum(attention_loss(s, t, 2.0) for s, t in zip(f_s.stages, f_t.stages[1:]))
    assert losses["attention"].item() == pytest.approx(1000 * want.item(), rel=1e-5)


def huber(a, b):
    d = abs(a - b)
    return 0.5 * d * d if d < 1 else d - 0.5


def test_rkd_distances_and_angles_by_hand():
    g = torch.Generator().manual_seed(2)
    e = torch.randn(4, 3, generator=g, dtype=torch.float64)
    pts = e.numpy()
    n = len(pts)
    dist = [[float(np.linalg.norm(pts[i] - pts[j])) for j in range(n)] for i in range(n)]
    mean = sum(dist[i][j] for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    got = relative_distances(e, False, 1e-12)
    for i, j in itertools.product(range(n), repeat=2):
        assert got[i, j].item() == pytest.approx(dist[i][j] / mean if i != j else 0.0, rel=1e-9, abs=1e-12)
    cos = angles(e).view(n, n, n)

    def unit(v):
        norm = np.linalg.norm(v)
        return v / norm if norm > 0 else v

    for i, j, k in itertools.product(range(n), repeat=3):
        # the angle at vertex i between the edges to j and to k
        want = float(unit(pts[j] - pts[i]) @ unit(pts[k] - pts[i]))
        assert cos[i, j, k].item() == pytest.approx(want, abs=1e-9)


def test_rkd_loss_by_hand_on_the_embeddings():
    torch.manual_seed(0)
    student, teacher = wrap(create_model("cnn_tiny"), "cifar10"), wrap(create_model("resnet8"), "cifar10").eval()
    batch = feature_batch(n=5)
    _, losses = build_method(METHODS.get("rkd").Params()).forward_train(student, Teachers([teacher]), batch)
    s = features(student, batch.x).embedding.double()
    with torch.no_grad():
        t = features(teacher, batch.x).embedding.double()
    ds, dt = (
        relative_distances(s, False, 1e-12).flatten().tolist(),
        relative_distances(t, False, 1e-12).flatten().tolist(),
    )
    as_, at_ = angles(s).tolist(), angles(t).tolist()
    distance = sum(huber(a, b) for a, b in zip(ds, dt)) / len(ds)
    angle = sum(huber(a, b) for a, b in zip(as_, at_)) / len(as_)
    assert losses["distance"].item() == pytest.approx(25 * distance, rel=1e-4)
    assert losses["angle"].item() == pytest.approx(50 * angle, rel=1e-4)
    losses["distance"].backward()
    assert student.net.features[0][0].weight.grad is not None
    assert all(p.grad is None for p in teacher.parameters())


def crd_parts(labels, k=8, dim=4):
    params = METHODS.get("crd").Params(nce_k=k, feat_dim=dim)
    torch.manual_seed(0)
    return crd_modules(6, 5, params, labels), params


def test_crd_negatives_come_from_other_classes_uniformly():
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 2, 2, 1, 0, 2, 2])
    m, _ = crd_parts(labels, k=20000)
    index = torch.tensor([0, 1, 2, 6])
    idx = contrast_indices(m, index, labels[index], 20000, torch.Generator().manual_seed(0))
    assert idx.shape == (4, 20001) and torch.equal(idx[:, 0], index)
    for row, y in zip(idx, labels[index]):
        negatives = row[1:]
        assert not (labels[negatives] == y).any()
        others = (labels != y).nonzero().flatten()
        counts = torch.bincount(negatives, minlength=len(labels))[others].double()
        # uniform over the other classes' images: each count within 5 sd of k / their number
        expected = 20000 / len(others)
        assert ((counts - expected).abs() < 5 * math.sqrt(expected)).all()


def test_crd_refuses_a_single_class():
    with pytest.raises(ValueError, match="two classes or more"):
        crd_parts(torch.zeros(6, dtype=torch.long))


def test_crd_nce_loss_by_hand():
    h = torch.tensor([[0.9, 0.1, 0.3], [0.2, 0.05, 0.6]], dtype=torch.float64)
    n = 10
    m = 2 / n
    eps = 1e-7
    want = 0.0
    for row in h.tolist():
        want += math.log(row[0] / (row[0] + m + eps)) + sum(math.log(m / (v + m + eps)) for v in row[1:])
    assert nce_loss(h, n).item() == pytest.approx(-want / 2, rel=1e-12)


def test_crd_memory_update_is_momentum_then_unit_norm():
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], dtype=torch.float64)
    v = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    update_memory(bank, torch.tensor([0, 2]), v, 0.5)
    assert bank[0].tolist() == pytest.approx([math.sqrt(0.5), math.sqrt(0.5)])
    assert bank[1].tolist() == [0.0, 1.0]
    row = np.array([0.3 + 0.5, 0.4])
    assert bank[2].tolist() == pytest.approx(list(row / np.linalg.norm(row)))


def test_crd_step_fixes_z_on_the_first_batch_and_moves_the_banks():
    torch.manual_seed(0)
    student, teacher = wrap(create_model("cnn_tiny"), "cifar10"), wrap(create_model("resnet8"), "cifar10").eval()
    labels = torch.arange(6) % 3
    method = build_method(METHODS.get("crd").Params(nce_k=5))
    parts = method.setup(student, Teachers([teacher]), labels)
    assert parts.embed_s.in_features == 64 and parts.embed_t.in_features == 64 and parts.memory_s.shape == (6, 128)
    before = parts.memory_s.clone()
    batch = feature_batch()
    _, losses = method.forward_train(student, Teachers([teacher]), batch)
    z = parts.z.clone()
    assert (z > 0).all() and math.isfinite(losses["contrast"].item())
    assert not torch.equal(before, parts.memory_s)
    assert torch.allclose(parts.memory_s.norm(dim=1), torch.ones(6, dtype=parts.memory_s.dtype))
    method.forward_train(student, Teachers([teacher]), batch)
    assert torch.equal(parts.z, z)  # fixed after the first batch


@pytest.mark.parametrize("name", FEATURE_METHODS)
def test_each_trains_its_own_parts_and_leaves_the_teacher(name):
    from kdbench.config import TrainRecipe
    from kdbench.training.loop import train

    g = torch.Generator().manual_seed(0)
    images, labels = (
        torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=g),
        torch.randint(0, 10, (64,), generator=g),
    )
    params = METHODS.get(name).Params(**PARAMS.get(name, {}))

    def run():
        torch.manual_seed(0)
        teacher = wrap(create_model("resnet8"), "cifar10").eval()
        student = wrap(create_model(STUDENT.get(name, "cnn_tiny")), "cifar10")
        t_state = {k: v.clone() for k, v in teacher.state_dict().items()}
        method, initial = build_method(params), {}
        setup = method.setup

        def recording_setup(*args):
            parts = setup(*args)
            if parts is not None:
                initial.update({k: p.detach().clone() for k, p in parts.named_parameters()})
            return parts

        method.setup = recording_setup
        history = train(
            student, images, labels, TrainRecipe(epochs=2, batch_size=32, lr=0.01), method, 0, teachers=[teacher]
        )
        assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in t_state.items())  # weights and BN statistics
        return student, method, history, initial

    student, method, history, initial = run()
    assert len(history) == 2 and all(math.isfinite(v) for row in history for v in row.values())
    parts = {"fitnets": "connector", "crd": "parts", "vid": "heads", "cc": "embed", "ft": "translator"}.get(name)
    assert bool(initial) == bool(parts)
    if parts:  # in the optimiser: every parameter moved
        trained = dict(getattr(method, parts).named_parameters())
        assert all(not torch.equal(p, trained[k]) for k, p in initial.items())
    again, _, history2, _ = run()
    assert history2 == history and all(
        torch.equal(a, b) for a, b in zip(student.state_dict().values(), again.state_dict().values())
    )
    assert METHODS.get(name).role == "distilled" and METHODS.get(name).uses_features


def test_suites_refuse_feature_methods_without_one_known_teacher(tmp_path):
    from pydantic import ValidationError

    from kdbench.config import Suite

    base = {
        "name": "f",
        "dataset": {"name": "synthetic"},
        "train": {"epochs": 1},
        "teachers": {"t1": {"arch": "cnn_tiny"}, "t2": {"arch": "cnn_tiny"}, "zoo": {"robustbench": "Standard"}},
    }
    with pytest.raises(ValidationError, match="learns from one teacher's features: give one teacher, not an ensemble"):
        Suite.model_validate(
            {
                **base,
                "students": {
                    "s": {"arch": "cnn_tiny", "method": "at", "teachers": ["t1", "t2"], "ensemble": "mean_probs"}
                },
            }
        )
    with pytest.raises(
        ValidationError, match="'zoo' is a RobustBench zoo model, whose intermediate features kdbench does not know"
    ):
        Suite.model_validate({**base, "students": {"s": {"arch": "cnn_tiny", "method": "rkd", "teachers": "zoo"}}})
    Suite.model_validate({**base, "students": {"s": {"arch": "cnn_tiny", "method": "crd", "teachers": "t1"}}})


def test_a_teacher_gives_each_example_the_same_features_in_any_batch():
    # what caching the teachers' features rests on: eval mode, so an example's outputs do not
    # depend on the other examples of its batch, its position, or the batch's size
    torch.manual_seed(0)
    teacher = wrap(create_model("resnet20"), "cifar10").eval()
    x = torch.rand(40, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b, c = features(teacher, x[:24]), features(teacher, torch.cat([x[24:], x[:8]])), features(teacher, x[:5])
    for fa, fb, fc in zip(
        (a.logits, a.embedding, *a.stages), (b.logits, b.embedding, *b.stages), (c.logits, c.embedding, *c.stages)
    ):
        assert torch.equal(fa[:8], fb[16:]) and torch.equal(fa[:5], fc)


@pytest.mark.parametrize("method", ["fitnets", "at", "rkd", "crd"])
def test_cached_teacher_features_train_the_same_student(method, monkeypatch):
    from kdbench.config import TrainRecipe
    from kdbench.training import loop

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (64,), generator=g)
    teacher = None
    recipe = TrainRecipe(epochs=3, batch_size=24, lr=0.05, augment=False)
    params = METHODS.get(method).Params(**({"nce_k": 16} if method == "crd" else {}))
    calls = []
    import kdbench.models.features as feats

    real = feats.features
    monkeypatch.setattr(
        feats,
        "features",
        lambda model, x, **kw: (calls.append(len(x)) if model is teacher else None, real(model, x, **kw))[1],
    )

    def trained(budget=None):
        nonlocal teacher
        torch.manual_seed(0)
        student = wrap(create_model("cnn_tiny"), "cifar10")
        torch.manual_seed(1)
        teacher = wrap(create_model("resnet20"), "cifar10").eval()
        if budget is not None:
            monkeypatch.setattr(loop, "free_memory", lambda device: budget)
        lines = []
        history = loop.train(
            student, images, labels, recipe, build_method(params), 0, teachers=[teacher], say=lines.append
        )
        return student.state_dict(), history, lines

    cached, history, lines = trained()
    # the teacher met each example once, in the first epoch (before it: the method's shape probe, if any)
    cached_calls, calls[:] = list(calls), []
    assert lines == [] and cached_calls[-3:] == [24, 24, 16]
    fresh, fresh_history, lines = trained(budget=0)
    assert calls[-9:] == [24, 24, 16] * 3 and len(calls) == len(cached_calls) + 6  # every batch of every epoch
    assert (
        len(lines) == 1 and "teacher features not cached" in lines[0] and "the teacher runs on every batch" in lines[0]
    )
    assert history == fresh_history
    for k in cached:
        assert torch.equal(cached[k], fresh[k]), k


@pytest.mark.parametrize("name", ["ft", "ab", "fsp"])
def test_a_pretraining_stage_trains_its_parts_then_leaves_the_students_draws_alone(name):
    """FT's paraphraser, AB's connectors and the student (AB, FSP) move in the pre-training stage;
    FT's paraphraser is frozen afterwards. The stage draws its own data order, so the training
    that follows sees the batches its baseline twin sees."""
    from kdbench.config import TrainRecipe
    from kdbench.training.loop import train

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (48, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (48,), generator=g)
    recipe = TrainRecipe(epochs=2, batch_size=16, lr=0.01, augment=True)

    def run(method_name, **kw):
        torch.manual_seed(0)
        teacher = wrap(create_model("resnet8"), "cifar10").eval()
        student = wrap(create_model("resnet8"), "cifar10")
        method = build_method(METHODS.get(method_name).Params(**kw))
        seen, forward, before = [], method.forward_train, {}
        method.forward_train = lambda s, t, b: (seen.append(b.index.tolist()), forward(s, t, b))[1]
        setup = method.setup

        def recording(*args):
            out = setup(*args)
            if method_name == "ft":
                before.update({k: v.detach().clone() for k, v in method.paraphraser.state_dict().items()})
            return out

        method.setup = recording
        lines = []
        train(student, images, labels, recipe, method, 0, teachers=[teacher], say=lines.append)
        return method, student, seen, before, lines

    method, student, seen, before, lines = run(name, init_epochs=2)
    _, baseline, twin_seen, _, _ = run("baseline")
    assert seen == twin_seen
    assert [line.split(":")[1].strip() for line in lines] == ["pre-training epoch 1/2", "pre-training epoch 2/2"]
    if name == "ft":
        after = method.paraphraser.state_dict()
        assert all(not torch.equal(v, after[k]) for k, v in before.items())
        assert not method.paraphraser.training
    _, unpretrained, *_ = run(name, init_epochs=0)
    changed = [k for k, v in student.state_dict().items() if not torch.equal(v, unpretrained.state_dict()[k])]
    assert changed  # the pre-trained layers (AB, FSP) or the pre-trained paraphraser's factors (FT) told
    if name == "ft":  # whose stage trains the paraphraser alone
        assert {id(p) for p in method.pretrain_setup(student).parameters()}.isdisjoint(map(id, student.parameters()))
    if name == "ab":  # with no pre-training, AB is the baseline's cross-entropy: the same student
        assert all(
            torch.equal(a, b) for a, b in zip(unpretrained.state_dict().values(), baseline.state_dict().values())
        )


def test_ab_refuses_stages_without_a_preactivation_and_fsp_unequal_widths():
    from kdbench.config import TrainRecipe
    from kdbench.training.loop import train

    images, labels = torch.zeros(8, 3, 32, 32, dtype=torch.uint8), torch.zeros(8, dtype=torch.long)
    teacher = wrap(create_model("resnet8"), "cifar10").eval()
    with pytest.raises(FeatureError, match="does not end in a ReLU, so it has no pre-activation"):
        train(
            wrap(create_model("cnn_tiny"), "cifar10"),
            images,
            labels,
            TrainRecipe(epochs=1, batch_size=8),
            build_method(METHODS.get("ab").Params(init_epochs=1)),
            0,
            teachers=[teacher],
        )
    with pytest.raises(FeatureError, match=r"fsp: the student's and the teacher's channels differ \(\[3, 16, 32, 64\]"):
        train(
            wrap(create_model("cnn_tiny"), "cifar10"),
            images,
            labels,
            TrainRecipe(epochs=1, batch_size=8),
            build_method(METHODS.get("fsp").Params(init_epochs=1)),
            0,
            teachers=[teacher],
        )
