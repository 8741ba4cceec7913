"""The serving error contract: one exception type per outcome, each with its HTTP status.

MLServer turns any MLServerError raised by a runtime into the Open Inference
Protocol's error body, `{"error": "[<code>] <message>"}`, with the exception's status code.
Every message names what was wrong (the request field, the customer ids, the
unreachable store) so a client can act on it without reading server logs.

| case                                          | status | raised by            |
|-----------------------------------------------|--------|----------------------|
| body is not JSON / not a V2 request           | 422    | MLServer (FastAPI)   |
| wrong input name, datatype, shape, parameter  | 400    | BadRequestError      |
| empty batch, batch over max_batch             | 400    | BadRequestError      |
| customer ids with no features online          | 404    | UnknownCustomerError |
| customers with some feature views missing     | 404    | IncompleteFeaturesError |
| Redis unreachable, or slower than the timeout | 503    | OnlineStoreUnavailable |
| served values the model cannot encode         | 500    | FeatureDataError     |
| model instance unloading (reload race)        | 503    | ModelUnavailableError |
| bundle missing/corrupt, Feast layout mismatch | 422    | ModelLoadError (*)   |

(*) through the repository API (load/reload); at startup MLServer exits instead, so
the server never reports ready.

`outcome` is the label the runtime's request counter uses for each class; `code`
(churn.inference.ErrorCode) starts every message, in brackets, so that clients read
what happened from the code and never from the wording.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from mlserver.errors import MLServerError

from churn.inference import ErrorCode, coded_message

# How many ids an error message quotes (a batch can hold 1000).
MAX_QUOTED_IDS = 20


class ServingError(MLServerError):  # type: ignore[misc]  # MLServer ships no type hints
    """Base class of the runtime's errors; `outcome` labels the request metric."""

    outcome: ClassVar[str] = "error"
    status: ClassVar[int] = 500
    code: ClassVar[ErrorCode] = ErrorCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(coded_message(self.code, message), status_code=self.status)


class BadRequestError(ServingError):
    """The request is valid V2 JSON but not a valid churn request; names the field."""

    outcome: ClassVar[str] = "bad_request"
    status: ClassVar[int] = 400
    code: ClassVar[ErrorCode] = ErrorCode.BAD_REQUEST

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        super().__init__(f"invalid request field {field!r}: {problem}")


def _quote(ids: Sequence[str]) -> str:
    shown = list(ids[:MAX_QUOTED_IDS])
    more = f" (+{len(ids) - len(shown)} more)" if len(ids) > len(shown) else ""
    return f"{shown}{more}"


class UnknownCustomerError(ServingError):
    """Ids the online store has no features for: never scored on null features."""

    outcome: ClassVar[str] = "unknown_customer"
    status: ClassVar[int] = 404
    code: ClassVar[ErrorCode] = ErrorCode.UNKNOWN_CUSTOMER

    def __init__(self, customer_ids: Sequence[str]) -> None:
        self.customer_ids = list(customer_ids)
        super().__init__(
            f"{len(self.customer_ids)} unknown customer id(s), no features in the online "
            f"store: {_quote(self.customer_ids)}"
        )


class IncompleteFeaturesError(ServingError):
    """Customers with some feature views absent online (a partial materialization)."""

    outcome: ClassVar[str] = "incomplete_features"
    status: ClassVar[int] = 404
    code: ClassVar[ErrorCode] = ErrorCode.INCOMPLETE_FEATURES

    def __init__(self, missing_views: dict[str, list[str]]) -> None:
        self.missing_views = missing_views
        ids = list(missing_views)
        detail = {cid: missing_views[cid] for cid in ids[:MAX_QUOTED_IDS]}
        super().__init__(
            f"{len(ids)} customer id(s) lack feature views in the online store, so they are "
            f"not scored (missing views per id): {detail}"
        )


class OnlineStoreUnavailable(ServingError):  # noqa: N818 (a state, like ConnectionError)
    """Redis could not be reached, or did not answer within the timeout."""

    outcome: ClassVar[str] = "store_unavailable"
    status: ClassVar[int] = 503
    code: ClassVar[ErrorCode] = ErrorCode.STORE_UNAVAILABLE


class FeatureDataError(ServingError):
    """Served feature values the model cannot encode (schema and store disagree)."""

    outcome: ClassVar[str] = "feature_data_error"
    status: ClassVar[int] = 500
    code: ClassVar[ErrorCode] = ErrorCode.FEATURE_DATA


class ModelUnavailableError(ServingError):
    """A request reached an instance that is unloading (a race with a reload)."""

    outcome: ClassVar[str] = "error"
    status: ClassVar[int] = 503
    code: ClassVar[ErrorCode] = ErrorCode.MODEL_UNAVAILABLE


class ModelLoadError(ServingError):
    """The bundle could not be loaded; the model is not made ready."""

    outcome: ClassVar[str] = "load_error"
    status: ClassVar[int] = 422
    code: ClassVar[ErrorCode] = ErrorCode.LOAD_ERROR
