"""`kolorsc.toml`: project settings, at the project root (it is also one of the files that mark
the root, see kolorsc/spec/loader.py). Every section is optional:

    [remote]                         # the team's shared cache: kolorsc cache push|pull, build --pull
    url = "s3://team-bucket/kolorsc" # s3://, oss:// or file:// (anything fsspec opens)

    [remote.options]                 # fsspec storage options of that backend, passed unchanged
    endpoint_url = "https://minio.example.com"   # e.g. an S3-compatible store

    [publish]                        # kolorsc publish
    owner = "my-team"                # ModelScope user or organisation owning the model repositories
    private = false

The file is committed with the stories, so it never holds credentials: s3fs reads the usual
AWS variables or ~/.aws, oss:// reads OSS_ACCESS_KEY_ID / OSS_ACCESS_KEY_SECRET and
OSS_ENDPOINT, ModelScope reads MODELSCOPE_API_TOKEN or the login saved by `modelscope login`.

Which remote a command uses: `--remote URL`, else $KOLORSC_REMOTE, else kolorsc.toml's
[remote] url. The options of kolorsc.toml apply whichever of the three named the URL.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from kolorsc.errors import UsageError
from kolorsc.i18n import _

CONFIG_FILE = "kolorsc.toml"
REMOTE_ENV = "KOLORSC_REMOTE"
_SECTIONS = {"remote": ("url", "options"), "publish": ("owner", "private")}


@dataclass(frozen=True)
class RemoteConfig:
    url: str
    options: dict = field(default_factory=dict)  # fsspec storage options
    source: str = CONFIG_FILE  # what named the URL: "--remote", "$KOLORSC_REMOTE" or the file


@dataclass(frozen=True)
class PublishConfig:
    owner: str | None = None
    private: bool = False


@dataclass(frozen=True)
class ProjectConfig:
    path: Path | None  # the kolorsc.toml read, None when the project has none
    remote: RemoteConfig | None = None
    publish: PublishConfig = PublishConfig()


def _toml():
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10 only
        import tomli as tomllib
    return tomllib


def read_config(root: Path) -> ProjectConfig:
    """The project's kolorsc.toml (an empty config when there is none). UsageError naming the
    file and the problem when it is not valid TOML or holds an unknown or mistyped setting."""
    path = Path(root) / CONFIG_FILE
    if not path.is_file():
        return ProjectConfig(None)
    tomllib = _toml()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(_("{path}: not valid TOML: {problem}").format(path=path, problem=exc)) from None
    _check_names(path, data)
    remote = None
    section = data.get("remote", {})
    if "url" in section:
        url, options = section["url"], section.get("options", {})
        if not isinstance(url, str) or not url:
            raise UsageError(_('{path}: remote.url must be a non-empty string, e.g. "s3://bucket/kolorsc"').format(path=path))
        if not isinstance(options, dict):
            raise UsageError(_("{path}: remote.options must be a table ([remote.options])").format(path=path))
        remote = RemoteConfig(url, dict(options), str(path))
    elif "options" in section:
        raise UsageError(_("{path}: [remote.options] without remote.url").format(path=path))
    pub = data.get("publish", {})
    owner, private = pub.get("owner"), pub.get("private", False)
    if owner is not None and (not isinstance(owner, str) or not owner):
        raise UsageError(_("{path}: publish.owner must be a ModelScope user or organisation name").format(path=path))
    if not isinstance(private, bool):
        raise UsageError(_("{path}: publish.private must be true or false").format(path=path))
    return ProjectConfig(path, remote, PublishConfig(owner, private))


def _check_names(path: Path, data: dict) -> None:
    import difflib

    for name, value in data.items():
        if name not in _SECTIONS:
            close = difflib.get_close_matches(name, list(_SECTIONS), n=1)
            hint = f" (did you mean [{close[0]}]?)" if close else f" (known: {', '.join(_SECTIONS)})"
            raise UsageError(_("{path}: unknown section [{name}]{hint}").format(path=path, name=name, hint=hint))
        if not isinstance(value, dict):
            raise UsageError(_("{path}: {name} must be a table ([{name2}])").format(path=path, name=name, name2=name))
        for key in value:
            if key not in _SECTIONS[name]:
                raise UsageError(_("{path}: unknown setting {name}.{key} (known: {sections})").format(
                                   path=path, name=name, key=key, sections=', '.join(_SECTIONS[name])))


def resolve_remote(url: str | None, root: Path | None) -> RemoteConfig | None:
    """The remote a command uses (see the module docstring), or None when none is configured."""
    config = read_config(root) if root is not None else ProjectConfig(None)
    options = config.remote.options if config.remote else {}
    if url:
        return RemoteConfig(url, options, "--remote")
    if os.environ.get(REMOTE_ENV):
        return RemoteConfig(os.environ[REMOTE_ENV], options, f"${REMOTE_ENV}")
    return config.remote
