"""The synthetic generator: determinism, domains, Telco-like relationships, snapshots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from churn.data.contract import validate
from churn.data.synthetic import MONTHLY_RANGE, generate
from churn.schema import (
    ENTITY_KEY,
    EVENT_TIMESTAMP,
    FEATURES,
    LABEL,
    LABEL_OBSERVED_AT,
    TOTAL_RATIO_MAX,
    TOTAL_RATIO_MIN,
    Kind,
    categorical_names,
    feature_names,
)


@pytest.fixture(scope="module")
def population() -> pd.DataFrame:
    """One snapshot large enough for stable rates (50k customers, well under a second)."""
    return generate(50_000, seed=11)


def _rate(df: pd.DataFrame, column: str, value: object) -> float:
    return float(df.loc[df[column] == value, LABEL].mean())


def test_same_seed_same_frame_other_seed_other_frame() -> None:
    a, b = generate(2000, seed=5, n_snapshots=2), generate(2000, seed=5, n_snapshots=2)
    pd.testing.assert_frame_equal(a, b)
    c = generate(2000, seed=6, n_snapshots=2)
    assert not a[feature_names()].equals(c[feature_names()])


def test_columns_and_dtypes_match_the_loader() -> None:
    df = generate(100)
    assert list(df.columns) == [
        ENTITY_KEY,
        *feature_names(),
        LABEL,
        EVENT_TIMESTAMP,
        LABEL_OBSERVED_AT,
    ]
    kinds = {Kind.CATEGORY: "object", Kind.INT: "int64", Kind.FLOAT: "float64"}
    for feat in FEATURES:
        assert str(df[feat.name].dtype) == kinds[feat.kind], feat.name
    assert all(isinstance(v, str) for v in df["payment_method"])
    assert str(df[LABEL].dtype) == "int64"
    assert str(df[EVENT_TIMESTAMP].dtype) == "datetime64[ns, UTC]"
    assert df[ENTITY_KEY].iloc[0] == "SYN-0000001"
    assert df[ENTITY_KEY].is_unique


def test_passes_the_data_contract(population: pd.DataFrame) -> None:
    """The contract's cross-field rules (add-ons "No internet service" exactly without
    internet, "No phone service" exactly without phone, total vs tenure x monthly, label
    after event) are checked by validate() itself, not restated here."""
    validate(generate(5000, seed=2, n_snapshots=4), require_timestamps=True, require_label=True)
    validate(population, require_timestamps=True, require_label=True)


def test_domains_are_exactly_the_schema_categories(population: pd.DataFrame) -> None:
    for feat in FEATURES:
        if feat.kind is Kind.CATEGORY:
            assert set(population[feat.name].unique()) == set(feat.categories), feat.name
    assert set(population["senior_citizen"].unique()) == {0, 1}
    assert set(population[LABEL].unique()) == {0, 1}
    assert population["tenure"].between(0, 72).all()
    assert (population["tenure"] == 0).any()


def test_phone_less_customers_are_dsl_customers(population: pd.DataFrame) -> None:
    """A Telco fact the contract does not require (its service rules: see above)."""
    no_phone = population["phone_service"] == "No"
    assert no_phone.any()
    assert (population.loc[no_phone, "internet_service"] == "DSL").all()


def test_charges(population: pd.DataFrame) -> None:
    monthly, total, tenure = (population[c] for c in ("monthly_charges", "total_charges", "tenure"))
    assert monthly.between(*MONTHLY_RANGE).all()
    assert (total[tenure == 0] == 0).all()
    billed = tenure > 0
    ratio = total[billed] / (tenure[billed] * monthly[billed])
    assert ratio.between(TOTAL_RATIO_MIN, TOTAL_RATIO_MAX).all()
    by_internet = population.groupby("internet_service")["monthly_charges"].mean()
    assert by_internet["No"] < by_internet["DSL"] < by_internet["Fiber optic"]


def test_churn_rate_and_drivers(population: pd.DataFrame) -> None:
    assert 0.22 <= population[LABEL].mean() <= 0.31
    df = population
    assert _rate(df, "contract", "Month-to-month") > _rate(df, "contract", "One year")
    assert _rate(df, "contract", "One year") > _rate(df, "contract", "Two year")
    assert _rate(df, "internet_service", "Fiber optic") > _rate(df, "internet_service", "DSL")
    echeck = _rate(df, "payment_method", "Electronic check")
    assert echeck > _rate(df, "payment_method", "Mailed check")
    assert _rate(df, "tech_support", "No") > _rate(df, "tech_support", "Yes")
    assert _rate(df, "online_security", "No") > _rate(df, "online_security", "Yes")
    new, old = df["tenure"] <= 12, df["tenure"] > 48
    assert df.loc[new, LABEL].mean() > 2 * df.loc[old, LABEL].mean()


def test_a_simple_model_learns_the_signal(population: pd.DataFrame) -> None:
    x = pd.get_dummies(population[feature_names()], columns=categorical_names(), dtype=float)
    x["log_tenure"] = np.log1p(population["tenure"])
    x = (x - x.mean()) / x.std().replace(0, 1)
    train, test = slice(0, 30_000), slice(30_000, None)
    model = LogisticRegression(max_iter=1000).fit(x[train], population[LABEL][train])
    auc = roc_auc_score(population[LABEL][test], model.predict_proba(x[test])[:, 1])
    assert auc >= 0.8


def test_snapshots_age_customers_and_replace_churners() -> None:
    n = 3000
    df = generate(n, seed=4, n_snapshots=3)
    times = sorted(df[EVENT_TIMESTAMP].unique())
    assert [t.isoformat() for t in times] == [
        "2025-01-01T00:00:00+00:00",
        "2025-02-01T00:00:00+00:00",
        "2025-03-01T00:00:00+00:00",
    ]
    assert (df.groupby(EVENT_TIMESTAMP).size() == n).all()
    assert not df.duplicated([ENTITY_KEY, EVENT_TIMESTAMP]).any()
    assert ((df[LABEL_OBSERVED_AT] - df[EVENT_TIMESTAMP]) == timedelta(days=30)).all()

    s0, s1 = (df[df[EVENT_TIMESTAMP] == t].set_index(ENTITY_KEY) for t in times[:2])
    churned = s0.index[s0[LABEL] == 1]
    assert not churned.isin(s1.index).any()  # churners leave
    stayed = s0.index[s0[LABEL] == 0]
    assert stayed.isin(s1.index).all()
    before, after = s0.loc[stayed], s1.loc[stayed]
    assert (after["tenure"] == before["tenure"] + 1).all()
    np.testing.assert_allclose(
        after["total_charges"], before["total_charges"] + before["monthly_charges"], atol=0.006
    )
    unchanged = [c for c in feature_names() if c not in ("tenure", "total_charges")]
    pd.testing.assert_frame_equal(after[unchanged], before[unchanged])
    joiners = s1.index[~s1.index.isin(s0.index)]
    assert len(joiners) == len(churned)  # replaced one for one
    assert (s1.loc[joiners, "tenure"] == 0).all()
    assert (s1.loc[joiners, "total_charges"] == 0).all()
    assert joiners.min() > s0.index.max()  # fresh ids continue the sequence


def test_start_time_is_fixed_by_default_and_must_be_aware() -> None:
    assert generate(10)[EVENT_TIMESTAMP].iloc[0] == pd.Timestamp("2025-01-01T00:00Z")
    start = datetime(2024, 1, 31, 1, tzinfo=timezone(timedelta(hours=1)))
    df = generate(10, n_snapshots=2, start=start)
    assert sorted(df[EVENT_TIMESTAMP].unique()) == [
        pd.Timestamp("2024-01-31T00:00Z"),
        pd.Timestamp("2024-02-29T00:00Z"),
    ]
    with pytest.raises(ValueError, match="start"):
        generate(10, start=datetime(2025, 1, 1))
    assert generate(10, start=datetime(2025, 1, 1, tzinfo=UTC)).equals(generate(10))


@pytest.mark.parametrize(
    ("n_customers", "n_snapshots", "message"),
    [(0, 1, "n_customers"), (5, 0, "n_snapshots"), (5, 1000, "n_snapshots")],
)
def test_invalid_sizes_are_refused(n_customers: int, n_snapshots: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate(n_customers, n_snapshots=n_snapshots)
