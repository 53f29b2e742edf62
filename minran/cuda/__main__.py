"""`python -m minran.cuda`: whether CuPy and a GPU were found, then every kernel
instantiation, whether it compiles for the GPU (NVRTC, sm_80 and sm_90) and for the CPU
emulator, with ptxas's registers, spills and shared memory. Exits non-zero if any
instantiation fails to compile anywhere."""
import re
import sys

from .. import backend, cli
from . import emulator, kernels, nvrtc


def gpu_lines():
    """What CuPy and the GPU are, as far as this machine can tell, one line each."""
    cupy = backend.cupy
    if cupy is None:
        problem = backend.gpu_problem()
        return [f"CuPy: {problem}", "GPU: none (the GPU path needs CuPy)"]
    lines = [f"CuPy: {getattr(cupy, '__version__', '?')}"]
    problem = backend.gpu_problem()
    if problem:
        return lines + [f"GPU: none found: {problem}"]
    try:
        runtime = cupy.cuda.runtime
        properties = runtime.getDeviceProperties(0)
        name = properties["name"]
        name = name.decode() if isinstance(name, bytes) else name
        versions = [f"CUDA runtime {_version(runtime.runtimeGetVersion())}"]
        if hasattr(runtime, "driverGetVersion"):
            versions.append(f"driver supports CUDA {_version(runtime.driverGetVersion())}")
        nvrtc_version = getattr(getattr(cupy.cuda, "nvrtc", None), "getVersion", None)
        if nvrtc_version is not None:
            versions.append("NVRTC %d.%d" % tuple(nvrtc_version()))
        lines.append(f"GPU: {name} (compute capability {properties['major']}."
                     f"{properties['minor']}); {', '.join(versions)}")
    except Exception as error:   # a partly working install: say what is known
        lines.append(f"GPU: found, but could not be described ({type(error).__name__}: "
                     f"{error})")
    problem = kernels.compile_problem()
    lines.append("kernels on the GPU: " + (problem or "compile and load"))
    return lines


def _version(number):
    return "%d.%d" % backend.cuda_version(number)


def check_archs(parser, archs):
    """Each --arch an sm_NN this NVRTC compiles for (without NVRTC, only the form is checked)."""
    try:
        known = None if nvrtc.unavailable_reason() else nvrtc.supported_archs()
    except (AttributeError, nvrtc.CompileError):   # an NVRTC older than CUDA 11.2 cannot say
        known = None
    for arch in archs:
        if not re.fullmatch(r"sm_\d{2,3}[af]?", arch) or (known and arch.rstrip("af") not in known):
            choices = f"one of {', '.join(known)}" if known else "sm_NN, such as sm_80 or sm_90"
            parser.error(f"--arch {arch}: not a GPU architecture "
                         f"{'this NVRTC compiles for' if known else 'name'}; give {choices}")


def main(argv=None):
    parser = cli.Parser(prog="python -m minran.cuda", description=__doc__)
    parser.add_argument("--arch", nargs="+", default=list(nvrtc.ARCHS),
                        help="GPU architectures to compile for (default: sm_80 sm_90)")
    args = parser.parse_args(argv)
    check_archs(parser, args.arch)
    failed = False
    for line in gpu_lines():
        print(line)
    nvrtc_missing = nvrtc.unavailable_reason()
    emulator_missing = emulator.unavailable_reason()
    print(f"NVRTC for the compile check: "
          f"{'%d.%d' % nvrtc.version() if not nvrtc_missing else 'missing: ' + nvrtc_missing}")
    print(f"emulator: {emulator.compiler() if not emulator_missing else 'missing: ' + emulator_missing}")
    print(f"block size: {kernels.BLOCK} threads\n")
    columns = "".join(f"  {arch:>5} regs spill(st/ld) smem" for arch in args.arch)
    print(f"{'kernel':<52}{columns}  emulator")
    for source in kernels.all_sources():
        gpu, errors = {}, {}
        if not nvrtc_missing:
            for arch in args.arch:
                try:
                    compiled, _ = nvrtc.compile_kernels(source, arch)
                    gpu.update({(c.expression, arch): c for c in compiled})
                except nvrtc.CompileError as error:
                    errors[arch] = str(error)
        emulated = "not run"
        if not emulator_missing:
            try:
                source.module("emulator")
                emulated = "ok"
            except emulator.EmulatorError as error:
                emulated, errors["emulator"] = "FAILS", str(error)
        for expression in source.name_expressions():
            row = f"{source.path.name + ' ' + expression:<52}"
            for arch in args.arch:
                c = gpu.get((expression, arch))
                if c is None:
                    row += f"  {'FAILS' if arch in errors else 'not run':>36}"
                else:
                    row += f"  {c.registers:>10} {c.spill_stores:>6}/{c.spill_loads:<6} {c.shared_bytes:>5}"
            print(row + f"  {emulated}")
        for where, error in errors.items():
            failed = True
            print(f"\n{source.path.name} fails on {where}:\n{error}\n", file=sys.stderr)
    if nvrtc_missing or emulator_missing:
        print("\nnot every compiler was available: see the lines above", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
