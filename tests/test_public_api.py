"""The public surface: every package's ``__all__`` lists exactly what it exposes."""

from __future__ import annotations

import importlib
import inspect

import pytest

import alphaops

PACKAGES = [
    "alphaops",
    "alphaops.core",
    "alphaops.data",
    "alphaops.features",
    "alphaops.datasets",
    "alphaops.registry",
    "alphaops.training",
    "alphaops.gates",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_matches_the_public_names(name: str) -> None:
    package = importlib.import_module(name)
    for exported in package.__all__:  # a lazily imported name (PEP 562) is resolved here
        getattr(package, exported)
    public = {
        n for n, v in vars(package).items() if not n.startswith("_") and not inspect.ismodule(v)
    }
    public.discard("annotations")
    assert set(package.__all__) - {"__version__"} == public


@pytest.mark.parametrize("name", PACKAGES)
def test_every_public_callable_has_a_docstring(name: str) -> None:
    package = importlib.import_module(name)
    missing = [
        n
        for n in package.__all__
        if (inspect.isclass(getattr(package, n)) or inspect.isfunction(getattr(package, n)))
        and not inspect.getdoc(getattr(package, n))
    ]
    assert missing == []


def test_version_is_exposed() -> None:
    assert alphaops.__version__.count(".") == 2


def test_importing_the_package_imports_nothing_heavy_in_a_fresh_process() -> None:
    import subprocess
    import sys

    code = "import sys, alphaops; print(sorted(m for m in ('pandas', 'numpy') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
