"""fusionrec: multimodal recommendation with pretrained encoders.

From Python::

    import fusionrec
    data = fusionrec.load_data("demo")                   # a folder with fusionrec.yaml, a YAML, a preset
    rec = fusionrec.Recommender("mmgraph").fit(data)
    rec.recommend("user00042", k=10)
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Recommender", "__version__", "load_data"]

if TYPE_CHECKING:
    from fusionrec.api import Recommender, load_data


def __getattr__(name: str) -> Any:
    # Lazy: `import fusionrec.<module>` (and the CLI's start-up) must not pay for torch and
    # pandas; the API is imported on first use of fusionrec.load_data / fusionrec.Recommender.
    if name in ("Recommender", "load_data"):
        from fusionrec import api

        return getattr(api, name)
    raise AttributeError(f"module 'fusionrec' has no attribute {name!r}")


def __dir__() -> list[str]:
    # notebooks complete names from dir(): the public (lazy) names, not typing helpers
    return sorted({*__all__, *(name for name in globals() if name.startswith("__"))})
