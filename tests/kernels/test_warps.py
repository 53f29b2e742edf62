"""Warps, their shuffles and votes, atomics, and block shapes on the emulator: each kernel of
warps.cu against what CUDA specifies, and each planted bug caught while its twin passes."""
import pathlib
import re

import numpy as np
import pytest

from minran.cuda import kernels
from minran.cuda.emulator import EmulatorError

pytestmark = pytest.mark.emulated
WARPS = kernels.Source(pathlib.Path(__file__).with_name("warps.py"))   # warps.cu
FULL = 0xFFFFFFFF


def function(name, dtype=np.float64):
    element = {np.float32: "float", np.float64: "double"}[np.dtype(dtype).type]
    return WARPS.module("emulator").get_function(f"{name}<{element}>")


def whole_numbers(n, dtype=np.float64, seed=0):
    """Small whole numbers, so every sum is exact in any order."""
    return np.random.default_rng(seed).integers(-50, 50, n).astype(dtype)


# ---- shuffle reductions -----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("grid, block", [((3,), (256,)), ((2,), (32,)), ((1,), (1024,)),
                                         ((2,), (64, 2)), ((1,), (8, 4, 3))])
def test_a_warp_shuffle_sum_is_right_for_every_block_shape(dtype, grid, block):
    n = int(np.prod(grid) * np.prod(block))
    x = whole_numbers(n, dtype)
    sums = np.zeros(n // 32, dtype)
    function("warp_sums", dtype)(grid, block, (x, sums, np.int32(n)))
    np.testing.assert_array_equal(sums, x.reshape(-1, 32).sum(axis=1))


def test_a_wrong_first_offset_doubles_every_sum():
    """A shuffle down by 32 (its lane field is 5 bits: 0) reads the lane itself, as PTX
    specifies: faithful emulation shows the bug as a wrong answer, which the op tests catch."""
    x = whole_numbers(256)
    sums = np.zeros(8)
    function("warp_sums_from_32")((1,), (256,), (x, sums, np.int32(256)))
    np.testing.assert_array_equal(sums, 2 * x.reshape(-1, 32).sum(axis=1))


def test_stopping_before_offset_1_misses_the_odd_lanes():
    x = whole_numbers(256)
    sums = np.zeros(8)
    function("warp_sums_stop_early")((1,), (256,), (x, sums, np.int32(256)))
    np.testing.assert_array_equal(sums, x.reshape(-1, 32)[:, ::2].sum(axis=1))
    assert not np.array_equal(sums, x.reshape(-1, 32).sum(axis=1))


def test_a_butterfly_leaves_the_sum_in_every_lane():
    x = whole_numbers(128)
    sums = np.zeros(128)
    function("warp_all_sums")((2,), (64,), (x, sums, np.int32(128)))
    np.testing.assert_array_equal(sums, np.repeat(x.reshape(-1, 32).sum(axis=1), 32))


# ---- masks and lanes that break the rules ------------------------------------------------------
def test_a_mask_that_leaves_out_its_caller_is_an_error():
    with pytest.raises(EmulatorError, match=re.escape(
            "thread (31,0,0) of block (0,0,0) (lane 31 of warp 0) called __shfl_xor_sync with "
            "mask 0x7fffffff, which does not name it")):
        function("mask_without_caller")((1,), (64,), (whole_numbers(64), np.zeros(64), np.int32(64)))


def test_a_mask_naming_a_lane_that_returned_is_an_error():
    x = whole_numbers(100)
    with pytest.raises(EmulatorError, match=re.escape(
            "called __shfl_down_sync with mask 0xffffffff, which names lane 4, but that lane "
            "has returned")):
        function("shuffle_after_return")((1,), (128,), (x, np.zeros(4), np.int32(100)))
    sums = np.zeros(4)
    function("shuffle_in_partial_warp")((1,), (128,), (x, sums, np.int32(100)))
    np.testing.assert_array_equal(sums, np.append(x, np.zeros(28)).reshape(4, 32).sum(axis=1))


def test_a_full_mask_in_a_partial_warp_is_an_error_and_the_lanes_it_has_are_right():
    """A block of 48 threads has a second warp of 16 lanes: 0xffffffff names 16 that do
    not exist; the mask of the lanes that do works."""
    x = whole_numbers(96)
    with pytest.raises(EmulatorError, match=re.escape(
            "called __shfl_down_sync with mask 0xffffffff, but its warp has only 16 threads "
            "(lanes 0-15): the block has 48")):
        function("warp_sums")((2,), (48,), (x, np.zeros(3), np.int32(96)))
    sums = np.zeros(1)
    function("shuffle_in_partial_warp")((1,), (24,), (x[:24], sums, np.int32(24)))
    assert sums[0] == x[:24].sum()
    function("shuffle_from_missing_lanes")((1,), (24,), (x[:24], sums, np.int32(24)))
    assert np.isnan(sums[0])   # lane 8 added lane 24's undefined value


def test_lanes_making_different_calls_are_an_error():
    with pytest.raises(EmulatorError, match=re.escape(
            "the lanes of a warp disagree: thread (0,0,0) of block (0,0,0) called "
            "__shfl_down_sync with mask 0xffffffff and lane 1 called __shfl_up_sync")):
        function("lanes_disagree")((1,), (32,), (whole_numbers(32), np.zeros(32), np.int32(32)))


def test_reading_a_lane_outside_the_mask_gives_garbage():
    """CUDA leaves the value undefined; the emulator gives NaN (0xA5 bytes for an int), as
    for an output nobody wrote, so a result built on it shows."""
    x = whole_numbers(32)
    y, indexes = np.zeros(32), np.zeros(32, np.int32)
    function("read_lane_outside_mask")((1,), (32,), (x, y, indexes, np.int32(32)))
    assert np.isnan(y[:16]).all() and (y[16:] == x[16:]).all()
    garbage = np.frombuffer(bytes([0xA5] * 4), np.int32)[0]
    assert (indexes[:16] == garbage).all() and (indexes[16:] == np.arange(16, 32)).all()


def test_a_shuffle_waiting_for_a_lane_at_syncthreads_is_a_hang_reported():
    with pytest.raises(EmulatorError, match=re.escape(
            "waits in __shfl_xor_sync with mask 0xffffffff while lane 0, which the mask names, "
            "waits at __syncthreads() (on a GPU: a hang)")):
        function("shuffle_against_barrier")((1,), (64,), (whole_numbers(64), np.zeros(64),
                                                          np.int32(64)))


# ---- what each warp function returns ----------------------------------------------------------
def expected_warp_functions(x, width):
    """CUDA's documented results, computed lane by lane in Python."""
    out = np.zeros((x.size, 8))
    for i in range(x.size):
        warp = i // 32 * 32
        lane = i % 32
        group = lane // width * width
        values = x[warp:warp + 32]
        positive = values > 0
        out[i, 0] = values[group]
        out[i, 1] = values[lane - 1] if lane - 1 >= group else values[lane]
        out[i, 2] = sum(1 << k for k in range(32) if positive[k])
        out[i, 3] = positive.any()
        out[i, 4] = positive.all()
        out[i, 5] = values[(lane + 3) % 32]
        out[i, 6] = warp + (lane + 3) % 32
        out[i, 7] = values[lane ^ 1] + values[lane ^ 4]
    return out


@pytest.mark.parametrize("width", [32, 16, 8, 4, 2, 1])
def test_shuffles_with_a_width_and_the_votes_return_what_cuda_specifies(width):
    x = whole_numbers(128, seed=width)
    x[96:] = np.abs(x[96:]) + 1   # the last warp all positive: __all_sync is 1 there
    out = np.zeros(128 * 8)
    function("warp_functions")((2,), (64,), (x, out, np.int32(width)))
    np.testing.assert_array_equal(out.reshape(128, 8), expected_warp_functions(x, width))


def test_a_width_that_is_not_a_power_of_two_is_an_error():
    with pytest.raises(EmulatorError, match="with width 12: it must be a power of 2"):
        function("warp_functions")((1,), (32,), (whole_numbers(32), np.zeros(256), np.int32(12)))


def test_warps_of_a_2d_block_take_x_fastest():
    """An (8, 8) block: warp 0 is rows y = 0..3; the ballot of lanes with x > 0 in row 1
    is bits 9..15."""
    x = np.where((np.arange(64) % 8 > 0) & (np.arange(64) // 8 == 1), 1.0, -1.0)
    out = np.zeros(64 * 8)
    function("warp_functions")((1,), (8, 8), (x, out, np.int32(32)))
    assert out.reshape(64, 8)[0, 2] == sum(1 << k for k in range(9, 16))
    assert out.reshape(64, 8)[32, 2] == 0


# ---- warp-synchronous shared memory -----------------------------------------------------------
def test_a_syncwarp_orders_a_warps_shared_memory_and_its_absence_is_a_race():
    x = whole_numbers(128)
    sums = np.zeros(2)
    function("warp_shared_sum")((2,), (32,), (x, sums))
    np.testing.assert_array_equal(sums, x.reshape(2, 64).sum(axis=1))
    with pytest.raises(EmulatorError, match=re.escape(
            "data race on element 1 of shared array warp_shared_sum_unsynced<double>(double "
            "const*, double*)::partial: thread (0,0,0) of block (0,0,0) read it and thread "
            "(1,0,0) of block (0,0,0) wrote it with no __syncthreads() or __syncwarp() of "
            "both between")):
        function("warp_shared_sum_unsynced")((2,), (32,), (x, sums))


def test_two_half_warp_syncs_do_not_order_lanes_of_different_halves():
    x = whole_numbers(32)
    y = np.zeros(32)
    function("full_warp_then_across")((1,), (32,), (x, y))
    np.testing.assert_array_equal(y, x[np.arange(32) ^ 16])
    with pytest.raises(EmulatorError, match=re.escape(
            "thread (16,0,0) of block (0,0,0) wrote it and thread (0,0,0) of block (0,0,0) "
            "read it with no __syncthreads() or __syncwarp() of both between")):
        function("half_warps_then_across")((1,), (32,), (x, y))


# ---- atomics ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_atomic_returns_what_cuda_specifies(dtype):
    n = 1000
    x = whole_numbers(n, dtype)
    total = np.full(1, 0.5, dtype)
    ints = np.array([-1000, 1000, 0, -1, 0], np.int32)
    counts = np.zeros(2, np.uint32)
    wide = np.array([-2**62, 5], np.int64)
    WARPS.launch("atomics", x, total, ints, counts, wide, n, threads=n)
    assert total[0] == 0.5 + x.sum()
    np.testing.assert_array_equal(ints, [x.max(), x.min(), n, 7, 1])
    np.testing.assert_array_equal(counts, [(x > 0).sum(), 0xFFFFFFFF])
    np.testing.assert_array_equal(wide, [int(x.max()) * 10**12, 5 + n])


def test_an_order_dependent_atomic_result_is_reported_as_such():
    """Which thread's compare-and-swap wins (or how a float sum rounds) depends on the
    order atomics run in: not deterministic on a GPU either, and the emulator says so."""
    with pytest.raises(EmulatorError, match=r"argument 1 \(int\* winner\) element 0 is .* "
                       r"\(it was updated with atomics, and what atomics leave"):
        WARPS.launch("claim_first", whole_numbers(300), np.full(1, -1, np.int32), 300,
                     threads=300)


def test_a_histogram_by_plain_increments_loses_updates_and_atomics_do_not():
    x = np.random.default_rng(3).integers(0, 8, 700).astype(np.float32)
    with pytest.raises(EmulatorError, match=r"data race on element \d of argument 1 \(int\* bins\)"):
        WARPS.launch("histogram_plain", x, np.zeros(8, np.int32), 700, threads=700)
    bins = np.zeros(8, np.int32)
    WARPS.launch("histogram_atomic", x, bins, 700, threads=700)
    np.testing.assert_array_equal(bins, np.bincount(x.astype(int), minlength=8))
