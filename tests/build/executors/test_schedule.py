"""Cutting render and score tasks into pieces for a pool of workers, and which piece an idle
worker takes (kolorsc.build.executors.schedule): pure, no Ray."""

from __future__ import annotations

from kolorsc.build.executors.schedule import Piece, affinity, choose, cut, subtask
from kolorsc.build.graph import RENDER, SCORE, SHEET, Node, NodeId
from kolorsc.build.stages.base import Task, Work


def renders(lora: str | None, n: int, first: int = 1) -> Task:
    work = tuple(Work(Node(NodeId(RENDER, first + i, 1), {"lora": lora, "lora_scale": 2.0 if lora else None}), None)
                 for i in range(n))
    return Task(RENDER, work)


def sizes(pieces: list[Piece]) -> list[tuple]:
    return [(p.affinity[1], p.size) for p in pieces]


def test_one_big_lora_group_is_split_evenly_across_workers():
    assert sizes(cut([renders("A", 64)], workers=2)) == [("A", 32), ("A", 32)]
    assert sizes(cut([renders("A", 40)], workers=3)) == [("A", 13), ("A", 14), ("A", 13)]
    keys = [k for p in cut([renders("A", 40)], workers=3) for k in p.task.keys]
    assert keys == list(renders("A", 40).keys)  # every render once, in order


def test_groups_within_an_even_share_stay_whole_so_each_lora_is_merged_once():
    tasks = [renders("A", 8), renders("B", 8, 9), renders(None, 8, 17), renders("C", 8, 25)]
    assert sizes(cut(tasks, workers=2)) == [("A", 8), ("B", 8), (None, 8), ("C", 8)]
    assert sizes(cut(tasks, workers=8)) == [("A", 4), ("A", 4), ("B", 4), ("B", 4), (None, 4), (None, 4),
                                            ("C", 4), ("C", 4)]


def test_an_idle_worker_keeps_its_lora_else_takes_the_biggest_piece():
    waiting = cut([renders("A", 4), renders("B", 9, 5), renders("C", 2, 14)], workers=1)
    assert choose(waiting, merged=(RENDER, "C", 2.0)) == 2  # no merge
    assert choose(waiting, merged=(RENDER, "Z", 2.0)) == 1  # the biggest: the tail stays short
    assert choose(waiting, merged=None) == 1


def test_scores_have_no_lora_affinity():
    task = Task(SCORE, (Work(Node(NodeId(SCORE, 1, 1), {"render": "k"}), None),))
    assert affinity(task) == (SCORE,)


def test_an_unsplittable_task_stays_one_piece_and_what_is_left_of_it_stays_unsplittable():
    shared = Task(RENDER, renders("A", 8).work, unsplittable=True)  # a story's renders sharing attention
    assert sizes(cut([shared], workers=4)) == [("A", 8)]
    assert sizes(cut([shared, renders("A", 8, 9)], workers=4)) == [("A", 8), ("A", 4), ("A", 4)]
    assert cut([shared], workers=4)[0].task.unsplittable
    assert subtask(shared, shared.work[3:]).unsplittable and not subtask(renders("A", 8), shared.work[3:]).unsplittable


def test_sheets_and_renders_of_one_lora_share_the_affinity():
    sheet = Task(SHEET, (Work(Node(NodeId(SHEET, name="girl"), {"lora": "A", "lora_scale": 2.0}), None),))
    assert affinity(sheet) == affinity(renders("A", 1))
