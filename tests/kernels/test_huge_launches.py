"""Index arithmetic past 2^31: the kernels on arrays of more than 2^31 elements, on a CPU.

A wide network or an ImageNet batch asks for arrays past 2^31 elements (docs/KERNELS.md,
"Index arithmetic"), where an `int` product of two sizes overflows. No CPU can run such a
launch whole, so these tests run a few of its blocks (the first and the last, whose threads
compute the largest indices) with the grid it really has, on arrays mapped but never paid
for: only the planted values and what the chosen blocks write become memory
(tests/kernels/sparse.cpp). An `int` that overflows stops the run (g++'s signed-overflow
check, trapping), an index that wraps lands in an inaccessible zone beside the array, and
the values read and written are checked against the same arithmetic done in NumPy.

Not run here: the kernels that give a whole block to a map or a channel (spatial
normalisation, batch norm, the step totals) loop over all of it, 2^31 values, and write as
much: minutes of CPU and 8 GiB of memory. Their loop counters are held to `long long` by
reading the source instead (the last test).
"""
import ctypes
import hashlib
import mmap
import os
import pathlib
import re
import subprocess
import tempfile

import numpy as np
import pytest

from minran.cuda import emulator, kernels
from minran.functional import activation, attention, conv, pooling, upsample

pytestmark = pytest.mark.emulated

HARNESS = pathlib.Path(__file__).with_name("sparse.cpp")
RUN = {   # the kernels these tests run, by the op module that holds them
    "im2col": conv, "col2im": conv, "max_pool2d_forward": pooling,
    "max_pool2d_backward": pooling, "avg_pool2d_forward": pooling,
    "avg_pool2d_backward": pooling, "upsample_bilinear_forward": upsample,
    "upsample_bilinear_backward": upsample, "channel_normalize_forward": attention,
    "relu_forward": activation,
}
FLAGS = ("-std=c++17", "-O1", "-fPIC", "-shared", f"-DMINRAN_BLOCK={kernels.BLOCK}",
         "-fsanitize=signed-integer-overflow", "-fsanitize-undefined-trap-on-error")
CTYPES = {"int": ctypes.c_int, "long long": ctypes.c_longlong, "unsigned int": ctypes.c_uint,
          "float": ctypes.c_float, "double": ctypes.c_double}
SIGNALS = {4: "an int overflowed (SIGILL from the signed-overflow check)",
           11: "an access outside every array (SIGSEGV in a guard zone)", 7: "SIGBUS"}



@pytest.fixture(scope="module")
def library():
    """The harness with every kernel in RUN, built once (cached by a hash of the sources)."""
    cxx = emulator.compiler()
    files = sorted({RUN[name].CUDA.path for name in RUN})
    wrapper = f'#include "{HARNESS}"\n' + "".join(f'#include "{f}"\n' for f in files) + "".join(
        f"MINRAN_SPARSE(sparse_{name}, {name}<float>)\n" for name in RUN)
    command = [cxx, *FLAGS, "-include", str(emulator.HEADER), "-x", "c++", "-"]
    key = hashlib.sha256()
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    for part in [wrapper, " ".join(command), version, emulator.HEADER.read_text(),
                 HARNESS.read_text(), *(p.read_text() for f in files
                                        for p in kernels.included_files(f))]:
        key.update(part.encode())
    target = emulator.cache_dir() / f"sparse-{key.hexdigest()[:20]}.so"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            built = pathlib.Path(tmp) / target.name
            done = subprocess.run(command + ["-o", str(built)], input=wrapper, text=True,
                                  capture_output=True)
            assert done.returncode == 0, f"the harness does not build:\n{done.stderr[-4000:]}"
            os.replace(built, target)
    return ctypes.CDLL(str(target))


class Sparse:
    """A float32 (or int32) array of n elements that costs memory only where it is written,
    between inaccessible zones wider than any wrapped 32-bit index reaches (2^31 elements)."""

    def __init__(self, n, dtype=np.float32):
        dtype = np.dtype(dtype)
        page = mmap.PAGESIZE
        self.nbytes = n * dtype.itemsize
        data = -(-self.nbytes // page) * page
        self.guard = -(-(2**31 + 1) * dtype.itemsize // page) * page
        self.size = 2 * self.guard + data
        base = emulator.guarded_mapping(data, self.guard)
        if base is None:
            pytest.fail(f"could not reserve {self.size / 2**30:.0f} GiB of address space "
                        f"(errno {ctypes.get_errno()}): this test needs the kernel to allow "
                        f"MAP_NORESERVE mappings (vm.overcommit_memory 0 or 1)", pytrace=False)
        self.base = base
        self.address = base + self.guard + data - self.nbytes   # flush against the far guard

        class View:
            __array_interface__ = {"shape": (n,), "typestr": dtype.str, "version": 3,
                                   "data": (self.address, False)}
        self.array = np.asarray(View())

    def release(self):
        self.array = None
        emulator.unmap(self.base, self.size)


@pytest.fixture
def sparse():
    """sparse(n) -> a Sparse array, unmapped after the test."""
    made = []

    def make(n, dtype=np.float32):
        made.append(Sparse(n, dtype))
        return made[-1]
    yield make
    for s in made:
        s.release()


def address(a):
    return a.address if isinstance(a, Sparse) else a.ctypes.data


def run(library, name, args, threads, blocks):
    """Run `blocks` (block numbers) of kernel `name` launched with `threads` threads, as
    kernels.py would launch it: every argument of its parameter's exact C type."""
    params = RUN[name].CUDA.kernels[name]
    assert len(params) == len(args), name
    cells = []
    for p, a in zip(params, args):
        ctype = p.resolved("float")
        if p.pointer:
            base = ctype.replace("const ", "").rstrip("*")
            dtype = a.array.dtype if isinstance(a, Sparse) else a.dtype
            assert dtype == kernels.C_TYPES[base], (name, p)
            cells.append(ctypes.c_void_p(address(a)))
        else:
            cells.append(CTYPES[ctype](a))
    pointers = (ctypes.c_void_p * len(cells))(*[ctypes.addressof(c) for c in cells])
    grid = -(-threads // kernels.BLOCK)
    assert grid <= kernels.MAX_BLOCKS and all(0 <= b < grid for b in blocks)
    chosen = (ctypes.c_uint * len(blocks))(*blocks)
    where = (ctypes.c_longlong * 3)()
    stopped = getattr(library, f"sparse_{name}")(ctypes.c_uint(grid), chosen, len(blocks),
                                                  pointers, where)
    assert stopped == 0, (f"{name}: thread {where[1]} of block {where[0]} (of {grid:,}) "
                          f"stopped: {SIGNALS.get(stopped, stopped)}, at address {where[2]:#x}")


def planted(s, index, rng):
    """Distinct values at `index` (flat indices) of sparse array s; returns them."""
    values = rng.uniform(1, 2, len(index)).astype(s.array.dtype)
    s.array[index] = values
    return values


# ---- convolution: the columns are the largest array of a step --------------------------------
def test_im2col_and_col2im_with_more_than_2_31_column_entries(library, sparse):
    """cols (1, 1, 128, 128, 363, 363) has 2,158,903,296 entries: the last block's threads
    have indices past 2^31, and so do the entries col2im gathers for the last image row."""
    rng = np.random.default_rng(0)
    H = W = 490
    kh = kw = 128
    Ho, Wo = H - kh + 1, W - kw + 1
    total = kh * kw * Ho * Wo
    assert total > 2**31
    geometry = (1, 1, H, W, kh, kw, 1, 1, 0, 0, Ho, Wo)
    x = rng.standard_normal((H, W)).astype(np.float32)
    cols = sparse(total)
    last = -(-total // kernels.BLOCK) - 1
    run(library, "im2col", (x, cols, *geometry), total, [0, last])
    for b in (0, last):
        index = np.arange(b * kernels.BLOCK, min(total, (b + 1) * kernels.BLOCK))
        i, j = index // (Wo * Ho * kw) % kh, index // (Wo * Ho) % kw
        oh, ow = index // Wo % Ho, index % Wo
        np.testing.assert_array_equal(cols.array[index], x[oh + i, ow + j], err_msg=f"block {b}")

    # col2im gathers, for each input pixel, every column entry read from it. Plant the entries
    # of kernel rows 0 and kh - 1 that pixels of image rows 0 and H - 1 read, then gather.
    def entry(i, j, oh):
        return ((i * kw + j) * Ho + oh) * Wo + np.arange(Wo)
    for i, oh in ((0, 0), (kh - 1, Ho - 1)):
        for j in range(kw):
            planted(cols, entry(i, j, oh), rng)
    gathered = np.full((H, W), np.nan, np.float32)
    pixels = H * W
    last = -(-pixels // kernels.BLOCK) - 1
    run(library, "col2im", (cols, gathered, *geometry), pixels, [0, last])
    for h, i, oh in ((0, 0, 0), (H - 1, kh - 1, Ho - 1)):
        want = np.zeros(W, np.float32)   # the kernel's order: kernel columns j ascending
        for j in range(kw):
            want[j:j + Wo] += cols.array[entry(i, j, oh)]
        done = slice(0, kernels.BLOCK) if h == 0 else slice(W - (pixels - last * kernels.BLOCK), W)
        np.testing.assert_array_equal(gathered[h, done], want[done], err_msg=f"image row {h}")


# ---- pooling: one plane of 2^31 + 2^15 pixels ----------------------------------------------
H_BIG, W_BIG = 65537, 32768   # (H - 1) * W = 2^31: the last row's offset overflows an int
CORNERS = np.array([0, W_BIG - 1, (H_BIG - 1) * W_BIG, H_BIG * W_BIG - 1])


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pooling_over_a_plane_of_more_than_2_31_pixels(library, sparse, kind):
    """A 1x1 window strided (65536, 32767) picks the plane's four corners; the last corner
    is pixel 2^31 + 32767. Then the backward, one thread per input pixel, from the last block."""
    rng = np.random.default_rng(1)
    geometry = (1, 1, H_BIG, W_BIG, 1, 1, H_BIG - 1, W_BIG - 1, 0, 0, 2, 2)
    x = sparse(H_BIG * W_BIG)
    corners = planted(x, CORNERS, rng)
    out = np.full(4, np.nan, np.float32)
    argmax = np.full(4, -7, np.int32)
    if kind == "max":
        run(library, "max_pool2d_forward", (x, out, argmax, *geometry), 4, [0])
        np.testing.assert_array_equal(argmax, 0)
    else:
        run(library, "avg_pool2d_forward", (x, out, *geometry), 4, [0])
    np.testing.assert_array_equal(out, corners)

    g = rng.uniform(-2, -1, 4).astype(np.float32)
    gx = sparse(H_BIG * W_BIG)
    pixels = H_BIG * W_BIG
    last = -(-pixels // kernels.BLOCK) - 1
    if kind == "max":
        run(library, "max_pool2d_backward", (g, argmax, gx, *geometry), pixels, [0, last])
    else:
        run(library, "avg_pool2d_backward", (g, gx, *geometry), pixels, [0, last])
    for b, corner in ((0, 0), (last, 3)):
        index = np.arange(b * kernels.BLOCK, min(pixels, (b + 1) * kernels.BLOCK))
        want = np.where(np.isin(index, CORNERS), g[corner], 0).astype(np.float32)
        np.testing.assert_array_equal(gx.array[index], want, err_msg=f"block {b}")


# ---- upsampling ------------------------------------------------------------------------------
def test_upsampling_from_and_to_planes_of_more_than_2_31_pixels(library, sparse):
    """Forward: a 2x2 output with aligned corners reads the four corners of the big plane
    (row 65536 starts at 2^31). Backward at scale 1, big to big: the last block's pixels
    gather the outputs past 2^31 that read them."""
    rng = np.random.default_rng(2)
    x = sparse(H_BIG * W_BIG)
    corners = planted(x, CORNERS, rng)
    out = np.full(4, np.nan, np.float32)
    run(library, "upsample_bilinear_forward",
        (x, out, 1, 1, H_BIG, W_BIG, 2, 2, float(H_BIG - 1), float(W_BIG - 1), 1), 4, [0])
    np.testing.assert_array_equal(out, corners)

    g, gx = sparse(H_BIG * W_BIG), sparse(H_BIG * W_BIG)
    pixels = H_BIG * W_BIG
    last = -(-pixels // kernels.BLOCK) - 1
    blocks = {0: np.arange(kernels.BLOCK), last: np.arange(last * kernels.BLOCK, pixels)}
    values = {b: planted(g, index, rng) for b, index in blocks.items()}
    run(library, "upsample_bilinear_backward",
        (g, gx, 1, 1, H_BIG, W_BIG, H_BIG, W_BIG, 1.0, 1.0, 1), pixels, list(blocks))
    for b, index in blocks.items():   # scale 1: each pixel is read by one output, weight 1
        np.testing.assert_array_equal(gx.array[index], values[b], err_msg=f"block {b}")


# ---- channel attention: C strides of a 2^30-pixel map ----------------------------------------
def test_channel_normalize_with_channel_offsets_past_2_31(library, sparse):
    """(1, 3, 2^30 pixels): channel 2 of each position starts 2^31 elements in."""
    rng = np.random.default_rng(3)
    C, HW = 3, 2**30
    x, y, norm = sparse(C * HW), sparse(C * HW), sparse(HW)
    last = HW // kernels.BLOCK - 1
    positions = np.arange(last * kernels.BLOCK, HW)
    planes = [planted(x, c * HW + positions, rng) for c in range(C)]
    run(library, "channel_normalize_forward", (x, y, norm, 1, C, HW, np.float32(1e-12)),
        HW, [last])
    squares = np.zeros(len(positions), np.float32)
    for p in planes:   # the kernel's order, in float32
        squares += p * p
    length = np.sqrt(squares)
    np.testing.assert_array_equal(norm.array[positions], length)
    for c, p in enumerate(planes):
        np.testing.assert_array_equal(y.array[c * HW + positions],
                                      p * (np.float32(1) / length), err_msg=f"channel {c}")


# ---- the thread index itself, past 2^32 ------------------------------------------------------
def test_a_thread_index_past_2_32(library, sparse):
    """global_index() of block 2^24 + 1 is 2^32 + 256 + threadIdx: a 32-bit product of
    blockIdx and blockDim would wrap to 256 + threadIdx, and the thread write y[256 + t]."""
    n = 2**32 + 2 * kernels.BLOCK
    x, y = sparse(n), sparse(n)
    block = 2**24 + 1
    index = np.arange(block * kernels.BLOCK, (block + 1) * kernels.BLOCK)
    values = planted(x, index, np.random.default_rng(4))
    low = planted(x, index - 2**32, np.random.default_rng(5))
    run(library, "relu_forward", (x, y, n), n, [block])
    np.testing.assert_array_equal(y.array[index], values)
    np.testing.assert_array_equal(y.array[index - 2**32], 0 * low)   # never written


# ---- the grid: refused in one line -----------------------------------------------------------
@pytest.mark.parametrize("size", [dict(threads=2**31 * kernels.BLOCK), dict(blocks=2**31)])
def test_a_launch_beyond_cudas_grid_is_refused_in_one_line(size, monkeypatch):
    """2^31 blocks (2^39 threads at 256 a block) do not fit in a CUDA grid, whose x is at most
    2^31 - 1: the launcher says so before anything runs, rather than CuPy's 'invalid
    configuration' from the driver. The largest grid that fits is not refused."""
    started = []
    monkeypatch.setattr(kernels._Binder, "function", lambda self: lambda *a: started.append(a))
    x = np.zeros(4, np.float32)
    with kernels.use("emulate"):
        with pytest.raises(kernels.KernelError) as refused:
            activation.CUDA.launch("relu_forward", x, np.zeros_like(x), 4, **size)
        assert started == []
        activation.CUDA.launch("relu_forward", x, np.zeros_like(x), 4, blocks=kernels.MAX_BLOCKS)
    assert started and started[0][0] == (kernels.MAX_BLOCKS,)
    message = str(refused.value)
    assert "\n" not in message and message.startswith("relu_forward: 2,147,483,648 blocks")
    assert "2,147,483,647 a CUDA grid holds" in message


# ---- the loops that stride a block over a whole map or channel -------------------------------
BLOCK_STRIDED = re.compile(r"for\s*\(\s*([\w ]+?)\s+(\w+)\s*=\s*threadIdx\.x\s*;[^;]*;\s*\2\s*\+=\s*"
                           r"MINRAN_BLOCK\s*\)")


def test_every_block_strided_loop_counts_in_64_bits():
    """`for (i = threadIdx.x; i < n; i += MINRAN_BLOCK)` over a map, a channel or a batch
    of up to 2^31 - 1 values: an `int` i passes 2^31 - 1 at its last `+= 256` and wraps, and
    the loop goes on at a negative index. A launch that shows it reads and writes 2^31 values
    in one block (minutes, 8 GiB), so this reads the sources: every such counter is a
    `long long`, and there are such loops to check (spatial normalisation, batch norm, the
    step totals)."""
    found = {}
    for source in kernels.all_sources():
        for path in kernels.included_files(source.path):
            for ctype, _ in BLOCK_STRIDED.findall(path.read_text()):
                found.setdefault(path.name, []).append(ctype)
    assert {"attention.cu", "normalization.cu", "step.cu"} <= set(found), found
    narrow = {name: types for name, types in found.items() if set(types) != {"long long"}}
    assert not narrow, f"block-strided loop counters that are not long long: {narrow}"
