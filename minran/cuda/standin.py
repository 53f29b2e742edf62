"""A stand-in GPU: the whole `--device gpu` path run on the CPU, with everything it would ask
of a GPU counted.

    with standin.device(kernels="count") as gpu:     # or kernels="emulate"
        ... anything with device="gpu": a training step, train_cifar.main([...]) ...
    print(gpu.counts.table())

Inside the block `backend.cupy` is this stand-in for CuPy, so minran takes its GPU paths
(trainer, data, every op, the optimiser, CUDA graphs) on NumPy memory posing as device
memory. A stand-in array is not a NumPy array, as a CuPy array is not: mixing it with one,
or turning it into one implicitly, fails here as it would on a GPU. Every call that would
reach the GPU is counted:

  launches       every kernel the GPU would run, by name: minran's own kernels
                 (`kernel:im2col`), CuPy's elementwise and reduction kernels (`cupy:add`),
                 the kernels CuPy launches inside an op (`cupy:matmul pointer arrays`),
                 cuBLAS products (`cublas:gemm`), fills and copies;
  device calls   calls from Python into the GPU's driver or libraries: launches, copies,
                 waits, and allocations the pool cannot serve (cudaMalloc); a view, a reshape
                 or an allocation served by the pool only change things on the host;
  allocations    requests for device memory, and `new memory`: those the memory pool could
                 not serve from blocks freed earlier (CuPy's pool keeps freed blocks in bins
                 of 512 bytes; this one reuses a freed block only for a request of the same
                 rounded size, so it never counts fewer than CuPy's pool, which also splits
                 larger blocks);
  host reads     device-to-host reads that make Python wait for the GPU (`float(x)`,
                 `x.get()`, printing an array).

kernels="emulate" runs minran's kernels through the CPU emulator and every other operation
with NumPy (real results, slowly); kernels="count" runs nothing at all, only counts, leaving
every output as it was (garbage, fast): for counting a large network, and for timing what
the host alone spends issuing a step.

Stream capture is modelled as CUDA does it: between `stream.begin_capture()` and
`end_capture()` nothing runs; each launch, copy and fill is recorded with the memory and
the numbers it was given, and `graph.launch()` runs the record again. A host read during
capture is an error, as it is on a GPU.
"""
import bisect
import contextlib
import hashlib
import numbers
import pathlib
import tempfile
import threading
import types
import weakref
from collections import Counter as _Tally

import numpy as np

from .. import backend
from . import blas

POOL_ROUND = 512   # CuPy's memory pool rounds every request up to a multiple of this


class StandInError(RuntimeError):
    """Something a GPU would refuse, or that the stand-in does not model."""


class CaptureError(StandInError):
    """A host read or a synchronisation inside a stream capture (cudaErrorStreamCapture...)."""


# ---- what is counted ------------------------------------------------------------------------
class Counts:
    """Tallies of what the GPU was asked to do; `since(snapshot)` gives one step's."""

    FIELDS = ("device_calls", "allocations", "new_memory", "host_reads", "synchronizations",
              "host_to_device", "device_to_host", "graph_launches")

    def __init__(self):
        self.launches = _Tally()
        for name in self.FIELDS:
            setattr(self, name, 0)

    @property
    def gpu_launches(self):
        return sum(self.launches.values())

    def copy(self):
        other = Counts()
        other.launches = _Tally(self.launches)
        for name in self.FIELDS:
            setattr(other, name, getattr(self, name))
        return other

    def since(self, earlier):
        """What happened after `earlier` (a copy taken then)."""
        other = Counts()
        other.launches = self.launches - earlier.launches
        for name in self.FIELDS:
            setattr(other, name, getattr(self, name) - getattr(earlier, name))
        return other

    def by_source(self):
        """Launches summed by where they come from: kernel, cupy, cublas, memory."""
        sources = _Tally()
        for label, n in self.launches.items():
            sources[label.split(":")[0]] += n
        return sources


# ---- the memory pool ------------------------------------------------------------------------
class MemoryPool:
    """CuPy's MemoryPool as far as counting needs: blocks freed go back to the pool, and a
    request is served from it when a freed block of the same rounded size is there."""

    def __init__(self, allocator=None):
        self.free = _Tally()
        self.held = 0          # bytes the pool has taken from the device
        self.in_use = 0
        self.sealed = None     # a reason, once only a captured graph may use this pool

    def malloc(self, nbytes):   # what cupy.cuda.using_allocator() is given
        return _Block(self, int(nbytes))

    def used_bytes(self):
        return self.in_use

    def total_bytes(self):
        return self.held

    def free_all_blocks(self):
        self.held -= sum(size * n for size, n in self.free.items())
        self.free.clear()


class _Block:
    """One allocation: host memory standing for device memory, returned to its pool when
    the last array viewing it is gone."""

    __slots__ = ("pool", "size", "buffer", "address", "writer", "__weakref__")

    def __init__(self, pool, nbytes):
        if pool.sealed and _state.capture is None:
            raise StandInError(f"memory from the captured step's pool was asked for outside "
                               f"the capture ({pool.sealed}); the graph's buffers would be "
                               f"handed to something else between replays")
        size = -(-max(nbytes, 1) // POOL_ROUND) * POOL_ROUND
        counts = _state.counts
        if _state.capture is not None:
            _state.capture.pools.add(pool)
        counts.allocations += 1
        if pool.free[size]:
            pool.free[size] -= 1
        else:   # cudaMalloc: a call into the driver (one that may wait for the GPU)
            counts.new_memory += 1
            counts.device_calls += 1
            pool.held += size
        pool.in_use += size
        self.pool, self.size = pool, size
        # Exactly the bytes asked for: a product reaching past them is caught (blas.py).
        self.buffer = np.empty(max(nbytes, 1), dtype=np.uint8)
        self.address = self.buffer.ctypes.data
        self.writer = None   # (stream, the stream's op number) of the last write
        with _state.lock:
            _state.blocks.add(self)

    def __del__(self):
        try:
            self.pool.free[self.size] += 1
            self.pool.in_use -= self.size
            with _state.lock:
                _state.blocks.discard(self)
        except Exception:   # interpreter shutdown
            pass


class _Blocks:
    """The live blocks by address (weakly held), so a raw pointer (cuBLAS's arguments) finds
    its memory."""

    def __init__(self):
        self.starts, self.by_start = [], {}

    def add(self, block):
        bisect.insort(self.starts, block.address)
        self.by_start[block.address] = weakref.ref(block)

    def discard(self, block):
        ref = self.by_start.get(block.address)
        if ref is not None and ref() in (None, block):
            del self.by_start[block.address]
            self.starts.pop(bisect.bisect_left(self.starts, block.address))

    def find(self, address, nbytes):
        i = bisect.bisect_right(self.starts, address) - 1
        if i >= 0:
            block = self.by_start[self.starts[i]]()
            if block is not None and address + nbytes <= block.address + block.buffer.size:
                return block
        raise StandInError(f"a device pointer {address:#x} reaching {nbytes} bytes lies in no "
                           f"live allocation: on a GPU this reads or writes another array")


# ---- the state of the stand-in --------------------------------------------------------------
class _Shared:
    """One stand-in's state (the counts are shared by every thread, as the GPU is)."""

    def __init__(self):
        self.counts = Counts()
        self.kernels = "count"
        self.pool = MemoryPool()
        self.allocator = None     # a MemoryPool chosen by using_allocator(), else self.pool
        self.capture = None       # the Capture being recorded, or None
        self.blocks = _Blocks()
        self.codes = []           # the source texts RawModule was given (cache keys)
        self.lock = threading.RLock()


_state = _Shared()


def _call(launches=(), device_call=True):
    """Count one call from Python and the launches it makes."""
    counts = _state.counts
    if device_call:
        counts.device_calls += 1
    for label in launches:
        counts.launches[label] += 1


def _work(fn, skip=False, reads=(), writes=()):
    """Run device work now, or record it when a capture is on (nothing runs in a capture).
    With kernels="count" nothing is ever run (`skip`): only counted. `reads` and `writes`:
    the device arrays (or blocks) it touches, for the streams' ordering."""
    capture = _state.capture
    skip = skip or _state.kernels == "count"
    reads, writes = _blocks_of(reads), _blocks_of(writes)
    if capture is not None:
        capture.record(fn, skip, reads, writes)
        return
    _order(get_current_stream(), reads, writes, "an operation")
    if not skip:
        with np.errstate(all="ignore"):
            fn()


def _blocks_of(arrays):
    return [a._block if isinstance(a, DeviceArray) else a for a in arrays
            if isinstance(a, (DeviceArray, _Block))]


def _order(stream, reads, writes, what):
    """Check that work on `stream` touching these blocks is ordered after whatever last wrote
    them, then make it their last writer. Work on one stream runs in order; across streams
    only a synchronisation orders it (the host waiting, an event, or the legacy default
    stream, which waits for and is waited on by every blocking stream)."""
    stream.issued += 1
    for block in reads + writes:
        writer = block.writer
        if writer is None or writer[0] is stream:
            continue
        other, index = writer
        if (other.synced >= index or stream.waited.get(other, 0) >= index
                or (stream.null and not other.non_blocking)
                or (other.null and not stream.non_blocking)):
            continue
        raise StandInError(
            f"{what} on {stream.name} uses an array last written on {other.name}, with nothing "
            f"ordering the two (on a GPU it may run before that write has happened): run both "
            f"on one stream, or make {stream.name} wait (stream.synchronize(), an event)")
    for block in writes:
        block.writer = (stream, stream.issued)


def _host_read(what, array=None):
    if _state.capture is not None:
        raise CaptureError(f"{what} during a stream capture: the host cannot read device "
                           f"memory while a step is being recorded (on a GPU the capture fails)")
    stream = get_current_stream()
    if array is not None:   # a copy on the current stream, then the host waits for it
        _order(stream, [array._block], [], what)
    stream.synced = stream.issued
    _state.counts.host_reads += 1
    _state.counts.device_to_host += 1


# ---- arrays ---------------------------------------------------------------------------------
def _allocate(shape, dtype):
    dtype = np.dtype(dtype)
    shape = tuple(int(n) for n in (shape if isinstance(shape, (tuple, list)) else (shape,)))
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    block = (_state.allocator or _state.pool).malloc(nbytes)
    host = block.buffer[:nbytes].view(dtype).reshape(shape)
    return DeviceArray(host, block)


def _result_like(host):
    """A new device array holding a copy of a host array computed to learn the shape."""
    out = _allocate(host.shape, host.dtype)
    out._a[...] = host
    return out


class _Pointer:
    """CuPy's MemoryPointer: what `array.data` is (`.ptr` the device address)."""

    def __init__(self, ptr):
        self.ptr = ptr


class DeviceArray:
    """An array in the stand-in's device memory (NumPy memory, posing as a CuPy array)."""

    __slots__ = ("_a", "_block", "shape", "dtype", "flags", "__weakref__")
    __array_priority__ = 50   # below Tensor's 100: `array + tensor` goes to the tensor

    def __init__(self, host, block):
        self._a, self._block = host, block
        # What the array is: host-side facts, read without a device call (and as fast as
        # CuPy's own attributes, so the launcher's cost can be measured on the stand-in).
        self.shape, self.dtype, self.flags = host.shape, host.dtype, host.flags

    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    data = property(lambda self: _Pointer(self._a.__array_interface__["data"][0]))
    device = property(lambda self: "stand-in GPU 0")

    def __len__(self):
        return len(self._a)

    def _view(self, host):
        return DeviceArray(host, self._block)

    @property
    def T(self):
        return self._view(self._a.T)

    def transpose(self, *axes):
        return self._view(self._a.transpose(*axes))

    def swapaxes(self, a, b):
        return self._view(self._a.swapaxes(a, b))

    def view(self, dtype=None):
        return self._view(self._a.view() if dtype is None else self._a.view(dtype))

    def reshape(self, *shape, order="C"):
        shape = shape[0] if len(shape) == 1 and not isinstance(shape[0], numbers.Integral) else shape
        view = self._a.view()
        try:
            view.shape = shape   # only possible without a copy
            return self._view(view)
        except AttributeError:
            return _copy_op("reshape", self, self._a.reshape(shape).shape)

    def ravel(self):
        return self.reshape(-1)

    def squeeze(self, axis=None):
        return self._view(self._a.squeeze(axis))

    def __getitem__(self, key):
        key = _unwrap_index(key)
        keys = key if isinstance(key, tuple) else (key,)
        if any(isinstance(k, (np.ndarray, list)) for k in keys):
            return _gather("getitem", self, key)   # advanced indexing: a kernel
        host = self._a[keys + (Ellipsis,)] if Ellipsis not in keys else self._a[key]
        return self._view(host)   # basic indexing: a view (a[3] a 0-d array, as in CuPy)

    def __setitem__(self, key, value):
        key = _unwrap_index(key)
        if isinstance(value, np.ndarray):
            raise TypeError("Unsupported type <class 'numpy.ndarray'>: copy a host array to "
                            "the device first (cupy.asarray or array.set)")
        src = value._a if isinstance(value, DeviceArray) else value
        target = self._a
        _call(["cupy:fill" if not isinstance(value, DeviceArray) else "cupy:copy"])
        _work(lambda: target.__setitem__(key, src), reads=[value], writes=[self])

    def fill(self, value):
        _call(["cupy:fill"])
        host = self._a
        _work(lambda: host.fill(value), writes=[self])

    def __deepcopy__(self, memo):   # as CuPy's: a copy in device memory
        return self.copy()

    def copy(self, order="C"):
        return _unary_op("copy", self, lambda a, out: np.copyto(out, a), self.dtype)

    def astype(self, dtype, copy=True, **_):
        dtype = np.dtype(dtype)
        if dtype == self.dtype and not copy:
            return self
        return _unary_op("astype", self, lambda a, out: np.copyto(out, a, casting="unsafe"),
                         dtype)

    # -- reductions: one kernel each in CuPy --
    def _reduce(self, name, axis=None, dtype=None, out=None, keepdims=False):
        host = self._a
        method = getattr(np.ndarray, name)
        kwargs = {"axis": axis, "keepdims": keepdims}
        if name in ("sum", "mean"):
            kwargs["dtype"] = dtype
        if name in ("argmax", "argmin"):
            kwargs.pop("keepdims")
        _call([f"cupy:{name}"])
        if out is not None:
            target = out._a
            _work(lambda: method(host, out=target, **kwargs), reads=[self], writes=[out])
            return out
        shape, dtype_of = _reduced(host, name, kwargs)
        result = _allocate(shape, dtype_of)
        target = result._a
        _work(lambda: np.copyto(target, method(host, **kwargs)), reads=[self], writes=[result])
        return result

    def sum(self, axis=None, dtype=None, out=None, keepdims=False):
        return self._reduce("sum", axis, dtype, out, keepdims)

    def mean(self, axis=None, dtype=None, out=None, keepdims=False):
        return self._reduce("mean", axis, dtype, out, keepdims)

    def max(self, axis=None, out=None, keepdims=False):
        return self._reduce("max", axis, None, out, keepdims)

    def min(self, axis=None, out=None, keepdims=False):
        return self._reduce("min", axis, None, out, keepdims)

    def argmax(self, axis=None, out=None):
        return self._reduce("argmax", axis, None, out)

    def argmin(self, axis=None, out=None):
        return self._reduce("argmin", axis, None, out)

    def any(self, axis=None, out=None, keepdims=False):
        return self._reduce("any", axis, None, out, keepdims)

    def all(self, axis=None, out=None, keepdims=False):
        return self._reduce("all", axis, None, out, keepdims)

    # -- to and from the host --
    def set(self, host, stream=None):
        """Copy a host array into this device array (cudaMemcpyAsync host to device)."""
        host = np.asarray(host)
        if host.shape != self.shape:
            raise ValueError(f"set: shape {host.shape} does not match {self.shape}")
        _call([])
        _state.counts.host_to_device += 1
        if _state.capture is not None:
            raise CaptureError("a copy from the host during a stream capture: copy into the "
                               "static buffers before the replay, outside the capture")
        target, source = self._a, host.astype(self.dtype, copy=True)
        _work(lambda: np.copyto(target, source), writes=[self])

    def get(self, stream=None, out=None):
        """Copy to the host: waits for the GPU unless a stream is given (then the copy is
        enqueued and the host must wait on an event before reading `out`)."""
        if stream is None:
            _host_read("array.get()", self)
            _call([])
            return self._a.copy() if out is None else np.copyto(out, self._a) or out
        if out is None:
            raise StandInError("get(stream=...) needs out=: a pinned host buffer to copy into")
        _call([])
        _state.counts.device_to_host += 1
        source = self._a
        _work(lambda: np.copyto(out, source), reads=[self])
        return out

    def item(self):
        _host_read("array.item()", self)
        _call([])
        return self._a.item()

    def tolist(self):
        _host_read("array.tolist()", self)
        _call([])
        return self._a.tolist()

    def __float__(self):
        _host_read("float(array)", self)
        _call([])
        return float(self._a)

    def __int__(self):
        _host_read("int(array)", self)
        _call([])
        return int(self._a)

    def __index__(self):
        _host_read("an array used as an index", self)
        _call([])
        return self._a.__index__()

    def __bool__(self):
        _host_read("bool(array)", self)
        _call([])
        return bool(self._a)

    def __repr__(self):
        _host_read("repr(array)", self)
        return f"array({self._a!r}, device=stand-in)"

    __str__ = __repr__

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use "
                        "`.get()` to construct a NumPy array explicitly.")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return _ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types_, args, kwargs):
        own = getattr(cupy, func.__name__, None)
        if own is None or own is func:
            raise StandInError(f"numpy.{func.__name__} on a stand-in device array is not "
                               f"modelled; call the cupy function (xp.{func.__name__})")
        return own(*args, **kwargs)

    # -- operators, through the ufuncs (and so counted) --
    __hash__ = None


def _operator(ufunc, reflected=False, inplace=False):
    def method(self, other):
        if not isinstance(other, (DeviceArray, np.ndarray, numbers.Number, np.generic)):
            return NotImplemented   # a Tensor: its own operator takes it
        if inplace:
            return ufunc(self, other, out=self)
        return ufunc(other, self) if reflected else ufunc(self, other)
    return method


for _name, _ufunc_ in (("add", np.add), ("sub", np.subtract), ("mul", np.multiply),
                       ("truediv", np.true_divide), ("pow", np.power),
                       ("and", np.bitwise_and), ("or", np.bitwise_or),
                       ("xor", np.bitwise_xor)):
    setattr(DeviceArray, f"__{_name}__", _operator(_ufunc_))
    setattr(DeviceArray, f"__r{_name}__", _operator(_ufunc_, reflected=True))
    setattr(DeviceArray, f"__i{_name}__", _operator(_ufunc_, inplace=True))
for _name, _ufunc_ in (("lt", np.less), ("le", np.less_equal), ("gt", np.greater),
                       ("ge", np.greater_equal), ("eq", np.equal), ("ne", np.not_equal)):
    setattr(DeviceArray, f"__{_name}__", _operator(_ufunc_))
DeviceArray.__neg__ = lambda self: np.negative(self)
DeviceArray.__abs__ = lambda self: np.absolute(self)
DeviceArray.__invert__ = lambda self: np.invert(self)
DeviceArray.__matmul__ = lambda self, other: cupy.matmul(self, other)
DeviceArray.__rmatmul__ = lambda self, other: cupy.matmul(other, self)


def _unwrap_index(key):
    if isinstance(key, tuple):
        return tuple(k._a if isinstance(k, DeviceArray) else k for k in key)
    return key._a if isinstance(key, DeviceArray) else key


def _operand(value, what):
    """The host memory of a device array, or a Python/NumPy scalar; a NumPy array is refused
    as CuPy refuses it."""
    if isinstance(value, DeviceArray):
        return value._a
    if isinstance(value, np.ndarray):
        raise TypeError(f"Unsupported type {type(value)} in {what}: a NumPy array cannot meet "
                        f"a device array (copy it to the device, or use a Python number)")
    return value


def _ufunc(ufunc, method, inputs, kwargs):
    """One CuPy elementwise or reduction kernel."""
    if any(not isinstance(v, (DeviceArray, np.ndarray, numbers.Number, np.generic))
           for v in inputs):
        return NotImplemented   # a Tensor: let its own operator take it
    name = f"{ufunc.__name__}{'' if method == '__call__' else '.' + method}"
    args = [_operand(v, f"cupy.{name}") for v in inputs]
    out = kwargs.pop("out", None)
    if out is not None:
        out = out if isinstance(out, tuple) else (out,)
        targets = tuple(_operand(o, f"cupy.{name}") for o in out)
    call = getattr(ufunc, method)
    launches = [f"cupy:{name}"]
    if name == "matmul":
        return cupy.matmul(*inputs, out=out[0] if out else None)
    _call(launches)
    if out is not None:
        _work(lambda: call(*args, out=targets, **kwargs), reads=inputs, writes=out)
        return out[0] if len(out) == 1 else out
    if method == "__call__":
        shape = np.broadcast_shapes(*(np.shape(a) for a in args))
        with np.errstate(all="ignore"):   # the dtypes, from one element of each operand
            sample = call(*[a.reshape(-1)[:1] if isinstance(a, np.ndarray) and a.size else a
                            for a in args], **kwargs)
        samples = sample if isinstance(sample, tuple) else (sample,)
        wrapped = tuple(_allocate(shape, np.asarray(r).dtype) for r in samples)
    else:   # reduce, accumulate, ...: rare here, worked out by running them once
        with np.errstate(all="ignore"):
            sample = call(*args, **kwargs)
        samples = sample if isinstance(sample, tuple) else (sample,)
        wrapped = tuple(_allocate(np.shape(r), np.asarray(r).dtype) for r in samples)
    targets = tuple(w._a for w in wrapped)
    _work(lambda: call(*args, out=targets, **kwargs), reads=inputs, writes=wrapped)
    return wrapped if isinstance(sample, tuple) else wrapped[0]


def _reduced(host, name, kwargs):
    """(shape, dtype) of a reduction's result, without reducing: the axes worked out, the
    dtype from reducing one element."""
    axis, keepdims = kwargs.get("axis"), kwargs.get("keepdims", False)
    axes = (tuple(range(host.ndim)) if axis is None else
            tuple(a % host.ndim for a in (axis if isinstance(axis, tuple) else (axis,))))
    if name in ("argmax", "argmin") and axis is None:
        shape = ()
    elif keepdims:
        shape = tuple(1 if i in axes else n for i, n in enumerate(host.shape))
    else:
        shape = tuple(n for i, n in enumerate(host.shape) if i not in axes)
    one = host.reshape(-1)[:1] if host.size else host.reshape(-1)
    with np.errstate(all="ignore"):
        sample = getattr(np.ndarray, name)(one, **{k: v for k, v in kwargs.items()
                                                   if k == "dtype"})
    return shape, np.asarray(sample).dtype


def _unary_op(name, array, fill, dtype):
    result = _allocate(array.shape, dtype)
    _call([f"cupy:{name}"])
    source, target = array._a, result._a
    _work(lambda: fill(source, target), reads=[array], writes=[result])
    return result


def _copy_op(name, array, shape):
    """An op that copied (a reshape that could not be a view): one copy kernel."""
    _call([f"cupy:{name} copy"])
    result = _allocate(shape, array.dtype)
    source, target = array._a, result._a
    _work(lambda: np.copyto(target, source.reshape(shape)), reads=[array], writes=[result])
    return result


def _gather(name, array, key):
    _call([f"cupy:{name} (gather)"])
    source = array._a
    keys = key if isinstance(key, tuple) else (key,)
    if any(isinstance(k, np.ndarray) and k.dtype == bool for k in keys):
        _host_read("boolean-mask indexing (its size is the mask's count)", array)
    # The shape, from the index arrays' shapes alone (their values may be garbage here).
    shape_of = source[tuple(np.zeros_like(k) if isinstance(k, np.ndarray) and k.dtype != bool
                            else k for k in keys)]
    result = _allocate(shape_of.shape, shape_of.dtype)
    target = result._a
    _work(lambda: np.copyto(target, source[key]), reads=[array], writes=[result])
    return result


# ---- the stand-in for the cupy module -------------------------------------------------------
def _from_host(obj, dtype=None):
    if _state.capture is not None:
        raise CaptureError("a copy from the host during a stream capture: copy into the "
                           "static buffers before the replay, outside the capture")
    host = np.array(obj, dtype=dtype, copy=True)
    result = _allocate(host.shape, host.dtype)
    _call([])
    _state.counts.host_to_device += 1
    target = result._a
    _work(lambda: np.copyto(target, host), writes=[result])
    return result


def _filled(shape, dtype, value, label):
    """empty (value None: an allocation, which the pool serves without calling the device)
    or a fill, one kernel."""
    result = _allocate(shape, dtype)
    if value is not None:
        _call([label])
        target = result._a
        _work(lambda: target.fill(value), writes=[result])
    return result


def _matmul(a, b, out=None):
    """cupy.matmul as CuPy runs it (cupy/_core/_routines_linalg.pyx): a 2-D product is one
    GEMM; a batched one is one strided-batched GEMM, but when one operand is broadcast over
    the batch (a 2-D weight against 3-D columns) CuPy first builds three arrays of matrix
    pointers, each an allocation and a kernel, then calls the batched (pointer) GEMM.
    Operands that are not contiguous are copied first."""
    ha, hb = _operand(a, "cupy.matmul"), _operand(b, "cupy.matmul")
    launches = []
    ndim = max(ha.ndim, hb.ndim)
    for h in (ha, hb):
        contiguous = h.flags.c_contiguous or (ndim <= 2 and h.flags.f_contiguous)
        if not contiguous:
            launches.append("cupy:matmul operand copy")
            _state.counts.allocations += 1
    broadcast = ndim > 2 and (ha.ndim < ndim or hb.ndim < ndim or
                              any(x == 1 != y or y == 1 != x for x, y in
                                  zip(ha.shape[:-2], hb.shape[:-2])))
    if broadcast:
        launches += ["cupy:matmul pointer arrays"] * 3
        for _ in range(3):
            _allocate((1,), np.uintp)   # the three pointer arrays, freed at once
    launches.append("cublas:gemm")
    _call(launches)
    shape = np.broadcast_shapes(ha.shape[:-2], hb.shape[:-2]) + (ha.shape[-2], hb.shape[-1])
    if out is None:
        out = _allocate(shape, np.result_type(ha.dtype, hb.dtype))
    target = out._a
    _work(lambda: np.matmul(ha, hb, out=target), reads=[a, b], writes=[out])
    return out


class _Runtime:
    @staticmethod
    def getDeviceCount():
        return 1

    @staticmethod
    def deviceSynchronize():
        _synchronize("cupy.cuda.runtime.deviceSynchronize()")
        for stream in list(Stream._all):
            stream.synced = stream.issued

    @staticmethod
    def runtimeGetVersion():
        return 13000

    @staticmethod
    def driverGetVersion():
        return 13000

    @staticmethod
    def getDeviceProperties(device):
        return {"name": b"minran stand-in GPU", "totalGlobalMem": 1 << 36, "major": 9,
                "minor": 0}


def _synchronize(what):
    if _state.capture is not None:
        raise CaptureError(f"{what} during a stream capture")
    _state.counts.synchronizations += 1
    _state.counts.device_calls += 1


class Capture:
    """The record of a stream capture: the work, in order, with the memory it touches, and
    the pools its allocations came from."""

    def __init__(self, stream):
        self.stream, self.work, self.pools = stream, [], set()
        self.reads, self.writes = set(), set()
        self.start = _state.counts.copy()   # what was counted before it began

    def record(self, fn, skip=False, reads=(), writes=()):
        self.work.append((fn, skip))
        self.reads.update(reads)
        self.writes.update(writes)


class Graph:
    """What `stream.end_capture()` returns: `launch()` runs the recorded work once more."""

    def __init__(self, capture, launches):
        self.work, self.launches = capture.work, launches
        self.reads, self.writes = list(capture.reads), list(capture.writes)

    def launch(self, stream=None):
        if _state.capture is not None:
            raise CaptureError("launching a graph inside another capture is not modelled")
        counts = _state.counts
        counts.device_calls += 1
        counts.graph_launches += 1
        counts.launches.update(self.launches)
        _order(stream or get_current_stream(), self.reads, self.writes, "a graph launch")
        with np.errstate(all="ignore"):
            for fn, skip in self.work:
                if not skip:
                    fn()


class Stream:
    """cupy.cuda.Stream: `with stream:` makes it current; capture records instead of runs."""

    _local = threading.local()

    _made = 0
    _all = weakref.WeakSet()

    def __init__(self, null=False, non_blocking=False, ptds=False):
        self.null, self.non_blocking = null, non_blocking
        # For the ordering checks: how many operations were issued on this stream, up to
        # which one the host has waited, and up to which one of other streams it waited
        # for through events.
        self.issued = self.synced = 0
        self.waited = {}
        Stream._made += 1
        self.name = "the legacy default stream" if null else f"stream {Stream._made}"
        Stream._all.add(self)

    def __enter__(self):
        stack = Stream._local.__dict__.setdefault("stack", [])
        stack.append(self)
        return self

    def __exit__(self, *exc):
        Stream._local.stack.pop()
        return False

    def synchronize(self):
        _synchronize("stream.synchronize()")
        self.synced = self.issued

    def wait_event(self, event):
        if event.stream is not None:
            self.waited[event.stream] = max(self.waited.get(event.stream, 0), event.index)

    def begin_capture(self, mode=None):
        if self.null:
            raise StandInError("cannot capture on the default (legacy) stream")
        if _state.capture is not None:
            raise CaptureError("a capture is already under way")
        if get_current_stream() is not self:
            raise CaptureError("capture on a stream that is not the current one: the work "
                               "would go to another stream and not be captured")
        _call([])
        _state.capture = Capture(self)

    def end_capture(self):
        capture = _state.capture
        if capture is None or capture.stream is not self:
            raise CaptureError("end_capture on a stream that is not capturing")
        _state.capture = None
        _call([])
        for pool in capture.pools:
            # The graph's memory: freed blocks may be handed out again only inside a capture.
            pool.sealed = "a CUDA graph recorded its step in it"
        during = _state.counts.since(capture.start)
        # What was captured is counted when the graph runs, not when it was recorded.
        _state.counts.launches -= during.launches
        return Graph(capture, during.launches)

    def record(self, event=None):
        event = event or Event()
        event.record(self)
        return event


def get_current_stream():
    stack = Stream._local.__dict__.get("stack")
    return stack[-1] if stack else Stream.null


Stream.null = Stream(null=True)


class Event:
    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self.stream, self.index = None, 0

    def record(self, stream=None):
        _call([])
        self.stream = stream or get_current_stream()
        self.index = self.stream.issued

    def query(self):
        return True   # every recorded copy has already happened here

    done = property(query)

    def synchronize(self):
        _synchronize("event.synchronize()")
        if self.stream is not None:
            self.stream.synced = max(self.stream.synced, self.index)


@contextlib.contextmanager
def using_allocator(allocator=None):
    previous = _state.allocator
    _state.allocator = getattr(allocator, "__self__", None) if allocator is not None else None
    try:
        yield
    finally:
        _state.allocator = previous


def alloc_pinned_memory(nbytes):
    """Page-locked host memory; on the stand-in ordinary memory (it only changes speed)."""
    return bytearray(int(nbytes))


class _Cublas:
    """The cuBLAS entry points minran calls, each computing exactly what cuBLAS would with
    those numbers (blas.reference) on the memory the raw pointers point at."""

    CUBLAS_OP_N, CUBLAS_OP_T = blas.OP_N, blas.OP_T
    CUBLAS_DEFAULT_MATH, CUBLAS_TF32_TENSOR_OP_MATH = 0, 3

    def setMathMode(self, handle, mode):
        _call([])

    def sgemmStridedBatched(self, *args):
        self._gemm(np.float32, *args)

    def dgemmStridedBatched(self, *args):
        self._gemm(np.float64, *args)

    def _gemm(self, dtype, handle, transa, transb, m, n, k, alpha, A, lda, stride_a, B, ldb,
              stride_b, beta, C, ldc, stride_c, batch):
        call = blas.Call(transa, transb, m, n, k, lda, stride_a, ldb, stride_b, ldc, stride_c,
                         batch)
        alpha, beta = blas.read_scalar(alpha, dtype), blas.read_scalar(beta, dtype)
        blocks = [_state.blocks.find(p, 1) for p in (A, B, C)]
        arrays = [self._memory(dtype, block, p) for block, p in zip(blocks, (A, B, C))]
        _call(["cublas:gemm"])

        def run():
            blas.reference(call, alpha, *arrays[0], *arrays[1], beta, *arrays[2])
        _work(run, reads=blocks[:2] + ([blocks[2]] if beta else []), writes=blocks[2:])

    @staticmethod
    def _memory(dtype, block, pointer):
        """(the flat array of the live block the pointer lies in, element offset)."""
        offset = pointer - block.address
        item = np.dtype(dtype).itemsize
        if offset % item:
            raise StandInError(f"a device pointer not aligned to {item} bytes")
        usable = block.buffer.size - block.buffer.size % item
        return block.buffer[:usable].view(dtype), offset // item


class RawModule:
    """cupy.RawModule: compiled here with the emulator (kernels='emulate'), or not at all
    (kernels='count': a launch is only counted)."""

    def __init__(self, code=None, path=None, options=(), name_expressions=(), **_):
        _state.codes.append(code)
        self.code, self.options, self.names = code, tuple(options), tuple(name_expressions)
        self._emulated = None
        if _state.kernels == "emulate":
            from . import emulator
            digest = hashlib.sha256(code.encode()).hexdigest()[:20]
            folder = emulator.cache_dir() / "standin"
            folder.mkdir(parents=True, exist_ok=True)
            source = folder / f"{digest}.cu"
            if not source.exists():
                with tempfile.NamedTemporaryFile("w", dir=folder, delete=False,
                                                 suffix=".cu") as f:
                    f.write(code)
                pathlib.Path(f.name).replace(source)
            self._emulated = emulator.Module(source, self.options, list(self.names))

    def get_function(self, expression):
        if expression not in self.names:
            raise StandInError(f"RawModule was not compiled with {expression}")
        return _Function(self, expression)

    def const_params(self, expression):
        """Whether each parameter of the kernel is a pointer to const (only read)."""
        from .kernels import parse
        if not hasattr(self, "_params"):
            self._params = parse(self.code)
        return [p.ctype.startswith("const") for p in self._params[expression.split("<")[0]]]


class _Function:
    def __init__(self, module, expression):
        self.module, self.expression = module, expression
        self.label = "kernel:" + expression.split("<")[0]
        self._emulated = (module._emulated.get_function(expression)
                          if module._emulated is not None else None)
        self.const = module.const_params(expression)

    def __call__(self, grid, block, args, shared_mem=0, stream=None):
        for value in args:
            if isinstance(value, np.ndarray):
                raise TypeError(f"{self.expression}: a NumPy array cannot be a kernel argument "
                                f"on the GPU")
        _call([self.label])
        arrays = [(a, const) for a, const in zip(args, self.const)
                  if isinstance(a, DeviceArray)]
        reads = [a for a, _ in arrays]
        writes = [a for a, const in arrays if not const]
        if self._emulated is None:
            _work(lambda: None, skip=True, reads=reads, writes=writes)
            return
        emulated = self._emulated
        host_args = [a._a if isinstance(a, DeviceArray) else a for a in args]
        _work(lambda: emulated(grid, block, host_args, shared_mem), reads=reads, writes=writes)


def _namespace():
    """The module object that stands where `cupy` would."""
    cuda = types.SimpleNamespace(
        runtime=_Runtime, Stream=Stream, Event=Event, get_current_stream=get_current_stream,
        MemoryPool=MemoryPool, using_allocator=using_allocator,
        set_allocator=lambda allocator=None: None,
        alloc_pinned_memory=alloc_pinned_memory, cublas=_Cublas(),
        device=types.SimpleNamespace(get_cublas_handle=lambda: 0),
        Device=lambda i=0: types.SimpleNamespace(id=i, synchronize=_Runtime.deviceSynchronize,
                                                 compute_capability="90"),
        graph=types.SimpleNamespace(Graph=Graph))
    functions = dict(
        __name__="cupy", __version__="stand-in", ndarray=DeviceArray, cuda=cuda,
        RawModule=RawModule, matmul=_matmul,
        empty=lambda shape, dtype=np.float64, order="C": _filled(shape, dtype, None, ""),
        zeros=lambda shape, dtype=np.float64, order="C": _filled(shape, dtype, 0, "memory:memset"),
        ones=lambda shape, dtype=np.float64, order="C": _filled(shape, dtype, 1, "cupy:fill"),
        full=lambda shape, value, dtype=None: _filled(
            shape, dtype or np.asarray(value).dtype, value, "cupy:fill"),
        empty_like=lambda a, dtype=None: _filled(a.shape, dtype or a.dtype, None, ""),
        zeros_like=lambda a, dtype=None: _filled(a.shape, dtype or a.dtype, 0, "memory:memset"),
        ones_like=lambda a, dtype=None: _filled(a.shape, dtype or a.dtype, 1, "cupy:fill"),
        full_like=lambda a, value, dtype=None: _filled(a.shape, dtype or a.dtype, value,
                                                       "cupy:fill"),
        asarray=_asarray, array=_array, ascontiguousarray=_ascontiguousarray,
        asnumpy=_asnumpy, arange=_arange, where=_where, broadcast_to=_broadcast_to,
        swapaxes=lambda a, x, y: a.swapaxes(x, y), transpose=lambda a, axes=None: a.transpose(
            *(axes or ())), reshape=lambda a, shape: a.reshape(shape),
        get_default_memory_pool=lambda: _state.pool, get_array_module=lambda *a: cupy,
        broadcast_shapes=np.broadcast_shapes, pad=_pad, einsum=_einsum,
    )
    module = types.ModuleType("cupy")
    module.__dict__.update(functions)

    def fallback(name):
        value = getattr(np, name, None)
        if isinstance(value, np.ufunc) or isinstance(value, type) or isinstance(
                value, (float, int)) or name in ("newaxis",):
            return value
        raise AttributeError(f"the stand-in for CuPy has no {name!r}: minran's GPU path calls "
                             f"something not modelled in minran/cuda/standin.py")
    module.__getattr__ = fallback
    return module


def _asarray(obj, dtype=None, order=None):
    if isinstance(obj, DeviceArray):
        return obj if dtype is None or np.dtype(dtype) == obj.dtype else obj.astype(dtype)
    return _from_host(obj, dtype)


def _array(obj, dtype=None, copy=True, order="K", ndmin=0):
    if isinstance(obj, DeviceArray):
        return obj.astype(dtype or obj.dtype, copy=copy)
    return _from_host(obj, dtype)


def _ascontiguousarray(a, dtype=None):
    if a.flags.c_contiguous and (dtype is None or np.dtype(dtype) == a.dtype):
        return a
    return _unary_op("ascontiguousarray", a, lambda s, t: np.copyto(t, s, casting="unsafe"),
                     dtype or a.dtype)


def _asnumpy(a, stream=None, out=None):
    if not isinstance(a, DeviceArray):
        return np.asarray(a)
    return a.get(stream=stream, out=out)


def _arange(*args, dtype=None):
    return _generated("arange", np.arange(*args, dtype=dtype))


def _generated(name, host):
    result = _allocate(host.shape, host.dtype)
    _call([f"cupy:{name}"])
    target = result._a
    _work(lambda: np.copyto(target, host), writes=[result])
    return result


def _where(condition, x, y):
    hc, hx, hy = (_operand(v, "cupy.where") for v in (condition, x, y))
    with np.errstate(all="ignore"):
        shape_of = np.where(hc, hx, hy)
    result = _allocate(shape_of.shape, shape_of.dtype)
    _call(["cupy:where"])
    target = result._a
    _work(lambda: np.copyto(target, np.where(hc, hx, hy)), reads=[condition, x, y],
          writes=[result])
    return result


def _einsum(subscripts, *operands, **kwargs):
    """cupy.einsum, counted as one kernel (CuPy may split it into a few)."""
    hosts = [_operand(v, "cupy.einsum") for v in operands]
    with np.errstate(all="ignore"):
        shape_of = np.einsum(subscripts, *hosts, **kwargs)
    result = _allocate(np.shape(shape_of), np.asarray(shape_of).dtype)
    _call(["cupy:einsum"])
    target = result._a
    _work(lambda: np.copyto(target, np.einsum(subscripts, *hosts, **kwargs)), reads=operands,
          writes=[result])
    return result


def _broadcast_to(a, shape):
    return a._view(np.broadcast_to(a._a, shape))


def _pad(a, pad_width, mode="constant", constant_values=0):
    host = np.pad(a._a, pad_width, mode=mode, constant_values=constant_values)
    result = _filled(host.shape, host.dtype, constant_values, "memory:memset")
    _call(["cupy:pad copy"])
    source, target = a._a, result._a
    index = tuple(slice(before, before + n) for (before, _), n in
                  zip(np.broadcast_to(pad_width, (a.ndim, 2)), a.shape))
    _work(lambda: target.__setitem__(index, source), reads=[a], writes=[result])
    return result


cupy = _namespace()


# ---- putting it in place --------------------------------------------------------------------
class StandIn:
    """What `device()` yields: the counts, and snapshots of them."""

    def __init__(self):
        self.counts = _state.counts

    def snapshot(self):
        return _state.counts.copy()

    def since(self, snapshot):
        return _state.counts.since(snapshot)

    @property
    def pool(self):
        return _state.pool

    @property
    def codes(self):
        return list(_state.codes)


@contextlib.contextmanager
def device(kernels="count"):
    """Run the block with the stand-in in CuPy's place (see the module's docstring). Each
    block gets a fresh stand-in module, so nothing compiled or cached for one (keyed on the
    module object) is found by the next."""
    global _state, cupy
    if kernels not in ("count", "emulate"):
        raise ValueError(f"standin.device: kernels must be 'count' or 'emulate', got "
                         f"{kernels!r}")
    from . import kernels as kernel_module
    previous = (backend.cupy, backend.CUPY_IMPORT_ERROR, _state, cupy)
    _state = _Shared()
    _state.kernels = kernels
    cupy = _namespace()
    backend.cupy, backend.CUPY_IMPORT_ERROR = cupy, None
    try:
        with kernel_module.use("auto"):
            yield StandIn()
    finally:
        backend.cupy, backend.CUPY_IMPORT_ERROR, _state, cupy = previous
