"""`kolorsc init --collection NAME`: a new story-collection repository, ready for a team.

    NAME/
      stories/<story>.yaml          a first story that passes `kolorsc check` (scaffold.init_story)
      styles/<style>.yaml           its style (the challenge baseline by default)
      schemas/*.schema.json         for editors (the stories' `$schema` line points here)
      .pre-commit-config.yaml       the kolorsc-check hook
      .github/workflows/kolorsc.yml CI: check with annotations, diff of the pull request,
                                    preview build, gallery and storyboards as artifacts
      .gitignore                    build/ (lock files stay versioned: they are the record)
      README.md                     daily work, and how to build with the real weights

The folder becomes a git repository when git is installed and it is not inside one already.
Files are only ever created, never overwritten: NAME must not exist or be empty.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from kolorsc import __version__
from kolorsc.atomic import atomic_write_text
from kolorsc.errors import UsageError
from kolorsc.i18n import _
from kolorsc.spec.scaffold import DEFAULT_STYLE, SLUG, init_story

# Where collections install kolorsc from (pre-commit hook and CI). One constant to change
# when the project's public home moves.
KOLORSC_REPO_URL = "https://github.com/kolorsc/kolorsc"
KOLORSC_REV = f"v{__version__}"
WORKFLOW = ".github/workflows/kolorsc.yml"

PRE_COMMIT_CONFIG = """\
# pre-commit (https://pre-commit.com): `pip install pre-commit && pre-commit install`,
# then every commit checks the stories and styles it touches.
repos:
  - repo: {url}
    rev: {rev}
    hooks:
      - id: kolorsc-check
"""

# GitHub Actions. `kolorsc check --format github` prints ::error annotations on the lines of
# the pull request's files. The diff runs before the preview build, which rewrites the
# lock files with the preview engine's keys.
WORKFLOW_TEXT = """\
name: kolorsc

on:
  pull_request:
  push:
    branches: [main]

permissions:
  contents: read

jobs:
  stories:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
        with:
          fetch-depth: 0  # kolorsc diff reads the pull request's base revision

      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"

      - name: Install kolorsc (the core, no torch and no weights)
        run: pip install "kolorsc @ git+{url}@{rev}"

      - name: Check stories and styles
        run: kolorsc check --format github stories/ styles/

      - name: Diff of the pull request
        if: github.event_name == 'pull_request'
        run: |
          mkdir -p build/diff
          kolorsc diff "origin/${{{{ github.base_ref }}}}" --html build/diff | tee build/diff/diff.txt

      - name: Preview build (drafts, storyboards, gallery)
        run: kolorsc build stories/ --engine preview --quiet

      - name: Upload the diff
        if: github.event_name == 'pull_request'
        uses: actions/upload-artifact@v4
        with:
          name: diff
          path: build/diff/

      - name: Upload the gallery
        uses: actions/upload-artifact@v4
        with:
          name: gallery
          path: |
            build/
            !build/diff/

      - name: Upload the storyboards
        uses: actions/upload-artifact@v4
        with:
          name: storyboards
          path: |
            build/*/storyboard.png
            build/*/storyboard.pdf
"""

GITIGNORE = """\
# kolorsc outputs: rebuilt from the stories at any time.
# The *.lock files beside the stories are NOT ignored: they record what was built.
build/
.kolorsc-cache/
__pycache__/
.venv/
"""

README = """\
# {name}

A collection of illustrated stories built with [kolorsc]({url}) for the Kolors LoRA story
challenge. Each story in `stories/` is YAML (a style, characters, eight scenes); each style
in `styles/` says which LoRA to train or reuse. `<story>.lock` files record what was built.

## Every day (any laptop, no GPU)

    pip install "kolorsc @ git+{url}@{rev}"
    pip install pre-commit && pre-commit install    # check stories on every commit
    kolorsc init my-story                            # a new story in stories/
    kolorsc check stories/ styles/                   # file:line:col: path: message
    kolorsc prompts stories/{story}.yaml             # the eight compiled prompts
    kolorsc build stories/ --engine preview          # drafts, storyboards, gallery in build/
    kolorsc diff                                     # what your edits change, panel by panel

A pull request runs `.github/workflows/kolorsc.yml`: the check (annotations on the changed
lines), `kolorsc diff` against the base branch (artifact `diff`: open `index.html` for the
old and new panels side by side), a preview build (artifacts `gallery` and `storyboards`).

## Building with the real weights (a CUDA GPU, about 24 GB)

    pip install torch torchvision                        # the CUDA build for your machine
    pip install "kolorsc[models] @ git+{url}@{rev}"
    kolorsc models pull                                  # Kolors, the fp16-fix VAE, the aesthetic scorer (ModelScope)
    kolorsc models verify
    kolorsc build stories/ --engine kolors               # trains each style's LoRA once, renders, scores
    kolorsc bundle verify build/<id>/*.zip               # the challenge's rules, the >= 6.0 gate

Weights go to `~/.cache/kolorsc/models` (`--models-dir` or `$KOLORSC_MODELS` to change it);
renders and LoRAs are cached in `~/.cache/kolorsc/store` by content, so a rebuild renders only
what changed. Outputs land in `build/<id>/`: the eight panels, `storyboard.png`/`.pdf`,
`scores.json`, the submission bundle `<team>-可图Kolors训练-<id>.zip`, and `build/index.html`.

Commit the updated `stories/*.lock` files with your story changes (not `build/`): reviewers
see exactly which panels a change re-renders, and anyone can reproduce them.
"""


def init_collection(
    name: str,
    parent: Path | None = None,
    *,
    team: str = "my-team",
    style: str = DEFAULT_STYLE,
    story: str = "first-story",
    git: bool = True,
) -> list[Path]:
    """Create the collection folder `parent/name`; returns the files written."""
    if not SLUG.match(name):
        raise UsageError(_("collection name {name} must be a slug: lowercase letters, digits and single hyphens").format(
            name=json.dumps(name, ensure_ascii=False)))
    target = Path(parent or Path.cwd()) / name
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UsageError(_("{path} already exists and is not empty; refusing to write into it").format(path=target))
    (target / "styles").mkdir(parents=True, exist_ok=True)  # the project-root marker, first
    written = _schemas(target)
    written += init_story(story, target / "stories", style=style, team=team)
    url = KOLORSC_REPO_URL
    files = {
        ".pre-commit-config.yaml": PRE_COMMIT_CONFIG.format(url=url, rev=KOLORSC_REV),
        WORKFLOW: WORKFLOW_TEXT.format(url=url, rev=KOLORSC_REV),
        ".gitignore": GITIGNORE,
        "README.md": README.format(name=name, url=url, rev=KOLORSC_REV, story=story),
    }
    for rel, text in files.items():
        atomic_write_text(target / rel, text)
        written.append(target / rel)
    if git:
        _git_init(target)
    return written


def _schemas(target: Path) -> list[Path]:
    from kolorsc.spec.validate import schema_text

    out = []
    for which in ("story", "style"):
        path = target / "schemas" / f"{which}.schema.json"
        atomic_write_text(path, schema_text(which))
        out.append(path)
    return out


def _git_init(target: Path) -> None:
    """`git init` the new folder, unless git is missing or the folder is inside a repository."""
    if shutil.which("git") is None:
        return
    inside = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=target.parent,
                            capture_output=True, text=True)
    if inside.returncode == 0 and inside.stdout.strip() == "true":
        return
    subprocess.run(["git", "init", "-q"], cwd=target, capture_output=True, check=False)
