"""Load a script of tools/ (not a package) as a module, once, for its tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

TOOLS = Path(__file__).resolve().parents[2] / "tools"

# a minimal overlay and config.txt block, standing in for board/'s in the tools' tests
STANDIN_DTS = """/dts-v1/;
/plugin/;
/ {
\tcompatible = "brcm,bcm2835";
\tfragment@0 {
\t\ttarget = <&gpio>;
\t\t__overlay__ {
\t\t\thook_pin: hook_pin { brcm,pins = <4>; brcm,function = <0>; brcm,pull = <2>; };
\t\t};
\t};
};
"""
STANDIN_CONFIG_TXT = "[all]\ndtparam=i2c_arm=on\nenable_uart=1\ndtoverlay=deskphone\n"


def load_tool(name: str, module_name: str | None = None) -> ModuleType:
    """tools/<name>.py as the module ``module_name`` (default ``name``)."""
    module_name = module_name or name
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, TOOLS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module
