"""The public surface of ``alphaops.gates``: ``__all__`` is exact and documented."""

from __future__ import annotations

import inspect

import alphaops.gates as gates


def test_all_lists_exactly_the_public_names_of_the_gates_package() -> None:
    public = {
        n for n, v in vars(gates).items() if not n.startswith("_") and not inspect.ismodule(v)
    }
    assert set(gates.__all__) == public


def test_every_public_class_and_function_of_gates_has_a_docstring() -> None:
    missing = [
        n
        for n in gates.__all__
        if (inspect.isclass(getattr(gates, n)) or inspect.isfunction(getattr(gates, n)))
        and not inspect.getdoc(getattr(gates, n))
    ]
    assert missing == []
