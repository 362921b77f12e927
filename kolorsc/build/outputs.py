"""build/<id>/: the story's output files, put in place from the cache after a build.

Each file is replaced atomically and only when its bytes differ (a no-op build touches
nothing, so file times stay meaningful); our own files that this build no longer makes (a
bundle under an old team name, panels beyond the story's count) are removed. Nothing else
in the folder is touched, and nothing is done through a symlink the build did not create.

One folder, one story: `.kolorsc-story` in the folder names the story file whose outputs it
holds (relative to the project root). A build refuses to write another story's outputs
there while that story still exists with the same id (`claim_problem`); a renamed story, or
one whose id changed, leaves the folder free.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from kolorsc import safefs
from kolorsc.build.stages.base import Blob
from kolorsc.build.status import Plan
from kolorsc.errors import Diagnostic
from kolorsc.hashing import sha256_bytes
from kolorsc.i18n import _
from kolorsc.spec.model import Story

OWNER_FILE = ".kolorsc-story"


def output_dir(story: Story, out: Path | None) -> Path:
    return (Path(out) if out else Path(story.root) / "build") / story.id


def write_outputs(plan: Plan, outputs: dict, out_dir: Path, hashes=None) -> list[str]:
    """Put each output file in place, atomically, only when its bytes differ; returns the
    files (re)written, relative to out_dir. Folders and files are opened without following
    symlinks (kolorsc.safefs): a planted link is a BuildError naming it, and nothing is
    written, read or deleted through it. `hashes`: the cache's FileHashes, so that a file
    whose size and mtime are those it had when last hashed is not read again."""
    written = []
    with safefs.output_root(out_dir, plan.story.root) as root:
        for planned in plan.nodes:
            node = planned.node
            blob: Blob | None = outputs.get(node.id)
            if node.output is None or blob is None:
                continue
            folder, name = safefs.folder_of(root, node.output)
            try:
                if folder.sha256(name, hashes) == blob.sha256:
                    continue
                if blob.data is not None:
                    folder.write_bytes(name, blob.data)
                else:
                    folder.copy_file(name, blob.path)
            finally:
                if folder is not root:
                    folder.close()
            written.append(node.output)
        _remove_stale(plan, root)
        _claim(plan.story, root)
    return written


def _owner_text(story: Story) -> str:
    return json.dumps({"story": _relative(story.path, story.root)}, ensure_ascii=False) + "\n"


def _relative(path: Path, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return Path(path).as_posix()


def _claim(story: Story, root: safefs.OutputDir) -> None:
    data = _owner_text(story).encode("utf-8")
    if root.sha256(OWNER_FILE) != sha256_bytes(data):
        root.write_bytes(OWNER_FILE, data)


def owner(out_dir: Path, root: Path) -> Path | None:
    """The story file whose outputs `out_dir` holds, as its last build recorded; None if unknown."""
    try:
        rel = json.loads((Path(out_dir) / OWNER_FILE).read_text("utf-8"))["story"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return Path(root) / rel if isinstance(rel, str) else None


def claim_problem(story: Story, out_dir: Path, id_at) -> Diagnostic | None:
    """A diagnostic (at the story's `id:` line: `id_at()` returns its Loc, asked only when there
    is a problem) when `out_dir` holds the outputs of another story file that still exists with
    the same id."""
    from kolorsc.spec.ids import story_id
    from kolorsc.spec.loader import display_name

    other = owner(out_dir, story.root)
    if other is None or not other.is_file() or other.resolve() == Path(story.path).resolve():
        return None
    found = story_id(other, display_name(other))
    if found is None or found[0] != story.id:
        return None
    at = id_at()
    return Diagnostic(at.file, at.line, at.col, "id",
                      _("{folder}/ holds the outputs of {other}, which has the id \"{id}\" too").format(
                          folder=display_name(out_dir), other=found[1], id=story.id),
                      _("the id names the output folder and the bundle: give each story its own id"))


# Our own files in build/<id>/'s folders: panels/NN.png, characters/<key>.png (sheets)
_OWN = {"panels": r"[0-9][0-9]\.png", "characters": r"[A-Za-z_][A-Za-z0-9_]*\.png"}


def _remove_stale(plan: Plan, root: safefs.OutputDir) -> None:
    """Remove our own outputs that this build no longer makes: a bundle under an old team
    name, panels beyond the story's count, the sheet of a character that no longer has one.
    Nothing else in build/<id>/ is touched, and a symlink among them is refused, not followed."""
    current = {n.output for n in plan.nodes if n.output}
    bundle = f"-可图Kolors训练-{plan.story.id}.zip"
    for name in root.names():
        if name.endswith(bundle) and name not in current:
            root.unlink(name)
    for folder, pattern in _OWN.items():
        if root.kind(folder) is None:
            continue
        with root.subdir(folder) as sub:
            for name in sub.names():
                if re.fullmatch(pattern, name) and f"{folder}/{name}" not in current:
                    sub.unlink(name)


def write_indexes(stories: list) -> list[Path]:
    """index.html of every output folder the build wrote into: a card per story (its
    thumbnail, gate, mean score, links; kolorsc.emit.gallery), in collection order. Written
    like the stories' files: only when different, through no link the build did not make.

    `stories`: (out_dir, project root, story id, title, status, StoryResult or None, error)
    per story."""
    from kolorsc.emit.gallery import INDEX, failed_entry, gallery_entry, gallery_html
    from kolorsc.hashing import sha256_bytes

    roots: dict[Path, tuple[Path, list]] = {}
    for out_dir, project_root, story_id, title, status, result, error in stories:
        entry = (gallery_entry(result, out_dir.name, status) if result is not None
                 else failed_entry(story_id, title, out_dir.name, status, error))
        roots.setdefault(out_dir.parent, (project_root, []))[1].append(entry)
    written = []
    for out_root, (project_root, entries) in roots.items():
        with _index_folder(out_root, project_root) as folder:
            data = gallery_html(out_root, entries)
            if folder.sha256(INDEX) != sha256_bytes(data):
                folder.write_bytes(INDEX, data)
                written.append(out_root / INDEX)
    return written


def _index_folder(out_root: Path, project_root: Path) -> safefs.OutputDir:
    """build/ below the project is opened following no link; a folder the user chose with
    --out is trusted as given (the user named it), like safefs.output_root's parent."""
    out_root, root = Path(out_root).absolute(), Path(project_root).absolute()
    if out_root.is_relative_to(root) and out_root != root:
        return safefs.output_root(out_root, root)
    return safefs.OutputDir.open(out_root, ())
