"""Workloads of known shape over a 14-day window, for the advisor's acceptance test.

Every figure is a plain function of the step time, so the history is the same on every
run; what the advisor should answer is computed by the test from the samples written.
"""

from __future__ import annotations

from tests.support.history import DAY, MIB, STEP, Container, Pod, Workload

GIB = 1024 * MIB
WINDOW = 14 * DAY


def noise(t: int, index: int = 0) -> float:
    """Deterministic jitter in [0, 1) per 5-minute step and pod."""
    return ((t // STEP * 7919 + index * 104729) % 1000) / 1000


def history_start(end: int) -> int:
    """Ten minutes inside the window, so no sample sits on its edge."""
    return end - WINDOW + 600


def shop(end: int) -> list[Workload]:
    start = history_start(end)
    middle = end - 7 * DAY
    span = end - start

    def spike(t: int) -> bool:
        return (t // STEP) % 40 == 0  # 2.5% of steps: below what p95 sees

    def busy(t: int) -> bool:
        return (t // STEP) % 25 == 0  # 4% of steps at the CPU limit

    def cache_memory(t: int, i: int) -> float:
        # climbs from 120Mi towards the 256Mi limit over each 3-day cycle, killed at the top
        phase = ((t - start) % (3 * DAY)) / (3 * DAY)
        return 120 * MIB + 133 * MIB * phase + MIB * noise(t, i)

    cache_kills = tuple(range(start + 3 * DAY, end + 1, 3 * DAY))
    return [
        Workload(
            "shop",
            "api",
            "Deployment",
            [
                Pod("api-7d9f4c-a1", start, middle),
                Pod("api-7d9f4c-b2", start, middle, node="node-b"),
                Pod("api-5c4e8b-c3", middle, end),
                Pod("api-5c4e8b-d4", middle, end, node="node-b"),
            ],
            [
                Container(
                    "app",
                    cpu=lambda t, i: 0.25 + 0.05 * noise(t, i),
                    memory=lambda t, i: 200 * MIB + 20 * MIB * noise(t, i),
                    requests={"cpu": 1.0, "memory": 1 * GIB},
                    limits={"cpu": 2.0, "memory": 1 * GIB},
                    oom_kill_times=(),
                    throttled_share=lambda t: 0.0,
                ),
                Container(
                    "sidecar",
                    cpu=lambda t, i: 0.004 + 0.002 * noise(t, i),
                    memory=lambda t, i: 20 * MIB + MIB * noise(t, i),
                    requests={"cpu": 0.1, "memory": 128 * MIB},
                ),
            ],
        ),
        Workload(
            "shop",
            "checkout",
            "Deployment",
            [Pod("checkout-6b7c9d-x1", start, end)],
            [
                Container(
                    "app",
                    cpu=lambda t, i: 1.5 if spike(t) else 0.1 + 0.02 * noise(t, i),
                    memory=lambda t, i: (600 if spike(t) else 300) * MIB + 10 * MIB * noise(t, i),
                    requests={"cpu": 0.5, "memory": 512 * MIB},
                )
            ],
        ),
        Workload(
            "shop",
            "db",
            "StatefulSet",
            [Pod("db-0", start, end)],
            [
                Container(
                    "postgres",
                    cpu=lambda t, i: 0.1 + 0.4 * (t - start) / span + 0.01 * noise(t, i),
                    memory=lambda t, i: 500 * MIB + GIB * (t - start) / span,
                    requests={"cpu": 0.2, "memory": 1 * GIB},
                    limits={"memory": 2 * GIB},
                )
            ],
        ),
        Workload(
            "shop",
            "cache",
            "Deployment",
            [Pod("cache-5f6d7e-q1", start, end)],
            [
                Container(
                    "redis",
                    cpu=lambda t, i: 0.05 + 0.01 * noise(t, i),
                    memory=cache_memory,
                    requests={"cpu": 0.1, "memory": 128 * MIB},
                    limits={"memory": 256 * MIB},
                    oom_kill_times=cache_kills,
                )
            ],
        ),
        Workload(
            "shop",
            "worker",
            "Deployment",
            [Pod("worker-8a9b0c-w1", start, end)],
            [
                Container(
                    "worker",
                    cpu=lambda t, i: 0.49 if busy(t) else 0.2 + 0.02 * noise(t, i),
                    memory=lambda t, i: 150 * MIB + 5 * MIB * noise(t, i),
                    requests={"cpu": 0.25, "memory": 256 * MIB},
                    limits={"cpu": 0.5, "memory": 256 * MIB},
                    throttled_share=lambda t: 0.9 if busy(t) else 0.08,
                )
            ],
        ),
        Workload(
            "shop",
            "node-agent",
            "DaemonSet",
            [Pod("node-agent-k2", start, end), Pod("node-agent-m3", start, end, node="node-b")],
            [
                Container(
                    "agent",
                    cpu=lambda t, i: 0.0005 + 0.0001 * noise(t, i),
                    memory=lambda t, i: 12 * MIB + 0.5 * MIB * noise(t, i),
                    requests={"cpu": 0.05, "memory": 64 * MIB},
                )
            ],
        ),
        Workload(
            "shop",
            "",
            "",
            [Pod("debug-shell", start, end)],
            [
                Container(
                    "shell",
                    cpu=lambda t, i: 0.3 * noise(t, i),
                    memory=lambda t, i: 100 * MIB + 3 * MIB * noise(t, i),
                )
            ],
        ),
        Workload(
            "young",
            "fresh",
            "Deployment",
            [Pod("fresh-1a2b3c-n1", end - 6 * 3600, end)],
            [
                Container(
                    "app",
                    cpu=lambda t, i: 0.2,
                    memory=lambda t, i: 100 * MIB,
                    requests={"cpu": 0.5, "memory": 256 * MIB},
                )
            ],
        ),
        Workload(
            "other",
            "batch",
            "Deployment",
            [Pod("batch-9c8d7e-p1", start, end)],
            [
                Container(
                    "app",
                    cpu=lambda t, i: 0.1,
                    memory=lambda t, i: 90 * MIB,
                )
            ],
        ),
    ]
