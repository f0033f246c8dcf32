"""ThetaMLP ⇄ ``torch.nn.Sequential`` of ``nn.Linear`` layers and activation modules.

Each Θ^(l) ∈ R^{s_{l+1} × (s_l + 1)} becomes one ``nn.Linear(s_l, s_{l+1})``::

    Linear.weight = Θ^(l)[:, 1:]      (s_{l+1}, s_l)
    Linear.bias   = Θ^(l)[:, 0]       (s_{l+1},)          so  Linear(a) = Θ^(l) [1; a] = z^(l+1)

and the network h_Θ(x) becomes::

    Linear(s_1, s_2), g, Linear(s_2, s_3), g, …, Linear(s_L, s_{L+1}), head

The activation and head modules are the registry entries' ``torch_module`` (see
:mod:`lecturenn.activations`, :mod:`lecturenn.heads`), so a registered entry with a module converts
both ways too:

=================  ==========================  ==============================================
ThetaMLP           ``to_sequential`` emits     ``from_sequential`` accepts
=================  ==========================  ==============================================
g (registered)     ``g.torch_module()``        a module of that type with the same settings
                   (sigmoid ``nn.Sigmoid()``,  (``nn.Softplus`` only with beta = 1,
                   tanh ``nn.Tanh()``, …)      threshold = 20; ``inplace`` is ignored;
                                               ``nn.LeakyReLU(s)`` → ``leaky_relu:s``,
                                               ``nn.ELU(α)`` → ``elu:α``)
g = identity       ``nn.Identity()``           ``nn.Identity`` or nothing between two Linear
head (registered)  ``head.torch_module()``     the same; ``nn.Softmax`` with dim = 1 or -1
head identity      nothing                     nothing (or ``nn.Identity``)
batchnorm=True     ``nn.BatchNorm1d`` before g  the same, in every hidden layer
dropout=p          ``nn.Dropout(p)`` after g    the same p, in every hidden layer
=================  ==========================  ==============================================

``to_sequential`` refuses (``ValueError`` naming it) an activation or head registered without a
``torch_module``. ThetaMLP has a single hidden activation g for all hidden layers, so
``from_sequential`` refuses mixed activations (``ValueError`` naming the first module that differs
and its index); two ``nn.Linear`` in a row mean g = identity, which is accepted only if *every*
hidden layer has no activation (or ``nn.Identity``). Anything else — ``nn.Conv2d``, an
``nn.LeakyReLU(-0.1)`` (outside ``leaky_relu:SLOPE``'s range), ``nn.LogSoftmax``, a ``Softplus``
with beta ≠ 1, …
— is a ``ValueError`` naming the module and its index. Nested ``nn.Sequential`` containers are
flattened first; indices refer to the flattened list.

Both directions copy the numbers (no shared storage) and keep dtype, device and train/eval mode.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from ..activations import ACTIVATIONS
from ..heads import HEADS
from ..network import ThetaMLP

__all__ = ["to_sequential", "from_sequential"]

_NO_OP = nn.Identity  # as a head's module it adds nothing; as a hidden one it may be left out


def _module(entry, role: str) -> nn.Module:
    """``entry.torch_module()``; ``ValueError`` naming the entry when it has no torch.nn module."""
    if entry.torch_module is None:
        raise ValueError(
            f"the {role} {entry.name!r} has no torch.nn module, so to_sequential cannot express it "
            f"(register it with torch_module=... to export it)"
        )
    return entry.torch_module()


def _settings(module: nn.Module) -> dict:
    """The public attributes that select a module's function (``inplace`` does not change it)."""
    found = {
        k: v for k, v in vars(module).items() if not k.startswith("_") and k not in ("training", "inplace")
    }
    if found.get("dim") == -1:  # ThetaMLP's tensors are (n, s): the last dimension is dim 1
        found["dim"] = 1
    return found


def _entry_for(module: nn.Module, registry, where: str):
    """The first entry of ``registry`` whose torch.nn module is ``module`` (same type and settings),
    or a family's ``NAME:VALUE`` whose module differs only in the family's ``torch_param``
    (``nn.LeakyReLU(0.2)`` → ``leaky_relu:0.2``); None if no entry has its type; ``ValueError`` if
    one has its type but other settings, or a value outside the family's range."""
    same_type = None
    for entry in registry.values():
        if entry.torch_module is None:
            continue
        ref = entry.torch_module()
        if type(ref) is type(module):
            if _settings(ref) == _settings(module):
                return entry
            same_type = same_type or (entry, ref)
    for family in getattr(registry, "families", {}).values():
        ref, param = registry[family.name].torch_module(), family.torch_param
        if param is None or ref is None or type(ref) is not type(module):
            continue
        theirs = _settings(module)
        if {**_settings(ref), param: theirs.get(param)} == theirs:
            try:
                return registry.lookup(f"{family.name}:{float(theirs[param])!r}")
            except ValueError as err:
                raise ValueError(f"{where} ({module!r}): {err}") from None
    if same_type is not None:
        entry, ref = same_type
        ours = ", ".join(f"{k} = {v}" for k, v in _settings(ref).items())
        theirs = ", ".join(f"{k} = {v}" for k, v in _settings(module).items())
        raise ValueError(
            f"{where} ({module!r}): ThetaMLP's {registry.kind} {entry.name!r} is {ref!r} ({ours}); "
            f"this one has {theirs}"
        )
    return None


def _names(registry) -> str:
    return ", ".join(repr(e.torch_module()) for e in registry.values() if e.torch_module is not None)


def _name(module: nn.Module) -> str:
    return f"nn.{type(module).__name__}" if type(module).__module__.startswith("torch.nn") else repr(module)


def to_sequential(net: ThetaMLP) -> nn.Sequential:
    """The same network as plain ``torch.nn`` modules: ``Linear, g, …, Linear, head``.

    ``to_sequential(net)(x)`` equals ``net(x)`` (same dtype, device and train/eval mode). The
    result holds copies of Θ: training it does not change ``net``.
    """
    if not isinstance(net, ThetaMLP):
        raise TypeError(f"to_sequential expects a ThetaMLP, got {type(net).__name__}")
    ref = net.thetas[0]
    kw = {"device": ref.device, "dtype": ref.dtype}
    layers: list[nn.Module] = []
    with torch.no_grad():
        for l, theta in enumerate(net.thetas, start=1):
            s_next, s_in = theta.shape[0], theta.shape[1] - 1
            linear = nn.Linear(s_in, s_next, **kw)
            linear.weight.copy_(theta[:, 1:])
            linear.bias.copy_(theta[:, 0])
            layers.append(linear)
            if l == net.num_layers:
                break
            if net.norms is not None:
                src = net.norms[l - 1]
                norm = nn.BatchNorm1d(s_next, eps=src.eps, momentum=src.momentum, **kw)
                norm.load_state_dict(src.state_dict())
                layers.append(norm)
            layers.append(_module(net.activation, "hidden activation").to(**kw))
            if net.dropout:
                layers.append(nn.Dropout(net.dropout))
    head = _module(net.head, "output head").to(**kw)
    if type(head) is not _NO_OP:  # the identity head adds nothing after the last Linear
        layers.append(head)
    seq = nn.Sequential(*layers)
    seq.train(net.training)
    return seq


def _flatten(seq) -> list[nn.Module]:
    if isinstance(seq, nn.Sequential):
        items: Iterable = seq.children()
    elif isinstance(seq, (nn.ModuleList, list, tuple)):
        items = seq
    else:
        raise TypeError(
            f"from_sequential expects an nn.Sequential (or a list of modules), got {type(seq).__name__}"
        )
    out: list[nn.Module] = []
    for module in items:
        if isinstance(module, (nn.Sequential, nn.ModuleList)):
            out.extend(_flatten(module))
        elif isinstance(module, nn.Module):
            out.append(module)
        else:
            raise TypeError(f"from_sequential: {module!r} is not an nn.Module")
    return out


def from_sequential(seq: nn.Sequential, backprop: str = "manual") -> ThetaMLP:
    """Parse ``Linear, g, …, Linear, head`` (see the module docstring) into a ThetaMLP.

    Θ^(l) = [Linear_l.bias | Linear_l.weight] (a Linear without bias gives a zero column 0).
    dtype and device are those of the first Linear. Raises ``ValueError`` naming the module and
    its index for anything ThetaMLP cannot represent.
    """
    modules = _flatten(seq)
    if not modules:
        raise ValueError("from_sequential: the Sequential is empty")
    linear_at = [i for i, m in enumerate(modules) if isinstance(m, nn.Linear)]
    if not linear_at:
        raise ValueError("from_sequential: no nn.Linear found; a ThetaMLP needs at least one layer Θ^(1)")
    if linear_at[0] != 0:
        m = modules[0]
        raise ValueError(
            f"module 0 ({_name(m)}) comes before the first nn.Linear; a ThetaMLP starts with Θ^(1)"
        )
    ref = modules[0].weight
    thetas: list[Tensor] = []
    for k, i in enumerate(linear_at):
        lin = modules[i]
        if k and lin.in_features != thetas[-1].shape[0]:
            raise ValueError(
                f"module {i} (nn.Linear) has in_features = {lin.in_features}, but the previous Linear "
                f"has out_features = {thetas[-1].shape[0]}"
            )
        if lin.weight.dtype != ref.dtype or lin.weight.device != ref.device:
            raise ValueError(
                f"module {i} (nn.Linear) is {lin.weight.dtype} on {lin.weight.device}, but module 0 is "
                f"{ref.dtype} on {ref.device}; ThetaMLP keeps all Θ in one dtype and device"
            )
        w = lin.weight.detach()
        b = (
            lin.bias.detach()
            if lin.bias is not None
            else torch.zeros(w.shape[0], dtype=w.dtype, device=w.device)
        )
        thetas.append(torch.cat([b.unsqueeze(1), w], dim=1).clone())

    # hidden groups: the modules between consecutive Linear layers, parsed as [BN] [g] [Dropout]
    no_activation = _entry_for(_NO_OP(), ACTIVATIONS, "").name  # two Linear in a row: g = identity
    hidden: tuple[str, str] | None = None  # (activation name, where it was found)
    batchnorm: list[bool] = []
    dropouts: list[float] = []
    norms: list[nn.BatchNorm1d] = []
    for k, (start, stop) in enumerate(zip(linear_at[:-1], linear_at[1:])):
        stage = 0  # 0: expect BN, 1: expect activation, 2: expect dropout, 3: nothing more
        act, act_index, bn, p = None, stop, None, 0.0
        for i in range(start + 1, stop):
            m = modules[i]
            if isinstance(m, nn.BatchNorm1d) and stage == 0:
                if not (m.affine and m.track_running_stats):
                    raise ValueError(
                        f"module {i} ({m!r}): ThetaMLP's batchnorm has affine=True and "
                        "track_running_stats=True"
                    )
                bn, stage = m, 1
            elif type(m) is _NO_OP and stage <= 1:
                stage = 1  # a no-op: an activation may still follow
            elif stage <= 1 and (entry := _entry_for(m, ACTIVATIONS, f"module {i}")) is not None:
                act, act_index, stage = entry.name, i, 2
            elif isinstance(m, nn.Dropout) and type(m) is nn.Dropout and stage <= 2:
                p, stage = float(m.p), 3
            else:
                where = f"between nn.Linear {start} and nn.Linear {stop}"
                raise ValueError(
                    f"module {i} ({_name(m)}) {where} is not supported by ThetaMLP (a hidden layer is "
                    f"[nn.BatchNorm1d] activation [nn.Dropout], the activation one of the registered "
                    f"activations' modules: {_names(ACTIVATIONS)})"
                )
        act = act or no_activation
        if hidden is None:
            hidden = (act, f"module {act_index}" if act_index != stop else "no activation module")
        elif hidden[0] != act:
            if act_index == stop:
                what = f"module {stop} (nn.Linear) follows module {start} (nn.Linear) with no activation"
            else:
                what = f"module {act_index} ({_name(modules[act_index])}) is activation {act!r}"
            raise ValueError(
                f"{what} in hidden layer {k + 2}, but hidden layer 2 uses {hidden[0]!r} ({hidden[1]}); "
                "ThetaMLP has one hidden activation g for all hidden layers "
                "(mixed activations are not supported)"
            )
        batchnorm.append(bn is not None)
        if bn is not None:
            norms.append(bn)
        dropouts.append(p)
    if len(set(batchnorm)) > 1:
        raise ValueError(
            "from_sequential: nn.BatchNorm1d appears in some hidden layers but not in others; "
            "ThetaMLP's batchnorm is all or nothing"
        )
    if len(set(dropouts)) > 1:
        raise ValueError(
            f"from_sequential: the hidden layers use different dropout probabilities {dropouts}; "
            "ThetaMLP has one dropout p for all hidden layers"
        )

    # head: at most one module after the last Linear (nothing, or nn.Identity: the identity head)
    head, head_index = _entry_for(_NO_OP(), HEADS, ""), None
    for i in range(linear_at[-1] + 1, len(modules)):
        m = modules[i]
        if type(m) is _NO_OP:
            continue
        if head_index is not None:
            raise ValueError(
                f"module {i} ({_name(m)}) follows the output head {head.name!r} (module {head_index}); "
                "a ThetaMLP ends with one output head module"
            )
        head = _entry_for(m, HEADS, f"module {i}")
        if head is None:
            raise ValueError(
                f"module {i} ({_name(m)}) after the last nn.Linear is not a supported output head "
                f"(one of the registered heads' modules: {_names(HEADS)}, or nothing)"
            )
        head_index = i

    net = ThetaMLP.from_thetas(
        thetas,
        hidden[0] if hidden else "sigmoid",
        head.name,
        backprop,
        batchnorm=bool(batchnorm and batchnorm[0]),
        dropout=dropouts[0] if dropouts else 0.0,
        dtype=ref.dtype,
        device=ref.device,
    )
    if net.norms is not None:
        for dst, src in zip(net.norms, norms):
            dst.eps, dst.momentum = src.eps, src.momentum
            dst.load_state_dict(src.state_dict())
    training = seq.training if isinstance(seq, nn.Module) else modules[0].training
    net.train(training)
    return net
