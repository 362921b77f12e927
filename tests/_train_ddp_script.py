"""Run by test_train.py in a subprocess: two-process DDP (Lightning, gloo on CPU).

Lightning's `ddp` strategy starts the second process by running this same command again
(with LOCAL_RANK=1), so this must be a script, not a pytest test. Each rank saves the LoRA it
ends with to rank<N>.safetensors for the test to compare.
usage: python _train_ddp_script.py OUT_DIR
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _train_fixtures import TinyLoader, make_dataset, make_style


def main(out: Path) -> None:
    import torch
    from lightning.pytorch.callbacks import Callback
    from safetensors.torch import save_file

    from kolorsc.train import train_lora

    class SaveRankLora(Callback):
        def on_train_end(self, trainer, module):
            lora = {n: p.detach().cpu().contiguous() for n, p in module.unet.named_parameters() if p.requires_grad}
            save_file(lora, str(out / f"rank{trainer.global_rank}.safetensors"))

    style = make_style(devices=2, strategy="ddp", accelerator="cpu", steps_per_epoch=3)
    dataset = make_dataset(out / "data")
    train_lora(style, dataset, out / "lora", models_dir=out, device="cpu", model_loader=TinyLoader(),
               callbacks=[SaveRankLora()], checkpoint_every=100)
    torch.distributed.barrier() if torch.distributed.is_initialized() else None


if __name__ == "__main__":
    main(Path(sys.argv[1]))
