"""The public surface of fairdht.serverlist and fairdht.trust is exactly their __all__."""

from __future__ import annotations

import fairdht.serverlist
import fairdht.trust


def test_all_names_exist_and_cover_the_public_names() -> None:
    for module in (fairdht.serverlist, fairdht.trust):
        names = module.__all__
        assert all(hasattr(module, n) for n in names)
        assert len(set(names)) == len(names)
        public = {n for n in vars(module) if not n.startswith("_")} - {"annotations"}
        submodules = {n for n in public if type(getattr(module, n)).__name__ == "module"}
        assert public - submodules == set(names)
