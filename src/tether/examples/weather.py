"""Harmless tools for trying ``tether run`` with a small local model (``docs/agent.md``).

``tether run --policy src/tether/examples/weather.yaml --tools tether.examples.weather:TOOLS ...``:
a canned weather report, notes kept in memory, and a tool that deletes the notes, which the
example policy (``weather.yaml``) always denies. Nothing here touches the disk or the network.

The argument schemas bound every string (``maxLength``): a server that turns the schema into a
grammar (llama.cpp's does) then cannot let a small model ramble inside an argument.
"""

from __future__ import annotations

from tether.agent import FunctionTool, function_tool

FORECASTS = {"paris": "sunny, 21 C", "london": "light rain, 14 C", "tokyo": "cloudy, 18 C", "rome": "sunny, 25 C"}
"""The canned reports, by lower-case city name."""

NOTES: list[str] = []
"""The notes kept by :func:`write_note` (in memory: gone when the process ends)."""


def get_weather(city: str) -> str:
    """Today's weather in a city."""
    return f"{city}: {FORECASTS.get(city.strip().lower(), 'no report for this city')}"


def write_note(text: str) -> str:
    """Keep a short note for the user."""
    NOTES.append(text)
    return f"noted: {text}"


def delete_notes() -> str:
    """Delete all of the user's notes."""
    NOTES.clear()
    return "all notes deleted"


def _object(**properties: dict[str, object]) -> dict[str, object]:
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


TOOLS: list[FunctionTool] = [
    function_tool(get_weather, parameters=_object(city={"type": "string", "description": "The city, e.g. Paris.", "maxLength": 40})),
    function_tool(write_note, parameters=_object(text={"type": "string", "description": "The note.", "maxLength": 80})),
    function_tool(delete_notes, parameters=_object()),
]
"""The tools, for ``--tools tether.examples.weather:TOOLS``."""
