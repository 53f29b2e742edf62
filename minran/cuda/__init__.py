"""minran on the GPU: each op's CUDA twin, how it is launched, and how it is proven.

    kernels.py   finds the .cu file beside an op (functional/pooling.py -> pooling.cu),
                 instantiates it for float and double, compiles it once, checks every
                 argument's C type and launches it: on CuPy arrays on the GPU, or on NumPy
                 arrays through the emulator inside kernels.use("emulate").
    emulator.h   the CUDA names a kernel uses, given a meaning on the CPU (threads as fibers).
    emulator.py  builds a .cu file with the system C++ compiler and runs launches in three
                 thread orders, with the checks a GPU would not make for you.
    nvrtc.py     compiles every instantiation with NVRTC for sm_80 and sm_90, without a GPU.
    __main__.py  `python -m minran.cuda` lists every kernel with its compile status and registers.

The tests prove each kernel in three tiers of the same test functions (tests/kernels/):
emulated (the kernel's own source on the CPU), compiled (NVRTC), and gpu (on a device).
"""
