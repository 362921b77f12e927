"""The ComfyUI workflow is a well-formed API-format graph with each panel's settings, and
scores.json is stable and never invents a number."""

from __future__ import annotations

import json
from dataclasses import replace

from _emit_fixtures import make_result
from kolorsc.emit import comfyui_workflow, scores_json

# Input names of the nodes used (ComfyUI core nodes.py; MinusZoneAI/ComfyUI-Kolors-MZ __init__.py),
# with the output index each link may use.
REQUIRED_INPUTS = {
    "MZ_KolorsUNETLoaderV2": {"unet_name"},
    "MZ_ChatGLM3Loader": {"chatglm3_checkpoint"},
    "MZ_ChatGLM3_V2": {"chatglm3_model", "text"},
    "VAELoader": {"vae_name"},
    "LoraLoaderModelOnly": {"model", "lora_name", "strength_model"},
    "EmptyLatentImage": {"width", "height", "batch_size"},
    "KSampler": {"model", "seed", "steps", "cfg", "sampler_name", "scheduler", "positive", "negative", "latent_image", "denoise"},
    "VAEDecode": {"samples", "vae"},
    "SaveImage": {"images", "filename_prefix"},
}
OUTPUT_TYPES = {
    "MZ_KolorsUNETLoaderV2": ["MODEL"], "MZ_ChatGLM3Loader": ["CHATGLM3MODEL"], "MZ_ChatGLM3_V2": ["CONDITIONING"],
    "VAELoader": ["VAE"], "LoraLoaderModelOnly": ["MODEL"], "EmptyLatentImage": ["LATENT"], "KSampler": ["LATENT"],
    "VAEDecode": ["IMAGE"], "SaveImage": [],
}
LINK_TYPES = {
    "model": "MODEL", "chatglm3_model": "CHATGLM3MODEL", "positive": "CONDITIONING", "negative": "CONDITIONING",
    "latent_image": "LATENT", "samples": "LATENT", "vae": "VAE", "images": "IMAGE",
}


def _check_graph(graph: dict) -> None:
    for node_id, node in graph.items():
        assert node_id.isdigit()
        cls = node["class_type"]
        assert set(node["inputs"]) == REQUIRED_INPUTS[cls], (node_id, cls)
        for name, value in node["inputs"].items():
            if name in LINK_TYPES:  # a link: [source id, output index] of the right type
                src, index = value
                assert OUTPUT_TYPES[graph[src]["class_type"]][index] == LINK_TYPES[name], (node_id, name)
            else:
                assert not isinstance(value, list), (node_id, name)


def test_workflow_is_a_valid_api_graph_with_every_panel(tmp_path):
    result = make_result(tmp_path)
    graph = comfyui_workflow(result)
    _check_graph(graph)
    samplers = sorted((n for n in graph.values() if n["class_type"] == "KSampler"), key=lambda n: n["inputs"]["seed"])
    assert [s["inputs"]["seed"] for s in samplers] == [pr.seed for pr in result.panels]
    for pr, sampler in zip(result.panels, samplers):
        assert sampler["inputs"]["steps"] == pr.panel.steps and sampler["inputs"]["cfg"] == pr.panel.cfg
        assert graph[sampler["inputs"]["model"][0]]["class_type"] == "LoraLoaderModelOnly"
        assert graph[sampler["inputs"]["positive"][0]]["inputs"]["text"] == pr.panel.prompt
        assert graph[sampler["inputs"]["negative"][0]]["inputs"]["text"] == pr.panel.negative
    lora = next(n for n in graph.values() if n["class_type"] == "LoraLoaderModelOnly")
    # kolorsc scale 2.0 at rank 16, alpha 4 -> ComfyUI strength 2.0 * 16 / 4
    assert lora["inputs"] == {"model": ["1", 0], "lora_name": "watercolor.safetensors", "strength_model": 8.0}
    assert sum(1 for n in graph.values() if n["class_type"] == "SaveImage") == 8
    json.dumps(graph)  # plain JSON


def test_workflow_without_lora_samples_the_base_model(tmp_path):
    graph = comfyui_workflow(make_result(tmp_path, lora=False))
    _check_graph(graph)
    assert all(n["class_type"] != "LoraLoaderModelOnly" for n in graph.values())
    assert all(n["inputs"]["model"] == ["1", 0] for n in graph.values() if n["class_type"] == "KSampler")


def test_scores_json_is_stable_and_complete(tmp_path):
    result = make_result(tmp_path, aesthetic=[6.0 + i / 10 for i in range(8)])
    data = scores_json(result)
    assert data == scores_json(result) and data.endswith(b"\n")
    record = json.loads(data)
    assert list(record) == sorted(record)
    assert record["gate"] == "PASS" and record["threshold"] == 6.0
    assert record["aesthetic_mean"] == result.scores.aesthetic_mean
    assert [p["index"] for p in record["panels"]] == list(range(1, 9))
    assert record["panels"][3]["aesthetic"] == 6.3
    assert [c["seed"] for c in record["panels"][0]["candidates"]] == [7, 8]
    assert record["panels"][0]["candidates"][1]["aesthetic"] == 5.5


def test_scores_json_says_not_computed_with_nulls(tmp_path):
    result = make_result(tmp_path)
    result = replace(result, scores=replace(result.scores, note="未计算: run `kolorsc models pull aesthetic`"))
    data = scores_json(result)
    assert "未计算".encode() in data  # UTF-8, not \\u escapes
    record = json.loads(data)
    assert record["gate"] == "UNKNOWN" and record["aesthetic_mean"] is None
    assert all(p["aesthetic"] is None for p in record["panels"])
