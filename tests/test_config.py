"""Settings from options, environment, a config file and defaults, in that order: each
setting says where it came from, secrets never show, a bad value is one line naming it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from batchlake.common import ConfigError, resolve
from tests.cli_runner import invoke  # in process, from a folder: the config file is read there
from tests.conftest import ROOT, run_cli

SECRET = "sk-bf-config-canary-42"


def test_options_beat_the_environment_which_beats_the_file(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    (tmp_path / "batchlake.toml").write_text(
        'db = "file.duckdb"\nproviders = ["openai", "gemini"]\ntimeout = 5\n'
        'base_url = "http://file:1"\nprices_only = true\nprices = "p.csv"\n')
    monkeypatch.setenv("BATCHLAKE_PROVIDERS", "anthropic,azure")
    monkeypatch.setenv("BIFROST_BASE_URL", "http://env:2")
    r = resolve({"base_url": "http://option:3", "page_limit": 7}, cwd=tmp_path)
    s = r.settings
    assert (s.db_path, s.providers, s.timeout_s, s.base_url, s.page_limit, s.prices_only) == (
        "file.duckdb", ("anthropic", "azure"), 5.0, "http://option:3", 7, True)
    assert r.sources == {"db": "file batchlake.toml", "providers": "env BATCHLAKE_PROVIDERS",
                         "timeout": "file batchlake.toml", "base_url": "option --base-url",
                         "page_limit": "option --page-limit",
                         "prices_only": "file batchlake.toml", "prices": "file batchlake.toml"}
    assert {row["setting"]: row["source"] for row in r.rows()}["chunk_size"] == "default"


def test_pyproject_tool_table_and_an_explicit_file(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.batchlake]\n'
                                             'db = "py.duckdb"\n')
    r = resolve({}, cwd=tmp_path)
    assert r.settings.db_path == "py.duckdb" and r.config_file == "pyproject.toml " \
        "[tool.batchlake]"
    other = tmp_path / "prod.toml"
    other.write_text('db = "prod.duckdb"\n')
    assert resolve({}, cwd=tmp_path, config_file=str(other)).settings.db_path == "prod.duckdb"
    assert resolve({}, cwd=tmp_path / "..").settings.db_path == "data/batchlake.duckdb"
    # someone else's pyproject.toml that does not parse is ignored, not a batchlake error
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "pyproject.toml").write_text("[project\n")
    assert resolve({}, cwd=broken).config_file is None


@pytest.mark.parametrize(("file", "env", "needle"), [
    ('timeout = "soon"\n', {}, "setting timeout from file batchlake.toml is not valid"),
    ('dbb = "x"\n', {}, "unknown setting 'dbb' in file batchlake.toml"),
    ("db = \n", {}, "is not valid TOML"),
    ("", {"BATCHLAKE_MAX_RETRIES": "lots"}, "setting max_retries from env BATCHLAKE_MAX_RETRIES"),
    ("", {"BATCHLAKE_PAGE_LIMIT": "0"}, "setting page_limit from env BATCHLAKE_PAGE_LIMIT"),
    ('providers = ["open ai"]\n', {}, "provider name 'open ai' is not valid"),
    ('base_url = "ftp://x"\n', {}, "from file batchlake.toml"),
])
def test_a_bad_value_is_one_line_naming_the_setting_and_its_source(
        tmp_path: Path, file: str, env: dict[str, str], needle: str) -> None:
    (tmp_path / "batchlake.toml").write_text(file)
    res = invoke("sync", cwd=tmp_path, env=env)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], lines


def test_batchlake_config_shows_where_each_setting_came_from_secrets_masked(
        tmp_path: Path) -> None:
    (tmp_path / "batchlake.toml").write_text(f'db = "lake.duckdb"\napi_key = "{SECRET}"\n')
    res = invoke("config", "--format", "csv", cwd=tmp_path,
              env={"BATCHLAKE_PROVIDERS": "openai", "BIFROST_BASIC_PASSWORD": SECRET + "pw"})
    assert res.returncode == 0, res.stderr
    rows = {line.split(",")[0]: line.split(",")[1:] for line in res.stdout.splitlines()[1:]}
    assert rows["db"] == ["lake.duckdb", "file batchlake.toml"]
    assert rows["providers"] == ["openai", "env BATCHLAKE_PROVIDERS"]
    assert rows["api_key"] == ["********", "file batchlake.toml"]
    assert rows["basic_password"] == ["********", "env BIFROST_BASIC_PASSWORD"]
    assert rows["page_limit"] == ["100", "default"]
    assert SECRET not in res.stdout + res.stderr
    missing = invoke("--config", "nope.toml", "config", cwd=tmp_path)
    assert missing.returncode == 2 and "config file nope.toml does not exist" in missing.stderr


def test_secrets_never_show_in_errors_or_reprs(tmp_path: Path) -> None:
    (tmp_path / "batchlake.toml").write_text('api_key = 42\n')
    with pytest.raises(ConfigError) as e:
        resolve({}, cwd=tmp_path)
    assert "42" not in str(e.value) and "api_key" in str(e.value)
    (tmp_path / "batchlake.toml").write_text(f'api_key = "{SECRET}"\n')
    s = resolve({}, cwd=tmp_path).settings
    assert s.auth.api_key == SECRET and SECRET not in repr(s) and SECRET not in str(s.auth)


def test_version_and_the_gateway_says_the_port_it_bound() -> None:
    res = run_cli("--version")
    assert res.returncode == 0 and res.stdout.startswith("batchlake 0.")
    proc = subprocess.Popen([sys.executable, "-m", "batchlake", "gateway", "--port", "0",
                             "--batches", "10"], stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "http://127.0.0.1:" in line and ":0 " not in line and ":0/" not in line
        port = int(line.split("http://127.0.0.1:")[1].split()[0])
        import httpx
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
