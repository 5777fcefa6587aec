"""The bundled sample pack (data/samples/) exists, is usable, licensed and unchanged.

Fast: reads every file once (about 3 MB). Rebuilding the pack needs the network, espeak-ng and
sox, so it is not done here; see data/samples/build.py --verify.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

PACK = Path(__file__).resolve().parents[2] / "data" / "samples"
IMAGES = sorted((PACK / "images").glob("*"))
CLIPS = sorted((PACK / "speech").glob("*.wav"))
TEXTS = sorted((PACK / "text").glob("*.txt"))


def test_pack_layout_and_size():
    assert (PACK / "LICENSES.md").is_file()
    assert (PACK / "SHA256SUMS").is_file()
    assert (PACK / "build.py").is_file()
    assert 12 <= len(IMAGES) <= 30
    assert 12 <= len(CLIPS) <= 20
    assert 2 <= len(TEXTS) <= 6
    total = sum(p.stat().st_size for p in PACK.rglob("*") if p.is_file())
    assert total <= 4 * 1024 * 1024, f"pack is {total} bytes"


@pytest.mark.parametrize("path", IMAGES, ids=lambda p: p.name)
def test_image_opens_as_rgb(path: Path):
    assert path.suffix.lower() in (".png", ".jpg", ".jpeg")
    with Image.open(path) as im:
        im.load()
        rgb = im.convert("RGB")
    assert 64 <= min(rgb.size) and max(rgb.size) <= 256
    pixels = np.asarray(rgb)
    assert pixels.shape[2] == 3
    # a real photograph: not flat, not a single-channel image stored as RGB
    assert pixels.std() > 5
    assert np.abs(pixels[..., 0].astype(int) - pixels[..., 2]).mean() > 1


def test_images_are_distinct():
    digests = {
        hashlib.sha256(np.asarray(Image.open(p).convert("RGB")).tobytes()).digest() for p in IMAGES
    }
    assert len(digests) == len(IMAGES)


@pytest.mark.parametrize("path", CLIPS, ids=lambda p: p.name)
def test_speech_is_16k_mono(path: Path):
    info = sf.info(str(path))
    assert info.samplerate == 16_000
    assert info.channels == 1
    assert info.subtype == "PCM_16"
    assert 1.5 <= info.duration <= 6.0
    audio, rate = sf.read(str(path), dtype="float32")
    assert rate == 16_000 and audio.ndim == 1
    assert np.sqrt(np.mean(audio**2)) > 0.01  # not silence
    assert np.abs(audio).max() < 1.0  # not clipped


def test_speech_total_under_two_megabytes():
    assert sum(p.stat().st_size for p in CLIPS) <= 2 * 1024 * 1024


def test_transcripts_cover_every_clip():
    rows = (PACK / "speech" / "transcripts.tsv").read_text(encoding="utf-8").splitlines()
    assert rows[0].split("\t") == ["file", "voice", "wpm", "pitch", "source", "text"]
    names = {row.split("\t")[0] for row in rows[1:]}
    assert names == {p.name for p in CLIPS}


@pytest.mark.parametrize("path", TEXTS, ids=lambda p: p.name)
def test_text_is_utf8_english_prose(path: Path):
    raw = path.read_bytes()
    text = raw.decode("utf-8")  # raises if not UTF-8
    assert b"\r\n" not in raw
    assert len(raw) >= 50_000
    words = text.split()
    assert len(words) >= 8_000
    common = sum(w.lower().strip(".,;:!?\"'_") in {"the", "and", "of", "to", "a"} for w in words)
    assert common / len(words) > 0.05  # English prose, not a list or binary junk
    assert "gutenberg" not in text.lower()  # no Project Gutenberg boilerplate


def test_text_total_size():
    total = sum(p.stat().st_size for p in TEXTS)
    assert 200_000 <= total <= 600_000


def test_licenses_mention_every_file():
    licenses = (PACK / "LICENSES.md").read_text(encoding="utf-8")
    for path in [*IMAGES, *CLIPS, *TEXTS]:
        rel = path.relative_to(PACK).as_posix()
        assert f"`{rel}`" in licenses, f"{rel} not in LICENSES.md"
    for word in ("public domain", "CC0", "scikit-image", "espeak-ng", "build.py"):
        assert word in licenses


def test_sha256sums_match():
    listed = {}
    for line in (PACK / "SHA256SUMS").read_text(encoding="utf-8").splitlines():
        digest, name = line.split(maxsplit=1)
        listed[name.strip()] = digest
    on_disk = {
        p.relative_to(PACK).as_posix()
        for sub in ("images", "speech", "text")
        for p in (PACK / sub).rglob("*")
        if p.is_file()
    } | {"LICENSES.md"}
    assert set(listed) == on_disk
    for name, digest in listed.items():
        assert hashlib.sha256((PACK / name).read_bytes()).hexdigest() == digest, name


def test_build_script_reads_its_own_r_data_format():
    """build.py's tiny R deserializer decodes a hand-made XDR character vector."""
    import importlib.util
    import struct

    spec = importlib.util.spec_from_file_location("sample_pack_build", PACK / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)

    def charsxp(s: bytes) -> bytes:
        return struct.pack(">ii", 0x00040009, len(s)) + s

    payload = (
        b"X\n"
        + struct.pack(">iii", 3, 0x040201, 0x030500)
        + struct.pack(">i", 5)
        + b"UTF-8"
        + struct.pack(">ii", 16, 3)
        + charsxp(b"It is")
        + struct.pack(">i", 9)
        + struct.pack(">i", -1)
        + charsxp(b"a truth")
    )
    assert build.r_unserialize(payload) == ["It is", None, "a truth"]
    assert build.excerpt("T\n\nChapter 1\n\nab\n\nChapter 2\n\ncd", "x", 25) == (
        "T\n\nChapter 1\n\nab\n"
    )


def test_prepare_finds_the_pack():
    """The file finder of `multibyte prepare` sees exactly the pack's images, clips and texts,
    each through its modality's adapter, and skips only the other files (transcripts)."""
    modalities = pytest.importorskip("modalities")
    inputs = pytest.importorskip("multibyte.inputs")
    for name, folder, expected in [
        ("image", "images", IMAGES),
        ("audio", "speech", CLIPS),
        ("text", "text", TEXTS),
    ]:
        tasks, skips = inputs.find_tasks(modalities.get(name), [PACK / folder])
        assert [Path(task.path) for task in tasks] == expected
        others = {p for p in (PACK / folder).rglob("*") if p.is_file()} - set(expected)
        assert {Path(skip.source) for skip in skips} == others
    image = modalities.get("image", size=64)
    assert len(image.encode_file(IMAGES[0])) == 64 * 64 * 3
