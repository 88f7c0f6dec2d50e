"""The hostile-input table (issue 12): one line per case, run by `test_hostile.py`.

Add a case with one line: ``Case(name, args, exit, message, spec=..., files=...)``; see
`tests/hostile/harness.py` for what each field means and what every case must satisfy.
Sections follow the issue's items; helper modules below keep lines short.
"""

from __future__ import annotations

from tests.hostile.harness import Case
from tests.hostile.plants import (
    FULL_DEVICE,
    NULL_DEVICE,
    directory,
    fifo,
    npy_file,
    npz_bomb,
    npz_claiming,
    onnx_with_metadata,
    plugin_package,
    python_parses,
    safetensors,
    torch_package_runs,
)

TINY = "dlc: 1\nname: tiny\ninputs:\n  x: {shape: [N, 4]}\nlayers:\n  - linear: 3\n"
V = ("validate", "{spec}")
C = ("compile", "{spec}", "-o", "out.onnx")
T = ("compile", "{spec}", "--target", "torch", "-o", "pkg")
PKG = ("pkg", "pkg/model.py", "pkg/weights.safetensors")
STALE = ".out.onnx.dlc-staging-4194999-x"  # a staging directory of a killed dlc (no such pid)
OLD = b"old bytes that must survive a failed command\n"


def spec_with_value(value: str) -> str:
    """TINY with one param `v` whose YAML text is `value`."""
    return TINY.replace("inputs:", f"params:\n  v: {value}\ninputs:")


def expression(text: str) -> str:
    """TINY with one param that evaluates the expression `text`."""
    return spec_with_value('"${' + text.replace('"', '\\"') + '}"')


def nested_flow(depth: int) -> str:
    return spec_with_value("[" * depth + "]" * depth)


def nested_block(depth: int) -> str:
    return TINY.replace("inputs:", f"params:\n  v:\n    {'- ' * depth}1\ninputs:")


def alias_bomb(levels: int = 9) -> str:
    lines = ['  a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels + 1):
        previous = f"*a{level - 1}"
        lines.append(f"  a{level}: &a{level} [{', '.join([previous] * 9)}]")
    return TINY.replace("inputs:", "params:\n" + "\n".join(lines) + "\ninputs:")


def long_list(kilobytes: int) -> str:
    return spec_with_value("[" + "1, " * (kilobytes * 2**10 // 3) + "1]")


RUNS = torch_package_runs("pkg", (2, 4))
PARSES = python_parses("pkg/model.py")


def plugin_env() -> dict[str, str]:
    return {"PYTHONPATH": "{dir}/plugin"}


# fmt: off
CASES: list[Case] = [
    # -- 1. YAML -------------------------------------------------------------------------------
    Case("yaml-python-name-tag", V, 1, "tag", spec=spec_with_value("!!python/name:os.system ''")),
    Case("yaml-python-apply-tag", V, 1, "tag", spec=spec_with_value("!!python/object/apply:os.system [ls]")),
    Case("yaml-python-object-map", V, 1, "tag", spec=spec_with_value("!!python/object:os.Foo {a: 1}")),
    Case("yaml-unknown-local-tag", V, 1, "tag", spec=spec_with_value("!foo bar")),
    Case("yaml-unknown-local-tag-key", V, 1, "tag", spec=TINY.replace("name:", "!foo name:")),
    Case("yaml-bad-int", V, 1, "!!int", spec=spec_with_value("!!int abc")),
    Case("yaml-bad-float", V, 1, "!!float", spec=spec_with_value("!!float abc")),
    Case("yaml-bad-bool", V, 1, "!!bool", spec=spec_with_value("!!bool maybe")),
    Case("yaml-bad-timestamp", V, 1, "!!timestamp", spec=spec_with_value("!!timestamp 2020-13-01")),
    Case("yaml-bad-binary", V, 1, "tag", spec=spec_with_value('!!binary "not base64"')),
    Case("yaml-set-tag", V, 1, "tag", spec=spec_with_value("!!set {a, b}")),
    Case("yaml-value-tag", V, 0, "ok", spec=spec_with_value("=")),
    Case("yaml-implicit-date-is-text", V, 0, "ok", spec=spec_with_value("2020-01-01")),
    Case("yaml-alias-bomb", V, 1, "alias", spec=alias_bomb()),
    Case("yaml-recursive-alias", V, 1, "recursive", spec=spec_with_value("&a [*a]")),
    Case("yaml-flow-nesting-100000", V, 1, "nest", spec=nested_flow(100_000)),
    Case("yaml-block-nesting-2000", V, 1, "nest", spec=nested_block(2_000)),
    Case("yaml-50mb-spec", V, 1, "larger than", spec=long_list(50 * 1024)),
    Case("yaml-900kb-list", V, 1, "values", spec=long_list(900)),
    Case("yaml-5000-digit-int", V, 1, "digits", spec=spec_with_value("1" * 5000)),
    Case("yaml-5000-digit-key", V, 1, "digits", spec=spec_with_value("{? " + "1" * 5000 + " : 1}")),
    Case("yaml-dev-zero", ("validate", "/dev/zero"), 1, "not a regular file"),
    Case("yaml-fifo", ("validate", "spec.fifo"), 1, "not a regular file", files={"spec.fifo": fifo()}),
    Case("yaml-directory", ("validate", "specdir"), 1, "directory", files={"specdir": directory()}),
    Case("yaml-missing-file", ("validate", "nope.yaml"), 1, "not found"),
    Case("yaml-not-utf8", V, 1, "UTF-8", spec=TINY.encode() + b"# caf\xe9\n"),
    Case("yaml-utf16-bom", V, 1, "UTF-16", spec=b"\xff\xfe" + TINY.encode("utf-16-le")),
    Case("yaml-nul-byte", V, 1, "character", spec=TINY.replace("tiny", "ti\0ny")),
    Case("yaml-control-char", V, 1, "character", spec=TINY.replace("tiny", "ti\x07ny")),
    Case("yaml-lone-surrogate-escape", V, 1, "surrogate", spec=spec_with_value('"\\ud800"')),
    Case("yaml-escape-sequence-in-key", V, 1, "\\x1b[2J", spec=TINY.replace("name: tiny", "name: tiny\n\"\\e[2J\": 1")),
    Case("yaml-utf8-bom-is-fine", V, 0, "ok", spec=b"\xef\xbb\xbf" + TINY.encode()),
    Case("yaml-set-deep", ("validate", "{spec}", "--set", "v=" + "[" * 5000), 1, "nest", spec=spec_with_value("1"), located=False),
    Case("yaml-set-python-tag", ("validate", "{spec}", "--set", "v=!!python/name:os.system"), 1, "tag", spec=spec_with_value("1"), located=False),
    Case("yaml-set-bad-int", ("validate", "{spec}", "--set", "v=!!int abc"), 1, "!!int", spec=spec_with_value("1"), located=False),
    # -- 2. Expressions ------------------------------------------------------------------------
    Case("expr-comprehension-steps", V, 1, "evaluation steps", spec=expression("[x * 2 + 1 for x in range(10**6)]")),
    Case("expr-range-1e12", V, 1, "range", spec=expression("range(10**12)")),
    Case("expr-sum-range-1e10", V, 1, "range", spec=expression("sum(range(10**10))")),
    Case("expr-len-range-1e9", V, 1, "range", spec=expression("len(range(10**9))")),
    Case("expr-max-range-1e8", V, 1, "range", spec=expression("max(range(10**8))")),
    Case("expr-unary-minus-100000", V, 1, "limit", spec=expression("-" * 100_000 + "1")),
    Case("expr-unary-minus-2000", V, 1, "deep", spec=expression("-" * 2_000 + "1")),
    Case("expr-not-10000", V, 1, "limit", spec=expression("not " * 10_000 + "1")),
    Case("expr-ljust", V, 1, "ljust", spec=expression("'a'.ljust(10**10)")),
    Case("expr-replace-growth", V, 1, "replace", spec=expression("'a'.replace('', 'b' * 10**5)")),
    Case("expr-string-repeat", V, 1, "limit", spec=expression("'ab' * 10**9")),
    Case("expr-list-repeat", V, 1, "limit", spec=expression("[1] * 10**9")),
    Case("expr-plus-chain-1mb", V, 1, "limit", spec=expression("+".join(["1"] * 500_000))),
    Case("expr-plus-chain-3000", V, 1, "deep", spec=expression("+".join(["1"] * 3_000))),
    Case("expr-attribute-chain", V, 1, "limit", spec=expression("v" + ".a" * 300_000)),
    Case("expr-bigint-power", V, 1, "bits", spec=expression("(10**4000000)**2")),
    Case("expr-bigint-product", V, 1, "bits", spec=expression("(9**400000) * (9**400000) * (9**400000)")),
    Case("expr-bigint-shift", V, 1, "bits", spec=expression("1 << 10**9")),
    Case("expr-int-to-str", V, 1, "bits", spec=spec_with_value("\"n${10**5000}\"")),
    Case("expr-int-of-float", V, 1, "bits", spec=expression("int(1e300) ** 2")),
    Case("expr-interpolated-fine", V, 0, "ok", spec=TINY.replace("tiny", "n${2**10}")),
    # -- 4. Command line -----------------------------------------------------------------------
    Case("cli-seed-negative", ("compile", "{spec}", "--seed", "-1", "-o", "out.onnx"), 2, "--seed", spec=TINY),
    Case("cli-seed-huge", ("compile", "{spec}", "--seed", str(2**64), "-o", "out.onnx"), 2, "--seed", spec=TINY),
    Case("cli-seed-not-int", ("compile", "{spec}", "--seed", "1e3", "-o", "out.onnx"), 2, "--seed", spec=TINY),
    Case("cli-run-seed-negative", ("run", "{spec}", "--random-inputs", "--seed", "-1"), 2, "--seed", spec=TINY),
    Case("cli-inputs-plain-npy", ("run", "{spec}", "--inputs", "in.npy"), 1, ".npz", spec=TINY, files={"in.npy": npy_file((2, 4))}, located=False),
    Case("cli-inputs-npz-claims-1e11", ("run", "{spec}", "--inputs", "in.npz"), 1, "in.npz", spec=TINY, files={"in.npz": npz_claiming(10**11)}, located=False),
    Case("cli-inputs-npz-bomb", ("run", "{spec}", "--inputs", "in.npz"), 1, "in.npz", spec=TINY, files={"in.npz": npz_bomb(3584)}, located=False),
    Case("cli-inputs-fifo", ("run", "{spec}", "--inputs", "in.npz"), 1, "in.npz", spec=TINY, files={"in.npz": fifo()}, located=False),
    Case("cli-weights-float8", ("compile", "{spec}", "--weights", "w.safetensors", "-o", "out.onnx"), 1, "F8_E4M3", spec=TINY, files={"w.safetensors": safetensors({"linear_0.weight": ("F8_E4M3", [3, 4]), "linear_0.bias": ("F8_E4M3", [3])})}, located=False),
    Case("cli-onnx-range-bad-json", ("run", "m.onnx", "--random-inputs"), 1, "dlc.input_ranges", files={"m.onnx": onnx_with_metadata("dlc.input_ranges", "{not json")}),
    Case("cli-onnx-range-wrong-type", ("run", "m.onnx", "--random-inputs"), 1, "dlc.input_ranges", files={"m.onnx": onnx_with_metadata("dlc.input_ranges", '{"x": "abc"}')}),
    Case("cli-onnx-range-not-object", ("run", "m.onnx", "--random-inputs"), 1, "dlc.input_ranges", files={"m.onnx": onnx_with_metadata("dlc.input_ranges", "[1, 2]")}),
    Case("cli-onnx-range-nan", ("run", "m.onnx", "--random-inputs"), 1, "dlc.input_ranges", files={"m.onnx": onnx_with_metadata("dlc.input_ranges", '{"x": [NaN, 2]}')}),
    Case("cli-onnx-range-1e30", ("run", "m.onnx", "--random-inputs"), 1, "dlc.input_ranges", files={"m.onnx": onnx_with_metadata("dlc.input_ranges", '{"x": [0, 1e30]}')}),
    Case("cli-onnx-range-empty", ("run", "m.onnx", "--random-inputs"), 1, "dlc.input_ranges", files={"m.onnx": onnx_with_metadata("dlc.input_ranges", '{"x": [5, 5]}')}),
    Case("cli-plugin-sys-exit", V, 0, "hostile_plugin", spec=TINY, files={"plugin": plugin_package("import sys\nsys.exit(0)\n")}, env=plugin_env(), located=False),
    Case("cli-plugin-sys-exit-strict", ("validate", "{spec}", "--strict-plugins"), 1, "hostile_plugin", spec=TINY, files={"plugin": plugin_package("import sys\nsys.exit(0)\n")}, env=plugin_env(), located=False),
    # -- 5. Files ------------------------------------------------------------------------------
    Case("files-output-null-device", ("compile", "{spec}", "-o", "null"), 0, "", spec=TINY, files={"null": NULL_DEVICE}),
    Case("files-output-full-device", ("compile", "{spec}", "-o", "full"), 1, "no space left", spec=TINY, files={"full": FULL_DEVICE}, located=False),
    Case("files-schema-null-device", ("schema", "-o", "null"), 0, "", files={"null": NULL_DEVICE}),
    Case("files-schema-full-device", ("schema", "-o", "full"), 1, "no space left", files={"full": FULL_DEVICE}),
    Case("files-torch-output-null-device", ("compile", "{spec}", "--target", "torch", "-o", "null"), 1, "not a directory", spec=TINY, files={"null": NULL_DEVICE}, located=False),
    Case("files-output-fifo", ("compile", "{spec}", "-o", "out.fifo"), 1, "not a regular file", spec=TINY, files={"out.fifo": fifo()}, located=False),
    Case("files-run-output-full-device", ("run", "{spec}", "--random-inputs", "--output", "full"), 1, "no space left", spec=TINY, files={"full": FULL_DEVICE}, located=False),
    Case("files-failed-compile-no-new-dirs", ("compile", "{spec}", "-o", "a/b/out.onnx"), 1, "", spec=TINY.replace("linear: 3", "linear: -3")),
    Case("files-failed-compile-keeps-output", ("compile", "{spec}", "-o", "out.onnx"), 1, "", spec=TINY.replace("linear: 3", "linear: -3"), files={"out.onnx": OLD}),
    Case("files-failed-torch-keeps-weights", ("compile", "{spec}", "--target", "torch", "-o", "pkg"), 1, "", spec=TINY.replace("linear: 3", "linear: -3"), files={"pkg/model.py": OLD, "pkg/weights.safetensors": OLD}),
    Case("files-failed-compile-keeps-external-data", ("compile", "{spec}", "-o", "out.onnx"), 1, "", spec=TINY.replace("linear: 3", "linear: -3"), files={"out.onnx": OLD, "out.onnx.data": OLD}),
    Case("files-efbig-keeps-output", C, 1, "file too large writing out.onnx", spec=TINY, files={"out.onnx": OLD}, max_file_bytes=100, located=False),
    Case("files-efbig-no-new-dirs", ("compile", "{spec}", "-o", "a/b/out.onnx"), 1, "file too large", spec=TINY, max_file_bytes=100, located=False),
    Case("files-efbig-keeps-external-data", C, 1, "file too large", spec=TINY, files={"out.onnx": OLD, "out.onnx.data": OLD}, max_file_bytes=100, located=False),
    Case("files-efbig-torch-keeps-package", ("compile", "{spec}", "--target", "torch", "-o", "pkg"), 1, "file too large", spec=TINY, files={"pkg/model.py": OLD, "pkg/weights.safetensors": OLD}, max_file_bytes=100, located=False),
    Case("files-efbig-torch-new-package", ("compile", "{spec}", "--target", "torch", "-o", "pkg"), 1, "file too large", spec=TINY, max_file_bytes=100, located=False),
    Case("files-efbig-schema", ("schema", "-o", "schema.json"), 1, "file too large writing schema.json", files={"schema.json": OLD}, max_file_bytes=100),
    Case("files-efbig-run-output", ("run", "{spec}", "--random-inputs", "--output", "o/out.npz"), 1, "file too large", spec=TINY, max_file_bytes=100, located=False),
    Case("files-stale-staging-removed", C, 0, "wrote", spec=TINY, files={STALE + "/junk": OLD}, absent=(STALE, STALE + "/junk"), changes=("out.onnx",)),
    Case("files-live-staging-kept", C, 0, "wrote", spec=TINY, files={".out.onnx.dlc-staging-1-x/junk": OLD}, changes=("out.onnx",)),
    Case("files-output-directory", (*C[:-1], "outdir"), 1, "directory", spec=TINY, files={"outdir": directory()}, located=False),
    Case("files-schema-fifo", ("schema", "-o", "s.fifo"), 1, "not a regular file", files={"s.fifo": fifo()}),
    # -- 6. Code generation --------------------------------------------------------------------
    Case("codegen-name-triple-quote", T, 0, "", spec=TINY.replace("name: tiny", "name: 'a\"\"\"b\\'"), changes=PKG, check=RUNS),
    Case("codegen-name-injection", T, 0, "", spec=TINY.replace("name: tiny", "name: '\"\"\"; import os; os.remove(\"spec.yaml\") #'"), changes=PKG, check=PARSES),
    Case("codegen-name-escapes", T, 0, "", spec=TINY.replace("name: tiny", 'name: "a\\0b\\rc\\u2028d\\\\"'), changes=PKG, check=PARSES),
    Case("codegen-file-name-triple-quote", T, 0, "", spec=TINY, spec_name='x"""y.yaml', changes=PKG, check=PARSES),
    Case("codegen-scale-inf", T, 0, "", spec=TINY + "  - scale: .inf\n", changes=PKG, check=RUNS),
    Case("codegen-scale-nan", T, 0, "", spec=TINY + "  - scale: .nan\n", changes=PKG, check=PARSES),
    Case("codegen-leaky-relu-nan", T, 0, "", spec=TINY + "  - leaky_relu: .nan\n", changes=PKG, check=RUNS),
    Case("codegen-leaky-relu-minus-inf", T, 0, "", spec=TINY + "  - leaky_relu: -.inf\n", changes=PKG, check=PARSES),
    Case("codegen-elu-inf", T, 0, "", spec=TINY + "  - elu: .inf\n", changes=PKG, check=PARSES),
    Case("codegen-pad-value-inf", T, 0, "", spec=TINY.replace("[N, 4]", "[N, 2, 4]") + "  - pad: {padding: 1, value: .inf}\n", changes=PKG, check=torch_package_runs("pkg", (1, 2, 4))),
    Case("codegen-id-starts-with-digit", T, 1, "not a Python name", spec=TINY + "    id: 1e309\n"),
    Case("codegen-top-level-numeric-id", T, 1, "not one", spec=TINY + "    id: '5'\n"),
    Case("codegen-nested-numeric-ids-run", T, 0, "", spec=TINY + "    id: features\n  - repeat: 2\n    id: stack\n    body: [{linear: 3}]\n", changes=PKG, check=RUNS),
    # Fuzzer finding (seed 1, case 9557): 100,000 bad list items, one diagnostic each, took minutes.
    Case("validation-100k-bad-items-capped", V, 1, "more problems", spec='dlc: 1\nname: cc\ninputs:\n  characters: {shape: [N, T, 50], dtype: int64}\nlayers:\n  - char_cnn: {vocab: 262, dim: 16, filters: "${[x for x in range(100000)]}"}\n'),
    # Fuzzer finding (seed 1, case 10698): a fractional bound of an integer input's range.
    Case("input-range-fractional-bound", ("run", "{spec}", "--random-inputs"), 0, "ids", spec="dlc: 1\nname: r\ninputs:\n  ids: {shape: [N, 8], dtype: int64, range: [0, 2.5]}\nlayers:\n  - embedding: {vocab: 10, dim: 4}\n"),
    # -- 3. Sizes (helper `scale`, issue 18) ---------------------------------------------------
]
# fmt: on
