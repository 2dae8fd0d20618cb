"""README's metric tables and docs/metrics.md are what the declarations generate."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import gen_docs  # noqa: E402


def test_metric_reference_is_fresh() -> None:
    assert gen_docs.REFERENCE.read_text() == gen_docs.reference(), "run `make docs`"


def test_readme_metric_tables_are_fresh() -> None:
    readme = gen_docs.README.read_text()
    assert gen_docs.updated_readme(readme) == readme, "run `make docs`"


def test_reference_names_every_declared_family_and_the_relays_own() -> None:
    text = gen_docs.reference()
    for profile in gen_docs.PROFILES.values():
        for family in profile.families:
            assert f"`{family.name}`" in text
    assert "`kubensage_relay_reports_received_total`" in text
