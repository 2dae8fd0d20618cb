"""Check overrides the relay pushes: parsed from flags, sent as the whole list."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from relay import cli as relay_cli
from relay.agentsettings import agent_settings, parse_check_override
from relay.app import RelayConfig
from relay.cli import cli


def test_overrides_parse_enabled_and_interval() -> None:
    off = parse_check_override("ntp:enabled=false")
    assert off.name == "ntp" and off.enabled is False and not off.HasField("interval_seconds")
    both = parse_check_override("disk-rw:interval=300, enabled=TRUE")
    assert (both.enabled, both.interval_seconds) == (True, 300)


@pytest.mark.parametrize(
    "text",
    [
        "ntp",
        "ntp:",
        ":enabled=false",
        "<b>:enabled=false",
        "ntp:enabled=maybe",
        "ntp:interval=0.5",
        "ntp:interval=soon",
        "ntp:command=/bin/sh",
    ],
)
def test_bad_overrides_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=repr(text)):
        parse_check_override(text)


def test_settings_hold_the_whole_list_merged_by_name() -> None:
    settings = agent_settings(
        0,
        [
            parse_check_override("ntp:enabled=false"),
            parse_check_override("disk:interval=60"),
            parse_check_override("ntp:interval=30"),
        ],
    )
    assert settings.checks_replace and settings.interval_seconds == 0
    assert [(c.name, c.HasField("enabled"), c.interval_seconds) for c in settings.checks] == [
        ("disk", False, 60),
        ("ntp", True, 30),
    ]
    assert not agent_settings(0, []).checks and agent_settings(0, []).checks_replace


def test_the_cli_refuses_a_bad_override_with_a_clear_message() -> None:
    result = CliRunner().invoke(
        cli, ["serve", "--check-override", "ntp:run=/bin/sh", "--listen-address", "127.0.0.1:0"]
    )
    assert result.exit_code == 2 and "unknown setting" in result.output


def test_overrides_come_from_the_config_file_and_the_environment_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[RelayConfig] = []
    monkeypatch.setattr(relay_cli, "serve", lambda config, *_: served.append(config))
    monkeypatch.setattr(relay_cli.asyncio, "run", lambda coroutine: None)
    config = tmp_path / "relay.yaml"
    config.write_text("check-override:\n  - ntp:enabled=false\n  - disk:interval=300\n")
    base = ["serve", "--listen-address", "127.0.0.1:0"]
    assert CliRunner().invoke(cli, [*base, "--config", str(config)]).exit_code == 0
    environment = {"KUBENSAGE_CHECK_OVERRIDE": "mirror:enabled=true"}
    assert CliRunner().invoke(cli, base, env=environment).exit_code == 0
    from_file, from_env = (config.check_overrides for config in served)
    assert [(o.name, o.HasField("enabled")) for o in from_file] == [("ntp", True), ("disk", False)]
    assert [(o.name, o.enabled) for o in from_env] == [("mirror", True)]
