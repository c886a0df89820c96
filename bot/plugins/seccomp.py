"""A seccomp filter that stops a sandboxed process from creating processes or running programs.

The Python audit hook in :mod:`bot.plugins.guard` only sees Python APIs; ``ctypes`` calling
libc's ``fork()``/``system()`` or ``_posixsubprocess.fork_exec`` walk past it. This filter is
enforced by the kernel: once loaded (with ``PR_SET_NO_NEW_PRIVS``) it cannot be removed, and it
is inherited by every thread.

Without the ``process`` permission it refuses ``fork``, ``vfork``, ``execve``, ``execveat`` and
every ``clone`` without ``CLONE_THREAD`` (EPERM; ``ptrace`` and ``process_vm_writev`` too, so
it cannot drive an unfiltered process), so threads (``asyncio.to_thread``) still work;
``clone3`` fails with ENOSYS, because its flags live in a struct a filter cannot read, and glibc
then falls back to ``clone``, whose flags it can.

Why libseccomp through ctypes rather than a hand-built BPF program: libseccomp checks the
architecture word (an x32 or 32-bit syscall cannot slip past a filter written for x86_64),
resolves syscall numbers per architecture and handles 64-bit argument comparisons, which a
hand-written program would have to get right by itself. ``libseccomp.so.2`` is installed with
systemd/apt on every Debian-like system (``scripts/system-deps.sh`` makes sure), and the PyPI
bindings (``pyseccomp``, ``seccomp``) are either unmaintained or need a compiler. On an
architecture where ``clone``'s flags are not its first argument (s390) the filter refuses to
load rather than guess.

``python -m bot.plugins.seccomp [--no-process] [--nproc N] [--memory-mb N] -- CMD ARGS...``
loads the filter and limits, then runs ``CMD`` in place of itself: how MCP stdio servers start
inside the sandbox (``execve`` itself stays allowed there, since it replaces the process rather
than adding one; ``fork``/``clone`` are refused).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import platform
import resource
import sys

__all__ = ["SeccompUnavailable", "install_process_filter", "limit_processes"]

_SCMP_ACT_ALLOW = 0x7FFF0000
_SCMP_CMP_MASKED_EQ = 7
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_DUMPABLE = 4
_CLONE_THREAD = 0x00010000
_NR_SCMP_ERROR = -1


def _act_errno(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


class SeccompUnavailable(RuntimeError):
    """libseccomp is missing or the kernel refused the filter."""


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


def _library() -> ctypes.CDLL:
    try:  # the soname first: find_library runs ldconfig, a process we would rather not start
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError:
        try:
            lib = ctypes.CDLL(
                ctypes.util.find_library("seccomp") or "libseccomp.so", use_errno=True
            )
        except OSError:
            raise SeccompUnavailable(
                "libseccomp is not installed (Debian/Ubuntu: apt-get install libseccomp2)"
            ) from None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.restype = ctypes.c_int
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgCmp),
    ]
    lib.seccomp_load.restype = ctypes.c_int
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.restype = None
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    return lib


def _rule(lib: ctypes.CDLL, ctx: int, action: int, name: str, *compare: _ArgCmp) -> None:
    number = lib.seccomp_syscall_resolve_name(name.encode())
    if number == _NR_SCMP_ERROR:
        return  # not a syscall on this architecture (fork on arm64): nothing to refuse
    array = (_ArgCmp * len(compare))(*compare) if compare else None
    code = lib.seccomp_rule_add_array(ctx, action, number, len(compare), array)
    if code < 0:
        raise SeccompUnavailable(f"seccomp rule for {name} refused: {os.strerror(-code)}")


def install_process_filter(*, allow_exec: bool = False) -> None:
    """Refuse process creation (and, unless ``allow_exec``, running programs) from now on.

    Raises :class:`SeccompUnavailable` when the filter cannot be loaded; the caller must then
    not run untrusted code.
    """
    if platform.machine().lower().startswith("s390"):
        raise SeccompUnavailable("the process filter does not support s390 (clone's flags)")
    lib = _library()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise SeccompUnavailable(f"PR_SET_NO_NEW_PRIVS failed: {os.strerror(ctypes.get_errno())}")
    ctx = lib.seccomp_init(_SCMP_ACT_ALLOW)
    if not ctx:
        raise SeccompUnavailable("seccomp_init failed")
    try:
        deny = _act_errno(errno.EPERM)
        blocked = ["fork", "vfork", "ptrace", "process_vm_writev"]
        if not allow_exec:
            blocked += ["execve", "execveat"]
        for name in blocked:
            _rule(lib, ctx, deny, name)
        not_a_thread = _ArgCmp(0, _SCMP_CMP_MASKED_EQ, _CLONE_THREAD, 0)
        _rule(lib, ctx, deny, "clone", not_a_thread)
        _rule(lib, ctx, _act_errno(errno.ENOSYS), "clone3")
        code = lib.seccomp_load(ctx)
        if code < 0:
            raise SeccompUnavailable(f"seccomp_load failed: {os.strerror(-code)}")
    finally:
        lib.seccomp_release(ctx)


def limit_processes(count: int) -> None:
    """Cap processes and threads (RLIMIT_NPROC, hard too).

    The count is per user inside a user namespace, and bubblewrap gives every sandbox its own,
    so this binds a sandbox started by root as well (root's capabilities do not reach into it).
    """
    _soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)
    cap = count if hard == resource.RLIM_INFINITY else min(count, hard)
    resource.setrlimit(resource.RLIMIT_NPROC, (cap, cap))


def _main(argv: list[str]) -> None:
    """Load limits and the filter, then become ``CMD`` (see the module docstring).

    With ``--egress SOCKET`` (an MCP server with network grants) this process stays as the
    parent: it runs the bridge to the egress proxy and starts ``CMD`` as its one child, with
    ``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY`` pointing at the bridge; the child loads the
    filter and limits itself (through this same entry point) before it becomes ``CMD``.
    """
    if "--" not in argv:
        sys.exit("usage: python -m opencomputer.bot.plugins.seccomp [options] -- CMD [ARGS...]")
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1 :]
    flags = {o for o in options if o == "--no-process"}
    rest = [o for o in options if o not in flags]
    values = dict(zip(rest[::2], rest[1::2], strict=False))
    if "--egress" in values:
        sys.exit(_serve_with_bridge(values.pop("--egress"), options, command))
    if "--memory-mb" in values:
        size = int(values["--memory-mb"]) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (size, size))
    if "--nproc" in values:
        limit_processes(int(values["--nproc"]))
    if flags:
        install_process_filter(allow_exec=True)
    os.execvp(command[0], command)


def _serve_with_bridge(socket_path: str, options: list[str], command: list[str]) -> int:
    import subprocess

    from opencomputer.bot.plugins.bridge import start_bridge

    # not dumpable: the confined child (same uid) cannot ptrace us or write /proc/<us>/mem
    ctypes.CDLL(None).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    port = start_bridge(socket_path)
    env = dict(os.environ)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "MQTT_PROXY"):
        env[name] = env[name.lower()] = f"http://127.0.0.1:{port}"
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)
    at = options.index("--egress")
    child = [
        sys.executable,
        "-m",
        "opencomputer.bot.plugins.seccomp",
        *options[:at],
        *options[at + 2 :],
    ]
    return subprocess.call([*child, "--", *command], env=env)


if __name__ == "__main__":
    _main(sys.argv[1:])
