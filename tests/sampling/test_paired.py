import math

import pytest

from capcurriculum.sampling.paired import paired_delta


def test_paired_delta_on_a_hand_computed_case():
    before = [0, 0, 1, 1, 0]
    after = [1, 0, 1, 0, 1]
    out = paired_delta(before, after)  # d = [1, 0, 0, -1, 1]: mean 0.2, sample var 0.7
    assert out["delta"] == pytest.approx(0.2) and out["n"] == 5
    assert out["se"] == pytest.approx(math.sqrt(0.7 / 5))


def test_unequal_lists_are_refused():
    with pytest.raises(ValueError, match="equal"):
        paired_delta([1], [1, 0])
