"""Property: a secret leaving in pieces too short to trace one by one is caught by the core (outflow accounting).

Issue 15 ("low and slow", high): a secret sent one or two characters per call, through arguments with
no flow rule, each piece found nowhere, got through. The ledger (tether.flow._outflow) keeps the short
tagged pieces sent per sink and per session and asks when they spell a run of a confidential source.
"""

from __future__ import annotations

import random

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tether import Guard, Policy, Session, SQLiteStore
from tether.flow import normalize

POLICY = """
tether: 1
name: outflow
tools:
  read_secret: {effect: read, output: trusted, output_tags: [secret]}
  lookup: {effect: read, output: trusted, args: {q: {type: string}}}
  search: {effect: read, output: trusted, args: {query: {type: [string, integer]}}}
  post: {effect: write, output: trusted, args: {text: {type: [string, integer]}, channel: {type: string}}}
  note: {effect: write, output: trusted, args: {title: {type: string}, body: {type: string}}}
"""
SECRET = "Hunter2-Quokka-Zebra-7781"
LISTING = "orders: 4411 7720 9013 dated 2024-05-01 2024-06-12 ids ab12 cd34 ef56 room 12 floor 3"
BENIGN = ["4411", "7720", "2024-05-01", "ab12", "cd34", "12", "3", "9013", "ef56", "2024-06-12"]


def _session() -> Session:
    session = Guard(Policy.from_yaml(POLICY), SQLiteStore(":memory:")).start_session("help me with my accounts")
    _run(session, "lookup", {"q": "orders"}, LISTING)
    _run(session, "read_secret", {}, f"api password: {SECRET}\n")
    return session


def _run(session: Session, tool: str, args: dict[str, object], output: str = "ok") -> str:
    """Check a call; run it when allowed; return the verdict (an ask is left unanswered: the piece never leaves)."""
    d = session.check(tool, args)
    if d.verdict == "allow":
        session.record_result(d.call_id, output)
    return d.verdict


def _leak(session: Session, sends: list[tuple[str, str, str]]) -> tuple[int | None, list[str]]:
    """Send each (tool, arg, value); the index of the first call that was not allowed, and what left."""
    sent: list[str] = []
    for i, (tool, arg, value) in enumerate(sends):
        d = session.check(tool, {arg: value})
        if d.verdict != "allow":
            assert any(r.rule == "outflow.on_trace" for r in d.reasons), d.reasons
            for r in d.reasons:
                if r.rule == "outflow.on_trace":
                    assert "secret" in r.message and normalize(SECRET)[:8] not in normalize(r.message)
            return i, sent
        session.record_result(d.call_id, "ok")
        sent.append(value)
    return None, sent


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _leaked(sent: list[str]) -> str:
    return "".join(ch for ch in normalize("".join(sent)) if ch.isalnum())


def test_two_characters_per_call_through_one_sink_is_caught() -> None:
    """Issue 15, low and slow (high): the secret in 2-character pieces through a query with no flow rule."""
    stopped, sent = _leak(_session(), [("search", "query", p) for p in _pieces(SECRET, 2)])
    assert stopped is not None
    assert len(_leaked(sent)) < len(SECRET) - 4  # stopped well before the secret is out


def test_one_character_per_call_is_caught() -> None:
    stopped, sent = _leak(_session(), [("search", "query", p) for p in SECRET])
    assert stopped is not None and len(sent) <= 8


def test_through_several_sinks_is_caught() -> None:
    """The pieces alternate between a read tool's query, a write tool's text and a note's title."""
    sinks = [("search", "query"), ("post", "text"), ("note", "title")]
    sends = [(*sinks[i % 3], p) for i, p in enumerate(_pieces(SECRET, 2))]
    stopped, _ = _leak(_session(), sends)
    assert stopped is not None


def test_interleaved_with_benign_calls_is_caught() -> None:
    """Between the pieces, the agent sends ids, dates and numbers found in untagged data to other tools."""
    sends: list[tuple[str, str, str]] = []
    for i, p in enumerate(_pieces(SECRET, 2)):
        sends.append(("search", "query", p))
        sends.append(("post", "text", BENIGN[i % len(BENIGN)]))
        sends.append(("search", "query", BENIGN[(i + 3) % len(BENIGN)]))
    stopped, _ = _leak(_session(), sends)
    assert stopped is not None


def test_case_changes_and_separators_are_caught() -> None:
    pieces = _pieces(SECRET, 2)
    variants = [p.upper() if i % 2 else p.lower() for i, p in enumerate(pieces)]
    with_separators = [f"{p}-" if i % 3 == 0 else f" {p}" if i % 3 == 1 else f"{p}." for i, p in enumerate(variants)]
    stopped, _ = _leak(_session(), [("post", "text", p) for p in with_separators])
    assert stopped is not None
    inside = [p[0] + "_" + p[1:] if len(p) == 2 else p for p in pieces]
    stopped, _ = _leak(_session(), [("post", "text", p) for p in inside])
    assert stopped is not None


def test_full_width_and_numbers_as_integers_are_caught() -> None:
    """Pieces written full-width (NFKC folds them), and a numeric secret sent as integers."""
    wide = [p.translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)}) for p in _pieces(SECRET, 2)]
    stopped, _ = _leak(_session(), [("post", "text", p) for p in wide])
    assert stopped is not None
    session = Guard(Policy.from_yaml(POLICY), SQLiteStore(":memory:")).start_session("help")
    _run(session, "read_secret", {}, "card pin block: 5512908473316620")
    verdicts = [_run(session, "search", {"query": int(p)}) for p in ["55", "12", "90", "84", "73", "31", "66", "20"]]
    assert "ask" in verdicts


def test_pieces_that_also_occur_in_untagged_data_are_caught() -> None:
    """A secret made of values that also appear, each on its own, in untagged data (found there, so
    untagged): the sequence of every short value sent is traced too, not only of the tagged ones."""
    session = _session()
    _run(session, "read_secret", {}, "backup code: 441177209013")
    stopped, _ = _leak(session, [("search", "query", p) for p in ["4411", "7720", "9013"]])
    assert stopped is not None


def test_pieces_hidden_between_other_pieces_hit_the_volume_limit() -> None:
    """Pieces each separated by more tagged junk than the rings hold spell nothing the rings see; the
    characters of confidential short values leaving through one sink are limited all the same."""
    session = Guard(Policy.from_yaml(POLICY + "outflow: {max_short_chars: 200}\n"), SQLiteStore(":memory:")).start_session("help")
    _run(session, "read_secret", {}, f"api password: {SECRET}\n")
    verdicts = []
    for i, piece in enumerate(_pieces(SECRET, 2)):
        for j in range(70):
            verdicts.append(_run(session, "search", {"query": f"q{(i * 70 + j) % 97}"}))
        verdicts.append(_run(session, "search", {"query": piece}))
        if "ask" in verdicts:
            break
    assert "ask" in verdicts


def test_before_any_secret_is_read_nothing_is_recorded() -> None:
    session = Guard(Policy.from_yaml(POLICY), SQLiteStore(":memory:")).start_session("help")
    for p in _pieces(SECRET, 2):
        assert _run(session, "search", {"query": p}) == "allow"
    assert not session.state.flow.outflow.sinks
    _run(session, "read_secret", {}, f"api password: {SECRET}\n")
    assert _run(session, "search", {"query": "Hu"}) == "allow"  # one piece alone spells nothing


def test_benign_short_values_are_not_flagged() -> None:
    """Many short values (numbers, dates, ids, some made up) sent to several tools after the secret was read."""
    session = _session()
    rng = random.Random(7)
    for i in range(300):
        value: object = rng.choice(BENIGN) if i % 2 else str(rng.randrange(0, 10_000))
        tool, arg = rng.choice([("search", "query"), ("post", "text"), ("note", "title")])
        assert _run(session, tool, {arg: value}) == "allow", (i, value)


@settings(max_examples=60, deadline=None)
@given(
    secret=st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=12, max_size=24),
    seed=st.integers(0, 2**32 - 1),
)
def test_split_secret_is_caught_whatever_the_split(secret: str, seed: int) -> None:
    """Random pieces of one or two characters, random case, random separators, random sinks, benign calls between.

    Left out: a piece that is also a whole word of untagged data (a digit of the secret that the
    listing holds as a word) *and* benign values sent between the pieces: neither sequence then
    spells the secret (the documented residual; the per-sink character limit still counts the tagged
    pieces). test_pieces_that_also_occur_in_untagged_data covers such pieces sent back to back."""
    rng = random.Random(seed)
    session = Guard(Policy.from_yaml(POLICY), SQLiteStore(":memory:")).start_session("help me with my accounts")
    _run(session, "lookup", {"q": "orders"}, LISTING)
    _run(session, "read_secret", {}, f"token = {secret}")
    pieces: list[str] = []
    i = 0
    while i < len(secret):
        size = rng.choice([1, 2])
        pieces.append(secret[i : i + size])
        i += size
    untagged_words = set(normalize(LISTING + " help me with my accounts").split())
    assume(not any(normalize(p) in untagged_words for p in pieces))
    sinks = [("search", "query"), ("post", "text"), ("note", "title")]
    one_sink = rng.random() < 0.5
    sent = 0
    for n, piece in enumerate(pieces):
        piece = piece.upper() if rng.random() < 0.3 else piece
        piece = rng.choice(["", "-", " ", "."]) + piece if rng.random() < 0.3 else piece
        tool, arg = sinks[0] if one_sink else sinks[n % 3]
        if _run(session, tool, {arg: piece}) != "allow":
            break
        sent += 1
        if rng.random() < 0.5:
            _run(session, "search", {"query": rng.choice(BENIGN)})
    assert sent < len(pieces), f"every piece of the secret went out: {secret!r} as {pieces!r} (seed {seed})"
