"""The stand-in GPU (minran/cuda/standin.py): it must refuse what a GPU refuses, count what a
GPU is asked, and record and replay captured work as CUDA graphs do."""
import numpy as np
import pytest

import minran.functional as F
from minran import Tensor, backend
from minran.cuda import kernels, standin


def test_device_arrays_are_not_numpy_arrays_and_do_not_mix_with_them():
    with standin.device(kernels="emulate") as gpu:
        xp = backend.cupy
        a = xp.asarray(np.arange(4.0))
        assert not isinstance(a, np.ndarray) and backend.device_of(a) == "gpu"
        with pytest.raises(TypeError, match="Implicit conversion to a NumPy array"):
            np.asarray(a)
        with pytest.raises(TypeError, match="NumPy array cannot meet a device array"):
            a + np.ones(4)
        with pytest.raises(AttributeError, match="not modelled in minran/cuda/standin.py"):
            xp.fft
        assert gpu.counts.host_reads == 0
        assert a.get().tolist() == [0.0, 1.0, 2.0, 3.0]
        assert gpu.counts.host_reads == 1


def test_what_is_counted():
    with standin.device(kernels="emulate") as gpu:
        xp = backend.cupy
        a = xp.ones((3, 4), dtype=np.float32)          # an allocation and a fill
        start = gpu.snapshot()
        b = a.T.reshape(12)                             # not contiguous: a copy kernel
        v = a.reshape(12)[2:5]                          # views only: nothing on the device
        c = b * 2 + 1                                   # two elementwise kernels
        s = c.sum()                                     # one reduction
        step = gpu.since(start)
        assert step.launches == {"cupy:reshape copy": 1, "cupy:multiply": 1, "cupy:add": 1,
                                 "cupy:sum": 1}
        assert step.device_calls == 4 + step.new_memory
        assert step.allocations == 4 and step.host_reads == 0
        assert float(s) == 36.0 and v.shape == (3,)
        assert gpu.since(start).host_reads == 1


def test_the_pool_serves_a_request_from_a_freed_block_of_the_same_size():
    with standin.device() as gpu:
        xp = backend.cupy
        start = gpu.snapshot()
        a = xp.empty(1000, dtype=np.float32)
        del a
        b = xp.empty(1000, dtype=np.float32)            # the same 4096 bytes, reused
        c = xp.empty(1000, dtype=np.float32)            # b holds them: new memory
        assert gpu.since(start).allocations == 3
        assert gpu.since(start).new_memory == 2
        del b, c


def test_cupy_matmul_is_counted_as_cupy_runs_it():
    """A 2-D weight against 3-D columns is a broadcast in CuPy: three pointer arrays, then
    the batched GEMM; cuda/blas.py's strided call is one launch."""
    from minran.cuda import blas
    with standin.device(kernels="emulate") as gpu:
        xp = backend.cupy
        w, cols = xp.ones((3, 4)), xp.ones((5, 4, 6))
        start = gpu.snapshot()
        out = xp.matmul(w, cols)
        assert gpu.since(start).launches == {"cupy:matmul pointer arrays": 3, "cublas:gemm": 1}
        start = gpu.snapshot()
        mine = xp.empty((5, 3, 6))
        blas.gemm(w, cols, mine)
        assert gpu.since(start).launches == {"cublas:gemm": 1}
        np.testing.assert_array_equal(mine.get(), out.get())


def test_a_product_given_a_pointer_outside_its_arrays_is_caught():
    with standin.device(kernels="emulate"):
        xp = backend.cupy
        a, b, out = xp.ones((2, 3)), xp.ones((3, 4)), xp.empty((2, 4))
        handle = xp.cuda.device.get_cublas_handle()
        scalars = np.array([1.0, 0.0])
        with pytest.raises(Exception, match="reaches element|no live allocation"):
            # lda 8: the second column of a 3x... read past the end of b's 12 elements
            xp.cuda.cublas.dgemmStridedBatched(handle, 0, 0, 4, 2, 3, scalars.ctypes.data,
                                               b.data.ptr, 8, 0, a.data.ptr, 3, 0,
                                               scalars.ctypes.data + 8, out.data.ptr, 4, 0, 1)


def test_capture_records_instead_of_running_and_a_graph_replays_it():
    with standin.device(kernels="emulate") as gpu:
        xp = backend.cupy
        stream = xp.cuda.Stream(non_blocking=True)
        total = xp.zeros(3)
        step = xp.ones(3)
        xp.cuda.Device().synchronize()   # the two arrays' fills on the legacy stream are done
        with stream:
            stream.begin_capture()
            total += step                # recorded, not run
            twice = total * 2            # its buffer is the graph's
            graph = stream.end_capture()
            assert total.get().tolist() == [0, 0, 0]
            start = gpu.snapshot()
            for _ in range(3):
                step.fill(2.0)           # outside the graph: a change the replay must see
                graph.launch(stream)
            assert total.get().tolist() == [6, 6, 6] and twice.get().tolist() == [12, 12, 12]
        counts = gpu.since(start)
        assert counts.graph_launches == 3
        assert counts.launches["cupy:add"] == 3 and counts.launches["cupy:multiply"] == 3
        with stream:
            graph.launch(stream)
        with pytest.raises(standin.StandInError, match="last written on stream"):
            total.get()   # on the legacy stream: nothing orders it after that replay


def test_work_on_two_streams_must_be_ordered():
    with standin.device(kernels="emulate"):
        xp = backend.cupy
        a = xp.ones(3)
        side = xp.cuda.Stream(non_blocking=True)
        with side:
            with pytest.raises(standin.StandInError, match="stream .* uses an array last "
                                                             "written on the legacy default"):
                a + 1                      # a's fill on the legacy stream may not have run
        blocking = xp.cuda.Stream()        # a blocking stream waits for the legacy stream
        with blocking:
            b = a * 2
        with side:
            event = blocking.record()
            side.wait_event(event)         # an event orders the two
            c = b + 1
        side.synchronize()
        assert (c.get() == 3).all()        # the host waited for side: readable anywhere


def test_what_a_capture_refuses():
    with standin.device() as gpu:
        xp = backend.cupy
        stream = xp.cuda.Stream(non_blocking=True)
        a = xp.ones(2)
        with pytest.raises(standin.CaptureError, match="not the current one"):
            stream.begin_capture()
        with stream:
            stream.begin_capture()
            with pytest.raises(standin.CaptureError, match="float\\(array\\) during a stream"):
                float(a.sum())
            with pytest.raises(standin.CaptureError, match="synchronize"):
                stream.synchronize()
            stream.end_capture()
        with pytest.raises(standin.StandInError, match="default \\(legacy\\) stream"):
            xp.cuda.Stream.null.begin_capture()
        assert gpu.counts.host_reads == 0


def test_the_captured_steps_pool_is_not_handed_out_between_replays():
    with standin.device() as gpu:
        xp = backend.cupy
        pool, stream = xp.cuda.MemoryPool(), xp.cuda.Stream(non_blocking=True)
        a = xp.ones(4)
        with stream, xp.cuda.using_allocator(pool.malloc):
            stream.begin_capture()
            b = a * 2
            stream.end_capture()
            with pytest.raises(standin.StandInError, match="outside the capture"):
                xp.empty(4)   # the graph's memory would be handed to something else
        xp.empty(4)           # the default pool is free to serve
        del b, gpu


def test_kernels_are_sent_to_cupy_with_their_headers_written_in(tmp_path):
    """CuPy keys its on-disk kernel cache on the source text and options: a header left as an
    #include would not be part of the key, and an edited header would keep serving stale
    kernels. The text given to RawModule must change when a header does."""
    (tmp_path / "helper.cuh").write_text("#pragma once\ntemplate <typename T> __device__ T "
                                         "twice(T v) { return v + v; }\n")
    (tmp_path / "op.cu").write_text('#include "helper.cuh"  // twice()\ntemplate <typename T>\n'
                                    "__global__ void k(const T* x, T* y) { if (threadIdx.x == 0) y[0] = twice(x[0]); }\n")
    source = kernels.Source(tmp_path / "op.py")
    with standin.device(kernels="emulate") as gpu:
        x = backend.cupy.asarray(np.array([1.5]))
        y = backend.cupy.empty(1)
        source.launch("k", x, y, threads=1)
        assert y.get().tolist() == [3.0]
        first = gpu.codes[-1]
    assert "return v + v" in first and "#include" not in first.replace("// helper.cuh", "")
    (tmp_path / "helper.cuh").write_text("#pragma once\ntemplate <typename T> __device__ T "
                                         "twice(T v) { return T(2) * v; }\n")
    second = kernels.Source(tmp_path / "op.py").code()
    assert second != first and "T(2) * v" in second
    # and the emulator's cache key reads the same includes, comment or not
    assert kernels.included_files(tmp_path / "op.cu") == [tmp_path / "op.cu",
                                                          tmp_path / "helper.cuh"]


def test_a_launch_on_the_stand_in_runs_the_kernel_through_the_emulator():
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 5))
    want = F.max_pool2d(Tensor(x), 3, 2, 1).data
    with standin.device(kernels="emulate") as gpu:
        got = F.max_pool2d(Tensor(backend.cupy.asarray(x)), 3, 2, 1).data
        assert gpu.counts.launches["kernel:max_pool2d_forward"] == 1
        np.testing.assert_array_equal(got.get(), want)
    with standin.device(kernels="count") as gpu:   # counted, not run
        F.max_pool2d(Tensor(backend.cupy.asarray(x)), 3, 2, 1)
        assert gpu.counts.launches["kernel:max_pool2d_forward"] == 1


def test_out_of_range_device_labels_give_a_nan_loss_not_a_read_outside_the_row():
    logits = np.random.default_rng(0).standard_normal((3, 4))
    with standin.device(kernels="emulate") as gpu:
        xp = backend.cupy
        loss = F.cross_entropy(Tensor(xp.asarray(logits)), xp.asarray(np.array([1, 4, 0])))
        assert gpu.counts.host_reads == 0    # the labels were not read back to be checked
        assert np.isnan(loss.data.get())
    with pytest.raises(ValueError, match="labels must lie in"):   # host labels: checked
        F.cross_entropy(Tensor(logits), np.array([1, 4, 0]))


def test_counting_runs_nothing():
    """kernels="count" only counts: nothing is computed (outputs hold whatever was there),
    so that a large network is counted quickly and the host's own time can be measured."""
    with standin.device(kernels="count") as gpu:
        xp = backend.cupy
        a = xp.asarray(np.arange(4.0))
        b = (a + 1).sum(axis=0, keepdims=True)
        labels = xp.asarray(np.array([7, -5]))   # garbage indices are never used to index
        picked = a[labels]
        assert b.shape == (1,) and b.dtype == np.float64 and picked.shape == (2,)
        assert gpu.counts.launches == {"cupy:add": 1, "cupy:sum": 1,
                                       "cupy:getitem (gather)": 1}


def test_the_stand_in_is_put_back():
    real = backend.cupy
    with standin.device():
        assert backend.cupy is not real and backend.gpu_problem() is None
    assert backend.cupy is real
