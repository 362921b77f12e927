"""The optional extras, and a tidy error when a command needs one that is not installed.

`pip install kolorsc` installs the core (check, prompts, preview builds); `models` brings
torch, diffsynth, Data-Juicer...; `remote` the shared-cache backends. A command that needs an
extra says which and how to get it, with exit 2 — never a traceback:

    require("models", "torch", "diffsynth")     before the work starts (api.make_engine, train, score)
    missing_extra(import_error) -> UsageError   for an ImportError raised anyway (cli.report_errors)
    missing_package(extra, module)              the error itself (also kolorsc.optional's, in the library)
"""

from __future__ import annotations

import importlib.util

from kolorsc.errors import MissingPackageError, UsageError
from kolorsc.i18n import _

EXTRA_OF = {
    **dict.fromkeys(("torch", "torchvision", "diffsynth", "transformers", "lightning", "peft", "modelscope",
                     "data_juicer", "ray", "imagededup", "aesthetics_predictor", "safetensors", "numpy",
                     "huggingface_hub", "datasets", "diffusers"), "models"),
    **dict.fromkeys(("fsspec", "s3fs", "ossfs"), "remote"),
}


def how(extra: str) -> str:
    if extra == "models":  # torch first: the CUDA build for the machine, not whatever the resolver picks
        return "pip install torch torchvision && pip install 'kolorsc[models]'"
    return f"pip install 'kolorsc[{extra}]'"


def missing_package(extra: str, module: str) -> MissingPackageError:
    return MissingPackageError(_("this command needs the {extra} extra ({module} is not installed): {how}").format(
        extra=extra, module=module, how=how(extra)))


def missing_extra(exc: ImportError) -> UsageError | None:
    """The tidy error for an ImportError of an extra's package; None for anything else (a bug)."""
    top = (exc.name or "").split(".")[0]
    extra = EXTRA_OF.get(top)
    return missing_package(extra, top) if extra else None


def require(extra: str, *modules: str) -> None:
    """Raise the tidy error when one of `modules` (of `extra`) cannot be imported."""
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise missing_package(extra, module)
