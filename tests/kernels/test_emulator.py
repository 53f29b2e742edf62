"""The emulator catches the bugs a GPU would hide: each fault in faults.cu must be reported,
and its correct twin must pass, so none of these checks is one that always fails."""
import pathlib

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


def test_a_missing_barrier_changes_the_answer_between_thread_orders(x):
    with pytest.raises(EmulatorError, match="depends on the order the threads run in"):
        launch("sum_blocks_without_barrier", x, np.zeros(3, np.float32), N, blocks=3)


def test_forward_order_alone_shows_what_the_missing_barrier_does(x):
    """In forward order thread 0 finishes every round before thread 128 starts its first, so
    it adds the original values of slots 128, 64, ..., 1 and nothing else."""
    sums = np.zeros(3, np.float32)
    with emulator.orders("forward"):
        launch("sum_blocks_without_barrier", x, sums, N, blocks=3)
    for b in range(2):
        expected = x[256 * b]
        for stride in (128, 64, 32, 16, 8, 4, 2, 1):
            expected += x[256 * b + stride]
        assert sums[b] == expected


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
    with pytest.raises(EmulatorError, match=r"wrote outside argument 1 .*after its 600"):
        launch("write_past_end", x, np.zeros(N, np.float32), N, threads=N)


def test_two_threads_writing_one_place_is_caught(x):
    with pytest.raises(EmulatorError, match="depends on the order"):
        launch("racing_writes", x, np.zeros(1, np.float32), N, threads=N)


def test_writing_to_a_const_argument_is_caught(x):
    with pytest.raises(EmulatorError, match=r"wrote to argument 0, declared const float\*"):
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
