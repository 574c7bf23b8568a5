"""The public surface of ``alphaops.training``: ``__all__`` is exact and documented."""

from __future__ import annotations

import inspect

import alphaops.training as training


def test_all_lists_exactly_the_public_names_of_the_training_package() -> None:
    public = {
        n for n, v in vars(training).items() if not n.startswith("_") and not inspect.ismodule(v)
    }
    public.discard("annotations")
    assert set(training.__all__) == public


def test_every_public_class_and_function_of_training_has_a_docstring() -> None:
    missing = [
        n
        for n in training.__all__
        if (inspect.isclass(getattr(training, n)) or inspect.isfunction(getattr(training, n)))
        and not inspect.getdoc(getattr(training, n))
    ]
    assert missing == []
