"""A mixture on two CPU processes (gloo): each rank reads its own shards of every source, and
both ranks keep identical parameters."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import yaml

from multibyte.data.shards import iter_tar_samples

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "multimodal.yaml"

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import lightning as L
    import numpy as np
    import torch
    from multibyte import Megabyte, MegabyteConfig
    from multibyte.train import ByteDataModule, ByteLM
    from multibyte.train.cli import end_process_group

    recipe, out = json.loads(sys.argv[1]), sys.argv[2]

    class Module(ByteLM):
        def on_fit_start(self):
            super().on_fit_start()
            self.initial = torch.cat([p.detach().flatten().clone() for p in self.parameters()])
            self.rows = []
        def training_step(self, batch, batch_idx):
            self.rows += batch.to(torch.uint8).tolist()  # the bytes this rank trained on
            return super().training_step(batch, batch_idx)
        def on_train_end(self):
            flat = torch.cat([p.detach().flatten() for p in self.parameters()])
            everyone = self.trainer.strategy.all_gather(flat)
            np.save(f"{out}-rows-{self.global_rank}.npy", np.asarray(self.rows, np.uint8))
            if self.trainer.is_global_zero:
                json.dump({"world": self.trainer.world_size,
                           "spread": (everyone - everyone[0]).abs().max().item(),
                           "changed": (flat - self.initial).abs().max().item()},
                          open(f"{out}.json", "w"))

    config = MegabyteConfig(patch_size=12, max_seq_len=1200, global_dim=48, global_heads=2,
                            local_dim=16, local_heads=2)
    module = Module(Megabyte(config), lr=1e-3, warmup_steps=1)
    data = ByteDataModule(**recipe["data"])
    data.set_patch_size(12, 1200)  # as `multibyte fit` does from the model
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_steps=6,
                        use_distributed_sampler=False, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, limit_val_batches=0)
    trainer.fit(module, data)
    end_process_group()
    """
)


def shards_holding(window: bytes, folder: Path, stream: bool) -> set[str]:
    """The train shards of ``folder`` that hold ``window`` (in a stream, or in one sample)."""
    found = set()
    for shard in sorted(folder.glob("train-*.tar")):
        samples = [s["bin"] for s in iter_tar_samples(shard)]
        if (window in b"".join(samples)) if stream else any(window in s for s in samples):
            found.add(shard.name)
    assert found, f"no shard of {folder} holds the window"
    return found


def test_two_ranks_read_their_own_shards_and_stay_identical(shards, tmp_path):
    recipe = yaml.safe_load(RECIPE.read_text())
    assert recipe["trainer"]["devices"] == 8
    names = ("image", "audio", "text")
    data = {
        **recipe["data"],
        "batch_size": 2,
        "val_batch_size": 2,
        "sources": [{"path": str(shards[n]), "weight": 1} for n in names],
    }
    script = tmp_path / "ddp_mixture.py"
    script.write_text(SCRIPT)
    out = tmp_path / "report"
    done = subprocess.run(
        [sys.executable, str(script), json.dumps({"data": data}), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(Path(f"{out}.json").read_text())
    assert result["world"] == 2 and result["changed"] > 0 and result["spread"] == 0.0
    read: list[dict[str, set[str]]] = []
    for rank in range(2):
        rows = np.load(f"{out}-rows-{rank}.npy")
        assert rows.shape == (12, 1200)
        by_source: dict[str, set[str]] = {}
        for row in rows:
            header, window = bytes(row[:84]), bytes(row[84:])
            name = header.split(b" ")[0].decode()
            piece = window[:768] if name == "image" else window
            holding = shards_holding(piece, shards[name], name == "text")
            if len(holding) == 1:  # the test's books repeat one sentence: some windows are in both
                by_source.setdefault(name, set()).update(holding)
        read.append(by_source)
    for name in names:  # every source here has at least two shards: split by rank
        if name in read[0] and name in read[1]:
            assert not read[0][name] & read[1][name], name
    assert any(name in read[0] and name in read[1] for name in names)
