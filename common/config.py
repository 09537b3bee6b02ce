"""Where settings come from: options, then the environment, then a config file, then defaults.

- options: what the CLI (or a caller of ``resolve``) was given;
- environment: ``BIFROST_*`` for the gateway, ``BATCHLAKE_*`` for the rest (``ENV_NAMES``);
- a config file: ``--config FILE`` (or ``BATCHLAKE_CONFIG``), else ``batchlake.toml`` in the
  working directory, else ``[tool.batchlake]`` in its ``pyproject.toml``; keys are the
  options' names at top level (``db = "…"``, ``providers = ["openai", "gemini"]``);
- the defaults of ``Settings``.

pydantic-settings reads the environment and the file and validates every value; each source
is also read on its own so that ``batchlake config`` can say where each setting came from, and
a bad value is one line naming the setting and its source. Secrets are ``SecretStr`` here and
never appear in a repr, a log line or an error.
"""

from __future__ import annotations

import os
import tomllib
import warnings
from contextvars import ContextVar
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    PyprojectTomlConfigSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from batchlake.common.errors import ConfigError
from batchlake.common.settings import (
    Auth,
    Settings,
    check_base_url,
    parse_providers,
    redact_url,
)

# setting (the option's name) -> environment variable
ENV_NAMES: dict[str, str] = {
    "base_url": "BIFROST_BASE_URL",
    "api_key": "BIFROST_API_KEY",
    "api_key_header": "BIFROST_API_KEY_HEADER",
    "basic_user": "BIFROST_BASIC_USER",
    "basic_password": "BIFROST_BASIC_PASSWORD",
    "db": "BATCHLAKE_DB",
    "providers": "BATCHLAKE_PROVIDERS",
    "prices": "BATCHLAKE_PRICES",
    "prices_only": "BATCHLAKE_PRICES_ONLY",
    "max_retries": "BATCHLAKE_MAX_RETRIES",
    "backoff_base_s": "BATCHLAKE_BACKOFF_BASE_S",
    "timeout": "BATCHLAKE_TIMEOUT_S",
    "lock_timeout": "BATCHLAKE_LOCK_TIMEOUT_S",
    "page_limit": "BATCHLAKE_PAGE_LIMIT",
    "chunk_size": "BATCHLAKE_CHUNK_SIZE",
    "concurrency": "BATCHLAKE_CONCURRENCY",
    "max_inflight": "BATCHLAKE_MAX_INFLIGHT",
    "store_raw": "BATCHLAKE_STORE_RAW",
    "store_result_bodies": "BATCHLAKE_STORE_RESULT_BODIES",
    "results": "BATCHLAKE_RESULTS",
    "results_limit": "BATCHLAKE_RESULTS_LIMIT",
    "results_budget": "BATCHLAKE_RESULTS_BUDGET_S",
    "publish": "BATCHLAKE_PUBLISH",
    "publish_storage_version": "BATCHLAKE_PUBLISH_STORAGE_VERSION",
    "insecure": "BATCHLAKE_INSECURE",
    "poll_interval": "BATCHLAKE_POLL_INTERVAL_S",
    "admin_user": "BIFROST_ADMIN_USER",
    "admin_password": "BIFROST_ADMIN_PASSWORD",
    "reconcile_tolerance_pct": "BATCHLAKE_RECONCILE_TOLERANCE_PCT",
    "reconcile_tolerance_usd": "BATCHLAKE_RECONCILE_TOLERANCE_USD",
}
SECRETS = ("api_key", "basic_password", "admin_password")
CONFIG_FILE = "batchlake.toml"
# option name -> Settings field, where they differ
_FIELD = {"db": "db_path", "timeout": "timeout_s", "lock_timeout": "lock_timeout_s",
          "publish": "publish_path", "poll_interval": "poll_interval_s",
          "results_budget": "results_budget_s"}


def _f(name: str, doc: str) -> Any:
    return Field(None, validation_alias=AliasChoices(name, ENV_NAMES[name]), description=doc)


class ConfigValues(BaseSettings):
    """Every setting batchlake reads from the environment or a config file (all optional:
    what is not set falls through to the next source)."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="forbid",
                                      populate_by_name=True,
                                      pyproject_toml_table_header=("tool", "batchlake"))

    base_url: str | None = _f("base_url", "Gateway URL.")
    api_key: SecretStr | None = _f("api_key", "Gateway key, sent as Bearer.")
    api_key_header: str | None = _f("api_key_header", "Send the key in this header.")
    basic_user: str | None = _f("basic_user", "Basic auth user.")
    basic_password: SecretStr | None = _f("basic_password", "Basic auth password.")
    db: str | None = _f("db", "DuckDB file (or md:NAME).")
    providers: Annotated[list[str] | str | None, NoDecode] = _f(
        "providers", "Providers, a list or comma-separated.")
    prices: str | None = _f("prices", "Prices CSV.")
    prices_only: bool | None = _f("prices_only", "Price from the prices file alone.")
    max_retries: int | None = Field(None, ge=0, le=100, validation_alias=AliasChoices(
        "max_retries", ENV_NAMES["max_retries"]))
    backoff_base_s: float | None = Field(None, ge=0, validation_alias=AliasChoices(
        "backoff_base_s", ENV_NAMES["backoff_base_s"]))
    timeout: float | None = Field(None, gt=0, validation_alias=AliasChoices(
        "timeout", ENV_NAMES["timeout"]))
    lock_timeout: float | None = Field(None, ge=0, validation_alias=AliasChoices(
        "lock_timeout", ENV_NAMES["lock_timeout"]))
    page_limit: int | None = Field(None, ge=1, le=10_000, validation_alias=AliasChoices(
        "page_limit", ENV_NAMES["page_limit"]))
    chunk_size: int | None = Field(None, ge=1, validation_alias=AliasChoices(
        "chunk_size", ENV_NAMES["chunk_size"]))
    concurrency: int | None = Field(None, ge=1, le=256, validation_alias=AliasChoices(
        "concurrency", ENV_NAMES["concurrency"]),
        description="Requests in flight at the start (the adaptive window's first size).")
    max_inflight: int | None = Field(None, ge=1, le=256, validation_alias=AliasChoices(
        "max_inflight", ENV_NAMES["max_inflight"]),
        description="At most this many results/by-id requests in flight (1-256).")
    store_raw: bool | None = _f("store_raw", "Keep raw payloads (redacted).")
    store_result_bodies: bool | None = _f("store_result_bodies", "Keep result bodies.")
    results: bool | None = _f("results", "Read finished batches' results.")
    results_limit: int | None = Field(None, ge=1, validation_alias=AliasChoices(
        "results_limit", ENV_NAMES["results_limit"]))
    results_budget: float | None = Field(None, ge=0, validation_alias=AliasChoices(
        "results_budget", ENV_NAMES["results_budget"]))
    publish: str | None = _f("publish", "Publish a read-only snapshot here.")
    publish_storage_version: str | None = _f("publish_storage_version",
                                             "DuckDB storage format of the snapshot.")
    insecure: bool | None = _f("insecure", "Do not verify TLS certificates.")
    poll_interval: float | None = Field(None, gt=0, validation_alias=AliasChoices(
        "poll_interval", ENV_NAMES["poll_interval"]))
    admin_user: str | None = _f("admin_user", "Bifrost admin user, for /api/* (Basic auth).")
    admin_password: SecretStr | None = _f("admin_password", "Bifrost admin password.")
    reconcile_tolerance_pct: float | None = Field(None, ge=0, validation_alias=AliasChoices(
        "reconcile_tolerance_pct", ENV_NAMES["reconcile_tolerance_pct"]))
    reconcile_tolerance_usd: float | None = Field(None, ge=0, validation_alias=AliasChoices(
        "reconcile_tolerance_usd", ENV_NAMES["reconcile_tolerance_usd"]))

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        # options (init), then the environment, then the config file, then the defaults
        sources: tuple[PydanticBaseSettingsSource, ...] = (init_settings, env_settings)
        file = _FILE.get()
        if file is not None:
            sources += (_file_source(settings_cls, *file),)
        _SOURCES.set(sources)
        return sources


# The config file of the resolve() under way, and the sources pydantic-settings used (read
# again one by one to tell where each setting came from).
_FILE: ContextVar[tuple[Path, tuple[str, ...] | None] | None] = ContextVar("file", default=None)
_SOURCES: ContextVar[tuple[PydanticBaseSettingsSource, ...]] = ContextVar("sources",
                                                                         default=())


def _file_source(settings_cls: type[BaseSettings], path: Path, table: tuple[str, ...] | None
                 ) -> PydanticBaseSettingsSource:
    if table:
        return PyprojectTomlConfigSettingsSource(settings_cls, toml_file=path)
    return TomlConfigSettingsSource(settings_cls, toml_file=path)


@dataclass(frozen=True)
class Resolved:
    """The settings in force and, per setting, where its value came from."""

    settings: Settings
    sources: dict[str, str]
    config_file: str | None

    def rows(self) -> list[dict[str, str]]:
        """What ``batchlake config`` prints: setting, value (secrets masked), source."""
        s = self.settings
        shown = {
            "base_url": redact_url(s.base_url), "db": s.db_path,
            "providers": ",".join(s.providers), "api_key": _mask(s.auth.api_key),
            "api_key_header": s.auth.header_name or "", "basic_user": s.auth.basic_user or "",
            "basic_password": _mask(s.auth.basic_password), "prices": s.prices or "",
            "prices_only": str(s.prices_only).lower(), "max_retries": str(s.max_retries),
            "backoff_base_s": f"{s.backoff_base_s:g}", "timeout": f"{s.timeout_s:g}",
            "lock_timeout": f"{s.lock_timeout_s:g}", "page_limit": str(s.page_limit),
            "chunk_size": str(s.chunk_size), "concurrency": str(s.concurrency),
            "max_inflight": str(s.max_inflight),
            "store_raw": str(s.store_raw).lower(),
            "store_result_bodies": str(s.store_result_bodies).lower(),
            "results": str(s.results).lower(),
            "results_limit": "" if s.results_limit is None else str(s.results_limit),
            "results_budget": f"{s.results_budget_s:g}",
            "publish": s.publish_path or "",
            "publish_storage_version": s.publish_storage_version or "",
            "insecure": str(not s.verify_tls).lower(),
            "poll_interval": f"{s.poll_interval_s:g}",
            "admin_user": s.auth.admin_user or "",
            "admin_password": _mask(s.auth.admin_password),
            "reconcile_tolerance_pct": f"{s.reconcile_tolerance_pct:g}",
            "reconcile_tolerance_usd": f"{s.reconcile_tolerance_usd:g}",
        }
        return [{"setting": k, "value": v, "source": self.sources.get(k, "default")}
                for k, v in shown.items()]


def _mask(secret: str | None) -> str:
    return "" if not secret else "********"


def _config_file(config_file: str | None, cwd: Path
                 ) -> tuple[Path, tuple[str, ...] | None, str] | None:
    """(path, table, name) of the config file: the given one, else batchlake.toml in
    ``cwd``, else pyproject.toml's [tool.batchlake] there; None when there is none."""
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"config file {config_file} does not exist; pass --config with "
                              "a TOML file or drop the option")
        _check_toml(path, None)
        return path, None, str(path)
    path = cwd / CONFIG_FILE
    if path.is_file():
        _check_toml(path, None)
        return path, None, CONFIG_FILE
    path = cwd / "pyproject.toml"
    try:
        if path.is_file() and _check_toml(path, ("tool", "batchlake")):
            return path, ("tool", "batchlake"), "pyproject.toml [tool.batchlake]"
    except ConfigError:
        pass  # a project's own pyproject.toml that does not parse is not ours to refuse
    return None


def _check_toml(path: Path, table: tuple[str, ...] | None) -> bool:
    """One line for a file that is not TOML; True when it holds the table."""
    try:
        data: Any = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read the config file {path}: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
    for key in table or ():
        data = data.get(key) if isinstance(data, dict) else None
    return isinstance(data, dict)


def resolve(options: dict[str, Any] | None = None, *, config_file: str | None = None,
            cwd: Path | None = None) -> Resolved:
    """The settings in force. ``options`` holds the options given (None = not given), keyed
    by option name (``db``, ``base_url``, ``providers``, …)."""
    given = {k: v for k, v in (options or {}).items() if v is not None}
    unknown = set(given) - set(ConfigValues.model_fields)
    if unknown:
        raise ConfigError(f"unknown setting {sorted(unknown)[0]!r}")
    found = _config_file(config_file or os.environ.get("BATCHLAKE_CONFIG") or None,
                         cwd or Path.cwd())
    file_name = found[2] if found else None
    token = _FILE.set((found[0], found[1]) if found else None)
    try:
        try:
            with warnings.catch_warnings():
                # the [tool.batchlake] header is configured for when a pyproject.toml is the
                # file; without one pydantic-settings warns that the key is unused
                warnings.filterwarnings("ignore", message=".*pyproject_toml_table_header")
                values = ConfigValues(**given)
            error = None
        except ValidationError as e:
            values, error = None, e
        labels = ["option", "environment", f"file {file_name}"]
        sources: dict[str, str] = {}
        for label, source in zip(labels, _SOURCES.get(), strict=False):
            for key in source():
                if key in sources or key not in ConfigValues.model_fields:
                    continue
                sources[key] = (f"option --{key.replace('_', '-')}" if label == "option"
                                else f"env {ENV_NAMES[key]}" if label == "environment"
                                else label)
    finally:
        _FILE.reset(token)
    if error is not None:
        err = error.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else "?"
        where = sources.get(key, f"file {file_name}")
        if err["type"] == "extra_forbidden":
            raise ConfigError(f"unknown setting {key!r} in {where}; the settings are "
                              f"{', '.join(sorted(ConfigValues.model_fields))}") from None
        shown = "****" if key in SECRETS else repr(err.get("input"))[:60]
        raise ConfigError(f"setting {key} from {where} is not valid ({err['msg']}): "
                          f"{shown}") from None
    assert values is not None
    return Resolved(_build(values, sources), sources, file_name)


# Settings _build makes something of (checked, parsed, or gathered into Auth); every other
# setting is handed to Settings as it is, under its field name (_FIELD).
_BUILT = frozenset({"base_url", "api_key", "api_key_header", "basic_user", "basic_password",
                    "admin_user", "admin_password", "providers", "insecure"})


def _build(v: ConfigValues, sources: dict[str, str]) -> Settings:
    kw: dict[str, Any] = {}
    for name in ConfigValues.model_fields:
        if name in _BUILT:
            continue
        value = getattr(v, name)
        if value is not None:
            kw[_FIELD.get(name, name)] = value
    if v.insecure is not None:
        kw["verify_tls"] = not v.insecure
    if v.providers is not None:
        try:
            kw["providers"] = parse_providers(v.providers)
        except ConfigError as e:
            raise ConfigError(f"{e} (setting providers from {sources['providers']})") from None
    url_auth = None
    if v.base_url is not None:
        try:
            kw["base_url"], url_auth = check_base_url(v.base_url)
        except ConfigError as e:
            raise ConfigError(f"{e} (setting base_url from {sources['base_url']})") from None
    key = v.api_key.get_secret_value() if v.api_key else None
    pw = v.basic_password.get_secret_value() if v.basic_password else None
    if key or v.basic_user is not None:
        kw["auth"] = Auth(api_key=key or None, header_name=v.api_key_header or None,
                          basic_user=v.basic_user, basic_password=pw)
    elif url_auth is not None:
        kw["auth"] = url_auth
    if v.admin_user is not None or v.admin_password is not None:
        kw["auth"] = replace(kw.get("auth") or Auth(), admin_user=v.admin_user,
                             admin_password=v.admin_password.get_secret_value()
                             if v.admin_password else None)
    known = {f.name for f in fields(Settings)}
    return Settings(**{k: val for k, val in kw.items() if k in known})


def from_env(**overrides: object) -> Settings:
    """Settings from the environment and the config file (common/config.py), then
    ``overrides`` (``Settings`` field names; None = not given) on top."""
    values: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    if "base_url" in values:
        values["base_url"], url_auth = check_base_url(str(values["base_url"]))
        if url_auth is not None and "auth" not in values:
            values["auth"] = url_auth
    return replace(resolve().settings, **values)
