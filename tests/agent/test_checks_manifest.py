"""Check manifests and the directory rules: what runs, with which settings, and what is refused."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubensage_agent.checks.directory import Refused, fingerprint, refusal, scan
from kubensage_agent.checks.manifest import (
    CheckDefaults,
    CheckSpec,
    ManifestError,
    parse_manifest,
)
from kubensage_common.checkrules import is_check_name
from tests.conftest import require
from tests.support.checks import CheckDir

DEFAULTS = CheckDefaults(interval_seconds=30, timeout_seconds=5)
PATH = Path("/etc/kubensage/checks.d/ntp")


def test_no_manifest_gives_the_defaults_as_nobody() -> None:
    spec = parse_manifest(None, "ntp", PATH, DEFAULTS)
    assert (spec.interval_seconds, spec.timeout_seconds, spec.args, spec.enabled) == (
        30,
        5,
        (),
        True,
    )
    assert spec.account.name == "nobody" and spec.account.uid != 0


def test_manifest_sets_interval_timeout_args_user_and_enabled() -> None:
    spec = parse_manifest(
        "interval: 120\ntimeout: 2.5\nargs: [--warn, 80, '--path=/var']\nuser: root\n"
        "enabled: false\n",
        "disk",
        PATH,
        DEFAULTS,
    )
    assert spec.interval_seconds == 120 and spec.timeout_seconds == 2.5
    assert spec.args == ("--warn", "80", "--path=/var")
    assert spec.account.is_root and spec.enabled is False


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("interval: 0.1", "outside"),
        ("interval: fast", "number of seconds"),
        ("timeout: -1", "positive"),
        ("timeout: .nan", "positive"),
        ("timeout: 99999", "over"),
        ("args: --warn", "list"),
        ("args: [[nested]]", "strings or numbers"),
        ("user: no-such-account-here", "does not exist"),
        ("enabled: maybe", "true or false"),
        ("command: rm -rf /", "unknown manifest keys: command"),
        ("- just\n- a list", "mapping"),
        ("interval: [", "not valid YAML"),
    ],
)
def test_bad_manifests_are_refused_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        parse_manifest(text, "ntp", PATH, DEFAULTS)


def test_relay_overrides_change_only_enabled_and_interval() -> None:
    spec = parse_manifest("args: [x]\ninterval: 10", "ntp", PATH, DEFAULTS)
    changed = spec.with_override(False, 60.0)
    assert (changed.enabled, changed.interval_seconds) == (False, 60.0)
    assert (changed.path, changed.args, changed.account) == (spec.path, spec.args, spec.account)
    assert spec.with_override(None, None) == spec


def test_check_names_are_short_plain_label_values() -> None:
    assert is_check_name("ntp") and is_check_name("disk-rw_2.sh")
    for bad in ("", ".hidden", "ntp.yaml", "a b", "<script>", "x" * 64, "-dash"):
        assert not is_check_name(bad), bad


@pytest.fixture
def checks() -> Iterator[CheckDir]:
    require(os.geteuid() == 0, "check ownership rules need root-owned files")
    with CheckDir() as folder:
        yield folder


def test_scan_finds_executables_pairs_manifests_and_skips_the_rest(checks: CheckDir) -> None:
    checks.script("ok", "exit 0", manifest="interval: 15\n")
    checks.script("plain", "exit 0")
    checks.script("bad-manifest", "exit 0", manifest="interval: soon\n")
    (checks.path / "README").write_text("not a check")
    (checks.path / "notes.yaml").write_text("interval: 1")
    checks.script("has space", "exit 0")
    (checks.path / "subdir").mkdir()
    found = scan(checks.path, DEFAULTS)
    assert sorted(found.checks) == ["bad-manifest", "ok", "plain"]
    ok, plain, bad = found.checks["ok"], found.checks["plain"], found.checks["bad-manifest"]
    assert isinstance(ok, CheckSpec) and ok.interval_seconds == 15
    assert isinstance(plain, CheckSpec) and plain.interval_seconds == 30
    assert isinstance(bad, Refused) and "manifest of bad-manifest" in bad.reason
    assert "has space" in found.ignored


def test_group_writable_foreign_owned_and_untrusted_manifests_are_refused(
    checks: CheckDir,
) -> None:
    checks.script("writable", "exit 0", mode=0o775)
    foreign = checks.script("foreign", "exit 0")
    os.chown(foreign, 65534, 65534)
    checks.script("sneaky", "exit 0", manifest="user: root\n")
    (checks.path / "sneaky.yaml").chmod(0o666)
    found = scan(checks.path, DEFAULTS)
    reasons = {name: getattr(entry, "reason", "") for name, entry in found.checks.items()}
    assert "writable by group or others (mode 0775)" in reasons["writable"]
    assert "owned by uid 65534, not root" in reasons["foreign"]
    assert "sneaky.yaml is writable by group or others" in reasons["sneaky"]
    assert refusal(checks.path / "writable") == reasons["writable"]


def test_a_group_writable_directory_refuses_every_check(checks: CheckDir) -> None:
    checks.script("ok", "exit 0")
    checks.path.chmod(0o775)
    found = scan(checks.path, DEFAULTS)
    entry = found.checks["ok"]
    assert isinstance(entry, Refused) and "check directory" in entry.reason
    assert refusal(checks.path / "ok") == entry.reason


def test_fingerprint_changes_on_add_edit_chmod_and_remove(checks: CheckDir) -> None:
    seen = [fingerprint(checks.path)]
    script = checks.script("ok", "exit 0")
    seen.append(fingerprint(checks.path))
    script.chmod(0o775)
    seen.append(fingerprint(checks.path))
    (checks.path / "ok.yaml").write_text("interval: 5\n")
    seen.append(fingerprint(checks.path))
    script.unlink()
    seen.append(fingerprint(checks.path))
    assert len(set(seen)) == len(seen)
    assert fingerprint(checks.path) == seen[-1]


def test_a_missing_directory_has_no_checks(tmp_path: Path) -> None:
    assert scan(tmp_path / "absent", DEFAULTS).checks == {}
