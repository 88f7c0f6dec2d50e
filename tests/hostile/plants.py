"""Files a hostile case plants besides its spec: special files, archives, plugins.

Each function returns a `Setup`, a callable that makes the file at the path it is given,
so that a case in the table stays one line: ``files={"in.npz": npz_claiming(10**11)}``.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zipfile
import zlib
from pathlib import Path

from tests.hostile.harness import Setup


def fifo() -> Setup:
    """A named pipe nobody writes to: reading it blocks forever."""
    return lambda path: os.mkfifo(path)


def char_device(major: int, minor: int) -> Setup:
    """A private copy of a device node (1,3 is /dev/null, 1,7 /dev/full, 1,5 /dev/zero), so
    that a regression replaces the copy, not the machine's own device."""

    def make(path: Path) -> None:
        os.mknod(path, 0o666 | 0o020000, os.makedev(major, minor))

    return make


NULL_DEVICE = char_device(1, 3)
FULL_DEVICE = char_device(1, 7)


def directory() -> Setup:
    return lambda path: path.mkdir()


def npy_header(shape: tuple[int, ...], dtype: str = "<f4") -> bytes:
    """A version 1.0 .npy header that claims `shape` (the data need not follow)."""
    header = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (-(len(header) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


def npz_claiming(elements: int, name: str = "x") -> Setup:
    """An .npz whose one array's header claims `elements` float32 values but holds none."""

    def make(path: Path) -> None:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr(f"{name}.npy", npy_header((elements,)))

    return make


def npz_bomb(megabytes: int, name: str = "x") -> Setup:
    """An .npz whose one member inflates to `megabytes` MiB of zeros, from ~1 MB on disk.

    Written by hand (zip64): each MiB of zeros compresses to the same deflate bytes after a
    full flush, so the archive costs one CRC pass, not gigabytes of compression."""

    def make(path: Path) -> None:
        count = megabytes * 2**20 // 4
        header = npy_header((count,))
        chunk = bytes(2**20)
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        head = compressor.compress(header) + compressor.flush(zlib.Z_FULL_FLUSH)
        body = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
        tail = compressor.flush()
        crc = zlib.crc32(header)
        for _ in range(megabytes):
            crc = zlib.crc32(chunk, crc)
        size = len(header) + megabytes * len(chunk)
        packed = len(head) + megabytes * len(body) + len(tail)
        member = f"{name}.npy".encode()
        sizes = struct.pack("<HHQQ", 1, 16, size, packed)  # the zip64 extra field
        fixed = struct.pack("<HHHHHI", 45, 0, 8, 0, 0x21, crc)
        local = (
            struct.pack("<I", 0x04034B50)
            + fixed
            + struct.pack("<IIHH", 2**32 - 1, 2**32 - 1, len(member), len(sizes))
        )
        with path.open("wb") as out:
            out.write(local + member + sizes + head)
            for _ in range(megabytes):
                out.write(body)
            out.write(tail)
            directory_offset = out.tell()
            central = (
                struct.pack("<IH", 0x02014B50, 45)
                + fixed
                + struct.pack("<IIHHHHHII", 2**32 - 1, 2**32 - 1, len(member), len(sizes), 0, 0, 0, 0, 0)
                + member
                + sizes
            )
            out.write(central)
            end64_offset = out.tell()
            out.write(
                struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, 1, 1, len(central), directory_offset)
            )
            out.write(struct.pack("<IIQI", 0x07064B50, 0, end64_offset, 1))
            out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), directory_offset, 0))

    return make


def npy_file(shape: tuple[int, ...]) -> Setup:
    """A plain .npy file (not an .npz archive) of zeros."""

    def make(path: Path) -> None:
        count = 1
        for size in shape:
            count *= size
        path.write_bytes(npy_header(shape) + bytes(4 * count))

    return make


def safetensors(tensors: dict[str, tuple[str, list[int]]]) -> Setup:
    """A safetensors file from {name: (dtype, shape)} with zeroed data."""
    sizes = {"F8_E4M3": 1, "F8_E5M2": 1, "F16": 2, "BF16": 2, "F32": 4, "F64": 8, "I64": 8}

    def make(path: Path) -> None:
        header: dict[str, object] = {}
        offset = 0
        for name, (dtype, shape) in tensors.items():
            count = 1
            for size in shape:
                count *= size
            length = count * sizes[dtype]
            header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + length]}
            offset += length
        encoded = json.dumps(header).encode()
        encoded += b" " * (-len(encoded) % 8)
        path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + bytes(offset))

    return make


def plugin_package(module_source: str, name: str = "hostile_plugin") -> Setup:
    """A directory that, on PYTHONPATH, is an installed dlc plugin running `module_source`."""

    def make(path: Path) -> None:
        path.mkdir()
        (path / f"{name}.py").write_text(module_source)
        info = path / f"{name}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[dlc.plugins]\n{name} = {name}\n")

    return make


def onnx_with_metadata(key: str, value: str) -> Setup:
    """A one-input identity ONNX model carrying dlc metadata `key` = `value`."""

    def make(path: Path) -> None:
        import onnx
        from onnx import TensorProto, helper

        graph = helper.make_graph(
            [helper.make_node("Identity", ["x"], ["y"])],
            "hostile",
            [helper.make_tensor_value_info("x", TensorProto.INT64, ["N", 4])],
            [helper.make_tensor_value_info("y", TensorProto.INT64, ["N", 4])],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=10)
        helper.set_model_props(model, {key: value})
        buffer = io.BytesIO()
        onnx.save(model, buffer)
        path.write_bytes(buffer.getvalue())

    return make


def torch_package_runs(directory: str, input_shape: tuple[int, ...]) -> Setup:
    """A check: the generated `model.py` in `directory` imports, loads its weights and runs
    forward on ones of `input_shape` (a NameError or SyntaxError there fails the case)."""

    def check(root: Path) -> None:
        import subprocess
        import sys

        script = (
            f"import sys, torch; sys.path.insert(0, {str(root / directory)!r}); "
            f"from model import load_model; load_model()(torch.ones({input_shape!r}))"
        )
        process = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=root)
        assert process.returncode == 0, f"the generated model.py fails:\n{process.stderr[-2000:]}"

    return check


def python_parses(file: str) -> Setup:
    """A check: the generated Python `file` parses, and names no undefined module-level
    float (`inf`, `nan`) - cheaper than running it."""

    def check(root: Path) -> None:
        import ast

        source = (root / file).read_text()
        tree = ast.parse(source)
        defined = {
            t.id
            for node in tree.body
            if isinstance(node, ast.Assign)
            for t in node.targets
            if isinstance(t, ast.Name)
        }
        used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        assert not ({"inf", "nan"} & used) - defined, f"{file} uses inf or nan without defining them"

    return check
