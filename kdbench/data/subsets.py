"""Class-stratified, seeded subsets: smaller runs keep the class balance of the full split."""

from __future__ import annotations

from kdbench.util.lazy import lazy
from kdbench.util.seeding import derive_seed

torch = lazy("torch")


def stratified_subset(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Positions (int64, sorted ascending) of `n` examples drawn class by class from `labels`.

    Each class gets its proportional share of `n` (equal shares when classes are balanced);
    the shares left over after rounding down go to the classes with the largest remainders,
    ties to the smaller label, so the counts depend only on the label counts and `n`.
    Within a class the draw is a permutation seeded by (`seed`, label): the same seed gives
    the same subset on any machine, and a larger `n` mostly extends a smaller one.
    A class never gives more than it holds; `n >= len(labels)` returns every position.
    """
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"subset size must be a positive integer, got {n!r}")
    labels = torch.as_tensor(labels)
    if labels.dim() != 1:
        raise ValueError(f"labels must be 1-D, got shape {tuple(labels.shape)}")
    total = labels.numel()
    if n >= total:
        return torch.arange(total, dtype=torch.int64)

    classes, counts = torch.unique(labels, sorted=True, return_counts=True)
    # Largest-remainder apportionment in exact integer arithmetic: quota_k = n * count_k / total.
    scaled = counts.to(torch.int64) * int(n)
    take = scaled // total
    remainder = scaled % total
    left = int(n) - int(take.sum())
    if left:
        # Stable sort by descending remainder keeps ties in ascending label order.
        order = torch.sort(-remainder, stable=True).indices
        take[order[:left]] += 1

    chosen = []
    for cls, k in zip(classes.tolist(), take.tolist()):
        if k == 0:
            continue
        members = torch.nonzero(labels == cls, as_tuple=False).flatten()
        g = torch.Generator().manual_seed(derive_seed("stratified_subset", int(seed), int(cls)))
        chosen.append(members[torch.randperm(members.numel(), generator=g)[:k]])
    return torch.sort(torch.cat(chosen)).values


def nested_order(labels: torch.Tensor, sizes, seed: int) -> torch.Tensor:
    """An order of all positions of `labels` whose first k positions are `stratified_subset(labels,
    k, seed)` for each k in `sizes`: the smallest subset first, then what each larger one adds,
    then the rest, each part ascending. Conditions scored on fewer examples take a prefix of it.
    Where largest-remainder rounding makes a smaller subset not nest in a larger one (unbalanced
    classes only), the larger prefix keeps the smaller subset and fills up from its own draw."""
    total = len(labels)
    taken = torch.zeros(total, dtype=torch.bool)
    parts = []
    for k in sorted({min(int(s), total) for s in sizes}):
        want = stratified_subset(labels, k, seed)
        new = want[~taken[want]][: k - int(taken.sum())]
        taken[new] = True
        parts.append(new)
    parts.append(torch.nonzero(~taken, as_tuple=False).flatten())
    return torch.cat(parts)
