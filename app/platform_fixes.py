"""Process-wide fixes the app applies at start-up, before any video is opened."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys


def preload_system_xcb() -> bool:
    """Make the system libxcb win symbol lookups over a copy bundled in a video wheel.

    decord's wheel (once our video reader) loaded its library with RTLD_GLOBAL, which put its
    private libxcb in the global symbol scope; Qt's xcb platform plugin then resolved xcb calls
    made for a new window (e.g. xcb_send_request from libxcb-sync) into that copy and crashes in QXcbWindow::create (seen
    under Xvfb: adding a video, then showing the window). Loading the system libxcb globally
    first keeps the system copy first in the scope. PyAV's wheel bundles a libxcb too (av.libs/),
    so the guard stays. Harmless where there is no X11.
    """
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("xcb") or "libxcb.so.1"
    try:
        ctypes.CDLL(name, mode=ctypes.RTLD_GLOBAL)
    except OSError:
        return False
    return True
