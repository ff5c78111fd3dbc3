"""Run numbered scripts as `python SCRIPT ARGS...` would, each in a process of its own forked from this one, which
has already imported the libraries they load (torch alone takes seconds per process): used by tests/test_safety.py.

    python -m tests.fork_runner        (from the project's root) then, per command, one JSON line on stdin:
    {"argv": [python, SCRIPT, ARGS...], "cwd": DIR, "env": {...}, "stdout": FILE, "stderr": FILE}

and one JSON line back, {"returncode": N}, once that command's process has ended (-9: killed by SIGKILL, as
subprocess reports it). The child runs SCRIPT as `__main__` with sys.argv = [SCRIPT, ARGS...] and sys.path[0] its
folder, in DIR with exactly that environment, stdin from /dev/null and stdout/stderr written to the two files; its
exit status is the script's: sys.exit's code, 1 after an uncaught exception (traceback on stderr), -14 (SIGALRM)
after TIMEOUT seconds. SCRIPT may be tests/kill_at.py, which runs the real script itself. Nothing is imported here
that a script imports only lazily (wandb): that import, and whatever it reads from the environment, happens in the
child.
"""

import atexit
import contextlib
import json
import os
import runpy
import signal
import sys
import traceback

import hydra  # noqa: F401
import torch  # noqa: F401

import pipeline.analyze  # noqa: F401
import pipeline.cli  # noqa: F401 (registers Hydra's shared settings, as every script does)
import pipeline.evaluate  # noqa: F401
import pipeline.generate  # noqa: F401
import pipeline.sample  # noqa: F401
import pipeline.train  # noqa: F401

# Not pipeline.report: pandas starts a thread, and a process that forks must have none but its own (a lock held by
# another thread at the fork would stay held in the child). 04_report.py imports it in its child.
TIMEOUT = 300  # seconds a command may run: SIGALRM ends it (as subprocess.run's timeout would)


def child(request: dict) -> int:
    """In the forked process: become `python SCRIPT ARGS...` and run it; returns its exit status."""
    signal.alarm(TIMEOUT)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for fd, path, flags in ((0, os.devnull, os.O_RDONLY), (1, request["stdout"], os.O_WRONLY | os.O_CREAT),
                            (2, request["stderr"], os.O_WRONLY | os.O_CREAT)):
        opened = os.open(path, flags, 0o644)
        os.dup2(opened, fd)
        os.close(opened)
    script, *args = request["argv"][1:]
    sys.argv = [script, *args]
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    try:
        runpy.run_path(script, run_name="__main__")
        code = 0
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            code = stop.code or 0
        else:
            print(stop.code, file=sys.stderr)
            code = 1
    except BaseException:  # noqa: BLE001 (as the interpreter does with an uncaught exception)
        traceback.print_exc()
        code = 1
    atexit._run_exitfuncs()  # what the interpreter runs at exit (logging's shutdown among them)
    return code


def main() -> None:
    threads = os.listdir("/proc/self/task")
    if len(threads) != 1:
        sys.exit(f"tests/fork_runner.py: {len(threads)} threads after its imports; it forks only with one "
                 "(OMP_NUM_THREADS=1, as tests/conftest.py sets it)")
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = child(request)
            finally:
                for stream in (sys.stdout, sys.stderr):
                    with contextlib.suppress(Exception):  # a closed stream: nothing left to write
                        stream.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)  # stdin closed: nothing of this process's own to clean up (an interpreter's exit takes seconds)
