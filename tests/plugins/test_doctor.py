"""`opencomputer doctor` names every disabled plugin and the sandbox state in one line each."""

from __future__ import annotations

from opencomputer.bot.doctor import run_doctor
from tests.plugins.conftest import make_plugin


async def test_doctor_lists_disabled_plugins_and_sandbox(make_settings, plugin_dir):
    make_plugin(plugin_dir, "old", "", opencomputer="<0.1")
    make_plugin(plugin_dir, "crashy", "import no_such_module_xyz\n", tools=[])
    lines: list[str] = []
    await run_doctor(
        make_settings(OC_PLUGIN_DIRS=str(plugin_dir), OC_MCP_SERVERS="{"), echo=lines.append
    )
    assert "[ok  ] sandbox: bubblewrap at " in "\n".join(lines)
    assert "[warn] plugin old: disabled: needs opencomputer <0.1, this is 0.1.0" in lines
    assert (
        "[warn] plugin crashy: disabled: its code failed to import: ModuleNotFoundError: "
        "No module named 'no_such_module_xyz'"
    ) in lines
    assert any(line.startswith("[ok  ] plugins: ") and "calculator" in line for line in lines)
    assert any(line.startswith("[FAIL] mcp: OC_MCP_SERVERS is not valid JSON") for line in lines)


async def test_doctor_warns_when_the_sandbox_is_missing_or_off(
    make_settings, tmp_path, monkeypatch
):
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    lines: list[str] = []
    await run_doctor(make_settings(), echo=lines.append)
    (sandbox,) = [line for line in lines if " sandbox: " in line]
    assert sandbox.startswith("[warn]") and "apt-get install bubblewrap" in sandbox
    lines.clear()
    await run_doctor(make_settings(OC_PLUGIN_SANDBOX="off"), echo=lines.append)
    assert "[warn] sandbox: OC_PLUGIN_SANDBOX=off: plugins run WITHOUT isolation" in lines
