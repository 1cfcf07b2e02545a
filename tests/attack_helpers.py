"""What the attack tests share: a condition built from its registered name, a small network trained
on synthetic data, and a fixed start in place of the seeded one (to compare an attack with its
reference from the reference's own draw)."""

import torch

from kdbench.config import TrainRecipe
from kdbench.data import load_dataset
from kdbench.evaluation.conditions import CONDITIONS
from kdbench.models import create_model, wrap
from kdbench.training.loop import train
from kdbench.training.methods import METHODS, build_method


def build(name, **params):
    cls = CONDITIONS.get(name)
    return cls.build(cls.Params(**params), seed=0)


def trained_net():
    """(a cnn_tiny trained two epochs on synthetic data, in eval mode; its test split)."""
    torch.set_num_threads(1)
    data = load_dataset("synthetic", None, n_train=600, n_test=200, seed=1)
    torch.manual_seed(0)
    net = wrap(create_model("cnn_tiny"), "cifar10")
    recipe = TrainRecipe(
        epochs=2, batch_size=50, optimizer="adam", lr=0.01, weight_decay=0, schedule="constant", augment=False
    )
    train(net, data.train.images, data.train.labels, recipe, build_method(METHODS.get("baseline").Params()), seed=0)
    return net.eval().requires_grad_(False), data.test


class Given:
    def __init__(self, start):
        self.start = start

    def __call__(self, like, *extra, rows=None):
        return self.start

    def in_ball(self, like):
        return self.start
