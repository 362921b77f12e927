"""A Ray worker refuses to make a node whose key promises other code or other models than the
worker has (kolorsc.build.executors.ray_worker.Identities), naming what differs. No Ray needed:
the check is plain Python run where the stage runs."""

from __future__ import annotations

import pytest

from kolorsc import api
from kolorsc.build.executors.ray_worker import Identities
from kolorsc.build.graph import Node
from kolorsc.build.stages.base import Env, Task, Work
from kolorsc.engines.preview import PreviewEngine
from kolorsc.errors import BuildError

from _build_fixtures import TEST_LONG_SIDE, CountingEngine, make_project, story_path


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("worker") / "project")
    return api.plan(story_path(project), engine=CountingEngine(), cache_dir=project / "cache")


def task_of(plan, node_id: str, **changed) -> Task:
    node = plan.node(node_id).node
    if changed:
        node = Node(node.id, {**node.inputs, **changed}, node.deps, node.loc, node.output, node.skipped)
    return Task(node.kind, (Work(node, plan.graph),))


def check(plan, node_id, engine=None, **changed):
    env = Env(engine or PreviewEngine(long_side=TEST_LONG_SIDE), plan.graph.story.root / "models")
    Identities(env).check(task_of(plan, node_id, **changed), "ray:10.0.0.7/gpu-3")


def test_a_worker_with_the_same_code_and_models_makes_the_node(plan):
    check(plan, "render/01/seed-1")
    check(plan, "storyboard")


def test_other_stage_code_on_the_worker_is_refused(plan):
    with pytest.raises(BuildError, match=r"worker ray:10.0.0.7/gpu-3 would make this node with other kolorsc "
                                         r"code for pdf than its key says"):
        check(plan, "pdf", code="0123456789abcdef")


def test_another_engine_or_other_fonts_on_the_worker_are_refused_naming_what_differs(plan):
    with pytest.raises(BuildError, match=r"with another engine than its key says \(long_side differ\): install "
                                         r"the same kolorsc and libraries on every node and pull the same models"):
        check(plan, "render/01/seed-1", engine=PreviewEngine(long_side=512))
    fonts = dict(plan.node("storyboard").node.inputs["fonts"])
    fonts = {name: "another-file" for name in fonts}
    with pytest.raises(BuildError, match=r"with other fonts than its key says"):
        check(plan, "storyboard", fonts=fonts)
