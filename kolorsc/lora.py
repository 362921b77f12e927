"""LoRA files: read kohya-style and diffsynth checkpoints, write kohya-style, check fit.

In memory a LoRA is a dict of `LoraLayer`s keyed by diffsynth `SDXLUNet` module names
("blocks.7.transformer_blocks.0.attn1.to_q"). The Kolors engine merges it exactly as
diffsynth's `load_lora` does: W += scale * up @ down.

On disk kolorsc writes the kohya format that ComfyUI and diffusers load for
SDXL-architecture UNets: `lora_unet_<LDM module path with _>.lora_down.weight`,
`.lora_up.weight` and a scalar `.alpha`. ComfyUI builds those names from the LDM state dict
(`comfy/lora.py` model_lora_keys_unet: "lora_unet_" + key without "diffusion_model." and
".weight", dots as underscores); diffusers maps the same `input_blocks/middle_block/
output_blocks` names (`_maybe_map_sgm_blocks_to_diffusers`). The diffsynth <-> LDM module
mapping is read from diffsynth's own converter table (`SDXLUNetStateDictConverter.
from_civitai`), not written by hand, so it follows whatever diffsynth loads.

torch, safetensors and diffsynth are imported inside the functions that need them.
"""

from __future__ import annotations

import ast
import functools
import inspect
import json
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kolorsc import optional
from kolorsc.atomic import atomic_path
from kolorsc.errors import EngineError, ModelFileError
from kolorsc.i18n import N_, _
from kolorsc.tensorfile import looks_like_safetensors, read_header

if TYPE_CHECKING:
    from torch import Tensor

KOHYA_PREFIX = "lora_unet_"
_LDM_PREFIX = "model.diffusion_model."


@dataclass
class LoraLayer:
    down: Tensor  # [rank, in_features] (conv: [rank, in, kh, kw])
    up: Tensor  # [out_features, rank] (conv: [out, rank, 1, 1])
    alpha: float | None = None  # kohya's alpha; None when the file has none (diffsynth)

    @property
    def rank(self) -> int:
        return int(self.down.shape[0])

    def delta(self, scale: float = 1.0, use_alpha: bool = False) -> Tensor:
        """The weight change: scale * up @ down, times alpha/rank when use_alpha (kohya's meaning)."""
        import torch

        factor = scale * (self.alpha / self.rank if use_alpha and self.alpha is not None else 1.0)
        up, down = self.up.float(), self.down.float()
        if down.dim() == 4:  # conv LoRA: 1x1 up over a k x k down
            return factor * torch.einsum("or,rihw->oihw", up.flatten(1), down)
        return factor * (up @ down)


@dataclass
class LoraFile:
    layers: dict[str, LoraLayer]
    rank: int
    metadata: dict[str, str] = field(default_factory=dict)
    format: str = "kohya"  # "kohya" or "diffsynth"


# --- names -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def ldm_module_names() -> dict[str, str]:
    """diffsynth module name -> LDM module name (no prefix, no .weight), from diffsynth's table.

    The table is a dict literal inside `from_civitai`; reading it with `ast` keeps kolorsc's
    mapping identical to the one diffsynth uses to load LDM (civitai/ComfyUI) checkpoints.
    """
    from diffsynth.models.sdxl_unet import SDXLUNetStateDictConverter

    source = textwrap.dedent(inspect.getsource(SDXLUNetStateDictConverter.from_civitai))
    table = None
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "rename_dict":
            table = ast.literal_eval(node.value)
    if not table:  # pragma: no cover - only if diffsynth changes its converter
        raise EngineError(_("diffsynth's SDXL UNet converter has no rename table: kolorsc cannot name LoRA layers"))
    names = {}
    for ldm, ours in table.items():
        if ldm.endswith(".weight") and ldm.startswith(_LDM_PREFIX):
            names[ours[: -len(".weight")]] = ldm[len(_LDM_PREFIX) : -len(".weight")]
    return names


@functools.lru_cache(maxsize=1)
def _from_kohya() -> dict[str, str]:
    return {kohya_key(m): m for m in ldm_module_names()}


def kohya_key(module: str) -> str:
    """diffsynth module name -> kohya key stem, e.g. lora_unet_input_blocks_4_1_..._attn1_to_q."""
    try:
        ldm = ldm_module_names()[module]
    except KeyError:
        raise EngineError(_("UNet module '{module}' has no LDM name in diffsynth's table: cannot export it").format(
                            module=module)) from None
    return KOHYA_PREFIX + ldm.replace(".", "_")


def diffsynth_module(key: str) -> str:
    """kohya key stem -> diffsynth module name."""
    try:
        return _from_kohya()[key]
    except KeyError:
        raise EngineError(_("LoRA key '{key}' names no layer of the SDXL/Kolors UNet").format(key=key)) from None


# --- reading -----------------------------------------------------------------------------


def read_lora(path: Path) -> LoraFile:
    """Read a kohya-style safetensors or a diffsynth checkpoint (.ckpt / .pt / .safetensors).
    A file that cannot be read raises ModelFileError naming it and what is wrong; a missing
    torch/safetensors/diffsynth raises MissingPackageError."""
    path = Path(path)
    if not path.is_file():
        raise EngineError(_("LoRA file not found: {path}").format(path=path))
    tensors, metadata = _load_tensors(path)
    if any(k.startswith(KOHYA_PREFIX) for k in tensors):
        layers = _layers_from_kohya(tensors, path)
        fmt = "kohya"
    elif any(".lora_A." in k for k in tensors):
        layers = _layers_from_peft(tensors, path, metadata)
        fmt = "diffsynth"
    else:
        raise ModelFileError(_("{path}: not a LoRA kolorsc can read (no lora_unet_* or *.lora_A.* keys): "
                               "give a kohya-style LoRA or diffsynth's training checkpoint").format(path=path))
    if not layers:
        raise ModelFileError(_("{path}: the file holds no LoRA layer").format(path=path))
    ranks = {layer.rank for layer in layers.values()}
    return LoraFile(layers=layers, rank=max(ranks), metadata=metadata, format=fmt)


_REDO = N_("re-export or re-download it")


def _is_safetensors(path: Path) -> bool:
    """By content, not by name: the build cache stores files under their hash, with no suffix."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
        return looks_like_safetensors(head, path.stat().st_size)
    except OSError as exc:
        raise ModelFileError(_("{path}: cannot be read ({problem})").format(
            path=path, problem=exc.strerror or exc)) from None


def _load_tensors(path: Path) -> tuple[dict, dict[str, str]]:
    purpose = _("reading the LoRA file {name}").format(name=path.name)
    if _is_safetensors(path):
        try:
            with open(path, "rb") as f:
                read_header(f, path.stat().st_size)
        except (OSError, ValueError) as exc:
            raise ModelFileError(_("{path}: not a readable safetensors file ({problem}): {what_to_do}").format(
                path=path, problem=exc, what_to_do=_(_REDO))) from None
        optional.require("torch", "safetensors", purpose=purpose)
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
                return tensors, dict(f.metadata() or {})
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
            raise ModelFileError(_("{path}: safetensors cannot load it ({problem}): {what_to_do}").format(
                path=path, problem=f"{type(exc).__name__}: {exc}", what_to_do=_(_REDO))) from None
    optional.require("torch", purpose=purpose)
    import torch

    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickles with code, truncated files...
        text = " ".join(str(exc).split())[:300]
        raise ModelFileError(_("{path}: neither safetensors nor a weights-only torch checkpoint ({problem}): "
                               "{what_to_do}").format(path=path, problem=f"{type(exc).__name__}: {text}",
                                                      what_to_do=_(_REDO))) from None
    if isinstance(data, dict) and "state_dict" in data and isinstance(data["state_dict"], dict):
        data = data["state_dict"]  # a Lightning checkpoint that kept its envelope
    if not isinstance(data, dict):
        raise ModelFileError(_("{path}: expected a dict of tensors, found {type}").format(
            path=path, type=type(data).__name__))
    return {k: v for k, v in data.items() if isinstance(k, str) and hasattr(v, "shape")}, {}


def _layer(path: Path, name: str, down, up, alpha) -> LoraLayer:
    """A LoraLayer, after checking the shapes make sense (a hostile file must not crash later)."""
    if down.dim() not in (2, 4) or up.dim() not in (2, 4) or down.shape[0] < 1:
        raise ModelFileError(_("{path}: {name}: down {down} / up {up} are not LoRA matrices").format(
            path=path, name=name, down=tuple(down.shape), up=tuple(up.shape)))
    if alpha is not None:
        if alpha.numel() != 1:
            raise ModelFileError(_("{path}: {name}: alpha has shape {shape}, expected one number").format(
                path=path, name=name, shape=tuple(alpha.shape)))
        alpha = float(alpha)
    return LoraLayer(down=down, up=up, alpha=alpha)


def _layers_from_kohya(tensors: dict, path: Path) -> dict[str, LoraLayer]:
    layers = {}
    for key, down in tensors.items():
        if not key.endswith(".lora_down.weight") or not key.startswith(KOHYA_PREFIX):
            continue
        stem = key[: -len(".lora_down.weight")]
        up = tensors.get(stem + ".lora_up.weight")
        if up is None:
            raise ModelFileError(_("{path}: {stem} has lora_down but no lora_up").format(path=path, stem=stem))
        layers[diffsynth_module(stem)] = _layer(path, stem, down, up, tensors.get(stem + ".alpha"))
    return layers


def _layers_from_peft(tensors: dict, path: Path, metadata: dict[str, str]) -> dict[str, LoraLayer]:
    try:
        alpha = float(metadata["lora_alpha"]) if "lora_alpha" in metadata else None
    except ValueError:
        raise ModelFileError(_("{path}: metadata lora_alpha {value} is not a number").format(
            path=path, value=repr(metadata["lora_alpha"][:40]))) from None
    layers = {}
    for key, down in tensors.items():
        if ".lora_A." not in key:
            continue
        module, _sep, rest = key.partition(".lora_A.")
        up = tensors.get(f"{module}.lora_B.{rest}")
        if up is None:
            raise ModelFileError(_("{path}: {module} has lora_A but no lora_B").format(path=path, module=module))
        for prefix in ("pipe.unet.", "unet."):  # a Lightning checkpoint names the module's attribute
            module = module.removeprefix(prefix)
        layer = _layer(path, module, down, up, None)
        layer.alpha = alpha
        layers[module] = layer
    return layers


# --- writing -----------------------------------------------------------------------------


def write_kohya(path: Path, layers: dict[str, LoraLayer], metadata: dict[str, Any] | None = None) -> Path:
    """Write kohya-style safetensors atomically. Metadata values become strings (JSON for non-str)."""
    tensors = {}
    for module, layer in sorted(layers.items()):
        stem = kohya_key(module)
        tensors[f"{stem}.lora_down.weight"] = layer.down
        tensors[f"{stem}.lora_up.weight"] = layer.up
        alpha = layer.alpha if layer.alpha is not None else float(layer.rank)  # kohya: none means alpha = rank
        tensors[f"{stem}.alpha"] = _scalar(alpha)
    return _save_atomic(path, tensors, metadata)


def write_diffsynth(path: Path, layers: dict[str, LoraLayer], metadata: dict[str, Any] | None = None) -> Path:
    """Write diffsynth's own names (peft: `<module>.lora_A.default.weight`) as safetensors."""
    tensors = {}
    for module, layer in sorted(layers.items()):
        tensors[f"{module}.lora_A.default.weight"] = layer.down
        tensors[f"{module}.lora_B.default.weight"] = layer.up
    return _save_atomic(path, tensors, metadata)


def _scalar(value: float) -> Tensor:
    import torch

    return torch.tensor(float(value), dtype=torch.float32)


def _save_atomic(path: Path, tensors: dict, metadata: dict[str, Any] | None) -> Path:
    optional.require("torch", "safetensors", purpose=_("writing a LoRA file"))
    from safetensors.torch import save_file

    path = Path(path)
    header = {str(k): v if isinstance(v, str) else json.dumps(v, sort_keys=True, ensure_ascii=False)
              for k, v in (metadata or {}).items()}
    try:
        with atomic_path(path) as tmp:
            save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=header)
    except OSError as exc:
        raise EngineError(_("{path}: cannot write the LoRA file ({problem})").format(
            path=path, problem=exc.strerror or exc)) from None
    return path


# --- checking ----------------------------------------------------------------------------


def unet_module_shapes(unet) -> dict[str, tuple[int, ...]]:
    """Weight shapes of a UNet's Linear / Conv2d modules by module name (peft wrappers unwrapped)."""
    import torch

    shapes = {}
    for name, module in unet.named_modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            name = name.replace(".base_layer", "")
            if ".lora_" in name:
                continue
            shapes[name] = tuple(module.weight.shape)
    return shapes


def check_fits(layers: dict[str, LoraLayer], unet_module_shapes: dict[str, tuple[int, ...]]) -> list[str]:
    """Every way the LoRA does not fit the UNet, as messages; empty when it fits."""
    problems = []
    for module, layer in sorted(layers.items()):
        shape = unet_module_shapes.get(module)
        if shape is None:
            problems.append(_("{module}: no such layer in the base model's UNet").format(module=module))
            continue
        out_features, in_features = shape[0], shape[1]
        if layer.up.shape[1] != layer.down.shape[0]:
            problems.append(_("{module}: up is {tuple} but down is {tuple2} (ranks differ)").format(
                              module=module, tuple=tuple(layer.up.shape), tuple2=tuple(layer.down.shape)))
        if layer.down.shape[1] != in_features:
            problems.append(_("{module}: LoRA input size {shape} != layer's {in_features}").format(
                              module=module, shape=layer.down.shape[1], in_features=in_features))
        if layer.up.shape[0] != out_features:
            problems.append(_("{module}: LoRA output size {shape} != layer's {out_features}").format(
                              module=module, shape=layer.up.shape[0], out_features=out_features))
    return problems


@functools.lru_cache(maxsize=1)
def kolors_unet_shapes() -> dict[str, tuple[int, ...]]:
    """Layer shapes of the full-size Kolors UNet, built on the meta device (no weights, no memory)."""
    optional.require("torch", "diffsynth", purpose=_("checking a LoRA against the Kolors UNet"))
    import torch
    from diffsynth.models.sdxl_unet import SDXLUNet

    with torch.device("meta"):
        return unet_module_shapes(SDXLUNet(is_kolors=True))


def kohya_metadata(rank: int, alpha: float, extra: dict[str, Any] | None = None) -> dict[str, str]:
    """kohya's header names for a LoRA's size, plus `extra` (values made strings)."""
    meta = {"ss_network_module": "networks.lora", "ss_network_dim": str(rank), "ss_network_alpha": str(float(alpha))}
    meta.update({k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for k, v in (extra or {}).items()})
    return meta
