"""The model registry: immutable, checksummed bundles with atomic aliases and an audit log.

Open one with :func:`open_registry`, then ``publish`` bundles, ``resolve`` references such as
``BTCUSDT/lightgbm@champion``, ``promote`` with compare-and-swap, ``rollback``, and read
``history`` and ``generation``, and ``record_gates``/``latest_gates`` after a gate run. See ``docs/manifest.schema.json`` for the bundle manifest.
"""

from alphaops.registry._alarms import HOLD_ALARM, Alarm
from alphaops.registry._clearance import Clearance, judge_clearance
from alphaops.registry._db import Database
from alphaops.registry._maintenance import (
    DoctorReport,
    Finding,
    PrunePolicy,
    PruneReport,
    VerifyReport,
)
from alphaops.registry._rollouts import RolloutEvent, RolloutRecord
from alphaops.registry._types import (
    ANY,
    AliasMove,
    AnyVersion,
    AuditRecord,
    GateAttachment,
    GatePolicyRecord,
    GateRun,
    ModelVersion,
    VersionStatus,
)
from alphaops.registry.bundle import Bundle, verify_bundle, write_bundle
from alphaops.registry.manifest import Manifest, manifest_json_schema
from alphaops.registry.refs import ModelKey, ModelRef, parse_key, parse_ref
from alphaops.registry.registry import NOTIFY_CHANNEL, Registry, open_registry

__all__ = [
    "ANY",
    "HOLD_ALARM",
    "NOTIFY_CHANNEL",
    "Alarm",
    "AliasMove",
    "AnyVersion",
    "AuditRecord",
    "Bundle",
    "Clearance",
    "Database",
    "DoctorReport",
    "Finding",
    "GateAttachment",
    "GatePolicyRecord",
    "GateRun",
    "Manifest",
    "ModelKey",
    "ModelRef",
    "ModelVersion",
    "PrunePolicy",
    "PruneReport",
    "Registry",
    "RolloutEvent",
    "RolloutRecord",
    "VerifyReport",
    "VersionStatus",
    "judge_clearance",
    "manifest_json_schema",
    "open_registry",
    "parse_key",
    "parse_ref",
    "verify_bundle",
    "write_bundle",
]
