"""Command line: parse arguments, call the library, print, choose the exit code.

This is the only module that prints or exits. Exit codes: 0 ok, 1 build failed, 2 bad input.
Heavy libraries (torch, diffsynth, ...) are never imported here, not even indirectly at
import time: `kolorsc --help` and `kolorsc check` must stay instant.
"""

from __future__ import annotations

import functools
import sys

import click

from kolorsc import __version__
from kolorsc.errors import KolorscError, SpecError
from kolorsc.i18n import N_, _, ngettext


def _wants_json(kwargs) -> bool:
    return bool(kwargs.get("as_json")) or kwargs.get("fmt") == "json"


def report_errors(fn):
    """Turn the library's errors into a message on stderr (or, with --json, a JSON error object
    on stdout) and the documented exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ImportError as exc:
            from kolorsc.extras import missing_extra

            error = missing_extra(exc)
            if error is None:
                raise
            _fail(error, _wants_json(kwargs))
        except KolorscError as exc:
            _fail(exc, _wants_json(kwargs))

    return wrapper


def _fail(exc: KolorscError, as_json: bool) -> None:
    if as_json:
        import json

        from kolorsc.spec.jsonout import error_json

        click.echo(json.dumps(error_json(exc), ensure_ascii=False, indent=2))
    elif isinstance(exc, SpecError):
        for d in exc.diagnostics:
            click.echo(d.format(), err=True)
    else:
        click.echo(_("error: {message}").format(message=exc), err=True)
    sys.exit(exc.exit_code)


def _json(data) -> None:
    import json

    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


_JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (errors too).")


def _set_language(ctx, param, value):
    if value:
        from kolorsc.i18n import set_language

        set_language(value)
        _translate_help(ctx.find_root().command)
    return value


def _translate_help(group: click.Group) -> None:
    """Command and option help in the current language (kolorsc/i18n_click.py extracts them)."""
    for command in (group, *group.commands.values()):
        if isinstance(command, click.Group) and command is not group:
            _translate_help(command)
            continue
        for item in (command, *command.params):
            english = item.__dict__.setdefault("_help_en", getattr(item, "help", None))
            if english:  # a docstring is looked up as click shows it (kolorsc/i18n_click.py)
                import inspect

                item.help = _(inspect.cleandoc(english).split("\f")[0].strip())


_LANG = dict(type=click.Choice(["zh", "en"]), default=None, expose_value=False, is_eager=True, callback=_set_language,
             help="Language of messages: zh (简体中文) or en (default: $KOLORSC_LANG, else the locale, "
                  "e.g. LANG=zh_CN.UTF-8).")


class _Main(click.Group):
    def make_context(self, info_name, args, parent=None, **extra):
        from kolorsc.i18n import set_language

        set_language(None)  # each invocation chooses again (--lang, $KOLORSC_LANG, the locale)
        _translate_help(self)
        return super().make_context(info_name, args, parent, **extra)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kolorsc")
@click.option("--lang", **_LANG)
def main() -> None:
    """kolorsc: compile a story written in YAML into eight Kolors panels, a storyboard and a
    submission bundle."""


# --- story format: check, prompts, init, schema (issue: story format) ---


@main.command("check")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--inputs/--no-inputs", default=True, show_default=True,
              help="Require the local files the styles name (lora.path, local dataset folders): a build "
                   "with the real engine fails without them. --no-inputs: a checkout that only builds previews.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "github"]), default="text", show_default=True,
              help="text: file:line:col: path: message; json: one object; github: GitHub Actions annotations.")
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@report_errors
def check_cmd(paths, inputs, fmt, as_json):
    """Check story files and collections (directories): one line per problem, then a summary.
    Exit 0 when every file is valid, 2 otherwise."""
    from pathlib import Path

    from kolorsc.spec import check_paths

    fmt = "json" if as_json else fmt
    report = check_paths([Path(p) for p in paths], inputs=inputs)
    if fmt == "json":
        _json(report.to_json())
    elif fmt == "github":
        from kolorsc.spec.jsonout import github_annotation

        for diagnostic in report.diagnostics:
            click.echo(github_annotation(diagnostic))
        click.echo(report.summary())
    else:
        for diagnostic in report.diagnostics:
            click.echo(diagnostic.format())
        click.echo(report.summary())
    sys.exit(0 if report.ok else 2)


@main.command("prompts")
@click.argument("story", type=click.Path(path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print the eight panels as JSON.")
@report_errors
def prompts_cmd(story, as_json):
    """Show the eight compiled panels of STORY: caption, prompt, negative, seed, steps, cfg, size."""
    import json
    from pathlib import Path

    from kolorsc.prompts import compile_story, panel_as_dict, panels_table
    from kolorsc.spec import load_story

    panels = compile_story(load_story(Path(story)))
    if as_json:
        click.echo(json.dumps([panel_as_dict(p) for p in panels], ensure_ascii=False, indent=2))
    else:
        click.echo(panels_table(panels))


@main.command("init")
@click.argument("name", required=False)
@click.option("--collection", "collection", default=None, metavar="NAME",
              help="Create a new collection repository NAME/ instead: stories/, styles/, pre-commit, "
                   "GitHub Actions workflow, .gitignore, README.")
@click.option("--dir", "directory", default=None, type=click.Path(file_okay=False, path_type=str),
              help="Folder of the new story (default: ./stories if it exists, else .); "
                   "with --collection, the folder that receives NAME/.")
@click.option("--style", default="anime", show_default=True,
              help="Style name; styles/<style>.yaml is written when the project has none.")
@click.option("--title", default=None, help="Title of the story (default: NAME).")
@click.option("--team", default="my-team", show_default=True, help="Team name used in the bundle name.")
@click.option("--new-style", is_flag=True,
              help="Create styles/<style>.yaml even when its name is close to an existing style's.")
@_JSON_OPTION
@report_errors
def init_cmd(name, collection, directory, style, title, team, new_style, as_json):
    """Write a new story NAME.yaml that passes `kolorsc check` as written, or with
    `--collection NAME` a new collection repository (then NAME, if given, names its first
    story). Never overwrites."""
    from pathlib import Path

    from kolorsc.errors import UsageError
    from kolorsc.spec.scaffold import init_story

    if collection is not None:
        from kolorsc.spec.collection import init_collection

        written = init_collection(collection, Path(directory) if directory else None, team=team, style=style,
                                  story=name or "first-story")
        if as_json:
            return _json({"ok": True, "written": [str(p) for p in written]})
        for path in written:
            click.echo(_("wrote {path}").format(path=path))
        click.echo(_("next: {commands}").format(commands=f"cd {Path(directory or '.') / collection} && git add -A && "
                                                         "git commit -m 'new collection' && pre-commit install && "
                                                         "kolorsc check stories/ styles/"))
        return
    if name is None:
        raise UsageError(_("kolorsc init NAME (a story) or kolorsc init --collection NAME (a repository)"))

    written = init_story(name, Path(directory) if directory else None, style=style, title=title, team=team,
                         new_style=new_style)
    if as_json:
        from kolorsc.spec.jsonout import relative

        return _json({"ok": True, "written": [relative(p) for p in written]})
    for path in written:
        click.echo(_("wrote {path}").format(path=path))
    click.echo(_("next: {commands}").format(commands=f"kolorsc check {written[0]} && kolorsc prompts {written[0]}"))


@main.command("schema")
@click.argument("which", type=click.Choice(["story", "style"]))
def schema_cmd(which):
    """Print the JSON schema of a story or style file (for editors and other tools)."""
    from kolorsc.spec.validate import schema_text

    click.echo(schema_text(which), nl=False)


# --- build: build, plan, cache (issue: kolorsc build) ---

def _engine_names() -> tuple[str, ...]:
    from kolorsc.engines import ENGINES

    return ENGINES


def _engine_option():
    ENGINES = _engine_names()
    return click.option("--engine", type=click.Choice(ENGINES), default="preview", show_default=True,
                        help="preview: drafts, no model; kolors: diffsynth on CUDA.")


_ENGINE_OPTION = _engine_option()
_CACHE_OPTION = click.option("--cache-dir", default=None, type=click.Path(file_okay=False, path_type=str),
                             help="Build cache (default: $KOLORSC_CACHE or ~/.cache/kolorsc/store).")
_MODELS_OPTION = click.option("--models-dir", default=None, type=click.Path(file_okay=False, path_type=str),
                              help="Model weights (default: $KOLORSC_MODELS or ~/.cache/kolorsc/models).")
_DEVICE_OPTION = click.option("--device", default=None, help="torch device (default: cuda when available).")
_LOW_MEMORY_OPTION = click.option(
    "--low-memory/--no-low-memory", default=None,
    help="kolors: encode every prompt first, then free the text encoder before denoising "
         "(default: decided from the GPU's memory; also KOLORSC_LOW_MEMORY=1/0).")


class _Bars:
    """One tqdm bar per build stage on stderr; nothing when quiet or stderr is not a terminal."""

    def __init__(self, enabled: bool):
        self.enabled, self.stage, self.bar = enabled, None, None

    def __call__(self, stage: str, done: int, total: int, label: str = "") -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if stage != self.stage or self.bar is None or self.bar.total != total:
            self.close()
            self.stage, self.bar = stage, tqdm(total=total, desc=stage, unit="node", file=sys.stderr, leave=False)
        self.bar.set_postfix_str(label, refresh=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _echo_warnings(warnings) -> None:
    for warning in warnings:
        click.echo(_("warning: ") + str(warning), err=True)


_STATUS = {"cached": N_("cached"), "to-run": N_("to-run"), "skipped": N_("skipped")}  # as shown; JSON keeps the keys
_OUTCOME = {"built": N_("built"), "up-to-date": N_("up-to-date"), "planned": N_("planned"), "failed": N_("failed"),
            "invalid": N_("invalid")}


def _wide(text: str) -> int:
    """How many characters of `text` take two columns (CJK): padding counts columns, not characters."""
    import unicodedata

    return sum(1 for ch in text if unicodedata.east_asian_width(ch) in "WF")


def _echo_plan(plan, changed: bool = False) -> None:
    counts = plan.counts()
    engine = plan.engine.get("name", "?")
    click.echo(_("{story} (engine {engine}): {cached} cached, {to_run} to run, {skipped} skipped").format(
        story=plan.story.id, engine=engine, cached=counts["cached"], to_run=counts["to-run"], skipped=counts["skipped"]))
    for n in plan.nodes:
        if changed and n.status != "to-run":
            continue
        why = "; ".join(n.why)
        located = any(c.loc for c in n.changes)
        where = f"  [{n.loc}]" if n.loc and n.status == "to-run" and n.kind == "render" and not located else ""
        status = _(_STATUS.get(n.status, n.status))
        click.echo(f"  {status:<{8 - _wide(status)}} {str(n.id):<22} {why}{where}".rstrip())


def _echo_outcome(outcome, dry_run: bool, changed: bool = False, warnings: bool = True) -> None:
    name = outcome.story_id or outcome.path
    if warnings:
        _echo_warnings(outcome.warnings)
    if outcome.status == "invalid":
        for d in outcome.diagnostics:
            click.echo(d.format(), err=True)
        click.echo(_("✗ {name}: invalid ({error})").format(name=name, error=outcome.error), err=True)
    elif outcome.status == "failed":
        click.echo(f"✗ {name}: {outcome.error}", err=True)
    elif dry_run:
        _echo_plan(outcome.plan, changed)
    else:
        r = outcome.report
        ran = ", ".join(f"{v} {k}" for k, v in sorted(r.ran.items())) or _("nothing to run")
        click.echo(_("✓ {name}: {status} ({ran}; {n} file(s) updated) -> {out} [{seconds} s]").format(
            name=name, status=_(_OUTCOME.get(outcome.status, outcome.status)), ran=ran, n=len(r.written),
            out=r.out_dir, seconds=f"{outcome.seconds:.2f}"))
        scores = r.result.scores if r.result else None
        if scores is not None and scores.aesthetic_mean is None and scores.note:
            click.echo(_("  scores {note}").format(note=scores.note))
        if r.result is not None and r.result.preview:
            click.echo(_("  preview drafts: not a valid submission (build with --engine kolors)"))


@main.command("build")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@_ENGINE_OPTION
@click.option("--dry-run", is_flag=True, help="Show the plan (cached / to-run and why); run nothing.")
@_CACHE_OPTION
@click.option("--out", default=None, type=click.Path(file_okay=False, path_type=str),
              help="Folder that receives <id>/ outputs (default: <project root>/build).")
@_MODELS_OPTION
@_DEVICE_OPTION
@_LOW_MEMORY_OPTION
@click.option("--quiet", "-q", is_flag=True, help="No progress bars and no per-story lines.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
@click.option("--keep-going", is_flag=True, help="When a node fails, still run every node that does not need it.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              envvar="KOLORSC_EXECUTOR", help="Where nodes run: this process, or a Ray cluster (also KOLORSC_EXECUTOR).")
@click.option("--ray-address", default=None, envvar="KOLORSC_RAY_ADDRESS",
              help="Ray cluster to join: auto, host:port or ray://host:10001 (default: the one `ray start` made "
                   "here, else a new local one; also KOLORSC_RAY_ADDRESS).")
@click.option("--ray-workers", type=click.IntRange(min=1), default=None, envvar="KOLORSC_RAY_WORKERS",
              help="Render/score workers on Ray (default: one per GPU; one per CPU on a cluster without GPUs).")
@click.option("--changed", is_flag=True, help="With --dry-run: only the nodes that will run.")
@click.option("--pull", is_flag=True, help="First fetch what the plan needs from the team's remote cache.")
@click.option("--remote", default=None, metavar="URL",
              help="Remote cache for --pull (default: $KOLORSC_REMOTE, else [remote] url in kolorsc.toml).")
@report_errors
def build_cmd(paths, engine, dry_run, cache_dir, out, models_dir, device, low_memory, quiet, as_json, keep_going,
              executor, ray_address, ray_workers, changed, pull, remote):
    """Build stories (files, or folders of stories): panels, storyboard, PDF, bundle.

    A failing story does not stop the others. Exit 1 if any failed, 2 if one is invalid."""
    import json

    from kolorsc import api

    bars = _Bars(enabled=not quiet and not as_json and sys.stderr.isatty())

    said: set[tuple[str, str]] = set()

    def on_plan(outcome):  # before anything runs: a real build's warnings are worth reading first
        if not as_json and not dry_run:
            _echo_warnings(outcome.warnings)
            said.update((str(outcome.path), w) for w in outcome.warnings)

    def on_story(outcome):
        bars.close()
        if as_json or (quiet and outcome.status not in ("failed", "invalid")):
            return
        _echo_warnings([w for w in outcome.warnings if (str(outcome.path), w) not in said])
        _echo_outcome(outcome, dry_run, changed, warnings=False)

    summary = api.build(
        paths, engine=engine, dry_run=dry_run, cache_dir=cache_dir, out=out, models_dir=models_dir,
        device=device, low_memory=low_memory, keep_going=keep_going, progress=bars, pull=pull, remote=remote,
        executor=executor, ray_address=ray_address, ray_workers=ray_workers, on_story=on_story, on_plan=on_plan,
    )
    if as_json:
        click.echo(json.dumps(summary.to_json(changed_only=changed), ensure_ascii=False, indent=2))
    elif not quiet or summary.exit_code:
        parts = [f"{v} {_(_OUTCOME.get(k, k))}" for k, v in summary.counts().items() if v]
        n = len(summary.outcomes)
        click.echo(ngettext("{n} story: {counts}", "{n} stories: {counts}", n).format(n=n, counts=", ".join(parts)))
    sys.exit(summary.exit_code)


@main.command("plan")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@_ENGINE_OPTION
@_CACHE_OPTION
@click.option("--out", default=None, type=click.Path(file_okay=False, path_type=str),
              help="Folder that would receive <id>/ outputs (default: <project root>/build).")
@_MODELS_OPTION
@_DEVICE_OPTION
@_LOW_MEMORY_OPTION
@click.option("--changed", is_flag=True, help="Only the nodes that will run, and why.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON (the shape of build --dry-run --json).")
@report_errors
def plan_cmd(paths, engine, cache_dir, out, models_dir, device, low_memory, changed, as_json):
    """Show what `build` would do for stories (files, or folders of stories): every node,
    cached or to-run, and why — the input that changed, old → new, and the line that holds it.
    The same as `build --dry-run`. Exit 2 if a story is invalid."""
    import json

    from kolorsc import api

    summary = api.build(paths, engine=engine, dry_run=True, cache_dir=cache_dir, out=out, models_dir=models_dir,
                        device=device, low_memory=low_memory)
    if as_json:
        click.echo(json.dumps(summary.to_json(changed_only=changed), ensure_ascii=False, indent=2))
    else:
        for outcome in summary.outcomes:
            _echo_outcome(outcome, dry_run=True, changed=changed)
    sys.exit(summary.exit_code)


@main.group("cache")
def cache_group() -> None:
    """Inspect and clean the build cache."""


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


@cache_group.command("info")
@_CACHE_OPTION
@click.option("--json", "as_json", is_flag=True)
@report_errors
def cache_info_cmd(cache_dir, as_json):
    """Where the cache is, how many entries, how big."""
    import json

    from kolorsc import api

    info = api.cache_info(cache_dir)
    if as_json:
        click.echo(json.dumps({"path": str(info.path), "entries": info.entries, "size": info.size}))
    else:
        click.echo(_("path:    {path}\nentries: {entries}\nsize:    {size}").format(path=info.path, entries=info.entries,
                                                                               size=_size(info.size)))


@cache_group.command("gc")
@_CACHE_OPTION
@click.option("--keep", multiple=True, type=click.Path(exists=True, path_type=str),
              help="Lock file, story or folder whose lock files' entries are always kept (repeatable).")
@click.option("--older-than", "older_than", type=float, default=30.0, show_default=True,
              help="Remove unkept entries last written or used more than this many days ago.")
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@click.option("--force", is_flag=True, help="Allow --older-than 0 without --keep (empties the cache).")
@_JSON_OPTION
@report_errors
def cache_gc_cmd(cache_dir, keep, older_than, dry_run, force, as_json):
    """Remove cache entries no kept lock file references and unused for --older-than days."""
    from kolorsc import api
    from kolorsc.errors import UsageError

    if older_than == 0 and not keep and not force and not dry_run:
        raise UsageError(_("--older-than 0 without --keep removes every entry of the cache: add --keep STORIES "
                           "(the lock files whose entries stay), or --force to empty it, or --dry-run to see the list"))
    r = api.cache_gc(cache_dir, keep=keep, older_than_days=older_than, dry_run=dry_run)
    if as_json:
        return _json({"ok": True, "dry_run": r.dry_run, "removed": r.removed, "freed": r.freed, "kept": r.kept,
                      "paths": list(r.paths)})
    if r.dry_run:
        for path in r.paths:
            click.echo(f"  {path}")
    text = (ngettext("would remove {n} entry ({size}); kept {kept}", "would remove {n} entries ({size}); kept {kept}",
                     r.removed) if r.dry_run else
            ngettext("removed {n} entry ({size}); kept {kept}", "removed {n} entries ({size}); kept {kept}", r.removed))
    click.echo(text.format(n=r.removed, size=_size(r.freed), kept=r.kept))

# --- review: diff (issue: version-controlled collections) ---


@main.command("diff")
@click.argument("args", nargs=-1, metavar="[REV] [PATH]...")
@click.option("--engine", type=click.Choice(_engine_names()), default=None,
              help="Engine whose render keys are compared (default: the one the lock files name, else preview).")
@_CACHE_OPTION
@_MODELS_OPTION
@click.option("--html", "html_dir", default=None, type=click.Path(file_okay=False, path_type=str),
              help="Also write a side-by-side page (old panel | new panel) into this folder.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@report_errors
def diff_cmd(args, engine, cache_dir, models_dir, html_dir, as_json):
    """Compare the stories and lock files of a git revision (default HEAD) with the working
    tree: per story and panel what changed and why, and which renders are new.

    Never writes into the working tree, the index or the cache. Exit 2 outside a git repository."""
    import json

    from kolorsc.review import diff, present

    report = diff.diff(args, engine=engine, cache_dir=cache_dir, models_dir=models_dir)
    if as_json:
        click.echo(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
    else:
        click.echo(present.as_text(report))
    if html_dir:
        from pathlib import Path

        from kolorsc.review.html import write_html

        page = write_html(report, Path(html_dir))
        click.echo(_("wrote {path}").format(path=page), err=as_json)


# --- shared cache: cache push|pull (issue: collections, shared cache) ---

_REMOTE_OPTION = click.option("--remote", default=None, metavar="URL",
                              help="s3://bucket/prefix, oss://bucket/prefix or file:///path "
                                   "(default: $KOLORSC_REMOTE, else [remote] url in kolorsc.toml).")
_KEY_OPTION = click.option("--key", "keys", multiple=True, metavar="KEY", help="A cache key to move too (repeatable).")


def _echo_transfer(report, as_json: bool) -> None:
    import json

    if as_json:
        click.echo(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
    else:
        rate = f", {report.bytes / 1e6 / report.seconds:.1f} MB/s" if report.bytes and report.seconds else ""
        text = (_("pushed {n} ({size} in {seconds} s{rate}), {present} already there, {missing} not in the local "
                  "cache ({remote})") if report.direction == "push" else
                _("pulled {n} ({size} in {seconds} s{rate}), {present} already there, {missing} not in the remote "
                  "({remote})"))
        click.echo(text.format(n=len(report.transferred), size=_size(report.bytes), seconds=f"{report.seconds:.1f}",
                               rate=rate, present=len(report.present), missing=len(report.missing),
                               remote=report.remote))
        for key, why in sorted({**report.refused, **report.failed}.items()):
            click.echo(f"  {key[:16]}: {why}", err=True)
    if not report.ok:
        sys.exit(1)


@cache_group.command("push")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=str))
@_REMOTE_OPTION
@_KEY_OPTION
@click.option("--all", "all_keys", is_flag=True, help="Push every entry of the local cache.")
@_CACHE_OPTION
@click.option("--json", "as_json", is_flag=True)
@report_errors
def cache_push_cmd(paths, remote, keys, all_keys, cache_dir, as_json):
    """Upload what the lock files of PATHS (stories, lock files, folders) record to the team's
    remote cache. Never replaces a remote entry that holds other bytes. Exit 1 on any conflict
    or failed upload."""
    from pathlib import Path

    from kolorsc.remote.commands import cache_push

    bars = _Bars(sys.stderr.isatty())
    report = cache_push([Path(p) for p in paths], keys, remote=remote, cache_dir=cache_dir, all_keys=all_keys,
                        progress=lambda d, t, label: bars("push", d, t, label))
    bars.close()
    _echo_transfer(report, as_json)


@cache_group.command("pull")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=str))
@_REMOTE_OPTION
@_KEY_OPTION
@_CACHE_OPTION
@click.option("--json", "as_json", is_flag=True)
@report_errors
def cache_pull_cmd(paths, remote, keys, cache_dir, as_json):
    """Download what the lock files of PATHS record from the team's remote cache, each entry
    verified (sha256 and size, and the hash its lock file records) before the local cache
    keeps it. Exit 1 when an entry is refused or a download fails."""
    from pathlib import Path

    from kolorsc.remote.commands import cache_pull

    bars = _Bars(sys.stderr.isatty())
    report = cache_pull([Path(p) for p in paths], keys, remote=remote, cache_dir=cache_dir,
                        progress=lambda d, t, label: bars("pull", d, t, label))
    bars.close()
    _echo_transfer(report, as_json)

# --- publishing: publish (issue: collections, publishing) ---


@main.command("publish")
@click.argument("story", type=click.Path(exists=True, dir_okay=False, path_type=str))
@click.option("--dry-run", is_flag=True, help="Write the folder (and <folder>.json) that would be pushed; upload nothing.")
@click.option("--owner", default=None, help="ModelScope user or organisation (default: [publish] owner in kolorsc.toml).")
@click.option("--name", default=None, help="Repository name (default: <team>-Kolors-<story id>).")
@click.option("--out", default=None, type=click.Path(file_okay=False, path_type=str),
              help="Folder to write (default: build/<id>/modelscope).")
@click.option("--private/--public", "private", default=None, help="Repository visibility (default: kolorsc.toml, else public).")
@click.option("--force", is_flag=True, help="Publish even when the bundle breaks a challenge rule (never a preview).")
@_CACHE_OPTION
@_JSON_OPTION
@report_errors
def publish_cmd(story, dry_run, owner, name, out, private, force, cache_dir, as_json):
    """Publish STORY's LoRA to ModelScope as a model repository: the LoRA, a model card (base
    model, trigger, rank/alpha, dataset, sample panels, the bundle's name), the eight panels and
    their prompts. Needs MODELSCOPE_API_TOKEN or `modelscope login` (not with --dry-run)."""
    from pathlib import Path

    from kolorsc.publish import publish

    pub = publish(Path(story), dry_run=dry_run, owner=owner, name=name, out=Path(out) if out else None,
                  cache_dir=cache_dir, private=private, force=force)
    if as_json:
        return _json({"ok": True, "dry_run": dry_run, "repo_id": pub.repo_id, "name": pub.chinese_name,
                      "folder": str(pub.folder), "metadata": str(pub.metadata_path), "files": pub.files,
                      "private": pub.private, "url": pub.url, "warnings": pub.warnings})
    for warning in pub.warnings:
        click.echo(_("warning: ") + str(warning), err=True)
    visibility = _("private") if pub.private else _("public")
    click.echo(_("wrote {folder} ({n} files) and {metadata}").format(folder=pub.folder, n=len(pub.files),
                                                                   metadata=pub.metadata_path))
    if dry_run:
        click.echo(_("would publish to {repo} as \"{name}\" ({visibility}); run without --dry-run to upload").format(
            repo=pub.repo_id, name=pub.chinese_name, visibility=visibility))
    else:
        click.echo(_("published {url} as \"{name}\" ({visibility})").format(url=pub.url, name=pub.chinese_name,
                                                                          visibility=visibility))


# --- outputs: bundle verify (issue: kolorsc build, emit) ---


@main.group("bundle")
def bundle_group() -> None:
    """Submission bundles: check them against the challenge rules."""


@bundle_group.command("verify")
@click.argument("bundle", type=click.Path(path_type=str))
@click.option("--threshold", type=float, default=6.0, show_default=True, help="Minimum mean aesthetic score.")
@click.option("--rescore", is_flag=True, help="Recompute the aesthetic score from the images (needs the scorer weights).")
@click.option("--models-dir", default=None, help="Model weights folder for --rescore (default: $KOLORSC_MODELS or ~/.cache/kolorsc/models).")
@click.option("--device", default=None, help="torch device for --rescore; default cuda when available, else cpu.")
@_JSON_OPTION
@report_errors
def bundle_verify(bundle: str, threshold: float, rescore: bool, models_dir: str | None, device: str | None,
                  as_json: bool) -> None:
    """Check BUNDLE (a .zip): eight images only, prompts, a loadable LoRA, not a preview, and the
    mean aesthetic score against the threshold. Exit 0 when valid, 1 when not, 2 when BUNDLE is
    missing or not a zip."""
    from kolorsc import api

    report = api.bundle_verify(bundle, threshold=threshold, rescore=rescore, models_dir=models_dir, device=device)
    if as_json:
        _json({"ok": report.ok, "bundle": bundle, "findings": [{"severity": f.level, "message": f.message}
                                                              for f in report.findings],
               "aesthetic_mean": report.aesthetic_mean, "threshold": threshold, "rescored": report.rescored})
        sys.exit(0 if report.ok else 1)
    for finding in report.findings:
        click.echo(finding.format())
    if report.aesthetic_mean is not None:
        how = _("recomputed") if report.rescored else _("from scores.json")
        click.echo(_("mean aesthetic {mean} ({how}), threshold {threshold}").format(
            mean=f"{report.aesthetic_mean:.3f}", how=how, threshold=threshold))
    verdict = _("OK") if report.ok else _("NOT VALID")
    click.echo(_("{bundle}: {verdict} ({n} error(s))").format(bundle=bundle, verdict=verdict, n=len(report.errors)))
    sys.exit(0 if report.ok else 1)


# --- models: models pull|list|verify (issue: Kolors engine) ---


def _model_registry():
    """kolorsc.models with every area's entries registered (the scorers register on import)."""
    import kolorsc.scoring.models  # noqa: F401 - registers `aesthetic`, `chinese-clip`
    from kolorsc import models

    return models


def _gb(n: int) -> str:
    return f"{n / 1024**3:.2f} GB"


@main.group("models")
def models_group() -> None:
    """Model weights: download (ModelScope), list, verify."""


@models_group.command("list")
@_MODELS_OPTION
@_JSON_OPTION
@report_errors
def models_list(models_dir, as_json):
    """Show every model kolorsc uses and whether its files are present."""
    from kolorsc import paths

    models = _model_registry()
    root = paths.models_dir(models_dir)
    if as_json:
        return _json({"ok": True, "models_dir": str(root), "models": [
            {"name": m.name, "repo": m.repo, "folder": str(m.folder), "purpose": m.purpose, "present": m.present,
             "missing": list(m.missing), "size": m.size_bytes} for m in models.list_models(root)]})
    click.echo(_("models directory: {path}").format(path=root))
    for status in models.list_models(root):
        state = _("present") if status.present else _("missing {n} file(s)").format(n=len(status.missing))
        click.echo(f"  {status.name:<14} {status.repo:<48} {state:<20} {_gb(status.size_bytes):>9}  {status.purpose}")


@models_group.command("pull")
@click.argument("names", nargs=-1)
@_MODELS_OPTION
@_JSON_OPTION
@report_errors
def models_pull(names, models_dir, as_json):
    """Download models from ModelScope (all when no NAMES): only the files kolorsc reads,
    into a .partial folder first, moved into place once complete."""
    from kolorsc import paths

    from kolorsc.extras import require

    require("models", "modelscope")  # said up front, not after a failed download
    models = _model_registry()
    root = paths.models_dir(models_dir)
    names = names or tuple(sorted(models.REGISTRY))
    folders = models.pull(names, root, progress=lambda d, t, label: click.echo(f"[{d}/{t}] {label}", err=True))
    if as_json:
        return _json({"ok": True, "folders": [str(f) for f in folders]})
    for folder in folders:
        click.echo(_("ok {path}").format(path=folder))


@models_group.command("verify")
@click.argument("names", nargs=-1)
@_MODELS_OPTION
@_JSON_OPTION
@report_errors
def models_verify(names, models_dir, as_json):
    """Check the file layout and that every file is complete and readable. Exit 1 if not."""
    from kolorsc import paths

    models = _model_registry()
    report = models.verify(names, paths.models_dir(models_dir))
    if as_json:
        _json({"ok": report.ok, "models": {name: {"folder": str(report.folders[name]), "ok": all(c.ok for c in checks),
                                                  "files": [{"file": c.file, "ok": c.ok, "problem": c.problem or None}
                                                            for c in checks]}
                                           for name, checks in report.models.items()}})
        sys.exit(0 if report.ok else 1)
    for name, checks in report.models.items():
        bad = [c for c in checks if not c.ok]
        state = _("ok") if not bad else _("{n} problem(s)").format(n=len(bad))
        click.echo(f"{name}: {state} ({report.folders[name]})")
    for problem in report.problems():
        click.echo(f"  {problem}", err=True)
    if not report.ok:
        names = " ".join(n for n, cs in report.models.items() if any(not c.ok for c in cs))
        click.echo(_("fix: `kolorsc models pull {names}` (delete damaged files first: pull fetches only missing ones)"
                     ).format(names=names), err=True)
        sys.exit(1)


# --- training: (issue: LoRA training) ---


def _print_dataset_report(report) -> None:
    click.echo(_("dataset {source}: {found} image(s) found, {kept} kept -> {out}").format(
        source=report.source, found=report.found, kept=report.kept, out=report.out_dir))
    for name, why in report.skipped:
        click.echo(_("  skipped {name}: {why}").format(name=name, why=why))
    for c in report.filters:
        counts = _("kept {kept}, dropped {dropped}").format(kept=c.kept, dropped=c.dropped) if c.kept >= 0 else c.note
        dropped = f" ({', '.join(c.dropped_names[:5])}{', ...' if len(c.dropped_names) > 5 else ''})" if c.dropped_names else ""
        click.echo(f"  {c.op}: {counts}{dropped}")


@main.command("train")
@click.argument("style_file", type=click.Path(exists=True, dir_okay=False, path_type=str))
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False, path_type=str),
              help="Output folder (default: build/lora/<style id> in the project). Run again to resume.")
@click.option("--dataset-only", is_flag=True, help="Prepare the dataset and print its report; do not train.")
@_MODELS_OPTION
@_DEVICE_OPTION
@_JSON_OPTION
@report_errors
def train_cmd(style_file, out_dir, dataset_only, models_dir, device, as_json):
    """Train a style's LoRA outside a story build: Data-Juicer dataset, Lightning training, and
    lora.safetensors (kohya keys, for ComfyUI/diffusers) + lora.diffsynth.safetensors."""
    import json

    from kolorsc import api

    bars = _Bars(sys.stderr.isatty())
    # Lightning draws the training bar itself (steps, loss, it/s).
    outcome = api.train(style_file, out_dir=out_dir, dataset_only=dataset_only, models_dir=models_dir,
                        device=device, progress=None if as_json else bars, lightning_bar=not as_json)
    bars.close()
    if as_json:
        result = outcome.result
        return _json({"ok": True, "dataset_dir": str(outcome.dataset_dir),
                      "generated": str(outcome.generated) if outcome.generated is not None else None,
                      "dataset": outcome.dataset_report.to_json() if outcome.dataset_report else None,
                      "lora": None if result is None else {
                          "path": str(result.path), "diffsynth_path": str(result.diffsynth_path), "rank": result.rank,
                          "alpha": result.alpha, "steps": result.steps}})
    if outcome.generated is not None:
        text = _("generated: {path}") if outcome.rendered else _("generated dataset unchanged: {path}")
        click.echo(text.format(path=outcome.generated))
    if outcome.dataset_report is None:
        click.echo(_("dataset unchanged: {path}").format(path=outcome.dataset_dir))
    else:
        _print_dataset_report(outcome.dataset_report)
    result = outcome.result
    if result is None:
        return
    for note in json.loads(result.metadata.get("kolorsc.notes", "[]")):
        click.echo(_("note: {note}").format(note=note), err=True)
    click.echo(_("✓ LoRA rank {rank}, alpha {alpha}, {steps} steps -> {path}").format(
        rank=result.rank, alpha=f"{result.alpha:g}", steps=result.steps, path=result.path))
    click.echo(_("  diffsynth format: {path}").format(path=result.diffsynth_path))


@main.group("lora")
def lora_group() -> None:
    """LoRA files: inspect, convert diffsynth checkpoints to kohya safetensors."""


@lora_group.command("inspect")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=str))
@click.option("--check/--no-check", default=True, show_default=True,
              help="Check every layer against the Kolors UNet's shapes (exit 1 when it does not fit).")
@_JSON_OPTION
@report_errors
def lora_inspect(file, check, as_json):
    """Format, rank, alpha, layers and metadata of a LoRA file."""
    from kolorsc import api

    lora, problems = api.lora_inspect(file, check=check)
    if as_json:
        _json({"ok": not problems, "file": file, "format": lora.format, "layers": len(lora.layers), "rank": lora.rank,
               "alphas": sorted({layer.alpha for layer in lora.layers.values() if layer.alpha is not None}),
               "metadata": lora.metadata, "checked": check, "problems": problems})
        sys.exit(1 if problems else 0)
    alphas = sorted({layer.alpha for layer in lora.layers.values() if layer.alpha is not None})
    shown = ", ".join(f"{a:g}" for a in alphas) or _("none (diffsynth: applied as W += scale * up @ down)")
    click.echo(_("{file}: {format}, {n} layer(s), rank {rank}, alpha {alpha}").format(
        file=file, format=lora.format, n=len(lora.layers), rank=lora.rank, alpha=shown))
    for key in sorted(lora.metadata):
        value = lora.metadata[key]
        click.echo(f"  {key}: {value if len(value) <= 120 else value[:117] + '...'}")
    if check:
        for p in problems:
            click.echo(_("  does not fit: {problem}").format(problem=p), err=True)
        if problems:
            sys.exit(1)
        click.echo(_("fits the Kolors UNet"))


@lora_group.command("export")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=str))
@click.argument("target", type=click.Path(dir_okay=False, path_type=str))
@click.option("--alpha", type=float, default=None,
              help="Alpha to record when the source has none (diffsynth checkpoints); default: the rank.")
@_JSON_OPTION
@report_errors
def lora_export(source, target, alpha, as_json):
    """Convert a LoRA (e.g. diffsynth's epoch=0-step=500.ckpt) to kohya-style safetensors."""
    from kolorsc import api

    lora = api.lora_export(source, target, alpha=alpha)
    first = next(iter(lora.layers.values()))
    if as_json:
        return _json({"ok": True, "target": target, "layers": len(lora.layers), "rank": lora.rank, "alpha": first.alpha})
    click.echo(_("✓ {n} layer(s), rank {rank}, alpha {alpha} -> {path}").format(
        n=len(lora.layers), rank=lora.rank, alpha=f"{first.alpha:g}", path=target))


# --- scoring: score (issue: scoring) ---

@main.command("score")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=str))
@click.option("--models-dir", default=None, help="Model weights folder (default: $KOLORSC_MODELS or ~/.cache/kolorsc/models).")
@click.option("--device", default=None, help="torch device; default cuda when available, else cpu.")
@click.option("--threshold", default=6.0, show_default=True, type=float, help="Gate: PASS when the mean aesthetic score reaches it.")
@click.option("--prompts", "prompts", default=None, type=click.Path(exists=True, dir_okay=False, path_type=str),
              help="Prompts for alignment: one line per image in file-name order, or JSON {file: prompt}.")
@click.option("--json", "as_json", is_flag=True, help="Print the scores as JSON.")
@report_errors
def score_cmd(folder, models_dir, device, threshold, prompts, as_json):
    """Score every image in FOLDER like the challenge's script: per-image aesthetic score, mean,
    coherence, alignment (with --prompts) and the PASS/FAIL gate."""
    import json

    from kolorsc import api
    from kolorsc.scoring import present

    result = api.score(folder, models_dir=models_dir, device=device, threshold=threshold, prompts=prompts)
    for warning in result.scan.warnings:
        click.echo(_("warning: ") + str(warning), err=True)
    if as_json:
        click.echo(json.dumps(present.as_json(result), ensure_ascii=False, indent=2))
    else:
        click.echo(present.as_text(result))


def _every_command_takes_lang(group: click.Group) -> None:
    """`kolorsc check --lang zh ...` as well as `kolorsc --lang zh check ...`."""
    for command in group.commands.values():
        if isinstance(command, click.Group):
            _every_command_takes_lang(command)
        elif not any("--lang" in p.opts for p in command.params):
            command.params.append(click.Option(["--lang"], **_LANG))


_every_command_takes_lang(main)


if __name__ == "__main__":  # pragma: no cover
    main()
