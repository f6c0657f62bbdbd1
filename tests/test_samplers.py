import jax
import numpy as np

from jaxrec.data.interactions import Sequences
from jaxrec.tasks._samplers import sampler_tables, shared_samples, target_counts


def test_target_counts_count_every_item_but_a_rows_first():
    seqs = Sequences.from_rows([[0, 1, 1], [2], [2, 0]])
    np.testing.assert_array_equal(target_counts(seqs, 4), [1, 2, 0, 0])


def test_unseen_items_are_never_sampled():
    cdf, log_counts = sampler_tables(np.array([4.0, 0.0, 1.0]), alpha=1.0)
    np.testing.assert_allclose(cdf, [0.8, 0.8, 1.0], rtol=1e-6)
    np.testing.assert_allclose(log_counts, [np.log(4.0), 0.0, 0.0], rtol=1e-6)
    drawn = np.asarray(shared_samples(jax.random.key(0), cdf, 2000))
    assert set(np.unique(drawn)) == {0, 2}
    assert 0.75 < np.mean(drawn == 0) < 0.85
