"""The ingest stream over real gRPC: hello, acks, duplicates, bad peers, settings."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_api.telemetry import telemetry_pb2_grpc
from tests.support.inprocess_relay import InProcessRelay
from tests.support.reports import report

HELLO = tm.AgentMessage(hello=tm.Hello(agent_id="agent-1", node_name="node-a"))


async def exchange(relay: InProcessRelay, messages: list[tm.AgentMessage]) -> list[tm.RelayMessage]:
    async with grpc.aio.insecure_channel(relay.address) as channel:
        call = telemetry_pb2_grpc.IngestStub(channel).Stream(iter(messages))
        return [m async for m in call]


def test_reports_are_acked_and_duplicates_not_counted_twice() -> None:
    async def scenario() -> tuple[list[tm.RelayMessage], InProcessRelay]:
        async with InProcessRelay() as relay:
            answers = await exchange(
                relay,
                [
                    HELLO,
                    tm.AgentMessage(report=report(sequence=1)),
                    tm.AgentMessage(report=report(sequence=2)),
                    tm.AgentMessage(report=report(sequence=2)),
                ],
            )
            return answers, relay

    answers, relay = asyncio.run(scenario())
    assert [a.ack.sequence for a in answers] == [1, 2, 2]
    assert relay.value("kubensage_relay_reports_received_total") == 2
    assert relay.value("kubensage_relay_reports_rejected_total", reason="duplicate") == 1
    assert relay.value("kubensage_relay_streams_closed_total", how="clean") == 1
    assert relay.store.snapshot() == []  # a cleanly closed node leaves at once


def test_stream_without_hello_is_refused() -> None:
    async def scenario() -> grpc.StatusCode:
        async with InProcessRelay() as relay:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await exchange(relay, [tm.AgentMessage(report=report())])
            assert relay.value("kubensage_relay_reports_rejected_total", reason="no_hello") == 1
            return caught.value.code()

    assert asyncio.run(scenario()) == grpc.StatusCode.INVALID_ARGUMENT


def test_report_for_another_node_is_acked_but_not_stored() -> None:
    async def scenario() -> tuple[list[tm.RelayMessage], InProcessRelay]:
        async with InProcessRelay() as relay:
            answers = await exchange(relay, [HELLO, tm.AgentMessage(report=report(node="other"))])
            return answers, relay

    answers, relay = asyncio.run(scenario())
    assert [a.ack.sequence for a in answers] == [1]
    assert relay.value("kubensage_relay_reports_rejected_total", reason="identity_mismatch") == 1
    assert relay.store.snapshot() == []


def test_settings_follow_the_hello() -> None:
    async def scenario() -> list[tm.RelayMessage]:
        async with InProcessRelay(settings=tm.Settings(interval_seconds=2.5)) as relay:
            return await exchange(relay, [HELLO])

    (answer,) = asyncio.run(scenario())
    assert answer.settings.interval_seconds == 2.5


def test_oversized_report_gets_resource_exhausted_and_others_still_served() -> None:
    async def scenario() -> tuple[grpc.StatusCode, list[tm.RelayMessage]]:
        async with InProcessRelay(max_message_bytes=64 * 1024) as relay:
            huge = report(sequence=1)
            huge.pods[0].labels["blob"] = "x" * 200_000
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await exchange(relay, [HELLO, tm.AgentMessage(report=huge)])
            answers = await exchange(relay, [HELLO, tm.AgentMessage(report=report(sequence=2))])
            return caught.value.code(), answers

    code, answers = asyncio.run(scenario())
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert [a.ack.sequence for a in answers] == [2]


@pytest.mark.parametrize(
    ("node", "agent_id"),
    [("Node_A", "agent-1"), ("n" * 254, "agent-1"), ("node-a", ""), ("node-a", "a b")],
)
def test_a_hello_with_an_invalid_node_name_or_agent_id_is_refused(node: str, agent_id: str) -> None:
    async def scenario() -> grpc.StatusCode:
        async with InProcessRelay() as relay:
            hello = tm.AgentMessage(hello=tm.Hello(agent_id=agent_id, node_name=node))
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await exchange(relay, [hello, tm.AgentMessage(report=report(node=node))])
            assert relay.store.snapshot() == []
            return caught.value.code()

    assert asyncio.run(scenario()) == grpc.StatusCode.INVALID_ARGUMENT


class RecordingExporter:
    """Takes what ingest hands to remote write, with room always."""

    def __init__(self) -> None:
        self.submitted: list[int] = []

    async def wait_for_room(self) -> bool:
        return True

    def submit(self, report: tm.Metrics) -> None:
        self.submitted.append(report.sequence)


def test_every_accepted_report_reaches_the_exporter_current_or_late() -> None:
    exporter = RecordingExporter()
    late = report(sequence=2)
    late.collected_at_unix_nanos -= 10 * 10**9  # older than report 1

    async def scenario() -> float:
        async with InProcessRelay(exporter=exporter) as relay:
            await exchange(
                relay,
                [
                    HELLO,
                    tm.AgentMessage(report=report(sequence=1)),
                    tm.AgentMessage(report=late),
                    tm.AgentMessage(report=report(sequence=2)),  # a repeat: not accepted
                ],
            )
            return relay.value("kubensage_relay_reports_late_total", reason="older_than_current")

    assert asyncio.run(scenario()) == 1
    assert exporter.submitted == [1, 2]
