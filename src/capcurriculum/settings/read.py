"""Typed reads of one key of the composed config, for the settings' `from_config`: a key absent from the
config is an error naming it, never a default. A key that some profiles leave unset is set to null in them (or
in conf/config.yaml), so the choice is written where a user reads the profile."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from capcurriculum.settings.choices import ConfigError, check_choice

_ABSENT = object()


def present(cfg: DictConfig, key: str) -> Any:
    """cfg's value at the dotted `key`, null included, as plain Python; absent is a ConfigError naming the key."""
    value = OmegaConf.select(cfg, key, throw_on_missing=False, default=_ABSENT)
    if value is _ABSENT:
        raise ConfigError(key, "missing: set it in conf/config.yaml or the profile (null where it is unused)")
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig | ListConfig) else value


def integer(cfg: DictConfig, key: str, *, minimum: int, nullable: bool = False, null_means: str = "") -> int | None:
    """An integer >= minimum (or null where `nullable`; `null_means` says what null does, for the message)."""
    value = present(cfg, key)
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        null = f" or null ({null_means})" if nullable else ""
        raise ConfigError(key, f"expected an integer >= {minimum}{null}, got {value!r}")
    return value


def number(cfg: DictConfig, key: str, *, minimum: float, maximum: float | None = None,
           exclusive_minimum: bool = False) -> float:
    """A real number in [minimum, maximum] ((minimum, maximum] where `exclusive_minimum`); an int is taken too."""
    value = present(cfg, key)
    low_ok = isinstance(value, int | float) and not isinstance(value, bool) and (
        value > minimum if exclusive_minimum else value >= minimum)
    if not low_ok or (maximum is not None and value > maximum):
        low = f"> {minimum}" if exclusive_minimum else f">= {minimum}"
        high = f" and <= {maximum}" if maximum is not None else ""
        raise ConfigError(key, f"expected a number {low}{high}, got {value!r}")
    return float(value)


def boolean(cfg: DictConfig, key: str) -> bool:
    value = present(cfg, key)
    if not isinstance(value, bool):
        raise ConfigError(key, f"expected true or false, got {value!r}")
    return value


def choice(cfg: DictConfig, key: str, allowed: tuple[str, ...]) -> str:
    return check_choice(key, present(cfg, key), allowed)


def mapping(cfg: DictConfig, key: str, *, nullable: bool = False) -> dict[str, Any] | None:
    value = present(cfg, key)
    if value is None and nullable:
        return None
    if not isinstance(value, dict):
        raise ConfigError(key, f"expected a mapping{' or null' if nullable else ''}, got {value!r}")
    return value


def string(cfg: DictConfig, key: str, *, nullable: bool = False) -> str | None:
    value = present(cfg, key)
    if value is None and nullable:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(key, f"expected a non-empty string{' or null' if nullable else ''}, got {value!r}")
    return value
