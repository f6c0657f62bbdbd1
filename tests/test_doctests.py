"""The `Examples:` in the public losses' and metrics' docstrings run and print what they say."""

import doctest

import pytest

from jaxrec import losses, metrics


@pytest.mark.parametrize("module", [losses, metrics], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{module.__name__} has no examples"
    assert result.failed == 0
