"""Two CPU processes (gloo) train a few steps and keep identical parameters."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import lightning as L
    import torch
    from multibyte import Megabyte, MegabyteConfig
    from multibyte.train import ByteDataModule, ByteLM
    from multibyte.train.cli import end_process_group

    class Report(L.Callback):
        def on_train_end(self, trainer, module):
            flat = torch.cat([p.detach().flatten() for p in module.parameters()])
            everyone = trainer.strategy.all_gather(flat)
            seen = trainer.strategy.all_gather(torch.tensor(module.seen, dtype=torch.float64))
            if trainer.is_global_zero:
                spread = (everyone - everyone[0]).abs().max().item()
                json.dump({"world": trainer.world_size, "spread": spread,
                           "changed": (flat - module.initial).abs().max().item(),
                           "seen": seen.tolist()}, open(sys.argv[2], "w"))

    class Module(ByteLM):
        def on_fit_start(self):
            super().on_fit_start()
            self.initial = torch.cat([p.detach().flatten().clone() for p in self.parameters()])
            self.seen = 0.0
        def training_step(self, batch, batch_idx):
            self.seen += float(batch.double().sum())  # which bytes this rank trained on
            return super().training_step(batch, batch_idx)

    config = MegabyteConfig(patch_size=8, max_seq_len=128, global_dim=32, global_heads=2,
                            local_dim=16, local_heads=2, dropout=0.1)
    module = Module(Megabyte(config), lr=1e-3, warmup_steps=1)
    data = ByteDataModule(path=sys.argv[1], modality={"name": "text"}, seq_len=128,
                          batch_size=2, val_fraction=0.2)
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_steps=4,
                        use_distributed_sampler=False, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, limit_val_batches=0, callbacks=[Report()])
    trainer.fit(module, data)
    end_process_group()  # as `multibyte fit` ends
    """
)


def test_two_ranks_stay_identical(text_folder, tmp_path):
    script = tmp_path / "ddp_run.py"
    script.write_text(SCRIPT)
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, str(script), str(text_folder), str(report)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(report.read_text())
    assert result["world"] == 2
    assert result["changed"] > 0  # training moved the weights...
    assert result["spread"] == 0.0  # ...identically on both ranks
    assert result["seen"][0] != result["seen"][1]  # and each rank read different data
