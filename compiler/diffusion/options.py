"""The sampler a compile asks for: the spec's `sampling:` section with the command line's
(or the API's) overrides on top, checked as the section itself is."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from dlc.errors import DlcError
from dlc.spec.loader import Spec
from dlc.spec.sampling import SamplingSection


def resolve_sampling(spec: Spec, overrides: Mapping[str, Any]) -> SamplingSection:
    """`spec`'s section updated by `overrides` (None values are left out). A bad value that
    came from the overrides is reported with the option that gave it (`--steps`); the
    section's own mistakes were reported, located, when the spec loaded."""
    written = spec.model.sampling.model_dump(exclude_unset=True) if spec.model.sampling else {}
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return SamplingSection.model_validate({**written, **given})
    except ValidationError as error:
        problems = []
        for item in error.errors():
            key = str(item["loc"][0]) if item["loc"] else ""
            source = f"--{key.replace('_', '-')}" if key in given else f"sampling.{key} in {spec.stem}"
            problems.append(f"{source}: {item['msg'].removeprefix('Value error, ')}")
        raise DlcError("bad sampler options: " + "; ".join(problems)) from None
