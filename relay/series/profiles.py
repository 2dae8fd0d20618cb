"""The metric profiles a relay can serve, chosen together with --metric-profile a,b."""

from __future__ import annotations

from relay.series.cadvisor import CADVISOR
from relay.series.native import NATIVE
from relay.series.node_exporter import NODE_EXPORTER
from relay.series.spec import Profile

PROFILES: dict[str, Profile] = {
    profile.name: profile for profile in (NATIVE, CADVISOR, NODE_EXPORTER)
}
# Earlier releases offered "both" for native and cAdvisor names together.
ALIASES = {"both": ("native", "cadvisor")}


def parse_profiles(value: str) -> tuple[Profile, ...]:
    """`native,cadvisor` -> those profiles, in that order; unknown or repeated names fail."""
    names: list[str] = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        for name in ALIASES.get(part, (part,)):
            if name not in PROFILES:
                known = ", ".join([*PROFILES, *ALIASES])
                raise ValueError(f"unknown metric profile {name!r} (known: {known})")
            if name in names:
                raise ValueError(f"metric profile {name!r} given twice")
            names.append(name)
    if not names:
        raise ValueError("no metric profile given")
    return tuple(PROFILES[name] for name in names)
