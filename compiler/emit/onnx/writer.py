"""Write an ONNX model to disk atomically, as external data when it would exceed 2 GB.

Protocol buffers cannot hold more than 2 GB, so above that the weights go to
``<name>.onnx.data`` beside the model. Either way the file is checked with onnx.checker
(full check) under a temporary name first, and only then moved into place.
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx.external_data_helper import convert_model_to_external_data

from dlc.emit.files import publish, staging_directory
from dlc.emit.onnx.emitter import check_onnx_file

# Protobuf's hard limit is 2 GiB; leave room for the graph itself.
EXTERNAL_DATA_THRESHOLD = 2**31 - 2**27


def initializer_bytes(model: onnx.ModelProto) -> int:
    return sum(len(t.raw_data) for t in model.graph.initializer)


def save_onnx(model: onnx.ModelProto, destination: str | Path, *, external: bool | None = None) -> list[Path]:
    """Write `model` to `destination`; returns the files written (model, then any data file)."""
    destination = Path(destination)
    if external is None:
        external = initializer_bytes(model) > EXTERNAL_DATA_THRESHOLD
    data_name = destination.name + ".data"
    with staging_directory(destination) as staging:
        staged = staging / destination.name
        if external:
            convert_model_to_external_data(
                model, all_tensors_to_one_file=True, location=data_name, size_threshold=1024
            )
            onnx.save_model(model, str(staged))
        else:
            staged.write_bytes(model.SerializeToString())
        check_onnx_file(str(staged))
        written = []
        if external:
            written.append(publish(staging / data_name, destination.with_name(data_name)))
        written.insert(0, publish(staged, destination))
        return written
