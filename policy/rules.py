"""The display rules a seat runs under: what may cross between the seat and the home PC.

Every rule is off unless a policy turns it on: a home seat shows pixels and nothing else
leaves the data center (the seed's "no download, no copy" rule).
"""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DisplayRules:
    """Data-loss rules for one seat, compiled into each display backend's parameters."""

    clipboard_in: bool = False
    """Text from the browser's clipboard may be pasted into the seat."""
    clipboard_out: bool = False
    """Text copied inside the seat may reach the browser's clipboard."""
    download: bool = False
    upload: bool = False
    printing: bool = False
    drive: bool = False
    audio: bool = False
    """The seat's sound reaches the browser (RDP's audio output; the X11 path has none)."""
    audio_input: bool = False
