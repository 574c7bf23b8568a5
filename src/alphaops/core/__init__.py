"""Core building blocks shared by every layer: errors, config, names, timeframes, home."""

from alphaops.core.config import AlphaOpsConfig, DownloadConfig, load_config
from alphaops.core.errors import (
    ERROR_TABLE,
    AlphaOpsError,
    ConfigError,
    DataConflictError,
    DataError,
    DataFormatError,
    DataValidationError,
    ErrorCode,
    ExchangeError,
    ExternalServiceError,
    InsufficientDataError,
    IntegrityError,
    InvalidNameError,
    NotFoundError,
    SpecError,
    UsageError,
    VersionConflictError,
)
from alphaops.core.home import AlphaOpsHome
from alphaops.core.names import normalize_symbol, validate_name
from alphaops.core.timeframes import Timeframe

__all__ = [
    "ERROR_TABLE",
    "AlphaOpsConfig",
    "AlphaOpsError",
    "AlphaOpsHome",
    "ConfigError",
    "DataConflictError",
    "DataError",
    "DataFormatError",
    "DataValidationError",
    "DownloadConfig",
    "ErrorCode",
    "ExchangeError",
    "ExternalServiceError",
    "InsufficientDataError",
    "IntegrityError",
    "InvalidNameError",
    "NotFoundError",
    "SpecError",
    "Timeframe",
    "UsageError",
    "VersionConflictError",
    "load_config",
    "normalize_symbol",
    "validate_name",
]
