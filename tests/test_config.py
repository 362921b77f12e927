"""kolorsc.toml: what it may hold, what a bad one says, and which remote wins."""

from __future__ import annotations

import pytest

from kolorsc.config import read_config, resolve_remote
from kolorsc.errors import UsageError
from kolorsc.spec.loader import find_project_root


def write(root, text):
    (root / "kolorsc.toml").write_text(text, encoding="utf-8")


def test_a_full_config_and_the_project_root_it_marks(tmp_path):
    write(tmp_path, '[remote]\nurl = "oss://bucket/x"\n[remote.options]\nendpoint = "oss-cn-hangzhou.aliyuncs.com"\n'
                    '[publish]\nowner = "my-team"\nprivate = true\n')
    (tmp_path / "deep" / "stories").mkdir(parents=True)
    assert find_project_root(tmp_path / "deep" / "stories" / "s.yaml") == tmp_path.resolve()
    config = read_config(tmp_path)
    assert config.remote.url == "oss://bucket/x" and config.remote.options == {"endpoint": "oss-cn-hangzhou.aliyuncs.com"}
    assert config.publish.owner == "my-team" and config.publish.private is True
    assert read_config(tmp_path / "deep").path is None  # no file: an empty config


@pytest.mark.parametrize("text, message", [
    ('[remote\nurl = "s3://b"', "not valid TOML"),
    ('[remote]\nurl = 3\n', "remote.url must be a non-empty string"),
    ('[remote]\nurll = "s3://b"\n', "unknown setting remote.urll (known: url, options)"),
    ('[remote.options]\nendpoint_url = "http://x"\n', "[remote.options] without remote.url"),
    ('[publish]\nowner = ""\n', "publish.owner must be"),
    ('[publish]\nprivate = "yes"\n', "publish.private must be true or false"),
    ('remote = "s3://b"\n', "remote must be a table"),
])
def test_bad_configs_name_the_file_and_the_problem(tmp_path, text, message):
    write(tmp_path, text)
    with pytest.raises(UsageError) as info:
        read_config(tmp_path)
    assert str(info.value).startswith(f"{tmp_path / 'kolorsc.toml'}: ") and message in str(info.value)


def test_which_remote_wins(tmp_path, monkeypatch):
    monkeypatch.delenv("KOLORSC_REMOTE", raising=False)
    assert resolve_remote(None, tmp_path) is None
    write(tmp_path, '[remote]\nurl = "s3://from-file/x"\n[remote.options]\nendpoint_url = "http://e"\n')
    assert resolve_remote(None, tmp_path).url == "s3://from-file/x"
    monkeypatch.setenv("KOLORSC_REMOTE", "s3://from-env/x")
    got = resolve_remote(None, tmp_path)
    assert (got.url, got.source, got.options) == ("s3://from-env/x", "$KOLORSC_REMOTE", {"endpoint_url": "http://e"})
    got = resolve_remote("file:///srv/cache", tmp_path)
    assert (got.url, got.source) == ("file:///srv/cache", "--remote")
