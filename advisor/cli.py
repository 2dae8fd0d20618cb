"""kubensage-advisor: CPU and memory recommendations from kubensage's series in Prometheus."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click

from advisor.cost import Prices
from advisor.formats import FORMATS, render
from advisor.lease import LeaseConfig
from advisor.prometheus import PrometheusClient, PrometheusError
from advisor.queries import Selection
from advisor.report import Request, build_report
from advisor.serve import ServeConfig, default_identity, default_lease_namespace, serve
from advisor.strategy import OK, Strategy
from advisor.units import parse_cpu, parse_duration, parse_memory
from kubensage_common.addresses import split_host_port
from kubensage_common.cliconfig import config_option, logging_options, option
from kubensage_common.kubeclient import load_api_client
from kubensage_common.logsetup import configure_logging
from kubensage_common.version import version_string

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
EXIT_NOTHING_TO_RECOMMEND = 3


def _converted(
    convert: Callable[[str], Any],
) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(_ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        if value is None:
            return None
        try:
            return convert(str(value))
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from exc

    return callback


def _cpu_limit(text: str) -> float | None:
    if text.strip().lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{text!r}: give none or a multiple of the request, e.g. 2") from None


if TYPE_CHECKING:  # generic from click 8.2; plain in the 8.1 the dependency range allows
    _HeaderBase = click.ParamType[tuple[str, str]]
else:
    _HeaderBase = click.ParamType


class HeaderType(_HeaderBase):
    """A "Name: value" header; in KUBENSAGE_PROMETHEUS_HEADER, one header per line (values
    such as "Bearer <token>" hold spaces, so whitespace cannot separate them)."""

    name = "header"
    envvar_list_splitter = "\n"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        name, sep, content = str(value).partition(":")
        if not sep or not name.strip() or any(c in str(value) for c in "\r\n"):
            self.fail(f"{value!r} is not a header like 'X-Scope-OrgID: team'", param, ctx)
        return name.strip(), content.strip()


def _address(text: str) -> str:
    try:
        split_host_port(text)
    except click.BadParameter as exc:
        raise ValueError(str(exc.message)) from exc
    return text


def analysis_options(func: F) -> F:
    """What both commands need: where Prometheus is, what to look at, the strategy."""
    for decorator in reversed(
        [
            option("--prometheus-url", required=True, help="Prometheus (or compatible) base URL."),
            option(
                "--prometheus-header",
                "prometheus_headers",
                type=HeaderType(),
                multiple=True,
                help='"Name: value" sent with every query (repeat; e.g. X-Scope-OrgID: team).',
            ),
            option(
                "--window",
                default="14d",
                callback=_converted(parse_duration),
                help="History to analyse, a Prometheus duration.",
            ),
            option(
                "--namespace",
                "namespaces",
                multiple=True,
                help="Only these namespaces (repeat the flag; default all).",
            ),
            option(
                "--series-matchers",
                default="",
                help='Extra label matchers for every series, e.g. cluster="prod".',
            ),
            option(
                "--cpu-percentile",
                type=click.FloatRange(min=1, max=100),
                default=95.0,
                help="Percentile of 5-minute CPU rates that sets the request.",
            ),
            option(
                "--cpu-limit",
                default="none",
                callback=_converted(_cpu_limit),
                help="none (no CPU limit), or the limit as a multiple of the request.",
            ),
            option(
                "--memory-margin",
                type=click.FloatRange(min=0),
                default=0.15,
                help="Added to the peak working set (0.15 = 15%).",
            ),
            option(
                "--oom-bump",
                type=click.FloatRange(min=1),
                default=1.2,
                help="After an OOM kill, at least this times max(peak, limit).",
            ),
            option(
                "--oom-min-bump",
                default="100Mi",
                callback=_converted(parse_memory),
                help="After an OOM kill, at least max(peak, limit) plus this.",
            ),
            option(
                "--min-cpu",
                default="10m",
                callback=_converted(parse_cpu),
                help="Smallest CPU request recommended.",
            ),
            option(
                "--min-memory",
                default="64Mi",
                callback=_converted(parse_memory),
                help="Smallest memory request recommended.",
            ),
            option(
                "--min-history",
                default="1d",
                callback=_converted(parse_duration),
                help="Less usage history than this gets no recommendation.",
            ),
            option(
                "--throttling-threshold",
                type=click.FloatRange(min=0, max=1),
                default=0.05,
                help="Share of throttled CFS periods above which CPU comes from the peak.",
            ),
            option(
                "--cpu-price",
                type=click.FloatRange(min=0),
                default=None,
                help="Price of one core per hour, for the monthly cost difference.",
            ),
            option(
                "--memory-price",
                type=click.FloatRange(min=0),
                default=None,
                help="Price of one GiB per hour, for the monthly cost difference.",
            ),
            option(
                "--query-timeout",
                type=click.FloatRange(min=0.1),
                default=60.0,
                help="Seconds one Prometheus query may take, answer included.",
            ),
            option(
                "--max-series",
                type=click.IntRange(min=1),
                default=20_000,
                help="Refuse a query answering more series than this.",
            ),
        ]
    ):
        func = decorator(func)
    return func


def _request(options: dict[str, Any]) -> Request:
    try:
        strategy = Strategy(
            cpu_percentile=options["cpu_percentile"],
            cpu_limit_multiple=options["cpu_limit"],
            memory_margin=options["memory_margin"],
            oom_bump_ratio=options["oom_bump"],
            oom_min_bump_bytes=options["oom_min_bump"],
            min_cpu_cores=options["min_cpu"],
            min_memory_bytes=options["min_memory"],
            min_history_seconds=options["min_history"],
            throttling_threshold=options["throttling_threshold"],
        )
        selection = Selection(tuple(options["namespaces"]), options["series_matchers"])
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    return Request(
        selection,
        strategy,
        options["window"],
        Prices(options["cpu_price"], options["memory_price"]),
    )


def _prometheus(options: dict[str, Any]) -> PrometheusClient:
    try:
        return PrometheusClient(
            options["prometheus_url"],
            timeout_seconds=options["query_timeout"],
            max_series=options["max_series"],
            headers=dict(options["prometheus_headers"]),
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--prometheus-url") from exc


def _at(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is neither Unix seconds nor an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} needs a time zone, e.g. 2024-05-01T00:00:00Z")
    return moment.timestamp()


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(message=version_string("kubensage-advisor"))
def cli() -> None:
    """Recommend CPU and memory requests and limits per workload container."""


@cli.command("recommend")
@analysis_options
@option(
    "--format",
    "output_format",
    type=click.Choice(FORMATS),
    default="table",
    help="table for people, json/csv for tools, yaml-patch for kubectl patch.",
)
@option(
    "--at",
    default=None,
    callback=_converted(_at),
    help="Evaluate as of this time (Unix seconds or RFC 3339; default now).",
)
@logging_options
@config_option()
def recommend_command(**options: Any) -> None:
    """Analyse the window once and print one row per workload container."""
    configure_logging(options["log_level"], options["log_format"], options["log_file"])
    request = _request(options)
    prometheus = _prometheus(options)
    at = options["at"] if options["at"] is not None else time.time()
    try:
        report = build_report(prometheus, request, at)
    except PrometheusError as exc:
        raise click.ClickException(str(exc)) from None
    if not report.rows:
        raise click.ClickException(
            f"no kubensage container series in Prometheus at {prometheus.url} for this "
            "selection and window: is the relay scraped, and are --namespace and "
            "--series-matchers right?"
        )
    click.echo(render(report, options["output_format"]), nl=False)
    if not any(OK in (row.cpu.status, row.memory.status) for row in report.rows):
        click.echo(
            f"no container has the {options['min_history'] / 86400:g} days of history "
            "--min-history asks for: nothing recommended yet",
            err=True,
        )
        sys.exit(EXIT_NOTHING_TO_RECOMMEND)


@cli.command("serve")
@analysis_options
@option(
    "--interval",
    default="1h",
    callback=_converted(parse_duration),
    help="How often the leader recomputes.",
)
@option(
    "--metrics-address",
    default="0.0.0.0:9193",
    callback=_converted(_address),
    help="HTTP address of /metrics, /healthz and /readyz.",
)
@option(
    "--leader-election/--no-leader-election",
    default=True,
    help="Elect one computing replica through a Lease; off for a single replica.",
)
@option("--lease-name", default="kubensage-advisor", help="Name of the coordination Lease.")
@option(
    "--lease-namespace",
    default=None,
    help="Namespace of the Lease (default: the pod's own, else default).",
)
@option("--identity", default=None, help="This replica's holder identity (default: host_random).")
@option(
    "--lease-duration",
    type=click.FloatRange(min=1),
    default=15.0,
    help="Seconds a lease not renewed stays taken.",
)
@option(
    "--renew-deadline",
    type=click.FloatRange(min=0.5),
    default=10.0,
    help="Seconds the leader keeps leading without a successful renewal.",
)
@option(
    "--retry-period",
    type=click.FloatRange(min=0.1),
    default=2.0,
    help="Seconds between acquire or renew attempts.",
)
@option(
    "--kubeconfig",
    default=None,
    help="kubeconfig outside a cluster (default: service account, $KUBECONFIG).",
)
@logging_options
@config_option()
def serve_command(**options: Any) -> None:
    """Recompute on a schedule and serve the recommendations as metrics."""
    configure_logging(options["log_level"], options["log_format"], options["log_file"])
    request = _request(options)
    prometheus = _prometheus(options)
    lease = None
    api = None
    if options["leader_election"]:
        try:
            lease = LeaseConfig(
                namespace=options["lease_namespace"] or default_lease_namespace(),
                name=options["lease_name"],
                identity=options["identity"] or default_identity(),
                lease_duration=options["lease_duration"],
                renew_deadline=options["renew_deadline"],
                retry_period=options["retry_period"],
            )
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc
        loaded = load_api_client(options["kubeconfig"])
        if loaded is None:
            raise click.UsageError(
                "leader election needs the Kubernetes API: run in a cluster, give "
                "--kubeconfig, or pass --no-leader-election for a single replica"
            )
        api = loaded[0]
    logger.info("window %s s, interval %s s", request.window_seconds, options["interval"])
    try:
        serve(
            ServeConfig(request, options["interval"], options["metrics_address"], lease),
            prometheus,
            api,
        )
    except OSError as exc:  # the metrics port: taken, or not ours to bind
        raise click.ClickException(f"cannot serve on {options['metrics_address']}: {exc}") from None


def main() -> None:
    cli()
