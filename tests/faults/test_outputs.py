"""The output policy of every command that writes files (multibyte.outputs):

- an existing output is refused unless --overwrite, and stays byte for byte as it was;
- a command deletes only files it wrote itself (prepare: the shards its own manifest lists);
- an output folder that cannot be written is refused before any work;
- a failure leaves nothing behind, and a prepare that wrote nothing is never marked complete.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from multibyte import outputs, prepare
from multibyte.cli import COMMANDS
from tests.faults.conftest import ROOT, TEXT, Result
from tests.faults.data import png

PRECIOUS = b"the user's own file, never to be replaced\n"
# Commands that write no file a user names: verify reads; fit/validate/test write Lightning's
# numbered run folders (version_N, never an existing one).
NOT_WRITING = {"verify", "fit", "validate", "test"}


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too: temporary names must not be left)."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("book") / "book.txt"
    path.write_bytes(TEXT[:40])
    return path


@pytest.fixture(scope="module")
def packed(book, checkpoint, tmp_path_factory) -> Path:
    """``book.txt.mbz``: the book compressed with the tiny checkpoint."""
    from multibyte.cli import main

    out = tmp_path_factory.mktemp("packed")
    assert (
        main(["compress", "--ckpt", str(checkpoint), str(book), "--out", str(out), "--quiet"]) == 0
    )
    return out / "book.txt.mbz"


# -- every writing command: an existing output is refused without --overwrite ------------------

# name -> (command, build(tmp, fixtures) -> (argv, the existing output it must not replace))
Case = Callable[[Path, dict], tuple[list, Path]]


def _prepare(tmp: Path, f: dict) -> tuple[list, Path]:
    out = tmp / "shards"
    shutil.copytree(f["shards"], out)
    return ["prepare", "text", "--src", f["book"], "--out", out, "--quiet"], out / "manifest.json"


def _evaluate(option: str, name: str) -> Case:
    def build(tmp: Path, f: dict) -> tuple[list, Path]:
        target = tmp / name
        if option == "--plots":
            target.mkdir()
            target = target / "patch_position.png"
        target.write_bytes(PRECIOUS)
        given = target.parent if option == "--plots" else target
        argv = [
            "evaluate",
            "--ckpt",
            f["checkpoint"],
            "--data",
            f["shards"],
            "--no-codecs",
            "--quiet",
            "--limit",
            "1",
            option,
            given,
        ]
        return argv, target

    return build


def _sample(tmp: Path, f: dict) -> tuple[list, Path]:
    target = tmp / "sample.txt"
    target.write_bytes(PRECIOUS)
    return [
        "sample",
        "--ckpt",
        f["checkpoint"],
        "--out",
        target,
        "--n",
        "1",
        "--max-new-bytes",
        "4",
        "--quiet",
    ], target


def _compress(as_file: bool) -> Case:
    def build(tmp: Path, f: dict) -> tuple[list, Path]:
        target = tmp / "book.mbz" if as_file else tmp / "out" / "book.txt.mbz"
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(PRECIOUS)
        out = target if as_file else target.parent
        return ["compress", "--ckpt", f["checkpoint"], f["book"], "--out", out, "--quiet"], target

    return build


def _decompress(tmp: Path, f: dict) -> tuple[list, Path]:
    target = tmp / "book.txt"  # another file of the same name: never replaced silently
    target.write_bytes(PRECIOUS)
    return ["decompress", "--ckpt", f["checkpoint"], f["packed"], "--out", tmp, "--quiet"], target


def _export(tmp: Path, f: dict) -> tuple[list, Path]:
    from multibyte.cli import main

    out = tmp / "export"
    argv = ["export", "--ckpt", f["checkpoint"], "--out", out]
    assert main([str(a) for a in argv]) == 0  # an earlier export: only --overwrite replaces it
    return argv, out / "config.json"


def _quickstart(tmp: Path, f: dict) -> tuple[list, Path]:
    out = tmp / "demo"  # a folder of the user's, not an earlier quickstart's
    out.mkdir()
    (out / "notes.txt").write_bytes(PRECIOUS)
    return ["quickstart", "--quick", "--out", out], out / "notes.txt"


CASES: dict[str, tuple[str, Case]] = {
    "prepare": ("prepare", _prepare),
    "evaluate-json": ("evaluate", _evaluate("--json", "report.json")),
    "evaluate-markdown": ("evaluate", _evaluate("--markdown", "report.md")),
    "evaluate-plots": ("evaluate", _evaluate("--plots", "plots")),
    "sample": ("sample", _sample),
    "compress-to-a-file": ("compress", _compress(as_file=True)),
    "compress-to-a-folder": ("compress", _compress(as_file=False)),
    "decompress": ("decompress", _decompress),
    "export": ("export", _export),
    "quickstart": ("quickstart", _quickstart),
}


def test_every_command_that_writes_has_a_case():
    """A new command that writes files needs a case above (or a reason in NOT_WRITING)."""
    assert set(COMMANDS) - NOT_WRITING <= {command for command, _ in CASES.values()}


@pytest.mark.parametrize("name", [n for n, (c, _) in CASES.items() if c in COMMANDS])
def test_an_existing_output_is_refused_without_overwrite(
    name, tmp_path, in_process, shards, checkpoint, book, packed
):
    fixtures = {"shards": shards, "checkpoint": checkpoint, "book": book, "packed": packed}
    argv, target = CASES[name][1](tmp_path, fixtures)
    before = snapshot(tmp_path)
    in_process(*argv).assert_user_error(target.parent, "--overwrite")
    assert snapshot(tmp_path) == before  # unchanged, and no temporary file left
    if name in ("prepare", "quickstart"):
        # prepare --overwrite: test_prepare_overwrite_deletes_only_its_own_shards; a whole
        # quickstart trains seven models (tests/quickstart)
        return
    result = in_process(*argv, "--overwrite")
    assert result.status == 0, result.err
    if target.exists():  # export replaces its whole folder; the others their own file
        assert target.read_bytes() != PRECIOUS
    assert not [p for p in tmp_path.rglob("*partial*")]


def test_compress_never_replaces_its_own_input(tmp_path, in_process, checkpoint, packed):
    own = tmp_path / "self.mbz"
    own.write_bytes(packed.read_bytes())
    for extra in ((), ("--overwrite",)):
        in_process("compress", "--ckpt", checkpoint, own, "--out", own, *extra).assert_user_error(
            own, "is the input"
        )
        assert own.read_bytes() == packed.read_bytes()


def test_decompress_with_overwrite_writes_the_exact_content(
    tmp_path, in_process, checkpoint, book, packed
):
    (tmp_path / "book.txt").write_bytes(PRECIOUS)
    result = in_process(
        "decompress", "--ckpt", checkpoint, packed, "--out", tmp_path, "--overwrite", "--quiet"
    )
    assert result.status == 0, result.err
    assert (tmp_path / "book.txt").read_bytes() == book.read_bytes()


def test_compress_several_inputs_to_one_mbz_name_is_refused(tmp_path, in_process, checkpoint):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_bytes(b"first file")
    b.write_bytes(b"second file")
    out = tmp_path / "two.mbz"
    text = in_process(
        "compress", "--ckpt", checkpoint, a, b, "--out", out, "--quiet"
    ).assert_user_error(out, "2 inputs", "give a folder")
    assert len(text.strip().splitlines()) == 1
    assert not out.exists()


def test_evaluate_json_and_markdown_on_one_file_is_refused(
    tmp_path, in_process, shards, checkpoint
):
    same = tmp_path / "report"
    for json_path, markdown in ((same, same), (same, tmp_path / "." / "report")):
        result = in_process(
            "evaluate",
            "--ckpt",
            checkpoint,
            "--data",
            shards,
            "--no-codecs",
            "--quiet",
            "--json",
            json_path,
            "--markdown",
            markdown,
        )
        result.assert_user_error("--json", "--markdown", "same file")
        assert result.out == ""  # refused before any work: no report printed
    assert list(tmp_path.iterdir()) == []


# -- prepare deletes only what it wrote ---------------------------------------------------------


def corpus(folder: Path, files: int = 6) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        (folder / f"book{i}.txt").write_bytes(TEXT * (4 + i))
    return folder


def prepare_argv(src: Path, out: Path, *extra: str) -> list:
    return [
        "prepare",
        "text",
        "--src",
        src,
        "--out",
        out,
        "--shard-size",
        "2",
        "--workers",
        "1",
        "--quiet",
        *extra,
    ]


def test_prepare_overwrite_deletes_only_its_own_shards(tmp_path, in_process):
    src, out = corpus(tmp_path / "src"), tmp_path / "out"
    assert in_process(*prepare_argv(src, out)).status == 0
    old = set(json.loads((out / "manifest.json").read_text())["shards"]["train"])
    foreign = {"photos.tar": b"a user's tar", "notes.txt": b"notes", "train.tar": b"mine"}
    for name, data in foreign.items():
        (out / name).write_bytes(data)
    # fewer inputs: the new run writes fewer shards, so the old ones must go, foreign ones stay
    (src / "book5.txt").unlink()
    (src / "book4.txt").unlink()
    assert in_process(*prepare_argv(src, out, "--overwrite")).status == 0
    for name, data in foreign.items():
        assert (out / name).read_bytes() == data
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] is True
    shards = {n for names in manifest["shards"].values() for n in names}
    assert {p.name for p in out.glob("*-*.tar")} == shards and set(
        manifest["shards"]["train"]
    ) < old


def test_prepare_refuses_to_replace_a_foreign_file_named_like_a_shard(tmp_path, in_process):
    src, out = corpus(tmp_path / "src"), tmp_path / "out"
    assert in_process(*prepare_argv(src, out)).status == 0
    stranger = out / "train-000099.tar"
    stranger.write_bytes(b"not written by prepare")
    before = snapshot(out)
    for extra in ("--overwrite", "--resume"):
        in_process(*prepare_argv(src, out, extra)).assert_user_error(
            stranger, "not listed", "did not write"
        )
        assert snapshot(out) == before


def test_prepare_into_a_folder_with_other_files_leaves_them(tmp_path, in_process):
    src, out = corpus(tmp_path / "src"), tmp_path / "out"
    out.mkdir()
    (out / "photos.tar").write_bytes(b"a user's tar")
    assert in_process(*prepare_argv(src, out)).status == 0
    assert (out / "photos.tar").read_bytes() == b"a user's tar"
    assert in_process("verify", out).status == 0  # a file prepare did not name is not a shard


class StopAfter:
    """Stands in for Ctrl-C: the prepare stops after ``tasks`` inputs."""

    def __init__(self, tasks: int) -> None:
        self.left = tasks

    def check(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise prepare.Interrupted


def test_resume_deletes_only_its_own_files(tmp_path, in_process):
    src, out = corpus(tmp_path / "src"), tmp_path / "out"
    args = prepare.build_parser().parse_args([str(a) for a in prepare_argv(src, out)[1:]])
    with pytest.raises(prepare.Interrupted):
        prepare.run(args, StopAfter(3))
    assert json.loads((out / "manifest.json").read_text())["complete"] is False
    (out / "photos.tar").write_bytes(b"a user's tar")
    (out / "val.txt").write_bytes(b"notes")
    assert in_process(*prepare_argv(src, out, "--resume")).status == 0
    assert (out / "photos.tar").read_bytes() == b"a user's tar"
    assert (out / "val.txt").read_bytes() == b"notes"
    reference = tmp_path / "reference"
    assert in_process(*prepare_argv(src, reference)).status == 0
    for shard in reference.glob("*-*.tar"):
        assert (out / shard.name).read_bytes() == shard.read_bytes()


# -- a prepare that wrote nothing is never complete ----------------------------------------------


def test_prepare_of_nothing_leaves_nothing(tmp_path, in_process):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "o"
    in_process(*prepare_argv(empty, out)).assert_user_error(empty, "nothing to prepare")
    assert not out.exists()
    # every input bad: found, tried, all skipped; no manifest says "complete"
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    (bad / "b.png").write_bytes(b"")
    image = [
        "prepare",
        "image",
        "--src",
        bad,
        "--out",
        out,
        "--size",
        "8",
        "--quiet",
        "--workers",
        "1",
    ]
    in_process(*image).assert_user_error(bad / "a.png", "no samples written", "all 2 inputs")
    assert not out.exists()
    in_process("verify", out).assert_user_error(out, status=2)


def test_prepare_of_nothing_into_an_existing_folder_keeps_its_files(tmp_path, in_process):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"not an image")
    out = tmp_path / "o"
    out.mkdir()
    (out / "notes.txt").write_bytes(PRECIOUS)
    in_process(
        "prepare", "image", "--src", bad, "--out", out, "--size", "8", "--quiet"
    ).assert_user_error("no samples written")
    assert snapshot(out) == {"notes.txt": PRECIOUS}


def test_prepare_image_size_is_bounded_before_any_work(tmp_path, in_process):
    images = tmp_path / "images"
    images.mkdir()
    png(images / "a.png")
    out = tmp_path / "o"
    in_process(
        "prepare", "image", "--src", images, "--out", out, "--size", "100000", "--quiet"
    ).assert_user_error("size=100000", "at most 1024")
    assert not out.exists()


def test_a_dangling_link_is_listed_as_skipped(tmp_path, in_process):
    src = corpus(tmp_path / "src", files=2)
    (src / "gone.txt").symlink_to(tmp_path / "deleted.txt")
    out = tmp_path / "o"
    result = in_process(*prepare_argv(src, out))
    assert result.status == 0, result.err
    skipped = json.loads((out / "manifest.json").read_text())["skipped"]
    assert [s["source"] for s in skipped] == [str(src / "gone.txt")]
    assert "dangling symbolic link" in skipped[0]["reason"]
    assert str(src / "gone.txt") in result.err


# -- permissions: checked before any work (as a user without root's override) -------------------


# Runs each argv through multibyte.cli.main as the console script does, in one process.
CHILD = """
import contextlib, io, json, sys
from multibyte.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as exit_:
            status = exit_.code
        except BaseException as error:  # what the user would see as a traceback
            status, err = 1, io.StringIO(f"Traceback: {error!r}")
    results.append([status, out.getvalue(), err.getvalue()])
print(json.dumps(results))
"""


def without_override(*commands: list) -> list[Result]:
    """Commands run in a process that file permissions apply to: as root, without the two
    capabilities that bypass them (setpriv), so a test running as root still sees EACCES."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("MULTIBYTE_DEBUG", None)
    prefix = []
    if os.geteuid() == 0:
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]
    argvs = json.dumps([[str(a) for a in argv] for argv in commands])
    done = subprocess.run(
        [*prefix, sys.executable, "-c", CHILD, argvs],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return [Result(*result) for result in json.loads(done.stdout.splitlines()[-1])]


@pytest.fixture
def locked(tmp_path):
    """A read-only folder and an unreadable one; permissions restored for the cleanup."""
    read_only, unreadable = tmp_path / "ro", tmp_path / "unreadable"
    read_only.mkdir()
    corpus(unreadable, files=1)
    read_only.chmod(0o555)
    unreadable.chmod(0o000)
    yield read_only, unreadable
    read_only.chmod(0o755)
    unreadable.chmod(0o755)


def test_unwritable_and_unreadable_places_are_refused_before_any_work(
    locked, tmp_path, shards, checkpoint, packed
):
    read_only, unreadable = locked
    report = read_only / "r.json"
    evaluate, decompress, prepare_ = without_override(
        [
            "evaluate",
            "--ckpt",
            checkpoint,
            "--data",
            shards,
            "--no-codecs",
            "--quiet",
            "--json",
            report,
        ],
        ["decompress", "--ckpt", checkpoint, packed, "--out", read_only],
        prepare_argv(unreadable, tmp_path / "o"),
    )
    evaluate.assert_user_error(f"--json {report}", "not writable", "permission denied")
    assert evaluate.out == ""  # no report: refused before evaluating
    decompress.assert_user_error(f"--out {read_only}", "not writable", "permission denied")
    assert "->" not in decompress.out  # nothing was decoded
    prepare_.assert_user_error(f"--src {unreadable}", "cannot be read", "permission denied")
    assert not (tmp_path / "o").exists()
    assert list(read_only.iterdir()) == []


# -- the module itself ---------------------------------------------------------------------------


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    target = tmp_path / "new" / "deeper" / "report.json"
    with pytest.raises(RuntimeError), outputs.replacing(target) as temporary:
        assert temporary.parent == target.parent and temporary.suffix == ".json"
        temporary.write_text("half")
        raise RuntimeError("the writer failed")
    assert list(tmp_path.iterdir()) == []  # no file, and no folder it created
    outputs.write_text(target, "whole")
    assert target.read_text() == "whole" and snapshot(tmp_path) == {
        "new/deeper/report.json": b"whole"
    }


def test_files_move_into_place_all_or_none(tmp_path):
    (tmp_path / "b.png").write_bytes(PRECIOUS)
    with outputs.staging(tmp_path) as stage:
        drawn = [stage / "a.png", stage / "b.png"]
        for path in drawn:
            path.write_bytes(b"new")
        with pytest.raises(outputs.OutputError, match="b.png already exists"):
            outputs.move_into_place(drawn, tmp_path, overwrite=False)
    assert snapshot(tmp_path) == {"b.png": PRECIOUS}  # a.png was not moved either
