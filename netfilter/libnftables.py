"""libnftables, the library the `nft` command is made of, called in this process through ctypes.

Running the ``nft`` program cost 20-25 ms a script here, nearly none of it nft's work: a process started (and
``ip netns exec`` before it), and the exiting program's netlink socket, whose close waits for the kernel to free what
the transaction deleted. The library runs the same script in ~0.5-4 ms.

One binding for the whole process, and one lock: the library keeps some state outside its contexts (its one-time
set-up, the xtables translation), so scripts of every context run one at a time, whoever runs them — the VPN's scope
(``gateway.vpn.nft``) and the seats' allow-lists (``desktop_broker.x11.egress``) share the gateway's process.
"""

import ctypes
import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType

LIBRARY = "libnftables.so.1"
_OUTPUT_JSON = 1 << 4
"""``NFT_CTX_OUTPUT_JSON`` (nftables/libnftables.h): listings as ``nft -j`` prints them."""

ONE_AT_A_TIME = threading.RLock()
"""Held around every call into the library. Re-entrant, so a caller can hold it around a context's whole life
(``held``), or decide something under it (whether it still wants its script run at all) around ``Context.run``."""


class NftablesError(RuntimeError):
    """The library cannot be used: missing, or it made no context, or another script held it too long."""


@dataclass(frozen=True)
class Outcome:
    """What one script did: whether it succeeded, and what nft printed and complained."""

    ok: bool
    output: str
    error: str


class Context:
    """One ``struct nft_ctx`` with its output and errors kept for reading. Its netlink socket belongs to the network
    namespace of the thread that makes it: make it on a thread that entered the namespace the scripts are for."""

    def __init__(self, json_output: bool = False) -> None:
        library = _library()
        with ONE_AT_A_TIME:
            pointer: int | None = library.nft_ctx_new(0)
            if not pointer:
                raise NftablesError("libnftables made no context")
            library.nft_ctx_buffer_output(pointer)
            library.nft_ctx_buffer_error(pointer)
            if json_output:
                library.nft_ctx_output_set_flags(pointer, _OUTPUT_JSON)
        self._pointer: int | None = pointer

    def __enter__(self) -> "Context":
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def run(self, script: str) -> Outcome:
        """Run one script (what ``nft -f`` reads)."""
        if self._pointer is None:
            raise NftablesError("the libnftables context was closed")
        library = _library()
        with ONE_AT_A_TIME:
            failed = library.nft_run_cmd_from_buffer(self._pointer, script.encode())
            # Both read after every script: reading a buffer empties it for the next one.
            output = (library.nft_ctx_get_output_buffer(self._pointer) or b"").decode()
            error = (library.nft_ctx_get_error_buffer(self._pointer) or b"").decode()
        return Outcome(not failed, output, error)

    def close(self) -> None:
        """Free the context and its socket (whose close may wait for the kernel, see above); once is enough."""
        if self._pointer is not None:
            with ONE_AT_A_TIME:
                _library().nft_ctx_free(self._pointer)
            self._pointer = None


@contextmanager
def held(wait: float) -> Iterator[None]:
    """The library to this thread for the block, waiting at most ``wait`` seconds for another context's script
    (NftablesError then). Made, run and closed inside it, a context waits for nobody: a caller with a bound on its
    wait holds this around the context's whole life, its close included."""
    if not ONE_AT_A_TIME.acquire(timeout=wait):
        raise NftablesError(f"another script has held libnftables for over {wait:g} s")
    try:
        yield
    finally:
        ONE_AT_A_TIME.release()


def missing() -> str | None:
    """Why the library cannot be used here, in words for an operator; None when it can."""
    try:
        _library()
    except NftablesError as error:
        return str(error)
    return None


@functools.cache
def _library() -> ctypes.CDLL:
    try:
        library = ctypes.CDLL(LIBRARY)
    except OSError as error:
        raise NftablesError(f"{error} (apt-get install libnftables1)") from error
    library.nft_ctx_new.restype = ctypes.c_void_p
    library.nft_ctx_new.argtypes = [ctypes.c_uint32]
    for name in ("nft_ctx_buffer_output", "nft_ctx_buffer_error", "nft_ctx_free"):
        getattr(library, name).argtypes = [ctypes.c_void_p]
    library.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
    library.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    for name in ("nft_ctx_get_output_buffer", "nft_ctx_get_error_buffer"):
        getattr(library, name).restype = ctypes.c_char_p
        getattr(library, name).argtypes = [ctypes.c_void_p]
    return library
