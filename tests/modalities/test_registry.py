from __future__ import annotations

from importlib import metadata

import pytest

import modalities
from modalities.audio import AudioAdapter
from modalities.base import Adapter
from modalities.image import ImageAdapter
from modalities.text import TextAdapter


def test_builtins_and_protocol():
    for name, cls in [("text", TextAdapter), ("image", ImageAdapter), ("audio", AudioAdapter)]:
        adapter = modalities.get(name)
        assert isinstance(adapter, cls)
        assert isinstance(adapter, Adapter)
        assert adapter.name == name
    assert modalities.get("text").seq_len is None
    assert modalities.get("image").seq_len == 12288
    assert modalities.get("audio").seq_len == 524_288
    assert {"text", "image", "audio"} <= set(modalities.available())


@pytest.mark.parametrize(
    "options",
    [
        {"name": "text"},
        {"name": "image", "size": 33, "order": "patch", "patch_size": 27},
        {"name": "audio", "sample_rate": 8000, "encoding": "mulaw8", "seq_len": 4096},
    ],
)
def test_options_round_trip(options):
    adapter = modalities.get(**options)
    rebuilt = modalities.get(**adapter.options)
    assert rebuilt == adapter
    assert rebuilt.options == adapter.options
    for key, value in options.items():
        assert adapter.options[key] == value


def test_unknown_name():
    with pytest.raises(ValueError, match="unknown modality 'video'"):
        modalities.get("video")


@pytest.mark.parametrize(
    ("name", "options", "option"),
    [
        ("image", {"order": "zigzag"}, "order"),
        ("image", {"size": 0}, "size"),
        ("image", {"size": -3}, "size"),
        ("image", {"order": "patch", "patch_size": 8}, "patch_size"),
        ("image", {"order": "patch", "patch_size": 12, "size": 63}, "size"),
        ("audio", {"encoding": "foo"}, "encoding"),
        ("audio", {"sample_rate": 0}, "sample_rate"),
        ("audio", {"seq_len": 1001}, "seq_len"),
        ("audio", {"tail": "pad"}, "tail"),
        ("text", {"patch_size": 0}, "patch_size"),
        ("image", {"colour": "red"}, "colour"),
    ],
)
def test_bad_options_name_the_option(name, options, option):
    with pytest.raises(ValueError, match=option):
        modalities.get(name, **options)


class _Toy:
    name = "toy"
    seq_len = 4
    default_patch_size = 2
    unit = "bits/byte"

    def __init__(self, scale: int = 1) -> None:
        self.scale = scale

    @property
    def options(self):
        return {"name": "toy", "scale": self.scale}

    def encode(self, obj):
        return bytes(obj)

    def decode(self, data):
        return list(data)

    def encode_file(self, path):
        return open(path, "rb").read()

    def save(self, data, path):
        open(path, "wb").write(data)


def test_entry_point_registration(monkeypatch):
    point = metadata.EntryPoint(
        name="toy", value=f"{__name__}:_Toy", group=modalities.ENTRY_POINT_GROUP
    )
    real = metadata.entry_points

    def fake(**kwargs):
        if kwargs.get("group") == modalities.ENTRY_POINT_GROUP:
            return metadata.EntryPoints([point])
        return real(**kwargs)

    monkeypatch.setattr(metadata, "entry_points", fake)
    assert "toy" in modalities.available()
    adapter = modalities.get("toy", scale=3)
    assert isinstance(adapter, _Toy) and adapter.scale == 3
    assert modalities.get(**adapter.options).scale == 3
    with pytest.raises(ValueError, match="wobble"):
        modalities.get("toy", wobble=1)


def test_register_in_process(monkeypatch):
    monkeypatch.setattr(modalities, "_registered", {})
    modalities.register("toy2", _Toy)
    assert isinstance(modalities.get("toy2"), _Toy)
