"""fair_argmax: the argmax, with exact ties broken deterministically and without a class bias."""

import math

import torch

from tempdistill.core.predict import fair_argmax


def _tied_counts(rows: int = 6000, classes: int = 6, seed: int = 0) -> torch.Tensor:
    """Distinct integer rows, as a count readout gives them (ties are common)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 12, (rows, classes), generator=generator).float()
    return torch.unique(x, dim=0)


def test_rows_without_a_tie_give_exactly_argmax():
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(500, 10, generator=generator)
    assert torch.equal(fair_argmax(x), x.argmax(dim=-1))
    counts = _tied_counts()
    single = (counts == counts.max(dim=-1, keepdim=True).values).sum(dim=-1) == 1
    assert torch.equal(fair_argmax(counts)[single], counts.argmax(dim=-1)[single])


def test_a_tie_goes_to_one_of_the_tied_classes():
    counts = _tied_counts()
    chosen = fair_argmax(counts)
    assert bool((counts.gather(1, chosen[:, None]) == counts.max(dim=-1, keepdim=True).values).all())


def _forced_pairs(rows: int, classes: int = 10, seed: int = 3) -> torch.Tensor:
    """Rows of distinct values whose maximum is copied onto one other, random class."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, classes, generator=generator)
    other = (x.argmax(dim=-1) + torch.randint(1, classes, (rows,), generator=generator)) % classes
    x[torch.arange(rows), other] = x.max(dim=-1).values
    return x


def test_tied_classes_are_chosen_equally_often():
    """Each class, counted over the rows where it is one of two tied maxima, wins about half of
    them (torch.argmax gives the lower index all of them): within 4.5 binomial σ per class."""
    x = _forced_pairs(20000)
    top = x == x.max(dim=-1, keepdim=True).values
    assert bool((top.sum(dim=-1) == 2).all())
    chosen = torch.nn.functional.one_hot(fair_argmax(x), x.shape[1]).bool()
    assert bool((chosen <= top).all())
    for k in range(x.shape[1]):
        n = int(top[:, k].sum())
        wins = int(chosen[top[:, k], k].sum())
        assert abs(wins - n / 2) <= 4.5 * math.sqrt(n / 4), (k, wins, n)
    shares = chosen.float().sum(dim=0) / top.float().sum(dim=0)
    assert float(shares.max() - shares.min()) < 0.1
    old = torch.nn.functional.one_hot(x.argmax(dim=-1), x.shape[1]).bool()
    assert int(old[top[:, 0], 0].sum()) == int(top[:, 0].sum())  # the old rule: class 0 wins every tie


def test_the_same_row_always_gives_the_same_class():
    """Keyed by the row's content: alone, in another order, chunked or as float64, it agrees."""
    counts = _tied_counts()
    chosen = fair_argmax(counts)
    assert torch.equal(fair_argmax(counts), chosen)
    order = torch.randperm(counts.shape[0], generator=torch.Generator().manual_seed(2))
    assert torch.equal(fair_argmax(counts[order]), chosen[order])
    assert torch.equal(torch.cat([fair_argmax(part) for part in counts.split(37)]), chosen)
    assert torch.equal(fair_argmax(counts.double()), chosen)
    assert torch.equal(fair_argmax(counts[3]), chosen[3])  # a single row (K,)
    # An export computes the same counts × θ0/N with other roundings: any increasing map of a
    # row that keeps its ties keeps its choice.
    assert torch.equal(fair_argmax(counts * 0.3371 + 2.5), chosen)


def test_edge_cases():
    assert fair_argmax(torch.tensor([[float("nan"), 1.0, 1.0]])).tolist() == [0]  # torch.argmax's answer
    assert fair_argmax(torch.ones(4, 1)).tolist() == [0, 0, 0, 0]
    assert fair_argmax(torch.zeros(0, 5)).shape == (0,)
