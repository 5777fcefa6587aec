"""A mixture that cannot work is one configuration line from `multibyte fit`, before any work:
one modality twice with the same options, every weight 0, and sources whose windows do not fit
the model (the line says which length would)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.parametrize(
    "listing, expected",
    [
        ("[{path: TEXT, weight: 1}, {path: TEXT, weight: 2}]", "hold the same modality"),
        ("[{path: IMAGE, weight: 0}, {path: TEXT, weight: 0}]", "every source has weight 0"),
        # a 60-byte header at P=12 (the image's tag is the longest): 756 data bytes
        ("[{path: IMAGE, weight: 1}, {path: TEXT, weight: 1}]", "at least 828"),
    ],
)
def test_fit_refuses_a_mixture_that_cannot_work_in_one_line(
    mixture_shards, tmp_path, in_process, listing, expected
):
    listing = listing.replace("TEXT", str(mixture_shards["text"])).replace(
        "IMAGE", str(mixture_shards["image"])
    )
    recipe = Path(__file__).resolve().parents[2] / "recipes" / "multimodal-tiny.yaml"
    result = in_process(
        "fit",
        "--config",
        recipe,
        "--data.sources",
        listing,
        "--model.model.init_args.config.max_seq_len",
        "816",
        "--trainer.default_root_dir",
        tmp_path,
    )
    text = result.assert_user_error("configuration error: data.sources", expected)
    errors = [line for line in text.splitlines() if line.startswith("multibyte fit:")]
    assert len(errors) == 1
    assert not any(tmp_path.iterdir())  # refused before anything was written
