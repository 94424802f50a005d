"""docs/configuration.md lists exactly the settings the code has, with their defaults."""

from __future__ import annotations

from pathlib import Path

from auditline.config import reference_rows

DOC = Path(__file__).parents[2] / "docs" / "configuration.md"


def test_configuration_reference_matches_the_settings_model() -> None:
    text = DOC.read_text()
    generated = text.split("<!-- generated:begin -->\n")[1].split("<!-- generated:end -->")[0]
    assert generated.splitlines() == reference_rows()


def test_every_setting_is_explained() -> None:
    assert [row for row in reference_rows() if row.endswith("|  |")] == []
