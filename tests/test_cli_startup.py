"""The CLI starts fast: loading it (every ``alphaops.cli`` module) imports nothing heavy.

Commands import the library inside their bodies (see the rule in ``alphaops.cli``'s
docstring); this test imports every module of the package in a fresh process and fails if
one of them pulls in a heavy library at load, so ``alphaops -h`` and ``alphaops registry
list`` never again pay for pandas, scipy or a training framework before they need it.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import alphaops.cli
from alphaops.cli import _names
from alphaops.training import MODEL_FAMILIES
from alphaops.training.fanout import EXECUTORS

HEAVY = (
    "pandas",
    "numpy",
    "pyarrow",
    "scipy",
    "sklearn",
    "torch",
    "lightgbm",
    "xgboost",
    "onnxruntime",
    "sqlalchemy",
    "matplotlib",
    "alphaops.services",
    "alphaops.gates",
    "alphaops.training",
    "alphaops.registry",
)

PROBE = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
heavy = sorted({m.split(".")[0] if not m.startswith("alphaops") else ".".join(m.split(".")[:2])
                for m in sys.modules} & set(json.loads(sys.stdin.read())))
print(json.dumps(heavy))
"""


def _cli_modules() -> list[str]:
    found = [m.name for m in pkgutil.iter_modules(alphaops.cli.__path__, "alphaops.cli.")]
    return ["alphaops.cli", *sorted(found)]


def _heavy_after_importing(modules: list[str]) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *modules],
        input=json.dumps(HEAVY),
        capture_output=True,
        text=True,
        check=True,
    )
    heavy: list[str] = json.loads(done.stdout)
    return heavy


def test_importing_every_cli_module_loads_no_heavy_library() -> None:
    modules = _cli_modules()
    assert {"alphaops.cli._registry", "alphaops.cli._train", "alphaops.cli._gates"} <= set(modules)
    # One process per module: a module that imports pandas is named, not hidden by another.
    offenders = {m: heavy for m in modules if (heavy := _heavy_after_importing([m]))}
    assert offenders == {}, (
        "these CLI modules import heavy code at load; import it inside the command "
        f"function instead (rule in alphaops/cli/__init__.py): {offenders}"
    )


def test_the_probe_does_see_a_heavy_import() -> None:
    # The check above cannot pass by accident: the same probe catches a module that is heavy.
    heavy = _heavy_after_importing(["alphaops.services.registry"])
    assert {"alphaops.registry", "alphaops.services", "sqlalchemy"} <= set(heavy)


def test_light_option_choices_equal_the_library_names() -> None:
    assert _names.MODEL_FAMILIES == MODEL_FAMILIES
    assert _names.EXECUTORS == EXECUTORS
