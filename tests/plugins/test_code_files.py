"""The code tool's output folder: plots come back as files; links, FIFOs, giants do not.

Every snippet runs in the real plugin sandbox (bubblewrap) through the plugin host, and the files
cross its pipe as a real call's do. The attacks are written as a hostile snippet would: each
must end as one line in the tool's result, with no byte from outside the sandbox in it.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from opencomputer.bot.outfiles import OutFile, collecting, hand_over_files, tool_files
from opencomputer.bot.plugins.discovery import discover
from opencomputer.bot.plugins.loader import PluginHost
from opencomputer.bot.plugins.sandbox import CallLimits, Sandbox

SECRET = "the-server-secret-4711"

LINE_CHART = """
import os
import matplotlib.pyplot as plt
fig, ax = plt.subplots(figsize=(4, 3), dpi=80)
ax.plot([1, 2, 3, 4, 5, 6, 7], [3, 5, 2, 8, 6, 9, 4])
ax.set_title("Visits this week")
fig.savefig("plot.png")
print("saved to", os.getcwd() == OUT == os.environ["OUT"])
"""


def code_host(tmp_path: Path) -> PluginHost:
    found = discover([], environ={}, packages=False)
    return PluginHost(
        found,
        sandbox=Sandbox(),
        data_root=tmp_path / "data" / "plugins",
        limits=CallLimits(timeout=20),
    )


async def run(tmp_path: Path, code: str, caption: str = "") -> tuple[str, list[OutFile]]:
    result = await code_host(tmp_path).call_tool(
        "code", "run_python", {"code": code, "caption": caption}
    )
    carried = tool_files(result)
    if carried is None:
        assert isinstance(result, str)
        return result, []
    return carried


async def test_a_matplotlib_line_chart_comes_back_as_a_png(tmp_path: Path) -> None:
    text, [plot] = await run(tmp_path, LINE_CHART, caption="Visits this week")
    assert text == "saved to True\n"
    assert (plot.name, plot.mime, plot.caption) == ("plot.png", "image/png", "Visits this week")
    with Image.open(io.BytesIO(plot.data)) as image:
        assert (image.format, image.size) == ("PNG", (320, 240))
        assert len(image.convert("RGB").getcolors(1 << 16) or []) > 2  # a drawn chart, not blank
    # the font cache stays in the plugin's data folder for the next run
    assert list((tmp_path / "data" / "plugins" / "code" / "matplotlib").glob("fontlist*.json"))


async def test_a_chart_only_shown_is_sent_and_plain_output_stays_text(tmp_path: Path) -> None:
    shown = "import matplotlib.pyplot as plt\nplt.bar(['a', 'b'], [1, 2])\nplt.show()"
    text, [figure] = await run(tmp_path, shown)
    assert (text, figure.name, figure.mime) == ("", "figure-1.png", "image/png")
    assert figure.data.startswith(b"\x89PNG")
    assert await code_host(tmp_path).call_tool("code", "run_python", {"code": "6 * 7"}) == "42\n"


async def test_links_fifos_sparse_giants_and_bad_names_are_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    hostile = f"""
import os
os.symlink("/etc/passwd", "passwd")
os.symlink({str(secret)!r}, "secret.txt")
os.mkfifo("pipe")
with open("giant.bin", "wb") as f:
    try:
        f.truncate(2**30)
    except OSError as exc:
        print("1 GB:", exc.strerror)
    f.truncate(100_000_000)
os.mkdir("sub")
open(os.path.join(OUT, "../escape.txt"), "w").write("x")
open("\\udcff.png", "wb").write(b"x")
open("cat\\u202egnp.exe", "wb").write(b"x")
open(".hidden", "w").write("x")
open("fake.png", "w").write("<svg/>")
try:
    open("a\\0b.txt", "w")
except ValueError as exc:
    print("NUL:", exc)
"""
    text, files = await run(tmp_path, hostile)
    assert [(f.name, f.mime) for f in files] == [("fake.png", "application/octet-stream")]
    assert text.splitlines() == [
        "1 GB: File too large",
        "NUL: embedded null byte",
        ".hidden: not sent, it is hidden (its name starts with a dot)",
        "cat\\u202egnp.exe: not sent, its name holds the character U+202E",
        "giant.bin: not sent, it has 100,000,000 bytes, more than the 2,500,000 a file may have",
        "passwd: not sent, it is a symbolic link",
        "pipe: not sent, it is not a plain file (a FIFO, socket or device)",
        "secret.txt: not sent, it is a symbolic link",
        "sub: not sent, it is a folder (only files directly in the output folder are sent)",
        "\\udcff.png: not sent, its name is not valid UTF-8",
    ]
    assert "root:" not in text and SECRET not in text


async def test_a_thousand_files_send_ten_and_one_line(tmp_path: Path) -> None:
    many = "for i in range(1000):\n    open(f'{i:04}.txt', 'w').write(str(i))"
    text, files = await run(tmp_path, many)
    assert [f.name for f in files] == [f"{i:04}.txt" for i in range(10)]
    assert [f.data for f in files] == [str(i).encode() for i in range(10)]
    assert text == (
        "990 more files not sent: at most 10 files per run (0010.txt, 0011.txt, 0012.txt, ...)\n"
    )


async def test_the_files_of_a_run_share_one_size_limit(tmp_path: Path) -> None:
    three = "for name in 'abc':\n    open(name + '.bin', 'wb').write(bytes(1_000_000))"
    text, files = await run(tmp_path, three)
    assert [f.name for f in files] == ["a.bin", "b.bin"]
    assert text == "c.bin: not sent, the files of one run may hold 2,500,000 bytes together\n"


async def test_swapping_the_output_folder_for_a_link_reads_nothing(tmp_path: Path) -> None:
    swap = "import os\nos.chdir('/')\nos.rmdir(OUT)\nos.symlink('/etc', OUT)\nprint('swapped')"
    assert await run(tmp_path, swap) == ("swapped\n", [])


async def test_a_stolen_folder_handle_and_a_flood_of_bad_names_say_little(tmp_path: Path) -> None:
    steal = """
import os
for fd in range(3, 64):
    if os.path.realpath(f"/proc/self/fd/{fd}") == OUT:
        os.close(fd)
        assert os.open("/etc", os.O_RDONLY) == fd
        print("stolen")
"""
    assert await run(tmp_path, steal) == (
        "stolen\nno files sent: the snippet closed the output folder's handle\n",
        [],
    )
    flood = "for i in range(500):\n    open(f'.hidden{i:03}', 'w')"
    text, files = await run(tmp_path, flood)
    lines = text.splitlines()
    assert files == [] and len(lines) == 13
    assert lines[0] == ".hidden000: not sent, it is hidden (its name starts with a dot)"
    assert lines[-1] == "... and 488 more things in the output folder not sent"


def test_only_a_list_of_text_and_files_carries_files() -> None:
    chart = OutFile("plot.png", "image/png", b"\x89PNG", caption="c")
    assert tool_files(["out\n", chart.to_json()]) == ("out\n", [chart])
    assert tool_files(chart) == ("", [chart])
    assert tool_files(["a", "b"]) is None  # plain data stays data
    assert tool_files(["a", chart.to_json(), 3]) is None
    with collecting() as sent:
        assert hand_over_files(["out\n", chart]) == "out\n[sent file plot.png, 4 bytes]"
    assert sent == [chart]
