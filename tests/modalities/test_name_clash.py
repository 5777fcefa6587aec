"""PyPI's unrelated `modalities` distribution in the same environment is reported clearly."""

import importlib
from importlib import metadata

import pytest

import modalities


def test_no_clash_in_this_environment():
    modalities.check_name_clash()  # our own install ships no 'modalities' distribution


def test_foreign_distribution_is_detected(monkeypatch):
    class Foreign:
        version = "0.3.0"

    real = metadata.distribution

    def fake(name):
        return Foreign() if name == "modalities" else real(name)

    monkeypatch.setattr(metadata, "distribution", fake)
    with pytest.raises(ImportError, match="unrelated PyPI distribution 'modalities'"):
        importlib.reload(modalities)
    monkeypatch.undo()
    importlib.reload(modalities)
