"""One training step captured in a CUDA graph and replayed: an option of the step, not a copy of it.

At the lecture's sizes (64-100-10, batch 64) a GPU training step is launch-bound: ~20-40 small
kernels, each costing more to launch from Python than to run. A CUDA graph records the kernels of
one step once and replays them with one launch (PyTorch, "CUDA semantics" → "CUDA Graphs":
whole-network capture). :class:`StepGraph` wraps the step function the eager path already runs —
the estimators' ``Engine.accumulate`` + optimizer step, the app's manual step — so the captured
kernels are exactly the eager ones, on fixed tensors:

* **Static inputs.** Each distinct batch signature (shapes, dtypes, Python arguments, ``key``) gets
  its own static input tensors; a call copies the batch into them (``copy_``) and then runs the
  step on them. Full batches and the epoch's short last batch therefore get one graph each (a
  small LRU cache, ``max_graphs``): the last batch runs once per epoch, and eagerly it would cost
  a whole launch-bound eager step (several replays' worth), while its graph costs one capture
  and a few KiB of graph memory.
* **Warm-up.** The first ``warmup`` calls of each signature run the step eagerly (real training
  steps, not thrown away) on a side stream, so lazy initialisation — the optimizer's state, cuBLAS
  handles and workspaces, the Workspace's [1, a] buffers — happens outside the capture (the torch
  docs' recipe). Warm-up and capture use the same side stream (cuBLAS caches its workspace per
  stream). Capture records the kernels without running them, so the capturing call replays once.
* **Outputs** stay where the step writes them in place — Θ, the gradient buffers, the optimizer
  state, running sums such as the estimators' ``loss_sum`` — tensors made before the capture and
  read by the caller after a replay. Whatever the step returns while being captured is kept alive
  with the graph (return the buffers it uses, e.g. ``Workspace.buffers(n)``, so that no memory the
  graph reads or writes is ever freed and reused).
* **Memory.** Each graph has its own private memory pool (no ``pool=`` sharing): graphs of
  different batch sizes replay in any order, which a shared pool does not allow.

Constraints on the step (the torch docs' list, what a capture freezes): no host synchronisation
(``.item()``, ``bool()``/``float()`` of a device tensor, ``.cpu()``, ``nonzero``); no Python branch
on tensor values; Python numbers it reads (λ_B, the learning rate) are frozen, so pass them as
``args``/``key`` — a new value selects (captures) another graph; optimizers with
``capturable=True`` (Adam/AdamW; SGD has no device-side step count); tensors it reads from outside
must keep their storage (update them in place, never rebind them); no CPU-side RNG.

Backends: ``"cuda"`` (``torch.cuda.CUDAGraph``) for training, and the private ``"record"`` backend
for tests on the CPU: it "captures" by recording the call and "replays" by calling the step on the
same static tensors, under a dispatch mode that raises on any host-synchronising op — so the
plumbing (static buffers, signatures, the short batch, warm-up, optimizer state identity) and the
absence of host syncs are tested without a GPU. It cannot prove that a capture succeeds or that
the replayed kernels match bit for bit: those are ``@pytest.mark.cuda`` tests.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["StepGraph", "HostSyncError", "check_cuda_graph_device"]

#: aten ops that read a device tensor on the host (``.item()``, ``bool(t)``, ``float(t)``) or whose
#: output shape depends on tensor values: forbidden inside a captured step (``tolist()`` bypasses the
#: dispatcher and is not seen on the CPU)
_HOST_SYNC_OPS = frozenset(
    {"_local_scalar_dense", "item", "is_nonzero", "nonzero", "masked_select", "equal", "unique", "_unique2"}
)
_CAPTURABLE_WARNING = r"This instance was constructed with capturable=True"


class HostSyncError(RuntimeError):
    """A step meant for capture read a tensor on the host (raised by the ``"record"`` backend)."""


def check_cuda_graph_device(device: torch.device, what: str = "cuda_graph=True") -> None:
    """``ValueError`` (one line) unless ``device`` is a CUDA device with CUDA available."""
    if device.type != "cuda":
        raise ValueError(
            f"{what} needs device='cuda' (a CUDA graph replays GPU kernels), but the device here is "
            f"{device.type!r}: set cuda_graph=False or train on a GPU"
        )
    if not torch.cuda.is_available():
        raise ValueError(f"{what} needs CUDA, which is not available here: set cuda_graph=False")


class _Entry:
    """One batch signature: its static inputs, warm-up count, graph and what the graph keeps alive."""

    __slots__ = ("static", "warm", "graph", "kept")

    def __init__(self, static: list[Tensor]):
        self.static, self.warm, self.graph, self.kept = static, 0, None, None


class StepGraph:
    """``step(*tensors, *args)`` captured once per batch signature and replayed (module docstring).

    Args:
        step: the training step; reads only its arguments and tensors that live as long as this
            object, writes its results in place (Θ, optimizer state, running sums).
        device: where the step runs (CUDA for ``backend="cuda"``).
        warmup: eager calls per signature before its capture (≥ 1; the torch docs use 3).
        max_graphs: graphs kept (least recently used dropped first); full batch + last batch = 2.
        backend: ``"cuda"`` (default) or ``"record"`` (tests on the CPU; see the module docstring).

    Calling ``graph(tensors, args=(), key=())`` copies ``tensors`` (a tuple of batch tensors) into
    the signature's static tensors and runs the step on them: eagerly during warm-up, then by
    replay. ``args`` are Python values passed to the step after the tensors, ``key`` values the
    step reads from elsewhere (e.g. the learning rate in the optimizer's param group); both select
    the graph, since a capture freezes them. Returns what the step returned: its fresh result
    during warm-up, and once captured the capture's outputs — static tensors that the next replay
    overwrites (clone what you keep).

    Attributes: ``captures`` (graphs captured so far), ``replays``, ``eager_steps`` (warm-up calls).
    """

    def __init__(
        self,
        step: Callable,
        device: torch.device | str,
        *,
        warmup: int = 3,
        max_graphs: int = 4,
        backend: str = "cuda",
    ):
        if not callable(step):
            raise TypeError(f"StepGraph: step must be callable, got {type(step).__name__}")
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 1:
            raise ValueError(f"StepGraph: warmup must be an int >= 1, got {warmup!r}")
        if isinstance(max_graphs, bool) or not isinstance(max_graphs, int) or max_graphs < 1:
            raise ValueError(f"StepGraph: max_graphs must be an int >= 1, got {max_graphs!r}")
        device = torch.device(device)
        if backend == "cuda":
            check_cuda_graph_device(device, "StepGraph(backend='cuda')")
            self._backend = _CudaBackend(device)
        elif backend == "record":
            self._backend = _RecordBackend()
        else:
            raise ValueError(f"StepGraph: backend must be 'cuda' or 'record', got {backend!r}")
        self.step, self.device, self.warmup, self.max_graphs = step, device, warmup, max_graphs
        self._entries: OrderedDict[tuple, _Entry] = OrderedDict()
        self.captures = self.replays = self.eager_steps = 0

    def __call__(self, tensors: tuple, args: tuple = (), key: tuple = ()):
        signature = (tuple((t.shape, t.dtype, t.device) for t in tensors), tuple(args), tuple(key))
        entry = self._entries.get(signature)
        if entry is None:
            entry = self._entries[signature] = _Entry([torch.empty_like(t) for t in tensors])
            while len(self._entries) > self.max_graphs:  # the least recently used graph and its buffers
                self._backend.release(self._entries.popitem(last=False)[1])
        else:
            self._entries.move_to_end(signature)
        for static, t in zip(entry.static, tensors):
            static.copy_(t)  # the batch into the graph's fixed input addresses
        if entry.graph is not None:
            self.replays += 1
            return self._backend.replay(entry.graph, entry.kept)
        run = (lambda: self.step(*entry.static, *args)) if args else (lambda: self.step(*entry.static))
        if entry.warm < self.warmup:
            entry.warm += 1
            self.eager_steps += 1
            return self._backend.eager(run)
        entry.graph, entry.kept = self._backend.capture(run)
        self.captures += 1
        self.replays += 1
        return self._backend.replay(entry.graph, entry.kept)  # the capture recorded, did not run, the step

    def static_inputs(self, tensors: tuple, args: tuple = (), key: tuple = ()) -> list[Tensor] | None:
        """The static tensors of a signature (None if it has none): for tests and benchmarks."""
        signature = (tuple((t.shape, t.dtype, t.device) for t in tensors), tuple(args), tuple(key))
        entry = self._entries.get(signature)
        return None if entry is None else entry.static

    @property
    def graphs(self) -> int:
        """Graphs held now."""
        return sum(entry.graph is not None for entry in self._entries.values())


class _CudaBackend:
    """torch.cuda.CUDAGraph: warm-up and capture on one side stream, replay on the current stream."""

    def __init__(self, device: torch.device):
        self.device = device
        self.stream = torch.cuda.Stream(device)

    def eager(self, run: Callable):
        current = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(current)  # the static inputs were filled on the current stream
        with torch.cuda.stream(self.stream), warnings.catch_warnings():
            # Adam(capturable=True) warns once when stepped outside a capture: expected in warm-up
            warnings.filterwarnings("ignore", message=_CAPTURABLE_WARNING)
            out = run()
        current.wait_stream(self.stream)
        return out

    def capture(self, run: Callable):
        graph = torch.cuda.CUDAGraph()
        # torch.cuda.graph synchronises the device, then captures on our side stream into a
        # private pool; a host sync or a CPU-side tensor inside run() fails the capture here
        try:
            with torch.cuda.graph(graph, stream=self.stream):
                kept = run()
        except RuntimeError as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise RuntimeError(
                f"capturing the training step in a CUDA graph failed ({first}); a custom activation "
                "or head that reads tensor values on the host cannot be captured: train with "
                "cuda_graph=False"
            ) from err
        return graph, kept

    @staticmethod
    def replay(graph, kept):
        graph.replay()  # on the current stream, after the copies into the static inputs
        return kept

    def release(self, entry: _Entry) -> None:
        """Before a graph and its static tensors are dropped: no replay of it may still be running."""
        if entry.graph is not None:
            torch.cuda.current_stream(self.device).synchronize()


class _RecordBackend:
    """Tests on the CPU: "capture" records the call, "replay" runs it on the same static tensors,
    both warm-up and replay under :class:`_NoHostSync`."""

    @staticmethod
    def eager(run: Callable):
        with _NoHostSync():
            return run()

    @staticmethod
    def capture(run: Callable):
        return run, None  # recorded, not run (a CUDA capture does not run the kernels either)

    @staticmethod
    def replay(run: Callable, kept):
        with _NoHostSync():
            return run()

    @staticmethod
    def release(entry: _Entry) -> None:
        pass


class _NoHostSync(TorchDispatchMode):
    """Raises :class:`HostSyncError` on an op that would synchronise with the host on a GPU."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in _HOST_SYNC_OPS:
            raise HostSyncError(
                f"the step reads a tensor on the host (aten.{name}: .item(), bool(), float() or a "
                "value-dependent shape), which a CUDA graph cannot capture"
            )
        return func(*args, **(kwargs or {}))
