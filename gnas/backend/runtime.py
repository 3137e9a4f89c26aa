"""TensorFlow process settings that must happen before TensorFlow starts.

Floating-point results depend on the thread count, so every evaluation runs with
the same per-process thread settings whichever executor runs it. On a GPU,
memory growth (or a hard per-process limit) stops one process from taking all of
the device's memory, which TensorFlow otherwise does in every process.
"""
from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger(__name__)
_configured: dict[str, object] = {}
_driver_uses_gpu = True


def keep_off_gpu() -> None:
    """This process evaluates nothing (Ray workers do): its TensorFlow must not take GPU memory.

    The driver of a Ray run may still start TensorFlow for TensorBoard or the chaos
    probe; hiding the GPUs from it keeps every byte of them for the workers.
    """
    global _driver_uses_gpu
    _driver_uses_gpu = False


def _hide_gpus(tf) -> None:
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError as exc:  # TensorFlow already started its devices here
        log.warning("GPUs could not be hidden from this process (%s)", exc)


def configure(threads: int = 0, *, gpu_memory_mb: int = 0, use_gpu: bool = True) -> None:
    """Set threads (0 = all cores), determinism and GPU memory policy; idempotent."""
    n = threads or (os.cpu_count() or 1)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(n)
    os.environ["TF_NUM_INTEROP_THREADS"] = str(min(n, 2))
    os.environ["OMP_NUM_THREADS"] = str(n)
    use_gpu = use_gpu and _driver_uses_gpu
    if _configured:
        return
    tf = import_tensorflow()
    if not use_gpu:
        _hide_gpus(tf)

    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(min(n, 2))
    except RuntimeError:
        pass  # TensorFlow already started in this process; the environment held.
    tf.config.experimental.enable_op_determinism()
    if use_gpu:
        _configure_gpus(tf, gpu_memory_mb)
    _configured.update(threads=n, gpu_memory_mb=gpu_memory_mb)


def _configure_gpus(tf, gpu_memory_mb: int) -> None:
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            if gpu_memory_mb:
                tf.config.set_logical_device_configuration(
                    gpu, [tf.config.LogicalDeviceConfiguration(memory_limit=gpu_memory_mb)])
            else:
                tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError as exc:  # already initialised: report, keep going
            log.warning("GPU memory policy not applied (%s)", exc)


def import_tensorflow():
    """Import TensorFlow with its C++ start-up chatter kept off the terminal.

    TensorFlow's native logging writes to file descriptor 2 before any Python
    setting applies; it is silenced only for the import, and an import failure
    still raises normally.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf
        import keras  # noqa: F401 - its first import also logs
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return tf


def gpu_memory_limit_mb() -> int:
    """The hard per-process GPU memory limit set by :func:`configure` (0 = none)."""
    return int(_configured.get("gpu_memory_mb") or 0)


def set_precision(mixed: bool) -> str:
    """Keras' dtype policy for the next model: mixed float16 only where a GPU computes it.

    On a CPU float16 is emulated and slower, so ``train.mixed_precision`` applies
    where a GPU is visible and is a no-op elsewhere. Returns the policy's name.
    """
    import keras

    tf = import_tensorflow()
    name = "mixed_float16" if mixed and tf.config.list_logical_devices("GPU") else "float32"
    keras.config.set_dtype_policy(name)
    return name
