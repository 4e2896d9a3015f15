"""Drift: PSI by hand, bins against numpy, KS against scipy, and a shifted distribution crossing the threshold."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import ks_2samp

from featurelake.errors import InputError
from featurelake.monitoring.drift import PSI_FLOOR, compare, psi


def test_psi_by_hand():
    ref, cur = [50, 30, 20, 0], [25, 25, 50, 0]
    p, q = [0.5, 0.3, 0.2, PSI_FLOOR], [0.25, 0.25, 0.5, PSI_FLOOR]
    assert psi(ref, cur) == pytest.approx(sum((b - a) * math.log(b / a) for a, b in zip(p, q, strict=True)))
    assert psi(ref, ref) == 0.0
    with pytest.raises(InputError):
        psi([0, 0], [1, 2])


def frames(spark, ref: np.ndarray, cur: np.ndarray):
    def df(values):
        return spark.createDataFrame([(None if np.isnan(v) else float(v),) for v in values], "x double")

    return df(ref), df(cur)


def test_bins_psi_and_ks_match_independent_computations(spark):
    rng = np.random.default_rng(3)
    ref = rng.normal(0, 1, 800)
    cur = rng.normal(0.4, 1.2, 600)
    cur[:30] = np.nan
    ref_df, cur_df = frames(spark, ref, cur)
    (c,) = compare(ref_df, cur_df, ["x"], bins=10, sample_rows=5000)
    edges = np.array(c.edges)
    assert len(edges) == 9 and np.all(np.diff(edges) > 0)

    def counts(values):
        finite = values[~np.isnan(values)]
        idx = np.searchsorted(edges, finite, side="left")  # bins (e_{i-1}, e_i]
        return [int((idx == b).sum()) for b in range(len(edges) + 1)] + [int(np.isnan(values).sum())]

    assert c.reference_counts == counts(ref)
    assert c.current_counts == counts(cur)
    assert c.psi == pytest.approx(psi(counts(ref), counts(cur)))
    expected = ks_2samp(ref, cur[~np.isnan(cur)])  # every value sampled: fewer rows than sample_rows
    assert c.ks_statistic == pytest.approx(expected.statistic)
    assert c.ks_pvalue == pytest.approx(expected.pvalue)


def test_shifted_distribution_crosses_the_threshold_and_unshifted_does_not(spark):
    rng = np.random.default_rng(11)
    ref = rng.normal(10, 2, 2000)
    same = rng.normal(10, 2, 2000)
    shifted = rng.normal(12, 2, 2000)
    threshold, alpha = 0.2, 0.01
    ref_df, same_df = frames(spark, ref, same)
    _, shifted_df = frames(spark, ref, shifted)
    (unshifted,) = compare(ref_df, same_df, ["x"], bins=10, sample_rows=5000)
    (moved,) = compare(ref_df, shifted_df, ["x"], bins=10, sample_rows=5000)
    assert unshifted.psi < threshold and unshifted.ks_pvalue > alpha
    assert moved.psi >= threshold and moved.ks_pvalue < alpha


def test_sampling_caps_the_ks_rows(spark):
    rng = np.random.default_rng(5)
    ref_df, cur_df = frames(spark, rng.normal(0, 1, 3000), rng.normal(0, 1, 3000))
    (c,) = compare(ref_df, cur_df, ["x"], bins=5, sample_rows=500)
    assert c.reference_sampled <= 500 and c.current_sampled <= 500 and c.reference_sampled > 300
    assert sum(c.reference_counts) == 3000  # PSI still counts every row


def test_empty_current_is_refused(spark):
    ref_df, _ = frames(spark, np.arange(10.0), np.arange(1.0))
    empty = ref_df.where("false")
    with pytest.raises(InputError, match="current interval has no rows"):
        compare(ref_df, empty, ["x"], bins=4, sample_rows=100)
