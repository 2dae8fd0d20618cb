"""The declaration tables: golden files per profile, complete coverage, naming rules."""

from __future__ import annotations

from collections import defaultdict

import pytest
from google.protobuf.message import Message
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from kubensage_api.telemetry import telemetry_pb2 as tm
from relay.series.profiles import PROFILES, parse_profiles
from relay.series.spec import Kind
from tests.support import golden


def _samples(text: str) -> list[Sample]:
    """Samples under the names the text gives them (the client's parser appends _total to
    counters that lack it, as cAdvisor's container_memory_failcnt does)."""
    typed = {line.split(" ")[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    return [
        s if s.name in typed else s._replace(name=family.name)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


@pytest.mark.parametrize("profile", list(PROFILES))
def test_golden_exposition_is_fresh(profile: str) -> None:
    expected = golden.path(profile).read_text()
    assert golden.render(profile) == expected, f"{profile}: run `make golden` and review the diff"


def _unset_fields(message: Message, seen: dict[str, set[str]], path: str = "") -> None:
    descriptor = message.DESCRIPTOR
    names = seen.setdefault(descriptor.full_name, set())
    for field in descriptor.fields:
        if field.is_repeated:
            values = getattr(message, field.name)
            if len(values):
                names.add(field.name)
                if field.message_type is not None and not field.message_type.GetOptions().map_entry:
                    for item in values:
                        _unset_fields(item, seen)
        elif field.message_type is not None or field.has_presence:
            if message.HasField(field.name):
                names.add(field.name)
                if field.message_type is not None:
                    _unset_fields(getattr(message, field.name), seen)
        elif getattr(message, field.name) != field.default_value:
            names.add(field.name)


def test_golden_report_sets_every_field_of_every_message_it_holds() -> None:
    """A field added to the protocol must reach the golden report (and so its families)."""
    seen: dict[str, set[str]] = {}
    _unset_fields(golden.report(), seen)
    missing = {}
    for name, fields in seen.items():
        descriptor = tm.DESCRIPTOR.message_types_by_name.get(name.rsplit(".", 1)[-1])
        if descriptor is None:
            continue
        unset = {f.name for f in descriptor.fields} - fields
        if unset:
            missing[name] = sorted(unset)
    assert not missing


@pytest.mark.parametrize("profile", list(PROFILES))
def test_every_declared_family_has_samples_in_the_golden_report(profile: str) -> None:
    exposed = {s.name for s in _samples(golden.render(profile))}
    declared = {f.name for f in PROFILES[profile].families if f.name_of is None}
    assert declared - exposed == set()


@pytest.mark.parametrize("profile", list(PROFILES))
def test_each_family_keeps_one_label_set(profile: str) -> None:
    label_sets: dict[str, set[frozenset[str]]] = defaultdict(set)
    for sample in _samples(golden.render(profile)):
        label_sets[sample.name].add(frozenset(sample.labels))
    dynamic = {f.name for f in PROFILES[profile].families if f.dynamic_labels is not None}
    varying = {name for name, sets in label_sets.items() if len(sets) > 1} - dynamic
    assert not varying


def test_declared_label_names_match_the_exposition() -> None:
    for profile in PROFILES.values():
        first = {}
        for sample in _samples(golden.render(profile.name)):
            first.setdefault(sample.name, sample)
        for declared in profile.families:
            if declared.dynamic_labels is not None or declared.name_of is not None:
                continue
            assert set(first[declared.name].labels) == set(declared.label_names), declared.name


def test_native_names_follow_prometheus_conventions() -> None:
    for family in PROFILES["native"].families:
        assert family.name.startswith("kubensage_")
        assert (family.kind is Kind.COUNTER) == family.name.endswith("_total"), family.name
        if family.unit:
            assert f"_{family.unit}" in family.name, family.name
        assert family.help.endswith("."), family.name


def test_no_family_name_is_declared_twice() -> None:
    names = [f.name for profile in PROFILES.values() for f in profile.families]
    assert len(names) == len(set(names))


def test_profile_lists_parse_and_reject_mistakes() -> None:
    assert [p.name for p in parse_profiles("native,cadvisor")] == ["native", "cadvisor"]
    assert [p.name for p in parse_profiles(" cadvisor ")] == ["cadvisor"]
    assert [p.name for p in parse_profiles("both")] == ["native", "cadvisor"]
    for bad in ("", "native,native", "prometheus", "native,both"):
        with pytest.raises(ValueError):
            parse_profiles(bad)
