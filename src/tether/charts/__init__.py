"""Charts for the oversight UI and the bench report, drawn by matplotlib as SVG on the server.

No JavaScript and no network: each chart is a self-contained SVG document, embedded in a
page as an ``<img>`` with a ``data:`` URI, which the service's content security policy
allows (``img-src 'self' data:``) and in which nothing runs. Text that came from tools
(a tool's name) is drawn as glyph paths by matplotlib, never parsed as markup.

* :func:`decisions_over_time`, :func:`budget_use`, :func:`ask_waits`: a session's activity.
* :func:`asr_utility`: the bench report's plot of utility under attack against attack success.
* :func:`data_uri`: an SVG as the ``src`` of an ``<img>``.
"""

from tether.charts._plots import ask_waits, asr_utility, budget_use, data_uri, decisions_over_time

__all__ = ["ask_waits", "asr_utility", "budget_use", "data_uri", "decisions_over_time"]
