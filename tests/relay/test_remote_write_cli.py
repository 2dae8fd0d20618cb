"""The remote-write flags of `kubensage-relay serve`: per-URL settings and refused combinations."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from relay.cli import export_config, serve_command


def params(*args: str) -> dict[str, object]:
    return serve_command.make_context("serve", list(args)).params


def test_a_receiver_flag_given_once_applies_to_every_url(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t\n")
    config = export_config(
        params(
            "--remote-write-url=http://a:8428/api/v1/write",
            "--remote-write-url=https://b/api/v1/push",
            f"--remote-write-bearer-token-file={token}",
            "--remote-write-tls-server-name=b.internal",
            "--remote-write-tls-server-name=b.internal",
            "--external-label=cluster=prod",
            "--remote-write-shards=2",
        )
    )
    assert config is not None
    assert [r.bearer_token_file for r in config.receivers] == [str(token)] * 2
    assert [r.tls_server_name for r in config.receivers] == ["b.internal"] * 2
    assert dict(config.external_labels) == {"cluster": "prod"}
    assert config.shards == 2 and config.queue_dir is None


def test_no_url_means_no_remote_write() -> None:
    assert export_config(params()) is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--external-label=cluster=prod"], "without --remote-write-url"),
        (
            [
                "--remote-write-url=http://a/w",
                "--remote-write-url=http://b/w",
                "--remote-write-url=http://c/w",
                "--remote-write-basic-auth-username=x",
                "--remote-write-basic-auth-username=y",
            ],
            "given 2 times for 3 URLs",
        ),
        (["--remote-write-url=http://a/w", "--external-label=__x=1"], "valid name"),
        (
            ["--remote-write-url=http://a/w", "--external-label=a=1", "--external-label=a=2"],
            "twice",
        ),
        (["--remote-write-url=tcp://a/w"], "http(s)"),
        (["--no-expose-node-series"], "needs --remote-write-url"),
    ],
)
def test_refused_combinations_name_the_problem(args: list[str], message: str) -> None:
    result = CliRunner().invoke(serve_command, ["--listen-address=127.0.0.1:0", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
