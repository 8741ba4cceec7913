"""A seeded generator of Telco-like customers, for demos without the CSV and for scale tests.

Output has the columns of churn.data.telco.load_telco plus event_timestamp and
label_observed_at, and satisfies the data contract (churn.data.contract). Values are
drawn with one seeded numpy Generator, column-wise with no per-row Python except
the id strings, so a million customers take a few seconds and a seed always gives
the same frame.

The relationships follow the published Telco data, so a model trained on synthetic
data learns the same story:
- tenure depends on the contract (month-to-month customers are newer);
- phone-less customers are DSL customers; internet add-ons are
  "No internet service" exactly when internet_service is "No", and multiple_lines
  "No phone service" exactly when phone_service is "No";
- monthly_charges is a price list over the subscribed services plus noise
  (18.25-118.75 like Telco, in steps of 0.05);
- total_charges is tenure x monthly_charges x a price-history factor (prices change
  over a customer's life), 0 for a customer not billed yet (tenure 0);
- churn is drawn from a logistic model in which month-to-month contracts, fiber
  optic, electronic checks, short tenure and no tech support / online security raise
  the odds, calibrated to Telco's ~26% churn rate.

Snapshots (n_snapshots > 1), one per month from `start`: the customer base ages by a
month (tenure + 1, total_charges + monthly_charges; services and prices unchanged).
A customer labelled churn=1 at a snapshot leaves and does not appear in later
snapshots; as many new customers (tenure 0, fresh ids continuing the sequence) join,
so every snapshot holds exactly n_customers rows. Each snapshot's label is a fresh
draw for "leaves within the next month".

Outcomes after a snapshot (simulate_outcomes), for demonstrating the closed loop
with a known truth: each customer of the snapshot leaves within the next month with
their true probability (churn_probability, the same model that draws the labels),
multiplied by `relative_risk` for customers a campaign treated. The relative risk is
the simulated effect of the retention offer (0.7: treated customers churn 30% less;
1.0: the offer does nothing), which the business KPI pipeline must recover from the
outcomes within its confidence interval.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any, Final

import numpy as np
import pandas as pd

from churn.data.timestamps import (
    DEFAULT_LABEL_DELAY,
    DEFAULT_SNAPSHOT_TIME,
    UTC_DTYPE,
    add_months,
    as_utc,
)
from churn.schema import (
    ENTITY_KEY,
    EVENT_TIMESTAMP,
    INTERNET_ADDONS,
    LABEL,
    LABEL_OBSERVED_AT,
    TENURE_RANGE,
    Kind,
    feature,
    feature_names,
)

IntArray = np.ndarray[Any, np.dtype[np.int64]]
FloatArray = np.ndarray[Any, np.dtype[np.float64]]
BoolArray = np.ndarray[Any, np.dtype[np.bool_]]
Columns = dict[str, np.ndarray[Any, Any]]

ID_PREFIX: Final = "SYN-"
ID_DIGITS: Final = 7
TELCO_MAX_TENURE: Final = 72  # Telco's window; initial tenures are drawn within it
MAX_SNAPSHOTS: Final = TENURE_RANGE[1] - TELCO_MAX_TENURE + 1  # keeps tenure in the contract
MONTHLY_RANGE: Final = (18.25, 118.75)  # Telco's observed range

# Price list in USD per month (approximates Telco's MonthlyCharges).
PRICE_PHONE: Final = 20.0
PRICE_EXTRA_LINES: Final = 5.0
PRICE_INTERNET: Final = {"DSL": 25.0, "Fiber optic": 50.0, "No": 0.0}
PRICE_ADDON: Final = {
    "online_security": 5.0,
    "online_backup": 5.0,
    "device_protection": 5.0,
    "tech_support": 5.0,
    "streaming_tv": 10.0,
    "streaming_movies": 10.0,
}

# Churn log-odds. Intercept tuned so the single-snapshot churn rate is ~26% (Telco: 26.5%).
CHURN_INTERCEPT: Final = -0.1
CHURN_CONTRACT: Final = {"Month-to-month": 0.8, "One year": -0.5, "Two year": -1.7}
CHURN_INTERNET: Final = {"DSL": 0.0, "Fiber optic": 0.9, "No": -1.3}
CHURN_ELECTRONIC_CHECK: Final = 0.45
CHURN_PAPERLESS: Final = 0.3
CHURN_SENIOR: Final = 0.4
CHURN_DEPENDENTS: Final = -0.2
CHURN_ADDON: Final = {"online_security": -0.45, "tech_support": -0.5, "streaming_tv": 0.15}
CHURN_LOG_TENURE: Final = -0.6  # per unit of log(1 + tenure)


def _code(name: str, value: str) -> int:
    """Position of `value` in the schema categories of feature `name` (our integer code)."""
    return feature(name).categories.index(value)


def _pick(rng: np.random.Generator, probs: np.ndarray[Any, Any]) -> IntArray:
    """One categorical draw per row; `probs` is (n, k) per-row probabilities (rows sum to 1)."""
    cumulative = np.cumsum(probs, axis=1)
    u = rng.random(probs.shape[0])[:, None]
    return np.asarray((u >= cumulative[:, :-1]).sum(axis=1), dtype=np.int64)


def _by_code(codes: IntArray, table: dict[str, float], name: str) -> FloatArray:
    """Map category codes of feature `name` to numbers via a {category: number} table."""
    lookup = np.array([table[c] for c in feature(name).categories], dtype=np.float64)
    return lookup[codes]


def _sigmoid(z: FloatArray) -> FloatArray:
    return 1.0 / (1.0 + np.exp(-z))


def _draw_customers(rng: np.random.Generator, n: int, *, new: bool) -> Columns:
    """n customers as integer category codes and numbers; `new` ones have tenure 0."""
    senior = (rng.random(n) < 0.162).astype(np.int64)
    partner = rng.random(n) < 0.48
    dependents = rng.random(n) < np.where(partner, 0.52, 0.10)

    # Contract: customers with a partner sign longer contracts.
    contract = _pick(rng, np.where(partner[:, None], [[0.45, 0.25, 0.30]], [[0.65, 0.17, 0.18]]))
    m2m, two_year = (
        contract == _code("contract", "Month-to-month"),
        contract == _code("contract", "Two year"),
    )
    # Tenure: month-to-month customers are new, two-year ones old (Telco means 18/42/57).
    alpha = np.select([m2m, two_year], [0.6, 2.6], 1.5)
    beta = np.select([m2m, two_year], [1.9, 0.7], 1.1)
    tenure = np.minimum(1 + np.floor(rng.beta(alpha, beta) * TELCO_MAX_TENURE), TELCO_MAX_TENURE)
    unbilled = np.ones(n, dtype=bool) if new else rng.random(n) < 0.0015
    tenure = np.where(unbilled, 0, tenure).astype(np.int64)

    # Internet: seniors take fiber more often; phone-less customers are all on DSL.
    internet = _pick(
        rng, np.where(senior[:, None] == 1, [[0.25, 0.68, 0.07]], [[0.36, 0.40, 0.24]])
    )
    dsl, fiber = (
        internet == _code("internet_service", "DSL"),
        internet == _code("internet_service", "Fiber optic"),
    )
    has_internet = ~(internet == _code("internet_service", "No"))
    phone = ~(dsl & (rng.random(n) < 0.28))
    lines_p = np.clip(0.3 + 0.2 * fiber + 0.25 * tenure / TELCO_MAX_TENURE, 0.0, 1.0)
    extra_lines = phone & (rng.random(n) < lines_p)

    long_contract = np.select([m2m, two_year], [0.0, 1.3], 0.7)
    addons: dict[str, BoolArray] = {}
    addon_base = {
        "online_security": -0.9,
        "online_backup": -0.5,
        "device_protection": -0.5,
        "tech_support": -0.9,
        "streaming_tv": -0.4,
        "streaming_movies": -0.4,
    }
    for name in INTERNET_ADDONS:
        streaming = name.startswith("streaming")
        z = addon_base[name] + long_contract + 0.6 * tenure / TELCO_MAX_TENURE
        z = z + np.where(fiber, 0.6 if streaming else -0.4, 0.0)
        addons[name] = has_internet & (rng.random(n) < _sigmoid(z))

    paperless = rng.random(n) < np.clip(0.55 + 0.2 * fiber - 0.25 * ~has_internet, 0.0, 1.0)
    # Payment columns follow the schema's category order (bank, card, e-check, mailed).
    payment_by_contract = np.array(
        [[0.17, 0.16, 0.47, 0.20], [0.27, 0.28, 0.19, 0.26], [0.32, 0.33, 0.09, 0.26]]
    )
    payment = _pick(rng, payment_by_contract[contract])

    price = PRICE_PHONE * phone + PRICE_EXTRA_LINES * extra_lines
    price = price + _by_code(internet, PRICE_INTERNET, "internet_service")
    for name, amount in PRICE_ADDON.items():
        price = price + amount * addons[name]
    price = price + rng.normal(0.0, 1.5, n)
    monthly = np.round(np.clip(price, *MONTHLY_RANGE) * 20.0) / 20.0  # steps of 0.05

    # Prices change over a customer's life: the lifetime average differs from today's.
    history = np.clip(np.exp(rng.normal(0.0, 0.08, n)), 0.75, 1.3)
    history = np.where(tenure <= 1, 1.0, history)
    total = np.round(tenure * monthly * history, 2)

    def yes_no(flag: BoolArray, name: str) -> IntArray:
        return np.where(flag, _code(name, "Yes"), _code(name, "No")).astype(np.int64)

    cols: Columns = {
        "gender": rng.integers(0, len(feature("gender").categories), n).astype(np.int64),
        "senior_citizen": senior,
        "partner": yes_no(partner, "partner"),
        "dependents": yes_no(dependents, "dependents"),
        "tenure": tenure,
        "contract": contract,
        "paperless_billing": yes_no(paperless, "paperless_billing"),
        "payment_method": payment,
        "monthly_charges": monthly.astype(np.float64),
        "total_charges": total.astype(np.float64),
        "phone_service": yes_no(phone, "phone_service"),
        "multiple_lines": np.select(
            [~phone, extra_lines],
            [_code("multiple_lines", "No phone service"), _code("multiple_lines", "Yes")],
            _code("multiple_lines", "No"),
        ).astype(np.int64),
        "internet_service": internet,
    }
    for name in INTERNET_ADDONS:
        cols[name] = np.select(
            [~has_internet, addons[name]],
            [_code(name, "No internet service"), _code(name, "Yes")],
            _code(name, "No"),
        ).astype(np.int64)
    return cols


def churn_probability(cols: Columns) -> FloatArray:
    """P(churn within the next month) for coded customer columns (the generator's truth).

    Public so tests and notebooks can compare a trained model with the true risk.
    """

    def has(name: str) -> BoolArray:
        return np.asarray(cols[name] == _code(name, "Yes"), dtype=bool)

    z = CHURN_INTERCEPT + _by_code(cols["contract"], CHURN_CONTRACT, "contract")
    z = z + _by_code(cols["internet_service"], CHURN_INTERNET, "internet_service")
    z = z + CHURN_ELECTRONIC_CHECK * (
        cols["payment_method"] == _code("payment_method", "Electronic check")
    )
    z = z + CHURN_PAPERLESS * has("paperless_billing") + CHURN_SENIOR * cols["senior_citizen"]
    z = z + CHURN_DEPENDENTS * has("dependents")
    for name, weight in CHURN_ADDON.items():
        z = z + weight * has(name)
    z = z + CHURN_LOG_TENURE * np.log1p(cols["tenure"])
    return _sigmoid(z.astype(np.float64))


def encode(frame: pd.DataFrame) -> Columns:
    """A decoded customer frame (schema strings) back to the generator's integer codes.

    Why: the true churn risk is defined on codes; outcomes are simulated for frames
    that went through the offline store, where categories are strings. An unknown
    category is an error (KeyError naming it), never a silent code.
    """
    cols: Columns = {}
    for name in feature_names():
        feat = feature(name)
        values = frame[name].to_numpy()
        if feat.kind is Kind.CATEGORY:
            codes = pd.Categorical(values, categories=list(feat.categories)).codes
            if (codes < 0).any():
                bad = sorted({str(v) for v in values[codes < 0]})[:5]
                raise KeyError(f"column {name!r} has values outside the schema: {bad}")
            cols[name] = codes.astype(np.int64)
        else:
            cols[name] = values
    return cols


def true_churn_probability(frame: pd.DataFrame) -> FloatArray:
    """The generator's true P(churn within the next month) for each row of a decoded frame."""
    return churn_probability(encode(frame))


def simulate_outcomes(
    snapshot: pd.DataFrame,
    *,
    treated: Collection[str],
    relative_risk: float,
    seed: int,
    observed_at: datetime,
) -> pd.DataFrame:
    """Realized churn of a snapshot's customers over the following month.

    P(churn) is the true risk of the row (true_churn_probability), times
    `relative_risk` for customers in `treated` (the campaign's treated arm; the
    control arm and everyone else keep their risk). Returns the labels-table
    columns: customer_id, event_timestamp (the snapshot's, so the outcome joins the
    features it was predicted from), churn, label_observed_at = `observed_at`.
    Seeded: the same inputs give the same outcomes.
    """
    moment = pd.Timestamp(as_utc(observed_at, what="observed_at"))
    if (snapshot[EVENT_TIMESTAMP] > moment).any():
        raise ValueError(f"observed_at {moment} is before the snapshot it observes")
    ids = snapshot[ENTITY_KEY].astype(str).to_numpy()
    is_treated = pd.Series(ids).isin({str(t) for t in treated}).to_numpy()
    risk = true_churn_probability(snapshot) * np.where(is_treated, relative_risk, 1.0)
    if relative_risk < 0.0 or (risk > 1.0).any():
        raise ValueError(f"relative_risk {relative_risk} makes a churn probability leave [0, 1]")
    churned = np.random.default_rng(seed).random(len(snapshot)) < risk
    return pd.DataFrame(
        {
            ENTITY_KEY: ids.astype(object),
            EVENT_TIMESTAMP: snapshot[EVENT_TIMESTAMP].to_numpy(),
            LABEL: churned.astype(np.int64),
            LABEL_OBSERVED_AT: pd.Series(moment, index=range(len(snapshot)), dtype=UTC_DTYPE),
        }
    ).astype({EVENT_TIMESTAMP: UTC_DTYPE})


def _customer_ids(numbers: IntArray, digits: int) -> np.ndarray[Any, Any]:
    """'SYN-0000001'-style ids (object array of str), zero-padded so they sort as numbers."""
    return np.array([f"{ID_PREFIX}{i:0{digits}d}" for i in numbers.tolist()], dtype=object)


def _decode(cols: Columns) -> dict[str, Any]:
    """Integer category codes -> the schema's strings (object arrays), other columns as-is."""
    out: dict[str, Any] = {}
    for name in feature_names():
        feat = feature(name)
        if feat.kind is Kind.CATEGORY:
            out[name] = np.asarray(feat.categories, dtype=object)[cols[name]]
        else:
            out[name] = cols[name]
    return out


def generate(
    n_customers: int,
    *,
    seed: int = 0,
    n_snapshots: int = 1,
    start: datetime | None = None,
    label_delay: timedelta = DEFAULT_LABEL_DELAY,
) -> pd.DataFrame:
    """Synthetic customers: n_customers rows per monthly snapshot, deterministic for `seed`.

    Columns: customer_id, feature_names(), churn, event_timestamp, label_observed_at
    (= event_timestamp + label_delay). Snapshot k is at `start` + k months (`start`
    defaults to the fixed DEFAULT_SNAPSHOT_TIME, never now(), so output is
    reproducible). See the module docstring for how snapshots age and replace churners.
    """
    if n_customers < 1:
        raise ValueError(f"n_customers must be >= 1, got {n_customers}")
    if not 1 <= n_snapshots <= MAX_SNAPSHOTS:
        raise ValueError(f"n_snapshots must be in [1, {MAX_SNAPSHOTS}], got {n_snapshots}")
    first = as_utc(start, what="start") if start is not None else DEFAULT_SNAPSHOT_TIME
    rng = np.random.default_rng(seed)

    state = _draw_customers(rng, n_customers, new=False)
    state["number"] = np.arange(1, n_customers + 1, dtype=np.int64)
    next_number = n_customers + 1
    snapshots: list[Columns] = []
    for k in range(n_snapshots):
        if k > 0:
            state, next_number = _next_month(rng, state, next_number)
        state[LABEL] = (rng.random(n_customers) < churn_probability(state)).astype(np.int64)
        snapshots.append(state)

    coded = {name: np.concatenate([s[name] for s in snapshots]) for name in snapshots[0]}
    digits = max(ID_DIGITS, len(str(next_number - 1)))
    times = np.repeat(
        np.array(
            [pd.Timestamp(add_months(first, k)).tz_convert(None) for k in range(n_snapshots)],
            dtype="datetime64[ns]",
        ),
        n_customers,
    )
    event = pd.Series(times).dt.tz_localize("UTC").astype(UTC_DTYPE)
    frame = pd.DataFrame(
        {
            ENTITY_KEY: _customer_ids(coded["number"], digits),
            **_decode(coded),
            LABEL: coded[LABEL],
            EVENT_TIMESTAMP: event,
            LABEL_OBSERVED_AT: event + pd.Timedelta(label_delay),
        },
        # The arrays are fresh and owned by this frame: skip the copy into one
        # consolidated object block (a third of the run time at 1M rows).
        copy=False,
    )
    return frame


def _next_month(rng: np.random.Generator, state: Columns, next_number: int) -> tuple[Columns, int]:
    """Age stayers by a month and replace this month's churners with new customers."""
    stay = state[LABEL] == 0
    aged = {name: values[stay] for name, values in state.items() if name != LABEL}
    aged["tenure"] = aged["tenure"] + 1
    aged["total_charges"] = np.round(aged["total_charges"] + aged["monthly_charges"], 2)
    n_new = int((~stay).sum())
    joiners = _draw_customers(rng, n_new, new=True)
    joiners["number"] = np.arange(next_number, next_number + n_new, dtype=np.int64)
    merged = {name: np.concatenate([aged[name], joiners[name]]) for name in aged}
    return merged, next_number + n_new
