"""The training set from Feast is leak-free on multi-snapshot data (issue 3's acceptance).

Synthetic customers over four monthly snapshots (stayers age a month per snapshot, so
their tenure and total_charges change; churners leave and new customers join) are
written to a fresh offline store and applied with the project's feature repo, against
the session's real Redis. The training set is then built exactly as the training
pipeline builds it: the labels table through the load_entity_df step's function as the
entity dataframe, the FeatureService through historical_features, the data contract,
then the time split. Every feature of every row must be the value of the SAME customer
at the SAME snapshot: a join that served a later (future) snapshot fails, and the tests
first prove that the later snapshots do differ, so equality is not vacuous.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pandas as pd
import pytest
from feast import FeatureStore

# The feature-store module's comparison (same directory, on sys.path under pytest).
from test_feature_store import _assert_matches_offline

from churn import redis_local
from churn.data.contract import validate
from churn.data.offline import LABELS_TABLE, read_offline_table, write_offline_store
from churn.data.synthetic import generate
from churn.features.names import FEATURE_SERVICE
from churn.features.pipeline import apply_features, materialize_online, materialize_window
from churn.features.store import get_store, historical_features, online_features
from churn.models.split import split_frame
from churn.schema import (
    ENTITY_KEY,
    EVENT_TIMESTAMP,
    LABEL,
    LABEL_OBSERVED_AT,
    Group,
    feature_names,
)
from churn.settings import get_settings
from steps.features.load_entity_df import labels_known_by

pytestmark = pytest.mark.integration

N_CUSTOMERS = 300
N_SNAPSHOTS = 4
SEED = 7
CREATED = datetime(2025, 6, 1, tzinfo=UTC)
REDIS_DB = 2  # test_feature_store flushes and fills db 0; this module keeps to its own
KEYS = [ENTITY_KEY, EVENT_TIMESTAMP]


@dataclass(frozen=True)
class TrainingEnv:
    """The applied store, what was written to it and the pipeline's training set."""

    store: FeatureStore
    customers: pd.DataFrame  # what generate() returned, written to the offline store
    offline: pd.DataFrame  # every offline feature row, read back, keyed by KEYS
    labels: pd.DataFrame  # the entity dataframe (the whole labels table)
    training: pd.DataFrame  # historical_features(labels) after the contract


def _offline_rows() -> pd.DataFrame:
    """Every stored feature row (all groups joined on customer and snapshot time)."""
    parts = [
        read_offline_table(group.value).set_index(KEYS)[feature_names(group)] for group in Group
    ]
    return pd.concat(parts, axis=1, join="outer")[feature_names()]


def _rows_of(offline: pd.DataFrame, ids: pd.Series, times: pd.Series) -> pd.DataFrame:
    """The offline rows of (ids[i], times[i]), in that order; KeyError if one is absent."""
    wanted = pd.MultiIndex.from_arrays([ids.to_numpy(), times.array], names=KEYS)
    return offline.loc[wanted].reset_index()


@pytest.fixture(scope="module")
def env(
    redis_server: redis_local.RedisServerConfig, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TrainingEnv]:
    """Four snapshots ingested into a fresh home, applied, materialized; training set built."""
    home = tmp_path_factory.mktemp("training_set_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CHURN_HOME", str(home))
        mp.setenv("CHURN_REDIS_DB", str(REDIS_DB))
        get_settings.cache_clear()
        settings = get_settings()
        customers = generate(N_CUSTOMERS, seed=SEED, n_snapshots=N_SNAPSHOTS)
        write_offline_store(customers, created_at=CREATED)
        apply_features(settings)
        materialize_online(materialize_window(customers), settings)
        store = get_store(settings=settings)
        # The training pipeline: load_entity_df -> get_historical_features -> validate_data.
        labels = labels_known_by(read_offline_table(LABELS_TABLE), None)
        training = validate(historical_features(store, labels, service=FEATURE_SERVICE))
        yield TrainingEnv(store, customers, _offline_rows(), labels, training)
    get_settings.cache_clear()


def test_snapshots_differ_so_a_future_value_would_be_caught(env: TrainingEnv) -> None:
    """The premise of every equality below: a customer's later snapshots carry other
    values, so serving a later row instead of the same-time one changes the features."""
    assert env.labels[EVENT_TIMESTAMP].nunique() == N_SNAPSHOTS
    per_customer = env.offline.reset_index().groupby(ENTITY_KEY)
    multi = per_customer.size() > 1
    assert multi.sum() >= N_CUSTOMERS // 2  # most customers have several snapshots
    varying = per_customer["tenure"].nunique() > 1
    assert (varying == multi).all()  # every multi-snapshot customer's tenure moves
    assert (per_customer["total_charges"].nunique() > 1).sum() >= multi.sum() * 0.9
    # A leaky join (each customer's latest row) would differ from the same-time row on
    # every row not at the customer's last snapshot: a large share of the training set.
    latest = env.offline.reset_index().sort_values(EVENT_TIMESTAMP).groupby(ENTITY_KEY).tail(1)
    latest_tenure = env.labels[ENTITY_KEY].map(latest.set_index(ENTITY_KEY)["tenure"])
    same_time = _rows_of(env.offline, env.labels[ENTITY_KEY], env.labels[EVENT_TIMESTAMP])
    assert (latest_tenure.to_numpy() != same_time["tenure"].to_numpy()).mean() > 0.3


def test_one_training_row_per_label_row_in_order(env: TrainingEnv) -> None:
    assert len(env.labels) == len(env.customers) == N_CUSTOMERS * N_SNAPSHOTS
    assert len(env.training) == len(env.labels)
    pd.testing.assert_frame_equal(
        env.training[[*KEYS, LABEL, LABEL_OBSERVED_AT]],
        env.labels[[*KEYS, LABEL, LABEL_OBSERVED_AT]],
    )
    assert not env.training.duplicated(KEYS).any()


def test_every_feature_is_the_same_customers_row_at_the_same_snapshot(env: TrainingEnv) -> None:
    expected = _rows_of(env.offline, env.training[ENTITY_KEY], env.training[EVENT_TIMESTAMP])
    _assert_matches_offline(env.training, expected)
    # ...which is what was generated for that customer at that time (offline store kept it).
    generated = env.customers.set_index(KEYS)
    _assert_matches_offline(
        env.training,
        generated.loc[pd.MultiIndex.from_frame(env.training[KEYS])].reset_index(),
    )


def test_a_label_between_snapshots_gets_the_earlier_snapshot(env: TrainingEnv) -> None:
    """Label rows moved after their snapshot (mid-month, and one second before the next
    snapshot) see that snapshot, never the next one; at the next snapshot, the next."""
    times = sorted(env.labels[EVENT_TIMESTAMP].unique())
    rows = env.labels[env.labels[EVENT_TIMESTAMP] != times[-1]]
    following = rows[EVENT_TIMESTAMP].map(dict(pairwise(times)))
    has_next = pd.MultiIndex.from_arrays([rows[ENTITY_KEY], following]).isin(env.offline.index)
    stayers, following = rows[has_next].reset_index(drop=True), following[has_next]
    assert len(stayers) >= N_CUSTOMERS  # customers with a later snapshot to leak from
    earlier = _rows_of(env.offline, stayers[ENTITY_KEY], stayers[EVENT_TIMESTAMP])
    later = _rows_of(env.offline, stayers[ENTITY_KEY], following)
    assert (later["tenure"] == earlier["tenure"] + 1).all()  # the next row does differ

    mid = stayers.assign(**{EVENT_TIMESTAMP: stayers[EVENT_TIMESTAMP] + timedelta(days=15)})
    just_before = stayers.assign(
        **{EVENT_TIMESTAMP: following.to_numpy() - pd.Timedelta(seconds=1)}
    )
    at_next = stayers.assign(**{EVENT_TIMESTAMP: following.to_numpy()})
    entity = pd.concat([mid, just_before, at_next], ignore_index=True)
    got = historical_features(env.store, entity, service=FEATURE_SERVICE)
    n = len(stayers)
    assert got[KEYS].equals(entity[KEYS])
    _assert_matches_offline(got.iloc[:n].reset_index(drop=True), earlier)
    _assert_matches_offline(got.iloc[n : 2 * n].reset_index(drop=True), earlier)
    _assert_matches_offline(got.iloc[2 * n :].reset_index(drop=True), later)


def test_time_split_separates_time_and_unknown_labels(env: TrainingEnv) -> None:
    train, test = split_frame(env.training, strategy="time", test_size=0.25, seed=SEED)
    assert len(train) > 0 and len(test) > 0
    assert train[EVENT_TIMESTAMP].max() < test[EVENT_TIMESTAMP].min()
    # Every training label was already observed when the test period began.
    assert train[LABEL_OBSERVED_AT].max() <= test[EVENT_TIMESTAMP].min()
    newest = env.training[EVENT_TIMESTAMP].max()
    assert (test[EVENT_TIMESTAMP] == newest).all()
    assert len(test) == N_CUSTOMERS  # the whole last snapshot
    # Rows are split, never altered: each side is still the same-snapshot rows.
    for part in (train, test):
        _assert_matches_offline(
            part, _rows_of(env.offline, part[ENTITY_KEY], part[EVENT_TIMESTAMP])
        )


def test_online_store_serves_the_latest_snapshot_not_the_training_rows(env: TrainingEnv) -> None:
    """The contrast that makes the point-in-time join necessary: Redis holds only each
    customer's newest row, which for most training rows is the future."""
    latest = env.offline.reset_index().sort_values(EVENT_TIMESTAMP).groupby(ENTITY_KEY).tail(1)
    sample = latest.sample(n=50, random_state=SEED).reset_index(drop=True)
    got = online_features(env.store, sample[ENTITY_KEY].tolist()).to_frame()
    _assert_matches_offline(got, sample)
