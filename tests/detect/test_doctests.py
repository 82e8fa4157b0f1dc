"""The docstring examples of the detection wing and the twin run as part of the suite."""
import doctest
import importlib

import pytest

MODULES = ["twinlib.twin", "twinlib.detect.legacy", "twinlib.detect.detectors.zscore",
           "twinlib.detect.detectors.ewma", "twinlib.detect.detectors.cusum",
           "twinlib.detect.detectors.pca", "twinlib.detect.detectors.iforest",
           "twinlib.detect.detectors.twin_residual"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
