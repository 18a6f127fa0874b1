import numpy as np
import pytest

from longtail.data.profiles import exponential_counts, half_split, select_first_per_class, shot_split, step_counts
from longtail.errors import LongtailError


def test_exponential_matches_published_cifar_and_fmnist_counts():
    assert exponential_counts(10, 5000, 100) == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert sum(exponential_counts(10, 5000, 100)) == 12406
    assert sum(exponential_counts(100, 500, 100)) == 10847
    assert exponential_counts(10, 6000, 100) == [6000, 3596, 2156, 1292, 774, 464, 278, 166, 100, 60]


def test_exponential_endpoints_and_balanced():
    c = exponential_counts(100, 500, 50)
    assert c[0] == 500 and c[-1] == 10 and all(a >= b for a, b in zip(c, c[1:]))
    assert exponential_counts(5, 40, 1) == [40] * 5


def test_step_profile():
    assert step_counts(10, 5000, 100) == [5000] * 5 + [50] * 5
    assert step_counts(3, 100, 10) == [100, 100, 10]


@pytest.mark.parametrize("bad", [0.5, 0, -3])
def test_imbalance_factor_below_one_is_refused(bad):
    with pytest.raises(LongtailError, match="imbalance factor"):
        exponential_counts(10, 100, bad)


def test_first_per_class_takes_file_order_and_respects_exclusion():
    labels = np.array([1, 0, 1, 0, 0, 1, 0])
    assert select_first_per_class(labels, [2, 1]).tolist() == [0, 1, 3]
    excl = np.zeros(7, bool)
    excl[1] = True
    assert select_first_per_class(labels, [2, 1], excl).tolist() == [0, 3, 4]


def test_empty_class_is_an_error_naming_the_class():
    labels = np.array([0, 0, 0, 1])
    with pytest.raises(LongtailError, match="class 2"):
        select_first_per_class(labels, [2, 1, 1])


def test_shot_and_half_splits():
    counts = [500, 120, 100, 50, 20, 19, 3]
    s = shot_split(counts, 100, 20)
    assert s == {"many": [0, 1], "medium": [2, 3, 4], "few": [5, 6]}
    h = half_split([6000, 3596, 2156, 1292, 774, 464, 278, 166, 100, 60])
    assert h == {"head": [0, 1, 2, 3, 4], "tail": [5, 6, 7, 8, 9], "tail3": [7, 8, 9]}
