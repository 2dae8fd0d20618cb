"""The series the advisor reads are the ones the relay declares, with the labels it groups by."""

from __future__ import annotations

from advisor.queries import (
    CFS_PERIODS,
    CFS_THROTTLED_PERIODS,
    CPU_USAGE,
    LIMITS,
    OOM_KILLS,
    POD_GROUP,
    REQUESTS,
    WORKING_SET,
    WORKLOAD_GROUP,
)
from relay.series.native import NATIVE


def test_every_series_read_is_declared_with_every_grouping_label() -> None:
    declared = {family.name: set(family.label_names) for family in NATIVE.families}
    wanted = {label.strip() for label in f"{WORKLOAD_GROUP}, {POD_GROUP}".split(",")}
    for name in (
        CPU_USAGE,
        WORKING_SET,
        REQUESTS,
        LIMITS,
        OOM_KILLS,
        CFS_PERIODS,
        CFS_THROTTLED_PERIODS,
    ):
        assert name in declared, name
        assert wanted <= declared[name], (name, declared[name])
    assert {"resource", "unit"} <= declared[REQUESTS] & declared[LIMITS]
