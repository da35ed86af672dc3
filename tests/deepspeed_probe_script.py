"""A few AdamW steps of a two-layer net through accelerate + DeepSpeed: the smallest end-to-end check
that a DeepSpeed JSON under conf/deepspeed/ is accepted by `accelerate launch --use_deepspeed`.

Run by tests/test_deepspeed_configs.py under `accelerate launch`; it writes a JSON summary
(losses, ZeRO stage, engine type, device) to the path given as the first argument.
Not collected by pytest (the file name does not start with test_).
"""

from __future__ import annotations

import faulthandler
import gc
import json
import sys
from pathlib import Path

import torch
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class TwoLayerNet(nn.Module):
    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.hidden = nn.Linear(8, width)
        self.out = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(x)))


def main(summary_path: Path, steps: int = 4) -> None:
    # A SIGABRT in library teardown (seen once in CI, stop 30) printed no stack; this prints every thread's.
    faulthandler.enable()
    torch.manual_seed(0)
    accelerator = Accelerator()
    x = torch.randn(64, 8)
    y = x.sum(dim=1, keepdim=True)  # learnable in a few steps, so the loss must fall
    # The DataLoader is what lets accelerate fill the JSON's "auto" batch sizes.
    loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=False)
    model = TwoLayerNet()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)

    losses = []
    batches = iter(loader)
    for _ in range(steps):
        inputs, targets = next(batches)
        # bf16 weights under DeepSpeed: cast the inputs to the model's dtype, compute the loss in fp32.
        dtype = next(model.parameters()).dtype
        loss = nn.functional.mse_loss(model(inputs.to(dtype)).float(), targets.float())
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())

    if accelerator.is_main_process:
        plugin = accelerator.state.deepspeed_plugin
        summary = {
            "losses": losses,
            "zero_stage": plugin.zero_stage if plugin else None,
            "engine": type(model).__name__,
            "device": str(accelerator.device),
            "num_processes": accelerator.num_processes,
            "param_dtype": str(next(model.parameters()).dtype),
        }
        summary_path.write_text(json.dumps(summary, indent=2))
    # Tear down while the interpreter is whole: ZeRO-3's engine holds hooks and gloo work handles, and
    # freeing those during interpreter finalisation is the known way such a process aborts at exit
    # (pytorch/pytorch#179291). Engine first, then the process group.
    del model, optimizer, loader, batches
    accelerator.free_memory()
    gc.collect()
    accelerator.end_training()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
