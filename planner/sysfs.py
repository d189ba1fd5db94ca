"""Reading a machine's own files (sysfs, the PCI ID database) from a root directory, so tests feed recorded trees
through the same code: a file that is missing or unreadable reads as empty, never as an error."""
from __future__ import annotations

import re
from pathlib import Path

PCI_IDS = ("usr/share/hwdata/pci.ids", "usr/share/misc/pci.ids")


def read_text(path: Path, errors: str = "strict") -> str:
    try:
        return path.read_text(errors=errors).strip()
    except (OSError, UnicodeDecodeError):
        return ""


def number(path: Path) -> int:
    text = read_text(path)
    return int(text) if text.isdigit() else 0


def pci_name(root: Path, vendor_id: str, device_id: str) -> str | None:
    """The device's name in the system's PCI ID database (what lspci prints), or None."""
    vendor, wanted = vendor_id.lower().removeprefix("0x"), device_id.lower().removeprefix("0x")
    for relative in PCI_IDS:
        in_vendor = False
        for line in read_text(root / relative, errors="replace").splitlines():
            if re.match(r"[0-9a-f]{4}\s", line):
                in_vendor = line.startswith(vendor)
            elif in_vendor and re.match(rf"\t{wanted}\s", line):
                return line.split(None, 1)[1].strip()
    return None
