"""The sandbox's containers run one program: a small POSIX-like shell over an in-memory filesystem.

It does what kubectl's streaming commands need and what tests and the demo show: `exec` of a
command or of `sh -c`, an interactive shell behind a terminal (echo, line editing, Ctrl-C, Ctrl-D),
pipes and redirections, the pod's environment, and enough `tar` for `kubectl cp` in both
directions (Python's tarfile does the archive work). Programs read stdin from a `Pipe` and write
through async callables, so the same code serves WebSocket channels and in-process tests.
"""

from __future__ import annotations

import asyncio
import hashlib
import posixpath
import tarfile
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any

Output = Callable[[bytes], Awaitable[None]]
CHUNK = 32 * 1024
SHELLS = frozenset({"sh", "bash", "ash"})


class Pipe:
    """Bytes from a writer to a reader; `close()` is EOF. Bounded (depth chunks, 0 for unbounded), so
    a slow reader slows the writer down."""

    def __init__(self, depth: int = 64) -> None:
        self._chunks: deque[bytes] = deque()
        self._depth = depth
        self._eof = False
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()

    @property
    def closed(self) -> bool:
        return self._eof

    async def write(self, data: bytes) -> None:
        """Raises BrokenPipeError once the pipe is closed (its reader is gone), as SIGPIPE would stop a writer."""
        while self._depth and len(self._chunks) >= self._depth and not self._eof:
            self._writable.clear()
            await self._writable.wait()
        if self._eof:
            raise BrokenPipeError("write on a closed pipe")
        if data:
            self._chunks.append(data)
            self._readable.set()

    def close(self) -> None:
        self._eof = True
        self._readable.set()
        self._writable.set()

    async def read(self) -> bytes:
        """The next bytes, or b"" at EOF (and every time after)."""
        while not self._chunks:
            if self._eof:
                return b""
            self._readable.clear()
            await self._readable.wait()
        data = self._chunks.popleft()
        self._writable.set()
        return data

    async def readline(self) -> bytes | None:
        """One line with its newline (the last one may lack it); None at EOF."""
        buf = b""
        while b"\n" not in buf:
            chunk = await self.read()
            if not chunk:
                return buf or None
            buf += chunk
        line, _, rest = buf.partition(b"\n")
        if rest:
            self._chunks.appendleft(rest)
        return line + b"\n"

    async def read_all(self) -> bytes:
        parts = []
        while chunk := await self.read():
            parts.append(chunk)
        return b"".join(parts)

    @classmethod
    def of(cls, data: bytes) -> Pipe:
        pipe = cls(depth=0)
        if data:
            pipe._chunks.append(data)
        pipe.close()
        return pipe


# -- filesystem -------------------------------------------------------------------------------------


class FsError(Exception):
    pass


@dataclass
class Filesystem:
    """A container's files: paths are absolute and normalized; directories are a set."""

    files: dict[str, bytes] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=lambda: {"/", "/bin", "/etc", "/root", "/tmp", "/var", "/var/log"})
    mtimes: dict[str, float] = field(default_factory=dict)

    @staticmethod
    def resolve(path: str, cwd: str = "/") -> str:
        return posixpath.normpath(posixpath.join(cwd, path)).replace("//", "/")

    def is_dir(self, path: str) -> bool:
        return path in self.dirs

    def is_file(self, path: str) -> bool:
        return path in self.files

    def read(self, path: str) -> bytes:
        if path in self.dirs:
            raise FsError(f"{path}: Is a directory")
        if path not in self.files:
            raise FsError(f"{path}: No such file or directory")
        return self.files[path]

    def write(self, path: str, data: bytes, append: bool = False, mtime: float | None = None) -> None:
        parent = posixpath.dirname(path)
        if parent not in self.dirs:
            raise FsError(f"{path}: No such file or directory")
        if path in self.dirs:
            raise FsError(f"{path}: Is a directory")
        self.files[path] = (self.files.get(path, b"") if append else b"") + data
        self.mtimes[path] = time.time() if mtime is None else mtime

    def mkdir(self, path: str, parents: bool = False) -> None:
        if path in self.dirs:
            if parents:
                return
            raise FsError(f"{path}: File exists")
        parent = posixpath.dirname(path)
        if parent not in self.dirs:
            if not parents:
                raise FsError(f"{path}: No such file or directory")
            self.mkdir(parent, parents=True)
        if path in self.files:
            raise FsError(f"{path}: File exists")
        self.dirs.add(path)

    def listdir(self, path: str) -> list[str]:
        if path in self.files:
            return [posixpath.basename(path)]
        if path not in self.dirs:
            raise FsError(f"{path}: No such file or directory")
        prefix = path.rstrip("/") + "/"
        names = {
            p[len(prefix) :].split("/")[0] for p in (*self.files, *self.dirs) if p.startswith(prefix) and p != path
        }
        return sorted(names)

    def remove(self, path: str, recursive: bool = False) -> None:
        if path in self.files:
            del self.files[path]
            return
        if path not in self.dirs or path == "/":
            raise FsError(f"{path}: No such file or directory" if path != "/" else "refusing to remove /")
        if self.listdir(path) and not recursive:
            raise FsError(f"{path}: Is a directory")
        prefix = path + "/"
        for p in [p for p in self.files if p.startswith(prefix)]:
            del self.files[p]
        self.dirs -= {d for d in self.dirs if d == path or d.startswith(prefix)}


# -- words and commands -----------------------------------------------------------------------------

OPERATORS = ("&&", "||", ";", "|", "\n", "2>&1", "1>&2", ">&2", "2>", ">>", ">", "<")


class SyntaxErr(Exception):
    pass


def tokenize(script: str, env: dict[str, str], status: int) -> list[tuple[str, str]]:
    """(kind, text) tokens: kind "w" for a word (quotes removed, variables expanded), "op" for operators."""
    tokens: list[tuple[str, str]] = []
    word: list[str] = []
    in_word = False
    i, n = 0, len(script)

    def expand(j: int) -> tuple[str, int]:
        if j < n and script[j] == "?":
            return str(status), j + 1
        if j < n and script[j] == "{":
            end = script.find("}", j)
            if end < 0:
                raise SyntaxErr("bad substitution")
            return env.get(script[j + 1 : end], ""), end + 1
        k = j
        while k < n and (script[k].isalnum() or script[k] == "_"):
            k += 1
        return (env.get(script[j:k], ""), k) if k > j else ("$", j)

    def end_word() -> None:
        nonlocal in_word
        if in_word:
            tokens.append(("w", "".join(word)))
            word.clear()
            in_word = False

    while i < n:
        c = script[i]
        if c == "'":
            end = script.find("'", i + 1)
            if end < 0:
                raise SyntaxErr("unterminated quoted string")
            word.append(script[i + 1 : end])
            in_word, i = True, end + 1
        elif c == '"':
            i += 1
            in_word = True
            while i < n and script[i] != '"':
                if script[i] == "\\" and i + 1 < n and script[i + 1] in '"$\\`':
                    word.append(script[i + 1])
                    i += 2
                elif script[i] == "$":
                    value, i = expand(i + 1)
                    word.append(value)
                else:
                    word.append(script[i])
                    i += 1
            if i >= n:
                raise SyntaxErr("unterminated quoted string")
            i += 1
        elif c == "\\" and i + 1 < n:
            if script[i + 1] != "\n":
                word.append(script[i + 1])
                in_word = True
            i += 2
        elif c == "$":
            value, i = expand(i + 1)
            word.append(value)
            in_word = True
        elif c == "#" and not in_word:
            while i < n and script[i] != "\n":
                i += 1
        elif c in " \t\r":
            end_word()
            i += 1
        else:
            op = next((o for o in OPERATORS if script.startswith(o, i)), None)
            if op is None or (op[0] in "12" and in_word):
                word.append(c)
                in_word, i = True, i + 1
                continue
            end_word()
            tokens.append(("op", op))
            i += len(op)
    end_word()
    return tokens


@dataclass
class Simple:
    argv: list[str] = field(default_factory=list)
    stdout_file: str | None = None
    append: bool = False
    stdin_file: str | None = None
    stderr_file: str | None = None
    stderr_to_stdout: bool = False
    stdout_to_stderr: bool = False


def parse(tokens: list[tuple[str, str]]) -> list[tuple[list[Simple], str]]:
    """[(pipeline, connector)], the connector joining it to the next: ";", "&&" or "||"."""
    items: list[tuple[list[Simple], str]] = []
    pipeline: list[Simple] = [Simple()]
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        current = pipeline[-1]
        if kind == "w":
            current.argv.append(text)
        elif text in (">", ">>", "<", "2>"):
            if i + 1 >= len(tokens) or tokens[i + 1][0] != "w":
                raise SyntaxErr(f"syntax error: unexpected {text!r}")
            target = tokens[i + 1][1]
            if text == "<":
                current.stdin_file = target
            elif text == "2>":
                current.stderr_file = target
            else:
                current.stdout_file, current.append = target, text == ">>"
            i += 1
        elif text == "2>&1":
            current.stderr_to_stdout = True
        elif text in ("1>&2", ">&2"):
            current.stdout_to_stderr = True
        elif text == "|":
            if not current.argv:
                raise SyntaxErr("syntax error: unexpected '|'")
            pipeline.append(Simple())
        else:
            if pipeline[-1].argv:
                items.append((pipeline, ";" if text == "\n" else text))
            elif len(pipeline) > 1 or text in ("&&", "||"):
                raise SyntaxErr(f"syntax error: unexpected {text!r}")
            pipeline = [Simple()]
        i += 1
    if pipeline[-1].argv:
        items.append((pipeline, ";"))
    elif len(pipeline) > 1:
        raise SyntaxErr("syntax error: unexpected end of input")
    return items


class ExitShell(Exception):
    """`exit N`: unwinds to the program that started the shell."""

    def __init__(self, code: int) -> None:
        self.code = code


@dataclass
class Io:
    stdin: Pipe
    stdout: Output
    stderr: Output


Builtin = Callable[["Shell", list[str], Io], Awaitable[int]]
BUILTINS: dict[str, Builtin] = {}


def builtin(*names: str) -> Callable[[Builtin], Builtin]:
    def register(fn: Builtin) -> Builtin:
        for name in names:
            BUILTINS[name] = fn
        return fn

    return register


@dataclass
class Shell:
    """One shell process: its environment, working directory and the container's filesystem."""

    fs: Filesystem
    env: dict[str, str]
    hostname: str = "sandbox"
    size: tuple[int, int] = (80, 24)
    cwd: str = "/"
    status: int = 0
    _running: asyncio.Task[int] | None = None

    def path(self, name: str) -> str:
        return Filesystem.resolve(name, self.cwd)

    def interrupt(self) -> bool:
        """Ctrl-C: stop the command in the foreground; False when there is none."""
        if self._running is not None and not self._running.done():
            self._running.cancel()
            return True
        return False

    async def run_argv(self, argv: list[str], io: Io, interactive: bool = False) -> int:
        """What `exec` starts: a shell (with -c, or reading commands from stdin) or one program."""
        try:
            if posixpath.basename(argv[0]) in SHELLS:
                args = argv[1:]
                if args[:1] == ["-c"]:
                    if len(args) < 2:
                        await io.stderr(b"sh: -c requires an argument\n")
                        return 2
                    return await self.run_script(args[1], io)
                return await self.repl(io, interactive)
            return await self._foreground([Simple(list(argv))], io)
        except ExitShell as done:
            return done.code

    async def repl(self, io: Io, interactive: bool) -> int:
        while True:
            if interactive:
                await io.stdout(f"{self.hostname}:{self.cwd}# ".encode())
            line = await io.stdin.readline()
            if line is None:
                if interactive:
                    await io.stdout(b"exit\n")
                return self.status
            await self.run_script(line.decode(errors="replace"), io)

    async def run_script(self, script: str, io: Io) -> int:
        try:
            items = parse(tokenize(script, self.env, self.status))
        except SyntaxErr as exc:
            await io.stderr(f"sh: {exc}\n".encode())
            self.status = 2
            return 2
        skip = False
        for pipeline, connector in items:
            if not skip:
                self.status = await self._foreground(pipeline, io)
            skip = (connector == "&&" and self.status != 0) or (connector == "||" and self.status == 0)
        return self.status

    async def _foreground(self, pipeline: list[Simple], io: Io) -> int:
        task = asyncio.ensure_future(self._pipeline(pipeline, io))
        self._running = task
        try:
            return await task
        except asyncio.CancelledError:
            if task.cancelled() and not _current_cancelling():
                return 130
            raise
        finally:
            self._running = None

    async def _pipeline(self, pipeline: list[Simple], io: Io) -> int:
        if len(pipeline) == 1:
            return await self.run_simple(pipeline[0], io)
        pipes = [Pipe() for _ in pipeline[1:]]

        async def stage(i: int, cmd: Simple) -> int:
            out = pipes[i].write if i < len(pipes) else io.stdout
            try:
                return await self.run_simple(cmd, Io(pipes[i - 1] if i else io.stdin, out, io.stderr))
            except ExitShell as done:
                return done.code
            except BrokenPipeError:
                return 141
            finally:
                if i < len(pipes):
                    pipes[i].close()
                if i:
                    pipes[i - 1].close()

        codes = await asyncio.gather(*(stage(i, c) for i, c in enumerate(pipeline)))
        return codes[-1]

    async def run_simple(self, cmd: Simple, io: Io) -> int:
        captured: list[bytes] = []
        errors: list[bytes] = []
        stdin, stdout, stderr = io.stdin, io.stdout, io.stderr
        try:
            if cmd.stdin_file is not None:
                stdin = Pipe.of(self.fs.read(self.path(cmd.stdin_file)))
            if cmd.stdout_file is not None:
                target = self.path(cmd.stdout_file)
                self.fs.write(target, b"", append=True)

                async def capture(data: bytes) -> None:
                    captured.append(data)

                stdout = capture
            if cmd.stdout_to_stderr:
                stdout = stderr
            if cmd.stderr_to_stdout:
                stderr = stdout
            elif cmd.stderr_file is not None:
                self.fs.write(self.path(cmd.stderr_file), b"", append=True)

                async def capture_err(data: bytes) -> None:
                    errors.append(data)

                stderr = capture_err
        except FsError as exc:
            await io.stderr(f"sh: {exc}\n".encode())
            return 1
        name = posixpath.basename(cmd.argv[0])
        program = BUILTINS.get(name)
        if program is None:
            await stderr(f"sh: {cmd.argv[0]}: not found\n".encode())
            code = 127
        else:
            code = await program(self, cmd.argv, Io(stdin, stdout, stderr))
        if cmd.stdout_file is not None:
            self.fs.write(self.path(cmd.stdout_file), b"".join(captured), append=cmd.append)
        if cmd.stderr_file is not None:
            self.fs.write(self.path(cmd.stderr_file), b"".join(errors), append=True)
        return code


def _current_cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


# -- programs ---------------------------------------------------------------------------------------


async def _fail(io: Io, message: str, code: int = 1) -> int:
    await io.stderr(message.encode() + b"\n")
    return code


@builtin("true", ":")
async def _true(sh: Shell, argv: list[str], io: Io) -> int:
    return 0


@builtin("false")
async def _false(sh: Shell, argv: list[str], io: Io) -> int:
    return 1


@builtin("exit")
async def _exit(sh: Shell, argv: list[str], io: Io) -> int:
    try:
        code = int(argv[1]) if len(argv) > 1 else sh.status
    except ValueError:
        return await _fail(io, f"sh: exit: {argv[1]}: numeric argument required", 2)
    raise ExitShell(code & 0xFF)


@builtin("echo")
async def _echo(sh: Shell, argv: list[str], io: Io) -> int:
    args, newline = argv[1:], True
    if args[:1] == ["-n"]:
        args, newline = args[1:], False
    await io.stdout(" ".join(args).encode() + (b"\n" if newline else b""))
    return 0


@builtin("env", "printenv")
async def _env(sh: Shell, argv: list[str], io: Io) -> int:
    if len(argv) > 1 and argv[0].endswith("printenv"):
        values = [sh.env[k] for k in argv[1:] if k in sh.env]
        await io.stdout(b"".join(v.encode() + b"\n" for v in values))
        return 0 if len(values) == len(argv) - 1 else 1
    await io.stdout(b"".join(f"{k}={v}\n".encode() for k, v in sh.env.items()))
    return 0


@builtin("export")
async def _export(sh: Shell, argv: list[str], io: Io) -> int:
    for arg in argv[1:]:
        name, eq, value = arg.partition("=")
        if eq:
            sh.env[name] = value
    return 0


@builtin("hostname")
async def _hostname(sh: Shell, argv: list[str], io: Io) -> int:
    await io.stdout(sh.hostname.encode() + b"\n")
    return 0


@builtin("pwd")
async def _pwd(sh: Shell, argv: list[str], io: Io) -> int:
    await io.stdout(sh.cwd.encode() + b"\n")
    return 0


@builtin("cd")
async def _cd(sh: Shell, argv: list[str], io: Io) -> int:
    target = sh.path(argv[1] if len(argv) > 1 else sh.env.get("HOME", "/"))
    if not sh.fs.is_dir(target):
        return await _fail(io, f"sh: cd: can't cd to {argv[1] if len(argv) > 1 else target}")
    sh.cwd = target
    return 0


@builtin("stty")
async def _stty(sh: Shell, argv: list[str], io: Io) -> int:
    if argv[1:] == ["size"]:
        await io.stdout(f"{sh.size[1]} {sh.size[0]}\n".encode())
    return 0


@builtin("sleep")
async def _sleep(sh: Shell, argv: list[str], io: Io) -> int:
    try:
        seconds = float(argv[1])
    except (IndexError, ValueError):
        return await _fail(io, "sleep: invalid number")
    await asyncio.sleep(seconds)
    return 0


@builtin("cat")
async def _cat(sh: Shell, argv: list[str], io: Io) -> int:
    code = 0
    for name in argv[1:] or ["-"]:
        if name == "-":
            while chunk := await io.stdin.read():
                await io.stdout(chunk)
            continue
        try:
            await _write_chunks(io, sh.fs.read(sh.path(name)))
        except FsError as exc:
            code = await _fail(io, f"cat: {exc}")
    return code


async def _write_chunks(io: Io, data: bytes) -> None:
    for start in range(0, len(data), CHUNK):
        await io.stdout(data[start : start + CHUNK])


@builtin("head")
async def _head(sh: Shell, argv: list[str], io: Io) -> int:
    """`head -c N` (also of /dev/zero) and `head -n N`."""
    args = argv[1:]
    count, unit = 10, "n"
    if args and args[0] in ("-c", "-n") and len(args) > 1:
        unit, args = args[0][1], args[1:]
        try:
            count = _size(args[0])
        except ValueError:
            return await _fail(io, f"head: invalid number '{args[0]}'")
        args = args[1:]
    name = args[0] if args else "-"
    if name == "/dev/zero" and unit == "c":
        block = bytes(CHUNK)
        while count > 0:
            await io.stdout(block[:count])
            count -= min(count, CHUNK)
        return 0
    if name != "-":
        try:
            source = Pipe.of(sh.fs.read(sh.path(name)))
        except FsError as exc:
            return await _fail(io, f"head: {exc}")
    else:
        source = io.stdin
    while count > 0 and (chunk := await source.read()):
        if unit == "c":
            part = chunk[:count]
            count -= len(part)
        else:
            lines = chunk.splitlines(keepends=True)[:count]
            count -= sum(1 for line in lines if line.endswith(b"\n"))
            part = b"".join(lines)
        await io.stdout(part)
    return 0


def _size(text: str) -> int:
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    return int(text[:-1]) * units[text[-1]] if text[-1:] in units else int(text)


@builtin("wc")
async def _wc(sh: Shell, argv: list[str], io: Io) -> int:
    data = await io.stdin.read_all() if len(argv) < 3 else sh.fs.read(sh.path(argv[2]))
    value = len(data) if argv[1:2] == ["-c"] else data.count(b"\n")
    await io.stdout(f"{value}\n".encode())
    return 0


@builtin("sha256sum")
async def _sha256sum(sh: Shell, argv: list[str], io: Io) -> int:
    code = 0
    for name in argv[1:] or ["-"]:
        try:
            data = await io.stdin.read_all() if name == "-" else sh.fs.read(sh.path(name))
        except FsError as exc:
            code = await _fail(io, f"sha256sum: {exc}")
            continue
        await io.stdout(f"{hashlib.sha256(data).hexdigest()}  {name}\n".encode())
    return code


@builtin("ls")
async def _ls(sh: Shell, argv: list[str], io: Io) -> int:
    flags = "".join(a[1:] for a in argv[1:] if a.startswith("-"))
    names = [a for a in argv[1:] if not a.startswith("-")] or ["."]
    code = 0
    for name in names:
        path = sh.path(name)
        try:
            entries = sh.fs.listdir(path)
        except FsError as exc:
            code = await _fail(io, f"ls: {exc}", 2)
            continue
        if "a" in flags:
            entries = [".", "..", *entries]
        if "l" in flags:
            lines = []
            for entry in entries:
                full = path if sh.fs.is_file(path) else Filesystem.resolve(entry, path)
                kind = "d" if sh.fs.is_dir(full) else "-"
                size = len(sh.fs.files.get(full, b""))
                lines.append(f"{kind}rw-r--r--    1 root     root     {size:>8} {entry}\n")
            await io.stdout("".join(lines).encode())
        else:
            await io.stdout(b"".join(e.encode() + b"\n" for e in entries))
    return code


@builtin("mkdir")
async def _mkdir(sh: Shell, argv: list[str], io: Io) -> int:
    parents = "-p" in argv[1:]
    code = 0
    for name in (a for a in argv[1:] if not a.startswith("-")):
        try:
            sh.fs.mkdir(sh.path(name), parents)
        except FsError as exc:
            code = await _fail(io, f"mkdir: {exc}")
    return code


@builtin("rm")
async def _rm(sh: Shell, argv: list[str], io: Io) -> int:
    flags = "".join(a[1:] for a in argv[1:] if a.startswith("-"))
    code = 0
    for name in (a for a in argv[1:] if not a.startswith("-")):
        try:
            sh.fs.remove(sh.path(name), recursive="r" in flags)
        except FsError as exc:
            if "f" not in flags:
                code = await _fail(io, f"rm: {exc}")
    return code


@builtin("test", "[")
async def _test(sh: Shell, argv: list[str], io: Io) -> int:
    args = argv[1:-1] if argv[0] == "[" and argv[-1:] == ["]"] else argv[1:]
    negate = args[:1] == ["!"]
    args = args[1:] if negate else args
    if len(args) == 2 and args[0] in ("-d", "-f", "-e"):
        path = sh.path(args[1])
        tests: dict[str, Callable[[Any], bool]] = {
            "-d": sh.fs.is_dir,
            "-f": sh.fs.is_file,
            "-e": lambda p: sh.fs.is_dir(p) or sh.fs.is_file(p),
        }
        result = tests[args[0]](path)
    elif len(args) == 3 and args[1] in ("=", "!="):
        result = (args[0] == args[2]) == (args[1] == "=")
    elif len(args) == 2 and args[0] in ("-n", "-z"):
        result = bool(args[1]) == (args[0] == "-n")
    else:
        result = bool(args and args[0])
    return 0 if result != negate else 1


@builtin("tar")
async def _tar(sh: Shell, argv: list[str], io: Io) -> int:
    """`tar c|x|t [v] [f FILE] [-C DIR] [PATHS]`, old-style (`cf`) or dashed (`-xmf`); `-` is stdio."""
    mode, archive, directory, paths = "", None, sh.cwd, []
    args = argv[1:]
    if args and not args[0].startswith("-"):
        args = ["-" + args[0], *args[1:]]
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "-C" and i + 1 < len(args):
            directory, i = sh.path(args[i + 1]), i + 2
            continue
        if arg.startswith("--"):
            i += 1
            continue
        if arg.startswith("-") and len(arg) > 1:
            for letter in arg[1:]:
                if letter in "cxt":
                    mode = letter
                elif letter == "f":
                    i += 1
                    archive = args[i] if i < len(args) else None
            i += 1
            continue
        paths.append(arg)
        i += 1
    if not mode:
        return await _fail(io, "tar: you must specify one of the '-ctx' options", 2)
    if not sh.fs.is_dir(directory):
        return await _fail(io, f"tar: can't change directory to '{directory}': No such file or directory", 2)
    try:
        if mode == "c":
            return await _tar_create(sh, io, archive, directory, paths)
        data = await io.stdin.read_all() if archive in (None, "-") else sh.fs.read(sh.path(archive))
        return await _tar_read(sh, io, mode, data, directory)
    except (FsError, tarfile.TarError) as exc:
        return await _fail(io, f"tar: {exc}", 2)


async def _tar_create(sh: Shell, io: Io, archive: str | None, directory: str, paths: list[str]) -> int:
    buf = BytesIO()
    code = 0
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name in paths:
            full = Filesystem.resolve(name, directory)
            member = name.lstrip("/") or "."
            if not (sh.fs.is_dir(full) or sh.fs.is_file(full)):
                code = await _fail(io, f"tar: {name}: No such file or directory", 2)
                continue
            _add(sh.fs, tar, full, member)
    data = buf.getvalue()
    if archive in (None, "-"):
        await _write_chunks(io, data)
    else:
        sh.fs.write(sh.path(archive), data)
    return code


def _add(fs: Filesystem, tar: tarfile.TarFile, full: str, member: str) -> None:
    info = tarfile.TarInfo(member)
    info.mtime = int(fs.mtimes.get(full, time.time()))
    if fs.is_dir(full):
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
        for entry in fs.listdir(full):
            _add(fs, tar, Filesystem.resolve(entry, full), f"{member.rstrip('/')}/{entry}")
        return
    data = fs.files[full]
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, BytesIO(data))


async def _tar_read(sh: Shell, io_: Io, mode: str, data: bytes, directory: str) -> int:
    with tarfile.open(fileobj=BytesIO(data), mode="r:*") as tar:
        for member in tar:
            name = member.name.lstrip("/")
            if mode == "t":
                await io_.stdout(name.encode() + b"\n")
                continue
            target = Filesystem.resolve(name, directory)
            if not (target == directory or target.startswith(directory.rstrip("/") + "/")):
                await io_.stderr(f"tar: {member.name}: skipping a path outside {directory}\n".encode())
                continue
            if member.isdir():
                sh.fs.mkdir(target, parents=True)
            elif member.isfile():
                sh.fs.mkdir(posixpath.dirname(target), parents=True)
                extracted = tar.extractfile(member)
                sh.fs.write(target, extracted.read() if extracted else b"")
    return 0


@builtin("yes")
async def _yes(sh: Shell, argv: list[str], io: Io) -> int:
    line = (" ".join(argv[1:]) or "y").encode() + b"\n"
    block = line * max(1, CHUNK // len(line))
    while True:
        await io.stdout(block)
