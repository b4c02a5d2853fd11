"""The sandbox: one fresh, isolated process per submission, forked from a warm template.

    judge (trusted) --control socket--> zygote (in bubblewrap) --fork--> student process
          \\--------------- its own socket (requests and replies, see wire.py) ---------/

`import torch` costs over a second, far more than grading a layer, so the student's process is
not started afresh: a **zygote** imports torch and the autograder once, inside bubblewrap, and
forks one process per submission. bubblewrap (Debian's `bubblewrap`) gives the zygote its world:
the Python environment and the autograder package read-only and nothing else of the machine (no
course directory: no solutions, gradebook or other submissions), a private /tmp, no network, its
own PID, IPC and UTS namespaces, a new session, and death with the judge. Each fork then makes
its own namespaces (mounts, PIDs, network, IPC), a fresh tmpfs as its scratch space (gone when it
ends), a /proc that shows only itself, rlimits (address space, processes, file size, open files,
CPU time, no core files), drops every privilege (an unprivileged uid as root, no capabilities,
no_new_privs) and only then runs the notebook. It is PID 1 of its namespace, so killing it kills
everything it started; it cannot see, let alone signal, the zygote or the judge. The zygote never
runs student code, so no submission can leave anything behind for the next.

Where bubblewrap is missing or cannot create namespaces (user namespaces disabled), the zygote is
a plain child process and each student process only gets rlimits, its own session and scratch
directory, and an unprivileged uid when the judge is root: `isolation()` says why, and every
report's header says "not isolated: ...", never silently.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import shutil
import signal
import site
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
#: uid the student's process runs as when the judge is root (no user of the machine has it)
SANDBOX_UID_BASE = 2_000_000_000


@dataclass(frozen=True)
class Limits:
    """What one submission may use. Times in seconds, sizes in bytes."""

    call: float = 60.0  # one request (a forward, a backward, building the layer)
    cell: float = 60.0  # one code cell of the notebook
    training: float = 300.0  # the capstone's training run
    budget: float = 600.0  # everything one submission may take, restarts included
    restarts: int = 50  # fresh processes after faults, before the rest is not graded
    timeouts: int = 2  # calls or cells that ran out of time, before the rest is not graded
    memory: int = 4 * 2 ** 30  # address space beyond the template's
    processes: int = 64
    file_size: int = 256 * 2 ** 20
    scratch: int = 512 * 2 ** 20  # the scratch tmpfs
    open_files: int = 256
    output: int = 64_000  # characters of a cell's printed output that are kept

    @classmethod
    def from_env(cls, **overrides: float) -> Limits:
        """Defaults, changed by $AUTOGRADER_LIMITS ("call=5,cell=5") and then by `overrides`."""
        values: dict = {}
        for item in filter(None, os.environ.get("AUTOGRADER_LIMITS", "").split(",")):
            key, _, value = item.partition("=")
            values[key.strip()] = float(value)
        values.update({k: v for k, v in overrides.items() if v is not None})
        kinds = {f: type(getattr(cls(), f)) for f in cls.__dataclass_fields__}
        unknown = set(values) - set(kinds)
        if unknown:
            raise ValueError(f"unknown limit(s) {sorted(unknown)}; limits are {sorted(kinds)}")
        return cls(**{k: kinds[k](v) for k, v in values.items()})


# --- which isolation this machine allows ---------------------------------------------------------------

def _bwrap() -> str | None:
    return shutil.which("bwrap")


def _readable_roots() -> list[str]:
    """What the zygote must see: the Python installation and environment, their site-packages, the
    autograder package (only it, even when installed in editable mode from the course directory)."""
    roots = {sys.base_prefix, sys.prefix, sys.exec_prefix, str(Path(sys.executable).resolve().parent.parent)}
    for p in site.getsitepackages() + [site.getusersitepackages()]:
        if os.path.isdir(p):
            roots.add(os.path.realpath(p))
    roots = {os.path.realpath(r) for r in roots if os.path.isdir(r)}
    kept = sorted(r for r in roots if not any(r != o and r.startswith(o + os.sep) for o in roots))
    return kept + [str(PACKAGE)]


def bwrap_command(python: str, *args: str, binds: tuple[str, ...] = ()) -> list[str]:
    """bubblewrap around `python args`: see the module's docstring for what it sees. `binds` are more
    directories it sees read-only (the test suite's own modules, never a course directory)."""
    root = os.geteuid() == 0
    cmd = [_bwrap() or "bwrap", "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-net",
           "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    # as root: no user namespace, so the student's process can become an unprivileged uid; else a
    # user namespace gives the zygote the capabilities it needs to make each child's namespaces
    cmd += ["--cap-add", "ALL"] if root else ["--unshare-user", "--cap-add", "ALL"]
    for d in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.lexists(d):
            cmd += ["--ro-bind", d, d] if not os.path.islink(d) else ["--symlink", os.readlink(d), d]
    for f in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/nsswitch.conf",
              "/etc/passwd", "/etc/group", "/etc/alternatives"):
        if os.path.exists(f):
            cmd += ["--ro-bind", f, f]
    roots = _readable_roots() + [os.path.realpath(b) for b in binds]
    # the directories above each bind, made by bubblewrap, must be enterable by the student's uid
    parents = sorted({str(p) for r in roots for p in Path(r).parents if str(p) != "/"}, key=len)
    for d in parents:
        cmd += ["--perms", "0755", "--dir", d]
    for r in roots:
        cmd += ["--ro-bind", r, r]
    cmd += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/dev/shm"]
    # the GPU, when there is one: its device nodes (untested on this course's CPU machines)
    for dev in sorted(Path("/dev").glob("nvidia*")):
        cmd += ["--dev-bind", str(dev), str(dev)]
    cmd += ["--chdir", "/tmp", "--clearenv"]
    for key, value in _environment("/tmp").items():
        cmd += ["--setenv", key, value]
    return cmd + ["--", python, *args]


def _environment(home: str) -> dict[str, str]:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "TMPDIR": home, "USER": "student",
           "LOGNAME": "student", "LANG": "C.UTF-8", "MPLBACKEND": "Agg", "MPLCONFIGDIR": f"{home}/.matplotlib",
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONHASHSEED": "0"}
    for key in ("CUDA_VISIBLE_DEVICES", "AUTOGRADER_DEVICE"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


@cache
def isolation() -> tuple[str, str]:
    """("bwrap", "") when bubblewrap can make the sandbox here, else ("plain", why not)."""
    if os.environ.get("AUTOGRADER_SANDBOX") == "plain":
        return "plain", "not isolated: AUTOGRADER_SANDBOX=plain"
    if sys.platform != "linux":
        return "plain", "not isolated: the sandbox needs Linux"
    if not _bwrap():
        return "plain", "not isolated: install bubblewrap (make bubblewrap)"
    probe = bwrap_command(shutil.which("true") or "/bin/true")
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return "plain", f"not isolated: bubblewrap failed to start ({exc})"
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no message"])[-1][:200]
        return "plain", f"not isolated: bubblewrap cannot create its namespaces here ({why})"
    return "bwrap", ""


# --- the zygote (runs inside bubblewrap, or as a plain child) -----------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWPID, CLONE_NEWNET = (0x00020000, 0x04000000, 0x08000000,
                                                                       0x20000000, 0x40000000)
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 2, 4, 8, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_SET_CHILD_SUBREAPER = 1, 24, 38, 36


def _ok(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str, target: str, kind: str | None, flags: int, data: str | None = None) -> None:
    _ok(_libc.mount(source.encode(), target.encode(), kind.encode() if kind else None, flags,
                    data.encode() if data else None), f"mount {target}")


def _drop_capabilities() -> None:
    """No capability left in any set, and none that can come back (bounding set, no_new_privs)."""
    for cap in range(64):
        _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    _ok(_libc.capset(ctypes.byref(Header(0x20080522, 0)), (Data * 2)()), "capset")


def _vm_size() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def _child(channel: int, limits: dict, mode: str, uid: int | None, scratch: str | None, vm: int) -> None:
    """The student's process, from fork to the first request. Never returns."""
    try:
        null = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.dup2(channel, 3)
        os.closerange(4, 65536)
        if mode == "bwrap":
            size = int(limits["scratch"])
            _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={size},mode=1777")
            _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=64m,mode=1777")
            _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
            home = "/tmp"
        else:
            os.setsid()
            home = scratch or tempfile.gettempdir()
        os.chdir(home)
        os.environ.clear()
        os.environ.update(_environment(home))
        caps = [(resource.RLIMIT_AS, vm + int(limits["memory"])), (resource.RLIMIT_FSIZE, int(limits["file_size"])),
                (resource.RLIMIT_NOFILE, int(limits["open_files"])), (resource.RLIMIT_CORE, 0),
                (resource.RLIMIT_NPROC, int(limits["nproc"]))]
        cpu = int(limits["budget"]) + 5
        caps.append((resource.RLIMIT_CPU, cpu))
        for what, value in caps:
            resource.setrlimit(what, (value, value + 5 if what == resource.RLIMIT_CPU else value))
        if uid is not None:  # the judge is root: become nobody in particular
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        elif mode == "bwrap":
            _drop_capabilities()
        _ok(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversized write fails instead of killing
        from .server import serve

        serve(socket.socket(fileno=3), output=int(limits["output"]))
    except BaseException:  # noqa: BLE001 - nothing of a failed set-up may run on
        pass
    os._exit(70)


def _spawn(channel: int, limits: dict, mode: str, uid: int | None, vm: int) -> tuple[int, str | None]:
    """Fork the student's process; its pid as the zygote sees it, and its scratch directory (plain mode)."""
    scratch = None
    if mode == "plain":
        scratch = tempfile.mkdtemp(prefix="layers-student-")
        if uid is not None:
            os.chown(scratch, uid, uid)
    read, write = os.pipe()
    first = os.fork()
    if first == 0:  # the intermediate process: new namespaces, then the student's process in them
        try:
            os.close(read)
            if mode == "bwrap":
                _ok(_libc.unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS),
                    "unshare")
                _mount("none", "/", None, MS_REC | MS_PRIVATE)
            pid = os.fork()
            if pid == 0:
                os.close(write)
                _child(channel, limits, mode, uid, scratch, vm)
            os.write(write, str(pid).encode())
        except BaseException:  # noqa: BLE001
            pass
        os._exit(0)
    os.close(write)
    os.waitpid(first, 0)
    text = os.read(read, 32)
    os.close(read)
    return (int(text) if text else 0), scratch


def _describe_status(status: int) -> dict:
    if os.WIFSIGNALED(status):
        return {"signal": os.WTERMSIG(status)}
    return {"exit": os.WEXITSTATUS(status)}


def _warm_up() -> None:
    """Pay the one-time costs in the zygote, so that no child pays them: torch's op tables, the
    tracer, autograd, the specs, matplotlib's font list."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401
    import torch
    from torch import nn

    import autograder  # noqa: F401 - the registry
    from autograder.spec import call
    from autograder.student import Local

    torch.set_num_threads(1)
    side = Local(nn.Linear)
    layer = side.build((3, 2), {}, seed=0)
    layer.forward(call(torch.randn(4, 3)), leaves=True, traced="ops")
    layer.backward([0], [torch.ones(4, 2)])
    layer.count_ops(call(torch.randn(4, 3)))


def zygote_main(fd: int, mode: str, uid: int | None) -> None:
    """Serve the judge's requests on the control socket `fd`: spawn, reap."""
    control = socket.socket(fileno=fd)
    _warm_up()
    _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    vm = _vm_size()
    dead: dict[int, int] = {}
    scratches: dict[int, str] = {}
    control.send(json.dumps({"ready": True, "vm": vm}).encode())

    def reap_all() -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            dead[pid] = status

    while True:
        try:
            data, fds, _, _ = socket.recv_fds(control, 65536, 4)
        except OSError:
            break
        if not data:
            break
        request = json.loads(data)
        reap_all()
        if request["op"] == "spawn":
            pid, scratch = _spawn(fds[0], request["limits"], mode, uid, vm)
            for f in fds:
                os.close(f)
            if scratch:
                scratches[pid] = scratch
            control.send(json.dumps({"pid": pid}).encode())
        elif request["op"] == "reap":
            pid, grace = int(request["pid"]), float(request.get("grace", 0))
            end = time.monotonic() + grace
            while pid not in dead and time.monotonic() < end:
                time.sleep(0.01)
                reap_all()
            killed = pid not in dead
            if killed:
                _kill(pid, mode)
                try:
                    dead[pid] = os.waitpid(pid, 0)[1]
                except ChildProcessError:
                    dead[pid] = 0
            status = _describe_status(dead.pop(pid))
            if pid in scratches:
                shutil.rmtree(scratches.pop(pid), ignore_errors=True)
            control.send(json.dumps({**status, "killed": killed}).encode())
    for pid in list(scratches):
        _kill(pid, mode)
        shutil.rmtree(scratches.pop(pid), ignore_errors=True)


def _kill(pid: int, mode: str) -> None:
    try:
        if mode == "plain":
            os.killpg(pid, signal.SIGKILL)  # its session (best effort: a grandchild may have left it)
        os.kill(pid, signal.SIGKILL)  # PID 1 of its namespace in bwrap: everything in it dies too
    except (ProcessLookupError, PermissionError):
        pass


# --- the judge's end -------------------------------------------------------------------------------------

class SandboxError(RuntimeError):
    """The sandbox itself (not a submission) failed: the zygote would not start or answer."""


class Zygote:
    """The judge's handle on one zygote: started on first use, restarted if it died."""

    def __init__(self, binds: tuple[str, ...] = ()) -> None:
        self.binds = tuple(binds)
        self.mode, self.why = isolation()
        self.process: subprocess.Popen | None = None
        self.control: socket.socket | None = None
        self.vm = 0
        self.startup = 0.0  # seconds the last start took (measured apart in the benchmark)
        self._lock = threading.Lock()
        if self.mode == "plain":
            print(f"autograder: {self.why}: submissions run as plain processes with rlimits only",
                  file=sys.stderr)

    @property
    def header(self) -> str:
        """What every report says about the isolation of the student's code."""
        return "sandboxed" if self.mode == "bwrap" else self.why

    def _uid(self) -> int | None:
        return SANDBOX_UID_BASE + os.getpid() % 1_000_000 if os.geteuid() == 0 else None

    def start(self) -> None:
        begin = time.perf_counter()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        args = ["-I", "-m", "autograder.sandbox", "zygote", str(theirs.fileno()), self.mode,
                str(self._uid() if self._uid() is not None else "-")]
        if self.mode == "bwrap":
            cmd = bwrap_command(sys.executable, *args, binds=self.binds)
        else:
            cmd = [sys.executable, *args]
        env = None if self.mode == "bwrap" else {**os.environ, **_environment(tempfile.gettempdir())}
        self.process = subprocess.Popen(cmd, pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                                        start_new_session=True, cwd="/" if self.mode == "bwrap" else None)
        theirs.close()
        ours.settimeout(120)
        try:
            ready = json.loads(ours.recv(65536) or b"{}")
        except (OSError, ValueError):
            ready = {}
        if not ready.get("ready"):
            err = self.process.stderr.read().decode(errors="replace")[-2000:] if self.process.stderr else ""
            self.process.kill()
            raise SandboxError(f"the sandbox's zygote did not start: {err.strip() or 'no message'}")
        ours.settimeout(None)
        self.control, self.vm = ours, int(ready.get("vm", 0))
        self.startup = time.perf_counter() - begin

    def _ask(self, request: dict, fds: list[int] = ()) -> dict:
        if self.process is None or self.process.poll() is not None:
            self.start()
        try:
            socket.send_fds(self.control, [json.dumps(request).encode()], list(fds))
            self.control.settimeout(120)
            return json.loads(self.control.recv(65536))
        except (OSError, ValueError) as exc:
            self.close()
            raise SandboxError(f"the sandbox's zygote stopped answering ({exc})") from None

    def spawn(self, limits: Limits) -> tuple[socket.socket, int]:
        """A fresh student process: the judge's end of its socket, and its pid (for `reap`)."""
        with self._lock:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                nproc = limits.processes
                if os.geteuid() != 0:  # counted with the user's other processes
                    nproc += _processes_of(os.geteuid())
                spec = {**asdict(limits), "nproc": nproc}
                pid = self._ask({"op": "spawn", "limits": spec}, [theirs.fileno()])["pid"]
            finally:
                theirs.close()
            if not pid:
                ours.close()
                raise SandboxError("the sandbox could not start a student process")
            return ours, pid

    def reap(self, pid: int, grace: float = 0.0) -> dict:
        """Wait up to `grace` seconds for the process to end, kill it if it has not, and return how it
        ended: {"exit": code} or {"signal": n}, and "killed" (True when we killed it)."""
        with self._lock:
            return self._ask({"op": "reap", "pid": pid, "grace": grace})

    def close(self) -> None:
        if self.control is not None:
            self.control.close()
            self.control = None
        if self.process is not None:
            if self.process.poll() is None:
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    self.process.kill()
            self.process.wait()
            if self.process.stderr:
                self.process.stderr.close()
            self.process = None


def _processes_of(uid: int) -> int:
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += 1
            except OSError:
                pass
    return count


_shared: Zygote | None = None


def shared() -> Zygote:
    """This process's zygote (one per judge process), closed when the process exits."""
    global _shared
    if _shared is None:
        import atexit

        _shared = Zygote()
        atexit.register(_shared.close)
    return _shared


if __name__ == "__main__" and len(sys.argv) >= 5 and sys.argv[1] == "zygote":
    zygote_main(int(sys.argv[2]), sys.argv[3], None if sys.argv[4] == "-" else int(sys.argv[4]))
