"""The README, executable: every shell command in README.md and docs/*.md runs.

A command is a line of a fenced ```bash (or ```sh) block; ``\\`` continues a
line; ``#`` starts a comment.  An HTML comment just before a block says how
its commands are tested (it does not show on GitHub):

* no marker: run here, with bash, in a scratch copy of the clone (each block in one
  shell, ``set -e``, each command under a timeout);
* ``<!-- readme-test: ci ... -->``: the commands install the course or run
  the whole suite, so ``.ci/run`` runs them -- verbatim, which this test
  checks (running the suite from inside the suite would never end);
* ``<!-- readme-test: lab ... -->``: the live lab: run as root only (a normal
  user skips: sudo would ask for a password; tests/test_lab.py covers the
  rootless lab), one lab at a time
  (``flock /tmp/pw-lab.lock``); ``sudo`` is dropped when already root and no
  sudo is installed (as root they are the same command);
* ``<!-- readme-test: skip REASON -->``: not run; the reason is required.

Three commands are run in a bounded form, said here rather than hidden:
``coursekit open`` runs with ``--no-browser`` until JupyterLab prints the
chapter's URL, then is stopped; ``pytest`` (outside ci blocks) runs with
``--collect-only`` (collecting proves the command and its plugins work: nbval
is what collects notebooks); ``coursekit data`` writes to a scratch folder
(``--root``) instead of the checked-in data/, which test_data_is_not_stale
checks.  Inline commands in prose (`` `python -m coursekit ...` ``) are
parsed by the CLI's own parser, so a renamed flag fails here too.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import IN_CI, ROOT, require

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"<!--\s*readme-test:\s*(\w+)\s*(.*?)-->")


@dataclass
class Block:
    doc: str
    line: int
    mode: str
    reason: str
    commands: list[str]


def blocks(path: Path) -> list[Block]:
    out = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^```(bash|sh|shell)\s*$", lines[i])
        if not m:
            i += 1
            continue
        j = i - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        mk = MARKER.search(lines[j]) if j >= 0 else None
        mode, reason = (mk.group(1), mk.group(2).strip()) if mk else ("run", "")
        cmds, cur, k = [], "", i + 1
        while k < len(lines) and not lines[k].startswith("```"):
            text = lines[k]
            cur += text[:-1] + " " if text.endswith("\\") else text
            if not text.endswith("\\"):
                if cur.strip() and not cur.strip().startswith("#"):
                    cmds.append(cur.strip())
                cur = ""
            k += 1
        out.append(Block(path.name, i + 1, mode, reason, cmds))
        i = k + 1
    return out


ALL = [b for d in DOCS for b in blocks(d)]


def _id(b: Block) -> str:
    return f"{b.doc}:{b.line}"


def test_the_readme_has_commands_and_every_marker_is_known():
    assert len(ALL) >= 5 and sum(len(b.commands) for b in ALL) >= 15
    for b in ALL:
        assert b.mode in ("run", "ci", "lab", "skip"), _id(b)
        assert b.mode != "skip" or b.reason, f"{_id(b)}: a skipped block must say why"


@pytest.mark.parametrize("block", [b for b in ALL if b.mode == "ci"], ids=_id)
def test_ci_blocks_are_run_by_ci_verbatim(block):
    ci = (ROOT / ".ci/run").read_text().splitlines()
    for cmd in block.commands:
        assert cmd in ci, f".ci/run must run README's {cmd!r} as written"


def _shim_dir(tmp_path: Path) -> Path:
    """`python` and `coursekit` as this test run has them (the venv's, or a shim for `coursekit`)."""
    d = tmp_path / "bin"
    d.mkdir()
    for name in ("python", "python3"):      # a symlink would lose the venv (pyvenv.cfg sits beside it)
        (d / name).write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} \"$@\"\n")
        (d / name).chmod(0o755)
    exe = Path(sys.executable).parent / "coursekit"
    if exe.exists():
        (d / "coursekit").symlink_to(exe)
    else:                               # not pip-installed here (PYTHONPATH): the same entry point
        (d / "coursekit").write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m coursekit \"$@\"\n")
        (d / "coursekit").chmod(0o755)
    return d


def _rewrite(cmd: str, scratch: Path) -> str:
    words = shlex.split(cmd, comments=True)
    if not words:
        return ""
    if re.search(r"\bcoursekit open\b", cmd):
        extra = "" if "--no-browser" in words else " --no-browser"
        return f"open_until_url {cmd.split('#')[0].strip()}{extra}"
    if re.search(r"\bpytest\b", cmd) and "--collect-only" not in words:
        return cmd.split("#")[0].strip() + " --collect-only -q -p no:cacheprovider"
    if re.search(r"\bcoursekit data\b", cmd):
        return cmd.split("#")[0].strip() + f" --root {shlex.quote(str(scratch / 'data'))}"
    if words[0] == "sudo" and os.geteuid() == 0 and not shutil.which("sudo"):
        return cmd.split("sudo", 1)[1].strip()
    return cmd


PREAMBLE = r"""
set -euo pipefail
open_until_url() {      # start JupyterLab, wait for the chapter's URL, stop it
    local log; log=$(mktemp)
    setsid "$@" >"$log" 2>&1 & local pid=$!
    local deadline=$((SECONDS + 300))   # a loaded machine starts JupyterLab slowly; polled, not slept
    while ((SECONDS < deadline)); do
        if grep -q "http://.*/lab/tree/notebooks/00-the-scenario.ipynb" "$log"; then
            kill -- -"$pid"; wait "$pid" || true; rm -f "$log"; echo "open: chapter URL printed"; return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    kill -- -"$pid" 2>/dev/null || true; cat "$log" >&2; rm -f "$log"; return 1
}
"""


def _run_block(block: Block, tmp_path: Path, timeout: int) -> subprocess.CompletedProcess:
    # a scratch copy of the clone: the commands run "in a clone", and what they write stays there
    scratch = tmp_path / "clone"
    shutil.copytree(ROOT, scratch, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", ".hypothesis",
                                                                 ".pytest_cache", ".benchmarks"))
    script = PREAMBLE + "".join(f"echo '$ '{shlex.quote(c)}\n{_rewrite(c, scratch)}\n" for c in block.commands)
    env = dict(os.environ, PATH=f"{_shim_dir(tmp_path)}:{os.environ.get('PATH', '/usr/bin:/bin')}",
               PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run(["bash", "-c", script], cwd=scratch, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("block", [b for b in ALL if b.mode == "run"], ids=_id)
def test_readme_block_runs(block, tmp_path):
    r = _run_block(block, tmp_path, timeout=600)
    assert r.returncode == 0, f"{_id(block)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    assert "Traceback" not in r.stderr


@pytest.mark.real
@pytest.mark.parametrize("block", [b for b in ALL if b.mode == "lab"], ids=_id)
def test_readme_lab_block_runs(block, tmp_path):
    if os.geteuid() != 0:       # sudo would ask for a password; tests/test_lab.py runs the lab rootless
        pytest.skip("the README's lab commands run as root (sudo)")
    require(shutil.which("flock") is not None, "flock is not installed")
    lock = open("/tmp/pw-lab.lock", "w")
    import fcntl
    fcntl.flock(lock, fcntl.LOCK_EX)               # one lab at a time (the lab test and notebook use it too)
    try:
        r = _run_block(block, tmp_path, timeout=1800)
    finally:
        subprocess.run([sys.executable, "-m", "coursekit", "lab", "down"], capture_output=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=300)
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
    assert r.returncode == 0, f"{_id(block)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"


def test_inline_coursekit_commands_in_prose_parse():
    """`python -m coursekit ...` written inline in prose must be a command the CLI accepts."""
    from coursekit.cli import _parse
    seen = 0
    for doc in DOCS:
        text = re.sub(r"```.*?```", "", doc.read_text(encoding="utf-8"), flags=re.S)
        for m in re.finditer(r"`(?:sudo \"\$\(command -v coursekit\)\" |python -m coursekit |coursekit )([^`]*)`",
                             text):
            argv = shlex.split(m.group(1))
            if not argv or argv[0].startswith("..."):
                continue
            seen += 1
            try:
                _parse(argv, "coursekit")
            except SystemExit as e:
                pytest.fail(f"{doc.name}: `{m.group(0)}` does not parse (exit {e.code})")
    assert seen >= 3
