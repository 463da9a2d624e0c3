"""The datapath seam: drift comparison, backend discovery, the recording double, the CLI group."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cli.commands import datapath
from detnat.datapath import (
    Datapath,
    Holding,
    LiveState,
    available,
    compare,
    load_backend,
    planned_state,
)
from detnat.datapath.nftables import NftablesDatapath
from detnat.datapath.testing import RecordingDatapath
from detnat.engine.addresses import parse_address, parse_prefix
from detnat.errors import Conflict, InvalidInput, NotFound
from tests.datapath.plans import MAP, SPLIT_BLOCKS, VPP, mapper_of, plan_file

SUB = parse_prefix("10.0.0.7")
IP = parse_address("192.0.2.1")[1]


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """detnat (test harness)."""

    app.add_typer(datapath.app, name="datapath")
    return app


runner = CliRunner()


# -- compare -------------------------------------------------------------------------------------


def test_holdings_that_say_the_same_thing_in_pieces_are_no_drift() -> None:
    plan = LiveState({SUB: (Holding(IP, ((1024, 1039),)),)})
    live = LiveState({SUB: (Holding(IP, ((1032, 1039),)), Holding(IP, ((1024, 1031),)))})
    assert compare(plan, live).ok


def test_a_subscriber_only_the_datapath_translates_is_drift() -> None:
    live = LiveState({SUB: (Holding(IP, ((1024, 1039),)),)})
    report = compare(LiveState({}), live)
    assert [(str(d.subscriber), d.plan) for d in report.drifts] == [("10.0.0.7/32", ())]
    assert "plan no translation; datapath 192.0.2.1 ports 1024-1039" in str(report.drifts[0])


def test_datapath_wide_problems_make_the_report_fail_without_any_subscriber() -> None:
    report = compare(LiveState({}), LiveState({}, ("table missing",)))
    assert not report.ok
    assert report.to_json()["problems"] == ["table missing"]


# -- discovery -----------------------------------------------------------------------------------


def test_built_in_backends_are_found_by_name() -> None:
    assert load_backend("nftables") is NftablesDatapath
    assert load_backend("recording") is RecordingDatapath
    assert {"nftables", "recording"} <= set(available())


def test_an_unknown_backend_is_not_found_and_the_known_ones_are_named() -> None:
    with pytest.raises(NotFound, match="available: nftables, recording"):
        load_backend("vpp")


def _dist_info(root: Path, name: str, entry_points: str, module: str = "") -> None:
    info = root / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    if module:
        (root / f"{name.replace('-', '_')}.py").write_text(textwrap.dedent(module))


def test_a_backend_declared_by_an_installed_package_is_found_through_its_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _dist_info(
        tmp_path,
        "acme-datapath",
        """
        [detnat.datapath]
        acme = acme_datapath:Acme
        """,
        """
        from detnat.datapath.testing import RecordingDatapath

        class Acme(RecordingDatapath):
            name = "acme"
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    backends = available()
    assert backends["acme"].source == "acme-datapath"
    backend = load_backend("acme")
    assert backend.name == "acme" and issubclass(backend, Datapath)


def test_an_entry_point_that_reuses_a_built_in_name_for_other_code_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _dist_info(tmp_path, "shadow", "[detnat.datapath]\nnftables = shadow:Other\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(Conflict, match="two datapath backends are named 'nftables'"):
        load_backend("nftables")


def test_an_entry_point_that_names_the_same_built_in_class_is_the_same_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the lead's pyproject entry points will look like once detnat itself declares them.
    _dist_info(
        tmp_path,
        "detnat-again",
        "[detnat.datapath]\nnftables = detnat.datapath.nftables:NftablesDatapath\n",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_backend("nftables") is NftablesDatapath


def test_an_entry_point_that_is_not_a_datapath_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _dist_info(tmp_path, "odd", "[detnat.datapath]\nodd = json:dumps\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(NotFound, match="is not a Datapath"):
        load_backend("odd")


def test_unknown_backend_options_are_refused_with_the_known_ones() -> None:
    with pytest.raises(InvalidInput, match=r"no option 'tabel' \(options: netns, nft, oifname"):
        NftablesDatapath.from_options({"tabel": "x"})


def test_nft_names_that_could_inject_syntax_are_refused() -> None:
    with pytest.raises(InvalidInput):
        NftablesDatapath(table="detnat; flush ruleset")
    with pytest.raises(InvalidInput):
        NftablesDatapath(oifname='eth0" accept')


# -- the recording double ------------------------------------------------------------------------


def test_the_recording_double_agrees_after_apply_and_reports_what_was_changed(
    tmp_path: Path,
) -> None:
    mapper = mapper_of(tmp_path, "split", SPLIT_BLOCKS)
    dp = RecordingDatapath()
    assert not dp.verify(mapper).ok  # nothing applied yet: every subscriber differs
    dp.apply(mapper)
    assert dp.verify(mapper).ok
    moved = parse_prefix("10.0.0.3")
    dp.set_holdings(moved, (Holding(IP, ((2000, 2019),)),))
    report = dp.verify(mapper)
    assert [str(d.subscriber) for d in report.drifts] == ["10.0.0.3/32"]
    assert report.drifts[0].plan == planned_state(mapper).holdings[moved]
    assert [op for op, _ in dp.calls] == ["read_live", "apply", "read_live", "read_live"]


def test_the_recording_state_file_is_shared_between_instances(tmp_path: Path) -> None:
    mapper = mapper_of(tmp_path, "split", SPLIT_BLOCKS)
    state = str(tmp_path / "state.json")
    RecordingDatapath(state=state).apply(mapper)
    other = RecordingDatapath(state=state)
    assert other.verify(mapper).ok
    other.forget(parse_prefix("10.0.0.1"))
    assert len(RecordingDatapath(state=state).verify(mapper).drifts) == 1


# -- the CLI group -------------------------------------------------------------------------------


def test_cli_apply_then_verify_agrees_and_exits_zero(tmp_path: Path) -> None:
    plan = plan_file(tmp_path, "split", SPLIT_BLOCKS)
    state = tmp_path / "state.json"
    common = ["--backend", "recording", "--plan", str(plan), "--option", f"state={state}"]
    applied = runner.invoke(_app(), ["datapath", "apply", *common])
    assert applied.exit_code == 0, applied.output
    assert "agrees with the plan: 14 subscribers checked, 0 differ" in applied.output
    verified = runner.invoke(_app(), ["datapath", "verify", *common, "--json"])
    assert verified.exit_code == 0
    assert json.loads(verified.stdout)["ok"] is True


def test_cli_verify_names_each_drifted_subscriber_and_exits_four(tmp_path: Path) -> None:
    plan = plan_file(tmp_path, "split", SPLIT_BLOCKS)
    state = tmp_path / "state.json"
    RecordingDatapath(state=str(state)).apply(mapper_of(tmp_path, "split", SPLIT_BLOCKS))
    data = json.loads(state.read_text())
    data["10.0.0.2/32"] = [["192.0.2.0", [[2022, 2042]]]]
    del data["10.0.0.14/32"]
    state.write_text(json.dumps(data))
    args = ["datapath", "verify", "--backend", "recording", "--plan", str(plan)]
    result = runner.invoke(_app(), [*args, "--option", f"state={state}"])
    assert result.exit_code == 4
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "drift  10.0.0.2/32: plan 192.0.2.0 ports 2022-2041; datapath 192.0.2.0 ports 2022-2042"
    )
    assert lines[1] == (
        "drift  10.0.0.14/32: plan 198.51.100.7 ports 0-65535; datapath no translation"
    )
    assert "DIFFERS from the plan" in lines[-1]
    as_json = runner.invoke(_app(), [*args, "--option", f"state={state}", "--json"])
    report = json.loads(as_json.stdout)
    assert report["drift_count"] == 2
    assert report["drifts"][0]["datapath"] == [
        {"public_ip": "192.0.2.0", "port_ranges": [[2022, 2042]]}
    ]


def test_cli_render_prints_the_backend_configuration(tmp_path: Path) -> None:
    plan = plan_file(tmp_path, "split", SPLIT_BLOCKS)
    result = runner.invoke(
        _app(), ["datapath", "render", "--backend", "nftables", "--plan", str(plan)]
    )
    assert result.exit_code == 0
    assert "snat ip to ip saddr map @snat_0" in result.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["verify", "--backend", "nope", "--plan", "{plan}"], 3, "no datapath backend named"),
        (["verify", "--backend", "recording"], 2, "give either --plan FILE or --realm REALM"),
        (["verify", "--backend", "recording", "--plan", "{plan}", "--realm", "r"], 2, "either"),
        (["render", "--backend", "recording", "--plan", "{plan}", "--option", "x"], 2, "KEY=VALUE"),
        (["render", "--backend", "nftables", "--plan", "{map}"], 2, "not expressible"),
        (["export", "--format", "cisco", "--plan", "{plan}"], 2, "not one of det44, snabb"),
        (["export", "--format", "snabb", "--plan", "{map}"], 2, "--br-address"),
    ],
)
def test_cli_refusals_are_one_line_and_an_exit_code(
    tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    paths = {
        "plan": str(plan_file(tmp_path, "split", SPLIT_BLOCKS)),
        "map": str(plan_file(tmp_path, "map", MAP)),
    }
    result = runner.invoke(_app(), ["datapath", *(a.format(**paths) for a in args)])
    assert result.exit_code == code, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_cli_export_det44_writes_the_vpp_command(tmp_path: Path) -> None:
    plan = plan_file(tmp_path, "vpp", VPP)
    out = tmp_path / "det44.vpp"
    result = runner.invoke(
        _app(), ["datapath", "export", "--format", "det44", "--plan", str(plan), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.read_text().splitlines()[-1] == "det44 add in 10.0.0.0/18 out 1.1.1.0/30"


def test_cli_export_refusal_leaves_no_file_behind(tmp_path: Path) -> None:
    plan = plan_file(tmp_path, "split", SPLIT_BLOCKS)
    out = tmp_path / "det44.vpp"
    result = runner.invoke(
        _app(), ["datapath", "export", "--format", "det44", "--plan", str(plan), "-o", str(out)]
    )
    assert result.exit_code == 2
    assert "not expressible in VPP det44" in result.stderr
    assert not out.exists()
    assert list(tmp_path.glob(".detnat-*")) == []


def test_cli_lists_the_backends_and_their_options() -> None:
    result = runner.invoke(_app(), ["datapath", "backends", "--json"])
    assert result.exit_code == 0
    names = {json.loads(line)["name"]: json.loads(line) for line in result.stdout.splitlines()}
    assert "netns" in names["nftables"]["options"]
