"""The alphaops exception tree, its stable codes, and the table that maps them to exit codes.

Every error raised by alphaops derives from :class:`AlphaOpsError`. Branches follow what the
caller does next::

    class                               code              exit  http   caller's next step
    AlphaOpsError                       alphaops_error    1     500    report a bug
    ├── UsageError                      usage_error       1     400    fix the command or call
    │   ├── ConfigError                 config_invalid    1     400    fix the config file/env
    │   ├── InvalidNameError            name_invalid      1     400    use a safe name
    │   ├── SpecError                   spec_invalid      1     400    fix the feature/label/split spec
    │   │   └── LookaheadError          lookahead         1     422    compute from past bars only
    │   ├── IllegalTransitionError      illegal_transition 1    409    make a move the lifecycle allows
    │   ├── UntrustedCodeError          untrusted_code    1     403    pass --trust-pickle, or convert first
    │   ├── AuthenticationError         unauthenticated   1     401    send a valid, unrevoked API token
    │   └── PermissionDeniedError       forbidden         1     403    use a token with the needed role
    ├── DataError                       data_error        1     422    fix or re-download the data
    │   ├── DataFormatError             data_format       1     422    convert or point at the right file
    │   ├── DataValidationError         data_invalid      1     422    repair the listed rows
    │   ├── DataConflictError           data_conflict     1     409    resolve overlapping candles
    │   ├── InsufficientDataError       data_insufficient 1     422    provide more history
    │   ├── WrongMarketError            wrong_market      1     422    feed the model's symbol/timeframe
    │   ├── DataGapError                data_gap          1     422    wait for gap-free bars
    │   └── StaleBarError               stale_bar         1     409    send each new closed bar once
    ├── IntegrityError                  integrity_error   1     422    restore or re-publish the named file
    │   ├── IncompatibleModelError      model_incompatible 1    422    publish a model for this runtime's inputs
    │   └── ModelFailedError            inference_failed  1     500    roll back; inspect the model
    ├── VersionConflictError            version_conflict  1     409    re-read the current version, retry
    ├── NotFoundError                   not_found         1     404    check the name or import first
    ├── ExternalServiceError            external_service  1     503    retry later
    │   └── ExchangeError               exchange_error    1     503    retry; check the exchange
    ├── TrainingError                   training_failed   1     500    read the cause, fix data or params
    │   └── ParityError                 onnx_parity       1     422    fix the export; nothing was published
    ├── NotFittedError                  not_fitted        1     409    call fit() first
    ├── CancelledError                  cancelled         130   499    nothing to do: nothing was kept
    └── GateFailedError                 gate_failed       2     422    fix the model, or force with a reason
        └── DriftAlarmError             drift_alarm       2     409    acknowledge the alarm, or force

Codes are part of the public contract: they appear in ``--json`` output and HTTP bodies and
never change meaning. Exit code 2 is reserved for "a gate failed" (a blocker, not a bug): only
:class:`GateFailedError` (and its :class:`DriftAlarmError`) exits with 2; every other error
exits with 1, except :class:`CancelledError`, which exits with 130 like Ctrl-C.

>>> err = DataValidationError("2 rows have NaN prices", fix="drop or repair them")
>>> err.code, err.exit_code, err.http_status
('data_invalid', 1, 422)
>>> str(err)
'2 rows have NaN prices. Fix: drop or repair them'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "ERROR_TABLE",
    "AlphaOpsError",
    "AuthenticationError",
    "CancelledError",
    "ConfigError",
    "DataConflictError",
    "DataError",
    "DataFormatError",
    "DataGapError",
    "DataValidationError",
    "DriftAlarmError",
    "ErrorCode",
    "ExchangeError",
    "ExternalServiceError",
    "GateFailedError",
    "IllegalTransitionError",
    "IncompatibleModelError",
    "InsufficientDataError",
    "IntegrityError",
    "InvalidNameError",
    "LookaheadError",
    "ModelFailedError",
    "NotFittedError",
    "NotFoundError",
    "ParityError",
    "PermissionDeniedError",
    "SpecError",
    "StaleBarError",
    "TrainingError",
    "UntrustedCodeError",
    "UsageError",
    "VersionConflictError",
    "WrongMarketError",
]


@dataclass(frozen=True)
class ErrorCode:
    """One row of the error table: a stable code with its CLI exit code and HTTP status."""

    code: str
    exit_code: int
    http_status: int
    meaning: str


ERROR_TABLE: dict[str, ErrorCode] = {
    row.code: row
    for row in (
        ErrorCode("alphaops_error", 1, 500, "unexpected alphaops failure"),
        ErrorCode("usage_error", 1, 400, "the command or call was used wrongly"),
        ErrorCode("config_invalid", 1, 400, "the configuration file or environment is invalid"),
        ErrorCode("name_invalid", 1, 400, "a symbol, model type, alias or file name is unsafe"),
        ErrorCode("spec_invalid", 1, 400, "a feature, label, split or dataset spec is invalid"),
        ErrorCode("lookahead", 1, 422, "a feature's value at a bar depends on later bars"),
        ErrorCode(
            "illegal_transition", 1, 409, "a lifecycle (e.g. a rollout) forbids that move now"
        ),
        ErrorCode(
            "untrusted_code", 1, 403, "loading a file would run its code and it is not trusted"
        ),
        ErrorCode("unauthenticated", 1, 401, "no valid API token was sent"),
        ErrorCode("forbidden", 1, 403, "the API token's role does not allow the request"),
        ErrorCode("data_error", 1, 422, "market data cannot be used"),
        ErrorCode("data_format", 1, 422, "a file is not in a readable candle format"),
        ErrorCode("data_invalid", 1, 422, "candles failed validation"),
        ErrorCode("data_conflict", 1, 409, "new candles disagree with stored candles"),
        ErrorCode("data_insufficient", 1, 422, "not enough history for the request"),
        ErrorCode("wrong_market", 1, 422, "candles of another symbol or timeframe"),
        ErrorCode("data_gap", 1, 422, "a gap in the bars inside a model's input window"),
        ErrorCode("stale_bar", 1, 409, "a bar that is not newer than the last one"),
        ErrorCode(
            "integrity_error", 1, 422, "a stored file or manifest does not match its checksums"
        ),
        ErrorCode(
            "model_incompatible", 1, 422, "a version's features, input or classes do not fit"
        ),
        ErrorCode("inference_failed", 1, 500, "a model failed at inference with no fallback"),
        ErrorCode("version_conflict", 1, 409, "the expected current version is stale"),
        ErrorCode("not_found", 1, 404, "the named object does not exist"),
        ErrorCode("external_service", 1, 503, "an external service failed"),
        ErrorCode("exchange_error", 1, 503, "the exchange failed or refused the request"),
        ErrorCode("training_failed", 1, 500, "training could not produce a model"),
        ErrorCode("onnx_parity", 1, 422, "the ONNX model disagrees with the native model"),
        ErrorCode("not_fitted", 1, 409, "a model was used before fit()"),
        ErrorCode("cancelled", 130, 499, "the job was cancelled; nothing was kept"),
        ErrorCode("gate_failed", 2, 422, "a model failed (or never ran) a quality gate"),
        ErrorCode("drift_alarm", 2, 409, "an unacknowledged drift alarm blocks the move"),
    )
}


class AlphaOpsError(Exception):
    """Base of every alphaops error: a message, an optional fix, and a stable code."""

    code: ClassVar[str] = "alphaops_error"

    def __init__(self, message: str, *, fix: str | None = None, **details: Any) -> None:
        self.message = message
        self.fix = fix
        self.details = details
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return f"{self.message}. Fix: {self.fix}" if self.fix else self.message

    @property
    def exit_code(self) -> int:
        """Return the CLI exit code for this error."""
        return ERROR_TABLE[self.code].exit_code

    @property
    def http_status(self) -> int:
        """Return the HTTP status for this error."""
        return ERROR_TABLE[self.code].http_status

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready description (used by ``--json`` output and the HTTP API)."""
        return {
            "error": self.code,
            "message": self.message,
            "fix": self.fix,
            "details": {k: _jsonable(v) for k, v in self.details.items()},
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return str(value)


class UsageError(AlphaOpsError):
    """The caller used a command or function wrongly."""

    code = "usage_error"


class ConfigError(UsageError):
    """The configuration file or ``ALPHAOPS_*`` environment is invalid."""

    code = "config_invalid"


class InvalidNameError(UsageError):
    """A symbol, model type, alias or dataset name is unsafe or malformed."""

    code = "name_invalid"


class SpecError(UsageError):
    """A feature, label, split or dataset specification is invalid."""

    code = "spec_invalid"


class LookaheadError(SpecError):
    """A feature reads the future: its value at a bar changes when later bars are cut."""

    code = "lookahead"


class IllegalTransitionError(UsageError):
    """A lifecycle (a rollout's phases) was asked to make a move it forbids in its state."""

    code = "illegal_transition"


class UntrustedCodeError(UsageError):
    """Loading a file (a pickle, a full torch model) would run code it carries, untrusted."""

    code = "untrusted_code"


class AuthenticationError(UsageError):
    """An API request carried no bearer token, or one that is unknown or revoked (HTTP 401)."""

    code = "unauthenticated"


class PermissionDeniedError(UsageError):
    """An API token's role does not allow the request (HTTP 403): e.g. a viewer mutating."""

    code = "forbidden"


class DataError(AlphaOpsError):
    """Market data cannot be used as given."""

    code = "data_error"


class DataFormatError(DataError):
    """A file is not in a readable candle format, or lacks required columns."""

    code = "data_format"


class DataValidationError(DataError):
    """Candles failed validation; ``details['problems']`` lists each problem with rows and fix."""

    code = "data_invalid"


class DataConflictError(DataError):
    """New candles disagree with candles already stored for the same timestamps."""

    code = "data_conflict"


class InsufficientDataError(DataError):
    """There is not enough history (rows, warm-up or horizon) for the request."""

    code = "data_insufficient"


class WrongMarketError(DataError):
    """Candles of another symbol or timeframe than the model was trained on."""

    code = "wrong_market"


class DataGapError(DataError):
    """Bars are missing inside the window a model's input needs (e.g. a sequence lookback)."""

    code = "data_gap"


class StaleBarError(DataError):
    """A live bar that is not newer than the last one (out of order or a duplicate)."""

    code = "stale_bar"


class IntegrityError(AlphaOpsError):
    """A bundle file or manifest is missing, altered, truncated or unlisted; ``details['file']``."""

    code = "integrity_error"


class IncompatibleModelError(IntegrityError):
    """A new version cannot serve this runtime: its features, input or classes differ."""

    code = "model_incompatible"


class ModelFailedError(IntegrityError):
    """A model raised or returned malformed output at inference (and no fallback served)."""

    code = "inference_failed"


class VersionConflictError(AlphaOpsError):
    """A compare-and-swap saw another current version than the caller expected."""

    code = "version_conflict"


class NotFoundError(AlphaOpsError):
    """The named object (symbol, timeframe, dataset, file) does not exist."""

    code = "not_found"


class ExternalServiceError(AlphaOpsError):
    """An external service failed; retrying later may succeed."""

    code = "external_service"


class ExchangeError(ExternalServiceError):
    """The exchange failed, rate-limited us beyond the retry budget, or refused the request."""

    code = "exchange_error"


class TrainingError(AlphaOpsError):
    """Training failed (a library error, a degenerate dataset); ``details`` name the job."""

    code = "training_failed"


class ParityError(TrainingError):
    """The ONNX export disagrees with the native model beyond tolerance; nothing is published."""

    code = "onnx_parity"


class NotFittedError(UsageError):
    """A model was asked to predict or export before ``fit()``."""

    code = "not_fitted"


class CancelledError(AlphaOpsError):
    """A job was cancelled (token, Ctrl-C); it left nothing behind in the registry."""

    code = "cancelled"


class GateFailedError(AlphaOpsError):
    """A model failed a gate, or its gates never ran; ``details`` name the failed checks.

    With its subclass :class:`DriftAlarmError`, the only error that exits with 2: a blocker,
    not a bug.
    """

    code = "gate_failed"


class DriftAlarmError(GateFailedError):
    """A drift alarm of the model is not acknowledged: promotion and going live wait for it."""

    code = "drift_alarm"
