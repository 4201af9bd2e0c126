"""The trusted half of code scoring: the item's tests run in the scorer, the candidate in the
sandbox, and only plain data crosses between them.

The sandboxed program (``server_program``) defines the model's code and then serves calls: it
reads ``(name, args, kwargs)`` requests on fd 3 and answers on fd 4. The tests run here, in the
scorer, with the functions under test replaced by ``CandidateProxy`` objects that forward each
call and return the answer rebuilt by ``decode_value``, which constructs nothing but ``None``,
``bool``, ``int``, ``float``, ``complex``, ``str``, ``bytes``, ``list``, ``tuple``, ``dict``,
``set`` and ``frozenset``. So every ``==`` of a test compares builtins with builtins: an object
with an always-true ``__eq__`` cannot cross, and nothing the program can read or write (its
memory, its output, its exit status) decides the verdict. The tests themselves never enter
the sandbox, so the program cannot read the expected answers either.

A call that fails to cross (the program died, answered garbage or something that is not plain
data, or the deadline passed) fails the item even if the test code catches the exception.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import json
import os
import pickle
import select
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
_HEADER = struct.Struct(">I")
_TRUSTED_MODULE = "__moco_tests__"

# The program side. Untrusted by design: the program may replace any of it; the scorer only
# ever reads plain data back. ``%(code)s`` is the stub, the test setup and the model's code.
_SERVER = r"""
import builtins, json, os, pickle, struct, sys

_HEADER = struct.Struct(">I")
_PLAIN = {list: "list", tuple: "tuple", set: "set", frozenset: "frozenset"}


def _read_exactly(count):
    data = b""
    while len(data) < count:
        chunk = os.read(3, count - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _send(value):
    data = json.dumps(value).encode("utf-8", "surrogatepass")
    os.write(4, _HEADER.pack(len(data)))
    view = memoryview(data)
    while view:
        view = view[os.write(4, view):]


def _encode(value):
    kind = type(value)
    if value is None or kind in (bool, int, float, str):
        return value
    for base, tag in _PLAIN.items():
        if isinstance(value, base):
            return [tag] + [_encode(item) for item in value]
    if isinstance(value, dict):
        return ["dict"] + [[_encode(k), _encode(v)] for k, v in dict.items(value)]
    if isinstance(value, (bytes, bytearray)):
        return ["bytes", bytes(value).hex()]
    if isinstance(value, complex):
        return ["complex", value.real, value.imag]
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int.__index__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, str):
        return str.__str__(value)
    raise TypeError("returned a %%s, which is not plain data" %% type(value).__name__)


class _Loader(pickle.Unpickler):
    def persistent_load(self, reference):
        if reference[0] == "call":
            return _namespace[reference[1]](*reference[2], **reference[3])
        return _namespace[reference[1]]


sys.set_int_max_str_digits(0) if hasattr(sys, "set_int_max_str_digits") else None
_namespace = {"__name__": "__main__", "__builtins__": builtins}
exec(compile(%(code)r, "solution.py", "exec"), _namespace)
_send({"ready": True})
import io
while True:
    header = _read_exactly(4)
    if header is None:
        os._exit(0)
    request = _read_exactly(_HEADER.unpack(header)[0])
    if request is None:
        os._exit(0)
    try:
        name, args, kwargs = _Loader(io.BytesIO(request)).load()
        result = _namespace[name](*args, **kwargs)
        try:
            answer = {"ok": _encode(result)}
        except (TypeError, RecursionError) as error:
            answer = {"unplain": str(error)[:500]}
    except RecursionError as error:
        answer = {"error": ["RecursionError", str(error)[:500]]}
    except BaseException as error:
        answer = {"error": [type(error).__name__, str(error)[:500]]}
    try:
        _send(answer)
    except (TypeError, ValueError, RecursionError, OverflowError) as error:
        _send({"error": ["TypeError", "answer cannot be sent: %%s" %% error]})
"""


def server_program(code: str) -> str:
    """The sandboxed program: ``code`` defined as ``__main__``, then calls served on fd 3/4."""
    return _SERVER % {"code": code}


class CandidateFailed(BaseException):
    """A call could not be completed. A ``BaseException``, so ``except Exception`` in test code
    does not swallow it (the verdict fails regardless, see ``Channel.broken``)."""


class NotPlainData(ValueError):
    """A reply held something other than plain data."""


def decode_value(payload: bytes) -> Any:
    """The plain value ``payload`` encodes; ``NotPlainData`` for anything else.

    JSON gives scalars; containers are arrays whose first element names the type. Every object
    built here is a builtin constructed by this function, never by the program.
    """
    return build_plain(_parse(payload))


def build_plain(node: Any) -> Any:
    """The plain value of one parsed JSON node (see ``decode_value``)."""
    try:
        return _build(node)
    except NotPlainData:
        raise
    except (ValueError, TypeError, RecursionError, OverflowError) as error:
        raise NotPlainData(str(error)[:200]) from None


def _parse(payload: bytes) -> Any:
    if len(payload) > MAX_MESSAGE_BYTES:
        raise NotPlainData("reply too large")
    try:
        return json.loads(payload.decode("utf-8", "surrogatepass"))
    except (ValueError, TypeError, RecursionError, OverflowError) as error:
        raise NotPlainData(str(error)[:200]) from None


def _build(node: Any) -> Any:
    kind = type(node)
    if node is None or kind in (bool, int, float, str):
        return node
    if kind is not list or not node or type(node[0]) is not str:
        raise NotPlainData(f"not plain data: {kind.__name__}")
    tag, items = node[0], node[1:]
    if tag == "list":
        return [_build(item) for item in items]
    if tag == "tuple":
        return tuple(_build(item) for item in items)
    if tag == "set":
        return {_build(item) for item in items}
    if tag == "frozenset":
        return frozenset(_build(item) for item in items)
    if tag == "dict":
        pairs = [item for item in items if type(item) is list and len(item) == 2]
        if len(pairs) != len(items):
            raise NotPlainData("malformed dict")
        return {_build(key): _build(value) for key, value in pairs}
    if tag == "bytes" and len(items) == 1 and type(items[0]) is str:
        return bytes.fromhex(items[0])
    if tag == "complex" and len(items) == 2 and all(type(part) in (int, float) for part in items):
        return complex(float(items[0]), float(items[1]))
    raise NotPlainData(f"unknown tag {tag[:40]!r}")


class RemoteCall:
    """An argument the program builds itself: ``Pair(5, 24)`` in a test, where ``Pair`` is a class
    the model's code defines (MBPP expects that). The scorer only holds the recipe."""

    __slots__ = ("args", "kwargs", "name")

    def __init__(self, name: str, args: tuple, kwargs: dict) -> None:
        self.name, self.args, self.kwargs = name, args, kwargs

    def __repr__(self) -> str:
        return f"<{self.name} built by the candidate>"


class RemoteConstructor:
    """Stands for a class of the candidate in the trusted test namespace."""

    def __init__(self, name: str) -> None:
        self.__name__ = name

    def __call__(self, *args: Any, **kwargs: Any) -> RemoteCall:
        return RemoteCall(self.__name__, args, kwargs)


class _Dumper(pickle.Pickler):
    """Pickles call arguments. Classes the test setup defines travel by name (the program runs
    the same setup code), candidate-built objects as their recipe."""

    def persistent_id(self, obj: Any) -> tuple | None:
        if isinstance(obj, RemoteCall):
            return ("call", obj.name, obj.args, obj.kwargs)
        if isinstance(obj, type) and obj.__module__ == _TRUSTED_MODULE:
            return ("class", obj.__qualname__)
        return None


class Channel:
    """Framed messages to and from the program, each bounded by the run's deadline."""

    def __init__(self, request_fd: int, reply_fd: int, deadline: float) -> None:
        self.request_fd, self.reply_fd, self.deadline = request_fd, reply_fd, deadline
        os.set_blocking(request_fd, False)  # a program that stops reading cannot stall a write
        self.broken: str | None = None
        self.calls = 0

    def fail(self, reason: str) -> CandidateFailed:
        if self.broken is None:
            self.broken = reason
        return CandidateFailed(reason)

    def _send(self, data: bytes) -> None:
        view = memoryview(_HEADER.pack(len(data)) + data)
        while view:
            if not _ready(self.request_fd, select.POLLOUT, self._remaining()):
                raise self.fail("timeout")
            try:
                view = view[os.write(self.request_fd, view[: 1 << 16]) :]
            except BlockingIOError:
                continue
            except OSError as error:
                raise self.fail(f"the program stopped reading: {error}") from None

    def _read(self, count: int) -> bytes:
        data = bytearray()
        while len(data) < count:
            if not _ready(self.reply_fd, select.POLLIN, self._remaining()):
                raise self.fail("timeout")
            chunk = os.read(self.reply_fd, min(count - len(data), 1 << 20))
            if not chunk:
                raise self.fail("the program ended before answering")
            data += chunk
        return bytes(data)

    def _remaining(self) -> float:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise self.fail("timeout")
        return remaining

    def receive(self) -> dict[str, Any]:
        """The next message: a JSON object with one of ``ready``, ``ok`` or ``error``."""
        if self.broken is not None:
            raise CandidateFailed(self.broken)
        (size,) = _HEADER.unpack(self._read(_HEADER.size))
        if size > MAX_MESSAGE_BYTES:
            raise self.fail("reply too large")
        try:
            message = _parse(self._read(size))
        except NotPlainData as error:
            raise self.fail(f"malformed reply: {error}") from None
        if type(message) is not dict or len(message) != 1:
            raise self.fail("malformed reply")
        return message

    def call(self, name: str, args: tuple, kwargs: dict) -> Any:
        if self.broken is not None:
            raise CandidateFailed(self.broken)
        try:
            request = _pickle((name, args, kwargs))
        except (pickle.PicklingError, TypeError, AttributeError, RecursionError) as error:
            raise self.fail(f"arguments cannot be sent: {error}") from None
        self.calls += 1
        self._send(request)
        reply = self.receive()
        if "ok" in reply:
            try:
                return build_plain(reply["ok"])
            except NotPlainData as error:
                raise self.fail(f"reply is not plain data: {error}") from None
        if "unplain" in reply:
            raise self.fail(f"the candidate returned something that is not plain data: {reply['unplain']!s:.200}")
        error = reply.get("error")
        if type(error) is list and len(error) == 2:
            raise _exception(error[0], error[1])
        raise self.fail("malformed reply")


def _ready(fd: int, event: int, timeout_s: float) -> bool:
    """Whether ``fd`` is ready (or closed at the other end) within ``timeout_s``; ``poll``
    rather than ``select``, which fails for descriptors above 1023."""
    poller = select.poll()
    poller.register(fd, event)
    return bool(poller.poll(max(1, int(timeout_s * 1000))))


def _pickle(value: Any) -> bytes:
    buffer = io.BytesIO()
    _Dumper(buffer, protocol=4).dump(value)
    return buffer.getvalue()


def _exception(name: Any, message: Any) -> Exception:
    """The candidate's exception as a builtin of the same name where there is one (tests may
    expect ``ValueError``), else a ``RuntimeError``; never a ``BaseException`` that ends the run."""
    kind = getattr(builtins, name, None) if isinstance(name, str) else None
    text = f"candidate raised {name}: {message}"
    if isinstance(kind, type) and issubclass(kind, Exception):
        with contextlib.suppress(Exception):
            return kind(text)
    return RuntimeError(text)


class CandidateProxy:
    """Stands for one function of the candidate in the trusted test namespace."""

    def __init__(self, channel: Channel, name: str) -> None:
        self._channel, self.__name__ = channel, name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._channel.call(self.__name__, args, kwargs)

    def __repr__(self) -> str:
        return f"<candidate {self.__name__}>"


@dataclass(frozen=True)
class Verdict:
    """How the trusted tests went: ``passed`` only when they all ran without an exception, the
    candidate answered at least once, and no call failed to cross."""

    passed: bool
    reason: str | None = None
    calls: int = 0


def run_tests(
    channel: Channel, setup: str, tests: str, proxied: list[str], constructors: Sequence[str] = ()
) -> Verdict:
    """Run ``setup`` (stub, test imports and setup), bind ``proxied`` names to the candidate's
    functions and ``constructors`` to its classes, then run ``tests`` (which call the check);
    all in a fresh namespace of this process."""
    namespace: dict[str, Any] = {"__name__": _TRUSTED_MODULE, "__builtins__": builtins}
    try:
        exec(compile(setup, "<setup>", "exec", dont_inherit=True), namespace)
    except Exception as error:  # the dataset's own code: not the candidate's fault, but no pass
        return Verdict(False, f"test setup failed: {type(error).__name__}: {error}")
    try:
        if channel.receive() != {"ready": True}:
            raise channel.fail("the program did not start serving")
        for name in proxied:
            namespace[name] = CandidateProxy(channel, name)
        for name in constructors:
            namespace[name] = RemoteConstructor(name)
        exec(compile(tests, "<tests>", "exec", dont_inherit=True), namespace)
    except CandidateFailed as error:
        return Verdict(False, channel.broken or str(error), channel.calls)
    except BaseException as error:  # an assertion, the candidate's exception, or SystemExit
        return Verdict(False, f"{type(error).__name__}: {str(error)[:300]}", channel.calls)
    if channel.broken is not None:
        return Verdict(False, channel.broken, channel.calls)
    if channel.calls == 0:
        return Verdict(False, "the tests never called the candidate", 0)
    return Verdict(True, None, channel.calls)
