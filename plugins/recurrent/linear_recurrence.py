"""The `linear_recurrence` block and op: a diagonal linear recurrence (LRU: Orvieto et al.
2023, "Resurrecting recurrent neural networks for long sequences").

    xi_0 = 0,   xi_{t+1} = Lambda xi_t + B x_t,   y_t = Re(C xi_t) + D x_t

over x [N, T, H] (or [T, N, H]), with a complex diagonal Lambda (P eigenvalues), complex
B [P, H] and C [H, P], and a real diagonal D [H] (the LRU's feedthrough): y_t sees x_t
only through D, and earlier inputs through the state. Parameters, as the LRU's:

    nu_log, theta_log  [P]   lambda_p = exp(-exp(nu_log_p) + i exp(theta_log_p)), so
                             |lambda_p| = exp(-exp(nu_log_p)) < 1 for any real nu_log_p
    gamma_log          [P]   B's rows are scaled by exp(gamma_log) (the LRU's normalization)
    B_re, B_im         [P, H]
    C_re, C_im         [H, P]
    D                  [H]

Initialization (the LRU's): |lambda| uniform by area on the ring [r_min, r_max], phase
uniform in [0, max_phase], gamma = sqrt(1 - |lambda|^2), B ~ N(0, 1/(2H)) and
C ~ N(0, 1/P) per real and imaginary part, D ~ N(0, 1).

Emission: a chunked parallel scan (chunked_scan.py for ONNX, `LINEAR_RECURRENCE` for
torch), the same ops for every T, no loop over time steps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import Field, ValidationInfo, field_validator

from dlc.lazy_imports import numpy as np
from dlc.plugin_api import (
    BlockConfig,
    BlockContext,
    BlockType,
    Dim,
    DType,
    Node,
    OpAttrs,
    OpDef,
    OpGroup,
    OpSample,
    TensorType,
    TorchWriter,
    Value,
    init,
    require,
)

from .chunked_scan import linear_recurrence_to_onnx

MAX_TOEPLITZ_BYTES = 1 << 28
PARAMETERS = ("nu_log", "theta_log", "gamma_log", "B_re", "B_im", "C_re", "C_im", "D")


MAX_CHUNK = 4096  # chunk x chunk tables of 8-byte lags: 134 MB at most


class LinearRecurrenceAttrs(OpAttrs):
    batch_first: bool = False
    chunk: int = Field(32, ge=1, le=4096)  # steps per chunk of the parallel scan (MAX_CHUNK)
    # Initialization only: the ejected module draws its own parameters with them.
    r_min: float = 0.0
    r_max: float = 1.0
    max_phase: float = 2 * math.pi


class LinearRecurrenceConfig(BlockConfig):
    state: int = Field(ge=1, description="State size P: the number of complex eigenvalues of Lambda.")
    r_min: float = Field(
        0.0, ge=0.0, lt=1.0, description="Initial eigenvalue moduli are uniform (by area) on [r_min, r_max]."
    )
    r_max: float = Field(1.0, gt=0.0, le=1.0, description="Upper end of the initial moduli' ring.")
    max_phase: float = Field(
        2 * math.pi, gt=0.0, description="Initial eigenvalue phases are uniform in [0, max_phase]."
    )
    batch_first: bool = Field(
        False, description="Sequences are [N, T, features]; by default [T, N, features], as in torch."
    )
    chunk: int = Field(
        32,
        ge=1,
        le=MAX_CHUNK,
        description="Steps per chunk of the parallel scan (speed only, not the result); the ONNX "
        f"output holds chunk x chunk tables, so at most {MAX_CHUNK}.",
    )

    @field_validator("r_max")
    @classmethod
    def _ring(cls, r_max: float, info: ValidationInfo) -> float:
        r_min = info.data.get("r_min")
        if r_min is not None and r_max <= r_min:
            raise ValueError(f"r_max ({r_max}) must be larger than r_min ({r_min})")
        return r_max


def parameter_shapes(features: int, state: int) -> dict[str, tuple[int, ...]]:
    vector = (state,)
    return {
        "nu_log": vector,
        "theta_log": vector,
        "gamma_log": vector,
        "B_re": (state, features),
        "B_im": (state, features),
        "C_re": (features, state),
        "C_im": (features, state),
        "D": (features,),
    }


# -- initialization ----------------------------------------------------------------------


def ring_initializers(name: str, config: LinearRecurrenceConfig) -> dict[str, init.Init]:
    """nu_log and gamma_log from one uniform draw u (the stream `<name>.modulus`), with
    |lambda|^2 = r_min^2 + u (r_max^2 - r_min^2); theta_log = log(max_phase * u')."""
    low, high = config.r_min**2, config.r_max**2
    tiny = np.finfo(np.float32).tiny  # keeps log() finite when u is exactly 0

    def squared_modulus(u: np.ndarray) -> np.ndarray:
        return np.clip(low + u.astype(np.float64) * (high - low), tiny, 1.0)

    unit = init.Init("uniform", 0.0, 1.0)
    stream = f"{name}.modulus"
    ring = f"r={config.r_min:g}..{config.r_max:g}"
    return {
        "nu_log": init.transformed(
            unit, f"lru_nu_log[{ring}]", lambda u: np.log(-0.5 * np.log(squared_modulus(u))), stream
        ),
        "gamma_log": init.transformed(
            unit, f"lru_gamma_log[{ring}]", lambda u: 0.5 * np.log1p(-squared_modulus(u)), stream
        ),
        "theta_log": init.transformed(
            unit,
            f"lru_theta_log[max_phase={config.max_phase:g}]",
            lambda u: np.log(config.max_phase * np.maximum(u.astype(np.float64), tiny)),
        ),
    }


def initializers(name: str, config: LinearRecurrenceConfig, features: int) -> dict[str, init.Init]:
    return {
        **ring_initializers(name, config),
        "B_re": init.normal(1 / math.sqrt(2 * features)),
        "B_im": init.normal(1 / math.sqrt(2 * features)),
        "C_re": init.normal(1 / math.sqrt(config.state)),
        "C_im": init.normal(1 / math.sqrt(config.state)),
        "D": init.normal(1.0),
    }


# -- the block ---------------------------------------------------------------------------


def _lower(ctx: BlockContext, config: LinearRecurrenceConfig, inputs: list[Value]) -> Value:
    x = inputs[0]
    layout = "[N, T, features]" if config.batch_first else "[T, N, features] (or set batch_first: true)"
    if x.type.rank != 3 or x.type.dtype is not DType.float32:
        raise ctx.error(f"expects a 3-D float32 input sequence {layout}, got {x.type}")
    if not isinstance(x.type.shape[-1], int):
        raise ctx.error(f"the feature dim of the input must be static, got {x.type}")
    toeplitz_bytes = 8 * config.state * config.chunk**2  # real and imaginary [P, L, L] float32
    if toeplitz_bytes > MAX_TOEPLITZ_BYTES:
        raise ctx.error(
            f"chunk {config.chunk} with state {config.state}: the scan's Toeplitz matrices would take "
            f"{toeplitz_bytes >> 20} MB (at most {MAX_TOEPLITZ_BYTES >> 20} MB)",
            hint="the default chunk (32) was the fastest measured; it does not change the result",
        )
    features = int(x.type.shape[-1])
    inits = initializers(ctx.name, config, features)
    params = [
        ctx.param(name, shape, inits[name])
        for name, shape in parameter_shapes(features, config.state).items()
    ]
    return ctx.op("linear_recurrence", x, *params, **config.model_dump(exclude={"state"}))


BLOCKS = [
    BlockType(
        "linear_recurrence",
        LinearRecurrenceConfig,
        _lower,
        "Diagonal linear recurrence (LRU): xi_{t+1} = Lambda xi_t + B x_t, y_t = Re(C xi_t) + D x_t, "
        "complex Lambda inside the unit circle; a chunked parallel scan, no loop over time.",
        shorthand="state",
    )
]


# -- the op ------------------------------------------------------------------------------


def _infer(attrs: LinearRecurrenceAttrs, inputs: Sequence[TensorType | None]) -> TensorType:
    require(len(inputs) == 1 + len(PARAMETERS), f"linear_recurrence takes x and {', '.join(PARAMETERS)}")
    x = inputs[0]
    require(x is not None, "linear_recurrence needs an input sequence")
    assert x is not None
    layout = "[N, T, features]" if attrs.batch_first else "[T, N, features]"
    require(
        x.rank == 3 and x.dtype is DType.float32,
        f"linear_recurrence expects a float32 {layout} input, got {x}",
    )
    require(isinstance(x.shape[-1], int), f"linear_recurrence: the feature dim must be static, got {x}")
    nu_log = inputs[1]
    require(nu_log is not None and nu_log.rank == 1, f"linear_recurrence: nu_log must be [P], got {nu_log}")
    assert nu_log is not None
    expected = parameter_shapes(int(x.shape[-1]), int(nu_log.shape[0]))
    for (name, shape), value in zip(expected.items(), inputs[1:], strict=True):
        require(
            value is not None and value.shape == shape and value.dtype is DType.float32,
            f"linear_recurrence: {name} must be float32{list(shape)}, got {value}",
        )
    return x


def _macs(node: Node) -> Dim:
    """The input and output projections, B (complex, P x H) and C (H x P): 4 P H per step
    and sequence. The scan's own products are the algorithm's, not the model's, as an
    FFT convolution counts the direct convolution's MACs."""
    x, b_re = node.inputs[0], node.inputs[4]
    assert x is not None and b_re is not None
    state, features = (int(d) for d in b_re.type.shape)
    return x.type.shape[0] * x.type.shape[1] * 4 * state * features


LINEAR_RECURRENCE = '''
@torch.fx.wrap  # a leaf for torch.fx: the scan's step count depends on the sequence length
def linear_recurrence(
    x, nu_log, theta_log, gamma_log, B_re, B_im, C_re, C_im, D, chunk=32, batch_first=False
):
    """y_t = Re(C xi_t) + D x_t with xi_{t+1} = Lambda xi_t + exp(gamma_log) B x_t, xi_0 = 0 and
    Lambda = exp(-exp(nu_log) + i exp(theta_log)). A chunked parallel scan: inside chunks
    of `chunk` steps the states are a product with the Toeplitz matrices of powers of
    Lambda; across chunks a doubling (Hillis-Steele) scan of log2(T / chunk) steps. The
    large products are real (torch's complex ones are slow on CPU): states [P, N * chunks,
    chunk] as real and imaginary parts."""
    if not batch_first:
        x = x.transpose(0, 1)
    batch, steps, features = x.shape
    state = nu_log.size(0)
    k = torch.arange(chunk + 1, dtype=x.dtype, device=x.device)
    powers = torch.polar(torch.exp(-torch.exp(nu_log)[:, None] * k), torch.exp(theta_log)[:, None] * k)
    # powers [P, chunk + 1]: Lambda^k. Toeplitz [P, i, j]: Lambda^(j-1-i) for j > i, else 0.
    i, j = torch.arange(chunk, device=x.device)[:, None], torch.arange(chunk, device=x.device)
    toeplitz = torch.where(j > i, powers[:, (j - 1 - i).clamp(min=0)], 0)
    toeplitz_re, toeplitz_im = toeplitz.real.contiguous(), toeplitz.imag.contiguous()
    rows = F.pad(x, (0, 0, 0, -steps % chunk)).reshape(-1, features).T  # [H, N T'], T' a multiple of chunk
    scale = torch.exp(gamma_log)[:, None]
    u_re = ((scale * B_re) @ rows).reshape(state, -1, chunk)  # B x: [P, N * chunks, chunk]
    u_im = ((scale * B_im) @ rows).reshape(state, -1, chunk)
    # The state from each chunk's own inputs, and the state it passes on.
    local_re = u_re @ toeplitz_re - u_im @ toeplitz_im
    local_im = u_re @ toeplitz_im + u_im @ toeplitz_re
    last = torch.complex(local_re[..., -1], local_im[..., -1])
    totals = (powers[:, 1:2] * last + torch.complex(u_re[..., -1], u_im[..., -1])).reshape(state, batch, -1)
    # The state entering chunk c: sum over c' < c of Lambda^(chunk (c - 1 - c')) totals[c'].
    carry = torch.cat([torch.zeros_like(totals[..., :1]), totals[..., :-1]], -1)  # [P, N, chunks]
    decay, shift = powers[:, chunk, None, None], 1
    while shift < carry.size(-1):  # log2(chunks) doubling steps
        carry = torch.cat([carry[..., :shift], carry[..., shift:] + decay * carry[..., :-shift]], -1)
        decay, shift = decay * decay, 2 * shift
    entering = powers[:, None, :chunk] * carry.reshape(state, -1, 1)  # [P, N * chunks, chunk]
    states_re = (local_re + entering.real).reshape(state, -1)  # [P, N T']
    states_im = (local_im + entering.imag).reshape(state, -1)
    y = (C_re @ states_re - C_im @ states_im).T.reshape(batch, -1, features)[:, :steps] + D * x
    return y if batch_first else y.transpose(0, 1)


class LinearRecurrence(nn.Module):
    """Diagonal linear recurrence layer (LRU, Orvieto et al. 2023), [.., H] -> [.., H]."""

    def __init__(self, features, state, r_min=0.0, r_max=1.0, max_phase=6.283185307179586, chunk=32,
                 batch_first=False):
        super().__init__()
        self.chunk, self.batch_first = chunk, batch_first
        # |lambda|^2 uniform on [r_min^2, r_max^2] (the ring, by area), phase uniform in [0, max_phase]
        modulus = r_min**2 + torch.rand(state) * (r_max**2 - r_min**2)
        self.nu_log = nn.Parameter(torch.log(-0.5 * torch.log(modulus)))
        self.theta_log = nn.Parameter(torch.log(max_phase * torch.rand(state)))
        self.gamma_log = nn.Parameter(0.5 * torch.log1p(-modulus))
        self.B_re = nn.Parameter(torch.randn(state, features) / (2 * features) ** 0.5)
        self.B_im = nn.Parameter(torch.randn(state, features) / (2 * features) ** 0.5)
        self.C_re = nn.Parameter(torch.randn(features, state) / state**0.5)
        self.C_im = nn.Parameter(torch.randn(features, state) / state**0.5)
        self.D = nn.Parameter(torch.randn(features))

    def forward(self, x):
        return linear_recurrence(
            x, self.nu_log, self.theta_log, self.gamma_log, self.B_re, self.B_im, self.C_re, self.C_im,
            self.D, self.chunk, self.batch_first,
        )
'''


def _to_torch(t: TorchWriter, node: Node) -> str:
    t.helper("linear_recurrence", LINEAR_RECURRENCE)
    x, *params = node.inputs
    attrs: LinearRecurrenceAttrs = node.attrs
    state, features = (int(d) for d in params[3].type.shape)
    defaults = LinearRecurrenceAttrs()
    options = [str(features), str(state)]
    for name in ("r_min", "r_max", "max_phase", "chunk", "batch_first"):
        if getattr(attrs, name) != getattr(defaults, name):
            options.append(f"{name}={getattr(attrs, name)!r}")
    module = t.module(
        node, f"LinearRecurrence({', '.join(options)})", dict(zip(PARAMETERS, params, strict=True))
    )
    if module:
        return f"{module}({t.var(x)})"
    arguments = [t.var(v) for v in node.inputs]
    return f"linear_recurrence({', '.join(arguments)}, chunk={attrs.chunk}, batch_first={attrs.batch_first})"


def sample_parameters(
    rng: np.random.Generator, features: int, state: int, r_min: float = 0.5, r_max: float = 0.99
) -> list[np.ndarray]:
    """LRU-initialized parameters (as `initializers` draws them), in the op's input order."""
    modulus = r_min**2 + rng.random(state) * (r_max**2 - r_min**2)
    values = {
        "nu_log": np.log(-0.5 * np.log(modulus)),
        "theta_log": np.log(math.pi * rng.random(state)),
        "gamma_log": 0.5 * np.log1p(-modulus),
    }
    for name, shape in parameter_shapes(features, state).items():
        if name not in values:
            scale = 1.0 if name == "D" else 1 / math.sqrt(2 * features if name[0] == "B" else state)
            values[name] = scale * rng.standard_normal(shape)
    return [values[name].astype(np.float32) for name in PARAMETERS]


def _samples() -> list[OpSample]:
    def sample(name: str, time: int, chunk: int, batch_first: bool = False, module: bool = True) -> OpSample:
        rng = np.random.default_rng(len(name) + time)
        batch, features, state = 2, 3, 4
        shape = (batch, time, features) if batch_first else (time, batch, features)
        x = rng.standard_normal(shape).astype(np.float32)
        symbols = {0: {0: "N", 1: "T"} if batch_first else {0: "T", 1: "N"}}
        params = frozenset(range(1, 1 + len(PARAMETERS))) if module else frozenset()
        return OpSample(
            (x, *sample_parameters(rng, features, state)),
            {"batch_first": batch_first, "chunk": chunk},
            params=params,
            symbols=symbols,
            name=name,
        )

    return [
        sample("time-first-three-chunks", time=11, chunk=4),  # a partial last chunk
        sample("batch-first-functional", time=16, chunk=4, batch_first=True, module=False),  # 4 chunks
        sample("one-chunk", time=5, chunk=8),  # no scan across chunks
        sample("chunks-of-one-step", time=7, chunk=1, batch_first=True),  # all of it across chunks
    ]


OPS = [
    OpDef(
        "linear_recurrence",
        _infer,
        linear_recurrence_to_onnx,
        _to_torch,
        _samples,
        LinearRecurrenceAttrs,
        OpGroup.CONTRACTION,
        macs=_macs,
        doc="Diagonal linear recurrence (LRU) as a chunked parallel scan.",
    )
]
