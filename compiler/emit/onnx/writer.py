"""Write an ONNX model to disk atomically, as external data when it would exceed 2 GB.

Weights can be *streamed*: the model holds data-free placeholders for them, and their bytes
come in pieces (`StreamedTensor`) that go straight from a small reused buffer to the file.
A 110M-parameter model then never exists as one 440 MB protobuf message (serializing one
costs several copies of the weights, and fresh memory is slow to map). The file is still
the canonical protobuf encoding, byte for byte what ``model.SerializeToString()`` gives
with the weights inline: fields go in field-number order, and a TensorProto's
``raw_data`` (field 9) comes after its name, dims and type.

Protocol buffers cannot hold more than 2 GB, so above that the weights go to
``<name>.onnx.data`` beside the model. Either way the model is checked with onnx.checker
(full check, shape inference included) before it is moved into place: the model file
itself when the weights are external, else the same model with placeholders pointing to an
empty file, so checking never parses the weights. A model with every weight in the message
(nothing streamed: a compiled sampler's loop body holds its U-Net's weights) is encoded
once, and that file is checked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

import onnx

from dlc import progress
from dlc.emit.files import is_stream, publish, staging_directory
from dlc.emit.onnx.builder import PLACEHOLDER_FILE
from dlc.emit.onnx.emitter import check_onnx_file
from dlc.emit.onnx.parallel_draw import ParallelDraw
from dlc.emit.onnx.streamed import StreamedTensor
from dlc.errors import EmitError
from dlc.lazy_imports import numpy as np

# Protobuf's hard limit is 2 GiB; leave room for the graph itself.
EXTERNAL_DATA_THRESHOLD = 2**31 - 2**27

_GRAPH_FIELD = onnx.ModelProto.DESCRIPTOR.fields_by_name["graph"].number  # 7
_INITIALIZER_FIELD = onnx.GraphProto.DESCRIPTOR.fields_by_name["initializer"].number  # 5
_RAW_DATA_FIELD = onnx.TensorProto.DESCRIPTOR.fields_by_name["raw_data"].number  # 9


def initializers(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """The initializers of `graph`, then those of the graphs nested in its nodes (a loop
    body's: a compiled diffusion sampler keeps the U-Net's weights there), depth first."""
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from initializers(attribute.g)
            elif attribute.type == onnx.AttributeProto.GRAPHS:
                for nested in attribute.graphs:
                    yield from initializers(nested)


def initializer_bytes(model: onnx.ModelProto, streamed: Mapping[str, StreamedTensor] | None = None) -> int:
    # The encoded size of each tensor with data: reading `raw_data` would copy the bytes.
    inline = sum(t.ByteSize() for t in initializers(model.graph) if t.HasField("raw_data"))
    return inline + sum(s.nbytes for s in (streamed or {}).values())


def save_onnx(
    model: onnx.ModelProto,
    destination: str | Path,
    *,
    streamed: Mapping[str, StreamedTensor] | None = None,
    external: bool | None = None,
    drawing: ParallelDraw | None = None,
) -> list[Path]:
    """Write `model` to `destination`; initializers named in `streamed` are placeholders
    whose data comes from there. Returns the files written (model, then any data file).
    `drawing`, a draw of the streamed tensors started earlier in their file order, is used
    (or replaced, if they come in another order) and closed."""
    destination = Path(destination)
    streamed = dict(streamed or {})
    placeholders = {t.name for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL}
    if not set(streamed) <= placeholders:
        unknown = sorted(set(streamed) - placeholders)
        raise AssertionError(f"streamed tensors without a placeholder: {unknown}")
    if external is None:
        external = initializer_bytes(model, streamed) > EXTERNAL_DATA_THRESHOLD
    data_name = destination.name + ".data"
    if external and is_stream(destination):
        raise EmitError(
            f"cannot stream {destination}: a model over 2 GB keeps its weights in a second file",
            hint="write it to a regular file",
        )
    with (
        staging_directory(destination) as staging,
        progress.task(f"writing {destination.name}", total=initializer_bytes(model, streamed)) as advance,
    ):
        staged = staging / destination.name
        if external:
            _write_external(model, streamed, staged, staging / data_name, advance, drawing)
            check_onnx_file(str(staged))
        elif not streamed:  # every weight in the message (a compiled sampler's): one encoding
            staged.write_bytes(model.SerializeToString())
            check_onnx_file(str(staged))
        else:
            (staging / PLACEHOLDER_FILE).touch()
            checked = staging / f"check.{destination.name}"
            checked.write_bytes(model.SerializeToString())  # the same model, weights as placeholders
            check_onnx_file(str(checked))
            with staged.open("wb") as file:
                _write_inline(model, streamed, file, advance, drawing)
        written = []
        if external:
            written.append(publish(staging / data_name, destination.with_name(data_name)))
        written.insert(0, publish(staged, destination))
        return written


# -- the inline layout: one protobuf message, written in pieces ---------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _length_delimited(field: int) -> bytes:
    return _varint(field << 3 | 2)


def _split(message, field: int) -> tuple[bytes, bytes]:
    """The fields numbered below `field` and those above it, serialized apart: they
    concatenate around `field` into the canonical encoding."""
    before, after = type(message)(), type(message)()
    before.CopyFrom(message)
    after.CopyFrom(message)
    for descriptor in message.DESCRIPTOR.fields:
        if descriptor.number >= field:
            before.ClearField(descriptor.name)
        if descriptor.number <= field:
            after.ClearField(descriptor.name)
    return before.SerializeToString(), after.SerializeToString()


def _write_inline(
    model: onnx.ModelProto,
    streamed: Mapping[str, StreamedTensor],
    file: BinaryIO,
    advance: Callable[[float], None] = progress.ignore,
    drawing: ParallelDraw | None = None,
) -> None:
    model_head, model_tail = _split(model, _GRAPH_FIELD)
    graph_head, graph_tail = _split(model.graph, _INITIALIZER_FIELD)
    entries: list[tuple[bytes, StreamedTensor | None]] = []
    for tensor in model.graph.initializer:
        source = streamed.get(tensor.name)
        if source is None:
            entries.append((tensor.SerializeToString(), None))
            continue
        bare = onnx.TensorProto()
        bare.name, bare.data_type = tensor.name, tensor.data_type
        bare.dims.extend(tensor.dims)
        header = bare.SerializeToString() + _length_delimited(_RAW_DATA_FIELD) + _varint(source.nbytes)
        entries.append((header, source))
    sized = [(header, source, len(header) + (source.nbytes if source else 0)) for header, source in entries]
    initializer_tag = _length_delimited(_INITIALIZER_FIELD)
    graph_size = len(graph_head) + len(graph_tail)
    graph_size += sum(len(initializer_tag) + len(_varint(size)) + size for _, _, size in sized)
    file.write(model_head + _length_delimited(_GRAPH_FIELD) + _varint(graph_size) + graph_head)
    with _draw([source for _, source, _ in sized if source is not None], drawing) as drawn:
        for header, source, size in sized:
            file.write(initializer_tag + _varint(size) + header)
            if source is not None:
                _write_pieces(file, drawn.pieces(), source.nbytes, advance)
    file.write(graph_tail + model_tail)


def _draw(sources: list[StreamedTensor], drawing: ParallelDraw | None) -> ParallelDraw:
    return ParallelDraw(sources) if drawing is None else drawing.drawing(sources)


def _write_pieces(
    file: BinaryIO,
    pieces: Iterator[np.ndarray],
    nbytes: int,
    advance: Callable[[float], None] = progress.ignore,
) -> int:
    written = 0
    for piece in pieces:
        data = np.ascontiguousarray(piece, dtype=piece.dtype.newbyteorder("<"))
        file.write(memoryview(data).cast("B"))
        written += data.nbytes
        advance(data.nbytes)
    if written != nbytes:
        raise AssertionError(f"a streamed tensor gave {written} bytes, not {nbytes}")
    return written


# -- the external layout: a small model and a data file -------------------------------------------


def _write_external(
    model: onnx.ModelProto,
    streamed: Mapping[str, StreamedTensor],
    staged: Path,
    data: Path,
    advance: Callable[[float], None] = progress.ignore,
    drawing: ParallelDraw | None = None,
) -> None:
    """Every streamed tensor, and every inline one of 1 KB or more (nested graphs' too),
    goes to `data`. Only the top-level graph's initializers are streamed."""
    external = onnx.ModelProto()
    external.CopyFrom(model)
    offset = 0
    sources = [streamed[t.name] for t in external.graph.initializer if t.name in streamed]
    with data.open("wb") as file, _draw(sources, drawing) as drawn:
        for tensor in initializers(external.graph):
            source = streamed.get(tensor.name) if tensor.data_location == onnx.TensorProto.EXTERNAL else None
            if source is not None:
                length = _write_pieces(file, drawn.pieces(), source.nbytes, advance)
            elif tensor.HasField("raw_data") and len(raw := tensor.raw_data) >= 1024:  # one copy
                length = file.write(raw)
                advance(length)
                tensor.ClearField("raw_data")
            else:
                continue
            del tensor.external_data[:]
            tensor.data_location = onnx.TensorProto.EXTERNAL
            for key, value in (("location", data.name), ("offset", str(offset)), ("length", str(length))):
                entry = tensor.external_data.add()
                entry.key, entry.value = key, value
            offset += length
    staged.write_bytes(external.SerializeToString())
