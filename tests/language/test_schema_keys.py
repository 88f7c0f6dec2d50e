"""`dlc schema` describes the constructs of issue 10: `if`, `share`, `repeat: 0`, a
template residual's `if`, and the new blocks; specs using them validate against it."""

from __future__ import annotations

import json

import jsonschema
import yaml

from tests.conftest import run_cli
from tests.language.test_conditional_layers import CONDITIONAL
from tests.language.test_free_parameters import PARAMETERS
from tests.language.test_shared_weights import SIAMESE


def test_schema_has_the_new_keys_and_accepts_specs_using_them() -> None:
    result = run_cli("schema")
    assert result.code == 0, result.output
    schema = json.loads(result.stdout)
    layer = json.dumps(schema["$defs"]["Layer"])
    for key in ('"if"', '"share"', '"parameter"', '"rms_norm"', '"group_norm"', '"gather"', '"silu"'):
        assert key in layer, key
    assert "if" in schema["$defs"]["ResidualOptions"]["properties"]
    for text in (CONDITIONAL, PARAMETERS, SIAMESE):
        jsonschema.validate(yaml.safe_load(text), schema)
    bad = yaml.safe_load(SIAMESE.replace("share: left", "share: [left]"))
    try:
        jsonschema.validate(bad, schema)
    except jsonschema.ValidationError:
        pass
    else:
        raise AssertionError("share takes a layer name, not a list")
