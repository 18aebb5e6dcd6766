"""The registry of job kinds: a kind's input is checked with errors naming
``input.<field>``, an unknown kind names ``kind``, and an installed package
adds kinds through the ``hubbub.jobs`` entry-point group (a real
distribution on ``sys.path``); one that fails to import is logged, not fatal."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hubbub.errors import AppError
from hubbub.jobs import demo
from hubbub.jobs.registry import ENTRY_POINT_GROUP, KINDS, Registry

KIND_MODULE = '''
from pydantic import BaseModel

from hubbub.jobs.registry import job_kind


class EchoInput(BaseModel):
    text: str


@job_kind("extra.echo", EchoInput)
def echo(context, input):
    """Give the text back."""
    return input.text
'''


def _distribution(root: Path, module: str, entry: str) -> None:
    """An installed distribution ``hubbub-extra`` whose entry point is ``entry``."""
    info = root / "hubbub_extra-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hubbub-extra\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nextra = {entry}\n")
    (root / f"{module}.py").write_text(KIND_MODULE)


def test_an_installed_package_adds_kinds_through_its_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _distribution(tmp_path, "hubbub_extra_kinds", "hubbub_extra_kinds")
    monkeypatch.syspath_prepend(str(tmp_path))
    Registry().discover()
    kind = KINDS.get("extra.echo")
    assert (kind.module, kind.description) == ("hubbub_extra_kinds", "Give the text back.")
    assert kind.resources == {"num_cpus": 1.0}
    monkeypatch.delitem(sys.modules, "hubbub_extra_kinds")


def test_an_entry_point_that_fails_to_load_is_logged_and_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _distribution(tmp_path, "unused", "hubbub_no_such_module")
    monkeypatch.syspath_prepend(str(tmp_path))
    Registry().discover()
    assert "hubbub_no_such_module" in caplog.text


def test_input_errors_name_each_field_under_input() -> None:
    kind = KINDS.get("demo.count")
    assert kind.input is demo.CountInput
    with pytest.raises(AppError) as refused:
        kind.parse({"to": "many", "pause_ms": -1})
    assert refused.value.status == 422
    assert [e.field for e in refused.value.errors] == ["input.to", "input.pause_ms"]
    assert kind.parse({"to": 3}).model_dump() == {"to": 3, "pause_ms": 0}


def test_an_unknown_kind_names_the_kind_field() -> None:
    with pytest.raises(AppError) as refused:
        KINDS.get("no.such.kind")
    assert (refused.value.code, refused.value.errors[0].field) == ("unknown_job_kind", "kind")
    assert "demo.count" in refused.value.message
