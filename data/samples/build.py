#!/usr/bin/env python3
"""Rebuild the bundled sample pack (images, speech, text) from the packages it came from.

    python data/samples/build.py --out data/samples            # rebuild in place
    python data/samples/build.py --out /tmp/pack --verify data/samples/SHA256SUMS

What it does, deterministically:

1. images/ -- ``pip download`` the scikit-image 0.25.2 wheel (no install), read six public-domain
   / CC0 photographs from ``skimage/data/`` inside it, cut fixed square crops (the table
   ``IMAGE_CROPS`` below), resize each to 128x128 with Pillow's Lanczos filter, save as PNG.
2. text/ -- ``apt-get download`` the Debian packages r-cran-janeaustenr (Jane Austen's novels,
   as stored by the R package from Project Gutenberg with the PG header/footer already removed)
   and dict-devil (Ambrose Bierce's "The Devil's Dictionary"), extract with ``dpkg-deb -x``, decode
   the R lazy-load database / dictzip file with the small readers below, and keep the opening of
   each work, cut at a chapter / entry boundary.
3. speech/ -- synthesize public-domain sentences taken verbatim from those texts with
   ``espeak-ng`` (fixed voice, speed, pitch per clip), then resample to 16 kHz mono PCM16 with
   ``sox -D`` (no dither, so the output is repeatable).
4. LICENSES.md and SHA256SUMS.

Needs: Python 3.9+ with pip, Pillow; ``apt-get``, ``dpkg-deb`` (Debian/Ubuntu), ``espeak-ng`` and
``sox`` on PATH (``apt-get install espeak-ng sox``). Nothing is installed into the environment
that runs this script: the wheel and the .deb files are only downloaded and unpacked into a
temporary work directory (``--workdir`` keeps and reuses them).

The pack was built with Pillow 12/13, espeak-ng 1.51+dfsg-10+deb12u2 and sox 14.4.2 (Debian 12).
Other versions of these tools can change the output bytes (resampling filters, zlib, synthesis),
in which case ``--verify`` reports which files differ.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path

# --------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------

SKIMAGE_VERSION = "0.25.2"
SKIMAGE_WHEEL = "scikit_image-0.25.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
SKIMAGE_WHEEL_SHA256 = "24cc986e1f4187a12aa319f777b36008764e856e5013666a4a83f8df083c2641"

DEBS = {
    # package: (version, sha256 of the .deb from deb.debian.org, bookworm)
    "r-cran-janeaustenr": (
        "1.0.0-1",
        "df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95",
    ),
    "dict-devil": ("1.0-13.1", "6a535684def2a1f70cd42da16d12d43f0e9dc3e54e4a329178eebab3170e3154"),
}

# Source photographs inside the scikit-image wheel, their sha256, and the license statement
# quoted from the docstring of the matching loader in skimage/data/_fetchers.py.
PHOTOS = {
    "astronaut.png": (
        "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
        "Eileen Collins, NASA Great Images database. skimage: 'No known copyright restrictions, "
        "released into the public domain.' (work of the US federal government, NASA)",
    ),
    "chelsea.png": (
        "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb",
        "Chelsea the cat. skimage: 'No copyright restrictions. CC0 by the photographer "
        "(Stefan van der Walt).'",
    ),
    "coffee.png": (
        "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7",
        "Coffee cup, courtesy of Pikolo Espresso Bar. skimage: 'No copyright restrictions. CC0 by "
        "the photographer (Rachel Michetti).'",
    ),
    "rocket.jpg": (
        "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c",
        "Launch of DSCOVR on Falcon 9, SpaceX Photos (Flickr). skimage: 'The image was captured by "
        "SpaceX and released in the public domain.'",
    ),
    "hubble_deep_field.jpg": (
        "3a19c5dd8a927a9334bb1229a6d63711b1c0c767fb27e2286e7c84a3e2c2f5f4",
        "Hubble eXtreme Deep Field, HubbleSite. skimage: 'The image was captured by NASA and may "
        "be freely used in the public domain.'",
    ),
    "retina.jpg": (
        "38a07f36f27f095e818aea7b96d34202c05176d30253c66733f2e00379e9e0e6",
        "Fundus photograph of a normal left eye, Mikael Haggstrom, Wikimedia Commons. skimage: "
        "'This file is made available under the Creative Commons CC0 1.0 Universal Public Domain "
        "Dedication.'",
    ),
}

IMAGE_SIZE = 128  # stored side; the image pipeline box-resizes (squashes) to 64x64 itself
# (output name, source file, (left, top, side)) -- square crops in source pixel coordinates.
IMAGE_CROPS = [
    ("astronaut_full", "astronaut.png", (0, 0, 512)),
    ("astronaut_face", "astronaut.png", (120, 20, 200)),
    ("astronaut_shuttle", "astronaut.png", (320, 20, 190)),
    ("astronaut_patch", "astronaut.png", (0, 300, 212)),
    ("astronaut_helmet", "astronaut.png", (280, 280, 232)),
    ("chelsea_center", "chelsea.png", (75, 0, 300)),
    ("chelsea_left_eye", "chelsea.png", (110, 50, 140)),
    ("chelsea_right_eye", "chelsea.png", (255, 65, 140)),
    ("coffee_center", "coffee.png", (100, 0, 400)),
    ("coffee_cup", "coffee.png", (140, 10, 260)),
    ("coffee_spoon", "coffee.png", (380, 100, 200)),
    ("coffee_wood", "coffee.png", (430, 230, 170)),
    ("rocket_center", "rocket.jpg", (106, 0, 427)),
    ("rocket_pad", "rocket.jpg", (210, 200, 200)),
    ("rocket_tower", "rocket.jpg", (0, 0, 220)),
    ("hubble_center", "hubble_deep_field.jpg", (64, 0, 872)),
    ("hubble_tile_a", "hubble_deep_field.jpg", (0, 0, 256)),
    ("hubble_tile_b", "hubble_deep_field.jpg", (400, 150, 256)),
    ("hubble_tile_c", "hubble_deep_field.jpg", (700, 500, 256)),
    ("hubble_tile_d", "hubble_deep_field.jpg", (200, 600, 256)),
    ("retina_full", "retina.jpg", (0, 0, 1411)),
    ("retina_optic_disc", "retina.jpg", (50, 450, 400)),
    ("retina_macula", "retina.jpg", (500, 400, 500)),
    ("retina_vessels", "retina.jpg", (300, 100, 400)),
]

TEXT_MAX_BYTES = 180_000  # per work; each file keeps whole chapters / entries up to this size
# (output file, source, title)
TEXTS = [
    ("pride_and_prejudice.txt", "prideprejudice", "Pride and Prejudice (Jane Austen, 1813)"),
    ("persuasion.txt", "persuasion", "Persuasion (Jane Austen, 1818)"),
    ("devils_dictionary.txt", "devil", "The Devil's Dictionary (Ambrose Bierce, 1881-1906/1911)"),
]

# (output name, espeak-ng voice, words per minute, pitch 0-99, source work, sentence).
# Every sentence is checked to occur verbatim in the source text (whitespace and the "_"
# italics markup normalized away).
# fmt: off
SPEECH = [
    ("s01", "en-us+m3", 165, 45, "devil", "A person who talks when you wish him to listen."),
    ("s02", "en-gb+f2", 185, 60, "devil",
        "That which discloses to the wise and "
        "disguises from the foolish their lack of understanding."),
    ("s03", "en-gb-scotland+m1", 150, 40, "devil",
        "A minor form of despair, disguised as a virtue."),
    ("s04", "en-gb-x-rp+f4", 155, 65, "devil",
        "Our polite recognition of another's resemblance to ourselves."),
    ("s05", "en-029+m7", 175, 50, "devil",
        "A blackguard whose faulty vision sees things as they are, not as they ought to be."),
    ("s06", "en-us+f1", 140, 70, "devil", "The time when men of reason go to bed."),
    ("s07", "en-gb-x-gbclan+m2", 195, 35, "devil",
        "That period of time in which our affairs prosper, "
        "our friends are true and our happiness is assured."),
    ("s08", "en-gb-x-gbcwmd+f3", 150, 55, "devil", "A stench in the ear. Undomesticated music."),
    ("s09", "en-us+m1", 170, 30, "devil",
        "In international affairs, a period of cheating between two periods of fighting."),
    ("s10", "en-gb+f5", 160, 62, "devil",
        "An agreeable sensation arising from contemplating the misery of another."),
    ("s11", "en-gb-x-rp+m4", 165, 42, "prideprejudice",
        "I could easily forgive his pride, if he had not mortified mine."),
    ("s12", "en-us+f2", 165, 58, "prideprejudice",
        "She is tolerable, but not handsome enough to tempt me."),
    ("s13", "en-gb-scotland+f1", 170, 66, "prideprejudice",
        "Vanity and pride are different things, though the words are often used synonymously."),
    ("s14", "en-029+f3", 150, 60, "persuasion", "You pierce my soul. I am half agony, half hope."),
    ("s15", "en-us+m6", 175, 38, "persuasion",
        "She had been forced into prudence in her youth, she learned romance as she grew older."),
    ("s16", "en-gb+m5", 160, 48, "persuasion",
        "One does not love a place the less for having suffered in it."),
]
# fmt: on
SAMPLE_RATE = 16_000
# trim espeak-ng's trailing silence (keep 0.1 s), normalize the peak to -3 dBFS (no clipping)
SOX_EFFECTS = [
    "reverse",
    "silence",
    "1",
    "0.02",
    "0.2%",
    "reverse",
    "pad",
    "0",
    "0.1",
    "gain",
    "-n",
    "-3",
]


def log(msg: str) -> None:
    print(f"[build] {msg}", file=sys.stderr, flush=True)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    log(" ".join(cmd))
    return subprocess.run(cmd, check=True, **kw)


def check_sha(path: Path, expected: str, what: str) -> None:
    got = sha256(path)
    if got != expected:
        log(f"WARNING: {what} sha256 {got} != recorded {expected}; outputs may differ")


# --------------------------------------------------------------------------------------------
# Fetching
# --------------------------------------------------------------------------------------------


def fetch_skimage(work: Path) -> Path:
    wheel = work / SKIMAGE_WHEEL
    if not wheel.exists():
        run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--platform",
                "manylinux2014_x86_64",
                "--python-version",
                "3.11",
                "--implementation",
                "cp",
                f"scikit-image=={SKIMAGE_VERSION}",
                "-d",
                str(work),
            ]
        )
    check_sha(wheel, SKIMAGE_WHEEL_SHA256, wheel.name)
    out = work / "skimage_data"
    out.mkdir(exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        for name in PHOTOS:
            target = out / name
            target.write_bytes(zf.read(f"skimage/data/{name}"))
            check_sha(target, PHOTOS[name][0], f"skimage/data/{name}")
    return out


def fetch_deb(work: Path, package: str) -> Path:
    version, digest = DEBS[package]
    debs = sorted(work.glob(f"{package}_*.deb"))
    if not debs:
        try:
            run(["apt-get", "download", f"{package}={version}"], cwd=work)
        except subprocess.CalledProcessError:
            log(
                f"WARNING: {package}={version} not available from apt; trying any version "
                "(run `apt-get update`; the pinned one is on snapshot.debian.org)"
            )
            run(["apt-get", "download", package], cwd=work)
        debs = sorted(work.glob(f"{package}_*.deb"))
    deb = debs[-1]
    check_sha(deb, digest, deb.name)
    root = work / f"deb_{package}"
    if root.exists():
        shutil.rmtree(root)
    run(["dpkg-deb", "-x", str(deb), str(root)])
    return root


# --------------------------------------------------------------------------------------------
# Minimal reader for R's serialization format (XDR), enough for the character vectors in a
# lazy-load database (data/Rdata.rdx + data/Rdata.rdb) of an installed R package.
# --------------------------------------------------------------------------------------------


class _RReader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos, self.refs = data, 0, []

    def int(self) -> int:
        (value,) = struct.unpack_from(">i", self.data, self.pos)
        self.pos += 4
        return value

    def item(self):
        flags = self.int()
        kind, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if kind in (254, 253, 252, 251, 242, 241):  # NULL, environments, markers
            return None
        if kind == 255:  # reference
            index = flags >> 8 or self.int()
            return self.refs[index - 1]
        if kind == 1:  # symbol
            sym = ("sym", self.item())
            self.refs.append(sym)
            return sym
        if kind == 2:  # pairlist
            if has_attr:
                self.item()
            tag = self.item() if has_tag else None
            car, cdr = self.item(), self.item()
            return [(tag, car)] + (cdr if isinstance(cdr, list) else [])
        if kind == 9:  # CHARSXP
            n = self.int()
            if n == -1:
                return None
            raw = self.data[self.pos : self.pos + n]
            self.pos += n
            return raw.decode("utf-8") if not flags & (1 << 14) else raw.decode("latin-1")
        if kind in (16, 19, 13, 10, 14):  # STRSXP, VECSXP, INTSXP, LGLSXP, REALSXP
            n = self.int()
            if n == -1:
                n = (self.int() << 32) | self.int()
            if kind in (16, 19):
                values = [self.item() for _ in range(n)]
            elif kind == 14:
                values = list(struct.unpack_from(f">{n}d", self.data, self.pos))
                self.pos += 8 * n
            else:
                values = list(struct.unpack_from(f">{n}i", self.data, self.pos))
                self.pos += 4 * n
            attrs = dict((t[1], v) for t, v in self.item()) if has_attr else {}
            return (values, attrs) if attrs else values
        raise ValueError(f"unsupported R type {kind} at byte {self.pos}")


def r_unserialize(data: bytes):
    if data[:2] != b"X\n":
        raise ValueError("not an XDR R serialization")
    reader = _RReader(data)
    reader.pos = 2
    version = reader.int()
    reader.int(), reader.int()
    if version == 3:
        n = reader.int()  # length of the native encoding name, then skip it
        reader.pos += n
    return reader.item()


def read_r_lazydata(data_dir: Path) -> dict[str, list[str | None]]:
    index, _ = r_unserialize(gzip.decompress((data_dir / "Rdata.rdx").read_bytes()))
    (offsets, names), compressed = index[0], index[2]
    if compressed != [1]:
        raise ValueError(f"unsupported lazy-load compression {compressed}")
    rdb = (data_dir / "Rdata.rdb").read_bytes()
    out = {}
    for name, (offset, length) in zip(names["names"], offsets):
        value = r_unserialize(zlib.decompress(rdb[offset + 4 : offset + length]))
        out[name] = value[0] if isinstance(value, tuple) else value
    return out


# --------------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------------


def load_texts(work: Path) -> dict[str, str]:
    austen = fetch_deb(work, "r-cran-janeaustenr")
    novels = read_r_lazydata(austen / "usr/lib/R/site-library/janeaustenr/data")
    texts = {name: "\n".join(line or "" for line in lines) for name, lines in novels.items()}

    devil = fetch_deb(work, "dict-devil")
    body = gzip.decompress((devil / "usr/share/dictd/devil.dict.dz").read_bytes()).decode("utf-8")
    # Drop dictfmt's own records (00-database-*) before the Wiretap edition's title block, and
    # the alphabet record after the last entry.
    start = body.index("            The Internet Wiretap 1st Online Edition")
    end = body.rindex("\n abcdefghijklmnopqrstuvwxyz")
    texts["devil"] = body[start:end]
    return texts


def _is_heading(block: str, source: str) -> bool:
    first = block.lstrip("\n").split("\n", 1)[0]
    if source == "devil":  # "ABASEMENT, n.  A decent ..." -- a dictionary entry
        head = first.split(",", 1)[0]
        return "," in first and head.isupper() and len(head) > 1 and not first.startswith(" ")
    return first.strip().lower().startswith("chapter ")


def excerpt(text: str, source: str, limit: int) -> str:
    """The longest prefix of whole chapters (or dictionary entries) within ``limit`` bytes."""
    blocks = text.replace("\r\n", "\n").split("\n\n")
    cut = 0
    size = 0
    for i, block in enumerate(blocks):
        if i and _is_heading(block, source):
            cut = i  # the prefix blocks[:i] ends at a boundary
        size += len(block.encode("utf-8")) + 2
        if size > limit:
            break
    else:
        cut = len(blocks)
    if cut == 0:
        raise ValueError(f"no boundary within {limit} bytes in {source}")
    return "\n\n".join(blocks[:cut]).rstrip() + "\n"


def build_text(texts: dict[str, str], out: Path) -> list[dict]:
    rows = []
    for filename, source, title in TEXTS:
        body = excerpt(texts[source], source, TEXT_MAX_BYTES)
        (out / filename).write_text(body, encoding="utf-8", newline="\n")
        rows.append(
            dict(
                file=f"text/{filename}",
                source=source,
                title=title,
                bytes=len(body.encode()),
                of=len(texts[source].encode()),
            )
        )
    return rows


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------


def build_images(src: Path, out: Path) -> list[dict]:
    from PIL import Image

    rows = []
    for name, photo, (left, top, side) in IMAGE_CROPS:
        with Image.open(src / photo) as im:
            im = im.convert("RGB")
            if left + side > im.width or top + side > im.height:
                raise ValueError(f"crop {name} outside {photo} {im.size}")
            tile = im.crop((left, top, left + side, top + side))
            tile = tile.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS)
            tile.save(out / f"{name}.png", format="PNG")
        rows.append(dict(file=f"images/{name}.png", photo=photo, box=(left, top, side)))
    return rows


# --------------------------------------------------------------------------------------------
# Speech
# --------------------------------------------------------------------------------------------


def _normalized(text: str) -> str:
    return " ".join(text.replace("_", "").split())


def build_speech(texts: dict[str, str], out: Path, work: Path) -> list[dict]:
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: apt-get install espeak-ng sox")
    version = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout
    log(version.strip())
    rows = []
    tsv = ["file\tvoice\twpm\tpitch\tsource\ttext"]
    for name, voice, wpm, pitch, source, sentence in SPEECH:
        if _normalized(sentence).rstrip(".") not in _normalized(texts[source]):
            raise ValueError(f"{name}: sentence not found verbatim in {source}")
        raw = work / f"{name}_22k.wav"
        run(["espeak-ng", "-v", voice, "-s", str(wpm), "-p", str(pitch), "-w", str(raw), sentence])
        run(
            [
                "sox",
                "-D",
                str(raw),
                "-r",
                str(SAMPLE_RATE),
                "-c",
                "1",
                "-b",
                "16",
                "-e",
                "signed-integer",
                str(out / f"{name}.wav"),
                *SOX_EFFECTS,
            ]
        )
        rows.append(
            dict(
                file=f"speech/{name}.wav",
                voice=voice,
                wpm=wpm,
                pitch=pitch,
                source=source,
                text=sentence,
            )
        )
        tsv.append(f"{name}.wav\t{voice}\t{wpm}\t{pitch}\t{source}\t{sentence}")
    (out / "transcripts.tsv").write_text("\n".join(tsv) + "\n", encoding="utf-8", newline="\n")
    return rows


# --------------------------------------------------------------------------------------------
# LICENSES.md and SHA256SUMS
# --------------------------------------------------------------------------------------------

SOURCE_NAMES = {
    "prideprejudice": "Pride and Prejudice",
    "persuasion": "Persuasion",
    "devil": "The Devil's Dictionary",
}


def write_licenses(out: Path, images: list[dict], speech: list[dict], text: list[dict]) -> None:
    espeak = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout
    espeak = espeak.split("Data at:")[0].strip()  # drop the machine-specific data path
    lines = [
        "# Sample pack: sources and licenses",
        "",
        "Everything here is public domain or CC0 (dedicated to the public domain). This file is "
        "written by `build.py`, which rebuilds the whole pack from the packages named below:",
        "",
        "```",
        "apt-get update && apt-get install -y espeak-ng sox  # tools; sources are only downloaded",
        "python data/samples/build.py --out data/samples",
        "```",
        "",
        "`SHA256SUMS` lists a checksum for every file of the pack (except itself and `build.py`); "
        "`build.py --verify data/samples/SHA256SUMS` rebuilds into `--out` and compares.",
        "",
        "## images/ -- 24 PNG files, 128x128 RGB",
        "",
        f"Origin: PyPI package **scikit-image {SKIMAGE_VERSION}**, wheel `{SKIMAGE_WHEEL}` "
        f"(sha256 `{SKIMAGE_WHEEL_SHA256}`), files `skimage/data/<name>` inside it. Only files "
        "whose loader docstring in `skimage/data/_fetchers.py` states public domain or CC0 were "
        "taken; each statement is quoted below. (scikit-image's own code is BSD-3-Clause; that "
        "license does not apply to, and is not needed for, these photographs.)",
        "",
        "| source file | sha256 | license / public-domain basis |",
        "|---|---|---|",
    ]
    for name, (digest, note) in PHOTOS.items():
        lines.append(f"| `skimage/data/{name}` | `{digest[:16]}...` | {note} |")
    lines += [
        "",
        "Transformation: a fixed square crop `(left, top, side)` in source pixels (a `_full` / "
        "`_center` name is the whole frame or its largest centred square; the others are tiles of "
        "the same photograph, chosen by hand so that several distinct 64x64-worthy images come "
        "from each photograph), converted to RGB, resized to 128x128 with Pillow's Lanczos filter, "
        "saved as PNG. Note that the tiles of one photograph are not independent of one another: "
        "for a clean train/val split, split by source photograph (the name prefix).",
        "",
        "| file | source | crop (left, top, side) |",
        "|---|---|---|",
    ]
    for row in images:
        lines.append(f"| `{row['file']}` | `{row['photo']}` | {row['box']} |")
    lines += [
        "",
        "## text/ -- public-domain English prose, UTF-8",
        "",
        "| file | work | bytes kept / whole work |",
        "|---|---|---|",
    ]
    for row in text:
        lines.append(f"| `{row['file']}` | {row['title']} | {row['bytes']:,} / {row['of']:,} |")
    lines += [
        "",
        "Each file is the opening of the work, cut after the last whole chapter (Austen) or "
        f"dictionary entry (Bierce) that fits in {TEXT_MAX_BYTES:,} bytes; line breaks and the `_` "
        "italics markup of the source are kept, line endings are LF.",
        "",
        "- **Jane Austen** (1775-1817), *Pride and Prejudice* (1813) and *Persuasion* (1818): "
        "public domain (published over 200 years ago; author died 1817). "
        f"Origin: Debian package **r-cran-janeaustenr {DEBS['r-cran-janeaustenr'][0]}** (bookworm, "
        f"sha256 of the .deb `{DEBS['r-cran-janeaustenr'][1]}`), file "
        "`usr/lib/R/site-library/janeaustenr/data/Rdata.rdb` (R lazy-load database, objects "
        "`prideprejudice` and `persuasion`, character vectors of lines), decoded by the small R "
        "deserializer in `build.py` (no R needed). The R package (Julia Silge, MIT-licensed code, "
        "see its `debian/copyright`) took the texts from Project Gutenberg and already removed "
        "the Project Gutenberg license header and footer; no PG boilerplate or trademark text "
        "remains (the novels themselves are public domain; the PG license applies only to PG's "
        "own boilerplate and branding).",
        "- **Ambrose Bierce** (1842-1914?), *The Devil's Dictionary* (1911 edition): public "
        "domain. "
        f"Origin: Debian package **dict-devil {DEBS['dict-devil'][0]}** (bookworm, sha256 of the "
        f".deb `{DEBS['dict-devil'][1]}`), file `usr/share/dictd/devil.dict.dz` (dictzip = gzip). "
        "Its `debian/copyright` says: \"The Devil's Dictionary is in the public domain, its "
        'copyright has expired"; the Internet Wiretap edition it derives from carries the header '
        '"Copyright 1911 by Albert and Charles Boni, Inc. A Public Domain Text, Copyright '
        "Expired\", which is kept at the top of the file. Removed: dictfmt's own records "
        "(`00-database-*` lines) before it and the trailing alphabet record.",
        "",
        "## speech/ -- synthesized English speech, 16 kHz mono PCM16 WAV",
        "",
        "Each clip speaks one sentence taken verbatim from the public-domain texts above (checked "
        "by `build.py`; `speech/transcripts.tsv` lists file, voice, speed, pitch, source, text). "
        f"Synthesizer: **espeak-ng** ({espeak.strip()}; Debian package espeak-ng "
        "1.51+dfsg-10+deb12u2), then resampled 22050 Hz -> 16000 Hz with **sox** 14.4.2, no "
        "dither, trailing silence trimmed to 0.1 s, peak normalized to -3 dBFS:",
        "",
        "```",
        'espeak-ng -v <voice> -s <wpm> -p <pitch> -w <name>_22k.wav "<sentence>"',
        "sox -D <name>_22k.wav -r 16000 -c 1 -b 16 -e signed-integer speech/<name>.wav \\",
        "    " + " ".join(SOX_EFFECTS),
        "```",
        "",
        "License: espeak-ng is GPL-3.0-or-later (Debian `/usr/share/doc/espeak-ng/copyright`). "
        "The GPL covers the program, not what it produces: audio synthesized by espeak-ng is not "
        "a derived work of it (GPL FAQ: output is covered only where it copies a substantial part "
        "of the program itself; espeak-ng is a formant/Klatt synthesizer whose phoneme tables "
        "hold only a few very short sampled sounds for some consonants). The spoken text is "
        "public domain. The clips are dedicated to the public domain (CC0) by this project.",
        "",
        "| file | voice | wpm | pitch | text (source) |",
        "|---|---|---|---|---|",
    ]
    for row in speech:
        lines.append(
            f"| `{row['file']}` | `{row['voice']}` | {row['wpm']} | {row['pitch']} | "
            f"{row['text']} ({SOURCE_NAMES[row['source']]}) |"
        )
    lines += [
        "",
        "`speech/transcripts.tsv`: written by `build.py` from the same table; CC0.",
        "",
    ]
    (out / "LICENSES.md").write_text("\n".join(lines), encoding="utf-8", newline="\n")


def pack_files(out: Path) -> list[Path]:
    files = [
        p
        for sub in ("images", "speech", "text")
        for p in sorted((out / sub).rglob("*"))
        if p.is_file()
    ]
    return files + [out / "LICENSES.md"]


def write_sums(out: Path) -> None:
    lines = [f"{sha256(p)}  {p.relative_to(out).as_posix()}" for p in pack_files(out)]
    (out / "SHA256SUMS").write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")


def verify(out: Path, sums_text: str) -> int:
    expected = {}
    for line in sums_text.splitlines():
        digest, name = line.split(maxsplit=1)
        expected[name.strip()] = digest
    got = {p.relative_to(out).as_posix(): sha256(p) for p in pack_files(out)}
    bad = sorted(n for n in expected.keys() | got.keys() if expected.get(n) != got.get(n))
    for name in bad:
        log(f"DIFFERS: {name}")
    log(f"verify: {len(expected) - len(bad)}/{len(expected)} files identical")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep downloads here and reuse them (default: a temporary dir)",
    )
    parser.add_argument(
        "--verify",
        type=Path,
        default=None,
        metavar="SHA256SUMS",
        help="after building, compare the result with this checksum file",
    )
    args = parser.parse_args(argv)

    out = args.out.resolve()
    # read before building: --out may be the pack that holds this very SHA256SUMS
    expected = args.verify.read_text() if args.verify else None
    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="samplepack-")
        work = Path(tmp.name)
    else:
        work = args.workdir.resolve()
        work.mkdir(parents=True, exist_ok=True)
    try:
        for sub in ("images", "speech", "text"):
            d = out / sub
            if d.exists():
                for p in d.iterdir():
                    if p.is_file():
                        p.unlink()
            d.mkdir(parents=True, exist_ok=True)
        texts = load_texts(work)
        text_rows = build_text(texts, out / "text")
        image_rows = build_images(fetch_skimage(work), out / "images")
        speech_rows = build_speech(texts, out / "speech", work)
        write_licenses(out, image_rows, speech_rows, text_rows)
        write_sums(out)
        log(
            f"wrote {len(image_rows)} images, {len(speech_rows)} clips, {len(text_rows)} texts "
            f"to {out}"
        )
        return verify(out, expected) if expected is not None else 0
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
