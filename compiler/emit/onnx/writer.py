"""Write an ONNX model to disk atomically, as external data when it would exceed 2 GB.

Weights can be *streamed*: the model holds data-free placeholders for them, and their bytes
come in pieces (`StreamedTensor`) that go straight from a small reused buffer to the file.
A 110M-parameter model then never exists as one 440 MB protobuf message (serializing one
costs several copies of the weights, and fresh memory is slow to map). The file is still
the canonical protobuf encoding, byte for byte what ``model.SerializeToString()`` gives
with the weights inline: fields go in field-number order, and a TensorProto's
``raw_data`` (field 9) comes after its name, dims and type. Placeholders may sit in a
nested graph too (a compiled sampler's loop body holds the U-Net's weights): every message
on the way to one is encoded field by field, length-prefixed, the rest by protobuf.

Protocol buffers cannot hold more than 2 GB, so above that the weights go to
``<name>.onnx.data`` beside the model. Either way the model is checked with onnx.checker
(full check, shape inference included) before it is moved into place: the model file
itself when the weights are external, else the same model with placeholders pointing to an
empty file, so checking never parses the weights. A model with nothing streamed is
encoded once, and that file is checked.
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

_RAW_DATA_FIELD = onnx.TensorProto.DESCRIPTOR.fields_by_name["raw_data"].number  # 9
_GRAPH_TYPES = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)


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
    placeholders = {t.name for t in initializers(model.graph) if t.data_location == onnx.TensorProto.EXTERNAL}
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
        elif not streamed:  # every weight in the message: one encoding
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


Segment = bytes | StreamedTensor  # encoded bytes, or a streamed tensor's raw data


def _is_streamed(tensor: onnx.TensorProto, streamed: Mapping[str, StreamedTensor]) -> bool:
    return tensor.data_location == onnx.TensorProto.EXTERNAL and tensor.name in streamed


def _holds_streamed(message, streamed: Mapping[str, StreamedTensor]) -> bool:
    """Whether a streamed placeholder lies in `message` (a model, graph, node, attribute
    or tensor): at a graph's initializers, or in a graph nested in a node's attribute."""
    if isinstance(message, onnx.TensorProto):
        return _is_streamed(message, streamed)
    if isinstance(message, onnx.ModelProto):
        return _holds_streamed(message.graph, streamed)
    if isinstance(message, onnx.GraphProto):
        return any(_is_streamed(t, streamed) for t in message.initializer) or any(
            _holds_streamed(a, streamed) for n in message.node for a in n.attribute if a.type in _GRAPH_TYPES
        )
    if isinstance(message, onnx.NodeProto):
        return any(_holds_streamed(a, streamed) for a in message.attribute if a.type in _GRAPH_TYPES)
    if isinstance(message, onnx.AttributeProto):
        return (message.HasField("g") and _holds_streamed(message.g, streamed)) or any(
            _holds_streamed(g, streamed) for g in message.graphs
        )
    return False


def _segments(message, streamed: Mapping[str, StreamedTensor]) -> list[Segment]:
    """`message`'s canonical encoding, with each streamed placeholder's `raw_data` left to
    its source. Fields go in field-number order; a run of fields and elements without a
    placeholder is encoded by protobuf itself, as a message of the same type holding just
    them, and a sub-message with one is length-prefixed and encoded the same way."""
    if isinstance(message, onnx.TensorProto) and _is_streamed(message, streamed):
        source = streamed[message.name]
        bare = onnx.TensorProto()
        bare.name, bare.data_type = message.name, message.data_type
        bare.dims.extend(message.dims)  # the fields before raw_data (9); none come after it
        return [
            bare.SerializeToString() + _length_delimited(_RAW_DATA_FIELD) + _varint(source.nbytes),
            source,
        ]
    if not _holds_streamed(message, streamed):
        return [message.SerializeToString()]
    segments: list[Segment] = []
    plain = type(message)()  # the run of fields and elements encoded next by protobuf

    def flush() -> None:
        nonlocal plain
        if plain.ByteSize():
            segments.append(plain.SerializeToString())
        plain = type(message)()

    for field in sorted(message.DESCRIPTOR.fields, key=lambda f: f.number):
        if field.message_type is None:  # scalars hold no placeholder
            if field.is_repeated:
                getattr(plain, field.name).extend(getattr(message, field.name))
            elif not field.has_presence or message.HasField(field.name):
                setattr(plain, field.name, getattr(message, field.name))
            continue
        if not field.is_repeated:
            elements = [getattr(message, field.name)] if message.HasField(field.name) else []
        else:
            elements = list(getattr(message, field.name))
        for element in elements:
            if not _holds_streamed(element, streamed):
                target = getattr(plain, field.name).add() if field.is_repeated else getattr(plain, field.name)
                target.SetInParent()  # present even when empty, as in `message`
                target.CopyFrom(element)
                continue
            flush()
            inner = _segments(element, streamed)
            size = sum(len(s) if isinstance(s, bytes) else s.nbytes for s in inner)
            segments.append(_length_delimited(field.number) + _varint(size))
            segments.extend(inner)
    flush()
    return segments


def _write_inline(
    model: onnx.ModelProto,
    streamed: Mapping[str, StreamedTensor],
    file: BinaryIO,
    advance: Callable[[float], None] = progress.ignore,
    drawing: ParallelDraw | None = None,
) -> None:
    segments = _segments(model, streamed)
    sources = [s for s in segments if not isinstance(s, bytes)]
    with _draw(sources, drawing) as drawn:
        for segment in segments:
            if isinstance(segment, bytes):
                file.write(segment)
            else:
                _write_pieces(file, drawn.pieces(), segment.nbytes, advance)


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
    """Every streamed tensor, and every inline one of 1 KB or more, of every graph (a loop
    body's too), goes to `data`, in the order of `initializers`."""
    external = onnx.ModelProto()
    external.CopyFrom(model)
    offset = 0
    sources = [streamed[t.name] for t in initializers(external.graph) if _is_streamed(t, streamed)]
    with data.open("wb") as file, _draw(sources, drawing) as drawn:
        for tensor in initializers(external.graph):
            source = streamed[tensor.name] if _is_streamed(tensor, streamed) else None
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
