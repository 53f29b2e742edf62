"""The emulator catches the bugs a GPU would hide: each fault in faults.cu must be reported,
and its correct twin must pass, so none of these checks is one that always fails.
(Warps, atomics and block shapes: test_warps.py.)"""
import pathlib
import re

import numpy as np
import pytest

from minran.cuda import emulator, kernels
from minran.cuda.emulator import EmulatorError

pytestmark = pytest.mark.emulated
FAULTS = kernels.Source(pathlib.Path(__file__).with_name("faults.py"))   # faults.cu
N = 600   # three blocks of 256, the last one partly idle


@pytest.fixture
def x():
    return np.random.default_rng(0).standard_normal(N).astype(np.float32)


def launch(name, *args, **size):
    with kernels.use("emulate"):
        FAULTS.launch(name, *args, **size)


def test_a_correct_block_sum_passes_in_every_order(x):
    sums = np.zeros(3, np.float32)
    launch("sum_blocks", x, sums, N, blocks=3)
    np.testing.assert_allclose(sums, [x[:256].sum(), x[256:512].sum(), x[512:].sum()], rtol=1e-5)


def test_a_missing_barrier_is_a_race_named_with_its_two_threads(x):
    """In forward order thread 0 runs every round before thread 1 starts its first, so it
    reads slot 1 (round `stride 1`) before thread 1 writes it (round `stride 128`): the
    race check reports exactly those two threads, whatever the sums come to."""
    with pytest.raises(EmulatorError, match=re.escape(
            "data race on element 1 of shared array sum_blocks_without_barrier<float>(float "
            "const*, float*, int)::partial: thread (0,0,0) of block (0,0,0) read it and thread "
            "(1,0,0) of block (0,0,0) wrote it with no __syncthreads() or __syncwarp() of both "
            "between, so the result depends on the order the threads run in")):
        launch("sum_blocks_without_barrier", x, np.zeros(3, np.float32), N, blocks=3)


def test_shared_memory_starts_as_nan_in_every_block(x):
    y = np.zeros(N, np.float32)
    with emulator.orders("reverse"):
        launch("read_unwritten_shared", x, y, N, threads=N)
    assert not np.isnan(y[:256]).any()     # full blocks read slots their threads wrote
    assert np.isnan(y[512:512 + 88]).all()  # the last block's threads 0..87 read unwritten slots


def test_a_barrier_some_threads_never_reach_is_an_error_not_a_hang(x):
    with pytest.raises(EmulatorError, match=r"reached by 88 threads while 168 threads"):
        launch("return_before_barrier", x, np.zeros(N, np.float32), N, threads=N)


def test_writing_past_the_end_of_an_array_is_caught(x):
    with pytest.raises(EmulatorError, match=re.escape(
            "write_past_end<float>: thread (88,0,0) of block (2,0,0) wrote element 600 of "
            "argument 1 (float* y), which has 600 elements: out of bounds")):
        launch("write_past_end", x, np.zeros(N, np.float32), N, threads=N)


def test_two_threads_writing_one_place_is_caught(x):
    with pytest.raises(EmulatorError, match=re.escape(
            "data race on element 0 of argument 1 (float* y): thread (0,0,0) of block (0,0,0) "
            "wrote it and thread (1,0,0) of block (0,0,0) wrote it with no __syncthreads()")):
        launch("racing_writes", x, np.zeros(1, np.float32), N, threads=N)


def test_writing_to_a_const_argument_is_caught(x):
    with pytest.raises(EmulatorError, match=re.escape(
            "write_to_const<float>: thread (0,0,0) of block (0,0,0) wrote element 0 of "
            "argument 0 (const float* x), declared const")):
        launch("write_to_const", x, np.zeros(N, np.float32), N, threads=N)


def test_arguments_must_have_exactly_the_kernels_c_types(x):
    y = np.zeros(N, np.float32)
    function = FAULTS.module("emulator").get_function("scale<float>")
    assert function.param_types == ["const float*", "float*", "long long", "float"]
    function((3,), (256,), (x, y, np.int64(N), np.float32(2)))      # exact: runs
    np.testing.assert_array_equal(y, 2 * x)
    for wrong, message in [((x, y, N, np.float32(2)), "Python int as 8 bytes"),
                           ((x, y, np.int32(N), np.float32(2)), "got int32"),
                           ((x, y, np.int64(N), 2.0), "argument 3 is a float"),
                           ((x.astype(np.float64), y, np.int64(N), np.float32(2)), "float32"),
                           ((x[::2], y, np.int64(N), np.float32(2)), "C-contiguous")]:
        with pytest.raises(EmulatorError, match=message):
            function((3,), (256,), wrong)


def test_the_launcher_converts_numbers_to_the_parameter_width_and_refuses_the_rest(x):
    y = np.zeros(N, np.float32)
    launch("scale", x, y, N, 3, threads=N)            # ints become long long and float
    np.testing.assert_array_equal(y, 3 * x)
    for args, message in [((x, y, N, np.float64(2)), "float64 scalar"),
                          ((x, y, 2.5, 1.0), "must be an integer"),
                          ((x, y.astype(np.float64), N, 1.0), "must all be float32 or all float64"),
                          ((x, y, 2**70, 1.0), "does not fit"),
                          ((x, y[::2], N, 1.0), "C-contiguous"),
                          ((x, y, N), "takes 4 arguments")]:
        with pytest.raises(kernels.KernelError, match=message):
            launch("scale", *args, threads=N)


def test_the_compiler_and_the_launcher_read_every_minran_kernel_the_same_way():
    """kernels.parse (used on the GPU too) against the C++ compiler's own parameter types."""
    for source in kernels.all_sources():
        module = source.module("emulator")
        for name, params in source.kernels.items():
            for element in kernels.INSTANTIATIONS.values():
                compiled = module.get_function(f"{name}<{element}>").param_types
                assert compiled == [p.resolved(element) for p in params], (source.path, name)


def test_float_maths_promoted_to_double_does_not_build(tmp_path):
    """-Werror=double-promotion: fmaxf in a double kernel, or a double literal in a float one."""
    for body in ("y[0] = fmaxf(x[0], T(0));", "y[0] = x[0] * 0.5;"):
        path = tmp_path / f"k{len(body)}.cu"
        path.write_text("template <typename T>\n__global__ void k(const T* x, T* y) { "
                        + body + " }\n")
        with pytest.raises(EmulatorError, match="conversion|promotion"):
            emulator.build(path, kernels.compile_options(tmp_path), ["k<float>", "k<double>"])


# ---- lost updates and other races on global memory ------------------------------------------
def test_a_lost_update_is_caught_even_where_the_sum_does_not_care_about_order():
    """Two threads adding two values: every thread order gives the same sum (the old
    three-order comparison passed this), but they read and write one element unordered."""
    x = np.array([1.5, 2.25], np.float32)
    with pytest.raises(EmulatorError, match=re.escape(
            "data race on element 0 of argument 1 (float* total): thread (0,0,0) of block "
            "(0,0,0) wrote it and thread (1,0,0) of block (0,0,0) read it with no "
            "__syncthreads()")):
        launch("accumulate_plainly", x, np.zeros(1, np.float32), 2, threads=2)


def test_the_same_sum_with_an_atomic_passes_and_is_right(x):
    for dtype in (np.float32, np.float64):
        values = np.arange(N).astype(dtype)   # whole numbers: exact in any order
        total = np.full(1, 7, dtype)
        launch("accumulate_atomically", values, total, N, threads=N)
        assert total[0] == 7 + values.sum()


def test_two_blocks_writing_one_element_is_caught_with_both_blocks(x):
    with pytest.raises(EmulatorError, match=re.escape(
            "data race on element 0 of argument 1 (float* sums): thread (0,0,0) of block "
            "(0,0,0) wrote it and thread (0,0,0) of block (1,0,0) wrote it from another block")):
        launch("two_blocks_one_slot", x, np.zeros(2, np.float32), N, blocks=3)


def test_reading_an_element_another_thread_writes_is_caught(x):
    y = x.copy()
    with pytest.raises(EmulatorError, match=re.escape(
            "data race on element 1 of argument 0 (float* y): thread (0,0,0) of block (0,0,0) "
            "read it and thread (1,0,0) of block (0,0,0) wrote it")):
        launch("shift_in_place", y, N, threads=N)
    launch("shift_from_input", x, y, N, threads=N)
    np.testing.assert_array_equal(y[:-1], x[1:])


def test_a_plain_read_of_an_element_updated_atomically_is_caught(x):
    with pytest.raises(EmulatorError, match=re.escape(
            "data race on element 0 of argument 1 (float* total): thread (32,0,0) of block "
            "(2,0,0) atomically updated it and thread (87,0,0) of block (2,0,0) read it with "
            "no __syncthreads() between, so the result depends on the order the threads run "
            "in (an element updated with atomics may be read or written plainly only after a "
            "barrier, or in a later launch)")):
        launch("read_while_adding", x, np.zeros(1, np.float32), np.zeros(1, np.float32), N,
               threads=N)


# ---- out of bounds ----------------------------------------------------------------------------
def test_reading_past_the_end_is_caught_though_the_value_is_thrown_away(x):
    with pytest.raises(EmulatorError, match=re.escape(
            "read_past_end<float>: thread (87,0,0) of block (2,0,0) read element 600 of "
            "argument 0 (const float* x), which has 600 elements: out of bounds")):
        launch("read_past_end", x, np.zeros(N, np.float32), N, threads=N)
    y = np.zeros(N, np.float32)
    launch("read_within", x, y, N, threads=N)
    np.testing.assert_array_equal(y, np.append(np.diff(x), 0))


def test_reading_before_the_start_is_caught(x):
    with pytest.raises(EmulatorError, match=re.escape(
            "thread (0,0,0) of block (0,0,0) read element -1 of argument 0 (const float* x)")):
        launch("read_before_start", x, np.zeros(N, np.float32), N, threads=N)


@pytest.mark.parametrize("offset", [1, 1000, 16000])
def test_a_write_far_past_the_end_is_caught_before_it_lands(offset):
    y = np.zeros(10, np.float32)
    with pytest.raises(EmulatorError, match=re.escape(
            f"wrote element {10 + offset} of argument 0 (float* y), which has 10 elements: "
            f"out of bounds")):
        launch("write_far_past_end", y, 10, offset, threads=1)
    assert (y == 0).all()


def test_an_access_the_instrumentation_misses_faults_on_a_guard_page_and_is_reported():
    """memset is the C library's, not instrumented: one element too many reaches the
    inaccessible page right after y, and the fault becomes a report, not a crash."""
    for dtype in (np.float32, np.float64):
        y = np.ones(1000, dtype)
        with pytest.raises(EmulatorError, match=r"thread \(0,0,0\) of block \(0,0,0\) wrote "
                           r"element 1000 of argument 0 \((float|double)\* y\), which has 1000 "
                           r"elements: out of bounds \(caught by a guard page\)"):
            launch("memset_past_end", y, 1000, threads=1)
        launch("memset_within", y, 1000, threads=1)
        assert (y == 0).all()


def test_shared_memory_out_of_bounds_is_caught_both_ways(x):
    with pytest.raises(EmulatorError, match=re.escape(
            "thread (255,0,0) of block (0,0,0) wrote element 256 of shared array "
            "shared_write_past_end<float>(float const*, float*, int)::copy, which has 256 "
            "elements of 4 bytes: out of bounds")):
        launch("shared_write_past_end", x, np.zeros(N, np.float32), N, threads=N)
    with pytest.raises(EmulatorError, match=re.escape(
            "thread (0,0,0) of block (0,0,0) read element -1 of shared array "
            "shared_read_before_start<double>")):
        launch("shared_read_before_start", x.astype(np.float64), np.zeros(N), N, threads=N)
    y = np.zeros(N, np.float32)
    launch("shared_read_within", x, y, N, threads=N)
    want = x - np.where(np.arange(N) % 256 > 0, np.roll(x, 1), 0)
    np.testing.assert_array_equal(y, want)


# ---- outputs that start as garbage ------------------------------------------------------------
def test_an_output_element_never_written_comes_back_as_nan(x):
    """y already holds the right answer (as an empty() array can, reusing memory the NumPy
    twin just freed); the kernel that skips the last element must not get away with it."""
    y = 2 * x
    launch("skip_last", x, y, N, threads=N)
    assert np.isnan(y[-1]) and (y[:-1] == 2 * x[:-1]).all()
    y = 2 * x
    launch("double_all", x, y, N, threads=N)
    np.testing.assert_array_equal(y, 2 * x)


def test_an_int_output_never_written_comes_back_as_the_poison_pattern(x):
    where = np.arange(N, dtype=np.int32)
    launch("index_all_but_last", x, where, N, threads=N)
    assert where[-1] == np.frombuffer(bytes([0xA5] * 4), np.int32)[0]
    np.testing.assert_array_equal(where[:-1], np.where(x[:-1] > 0, np.arange(N - 1), -1))


def test_an_in_place_update_is_not_poisoned(x):
    """A kernel that reads an array before writing it (sgd_update's p and buf) is updating
    it in place: its values are input, so no run fills them with poison."""
    y = x.copy()
    launch("double_in_place", y, N, threads=N)
    np.testing.assert_array_equal(y, 2 * x)


def test_an_array_the_launch_does_not_touch_keeps_its_values(x):
    """Only an array the kernel writes is an output of this launch: one it leaves alone
    (running statistics outside training) comes back as it was, not poisoned."""
    y, extra = np.zeros(N, np.float32), np.full(N, 5, np.float32)
    launch("write_extra_when_asked", x, y, extra, N, 0, threads=N)
    assert (extra == 5).all() and (y == x).all()
    launch("write_extra_when_asked", x, y, extra, N, 1, threads=N)
    assert (extra == -x).all()


def test_a_declared_output_read_before_it_is_written_is_an_error(x):
    with pytest.raises(EmulatorError, match=re.escape(
            "thread (0,0,0) of block (0,0,0) read element 0 of argument 1 (float* y) before any "
            "thread wrote it, but the argument is marked /* out */")):
        launch("add_into_declared_output", x, np.zeros(N, np.float32), N, threads=N)
    y = np.zeros(N, np.float32)
    launch("write_declared_output", x, y, N, threads=N)
    np.testing.assert_array_equal(y, x)


def test_an_output_marked_in_out_keeps_the_elements_the_kernel_does_not_write(x):
    evens = np.arange(N) % 2 == 0
    for name, odd in (("write_evens_kept", "zero"), ("write_evens", "nan")):
        y = np.zeros(N, np.float32)
        launch(name, x, y, N, threads=N)
        np.testing.assert_array_equal(y[evens], x[evens])
        assert (y[~evens] == 0).all() if odd == "zero" else np.isnan(y[~evens]).all()


def test_the_marks_are_read_from_the_source_and_refused_where_meaningless(tmp_path):
    notes = emulator.parameter_notes(FAULTS.path.read_text())
    assert notes["write_declared_output"] == [("const T* x", None), ("T* y", "out"), ("int n", None)]
    assert notes["write_evens_kept"][1] == ("T* y", "in-out")
    assert all(note is None for _, note in notes["double_all"])
    path = tmp_path / "k.cu"
    path.write_text("template <typename T>\n__global__ void k(const T* x /* out */, T* y) "
                    "{ y[0] = x[0]; }\n")
    with pytest.raises(EmulatorError, match=r"marks 'const T\* x' /\* out \*/"):
        emulator.Module(path, kernels.compile_options(tmp_path), ["k<float>"])


# ---- block sizes ------------------------------------------------------------------------------
def function(name, dtype=np.float32):
    element = {np.float32: "float", np.float64: "double"}[dtype]
    return FAULTS.module("emulator").get_function(f"{name}<{element}>")


@pytest.mark.parametrize("threads", [1, 32, 48, 96, 128, 256, 512, 1024])
def test_a_kernel_reading_blockdim_is_right_for_every_block_size(x, threads):
    y = np.zeros(N, np.float32)
    function("any_block_size")((-(-N // threads),), (threads,), (x, y, np.int32(N)))
    np.testing.assert_array_equal(y, 2 * x)


def test_a_kernel_assuming_the_block_size_is_caught_with_other_sizes(x):
    y = np.zeros(N, np.float32)
    with pytest.raises(EmulatorError, match=re.escape(
            "data race on element 256 of argument 1 (float* y): thread (256,0,0) of block "
            "(0,0,0) wrote it and thread (0,0,0) of block (1,0,0) wrote it from another block")):
        function("assume_block_size")((2,), (512,), (x, y, np.int32(N)))
    function("assume_block_size")((5,), (128,), (x, y, np.int32(N)))   # 128..255 never written
    assert np.isnan(y[128:256]).all() and (y[:128] == 2 * x[:128]).all()
    function("assume_block_size")((3,), (256,), (x, y, np.int32(N)))   # what it assumed
    np.testing.assert_array_equal(y, 2 * x)


@pytest.mark.parametrize("block", [(16, 16), (32, 8), (8, 32), (5, 7), (4, 4, 2)])
def test_a_2d_block_transpose_is_right_for_every_block_shape(block):
    rows, cols, batch = 37, 23, 2
    x = np.random.default_rng(1).standard_normal((batch, rows, cols))
    y = np.zeros((batch, cols, rows))
    grid = (-(-cols // block[0]), -(-rows // block[1]), batch)
    # a 3-D block's z layers all write the same element: only z == 1 blocks are race-free
    if len(block) == 3:
        with pytest.raises(EmulatorError, match="data race"):
            function("transpose", np.float64)(grid, block, (x, y, np.int32(rows), np.int32(cols)))
        return
    function("transpose", np.float64)(grid, block, (x, y, np.int32(rows), np.int32(cols)))
    np.testing.assert_array_equal(y, x.transpose(0, 2, 1))


def test_a_transpose_assuming_square_blocks_is_caught():
    rows, cols = 37, 23
    x = np.random.default_rng(1).standard_normal((1, rows, cols))
    y = np.zeros((1, cols, rows))
    args = (x, y, np.int32(rows), np.int32(cols))
    function("transpose_square_blocks", np.float64)((2, 3), (16, 16), args)   # square: right
    np.testing.assert_array_equal(y, x.transpose(0, 2, 1))
    with pytest.raises(EmulatorError, match=re.escape(
            "data race on element 8 of argument 1 (double* y): thread (0,8,0) of block (0,0,0) "
            "wrote it and thread (0,0,0) of block (0,1,0) wrote it from another block")):
        function("transpose_square_blocks", np.float64)((3, 2), (8, 32), args)   # rows overlap
    y[:] = 0
    function("transpose_square_blocks", np.float64)((1, 5), (32, 8), args)   # rows skipped
    written = np.zeros(rows, bool)
    written[np.r_[0:8, 32:37]] = True
    np.testing.assert_array_equal(y[0][:, written], x[0].T[:, written])
    assert np.isnan(y[0][:, ~written]).all()


def test_threads_and_blocks_of_3d_launches_are_numbered_as_cuda_numbers_them():
    grid, block = (2, 3, 2), (4, 3, 5)
    y = np.zeros(12 * 60)
    function("thread_numbers", np.float64)(grid, block, (y,))
    want = np.arange(60)[None, :] * 1000 + np.arange(12)[:, None]
    np.testing.assert_array_equal(y.reshape(12, 60), want)


@pytest.mark.parametrize("grid, block", [((1,), (1025,)), ((1,), (32, 33)), ((1,), (1, 1, 65)),
                                         ((65536, 65536), (32,)), ((0,), (32,))])
def test_launches_cuda_would_refuse_are_refused(grid, block):
    with pytest.raises(EmulatorError, match="more than CUDA allows|positive ints"):
        function("thread_numbers", np.float64)(grid, block, (np.zeros(1),))
