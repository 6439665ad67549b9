"""The network zoo through the registry and the config: every family builds at its native input
sizes, and its options are validated overrides (``network=impala_resnet network.block=se``)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from hydra.errors import ConfigCompositionException

from d2rl import registry

NATIVE = {"pixels": [(4, 84, 84), (3, 64, 64)], "vector": [(8,)]}
ENTITIES = (5, 3)  # [E, F] for the transformer


def _cases() -> list[tuple[str, tuple[int, ...]]]:
    cases = []
    for name, entry in sorted(registry.networks().entries.items()):
        if entry.provider != "d2rl":
            continue
        for kind in entry.spec.accepts:
            shapes = [ENTITIES] if (name == "transformer" and kind == "vector") else NATIVE[kind]
            cases += [(name, shape) for shape in shapes]
    return cases


@pytest.mark.parametrize(("name", "shape"), _cases())
def test_every_builtin_network_builds_at_its_native_sizes(name: str, shape: tuple[int, ...]) -> None:
    spec = registry.get_network(name)
    torch.manual_seed(0)
    net = spec.build(spec.config_class(), shape)
    dtype = torch.uint8 if len(shape) == 3 else torch.float32
    obs = torch.randint(0, 256, (2, *shape)).to(dtype)
    out = net(obs)
    assert out.shape == (2, net.out_dim) and out.dtype == torch.float32


def test_the_zoo_is_registered() -> None:
    names = set(registry.networks().entries)
    assert {"mlp", "nature_cnn", "impala_resnet", "resnet", "mobilenet", "transformer"} <= names
    assert registry.get_network("transformer").accepts == ("vector", "pixels")
    assert registry.get_network("mobilenet").accepts == ("pixels",)


def test_options_are_validated_overrides(make_cfg) -> None:  # type: ignore[no-untyped-def]
    cfg = make_cfg(
        "network=impala_resnet", "network.block=se", "network.core=dnc", "network.spectral_norm=true"
    )
    assert cfg.network.block == "se" and cfg.network.core == "dnc" and cfg.network.spectral_norm is True
    cfg = make_cfg("network=mobilenet", "network.version=v3", "network.random_conv=true")
    assert cfg.network.version == "v3" and cfg.network.random_conv is True
    with pytest.raises(ConfigCompositionException):
        make_cfg("network=impala_resnet", "network.block=nope")
    with pytest.raises(ConfigCompositionException):
        make_cfg("network=mlp", "network.core=nope")
    with pytest.raises(ConfigCompositionException):
        make_cfg("network=mlp", "network.block=se")  # conv options exist on conv encoders only


def test_composed_options_build_the_network(make_cfg) -> None:  # type: ignore[no-untyped-def]
    cfg = make_cfg(
        "network=impala_resnet", "network.block=cbam", "network.channels=[8]", "network.batch_norm=true"
    )
    net = registry.get_network("impala_resnet").build(cfg.network, (3, 64, 64))
    assert type(net.stacks[0].res0.attention).__name__ == "CBAM"
    assert isinstance(net.stacks[0].norm, torch.nn.BatchNorm2d)


def test_network_configs_do_not_import_torch() -> None:
    code = "import sys, d2rl.networks; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
